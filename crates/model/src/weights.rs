//! Named weight storage shared by every model part, frozen or trainable.
//!
//! Contract: a [`WeightStore`] owns the f32 tensors of a checkpoint under canonical names
//! (backbone names without `bert.`/`model.` prefixes, head tensors under `_head.{i}.`).
//! [`WeightStore::var_builder`] hands a `candle_nn::VarBuilder` to model constructors;
//! every tensor it serves is shape-checked (errors name the tensor, expected and actual
//! shapes). In trainable mode each tensor a model asks for becomes a `candle_core::Var`
//! registered in the store's `VarMap` on first request (so only the weights the forward
//! pass uses are trainable), and [`WeightStore::current`] returns live (possibly trained)
//! values for saving. Non-float buffers (e.g. the int64 `position_ids`) are dropped on load.
//! The store records which tensors a model asked for; [`WeightStore::unused`] lists the
//! others, so a checkpoint holding weights its config does not use (a config with fewer
//! layers than the checkpoint) is refused instead of silently truncated.

use crate::{ModelError, Result};
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Checkpoint tensors plus (in trainable mode) the `VarMap` of the ones in use.
pub struct WeightStore {
    tensors: BTreeMap<String, Tensor>,
    varmap: Option<VarMap>,
    source: PathBuf,
    requested: std::sync::Mutex<BTreeSet<String>>,
}

impl std::fmt::Debug for WeightStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightStore")
            .field("tensors", &self.tensors.len())
            .field("trainable", &self.varmap.is_some())
            .field("source", &self.source)
            .finish()
    }
}

impl WeightStore {
    /// Wraps tensors (converted to f32) read from `source`.
    pub fn new(tensors: BTreeMap<String, Tensor>, trainable: bool, source: PathBuf) -> Self {
        Self {
            tensors,
            varmap: trainable.then(VarMap::new),
            source,
            requested: Default::default(),
        }
    }

    /// The `VarMap` in trainable mode.
    pub fn var_map(&self) -> Option<&VarMap> {
        self.varmap.as_ref()
    }

    /// The file the tensors came from (for error messages).
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Names of all stored tensors.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }

    /// Names of the stored tensors that no model part has asked for so far, sorted.
    pub fn unused(&self) -> Vec<String> {
        let requested = self.requested.lock().unwrap_or_else(|e| e.into_inner());
        self.tensors
            .keys()
            .filter(|n| !requested.contains(*n))
            .cloned()
            .collect()
    }

    /// Current value of a tensor: the live `Var` in trainable mode when it is in use,
    /// else the loaded value.
    pub fn current(&self, name: &str) -> Option<Tensor> {
        if let Some(vm) = &self.varmap {
            if let Some(v) = vm.data().lock().ok()?.get(name) {
                return Some(v.as_tensor().clone());
            }
        }
        self.tensors.get(name).cloned()
    }

    /// A VarBuilder over this store (f32, on `device`).
    pub fn var_builder(self: &Arc<Self>, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(
            Box::new(StoreBackend(self.clone())),
            DType::F32,
            device.clone(),
        )
    }

    fn fetch(
        &self,
        name: &str,
        shape: Option<&Shape>,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Ok(mut r) = self.requested.lock() {
            if !r.contains(name) {
                r.insert(name.to_string());
            }
        }
        let t = self.tensors.get(name).ok_or_else(|| {
            candle_core::Error::Msg(
                ModelError::MissingTensor {
                    name: name.to_string(),
                    path: self.source.clone(),
                }
                .to_string(),
            )
        })?;
        if let Some(s) = shape {
            if t.dims() != s.dims() {
                return Err(candle_core::Error::Msg(
                    ModelError::TensorShape {
                        name: name.to_string(),
                        expected: s.dims().to_vec(),
                        actual: t.dims().to_vec(),
                    }
                    .to_string(),
                ));
            }
        }
        match &self.varmap {
            None => t.to_device(dev),
            Some(vm) => {
                let mut data = vm
                    .data()
                    .lock()
                    .map_err(|_| candle_core::Error::Msg("poisoned VarMap lock".into()))?;
                if let Some(v) = data.get(name) {
                    return Ok(v.as_tensor().clone());
                }
                let v = Var::from_tensor(&t.to_device(dev)?)?;
                let out = v.as_tensor().clone();
                data.insert(name.to_string(), v);
                Ok(out)
            }
        }
    }
}

struct StoreBackend(Arc<WeightStore>);

impl SimpleBackend for StoreBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        _dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.fetch(name, Some(&s), dev)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.fetch(name, None, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.tensors.contains_key(name)
    }
}

/// Fetches `name` from `vb` with an explicit shape check that yields
/// [`ModelError::MissingTensor`] / [`ModelError::TensorShape`].
pub fn get_checked(vb: &VarBuilder, dims: &[usize], name: &str, source: &Path) -> Result<Tensor> {
    let full = vb.prefix();
    let full = if full.is_empty() {
        name.to_string()
    } else {
        format!("{full}.{name}")
    };
    if !vb.contains_tensor(name) {
        return Err(ModelError::MissingTensor {
            name: full,
            path: source.to_path_buf(),
        });
    }
    let t = vb.get_unchecked(name)?;
    if t.dims() != dims {
        return Err(ModelError::TensorShape {
            name: full,
            expected: dims.to_vec(),
            actual: t.dims().to_vec(),
        });
    }
    Ok(t)
}

/// Reads every tensor of a `.safetensors` (or PyTorch `.bin`) file; float tensors are
/// converted to f32, other dtypes (int64 buffers) are skipped.
pub fn read_tensors(path: &Path, expected: &str) -> Result<BTreeMap<String, Tensor>> {
    if !path.exists() {
        return Err(ModelError::MissingFile {
            path: path.to_path_buf(),
            expected: expected.to_string(),
        });
    }
    let bad = |e: candle_core::Error| ModelError::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let raw: Vec<(String, Tensor)> = if path.extension().is_some_and(|e| e == "bin") {
        candle_core::pickle::read_all(path).map_err(bad)?
    } else {
        candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(bad)?
            .into_iter()
            .collect()
    };
    let mut out = BTreeMap::new();
    for (name, t) in raw {
        match t.dtype() {
            DType::F32 => {
                out.insert(name, t);
            }
            DType::F16 | DType::BF16 | DType::F64 => {
                out.insert(name, t.to_dtype(DType::F32)?);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The first of `candidates` that exists in `dir`, else a MissingFile error.
pub fn weights_file(dir: &Path) -> Result<PathBuf> {
    for c in ["model.safetensors", "pytorch_model.bin"] {
        let p = dir.join(c);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(ModelError::MissingFile {
        path: dir.join("model.safetensors"),
        expected: "the backbone weights (model.safetensors or pytorch_model.bin)".into(),
    })
}

/// Writes tensors to a safetensors file atomically.
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    let mut cpu: Vec<(String, Tensor)> = Vec::with_capacity(tensors.len());
    for (k, v) in tensors {
        cpu.push((
            k.clone(),
            v.to_device(&Device::Cpu)?
                .to_dtype(DType::F32)?
                .contiguous()?,
        ));
    }
    let views: Vec<(&str, &Tensor)> = cpu.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let bytes = safetensors::serialize(views, None).map_err(|e| ModelError::BadFile {
        path: path.to_path_buf(),
        reason: format!("serialising safetensors: {e}"),
    })?;
    colzero_core::fsutil::atomic_write_bytes(path, &bytes)?;
    Ok(())
}
