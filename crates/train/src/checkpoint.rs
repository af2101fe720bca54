//! Resumable training checkpoints.
//!
//! Contract: `OUT/checkpoints/step-NNNNNNNN/` holds `model/` (a PyLate-layout checkpoint
//! written by `ColBERT::save`), `optimizer.safetensors` (AdamW state), `extra.safetensors`
//! (non-model parameters such as a learnable temperature) and `state.json`
//! ([`TrainState`]: step, data position, dropout RNG state, loss history). The directory
//! is built in a temp folder and renamed into place ([`colzero_core::fsutil::atomic_dir`]),
//! so a crash never leaves a half-written checkpoint; `state.json` is written last and a
//! directory without it is ignored by [`latest`]. Only the newest `keep` are kept; older
//! ones are renamed to a temp name before they are deleted, so a kill while pruning never
//! leaves a half-deleted `step-*` folder.

use crate::config::TrainState;
use crate::optim::{AdamW, Params, TensorView};
use crate::{Result, TrainError};
use colzero_core::fsutil;
use colzero_model::ColBERT;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// The checkpoints folder of a run.
pub fn dir_of(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

fn step_dir(out: &Path, step: usize) -> PathBuf {
    dir_of(out).join(format!("step-{step:08}"))
}

/// Captures a ChaCha RNG as (seed, word position, stream) for `state.json`.
pub fn rng_parts(rng: &ChaCha8Rng) -> ([u8; 32], String) {
    (
        rng.get_seed(),
        format!("{}:{}", rng.get_word_pos(), rng.get_stream()),
    )
}

/// Rebuilds the RNG saved by [`rng_parts`].
pub fn rng_from_parts(seed: [u8; 32], pos: &str, path: &Path) -> Result<ChaCha8Rng> {
    let bad = || TrainError::Resume {
        path: path.to_path_buf(),
        reason: format!("bad rng position `{pos}`"),
    };
    let (w, s) = pos.split_once(':').ok_or_else(bad)?;
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(s.parse().map_err(|_| bad())?);
    rng.set_word_pos(w.parse().map_err(|_| bad())?);
    Ok(rng)
}

/// Writes a checkpoint atomically and prunes older ones beyond `keep` (0 = keep all).
pub fn save(
    out: &Path,
    model: &ColBERT,
    params: &Params,
    extra: &Params,
    opt: &AdamW,
    state: &TrainState,
    keep: usize,
) -> Result<PathBuf> {
    let dir = step_dir(out, state.step);
    for (name, var) in params.iter() {
        let v: Vec<f32> = var
            .as_tensor()
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(TrainError::NonFinite {
                step: state.step,
                value: f32::NAN,
            })
            .map_err(|e| {
                TrainError::Invalid(format!(
                    "{e} (parameter `{name}` is not finite; checkpoint not written)"
                ))
            });
        }
    }
    colzero_core::fsutil::atomic_dir::<_, TrainError>(&dir, |tmp| {
        model.save(&tmp.join("model"))?;
        opt.save(params, &tmp.join("optimizer.safetensors"))?;
        let tensors: Vec<(String, TensorView)> = extra
            .iter()
            .map(|(n, v)| (n.to_string(), TensorView(v.as_tensor())))
            .collect();
        let bytes = safetensors::serialize(tensors, None)
            .map_err(|e| TrainError::Invalid(format!("extra.safetensors: {e}")))?;
        colzero_core::fsutil::atomic_write_bytes(&tmp.join("extra.safetensors"), &bytes)?;
        let json =
            serde_json::to_vec_pretty(state).map_err(|e| TrainError::Invalid(e.to_string()))?;
        colzero_core::fsutil::atomic_write_bytes(&tmp.join("state.json"), &json)?;
        Ok(())
    })?;
    if keep > 0 {
        let mut all = list(out)?;
        while all.len() > keep {
            let (step, old) = all.remove(0);
            // Renamed out of the `step-*` namespace first: a kill while deleting must not
            // leave a half-deleted folder that still looks like a checkpoint.
            let trash = dir_of(out).join(format!(
                "{}prune-{step}{}",
                fsutil::litter::temp_prefix(),
                fsutil::litter::TEMP_SUFFIX
            ));
            if std::fs::rename(&old, &trash).is_ok() {
                let _ = std::fs::remove_dir_all(trash);
            }
        }
    }
    Ok(dir)
}

/// Complete checkpoints `(step, dir)` in step order.
pub fn list(out: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let d = dir_of(out);
    if !d.is_dir() {
        return Ok(Vec::new());
    }
    let mut v: Vec<(usize, PathBuf)> = std::fs::read_dir(&d)
        .map_err(|e| colzero_core::CoreError::io(&d, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("state.json").is_file())
        .filter_map(|p| {
            let n = p
                .file_name()?
                .to_str()?
                .strip_prefix("step-")?
                .parse()
                .ok()?;
            Some((n, p))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// The newest complete checkpoint, if any.
pub fn latest(out: &Path) -> Result<Option<PathBuf>> {
    Ok(list(out)?.pop().map(|(_, p)| p))
}

/// Reads `state.json` of a checkpoint.
pub fn read_state(dir: &Path) -> Result<TrainState> {
    let p = dir.join("state.json");
    let text = std::fs::read_to_string(&p).map_err(|e| colzero_core::CoreError::io(&p, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Resume {
        path: p,
        reason: e.to_string(),
    })
}

/// Restores non-model parameters saved in `extra.safetensors`.
pub fn load_extra(dir: &Path, extra: &Params) -> Result<()> {
    if extra.is_empty() {
        return Ok(());
    }
    let p = dir.join("extra.safetensors");
    let t = candle_core::safetensors::load(&p, &candle_core::Device::Cpu).map_err(|e| {
        TrainError::Resume {
            path: p.clone(),
            reason: e.to_string(),
        }
    })?;
    for (name, var) in extra.iter() {
        let x = t.get(name).ok_or_else(|| TrainError::Resume {
            path: p.clone(),
            reason: format!("tensor `{name}` missing"),
        })?;
        var.set(&x.to_device(var.as_tensor().device())?)?;
    }
    Ok(())
}
