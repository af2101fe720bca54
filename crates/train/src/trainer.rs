//! The training loop of one stage: `run_stage(cfg, out, resume)`.
//!
//! Contract: the output folder is opened through [`crate::run::open`] first (exclusive
//! lock for the whole run, a fresh folder unless resuming or overwriting, the
//! configuration checked against the run's on resume). Writes under `out/`: `config.toml` (the resolved config), `metrics.jsonl`
//! (one line per optimiser step and per evaluation), `checkpoints/step-N/` every
//! `train.checkpoint_every` steps (see [`crate::checkpoint`]), `final/` (PyLate layout,
//! `ColBERT::save`), `plot.png` (loss and LR, drawn by `colzero_eval::plot`) and `summary.json`.
//! Each optimiser step: `grad_accum` micro-batches (one data source each), gradients
//! averaged (HF semantics), non-finite loss/gradient check (`on_nonfinite = "stop"`
//! returns [`TrainError::NonFinite`] before anything is written for that step; `"skip"`
//! drops the update and logs it), global-norm clipping, AdamW at the scheduled LR.
//! With `resume`, the newest complete checkpoint restores weights, optimiser state, data
//! position, dropout RNG and loss history: the continued run produces the same losses and
//! bitwise-identical final weights as an uninterrupted one (on CPU). Evaluation (nDCG@10,
//! exact MaxSim) runs at start (optional), every `eval.every` steps and at the end.

use crate::cached::CachedOptions;
use crate::checkpoint;
use crate::config::{StageConfig, TrainState};
use crate::data::{KdDataset, PairDataset, Sampler};
use crate::evalhook::EvalSet;
use crate::loss::{Contrastive, Distillation, Temperature};
use crate::metrics::{self, EvalRecord, StepRecord, Summary};
use crate::optim::{AdamW, Grads, Params};
use crate::run::RunOptions;
use crate::schedule::Schedule;
use crate::step::{micro_step, Batch, StageLoss};
use crate::{Result, TrainError};
use colzero_model::{ColBERT, ForwardCtx, LoadOptions};
use std::path::Path;
use std::time::Instant;

enum Data {
    Pairs(PairDataset),
    Kd(KdDataset),
}

impl Data {
    fn sizes(&self) -> Vec<usize> {
        match self {
            Data::Pairs(d) => d.sizes(),
            Data::Kd(d) => d.sizes(),
        }
    }
    fn batch(&self, source: usize, rows: &[usize]) -> Result<Batch> {
        Ok(match self {
            Data::Pairs(d) => Batch::Pairs(
                rows.iter()
                    .map(|&r| d.example(source, r))
                    .collect::<Result<_>>()?,
            ),
            Data::Kd(d) => Batch::Kd(rows.iter().map(|&r| d.example(r)).collect::<Result<_>>()?),
        })
    }
}

fn load_options(cfg: &StageConfig) -> LoadOptions {
    let m = &cfg.model;
    LoadOptions {
        trainable: true,
        query_length: (m.query_length > 0).then_some(m.query_length),
        document_length: (m.document_length > 0).then_some(m.document_length),
        query_prompt: m.query_prompt.clone(),
        document_prompt: m.document_prompt.clone(),
        do_query_expansion: m.do_query_expansion,
        ..LoadOptions::default()
    }
}

fn build_loss(cfg: &StageConfig, temp: &Temperature) -> StageLoss {
    let l = &cfg.loss;
    let c = Contrastive {
        temperature: temp.clone(),
        size_average: true,
        mask_mode: l.mask_mode,
    };
    match l.kind.as_str() {
        "cached_contrastive" => StageLoss::Cached(
            c,
            CachedOptions {
                mini_batch_size: l.mini_batch_size,
                score_mini_batch_size: if l.score_mini_batch_size == 0 {
                    l.mini_batch_size
                } else {
                    l.score_mini_batch_size
                },
                pylate_grad_scale: l.pylate_grad_scale,
            },
        ),
        "distillation" => StageLoss::Distillation(Distillation {
            normalize_scores: l.normalize_scores,
            size_average: true,
            mask_mode: l.mask_mode,
        }),
        _ => StageLoss::Contrastive(c),
    }
}

fn progress(total: usize, start: usize, show: bool) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total as u64);
    if let Ok(s) = indicatif::ProgressStyle::with_template(
        "{spinner} train [{bar:30}] {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
    ) {
        pb.set_style(s.progress_chars("=> "));
    }
    pb.set_position(start as u64);
    pb
}

/// Runs one training stage (see module docs): [`run_stage_with`] with only `resume` set.
pub fn run_stage(cfg: &StageConfig, out: &Path, resume: bool) -> Result<Summary> {
    run_stage_with(
        cfg,
        out,
        &RunOptions {
            resume,
            ..RunOptions::default()
        },
    )
}

/// Runs one training stage into `out` as `run` says (see [`crate::run`]: lock, fresh
/// folder or `--overwrite`, configuration check on resume).
pub fn run_stage_with(cfg: &StageConfig, out: &Path, run: &RunOptions) -> Result<Summary> {
    let t0 = Instant::now();
    let guard = crate::run::open(cfg, out, run)?;
    let resume = run.resume;
    let opts = load_options(cfg);
    let ckpt = if resume {
        checkpoint::latest(out)?
    } else {
        None
    };
    if resume && ckpt.is_none() && guard.had_run {
        tracing::warn!(
            "--resume: no checkpoint under {}, starting fresh",
            out.display()
        );
    }
    let model = match &ckpt {
        Some(dir) => ColBERT::load(&dir.join("model"), &opts)?,
        None if cfg.model.init == "dense" => ColBERT::from_dense(
            &cfg.model.path,
            cfg.model.embedding_dim,
            cfg.train.seed,
            &opts,
        )?,
        None => ColBERT::load(&cfg.model.path, &opts)?,
    };
    let vm = model
        .var_map()
        .ok_or_else(|| TrainError::Invalid("model was not loaded as trainable".into()))?;
    let mut params = Params::from_var_map(vm)?;
    let temp = if cfg.loss.learnable_temperature {
        Temperature::learnable(cfg.loss.temperature, model.device())?
    } else {
        Temperature::Fixed(cfg.loss.temperature)
    };
    let mut extra = Params::new(Vec::new())?;
    if let Temperature::Learnable(v) = &temp {
        params.push(Temperature::PARAM_NAME, v.clone())?;
        extra.push(Temperature::PARAM_NAME, v.clone())?;
    }
    let loss = build_loss(cfg, &temp);

    let data = if cfg.loss.kind == "distillation" {
        Data::Kd(KdDataset::open(&cfg.data.path, cfg.data.n_ways)?)
    } else {
        Data::Pairs(PairDataset::open(&cfg.data.path, cfg.data.negatives)?)
    };
    let mut sampler = match &data {
        Data::Pairs(d) if cfg.train.no_duplicates => {
            Sampler::no_duplicates(d.text_keys()?, cfg.train.batch_size, cfg.train.seed)?
        }
        _ => Sampler::new(data.sizes(), cfg.train.batch_size, cfg.train.seed)?,
    };
    let per_epoch = (sampler.batches_per_epoch() / cfg.train.grad_accum).max(1);
    let total = if cfg.train.steps > 0 {
        cfg.train.steps
    } else {
        (cfg.train.epochs * per_epoch as f64).ceil() as usize
    };
    let warmup = if cfg.optim.warmup_steps > 0 {
        cfg.optim.warmup_steps
    } else {
        Schedule::warmup_from_ratio(cfg.optim.warmup_ratio, total)
    };
    let sched = Schedule {
        kind: cfg.optim.schedule,
        warmup,
        total,
    };

    let metrics_path = out.join("metrics.jsonl");
    let (mut opt, mut ctx, mut step, mut losses, mut skipped) = match &ckpt {
        Some(dir) => {
            let st = checkpoint::read_state(dir)?;
            checkpoint::load_extra(dir, &extra)?;
            let opt = AdamW::load(
                &params,
                cfg.optim.adamw.clone(),
                &dir.join("optimizer.safetensors"),
            )?;
            sampler.seek(st.data);
            let rng = checkpoint::rng_from_parts(st.rng_seed, &st.rng_word_pos, dir)?;
            metrics::truncate_log(&metrics_path, st.step)?;
            (
                opt,
                ForwardCtx::from_rng(cfg.train.dropout, rng)
                    .with_dropout_rate(cfg.train.dropout_rate.map(|r| r as f32)),
                st.step,
                st.losses,
                st.skipped,
            )
        }
        None => {
            if metrics_path.exists() {
                std::fs::remove_file(&metrics_path)
                    .map_err(|e| colzero_core::CoreError::io(&metrics_path, e))?;
            }
            let mut ctx = ForwardCtx::train(cfg.train.seed)
                .with_dropout_rate(cfg.train.dropout_rate.map(|r| r as f32));
            ctx.train = cfg.train.dropout;
            (
                AdamW::new(&params, cfg.optim.adamw.clone()),
                ctx,
                0,
                Vec::new(),
                0,
            )
        }
    };
    let resumed_from = step;
    colzero_core::fsutil::atomic_write_bytes(&out.join("config.toml"), cfg.to_toml().as_bytes())?;

    let eval = if cfg.eval.beir_dir.as_os_str().is_empty() {
        None
    } else {
        Some(EvalSet::load(
            &cfg.eval.beir_dir,
            &cfg.eval.split,
            cfg.eval.max_queries,
            cfg.eval.batch_size,
        )?)
    };
    let mut evals: Vec<(usize, f64)> = Vec::new();
    let run_eval = |step: usize, evals: &mut Vec<(usize, f64)>| -> Result<()> {
        if let Some(es) = &eval {
            let t = Instant::now();
            let ndcg = es.ndcg10(&model)?;
            metrics::append(
                &metrics_path,
                &EvalRecord {
                    kind: "eval".into(),
                    step,
                    ndcg_at_10: ndcg,
                    queries: es.max_queries,
                    seconds: t.elapsed().as_secs_f64(),
                },
            )?;
            tracing::info!("step {step}: nDCG@10 = {ndcg:.4}");
            evals.push((step, ndcg));
        }
        Ok(())
    };
    if cfg.eval.at_start && step == 0 {
        run_eval(0, &mut evals)?;
    }

    let pb = progress(total, step, cfg.train.progress);
    let samples_per_step = cfg.train.batch_size * cfg.train.grad_accum;
    let mut samples_done = 0usize;
    let stop_at = if cfg.train.stop_after_steps > 0 {
        cfg.train.stop_after_steps.min(total)
    } else {
        total
    };
    while step < stop_at {
        let ts = Instant::now();
        let mut grads = Grads::empty(&params);
        let mut loss_sum = 0f64;
        for _ in 0..cfg.train.grad_accum {
            let (src, rows) = sampler.next_batch();
            let batch = data.batch(src, &rows)?;
            let (l, g) = micro_step(&model, &loss, &batch, &params, &mut ctx)?;
            loss_sum += l as f64;
            grads.accumulate(&g)?;
        }
        let loss_value = (loss_sum / cfg.train.grad_accum as f64) as f32;
        if cfg.train.grad_accum > 1 {
            grads.scale(1.0 / cfg.train.grad_accum as f64)?;
        }
        let lr = cfg.optim.lr * sched.multiplier(step);
        let finite = loss_value.is_finite() && grads.all_finite()?;
        let mut grad_norm = f64::NAN;
        if !finite {
            if cfg.train.on_nonfinite == "stop" {
                pb.abandon();
                return Err(TrainError::NonFinite {
                    step: step + 1,
                    value: loss_value,
                });
            }
            tracing::warn!(
                "step {}: non-finite loss {loss_value}, update skipped",
                step + 1
            );
            skipped += 1;
        } else {
            grad_norm = if cfg.optim.max_grad_norm > 0.0 {
                grads.clip_global_norm(cfg.optim.max_grad_norm)?
            } else {
                grads.global_norm()?
            };
            opt.step(&params, &grads, lr)?;
        }
        step += 1;
        losses.push(if finite { loss_value } else { f32::NAN });
        samples_done += samples_per_step;
        let sps = samples_per_step as f64 / ts.elapsed().as_secs_f64().max(1e-9);
        let pos = sampler.position();
        metrics::append(
            &metrics_path,
            &StepRecord {
                kind: "step".into(),
                step,
                loss: loss_value,
                lr,
                grad_norm,
                samples_per_sec: sps,
                epoch: pos.epoch as f64 + pos.batch as f64 / sampler.batches_per_epoch() as f64,
                skipped: !finite,
                temperature: match &temp {
                    Temperature::Learnable(_) => Some(temp.value()?),
                    Temperature::Fixed(_) => None,
                },
            },
        )?;
        pb.set_message(format!(
            "loss {loss_value:.4} lr {lr:.2e} {sps:.1} samples/s"
        ));
        pb.set_position(step as u64);

        if cfg.train.checkpoint_every > 0 && step % cfg.train.checkpoint_every == 0 && step < total
        {
            let (seed, pos) = checkpoint::rng_parts(ctx.rng());
            let state = TrainState {
                step,
                data: sampler.position(),
                rng_seed: seed,
                rng_word_pos: pos,
                losses: losses.clone(),
                skipped,
            };
            checkpoint::save(
                out,
                &model,
                &params,
                &extra,
                &opt,
                &state,
                cfg.train.keep_checkpoints,
            )?;
        }
        if cfg.eval.every > 0 && step % cfg.eval.every == 0 && step < total {
            run_eval(step, &mut evals)?;
        }
    }
    pb.finish_and_clear();
    let final_dir = out.join("final");
    if step >= total {
        model.save(&final_dir)?;
        run_eval(step, &mut evals)?;
    } else {
        tracing::info!("paused after step {step} of {total}; continue with --resume");
    }
    let steps_log = metrics::read_steps(&metrics_path).unwrap_or_default();
    let points: Vec<colzero_eval::plot::StepPoint> = steps_log
        .iter()
        .map(|r| colzero_eval::plot::StepPoint {
            step: r.step as f64,
            loss: r.loss as f64,
            lr: Some(r.lr),
        })
        .collect();
    let size = colzero_eval::plot::CURVES_SIZE;
    if let Err(e) = colzero_eval::plot::curves_png(&points, &out.join("plot.png"), size) {
        tracing::warn!("plot not written: {e}");
    }
    let wall = t0.elapsed().as_secs_f64();
    let summary = Summary {
        steps: step,
        skipped_steps: skipped,
        first_loss: losses.first().copied(),
        last_loss: losses.last().copied(),
        losses,
        evals,
        wall_seconds: wall,
        samples_per_sec: samples_done as f64 / wall.max(1e-9),
        final_checkpoint: final_dir,
        resumed_from,
    };
    let json =
        serde_json::to_vec_pretty(&summary).map_err(|e| TrainError::Invalid(e.to_string()))?;
    colzero_core::fsutil::atomic_write_bytes(&out.join("summary.json"), &json)?;
    drop(guard);
    Ok(summary)
}
