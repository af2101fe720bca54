//! The prompt/length alignment check between consecutive stages of a recipe.
//!
//! Contract: [`check`] computes each stage's *effective* query/document prompts and
//! lengths — the stage's own overrides, else those of the stage it starts from
//! (`init = "previous"` or `@stage`: a saved checkpoint keeps them), else those its init
//! checkpoint stores (`config_sentence_transformers.json`; for `init = "dense"` only its
//! `prompts`, lengths then default to PyLate's 32 / 180). An empty prompt equals no
//! prompt. For every stage that starts from an earlier stage, each of the four settings
//! that differs is a [`Misalignment`], unless the stage lists the field in
//! `allow_misaligned` (then it is only reported as intended). The caller warns, or with
//! `strict` refuses before anything is trained.

use colzero_train::recipe::Recipe;
use serde_json::Value;
use std::path::Path;

/// The four settings the check compares.
#[derive(Clone, Debug, PartialEq)]
pub struct Tokenization {
    pub query_prompt: String,
    pub document_prompt: String,
    pub query_length: usize,
    pub document_length: usize,
}

/// One differing setting between a stage and the stage it starts from.
#[derive(Clone, Debug, PartialEq)]
pub struct Misalignment {
    pub stage: String,
    pub from_stage: String,
    pub field: &'static str,
    pub before: String,
    pub after: String,
    /// Listed in the stage's `allow_misaligned`.
    pub allowed: bool,
}

impl std::fmt::Display for Misalignment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stage `{}` changes {} from {} (stage `{}`) to {}",
            self.stage, self.field, self.before, self.from_stage, self.after
        )
    }
}

/// The paper's finding, quoted in every warning and refusal.
pub const FINDING: &str = "ColBERT-Zero (LightOn 2026, sec. 3.2) found that prompts must match \
across stages: adding prompts to a model pre-trained without them, or removing them from one \
pre-trained with them, lowers BEIR nDCG@10 (ColBERT-Zero 55.43 with prompts, 54.61 without); \
lengths grow with the prompts (+7 tokens each) so the text budget stays the same";

fn checkpoint_settings(dir: &Path, dense: bool) -> Tokenization {
    let st: Value = std::fs::read_to_string(dir.join("config_sentence_transformers.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let prompt = |k: &str| {
        st.get("prompts")
            .and_then(|p| p.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let len = |k: &str, d: usize| {
        if dense {
            d
        } else {
            st.get(k)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .unwrap_or(d)
        }
    };
    Tokenization {
        query_prompt: prompt("query"),
        document_prompt: prompt("document"),
        query_length: len("query_length", 32),
        document_length: len("document_length", 180),
    }
}

fn show_prompt(p: &str) -> String {
    if p.is_empty() {
        "no prompt".into()
    } else {
        format!("{p:?}")
    }
}

/// Effective settings of every stage and the misalignments (see module docs).
pub fn check(recipe: &Recipe) -> (Vec<Tokenization>, Vec<Misalignment>) {
    let mut eff: Vec<Tokenization> = Vec::new();
    let mut out = Vec::new();
    for (i, s) in recipe.stage.iter().enumerate() {
        let src = recipe.source_stage(i);
        let base = match src {
            Some(j) => eff[j].clone(),
            None => checkpoint_settings(&s.model.path, s.model.init == "dense"),
        };
        let m = &s.model;
        let t = Tokenization {
            query_prompt: m.query_prompt.clone().unwrap_or(base.query_prompt.clone()),
            document_prompt: m
                .document_prompt
                .clone()
                .unwrap_or(base.document_prompt.clone()),
            query_length: if m.query_length > 0 {
                m.query_length
            } else {
                base.query_length
            },
            document_length: if m.document_length > 0 {
                m.document_length
            } else {
                base.document_length
            },
        };
        if let Some(j) = src {
            let mut push = |field: &'static str, before: String, after: String| {
                if before != after {
                    out.push(Misalignment {
                        stage: s.name.clone(),
                        from_stage: recipe.stage[j].name.clone(),
                        field,
                        before,
                        after,
                        allowed: s.allow_misaligned.iter().any(|f| f == field),
                    });
                }
            };
            push(
                "query_prompt",
                show_prompt(&base.query_prompt),
                show_prompt(&t.query_prompt),
            );
            push(
                "document_prompt",
                show_prompt(&base.document_prompt),
                show_prompt(&t.document_prompt),
            );
            push(
                "query_length",
                base.query_length.to_string(),
                t.query_length.to_string(),
            );
            push(
                "document_length",
                base.document_length.to_string(),
                t.document_length.to_string(),
            );
        }
        eff.push(t);
    }
    (eff, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn recipe(stage2_model: &str, allow: &str) -> Recipe {
        let text = format!(
            "name = \"t\"\n[[stage]]\nname = \"a\"\n[stage.model]\ninit = \"dense\"\n\
             path = \"/nonexistent\"\nquery_prompt = \"search_query: \"\nquery_length = 36\n\
             [stage.data]\npath = \"d\"\n[[stage]]\nname = \"b\"\n{allow}[stage.model]\n\
             init = \"previous\"\n{stage2_model}[stage.data]\npath = \"d\"\n\
             [[stage]]\nname = \"c\"\n[stage.model]\ninit = \"colbert\"\npath = \"@a\"\n\
             [stage.data]\npath = \"d\"\n"
        );
        Recipe::from_toml_str(&text, Path::new("/r.toml")).unwrap()
    }

    #[test]
    fn inherited_settings_are_aligned() {
        let (eff, mis) = check(&recipe("", ""));
        assert!(mis.is_empty(), "{mis:?}");
        // a dense model without config_sentence_transformers.json: PyLate's 32 / 180
        assert_eq!(eff[0].query_length, 36);
        assert_eq!(eff[0].document_length, 180);
        assert_eq!(eff[0].document_prompt, "");
        assert_eq!(eff[1], eff[0]);
        assert_eq!(eff[2], eff[0]);
    }

    #[test]
    fn dropped_prompt_and_longer_documents_are_reported() {
        let (_, mis) = check(&recipe("query_prompt = \"\"\ndocument_length = 519\n", ""));
        let fields: Vec<(&str, bool)> = mis.iter().map(|m| (m.field, m.allowed)).collect();
        assert_eq!(
            fields,
            [("query_prompt", false), ("document_length", false)]
        );
        assert_eq!(mis[0].before, "\"search_query: \"");
        assert_eq!(mis[0].after, "no prompt");
        assert_eq!(mis[0].from_stage, "a");
        assert_eq!(
            mis[1].to_string(),
            "stage `b` changes document_length from 180 (stage `a`) to 519"
        );
        let (_, mis) = check(&recipe(
            "document_length = 519\n",
            "allow_misaligned = [\"document_length\"]\n",
        ));
        assert_eq!(mis.len(), 1);
        assert!(mis[0].allowed);
    }
}
