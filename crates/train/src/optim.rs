//! Named parameters, gradient accumulation/clipping and AdamW, matching PyTorch.
//!
//! Contract:
//! * [`Params`]: the trainable `Var`s sorted by name (a stable order for checkpoints).
//! * [`Grads`]: one optional gradient per parameter; summed across micro-batches
//!   ([`Grads::accumulate`]), scaled ([`Grads::scale`]), clipped by global L2 norm exactly
//!   like `torch.nn.utils.clip_grad_norm_` (`coef = max_norm / (norm + 1e-6)`, applied
//!   when `coef < 1`).
//! * [`AdamW`]: `torch.optim.AdamW` (single-tensor path) step for step, in f32:
//!   `p *= 1 - lr·wd`; `m = m + (1-β1)(g - m)`; `v = β2 v + (1-β2) g²`;
//!   `p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps)`. Weight decay is skipped for
//!   parameters whose name contains one of `no_decay` (HF Trainer excludes biases and
//!   LayerNorm weights). Parameters without a gradient are left untouched (state too).
//! * The optimiser state (`step`, `m`, `v`) round-trips through safetensors
//!   ([`AdamW::save`] / [`AdamW::load`]), names checked against the parameters.

use crate::{Result, TrainError};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use std::collections::HashMap;
use std::path::Path;

/// Trainable parameters in name order.
#[derive(Clone, Debug)]
pub struct Params {
    names: Vec<String>,
    vars: Vec<Var>,
}

impl Params {
    /// From `(name, var)` pairs; sorted by name, duplicates rejected.
    pub fn new(mut pairs: Vec<(String, Var)>) -> Result<Self> {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        for w in pairs.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(TrainError::Invalid(format!(
                    "duplicate parameter `{}`",
                    w[0].0
                )));
            }
        }
        let (names, vars) = pairs.into_iter().unzip();
        Ok(Self { names, vars })
    }

    /// All variables of a candle `VarMap`.
    pub fn from_var_map(vm: &candle_nn::VarMap) -> Result<Self> {
        let data = vm
            .data()
            .lock()
            .map_err(|_| TrainError::Invalid("var map lock poisoned".into()))?;
        Self::new(data.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// Adds one more parameter (e.g. a learnable temperature).
    pub fn push(&mut self, name: &str, var: Var) -> Result<()> {
        let mut pairs: Vec<(String, Var)> = self
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        pairs.push((name.to_string(), var));
        *self = Self::new(pairs)?;
        Ok(())
    }

    /// Parameter names in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Variables in order.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// `(name, var)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.names.iter().map(String::as_str).zip(self.vars.iter())
    }

    /// Number of parameters (tensors).
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// True when there is no parameter.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Total number of scalar weights.
    pub fn numel(&self) -> usize {
        self.vars.iter().map(|v| v.as_tensor().elem_count()).sum()
    }

    /// A copy of every parameter's values (for checkpoints and tests).
    pub fn snapshot(&self) -> Result<HashMap<String, Tensor>> {
        self.iter()
            .map(|(n, v)| Ok((n.to_string(), v.as_tensor().copy()?)))
            .collect()
    }
}

/// One optional gradient per parameter of a [`Params`].
#[derive(Clone, Debug)]
pub struct Grads(pub Vec<Option<Tensor>>);

impl Grads {
    /// Extracts the parameters' gradients from a `GradStore` (detached copies).
    pub fn from_store(params: &Params, store: &GradStore) -> Self {
        Grads(
            params
                .vars()
                .iter()
                .map(|v| store.get(v.as_tensor()).map(|g| g.detach()))
                .collect(),
        )
    }

    /// No gradients at all.
    pub fn empty(params: &Params) -> Self {
        Grads(vec![None; params.len()])
    }

    /// `self += other`.
    pub fn accumulate(&mut self, other: &Grads) -> Result<()> {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            if let Some(b) = b {
                *a = Some(match a.take() {
                    Some(x) => x.add(b)?,
                    None => b.clone(),
                });
            }
        }
        Ok(())
    }

    /// Multiplies every gradient by `s`.
    pub fn scale(&mut self, s: f64) -> Result<()> {
        for g in self.0.iter_mut().flatten() {
            *g = (&*g * s)?;
        }
        Ok(())
    }

    /// Global L2 norm over all gradients (accumulated in f64).
    pub fn global_norm(&self) -> Result<f64> {
        let mut total = 0f64;
        for g in self.0.iter().flatten() {
            let v: Vec<f32> = g.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            total += v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>();
        }
        Ok(total.sqrt())
    }

    /// True when every gradient value is finite.
    pub fn all_finite(&self) -> Result<bool> {
        for g in self.0.iter().flatten() {
            let v: Vec<f32> = g.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            if v.iter().any(|x| !x.is_finite()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `clip_grad_norm_(max_norm)`: returns the norm before clipping.
    pub fn clip_global_norm(&mut self, max_norm: f64) -> Result<f64> {
        let norm = self.global_norm()?;
        let coef = (max_norm / (norm + 1e-6)) as f32;
        if coef < 1.0 {
            for g in self.0.iter_mut().flatten() {
                *g = g.affine(coef as f64, 0.0)?;
            }
        }
        Ok(norm)
    }
}

/// AdamW hyper-parameters (PyTorch / HF defaults).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    /// (β1, β2).
    pub betas: (f64, f64),
    /// ε added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Name substrings excluded from weight decay.
    pub no_decay: Vec<String>,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            no_decay: vec!["bias".into(), "LayerNorm".into(), "norm".into()],
        }
    }
}

/// AdamW with per-parameter state in host memory.
#[derive(Clone, Debug)]
pub struct AdamW {
    /// Hyper-parameters.
    pub cfg: AdamWConfig,
    step: u64,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    names: Vec<String>,
}

impl AdamW {
    /// Fresh state for `params`.
    pub fn new(params: &Params, cfg: AdamWConfig) -> Self {
        let sizes: Vec<usize> = params
            .vars()
            .iter()
            .map(|v| v.as_tensor().elem_count())
            .collect();
        Self {
            cfg,
            step: 0,
            m: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            v: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            names: params.names().to_vec(),
        }
    }

    /// Number of steps taken.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    fn decays(&self, name: &str) -> bool {
        !self.cfg.no_decay.iter().any(|p| name.contains(p.as_str()))
    }

    /// One optimiser step at learning rate `lr`.
    pub fn step(&mut self, params: &Params, grads: &Grads, lr: f64) -> Result<()> {
        if params.names() != self.names.as_slice() || grads.0.len() != params.len() {
            return Err(TrainError::Invalid(
                "optimizer state does not match the parameters".into(),
            ));
        }
        self.step += 1;
        let (b1, b2) = self.cfg.betas;
        let t = self.step as i32;
        let bc1 = 1.0 - b1.powi(t);
        let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let step_size = (lr / bc1) as f32;
        let w1 = (1.0 - b1) as f32;
        let b2f = b2 as f32;
        let w2 = (1.0 - b2) as f32;
        let eps = self.cfg.eps as f32;
        let bc2s = bc2_sqrt as f32;
        for (i, (name, var)) in params.iter().enumerate() {
            let Some(g) = &grads.0[i] else { continue };
            let g: Vec<f32> = g.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            let t0 = var.as_tensor();
            let mut p: Vec<f32> = t0.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            if g.len() != p.len() {
                return Err(TrainError::shape(
                    "adamw",
                    format!(
                        "gradient of `{name}` has {} values, parameter {}",
                        g.len(),
                        p.len()
                    ),
                ));
            }
            let decay = if self.cfg.weight_decay != 0.0 && self.decays(name) {
                Some((1.0 - lr * self.cfg.weight_decay) as f32)
            } else {
                None
            };
            let m = &mut self.m[i];
            let v = &mut self.v[i];
            for j in 0..p.len() {
                if let Some(d) = decay {
                    p[j] *= d;
                }
                m[j] += w1 * (g[j] - m[j]);
                v[j] = v[j] * b2f + w2 * g[j] * g[j];
                let denom = v[j].sqrt() / bc2s + eps;
                p[j] += -step_size * (m[j] / denom);
            }
            let new = Tensor::from_vec(p, t0.shape(), t0.device())?.to_dtype(t0.dtype())?;
            var.set(&new)?;
        }
        Ok(())
    }

    /// The state as named tensors (`step`, `m.<name>`, `v.<name>`).
    pub fn state_tensors(&self, params: &Params) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        out.insert(
            "step".to_string(),
            Tensor::new(&[self.step as f64], &Device::Cpu)?,
        );
        for (i, (name, var)) in params.iter().enumerate() {
            let shape = var.as_tensor().shape().clone();
            out.insert(
                format!("m.{name}"),
                Tensor::from_slice(&self.m[i], shape.clone(), &Device::Cpu)?,
            );
            out.insert(
                format!("v.{name}"),
                Tensor::from_slice(&self.v[i], shape, &Device::Cpu)?,
            );
        }
        Ok(out)
    }

    /// Writes the state to a safetensors file (atomically).
    pub fn save(&self, params: &Params, path: &Path) -> Result<()> {
        let tensors = self.state_tensors(params)?;
        let bytes = safetensors::serialize(
            tensors
                .iter()
                .map(|(k, v)| (k.clone(), TensorView(v)))
                .collect::<Vec<_>>(),
            None,
        )
        .map_err(|e| TrainError::Invalid(format!("{}: {e}", path.display())))?;
        colzero_core::fsutil::atomic_write_bytes(path, &bytes)?;
        Ok(())
    }

    /// Reads a state written by [`AdamW::save`] for the same parameters.
    pub fn load(params: &Params, cfg: AdamWConfig, path: &Path) -> Result<Self> {
        let t =
            candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| TrainError::Resume {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let bad = |reason: String| TrainError::Resume {
            path: path.to_path_buf(),
            reason,
        };
        let mut opt = Self::new(params, cfg);
        let step = t
            .get("step")
            .ok_or_else(|| bad("no `step` tensor".into()))?;
        opt.step = step.to_vec1::<f64>()?[0] as u64;
        for (i, (name, var)) in params.iter().enumerate() {
            for (key, dst) in [
                (format!("m.{name}"), &mut opt.m[i]),
                (format!("v.{name}"), &mut opt.v[i]),
            ] {
                let x = t
                    .get(&key)
                    .ok_or_else(|| bad(format!("tensor `{key}` missing")))?;
                if x.dims() != var.as_tensor().dims() {
                    return Err(bad(format!(
                        "tensor `{key}` has shape {:?}, parameter has {:?}",
                        x.dims(),
                        var.as_tensor().dims()
                    )));
                }
                *dst = x.flatten_all()?.to_vec1()?;
            }
        }
        let expected = 1 + 2 * params.len();
        if t.len() != expected {
            return Err(bad(format!(
                "{} tensors, expected {expected} (parameters changed?)",
                t.len()
            )));
        }
        Ok(opt)
    }
}

/// Adapter so candle tensors can be serialised by the `safetensors` crate.
pub(crate) struct TensorView<'a>(pub &'a Tensor);

impl safetensors::View for TensorView<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        match self.0.dtype() {
            DType::F64 => safetensors::Dtype::F64,
            DType::U32 => safetensors::Dtype::U32,
            DType::U8 => safetensors::Dtype::U8,
            DType::I64 => safetensors::Dtype::I64,
            _ => safetensors::Dtype::F32,
        }
    }
    fn shape(&self) -> &[usize] {
        self.0.dims()
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        let t = self.0.flatten_all().expect("flatten");
        let bytes: Vec<u8> = match t.dtype() {
            DType::F64 => t
                .to_vec1::<f64>()
                .expect("f64")
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            DType::U32 => t
                .to_vec1::<u32>()
                .expect("u32")
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            DType::I64 => t
                .to_vec1::<i64>()
                .expect("i64")
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            DType::U8 => t.to_vec1::<u8>().expect("u8"),
            _ => t
                .to_dtype(DType::F32)
                .and_then(|t| t.to_vec1::<f32>())
                .expect("f32")
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        };
        std::borrow::Cow::Owned(bytes)
    }
    fn data_len(&self) -> usize {
        self.0.elem_count() * self.dtype().bitsize() / 8
    }
}
