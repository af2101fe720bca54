//! Updates of a [`PlaidIndex`]: adding and deleting documents by external id.
//!
//! Contract:
//! - [`PlaidIndex::add`] compresses new documents into a new chunk file. Tokens farther
//!   than the codec's `cluster_threshold` from every centroid (squared L2 distance
//!   `|x|² + 1 - 2·x·c > threshold²`, centroids being unit vectors) are outliers; when
//!   there are at least `max_points_per_centroid` of them, `ceil(outliers /
//!   max_points_per_centroid)` new centroids are clustered from them (seeded k-means)
//!   and appended, so existing codes stay valid. Then every new token is assigned to its
//!   nearest centroid among old and new ones.
//! - [`PlaidIndex::delete`] tombstones documents: internal numbers and the other
//!   documents' data never change, so users never see renumbering. Unknown ids are
//!   ignored; the number of documents actually deleted is returned.
//! - Adding an id that is live is [`IndexError::DuplicateId`]; a deleted id may be added
//!   again (it becomes a new document).
//! - An update keeps the index's format version (see `format.rs`): new centroids are
//!   rounded to the stored precision, new chunks use the code width of that version.
//! - Each update is one new generation committed by a single manifest rename: a crash
//!   leaves the index as it was before the update or as it is after it. The in-memory
//!   index changes only after the commit succeeded.

use crate::build::{flatten, write_chunk, write_doc_table, Quantizer};
use crate::error::{IndexError, Result};
use crate::format::{self, Manifest};
use crate::kernel::pack_panels;
use crate::kmeans::{assign, kmeans, KMeansConfig};
use crate::plaid::PlaidIndex;
use colzero_core::MultiVector;
use std::collections::HashSet;

impl PlaidIndex {
    /// Adds documents (`ids[i]` names `embeddings[i]`); see module docs.
    pub fn add(&mut self, ids: Vec<String>, embeddings: &[MultiVector]) -> Result<()> {
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
        let dim = self.dim();
        let tokens = flatten(embeddings, dim, "document")?;
        let g = format::next_generation(&self.dir);
        let cfg = self.manifest.build.clone();

        // New centroids from outliers, when there are enough of them.
        let mut centroids = self.centroids.clone();
        let thr = self.codec.cluster_threshold();
        let best = assign(
            &tokens,
            dim,
            &self.centroid_panels,
            self.manifest.num_centroids,
        );
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
        let expanded = n_out >= ppc;
        if expanded {
            let new = kmeans(
                &outliers,
                dim,
                &KMeansConfig {
                    k: n_out.div_ceil(ppc),
                    niters: cfg.kmeans_niters,
                    max_points_per_centroid: ppc,
                    seed: cfg.seed ^ g,
                },
            )?;
            let mut new = new;
            format::round_centroids(self.manifest.format_version, &mut new);
            centroids.extend(new);
        }
        drop((outliers, tokens));
        let k = centroids.len() / dim;
        let mut panels = Vec::new();
        pack_panels(&centroids, dim, &mut panels);

        let mut lists = self.ivf.to_lists();
        lists.grow(k);
        let version = self.manifest.format_version;
        let chunk = write_chunk(
            &self.dir,
            (
                &format!("chunk-g{g}-0.bin"),
                format::code_bytes_for(version, k),
            ),
            self.ids.len() as u32,
            embeddings,
            &Quantizer {
                codec: &self.codec,
                centroids: &centroids,
                panels: &panels,
            },
            &mut lists,
        )?;
        let ivf_bytes = lists.encode(version);
        let mut table = self.doc_table();
        table.ids.extend(ids);

        let mut m: Manifest = self.manifest.clone();
        m.generation = g;
        if expanded {
            let name = format!("centroids-g{g}.bin");
            let bytes = format::centroid_bytes(version, &centroids);
            m.centroids = format::write_file(&self.dir, &name, &bytes)?;
            m.num_centroids = k;
        }
        m.ivf = format::write_file(&self.dir, &format!("ivf-g{g}.bin"), &ivf_bytes)?;
        m.docs = write_doc_table(&self.dir, g, &table)?;
        m.chunks.push(chunk.clone());
        format::commit_manifest(&self.dir, &m)?;
        format::collect_garbage(&self.dir, &m);

        // Committed: bring the in-memory index up to date.
        let ivf = lists.to_ivf();
        self.manifest = m;
        self.centroids = centroids;
        self.centroid_panels = panels;
        self.ivf = ivf;
        if let Err(e) = self.attach_chunk(&chunk).and_then(|_| self.set_docs(table)) {
            *self = PlaidIndex::open(&self.dir)?;
            return Err(e);
        }
        Ok(())
    }

    /// Deletes documents by external id; returns how many were live and are now gone.
    pub fn delete<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<usize> {
        let mut table = self.doc_table();
        let mut gone = HashSet::new();
        for id in ids {
            if let Some(&i) = self.lookup.get(id.as_ref()) {
                if gone.insert(i) {
                    table.deleted.push(i);
                }
            }
        }
        if gone.is_empty() {
            return Ok(0);
        }
        table.deleted.sort_unstable();
        let g = format::next_generation(&self.dir);
        let mut m = self.manifest.clone();
        m.generation = g;
        m.docs = write_doc_table(&self.dir, g, &table)?;
        format::commit_manifest(&self.dir, &m)?;
        format::collect_garbage(&self.dir, &m);
        self.manifest = m;
        self.set_docs(table)?;
        Ok(gone.len())
    }
}
