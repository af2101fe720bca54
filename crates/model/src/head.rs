//! The ColBERT projection head: PyLate's chain of `Dense` modules, then L2 normalisation.
//!
//! Contract: each [`DenseLayer`] computes `act(x W^T + b)` and, with `use_residual`, adds
//! `x` (same width) or `x R^T` (`residual.weight`, no bias). Activations are named by their
//! torch class path as in `1_Dense/config.json` (`torch.nn.modules.linear.Identity`,
//! `torch.nn.modules.activation.Tanh`, ...). [`l2_normalize`] equals
//! `torch.nn.functional.normalize(x, p=2, dim=-1)` (eps 1e-12): zero rows stay zero and
//! keep finite gradients. Weights live in the model's `WeightStore` under `_head.{i}.`.

use crate::config::{opt_bool, read_json, req_usize};
use crate::nn::{gelu, linear};
use crate::weights::get_checked;
use crate::{ModelError, Result};
use candle_core::{Tensor, D};
use candle_nn::VarBuilder;
use serde_json::{json, Value};
use std::path::Path;

/// Activation applied after a Dense layer's linear map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Tanh,
    Relu,
    Gelu,
    Sigmoid,
}

impl Activation {
    /// Parses a torch class path (or its last component).
    pub fn from_torch_name(name: &str) -> Option<Self> {
        Some(match name.rsplit('.').next().unwrap_or(name) {
            "Identity" => Self::Identity,
            "Tanh" => Self::Tanh,
            "ReLU" => Self::Relu,
            "GELU" => Self::Gelu,
            "Sigmoid" => Self::Sigmoid,
            _ => return None,
        })
    }

    /// The torch class path written to `config.json`.
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::Identity => "torch.nn.modules.linear.Identity",
            Self::Tanh => "torch.nn.modules.activation.Tanh",
            Self::Relu => "torch.nn.modules.activation.ReLU",
            Self::Gelu => "torch.nn.modules.activation.GELU",
            Self::Sigmoid => "torch.nn.modules.activation.Sigmoid",
        }
    }

    fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Identity => x.clone(),
            Self::Tanh => x.tanh()?,
            Self::Relu => x.relu()?,
            Self::Gelu => gelu(x)?,
            Self::Sigmoid => candle_nn::ops::sigmoid(x)?,
        })
    }
}

/// Shape and options of one Dense module (`N_Dense/config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct DenseConfig {
    pub in_features: usize,
    pub out_features: usize,
    pub bias: bool,
    pub activation: Activation,
    pub use_residual: bool,
}

impl DenseConfig {
    /// Reads `dir/config.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let v = read_json(
            &path,
            "the Dense module config (in_features, out_features, bias, activation_function)",
        )?;
        let act_name = v
            .get("activation_function")
            .and_then(|a| a.as_str())
            .unwrap_or("torch.nn.modules.linear.Identity");
        let activation = Activation::from_torch_name(act_name).ok_or_else(|| {
            ModelError::Unsupported(format!(
                "{}: activation_function `{act_name}`",
                path.display()
            ))
        })?;
        Ok(Self {
            in_features: req_usize(&v, "in_features", &path)?,
            out_features: req_usize(&v, "out_features", &path)?,
            bias: opt_bool(&v, "bias", &path)?.unwrap_or(true),
            activation,
            use_residual: opt_bool(&v, "use_residual", &path)?.unwrap_or(false),
        })
    }

    /// The `config.json` PyLate writes for this module.
    pub fn to_json(&self) -> Value {
        json!({
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias,
            "activation_function": self.activation.torch_name(),
            "use_residual": self.use_residual,
        })
    }

    /// Whether a `residual.weight` projection exists.
    pub fn has_residual_weight(&self) -> bool {
        self.use_residual && self.in_features != self.out_features
    }
}

/// One Dense module.
#[derive(Debug)]
pub struct DenseLayer {
    pub cfg: DenseConfig,
    w: Tensor,
    b: Option<Tensor>,
    r: Option<Tensor>,
}

impl DenseLayer {
    /// Loads `linear.weight` (+ `linear.bias`, `residual.weight`) from `vb`.
    pub fn load(vb: &VarBuilder, cfg: &DenseConfig, source: &Path) -> Result<Self> {
        let (i, o) = (cfg.in_features, cfg.out_features);
        let w = get_checked(vb, &[o, i], "linear.weight", source)?;
        let b = if cfg.bias {
            Some(get_checked(vb, &[o], "linear.bias", source)?)
        } else {
            None
        };
        let r = if cfg.has_residual_weight() {
            Some(get_checked(vb, &[o, i], "residual.weight", source)?)
        } else {
            None
        };
        Ok(Self {
            cfg: cfg.clone(),
            w,
            b,
            r,
        })
    }

    /// `act(x W^T + b) (+ residual)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self
            .cfg
            .activation
            .apply(&linear(x, &self.w, self.b.as_ref())?)?;
        if !self.cfg.use_residual {
            return Ok(y);
        }
        Ok(match &self.r {
            Some(r) => (y + linear(x, r, None)?)?,
            None => (y + x)?,
        })
    }
}

/// The chain of Dense modules.
#[derive(Debug)]
pub struct Head {
    pub layers: Vec<DenseLayer>,
}

impl Head {
    /// Applies every layer in order (no normalisation).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for l in &self.layers {
            x = l.forward(&x)?;
        }
        Ok(x)
    }

    /// Output width (the embedding dimension).
    pub fn out_dim(&self) -> Option<usize> {
        self.layers.last().map(|l| l.cfg.out_features)
    }
}

/// `x / max(||x||_2, 1e-12)` over the last dimension, with finite gradients at zero rows.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let ss = x.sqr()?.sum_keepdim(D::Minus1)?;
    let floor = Tensor::new(1e-24f32, x.device())?.to_dtype(x.dtype())?;
    let norm = ss.broadcast_maximum(&floor)?.sqrt()?;
    Ok(x.broadcast_div(&norm)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn normalize_matches_definition_and_keeps_zero_rows_finite() {
        let x = Var::from_vec(vec![3f32, 4.0, 0.0, 0.0], (2, 2), &Device::Cpu).unwrap();
        let y = l2_normalize(x.as_tensor()).unwrap();
        assert_eq!(
            y.to_vec2::<f32>().unwrap(),
            vec![vec![0.6, 0.8], vec![0.0, 0.0]]
        );
        let g = y.sum_all().unwrap().backward().unwrap();
        let gx: Vec<Vec<f32>> = g.get(x.as_tensor()).unwrap().to_vec2().unwrap();
        assert!(gx.iter().flatten().all(|v| v.is_finite()));
        // d/dx of (x0+x1)/||x|| at (3,4): (||x||^2 - x0 (x0+x1)) / ||x||^3 = (25-21)/125.
        assert!((gx[0][0] - 4.0 / 125.0).abs() < 1e-6);
    }

    #[test]
    fn activation_names_round_trip() {
        for a in [
            Activation::Identity,
            Activation::Tanh,
            Activation::Relu,
            Activation::Gelu,
            Activation::Sigmoid,
        ] {
            assert_eq!(Activation::from_torch_name(a.torch_name()), Some(a));
        }
        assert_eq!(
            Activation::from_torch_name("torch.nn.modules.activation.Softsign"),
            None
        );
    }
}
