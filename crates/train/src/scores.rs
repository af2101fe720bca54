//! Differentiable late-interaction (MaxSim) scores over padded batches, PyLate semantics.
//!
//! Contract (mirrors `pylate/scores/colbert.py`): embeddings are padded f32 tensors, masks
//! are f32 (or any numeric dtype) tensors of 1 (keep) / 0 (padding, skiplist).
//! * [`colbert_scores`]: `Q [a,s,h]`, `D [b,t,h]` -> `[a,b]`, `Σ_s max_t q_s·d_t`.
//! * [`colbert_scores_pairwise`]: `Q [a,s,h]`, `D [a,t,h]` -> `[a]` (query i vs doc i).
//! * [`colbert_kd_scores`]: `Q [a,s,h]`, `D [a,n,t,h]` -> `[a,n]` (query i vs its own n docs).
//! * [`contrastive_scores`]: `Q [B,s,h]`, docs stacked `[B,N,t,h]` -> `[B, B·N]`, query-major:
//!   column `j·N + k` is slot `k` of query `j`'s group, so query i's positive is column `i·N`.
//!
//! [`MaskMode::Multiply`] (the default, PyLate's) multiplies the similarity matrix by the
//! masks, so a masked document token contributes a similarity of exactly 0 — a query token
//! whose best real similarity is negative therefore scores 0. [`MaskMode::NegInf`] fills
//! masked document positions with -inf before the max instead (true MaxSim over the kept
//! tokens; a document with no kept token contributes 0 per query token). Query masks
//! always multiply (a masked query token contributes 0). Everything is built from candle
//! ops with a backward pass (matmul, mul, where_cond, max, sum), so gradients reach `Q`
//! and `D`.

use crate::{Result, TrainError};
use candle_core::{DType, Tensor, D};

/// How masked document tokens enter the max over document tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskMode {
    /// PyLate: similarity multiplied by the mask (masked tokens give 0).
    #[default]
    Multiply,
    /// Masked tokens are set to -inf before the max (they can never win it).
    NegInf,
}

fn dims3(t: &Tensor, what: &str) -> Result<(usize, usize, usize)> {
    t.dims3()
        .map_err(|_| TrainError::shape(what, format!("expected rank 3, got {:?}", t.dims())))
}

fn check_mask(mask: &Tensor, want: &[usize], what: &str) -> Result<Tensor> {
    if mask.dims() != want {
        return Err(TrainError::shape(
            what,
            format!("mask shape {:?}, expected {:?}", mask.dims(), want),
        ));
    }
    Ok(mask.to_dtype(DType::F32)?)
}

/// Applies the document mask (broadcastable to `sim`) and reduces `max over t` (last dim),
/// then `sum over s` (the dim given).
fn reduce_maxsim(
    sim: &Tensor,
    d_mask: Option<&Tensor>,
    q_mask: Option<&Tensor>,
    s_dim: usize,
    mode: MaskMode,
) -> Result<Tensor> {
    let mut sim = sim.clone();
    if let Some(qm) = q_mask {
        sim = sim.broadcast_mul(qm)?;
    }
    let best = match (d_mask, mode) {
        (None, _) => sim.max(D::Minus1)?,
        (Some(dm), MaskMode::Multiply) => sim.broadcast_mul(dm)?.max(D::Minus1)?,
        (Some(dm), MaskMode::NegInf) => {
            let keep = dm.broadcast_as(sim.shape())?.ne(0f32)?;
            let ninf = Tensor::full(f32::NEG_INFINITY, sim.shape(), sim.device())?;
            let best = keep.where_cond(&sim, &ninf)?.max(D::Minus1)?;
            // A document without any kept token: every max is -inf; score it 0.
            let finite = best.ne(f32::NEG_INFINITY)?;
            finite.where_cond(&best, &best.zeros_like()?)?
        }
    };
    Ok(best.sum(s_dim)?)
}

/// `Q [a,s,h]` x `D [b,t,h]` -> scores `[a,b]`. Masks: `q_mask [a,s]`, `d_mask [b,t]`.
pub fn colbert_scores(
    q: &Tensor,
    d: &Tensor,
    q_mask: Option<&Tensor>,
    d_mask: Option<&Tensor>,
    mode: MaskMode,
) -> Result<Tensor> {
    let (a, s, h) = dims3(q, "colbert_scores queries")?;
    let (b, t, h2) = dims3(d, "colbert_scores documents")?;
    if h != h2 {
        return Err(TrainError::shape(
            "colbert_scores",
            format!("query dim {h} != document dim {h2}"),
        ));
    }
    // [a*s, h] @ [h, b*t] -> [a, s, b, t]
    let sim = q
        .reshape((a * s, h))?
        .matmul(&d.reshape((b * t, h))?.t()?)?
        .reshape((a, s, b, t))?;
    let qm = match q_mask {
        Some(m) => {
            Some(check_mask(m, &[a, s], "colbert_scores query mask")?.reshape((a, s, 1, 1))?)
        }
        None => None,
    };
    let dm = match d_mask {
        Some(m) => {
            Some(check_mask(m, &[b, t], "colbert_scores document mask")?.reshape((1, 1, b, t))?)
        }
        None => None,
    };
    reduce_maxsim(&sim, dm.as_ref(), qm.as_ref(), 1, mode)
}

/// `Q [a,s,h]` x `D [a,t,h]` -> `[a]`, query i against document i.
pub fn colbert_scores_pairwise(
    q: &Tensor,
    d: &Tensor,
    q_mask: Option<&Tensor>,
    d_mask: Option<&Tensor>,
    mode: MaskMode,
) -> Result<Tensor> {
    let (a, s, h) = dims3(q, "pairwise queries")?;
    let (a2, t, h2) = dims3(d, "pairwise documents")?;
    if a != a2 || h != h2 {
        return Err(TrainError::shape(
            "colbert_scores_pairwise",
            format!("queries {:?} vs documents {:?}", q.dims(), d.dims()),
        ));
    }
    let sim = q.matmul(&d.t()?)?; // [a, s, t]
    let qm = match q_mask {
        Some(m) => Some(check_mask(m, &[a, s], "pairwise query mask")?.reshape((a, s, 1))?),
        None => None,
    };
    let dm = match d_mask {
        Some(m) => Some(check_mask(m, &[a, t], "pairwise document mask")?.reshape((a, 1, t))?),
        None => None,
    };
    reduce_maxsim(&sim, dm.as_ref(), qm.as_ref(), 1, mode)
}

/// `Q [a,s,h]` x `D [a,n,t,h]` -> `[a,n]`, each query against its own `n` documents.
/// Masks: `q_mask [a,s]`, `d_mask [a,n,t]`.
pub fn colbert_kd_scores(
    q: &Tensor,
    d: &Tensor,
    q_mask: Option<&Tensor>,
    d_mask: Option<&Tensor>,
    mode: MaskMode,
) -> Result<Tensor> {
    let (a, s, h) = dims3(q, "kd queries")?;
    let (a2, n, t, h2) = d.dims4().map_err(|_| {
        TrainError::shape(
            "kd documents",
            format!("expected rank 4, got {:?}", d.dims()),
        )
    })?;
    if a != a2 || h != h2 {
        return Err(TrainError::shape(
            "colbert_kd_scores",
            format!("queries {:?} vs documents {:?}", q.dims(), d.dims()),
        ));
    }
    // [a,1,s,h] x [a,n,h,t] -> [a,n,s,t]
    let sim = q
        .unsqueeze(1)?
        .broadcast_matmul(&d.transpose(2, 3)?.contiguous()?)?;
    let qm = match q_mask {
        Some(m) => Some(check_mask(m, &[a, s], "kd query mask")?.reshape((a, 1, s, 1))?),
        None => None,
    };
    let dm = match d_mask {
        Some(m) => Some(check_mask(m, &[a, n, t], "kd document mask")?.reshape((a, n, 1, t))?),
        None => None,
    };
    reduce_maxsim(&sim, dm.as_ref(), qm.as_ref(), 2, mode)
}

/// PyLate's `ColBERTScores`: `Q [Bq,s,h]` vs docs `[Bd,N,t,h]` -> `[Bq, Bd·N]`,
/// column `j·N + k` = slot `k` of group `j`. `d_mask` is `[Bd,N,t]`.
pub fn contrastive_scores(
    q: &Tensor,
    docs: &Tensor,
    q_mask: Option<&Tensor>,
    d_mask: Option<&Tensor>,
    mode: MaskMode,
) -> Result<Tensor> {
    let (bd, n, t, h) = docs.dims4().map_err(|_| {
        TrainError::shape(
            "contrastive documents",
            format!("expected [B,N,T,H], got {:?}", docs.dims()),
        )
    })?;
    let flat = docs.reshape((bd * n, t, h))?;
    let flat_mask = match d_mask {
        Some(m) => {
            if m.dims() != [bd, n, t] {
                return Err(TrainError::shape(
                    "contrastive document mask",
                    format!("mask {:?}, expected {:?}", m.dims(), [bd, n, t]),
                ));
            }
            Some(m.reshape((bd * n, t))?)
        }
        None => None,
    };
    colbert_scores(q, &flat, q_mask, flat_mask.as_ref(), mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t3(v: &[f32], shape: (usize, usize, usize)) -> Tensor {
        Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
    }

    /// The doctest example of `pylate.scores.colbert_scores`.
    #[test]
    fn pylate_docstring_example() {
        let q = t3(&[1., 0., 0., 0., 0., 2., 0., 0., 0., 0., 3., 0.], (3, 4, 1));
        let d = t3(&[10., 0., 1., 0., 100., 10., 1., 0., 1000.], (3, 3, 1));
        let dm = Tensor::from_slice(
            &[1f32, 1., 1., 1., 0., 1., 1., 1., 1.],
            (3, 3),
            &Device::Cpu,
        )
        .unwrap();
        let qm = Tensor::from_slice(
            &[1f32, 1., 1., 1., 1., 1., 1., 1., 1., 1., 0., 1.],
            (3, 4),
            &Device::Cpu,
        )
        .unwrap();
        let s = colbert_scores(&q, &d, Some(&qm), Some(&dm), MaskMode::Multiply).unwrap();
        let got: Vec<Vec<f32>> = s.to_vec2().unwrap();
        assert_eq!(
            got,
            vec![
                vec![10., 10., 1000.],
                vec![20., 20., 2000.],
                vec![0., 0., 0.]
            ]
        );
    }

    /// The doctest example of `pylate.scores.colbert_kd_scores`.
    #[test]
    fn pylate_kd_docstring_example() {
        let q = t3(&[1., 0., 0., 0., 0., 2., 0., 0., 0., 0., 3., 0.], (3, 4, 1));
        let d = Tensor::from_slice(
            &[
                10f32, 0., 1., 20., 0., 1., 30., 0., 1., 0., 100., 1., 0., 200., 1., 0., 300., 1.,
                1., 0., 1000., 1., 0., 2000., 10., 0., 3000.,
            ],
            (3, 3, 3, 1),
            &Device::Cpu,
        )
        .unwrap();
        let mut dm = vec![1f32; 27];
        dm[0] = 0.0;
        let dm = Tensor::from_slice(&dm, (3, 3, 3), &Device::Cpu).unwrap();
        let qm = Tensor::from_slice(
            &[1f32, 1., 1., 1., 1., 1., 1., 1., 1., 1., 0., 1.],
            (3, 4),
            &Device::Cpu,
        )
        .unwrap();
        let s = colbert_kd_scores(&q, &d, Some(&qm), Some(&dm), MaskMode::Multiply).unwrap();
        let got: Vec<Vec<f32>> = s.to_vec2().unwrap();
        assert_eq!(
            got,
            vec![vec![1., 20., 30.], vec![200., 400., 600.], vec![0., 0., 0.]]
        );
    }

    #[test]
    fn neg_inf_mode_keeps_negative_best_similarity() {
        // one query token, doc with a real token at -0.5 and a masked one
        let q = t3(&[1.0, 0.0], (1, 1, 2));
        let d = t3(&[-0.5, 0.0, 0.9, 0.0], (1, 2, 2));
        let dm = Tensor::from_slice(&[1f32, 0.], (1, 2), &Device::Cpu).unwrap();
        let mul = colbert_scores(&q, &d, None, Some(&dm), MaskMode::Multiply).unwrap();
        let inf = colbert_scores(&q, &d, None, Some(&dm), MaskMode::NegInf).unwrap();
        assert_eq!(mul.to_vec2::<f32>().unwrap(), vec![vec![0.0]]);
        assert_eq!(inf.to_vec2::<f32>().unwrap(), vec![vec![-0.5]]);
        // fully masked document scores 0 in NegInf mode
        let none = Tensor::zeros((1, 2), DType::F32, &Device::Cpu).unwrap();
        let e = colbert_scores(&q, &d, None, Some(&none), MaskMode::NegInf).unwrap();
        assert_eq!(e.to_vec2::<f32>().unwrap(), vec![vec![0.0]]);
    }

    #[test]
    fn pairwise_and_contrastive_agree_with_full_matrix() {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1., (3, 4, 5), &dev).unwrap();
        let docs = Tensor::randn(0f32, 1., (3, 2, 6, 5), &dev).unwrap();
        let dm = Tensor::rand(0f32, 1., (3, 2, 6), &dev)
            .unwrap()
            .ge(0.3)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let full = contrastive_scores(&q, &docs, None, Some(&dm), MaskMode::Multiply).unwrap();
        assert_eq!(full.dims(), &[3, 6]);
        let full: Vec<Vec<f32>> = full.to_vec2().unwrap();
        // column j*N+k against a direct pairwise computation
        for j in 0..3 {
            for k in 0..2 {
                let d = docs.get(j).unwrap().get(k).unwrap().unsqueeze(0).unwrap();
                let m = dm.get(j).unwrap().get(k).unwrap().unsqueeze(0).unwrap();
                for (i, row) in full.iter().enumerate() {
                    let qi = q.get(i).unwrap().unsqueeze(0).unwrap();
                    let p = colbert_scores_pairwise(&qi, &d, None, Some(&m), MaskMode::Multiply)
                        .unwrap();
                    let p = p.to_vec1::<f32>().unwrap()[0];
                    assert!((p - row[j * 2 + k]).abs() < 1e-5);
                }
            }
        }
        let kd = colbert_kd_scores(&q, &docs, None, Some(&dm), MaskMode::Multiply).unwrap();
        let kd: Vec<Vec<f32>> = kd.to_vec2().unwrap();
        for i in 0..3 {
            for k in 0..2 {
                assert!((kd[i][k] - full[i][i * 2 + k]).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let dev = Device::Cpu;
        let q = Tensor::zeros((2, 3, 4), DType::F32, &dev).unwrap();
        let d = Tensor::zeros((2, 3, 5), DType::F32, &dev).unwrap();
        let e = colbert_scores(&q, &d, None, None, MaskMode::Multiply).unwrap_err();
        assert!(
            e.to_string().contains("query dim 4 != document dim 5"),
            "{e}"
        );
        let m = Tensor::zeros((2, 4), DType::F32, &dev).unwrap();
        let d = Tensor::zeros((2, 3, 4), DType::F32, &dev).unwrap();
        assert!(colbert_scores(&q, &d, None, Some(&m), MaskMode::Multiply).is_err());
    }
}
