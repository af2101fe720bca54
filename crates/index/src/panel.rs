//! The panel layout shared by the portable kernels (`kernel.rs`) and their AVX2
//! implementations (`simd.rs`): tokens are stored in panels of [`LANES`] tokens,
//! dimension-major inside a panel (`panel[d][0..LANES]`), the last panel zero-padded.

/// Tokens per panel (one AVX2 register of f32).
pub const LANES: usize = 8;

/// Number of panels holding `n` tokens.
#[inline]
pub fn n_panels(n: usize) -> usize {
    n.div_ceil(LANES)
}
