//! Fused CPU kernels with their own backward pass, as candle custom ops.
//!
//! Contract: every public function here is differentiable (the op's `bwd` returns the
//! gradients, computed by fused CPU loops too) and equals the composed reference built from
//! plain candle ops to ~1e-6 in value and gradient (see `tests/kernels_*.rs`). Inputs of any
//! float dtype are accepted: non-f32 tensors are converted to f32 for the computation and
//! the result converted back (the conversion is itself differentiable). Non-contiguous
//! inputs are made contiguous first. The kernels run on `Device::Cpu` only; on another
//! device they return `ModelError::Unsupported` (callers such as `nn.rs` fall back to the
//! composed ops there). Large inputs are split into row blocks processed by rayon; rows
//! are processed by AVX2/FMA clones of the loops when the CPU supports them.
//!
//! Conventions for degenerate rows: a softmax row whose logits are all `-inf` (a fully
//! masked attention row) yields all zeros and a zero gradient, never NaN.

pub mod attention;
pub mod dropout;
pub mod gelu;
pub mod layer_norm;
pub mod math;
pub mod softmax;

pub use attention::attention;
pub use dropout::dropout;
pub use gelu::gelu;
pub use layer_norm::layer_norm;
pub use softmax::{masked_softmax, softmax_last};

use crate::{ModelError, Result};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Storage, Tensor};
use rayon::prelude::*;

/// Defines `fn name(args) -> ret` whose body is compiled twice: generic, and with AVX2+FMA
/// enabled (chosen at run time), so the `#[inline(always)]` helpers in [`math`] vectorise
/// 8 lanes wide without requiring `-C target-cpu`.
macro_rules! simd_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])* $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn generic($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { generic($($arg),*) }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU supports the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

/// Elements per rayon task: below this, work stays on the calling thread.
const BLOCK_ELEMS: usize = 16 * 1024;

/// Splits `out` (rows of length `d`) into row blocks and runs `f(first_row, block)` on each,
/// in parallel when there is enough work; returns the per-block results in order.
pub(crate) fn map_row_blocks<R, F>(out: &mut [f32], d: usize, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(usize, &mut [f32]) -> R + Sync + Send,
{
    let d = d.max(1);
    let rows = out.len() / d;
    let threads = rayon::current_num_threads().max(1);
    if out.len() < 2 * BLOCK_ELEMS || threads == 1 || rows < 2 {
        return vec![f(0, out)];
    }
    // At least BLOCK_ELEMS per block, and about 4 blocks per thread for balance.
    let by_size = BLOCK_ELEMS.div_ceil(d);
    let by_balance = rows.div_ceil(4 * threads);
    let block_rows = by_size.max(by_balance).max(1);
    out.par_chunks_mut(block_rows * d)
        .enumerate()
        .map(|(i, blk)| f(i * block_rows, blk))
        .collect()
}

/// The contiguous f32 data of a CPU storage under `layout`.
pub(crate) fn cpu_f32<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        other => candle_core::bail!("{what}: expected f32 storage, found {:?}", other.dtype()),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: expected a contiguous layout, found {:?}", l),
    }
}

/// Runs `f` on the contiguous f32 data of a CPU tensor (made contiguous if needed).
pub(crate) fn with_f32<R>(
    t: &Tensor,
    what: &str,
    f: impl FnOnce(&[f32]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let t = if t.dtype() == DType::F32 {
        t.contiguous()?
    } else {
        t.to_dtype(DType::F32)?.contiguous()?
    };
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(c) => f(cpu_f32(c, l, what)?),
        _ => candle_core::bail!("{what}: fused kernels run on the CPU only"),
    }
}

/// Checks the device and returns `x` as a contiguous f32 tensor (differentiable).
pub(crate) fn prep(x: &Tensor, what: &str) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return Err(ModelError::Unsupported(format!(
            "fused kernel `{what}` runs on the CPU only (tensor on {:?})",
            x.device().location()
        )));
    }
    let x = if x.dtype() == DType::F32 {
        x.clone()
    } else {
        x.to_dtype(DType::F32)?
    };
    Ok(x.contiguous()?)
}

/// Length of the last dimension (1 for a scalar).
pub(crate) fn last_dim(t: &Tensor) -> usize {
    t.dims().last().copied().unwrap_or(1)
}
