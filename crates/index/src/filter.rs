//! [`IdFilter`]: restrict a search to a subset of external document ids.
//!
//! Contract: a filter is a set of external ids. Searching with a filter returns only
//! documents whose id is in the set (and, for PLAID, not deleted); ids in the filter that
//! the index does not hold are ignored. An empty filter matches nothing.

use std::collections::HashSet;

/// A set of allowed external document ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdFilter {
    ids: HashSet<String>,
}

impl IdFilter {
    /// A filter allowing exactly `ids`.
    pub fn new<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            ids: ids.into_iter().map(Into::into).collect(),
        }
    }

    /// True when `id` is allowed.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Number of allowed ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the filter allows nothing.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The allowed ids (unordered).
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().map(String::as_str)
    }
}

impl<S: Into<String>> FromIterator<S> for IdFilter {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self::new(iter)
    }
}
