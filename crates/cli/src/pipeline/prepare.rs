//! The `[[prepare]]` steps of a recipe: `colzero data <kind>` runs whose flags come from
//! the step's keys.
//!
//! Contract:
//! - A step's keys become flags (`negatives = 4` -> `--negatives 4`, `true` -> a bare
//!   flag, `false` -> omitted; `_` and `-` are interchangeable) and are parsed by the same
//!   clap definitions as the command line, so unknown or ill-typed options are errors
//!   naming the recipe file and step before anything runs ([`plan`]).
//! - `pairs`/`mine`: the output is the folder `DATA/<name>/` holding one JSONL file per
//!   input (`corpus`/`dataset` may be an array), named by the input's folder name — one
//!   training source each. `teacher`: `DATA/<name>/` is the KD folder. A `triplets` value
//!   naming a folder (e.g. `@mine-step`) is concatenated into `DATA/.<name>.triplets.jsonl`.
//! - The output is built in `DATA/.<name>.partial/` and renamed into place, then
//!   `DATA/<name>.done.json` records the step's hash (its kind and options, chained with
//!   the hashes of the steps its `@` options read); a step whose marker has the same
//!   hash is skipped. A different hash is an error unless `rerun_changed`.

use super::{fnv_hex, Marker};
use crate::cmd::data::DataCommand;
use crate::cmd::Ctx;
use anyhow::{bail, Context, Result};
use clap::Parser;
use colzero_train::recipe::{reference, PrepareStep, Recipe};
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(name = "prepare")]
struct PrepareCli {
    #[command(subcommand)]
    cmd: DataCommand,
}

/// One concrete `colzero data` invocation of a step.
pub struct Invocation {
    /// Argument vector after `colzero data`.
    pub argv: Vec<String>,
    /// Output file or folder inside the partial folder (relative).
    pub out: String,
}

/// A validated step: its invocations and hash.
pub struct PlannedStep {
    pub name: String,
    pub kind: String,
    pub invocations: Vec<Invocation>,
    /// `triplets` folder to concatenate first (teacher).
    pub concat: Option<PathBuf>,
    pub hash: String,
    /// Earlier steps this one reads (`@name` options).
    pub deps: Vec<String>,
}

/// Whether data at `path` (a stage's `data.path`) needs the step `name`, directly or
/// through the `@` options of the steps it names.
pub fn needs(planned: &[PlannedStep], path: &Path, name: &str) -> bool {
    let Some(r) = reference(path) else {
        return false;
    };
    let mut todo = vec![r.to_string()];
    let mut seen = std::collections::HashSet::new();
    while let Some(n) = todo.pop() {
        if n == name {
            return true;
        }
        if seen.insert(n.clone()) {
            if let Some(p) = planned.iter().find(|p| p.name == n) {
                todo.extend(p.deps.iter().cloned());
            }
        }
    }
    false
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

fn resolve_ref(s: &str, data_dir: &Path) -> String {
    match reference(Path::new(s)) {
        Some(r) => data_dir.join(r).to_string_lossy().into_owned(),
        None => s.to_string(),
    }
}

/// Builds and checks the invocations of every step (nothing runs).
pub fn plan(recipe: &Recipe, data_dir: &Path) -> Result<Vec<PlannedStep>> {
    let mut out: Vec<PlannedStep> = Vec::new();
    for (i, s) in recipe.prepare.iter().enumerate() {
        let mut step = plan_step(recipe, i, s, data_dir)
            .with_context(|| format!("{}: prepare step `{}`", recipe.path.display(), s.name))?;
        // chain the hashes of the steps it reads
        for d in &step.deps {
            if let Some(p) = out.iter().find(|p| &p.name == d) {
                step.hash = fnv_hex(&format!("{}+{}", step.hash, p.hash));
            }
        }
        out.push(step);
    }
    Ok(out)
}

fn plan_step(recipe: &Recipe, i: usize, s: &PrepareStep, data_dir: &Path) -> Result<PlannedStep> {
    let multi_key = match s.kind.as_str() {
        "pairs" => Some("corpus"),
        "mine" => Some("dataset"),
        _ => None,
    };
    let mut common = Vec::new();
    let mut inputs: Vec<String> = Vec::new();
    let mut concat = None;
    let mut deps = Vec::new();
    for (k, v) in &s.options {
        let key = k.replace('_', "-");
        if Some(key.as_str()) == multi_key {
            match v {
                toml::Value::Array(a) => {
                    for x in a {
                        inputs.push(scalar(x).context(format!("`{k}`: expected strings"))?);
                    }
                }
                _ => inputs.push(scalar(v).context(format!("`{k}`: expected a string"))?),
            }
            continue;
        }
        match v {
            toml::Value::Boolean(true) => common.push(format!("--{key}")),
            toml::Value::Boolean(false) => {}
            _ => {
                let mut val = scalar(v).context(format!(
                    "`{k}`: expected a string, number or boolean (arrays only for `{}`)",
                    multi_key.unwrap_or("corpus/dataset")
                ))?;
                if let Some(r) = reference(Path::new(&val)) {
                    if !recipe.prepare[..i].iter().any(|p| p.name == r) {
                        bail!("`{k} = \"@{r}\"`: no earlier prepare step `{r}`");
                    }
                    deps.push(r.to_string());
                    val = resolve_ref(&val, data_dir);
                    if key == "triplets" {
                        concat = Some(PathBuf::from(&val));
                        val = data_dir
                            .join(format!(".{}.triplets.jsonl", s.name))
                            .to_string_lossy()
                            .into_owned();
                    }
                }
                common.push(format!("--{key}"));
                common.push(val);
            }
        }
    }
    let mut invocations = Vec::new();
    if let Some(mk) = multi_key {
        if inputs.is_empty() {
            bail!("`{mk}` is required");
        }
        let mut seen = std::collections::HashSet::new();
        for inp in &inputs {
            let stem = colzero_train::recipe::dataset_name(Path::new(inp));
            let stem = stem.strip_suffix(".jsonl").unwrap_or(&stem).to_string();
            if !seen.insert(stem.clone()) {
                bail!("two `{mk}` entries share the name `{stem}`");
            }
            let mut argv = vec![s.kind.clone(), format!("--{mk}"), inp.clone()];
            argv.extend(common.iter().cloned());
            invocations.push(Invocation {
                argv,
                out: format!("{stem}.jsonl"),
            });
        }
    } else {
        let mut argv = vec![s.kind.clone()];
        argv.extend(common);
        invocations.push(Invocation {
            argv,
            out: String::new(),
        });
    }
    for inv in &invocations {
        let mut full = vec!["prepare".to_string()];
        full.extend(inv.argv.iter().cloned());
        full.push("--out".into());
        full.push("OUT".into());
        PrepareCli::try_parse_from(&full).map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    }
    let hash = fnv_hex(&format!("{}\n{:?}", s.kind, {
        let mut o: Vec<_> = s.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        o.sort();
        o
    }));
    Ok(PlannedStep {
        name: s.name.clone(),
        kind: s.kind.clone(),
        invocations,
        concat,
        hash,
        deps,
    })
}

fn concat_dir(dir: &Path, out: &Path) -> Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("jsonl"))
        .collect();
    files.sort();
    let mut text = String::new();
    for f in files {
        let t = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        text.push_str(t.trim_end_matches('\n'));
        text.push('\n');
    }
    colzero_core::fsutil::atomic_write_bytes(out, text.as_bytes())?;
    Ok(())
}

/// Runs a planned step unless its output is already there (see module docs); returns
/// whether it ran.
pub fn run(step: &PlannedStep, data_dir: &Path, rerun_changed: bool, ctx: &Ctx) -> Result<bool> {
    let target = data_dir.join(&step.name);
    let marker_path = data_dir.join(format!("{}.done.json", step.name));
    if let Some(m) = Marker::read(&marker_path) {
        if m.hash == step.hash && target.exists() {
            eprintln!(
                "prepare `{}`: done ({}), skipped",
                step.name,
                target.display()
            );
            return Ok(false);
        }
        if m.hash != step.hash && !rerun_changed {
            bail!(
                "prepare step `{}` changed since {} was made (hash {} -> {}); pass \
                 --rerun-changed to rebuild it, or use another --out",
                step.name,
                target.display(),
                m.hash,
                step.hash
            );
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let partial = data_dir.join(format!(".{}.partial", step.name));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    std::fs::create_dir_all(&partial)?;
    if let Some(dir) = &step.concat {
        concat_dir(
            dir,
            &data_dir.join(format!(".{}.triplets.jsonl", step.name)),
        )?;
    }
    eprintln!("prepare `{}` ({})", step.name, step.kind);
    for inv in &step.invocations {
        let out = if inv.out.is_empty() {
            partial.clone()
        } else {
            partial.join(&inv.out)
        };
        let mut full = vec!["prepare".to_string()];
        full.extend(inv.argv.iter().cloned());
        full.push("--out".into());
        full.push(out.to_string_lossy().into_owned());
        let cli =
            PrepareCli::try_parse_from(&full).map_err(|e| anyhow::anyhow!("{}", e.render()))?;
        crate::cmd::data::run(crate::cmd::data::Args { command: cli.cmd }, ctx).with_context(
            || {
                format!(
                    "prepare step `{}`: colzero data {}",
                    step.name,
                    inv.argv.join(" ")
                )
            },
        )?;
    }
    let _ = std::fs::remove_file(&marker_path);
    if target.exists() {
        std::fs::remove_dir_all(&target)?;
    }
    std::fs::rename(&partial, &target)
        .with_context(|| format!("renaming {} to {}", partial.display(), target.display()))?;
    Marker {
        hash: step.hash.clone(),
        status: "done".into(),
        train_seconds: 0.0,
    }
    .write(&marker_path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(prepare: &str) -> Recipe {
        let text = format!(
            "name = \"t\"\n{prepare}\n[[stage]]\nname = \"s\"\n[stage.model]\ninit = \"dense\"\n\
             path = \"m\"\n[stage.data]\npath = \"d\"\n"
        );
        Recipe::from_toml_str(&text, Path::new("/r/x.toml")).unwrap()
    }

    #[test]
    fn options_become_flags_and_arrays_fan_out() {
        let r = recipe(
            "[[prepare]]\nname = \"m\"\nkind = \"mine\"\ndataset = [\"a/sf\", \"/b/nf\"]\n\
             skip_top = 2\nallow_test_split = true\nstem = false\n\
             [[prepare]]\nname = \"t\"\nkind = \"teacher\"\ntriplets = \"@m\"\nmodel = \"mm\"\n",
        );
        let p = plan(&r, Path::new("/data")).unwrap();
        assert_eq!(p[0].invocations.len(), 2);
        assert_eq!(
            p[0].invocations[0].argv,
            [
                "mine",
                "--dataset",
                "/r/a/sf",
                "--allow-test-split",
                "--skip-top",
                "2"
            ]
        );
        assert_eq!(p[0].invocations[1].out, "nf.jsonl");
        assert_eq!(p[1].deps, ["m"]);
        assert_eq!(p[1].concat.as_deref(), Some(Path::new("/data/m")));
        assert_eq!(
            p[1].invocations[0].argv,
            [
                "teacher",
                "--model",
                "/r/mm",
                "--triplets",
                "/data/.t.triplets.jsonl"
            ]
        );
        assert!(needs(&p, Path::new("@t"), "m"));
        assert!(!needs(&p, Path::new("@m"), "t"));
        assert!(!needs(&p, Path::new("plain"), "m"));
        // the teacher's hash follows the step it reads
        let r2 = recipe(
            "[[prepare]]\nname = \"m\"\nkind = \"mine\"\ndataset = [\"a/sf\", \"/b/nf\"]\n\
             skip_top = 3\nallow_test_split = true\nstem = false\n\
             [[prepare]]\nname = \"t\"\nkind = \"teacher\"\ntriplets = \"@m\"\nmodel = \"mm\"\n",
        );
        let p2 = plan(&r2, Path::new("/data")).unwrap();
        assert_ne!(p[1].hash, p2[1].hash);
    }

    #[test]
    fn unknown_options_fail_naming_the_step() {
        let r =
            recipe("[[prepare]]\nname = \"m\"\nkind = \"mine\"\ndataset = \"a\"\nnegativs = 2\n");
        let e = format!("{:#}", plan(&r, Path::new("/data")).err().unwrap());
        assert!(
            e.contains("prepare step `m`") && e.contains("--negativs"),
            "{e}"
        );
        let r = recipe("[[prepare]]\nname = \"p\"\nkind = \"pairs\"\nseed = 1\n");
        let e = format!("{:#}", plan(&r, Path::new("/data")).err().unwrap());
        assert!(e.contains("`corpus` is required"), "{e}");
        let r = recipe(
            "[[prepare]]\nname = \"t\"\nkind = \"teacher\"\ntriplets = \"@later\"\nmodel = \"m\"\n",
        );
        let e = format!("{:#}", plan(&r, Path::new("/data")).err().unwrap());
        assert!(e.contains("no earlier prepare step `later`"), "{e}");
    }
}
