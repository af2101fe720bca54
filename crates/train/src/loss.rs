//! Losses on (already L2-normalised) padded token embeddings, PyLate semantics.
//!
//! Contract:
//! * [`Contrastive`] = PyLate `losses.Contrastive`: queries `[B,s,h]`, documents stacked
//!   `[B,N,t,h]` (slot 0 = positive, slots 1.. = hard negatives), scores
//!   `[B, B·N]` by [`contrastive_scores`], loss = CE(scores / τ, label i·N), mean over
//!   queries (`size_average`) or sum.
//! * [`Distillation`] = PyLate `losses.Distillation`: student `colbert_kd_scores [B,n]`,
//!   optionally min-max normalised per query `(s-min)/(max-min+1e-8)`, teacher scores raw;
//!   loss = KL(teacher‖student) = Σ p_T (log p_T − log p_S) with both sides
//!   `log_softmax`ed, divided by B (`batchmean`) or summed.
//! * [`Temperature`] is fixed (`scores / τ`) or learnable: a scalar [`Var`] holding
//!   `log τ`, so `scores · exp(−log τ)` and τ stays positive; its gradient flows like any
//!   parameter's (register it with the optimiser under [`Temperature::PARAM_NAME`]).
//!
//! The caller normalises embeddings (our model does it in `forward`); [`l2_normalize`] is
//! the differentiable helper (`x / max(‖x‖, 1e-12)`, like `F.normalize`) for raw inputs.

use crate::scores::{colbert_kd_scores, contrastive_scores, MaskMode};
use crate::{Result, TrainError};
use candle_core::{DType, Device, Tensor, Var, D};

/// Differentiable L2 normalisation over the last dimension (`F.normalize(p=2, dim=-1)`).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12f32, f32::MAX)?;
    Ok(x.broadcast_div(&norm)?)
}

/// Temperature applied to contrastive scores: fixed or learnable (`log τ` as a Var).
#[derive(Clone, Debug)]
pub enum Temperature {
    /// `scores / τ`.
    Fixed(f64),
    /// `scores · exp(−log τ)` with `log τ` trained.
    Learnable(Var),
}

impl Temperature {
    /// Parameter name under which a learnable temperature is optimised and checkpointed.
    pub const PARAM_NAME: &'static str = "loss.log_temperature";

    /// A learnable temperature initialised at `tau`.
    pub fn learnable(tau: f64, device: &Device) -> Result<Self> {
        if tau <= 0.0 || !tau.is_finite() {
            return Err(TrainError::Invalid(format!(
                "temperature must be > 0, got {tau}"
            )));
        }
        let v = Var::from_tensor(&Tensor::new(&[tau.ln() as f32], device)?)?;
        Ok(Temperature::Learnable(v))
    }

    /// The current value of τ.
    pub fn value(&self) -> Result<f64> {
        Ok(match self {
            Temperature::Fixed(t) => *t,
            Temperature::Learnable(v) => (v.as_tensor().to_vec1::<f32>()?[0] as f64).exp(),
        })
    }

    /// `scores / τ`.
    pub fn apply(&self, scores: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Temperature::Fixed(t) => (scores / *t)?,
            Temperature::Learnable(v) => scores.broadcast_mul(&v.as_tensor().neg()?.exp()?)?,
        })
    }
}

/// Sum over rows of `−log_softmax(logits)[row, target]`.
pub fn cross_entropy_sum(logits: &Tensor, targets: &[usize]) -> Result<Tensor> {
    let (m, c) = logits.dims2()?;
    if targets.len() != m || targets.iter().any(|&t| t >= c) {
        return Err(TrainError::shape(
            "cross_entropy",
            format!(
                "{} targets (max {:?}) for logits [{m},{c}]",
                targets.len(),
                targets.iter().max()
            ),
        ));
    }
    let mut onehot = vec![0f32; m * c];
    for (r, &t) in targets.iter().enumerate() {
        onehot[r * c + t] = 1.0;
    }
    let onehot = Tensor::from_vec(onehot, (m, c), logits.device())?;
    let lsm = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    Ok(lsm.mul(&onehot)?.sum_all()?.neg()?)
}

/// PyLate's `Contrastive` loss (see module docs).
#[derive(Clone, Debug)]
pub struct Contrastive {
    /// τ (fixed or learnable).
    pub temperature: Temperature,
    /// Mean over queries (true, PyLate default) or sum.
    pub size_average: bool,
    /// How masked document tokens enter the MaxSim.
    pub mask_mode: MaskMode,
}

impl Contrastive {
    /// PyLate defaults with the given fixed temperature.
    pub fn new(temperature: f64) -> Self {
        Self {
            temperature: Temperature::Fixed(temperature),
            size_average: true,
            mask_mode: MaskMode::Multiply,
        }
    }

    /// Summed CE of the queries `q_chunk` (rows `begin..begin+m` of the batch) against all
    /// documents. Used whole by [`Contrastive::loss`] and per chunk by GradCache.
    pub fn chunk_loss_sum(
        &self,
        q_chunk: &Tensor,
        q_mask: Option<&Tensor>,
        begin: usize,
        docs: &Tensor,
        d_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let n = docs.dim(1)?;
        let m = q_chunk.dim(0)?;
        let scores = contrastive_scores(q_chunk, docs, q_mask, d_mask, self.mask_mode)?;
        let logits = self.temperature.apply(&scores)?;
        let targets: Vec<usize> = (begin..begin + m).map(|i| i * n).collect();
        cross_entropy_sum(&logits, &targets)
    }

    /// The loss for queries `[B,s,h]` and stacked documents `[B,N,t,h]`.
    pub fn loss(
        &self,
        q: &Tensor,
        q_mask: Option<&Tensor>,
        docs: &Tensor,
        d_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let b = q.dim(0)?;
        if docs.rank() != 4 || docs.dim(0)? != b {
            return Err(TrainError::shape(
                "contrastive loss",
                format!(
                    "queries {:?} vs stacked documents {:?} (want [B,N,T,H])",
                    q.dims(),
                    docs.dims()
                ),
            ));
        }
        let sum = self.chunk_loss_sum(q, q_mask, 0, docs, d_mask)?;
        Ok(if self.size_average {
            (sum / b as f64)?
        } else {
            sum
        })
    }
}

/// Stacks per-column embeddings `[B,t,h]` x N into `[B,N,t,h]` (and masks `[B,t]` into `[B,N,t]`).
pub fn stack_columns(cols: &[Tensor]) -> Result<Tensor> {
    if cols.is_empty() {
        return Err(TrainError::Invalid("no document columns to stack".into()));
    }
    Ok(Tensor::stack(cols, 1)?)
}

/// PyLate's `Distillation` loss (see module docs).
#[derive(Clone, Debug)]
pub struct Distillation {
    /// Min-max normalise student scores per query (PyLate default true).
    pub normalize_scores: bool,
    /// `batchmean` (true) or `sum`.
    pub size_average: bool,
    /// How masked document tokens enter the MaxSim.
    pub mask_mode: MaskMode,
}

impl Default for Distillation {
    fn default() -> Self {
        Self {
            normalize_scores: true,
            size_average: true,
            mask_mode: MaskMode::Multiply,
        }
    }
}

impl Distillation {
    /// Loss for queries `[B,s,h]`, documents `[B,n,t,h]`, teacher scores `[B,n]`.
    pub fn loss(
        &self,
        q: &Tensor,
        q_mask: Option<&Tensor>,
        docs: &Tensor,
        d_mask: Option<&Tensor>,
        teacher: &Tensor,
    ) -> Result<Tensor> {
        let scores = colbert_kd_scores(q, docs, q_mask, d_mask, self.mask_mode)?;
        self.loss_from_scores(&scores, teacher)
    }

    /// Loss from student scores `[B,n]` and teacher scores `[B,n]`.
    pub fn loss_from_scores(&self, scores: &Tensor, teacher: &Tensor) -> Result<Tensor> {
        if scores.dims() != teacher.dims() || scores.rank() != 2 {
            return Err(TrainError::shape(
                "distillation",
                format!(
                    "student scores {:?} vs teacher scores {:?}",
                    scores.dims(),
                    teacher.dims()
                ),
            ));
        }
        let b = scores.dim(0)?;
        let mut s = scores.clone();
        if self.normalize_scores {
            let max = s.max_keepdim(1)?;
            let min = s.min_keepdim(1)?;
            let range = ((max - &min)? + 1e-8)?;
            s = s.broadcast_sub(&min)?.broadcast_div(&range)?;
        }
        let log_s = candle_nn::ops::log_softmax(&s, D::Minus1)?;
        let log_t = candle_nn::ops::log_softmax(&teacher.to_dtype(DType::F32)?, D::Minus1)?;
        let kl = log_t.exp()?.mul(&(log_t - log_s)?)?.sum_all()?;
        Ok(if self.size_average {
            (kl / b as f64)?
        } else {
            kl
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_matches_hand_computation() {
        let l = Tensor::new(&[[1f32, 2.0, 3.0], [0.0, 0.0, 0.0]], &Device::Cpu).unwrap();
        let ce = cross_entropy_sum(&l, &[2, 0])
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let want = -(3.0f64 - (1f64.exp() + 2f64.exp() + 3f64.exp()).ln()) + 3f64.ln();
        assert!((ce as f64 - want).abs() < 1e-5, "{ce} vs {want}");
        assert!(cross_entropy_sum(&l, &[3, 0]).is_err());
    }

    #[test]
    fn distillation_is_zero_when_student_matches_teacher_distribution() {
        // normalised student equals teacher exactly when teacher is already in [0,1] with min 0, max 1
        let s = Tensor::new(&[[2f32, 4.0, 3.0]], &Device::Cpu).unwrap();
        let t = Tensor::new(&[[0f32, 1.0, 0.5]], &Device::Cpu).unwrap();
        let l = Distillation::default()
            .loss_from_scores(&s, &t)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(l.abs() < 1e-6, "{l}");
        let t2 = Tensor::new(&[[1f32, 0.0, 0.5]], &Device::Cpu).unwrap();
        let l2 = Distillation::default()
            .loss_from_scores(&s, &t2)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(l2 > 0.01);
    }

    #[test]
    fn learnable_temperature_gradient_matches_finite_difference() {
        let dev = Device::Cpu;
        let q = l2_normalize(&Tensor::randn(0f32, 1., (3, 4, 8), &dev).unwrap()).unwrap();
        let d = l2_normalize(&Tensor::randn(0f32, 1., (3, 2, 5, 8), &dev).unwrap()).unwrap();
        let t = Temperature::learnable(0.5, &dev).unwrap();
        let loss = Contrastive {
            temperature: t.clone(),
            ..Contrastive::new(1.0)
        };
        let l = loss.loss(&q, None, &d, None).unwrap();
        let Temperature::Learnable(v) = &t else {
            unreachable!()
        };
        let g = l.backward().unwrap();
        let g = g.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap()[0] as f64;
        let at = |lt: f64| {
            let c = Contrastive::new(lt.exp());
            c.loss(&q, None, &d, None)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64
        };
        let h = 1e-2;
        let fd = (at(0.5f64.ln() + h) - at(0.5f64.ln() - h)) / (2.0 * h);
        assert!((g - fd).abs() < 1e-3 * fd.abs().max(1.0), "{g} vs {fd}");
        assert!((t.value().unwrap() - 0.5).abs() < 1e-6);
    }
}
