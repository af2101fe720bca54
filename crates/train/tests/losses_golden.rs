//! Loss values and gradients w.r.t. the raw token embeddings equal PyLate 1.6.0's (PyTorch)
//! to 1e-4 relative. Fixtures: tools/make_train_fixtures.py -> tests/fixtures/losses.safetensors.

use candle_core::{Device, Tensor, Var};
use colzero_train::cached::{cached_contrastive, CachedOptions};
use colzero_train::loss::{l2_normalize, stack_columns};
use colzero_train::{Contrastive, Distillation, MaskMode};
use std::collections::HashMap;

fn fixtures() -> HashMap<String, Tensor> {
    let p = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/losses.safetensors"
    ));
    candle_core::safetensors::load(&p, &Device::Cpu).expect("fixture losses.safetensors")
}

fn scalar(t: &Tensor) -> f64 {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0] as f64
}

/// Relative error ‖a−b‖/‖b‖ (asserted ≤ 1e-4), printed for the report.
fn assert_close(name: &str, got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.dims(), want.dims(), "{name}: shape");
    let g: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
    let w: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
    let num: f64 = g
        .iter()
        .zip(&w)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = w.iter().map(|b| (*b as f64).powi(2)).sum::<f64>().sqrt();
    let rel = num / den.max(1e-30);
    println!("{name}: relative error {rel:.2e}");
    assert!(rel <= 1e-4, "{name}: relative error {rel:.3e} > 1e-4");
    rel
}

fn assert_loss(name: &str, got: f64, want: f64) {
    let rel = (got - want).abs() / want.abs().max(1e-12);
    println!("{name}: loss {got:.7} vs torch {want:.7} (relative {rel:.2e})");
    assert!(rel <= 1e-4, "{name}: {got} vs {want}");
}

struct Contrastive4 {
    vars: Vec<Var>,
    masks: Vec<Tensor>,
}

fn contrastive_inputs(f: &HashMap<String, Tensor>) -> Contrastive4 {
    let names = ["q", "d0", "d1", "d2"];
    let vars = names
        .iter()
        .map(|n| Var::from_tensor(&f[&format!("c_{n}_emb")]).unwrap())
        .collect();
    let masks = names
        .iter()
        .map(|n| f[&format!("c_{n}_mask")].clone())
        .collect();
    Contrastive4 { vars, masks }
}

fn run_contrastive(case: &str, loss: &Contrastive, use_q_mask: bool) {
    let f = fixtures();
    let inp = contrastive_inputs(&f);
    let embs: Vec<Tensor> = inp
        .vars
        .iter()
        .map(|v| l2_normalize(v.as_tensor()).unwrap())
        .collect();
    let docs = stack_columns(&embs[1..]).unwrap();
    let dmask = stack_columns(&inp.masks[1..]).unwrap();
    let qm = use_q_mask.then(|| inp.masks[0].clone());
    let l = loss
        .loss(&embs[0], qm.as_ref(), &docs, Some(&dmask))
        .unwrap();
    assert_loss(case, scalar(&l), scalar(&f[&format!("{case}_loss")]));
    let g = l.backward().unwrap();
    for (i, v) in inp.vars.iter().enumerate() {
        let got = g.get(v.as_tensor()).unwrap();
        assert_close(
            &format!("{case} grad{i}"),
            got,
            &f[&format!("{case}_grad{i}")],
        );
    }
}

#[test]
fn contrastive_with_query_expansion_matches_pylate() {
    run_contrastive("c_exp", &Contrastive::new(0.05), false);
}

#[test]
fn contrastive_with_query_mask_matches_pylate() {
    run_contrastive("c_noexp", &Contrastive::new(1.0), true);
}

#[test]
fn contrastive_neg_inf_masking_matches_torch() {
    let mut c = Contrastive::new(0.05);
    c.mask_mode = MaskMode::NegInf;
    run_contrastive("c_inf", &c, false);
}

#[test]
fn distillation_matches_pylate() {
    let f = fixtures();
    let q = Var::from_tensor(&f["kd_q_emb"]).unwrap();
    let d = Var::from_tensor(&f["kd_d_emb"]).unwrap();
    let (bn, t, h) = d.as_tensor().dims3().unwrap();
    let b = q.as_tensor().dim(0).unwrap();
    let qe = l2_normalize(q.as_tensor()).unwrap();
    let de = l2_normalize(d.as_tensor())
        .unwrap()
        .reshape((b, bn / b, t, h))
        .unwrap();
    let dm = f["kd_d_mask"].reshape((b, bn / b, t)).unwrap();
    let l = Distillation::default()
        .loss(&qe, Some(&f["kd_q_mask"]), &de, Some(&dm), &f["kd_teacher"])
        .unwrap();
    assert_loss("kd", scalar(&l), scalar(&f["kd_loss"]));
    let g = l.backward().unwrap();
    assert_close("kd grad q", g.get(q.as_tensor()).unwrap(), &f["kd_grad_q"]);
    assert_close("kd grad d", g.get(d.as_tensor()).unwrap(), &f["kd_grad_d"]);
}

/// GradCache on an "identity encoder" (the raw embeddings are the parameters): the loss
/// and the parameter gradients equal PyLate's CachedContrastive and plain Contrastive.
#[test]
fn cached_contrastive_matches_pylate_and_contrastive() {
    let f = fixtures();
    let inp = contrastive_inputs(&f);
    let params: Vec<Var> = inp.vars.clone();
    let encode =
        |col: usize, rows: std::ops::Range<usize>, _ctx: &mut colzero_model::ForwardCtx| {
            let x = inp.vars[col]
                .as_tensor()
                .narrow(0, rows.start, rows.len())?;
            l2_normalize(&x)
        };
    let masks: Vec<Tensor> = inp.masks.clone();
    for (mini, score_mini) in [(2usize, 2usize), (3, 1), (4, 4)] {
        for pylate_scale in [false, true] {
            let opts = CachedOptions {
                mini_batch_size: mini,
                score_mini_batch_size: score_mini,
                pylate_grad_scale: pylate_scale,
            };
            let mut ctx = colzero_model::ForwardCtx::eval();
            let out = cached_contrastive(
                &Contrastive::new(0.05),
                &opts,
                4,
                4,
                &encode,
                &masks,
                false,
                &params,
                &mut ctx,
            )
            .unwrap();
            assert_loss(
                &format!("cc mini {mini}/{score_mini}"),
                out.loss as f64,
                scalar(&f["cc_exp_loss"]),
            );
            assert_loss(
                "cc vs contrastive",
                out.loss as f64,
                scalar(&f["c_exp_loss"]),
            );
            for (i, v) in params.iter().enumerate() {
                let got = out.grads.get(v.as_tensor()).unwrap();
                if pylate_scale {
                    // PyLate 1.6.0's CachedContrastive: B (= 4) x Contrastive's gradients.
                    assert_close(
                        &format!("cc grad{i} vs pylate cached"),
                        got,
                        &f[&format!("cc_exp_grad{i}")],
                    );
                } else {
                    assert_close(
                        &format!("cc grad{i} vs pylate contrastive"),
                        got,
                        &f[&format!("c_exp_grad{i}")],
                    );
                }
            }
        }
    }
    // The fixture itself documents the PyLate factor: cached grads = 4 x contrastive grads.
    let ratio = (f["cc_exp_grad1"]
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        / f["c_exp_grad1"]
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap())
    .sqrt();
    assert!((ratio - 4.0).abs() < 1e-4, "{ratio}");
    let _ = Device::Cpu;
}
