//! Does a set of document ids (a PLAID index's, an embedding store's) hold exactly a
//! dataset's corpus?
//!
//! Contract: [`check_same_documents`] compares the corpus ids with the other side's ids as
//! sets and by count. Equal sets of equal size pass; anything else is
//! [`EvalError::Invalid`] saying how many corpus ids the other side lacks, how many ids it
//! has that the corpus does not, both counts, and up to three example ids of each kind —
//! so evaluating an index built from another corpus fails instead of printing zeros or a
//! wrong nDCG. Examples are the first ones in the order given (corpus order, then the
//! other side's order), so messages are deterministic.

use crate::error::{EvalError, Result};
use std::collections::HashSet;

const EXAMPLES: usize = 3;

/// Checks that `others` (named `what`, e.g. "index runs/idx") holds exactly the documents
/// of `corpus` (named `corpus_name`); see the module docs.
pub fn check_same_documents<'a>(
    corpus_name: &str,
    corpus: impl IntoIterator<Item = &'a str>,
    what: &str,
    others: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let corpus: Vec<&str> = corpus.into_iter().collect();
    let others: Vec<&str> = others.into_iter().collect();
    let corpus_set: HashSet<&str> = corpus.iter().copied().collect();
    let other_set: HashSet<&str> = others.iter().copied().collect();
    let missing: Vec<&str> = corpus
        .iter()
        .copied()
        .filter(|id| !other_set.contains(id))
        .collect();
    let extra: Vec<&str> = others
        .iter()
        .copied()
        .filter(|id| !corpus_set.contains(id))
        .collect();
    if missing.is_empty() && extra.is_empty() && corpus.len() == others.len() {
        return Ok(());
    }
    let examples = |ids: &[&str]| -> String {
        let shown: Vec<String> = ids
            .iter()
            .take(EXAMPLES)
            .map(|id| format!("`{id}`"))
            .collect();
        if ids.is_empty() {
            String::new()
        } else {
            format!(" (e.g. {})", shown.join(", "))
        }
    };
    let mut parts = vec![format!(
        "{what} holds {} documents, {corpus_name} has {}",
        others.len(),
        corpus.len()
    )];
    if !missing.is_empty() {
        parts.push(format!(
            "{} corpus ids are not in it{}",
            missing.len(),
            examples(&missing)
        ));
    }
    if !extra.is_empty() {
        parts.push(format!(
            "{} of its ids are not in the corpus{}",
            extra.len(),
            examples(&extra)
        ));
    }
    if missing.is_empty() && extra.is_empty() {
        parts.push("some ids are repeated".into());
    }
    Err(EvalError::Invalid(format!(
        "{}: it was not built from this dataset's corpus (rebuild it from the same corpus)",
        parts.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_ids_in_any_order_pass() {
        check_same_documents("c", ["a", "b", "c"], "idx", ["c", "a", "b"]).unwrap();
        check_same_documents("c", [], "idx", []).unwrap();
    }

    #[test]
    fn a_different_corpus_is_refused_with_counts_and_examples() {
        let msg = check_same_documents(
            "corpus.jsonl",
            ["a", "b", "c", "d"],
            "index X",
            ["a", "z", "y"],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            msg,
            "index X holds 3 documents, corpus.jsonl has 4; 3 corpus ids are not in it (e.g. `b`, `c`, `d`); \
             2 of its ids are not in the corpus (e.g. `z`, `y`): it was not built from this dataset's corpus \
             (rebuild it from the same corpus)"
        );
        // a subset: only the missing side is reported
        let msg = check_same_documents("c", ["a", "b"], "idx", ["a"])
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(
                "idx holds 1 documents, c has 2; 1 corpus ids are not in it (e.g. `b`)"
            ),
            "{msg}"
        );
        assert!(!msg.contains("not in the corpus ("), "{msg}");
        // same set, different count
        let msg = check_same_documents("c", ["a", "b"], "idx", ["a", "b", "b"])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("some ids are repeated"), "{msg}");
    }
}
