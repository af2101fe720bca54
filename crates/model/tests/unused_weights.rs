//! Checkpoint tensors the config does not use are an error naming them (issue 16: a
//! `config.json` with `num_hidden_layers` lower than the checkpoint's loaded silently and
//! dropped layers, moving every vector). Tensors real checkpoints carry without using them
//! (BERT's pooler, MLM heads, `position_ids` buffers) stay accepted.

use candle_core::{Device, Tensor};
use colzero_model::{ColBERT, DenseEncoder, EncodeOptions, InputKind, LoadOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn add_tensors(weights: &Path, extra: &[(&str, Tensor)]) {
    let mut all: HashMap<String, Tensor> = candle_core::safetensors::load(weights, &Device::Cpu)
        .unwrap()
        .into_iter()
        .collect();
    for (n, t) in extra {
        all.insert(n.to_string(), t.clone());
    }
    candle_core::safetensors::save(&all, weights).unwrap();
}

fn load_err(dir: &Path) -> String {
    ColBERT::load(dir, &LoadOptions::default())
        .expect_err("loading must fail")
        .to_string()
}

#[test]
fn bert_config_with_fewer_layers_than_the_checkpoint_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    copy_dir(&fixture("tiny-bert-colbert"), &dir);
    edit_config(&dir, |v| v["num_hidden_layers"] = 1.into());
    let msg = load_err(&dir);
    assert!(
        msg.contains("model.safetensors")
            && msg.contains("16 tensors of the checkpoint are not used")
            && msg.contains("`encoder.layer.1.attention.output.LayerNorm.bias`")
            && msg.contains("and 8 more")
            && msg.contains("num_hidden_layers"),
        "{msg}"
    );
    assert!(!msg.contains("encoder.layer.0."), "{msg}");
    // the dense (bi-encoder) loader refuses it as well
    let err = DenseEncoder::load(&dir, &LoadOptions::default())
        .expect_err("dense load must fail")
        .to_string();
    assert!(err.contains("`encoder.layer.1."), "{err}");
}

#[test]
fn bert_pooler_and_mlm_head_tensors_stay_accepted_but_unknown_ones_do_not() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    copy_dir(&fixture("tiny-bert-colbert"), &dir);
    let w = Tensor::zeros((32, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros(32, candle_core::DType::F32, &Device::Cpu).unwrap();
    add_tensors(
        &dir.join("model.safetensors"),
        &[
            ("pooler.dense.weight", w.clone()),
            ("pooler.dense.bias", b.clone()),
            ("cls.predictions.bias", b.clone()),
        ],
    );
    let texts = ["stem cells".to_string()];
    let opts = EncodeOptions::default();
    let want = ColBERT::load(&fixture("tiny-bert-colbert"), &LoadOptions::default())
        .unwrap()
        .encode(&texts, InputKind::Query, &opts)
        .unwrap();
    let got = ColBERT::load(&dir, &LoadOptions::default())
        .unwrap()
        .encode(&texts, InputKind::Query, &opts)
        .unwrap();
    assert_eq!(got[0].as_slice(), want[0].as_slice());

    add_tensors(
        &dir.join("model.safetensors"),
        &[("encoder.layer.0.attention.self.rotary.weight", w)],
    );
    let msg = load_err(&dir);
    assert!(
        msg.contains("1 tensors of the checkpoint are not used")
            && msg.contains("`encoder.layer.0.attention.self.rotary.weight`"),
        "{msg}"
    );
}

#[test]
fn modernbert_config_with_fewer_layers_than_the_checkpoint_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    copy_dir(&fixture("tiny-modernbert-colbert"), &dir);
    ColBERT::load(&dir, &LoadOptions::default()).expect("the fixture itself loads");
    edit_config(&dir, |v| {
        v["num_hidden_layers"] = 3.into();
        if let Some(t) = v.get_mut("layer_types").and_then(|t| t.as_array_mut()) {
            t.truncate(3);
        }
    });
    let msg = load_err(&dir);
    assert!(
        msg.contains("tensors of the checkpoint are not used") && msg.contains("`layers.3."),
        "{msg}"
    );
    assert!(!msg.contains("`layers.2."), "{msg}");
}

#[test]
fn a_head_tensor_the_dense_config_does_not_use_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    copy_dir(&fixture("tiny-bert-colbert"), &dir);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("1_Dense/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["bias"], false, "fixture's head has no bias");
    let out = cfg["out_features"].as_u64().unwrap() as usize;
    let b = Tensor::zeros(out, candle_core::DType::F32, &Device::Cpu).unwrap();
    add_tensors(
        &dir.join("1_Dense/model.safetensors"),
        &[("linear.bias", b)],
    );
    let msg = load_err(&dir);
    assert!(msg.contains("`_head.0.linear.bias`"), "{msg}");
}
