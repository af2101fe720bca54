//! Inverted file: centroid -> internal ids of the documents having a token there.
//!
//! Contract: each list is strictly ascending (a document appears once per centroid, in
//! insertion order, and internal ids only grow). [`IvfLists`] is the mutable form used
//! while building or updating; [`Ivf`] the compact CSR form used by search. The on-disk
//! bytes are `(k + 1)` little-endian u64 offsets followed by the u32 document ids.
//! Deleted documents stay in the lists; search skips them through its tombstones.

use crate::error::{IndexError, Result};
use std::path::Path;

/// Growable per-centroid lists.
#[derive(Debug, Clone, Default)]
pub struct IvfLists {
    lists: Vec<Vec<u32>>,
}

impl IvfLists {
    /// `k` empty lists.
    pub fn new(k: usize) -> Self {
        Self {
            lists: vec![Vec::new(); k],
        }
    }

    /// Adds lists so that there are `k` of them.
    pub fn grow(&mut self, k: usize) {
        if k > self.lists.len() {
            self.lists.resize(k, Vec::new());
        }
    }

    /// Records that document `doc` (greater than every id added so far) has tokens in
    /// the centroids `codes` (any order, duplicates allowed).
    pub fn add_doc(&mut self, doc: u32, codes: &[u32]) {
        for &c in codes {
            let list = &mut self.lists[c as usize];
            if list.last() != Some(&doc) {
                list.push(doc);
            }
        }
    }

    /// Serialises to the on-disk bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let total: usize = self.lists.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity((self.lists.len() + 1) * 8 + total * 4);
        let mut off = 0u64;
        out.extend_from_slice(&off.to_le_bytes());
        for l in &self.lists {
            off += l.len() as u64;
            out.extend_from_slice(&off.to_le_bytes());
        }
        for l in &self.lists {
            for d in l {
                out.extend_from_slice(&d.to_le_bytes());
            }
        }
        out
    }
}

/// Compact (CSR) inverted file.
#[derive(Debug, Clone, Default)]
pub struct Ivf {
    offsets: Vec<usize>,
    docs: Vec<u32>,
}

impl Ivf {
    /// Parses on-disk bytes for `k` centroids (`path` only names the file in errors).
    pub fn from_bytes(bytes: &[u8], k: usize, path: &Path) -> Result<Self> {
        let head = (k + 1) * 8;
        if bytes.len() < head {
            return Err(IndexError::corrupt(
                path,
                "inverted file shorter than its offsets",
            ));
        }
        let offsets: Vec<usize> = bytes[..head]
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
            .collect();
        let n = (bytes.len() - head) / 4;
        if offsets[0] != 0 || offsets[k] != n || offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(IndexError::corrupt(
                path,
                "inverted file offsets are inconsistent",
            ));
        }
        let docs = bytes[head..]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        Ok(Self { offsets, docs })
    }

    /// Number of centroids.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// True when there are no centroids.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Documents of centroid `c`, ascending.
    pub fn list(&self, c: usize) -> &[u32] {
        &self.docs[self.offsets[c]..self.offsets[c + 1]]
    }

    /// Total number of (centroid, document) entries.
    pub fn entries(&self) -> usize {
        self.docs.len()
    }

    /// Back to the mutable form (for updates).
    pub fn to_lists(&self) -> IvfLists {
        IvfLists {
            lists: (0..self.len()).map(|c| self.list(c).to_vec()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_and_deduplicate() {
        let mut l = IvfLists::new(3);
        l.add_doc(0, &[2, 0, 2]);
        l.add_doc(1, &[2]);
        l.grow(4);
        l.add_doc(5, &[3, 0]);
        let ivf = Ivf::from_bytes(&l.to_bytes(), 4, Path::new("ivf")).unwrap();
        assert_eq!(ivf.list(0), &[0, 5]);
        assert_eq!(ivf.list(1), &[] as &[u32]);
        assert_eq!(ivf.list(2), &[0, 1]);
        assert_eq!(ivf.list(3), &[5]);
        assert_eq!(ivf.entries(), 5);
        assert!(Ivf::from_bytes(&l.to_bytes()[..20], 4, Path::new("ivf")).is_err());
    }
}
