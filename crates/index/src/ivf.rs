//! Inverted file: centroid -> internal ids of the documents having a token there.
//!
//! Contract: each list is strictly ascending (a document appears once per centroid, in
//! insertion order, and internal ids only grow). [`IvfLists`] is the mutable form used
//! while building or updating; [`Ivf`] the compact CSR form (u32 ids in memory) used by
//! search. On disk ([`IvfLists::encode`], [`Ivf::decode`]):
//! - format version 1: `(k + 1)` little-endian u64 offsets followed by the u32 ids;
//! - format version 2: for each centroid, its list length as a LEB128 varint, then the
//!   first id and the gaps between consecutive ids (each >= 1) as varints. Decoding
//!   checks that every list is strictly ascending and that the bytes are used exactly.
//!
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

    /// Serialises to the on-disk bytes of format `version`.
    pub fn encode(&self, version: u32) -> Vec<u8> {
        if version < 2 {
            return self.to_bytes();
        }
        let total: usize = self.lists.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(self.lists.len() + total * 2);
        for l in &self.lists {
            put_varint(&mut out, l.len() as u32);
            let mut prev = 0;
            for (i, &d) in l.iter().enumerate() {
                put_varint(&mut out, if i == 0 { d } else { d - prev });
                prev = d;
            }
        }
        out
    }

    /// The compact form.
    #[cfg(test)]
    pub fn to_ivf(&self) -> Ivf {
        let mut offsets = Vec::with_capacity(self.lists.len() + 1);
        offsets.push(0);
        let mut docs = Vec::with_capacity(self.lists.iter().map(Vec::len).sum());
        for l in &self.lists {
            docs.extend_from_slice(l);
            offsets.push(docs.len());
        }
        Ivf { offsets, docs }
    }

    /// Serialises to the on-disk bytes of format version 1.
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

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let mut v = 0u64;
    for shift in (0..35).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return u32::try_from(v).ok();
        }
    }
    None
}

/// Compact (CSR) inverted file.
#[derive(Debug, Clone, Default)]
pub struct Ivf {
    offsets: Vec<usize>,
    docs: Vec<u32>,
}

impl Ivf {
    /// Parses the on-disk bytes of format `version` for `k` centroids (`path` only names
    /// the file in errors).
    pub fn decode(bytes: &[u8], k: usize, version: u32, path: &Path) -> Result<Self> {
        if version < 2 {
            return Self::from_bytes(bytes, k, path);
        }
        let bad = |what: &str| IndexError::corrupt(path, format!("inverted file: {what}"));
        let mut pos = 0;
        let mut offsets = Vec::with_capacity(k + 1);
        offsets.push(0);
        let mut docs = Vec::with_capacity(bytes.len() / 2);
        for c in 0..k {
            let n = get_varint(bytes, &mut pos)
                .ok_or_else(|| bad(&format!("truncated length of list {c}")))?;
            if n as usize > bytes.len() - pos {
                return Err(bad(&format!("list {c} longer than the file")));
            }
            let mut prev = 0u32;
            for i in 0..n {
                let g = get_varint(bytes, &mut pos)
                    .ok_or_else(|| bad(&format!("truncated list {c}")))?;
                if i > 0 && g == 0 {
                    return Err(bad(&format!("list {c} is not strictly ascending")));
                }
                prev = if i == 0 {
                    g
                } else {
                    prev.checked_add(g).ok_or_else(|| bad("id overflow"))?
                };
                docs.push(prev);
            }
            offsets.push(docs.len());
        }
        if pos != bytes.len() {
            return Err(bad("trailing bytes after the last list"));
        }
        Ok(Self { offsets, docs })
    }

    /// Largest document id in any list (None when all lists are empty).
    pub fn max_doc(&self) -> Option<u32> {
        (0..self.len())
            .filter_map(|c| self.list(c).last().copied())
            .max()
    }

    /// Parses on-disk bytes of format version 1 for `k` centroids (`path` only names the
    /// file in errors).
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

    /// Documents of centroid `c`, ascending.
    pub fn list(&self, c: usize) -> &[u32] {
        &self.docs[self.offsets[c]..self.offsets[c + 1]]
    }

    /// Total number of (centroid, document) entries.
    #[cfg(test)]
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

    #[test]
    fn varint_gap_encoding_round_trips_and_rejects_damage() {
        let mut l = IvfLists::new(3);
        l.add_doc(0, &[1]);
        l.add_doc(200, &[1, 2]);
        l.add_doc(70_000, &[1]);
        let b = l.encode(2);
        // list 0: len 0; list 1: len 3, 0, 200 (2 bytes), 69,800 (3 bytes); list 2: len 1, 200
        assert_eq!(b.len(), 1 + (1 + 1 + 2 + 3) + (1 + 2));
        let ivf = Ivf::decode(&b, 3, 2, Path::new("ivf")).unwrap();
        assert_eq!(ivf.list(0), &[] as &[u32]);
        assert_eq!(ivf.list(1), &[0, 200, 70_000]);
        assert_eq!(ivf.list(2), &[200]);
        assert_eq!(ivf.max_doc(), Some(70_000));
        assert_eq!(l.to_ivf().list(1), ivf.list(1));
        let p = Path::new("ivf");
        assert!(Ivf::decode(&b[..b.len() - 1], 3, 2, p).is_err());
        let mut extra = b.clone();
        extra.push(0);
        assert!(Ivf::decode(&extra, 3, 2, p).is_err());
        // a zero gap (duplicate id) is rejected
        assert!(Ivf::decode(&[0, 2, 5, 0, 0], 3, 2, p).is_err());
    }
}
