//! [`MultiVector`]: one text's token embeddings, a row-major `tokens x dim` f32 matrix.
//!
//! Contract: `data.len() == n_tokens * dim` always holds and `dim > 0`; a multi-vector
//! may have zero tokens (a document whose every token was filtered out). Rows are whatever
//! the producer put there: the ColBERT encoder emits L2-normalised rows.

use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// A ragged multi-vector embedding (tokens x dim, row-major f32).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiVector {
    dim: usize,
    data: Vec<f32>,
}

impl MultiVector {
    /// Builds a multi-vector from flat row-major data; fails if `data` is not a whole
    /// number of `dim`-sized rows.
    pub fn new(dim: usize, data: Vec<f32>) -> Result<Self> {
        if dim == 0 {
            return Err(CoreError::Shape("dimension must be > 0".into()));
        }
        if !data.len().is_multiple_of(dim) {
            return Err(CoreError::Shape(format!(
                "{} values are not a whole number of rows of dimension {dim}",
                data.len()
            )));
        }
        Ok(Self { dim, data })
    }

    /// Builds a multi-vector from rows; all rows must have length `dim`.
    pub fn from_rows<R: AsRef<[f32]>>(dim: usize, rows: &[R]) -> Result<Self> {
        let mut data = Vec::with_capacity(rows.len() * dim);
        for (i, r) in rows.iter().enumerate() {
            let r = r.as_ref();
            if r.len() != dim {
                return Err(CoreError::Shape(format!(
                    "row {i} has {} values, expected {dim}",
                    r.len()
                )));
            }
            data.extend_from_slice(r);
        }
        Self::new(dim, data)
    }

    /// An empty (zero-token) multi-vector of the given dimension.
    pub fn empty(dim: usize) -> Self {
        Self {
            dim: dim.max(1),
            data: Vec::new(),
        }
    }

    /// Number of token vectors.
    pub fn n_tokens(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// True when there are no token vectors.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Token vector `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Iterator over token vectors.
    pub fn rows(&self) -> std::slice::ChunksExact<'_, f32> {
        self.data.chunks_exact(self.dim)
    }

    /// The flat row-major data.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Consumes the multi-vector, returning its flat data.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// L2-normalises every row in place (rows of norm 0 stay 0).
    pub fn normalize_rows(&mut self) {
        for r in self.data.chunks_exact_mut(self.dim) {
            let n = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            if n > 0.0 {
                r.iter_mut().for_each(|v| *v /= n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_checked() {
        assert!(MultiVector::new(3, vec![0.0; 7]).is_err());
        assert!(MultiVector::new(0, vec![]).is_err());
        let m = MultiVector::new(3, vec![1.0, 2.0, 2.0, 0.0, 0.0, 0.0]).unwrap();
        assert_eq!(m.n_tokens(), 2);
        assert_eq!(m.row(1), &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn normalize_rows_gives_unit_rows_and_keeps_zero_rows() {
        let mut m = MultiVector::new(3, vec![1.0, 2.0, 2.0, 0.0, 0.0, 0.0]).unwrap();
        m.normalize_rows();
        assert_eq!(m.row(0), &[1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0]);
        assert_eq!(m.row(1), &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn from_rows_rejects_ragged_rows() {
        let err = MultiVector::from_rows(2, &[vec![1.0, 2.0], vec![1.0]]).unwrap_err();
        assert!(err.to_string().contains("row 1"));
    }
}
