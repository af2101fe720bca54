//! Loss values and PARAMETER gradients through the tiny BERT ColBERT
//! (crates/model/tests/fixtures/tiny-bert-colbert) equal PyLate 1.6.0's to 1e-4 relative,
//! for Contrastive, CachedContrastive and Distillation (dropout off on both sides).
//! Fixture: tools/make_train_fixtures.py -> tests/fixtures/tiny_model_grads.safetensors.

use candle_core::{Device, Tensor};
use colzero_model::{ColBERT, ForwardCtx, LoadOptions};
use colzero_train::cached::CachedOptions;
use colzero_train::data::{Example, KdExample};
use colzero_train::optim::{Grads, Params};
use colzero_train::step::{micro_step, Batch, StageLoss};
use colzero_train::{Contrastive, Distillation};
use std::collections::HashMap;
use std::path::PathBuf;

const QUERIES: [&str; 4] = [
    "apple river stone",
    "music paper cloud",
    "green house light",
    "ocean tiger bread",
];
const POS: [&str; 4] = [
    "apple river stone music",
    "music paper cloud, green!",
    "green house light ocean",
    "ocean tiger bread metal",
];
const NEG: [&str; 4] = [
    "glass earth smile apple",
    "tiger bread metal glass",
    "river stone music paper",
    "cloud green house light",
];

fn fixture() -> HashMap<String, Tensor> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tiny_model_grads.safetensors"
    ));
    candle_core::safetensors::load(p, &Device::Cpu).expect("tiny_model_grads.safetensors")
}

fn model() -> (ColBERT, Params) {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../model/tests/fixtures/tiny-bert-colbert"
    ));
    let m = ColBERT::load(
        &dir,
        &LoadOptions {
            trainable: true,
            ..Default::default()
        },
    )
    .unwrap();
    let p = Params::from_var_map(m.var_map().unwrap()).unwrap();
    (m, p)
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|b| (*b as f64).powi(2)).sum::<f64>().sqrt()
}

/// ‖got − want‖ / ‖want‖, or, for gradients that are zero in exact arithmetic (the
/// attention key bias: softmax is shift-invariant, so both sides hold only rounding
/// noise), ‖got − want‖ relative to the largest gradient norm of the model.
fn rel(got: &[f32], want: &[f32], scale: f64) -> f64 {
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let den = norm(want);
    if den < 1e-6 * scale {
        num / scale
    } else {
        num / den
    }
}

/// Compares every stored torch gradient with ours; returns the worst relative error.
fn check(
    case: &str,
    loss: f32,
    grads: &Grads,
    params: &Params,
    f: &HashMap<String, Tensor>,
) -> f64 {
    let want_loss = f[&format!("{case}_loss")].to_vec1::<f32>().unwrap()[0];
    let lrel = ((loss - want_loss) / want_loss).abs() as f64;
    println!("{case}: loss {loss:.7} vs torch {want_loss:.7} (relative {lrel:.2e})");
    assert!(lrel <= 1e-4);
    let ours: HashMap<&str, &Tensor> = params
        .names()
        .iter()
        .zip(&grads.0)
        .filter_map(|(n, g)| g.as_ref().map(|g| (n.as_str(), g)))
        .collect();
    let scale = f
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{case}.")) && !k.ends_with("row_ids"))
        .map(|(_, t)| norm(&t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .fold(0f64, f64::max);
    let mut worst = 0f64;
    let mut n = 0;
    for (key, want) in f.iter().filter(|(k, _)| k.starts_with(&format!("{case}."))) {
        let tname = &key[case.len() + 1..];
        if tname.ends_with(".row_ids") {
            continue;
        }
        let (rname, rows) = match tname.strip_suffix(".rows") {
            Some(base) => (base, true),
            None => (tname, false),
        };
        let rust_name = match rname {
            "1.linear.weight" => "_head.0.linear.weight".to_string(),
            other => other.strip_prefix("0.").unwrap().to_string(),
        };
        let g = ours
            .get(rust_name.as_str())
            .unwrap_or_else(|| panic!("no gradient for {rust_name}"));
        let g = if rows {
            let ids = f[&format!("{case}.{rname}.row_ids")]
                .to_dtype(candle_core::DType::U32)
                .unwrap();
            g.index_select(&ids, 0).unwrap()
        } else {
            (*g).clone()
        };
        let r = rel(
            &g.flatten_all().unwrap().to_vec1().unwrap(),
            &want.flatten_all().unwrap().to_vec1().unwrap(),
            scale,
        );
        assert!(r <= 1e-4, "{case} {rust_name}: relative error {r:.3e}");
        worst = worst.max(r);
        n += 1;
    }
    assert!(n >= 30, "{case}: only {n} gradients compared");
    println!("{case}: {n} parameter gradients, worst relative error {worst:.2e}");
    worst
}

fn pairs() -> Batch {
    Batch::Pairs(
        (0..4)
            .map(|i| Example {
                query: QUERIES[i].into(),
                positive: POS[i].into(),
                negatives: vec![NEG[i].into()],
            })
            .collect(),
    )
}

#[test]
fn contrastive_parameter_gradients_match_pylate() {
    let f = fixture();
    let (m, p) = model();
    let loss = StageLoss::Contrastive(Contrastive::new(0.05));
    let (l, g) = micro_step(&m, &loss, &pairs(), &p, &mut ForwardCtx::eval()).unwrap();
    check("tc", l, &g, &p, &f);
}

#[test]
fn cached_contrastive_parameter_gradients_match_contrastive() {
    let f = fixture();
    let (m, p) = model();
    let loss = StageLoss::Cached(Contrastive::new(0.05), CachedOptions::new(2));
    let (l, g) = micro_step(&m, &loss, &pairs(), &p, &mut ForwardCtx::eval()).unwrap();
    // ours equals Contrastive ("tc"); PyLate's cached run ("tcc") is 4x (= batch size)
    check("tc", l, &g, &p, &f);
    let mut scaled = g.clone();
    scaled.scale(4.0).unwrap();
    check("tcc", l, &scaled, &p, &f);
}

#[test]
fn distillation_parameter_gradients_match_pylate() {
    let f = fixture();
    let (m, p) = model();
    let docs = [
        [
            "apple river",
            "stone music paper",
            "cloud green",
            "house light ocean tiger",
        ],
        [
            "music paper",
            "cloud",
            "green house light",
            "ocean tiger bread metal glass",
        ],
    ];
    let scores = [[3.0f32, 1.0, -2.0, 0.5], [0.0, 4.0, 1.0, 2.0]];
    let batch = Batch::Kd(
        (0..2)
            .map(|i| KdExample {
                query: ["apple river stone", "music paper cloud"][i].into(),
                documents: docs[i].iter().map(|s| s.to_string()).collect(),
                scores: scores[i].to_vec(),
            })
            .collect(),
    );
    let loss = StageLoss::Distillation(Distillation::default());
    let (l, g) = micro_step(&m, &loss, &batch, &p, &mut ForwardCtx::eval()).unwrap();
    check("tkd", l, &g, &p, &f);
}
