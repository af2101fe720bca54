//! Updates of an index: adding and deleting documents by external id, staged in an
//! [`IndexWriter`] (see `writer.rs` for locking and all-or-nothing commits).
//!
//! Contract:
//! - [`IndexWriter::add`] compresses new documents into a new chunk file of the writer's
//!   generation. Tokens farther than the codec's `cluster_threshold` from every centroid
//!   (squared L2 distance `|x|² + 1 - 2·x·c > threshold²`, centroids being unit vectors)
//!   are outliers; when there are at least `max_points_per_centroid` of them,
//!   `ceil(outliers / max_points_per_centroid)` new centroids are clustered from them
//!   (seeded k-means: seed `build.seed ^ generation ^ (chunk << 32)`) and appended, so
//!   existing codes stay valid. Then every new token is assigned to its nearest centroid
//!   among old and new ones.
//! - [`IndexWriter::delete`] tombstones documents: internal numbers and the other
//!   documents' data never change, so users never see renumbering. Unknown ids are
//!   ignored; the number of documents actually deleted is returned.
//! - Adding an id that is live (committed or staged) is [`IndexError::DuplicateId`],
//!   checked before anything is written; a deleted id may be added again (it becomes a
//!   new document).
//! - An update keeps the index's format version (see `format.rs`): new centroids are
//!   rounded to the stored precision, new chunks use the code width of that version.
//! - [`PlaidIndex::add`] / [`PlaidIndex::delete`] are one-operation transactions: they
//!   take the writer lock (failing at once if another writer holds it), stage, commit,
//!   and replace `self` with the new snapshot. On error `self` is unchanged.

use crate::chunk::{flatten, write_chunk, Quantizer};
use crate::error::{IndexError, Result};
use crate::format;
use crate::kernel::pack_panels;
use crate::kmeans::{assign, kmeans, KMeansConfig};
use crate::plaid::PlaidIndex;
use crate::writer::{IndexWriter, Staged};
use colzero_core::fault;
use colzero_core::lock::Wait;
use colzero_core::MultiVector;
use std::collections::HashSet;

impl IndexWriter {
    /// Stages documents (`ids[i]` names `embeddings[i]`); see module docs.
    pub fn add(&mut self, ids: Vec<String>, embeddings: &[MultiVector]) -> Result<()> {
        if self.poisoned {
            return Err(IndexError::Invalid(
                "index writer: an earlier step failed; nothing was committed".into(),
            ));
        }
        if ids.len() != embeddings.len() {
            return Err(IndexError::Invalid(format!(
                "add: {} ids for {} embeddings",
                ids.len(),
                embeddings.len()
            )));
        }
        if ids.is_empty() {
            return Ok(());
        }
        let mut seen = HashSet::new();
        for id in &ids {
            if self.lookup.contains_key(id) || !seen.insert(id.as_str()) {
                return Err(IndexError::DuplicateId(id.clone()));
            }
        }
        let dim = self.base.dim();
        let tokens = flatten(embeddings, dim, "document")?;
        // From here on a failure leaves staged state half-updated: poison until done.
        self.poisoned = true;
        let base = &self.base;
        let st = self.staged.get_or_insert_with(|| Staged {
            centroids: base.centroids.clone(),
            panels: base.centroid_panels.clone(),
            lists: base.ivf.to_lists(),
            expanded: false,
            chunks: Vec::new(),
        });
        let cfg = &base.manifest.settings;
        let g = self.generation;
        let seq = st.chunks.len();

        // New centroids from outliers, when there are enough of them.
        let thr = base.codec.cluster_threshold();
        let best = assign(&tokens, dim, &st.panels, st.centroids.len() / dim);
        let outliers: Vec<f32> = tokens
            .chunks_exact(dim)
            .zip(&best)
            .filter(|(x, &(_, dot))| {
                let sq: f32 = x.iter().map(|v| v * v).sum();
                sq + 1.0 - 2.0 * dot > thr * thr
            })
            .flat_map(|(x, _)| x.iter().copied())
            .collect();
        let n_out = outliers.len() / dim;
        let ppc = cfg.max_points_per_centroid.max(1);
        if n_out >= ppc {
            let mut new = kmeans(
                &outliers,
                dim,
                &KMeansConfig {
                    k: n_out.div_ceil(ppc),
                    niters: cfg.kmeans_niters,
                    max_points_per_centroid: ppc,
                    seed: cfg.seed ^ g ^ ((seq as u64) << 32),
                },
            )?;
            format::round_centroids(base.manifest.format_version, &mut new);
            st.centroids.extend(new);
            st.panels.clear();
            pack_panels(&st.centroids, dim, &mut st.panels);
            st.expanded = true;
        }
        drop((outliers, tokens));
        let k = st.centroids.len() / dim;
        st.lists.grow(k);
        let version = base.manifest.format_version;
        let name = format!("chunk-g{g}-{seq}.bin");
        self.written.push(base.dir.join(&name));
        let first = self.table.ids.len() as u32;
        let chunk = write_chunk(
            &base.dir,
            (&name, format::code_bytes_for(version, k)),
            first,
            embeddings,
            &Quantizer {
                codec: &base.codec,
                centroids: &st.centroids,
                panels: &st.panels,
            },
            &mut st.lists,
        )?;
        st.chunks.push(chunk);
        for (i, id) in ids.iter().enumerate() {
            self.lookup.insert(id.clone(), first + i as u32);
        }
        self.table.ids.extend(ids);
        self.changed = true;
        self.poisoned = false;
        fault::point("index.add.chunk");
        Ok(())
    }

    /// Stages the deletion of documents by external id; returns how many were live (in
    /// the committed index or staged) and are now gone.
    pub fn delete<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<usize> {
        let mut n = 0;
        for id in ids {
            if let Some(i) = self.lookup.remove(id.as_ref()) {
                self.table.deleted.push(i);
                n += 1;
            }
        }
        if n > 0 {
            self.changed = true;
        }
        Ok(n)
    }
}

impl PlaidIndex {
    /// Adds documents in one transaction (see module docs).
    pub fn add(&mut self, ids: Vec<String>, embeddings: &[MultiVector]) -> Result<()> {
        let mut w = IndexWriter::open_with(&self.dir, Wait::No, Some(self))?;
        w.add(ids, embeddings)?;
        *self = w.commit()?;
        Ok(())
    }

    /// Deletes documents by external id in one transaction; returns how many were live
    /// and are now gone.
    pub fn delete<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<usize> {
        let mut w = IndexWriter::open_with(&self.dir, Wait::No, Some(self))?;
        let n = w.delete(ids)?;
        *self = w.commit()?;
        Ok(n)
    }
}
