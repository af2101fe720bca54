//! Centroid interaction, the approximate score of PLAID stages 2 and 3.
//!
//! Contract: [`interaction`] returns `Σ_r max_t st[row(code_t)][r]` over the first `nq`
//! of `stride` columns of the row-major score matrix `st` (0 for a document without
//! tokens), where `row(c) = c`, or `map[c]` when a map is given. Stage 2 maps every pruned
//! centroid to an all-zero row appended to `st` ([`PrunedRows`]), which is exactly the
//! score against the matrix with those rows zeroed, without copying it and without a
//! branch per token. `stride` is a multiple of 8; `acc` is scratch of `4 · stride`
//! floats: tokens go round-robin to 4 independent running maxima (short rows would
//! otherwise wait on the latency of one chain of max instructions), merged at the end.
//! The max is exact, so the result does not depend on that order. On x86_64 with AVX2
//! (detected at run time) the same code is compiled for AVX2, and rows of up to 40
//! columns (queries of up to 40 tokens) keep the running maxima in registers.

use crate::codec::{Code, Codes};

/// Row map of the pruned interaction: centroid `c` → `c` when kept, else the zero row.
pub(crate) struct PrunedRows {
    pub(crate) map: Vec<u32>,
}

impl PrunedRows {
    /// Keeps the centroids whose best score over the first `nq` columns of `st`
    /// (`kc` rows plus the zero row at index `kc`) is at least `threshold`.
    pub(crate) fn new(st: &[f32], nq: usize, stride: usize, kc: usize, threshold: f32) -> Self {
        let map = st[..kc * stride]
            .chunks_exact(stride)
            .enumerate()
            .map(|(c, row)| {
                // branch-free any (vectorises)
                let keep = row[..nq].iter().fold(false, |a, &v| a | (v >= threshold));
                if keep {
                    c as u32
                } else {
                    kc as u32
                }
            })
            .collect();
        Self { map }
    }
}

/// See the module docs.
pub(crate) fn interaction(
    st: &[f32],
    nq: usize,
    stride: usize,
    codes: Codes<'_>,
    map: Option<&PrunedRows>,
    acc: &mut [f32],
) -> f32 {
    assert!(acc.len() >= 4 * stride && stride.is_multiple_of(8));
    #[cfg(target_arch = "x86_64")]
    if crate::kernel::has_avx2() {
        // SAFETY: AVX2 present.
        return unsafe { interaction_avx2(st, nq, stride, codes, map, acc) };
    }
    interaction_any(st, nq, stride, codes, map, acc)
}

/// [`interaction`] compiled for AVX2: one 8-wide max per block instead of two.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn interaction_avx2(
    st: &[f32],
    nq: usize,
    stride: usize,
    codes: Codes<'_>,
    map: Option<&PrunedRows>,
    acc: &mut [f32],
) -> f32 {
    let m: &[u32] = map.map_or(&[], |m| &m.map);
    macro_rules! regs_for {
        ($ch:literal, $v:literal) => {
            match (codes, map.is_some()) {
                (Codes::U16(c), false) => regs::<_, false, $ch, $v>(st, nq, c, m),
                (Codes::U16(c), true) => regs::<_, true, $ch, $v>(st, nq, c, m),
                (Codes::U32(c), false) => regs::<_, false, $ch, $v>(st, nq, c, m),
                (Codes::U32(c), true) => regs::<_, true, $ch, $v>(st, nq, c, m),
            }
        };
    }
    match stride {
        8 => return regs_for!(4, 1),
        16 => return regs_for!(4, 2),
        24 => return regs_for!(2, 3),
        32 => return regs_for!(2, 4),
        40 => return regs_for!(2, 5),
        _ => {}
    }
    interaction_any(st, nq, stride, codes, map, acc)
}

/// Queries of up to 40 tokens (`stride = 8 · V`): `CH` running maxima of `V` vectors
/// each stay in registers (4 x 1, 4 x 2, 2 x 3, 2 x 4, 2 x 5 of the 16 AVX2 registers).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::needless_range_loop)] // registers indexed [chain][vector]
unsafe fn regs<C: Code, const MAPPED: bool, const CH: usize, const V: usize>(
    st: &[f32],
    nq: usize,
    codes: &[C],
    map: &[u32],
) -> f32 {
    use std::arch::x86_64::*;
    if codes.is_empty() {
        return 0.0;
    }
    let stride = 8 * V;
    let rows = st.len() / stride;
    let row = |c: C| -> *const f32 {
        let r = if MAPPED {
            map[c.idx()] as usize
        } else {
            c.idx()
        };
        assert!(r < rows, "interaction: row out of range");
        st.as_ptr().add(r * stride)
    };
    let mut a = [[_mm256_set1_ps(f32::NEG_INFINITY); V]; CH];
    let mut blocks = codes.chunks_exact(CH);
    for q in &mut blocks {
        for k in 0..CH {
            let p = row(q[k]);
            for v in 0..V {
                a[k][v] = _mm256_max_ps(a[k][v], _mm256_loadu_ps(p.add(8 * v)));
            }
        }
    }
    for &c in blocks.remainder() {
        let p = row(c);
        for v in 0..V {
            a[0][v] = _mm256_max_ps(a[0][v], _mm256_loadu_ps(p.add(8 * v)));
        }
    }
    let mut out = [0.0f32; 40];
    for v in 0..V {
        let mut m = a[0][v];
        for k in 1..CH {
            m = _mm256_max_ps(m, a[k][v]);
        }
        _mm256_storeu_ps(out.as_mut_ptr().add(8 * v), m);
    }
    out[..nq].iter().sum()
}

#[inline(always)]
fn interaction_any(
    st: &[f32],
    nq: usize,
    stride: usize,
    codes: Codes<'_>,
    map: Option<&PrunedRows>,
    acc: &mut [f32],
) -> f32 {
    match (codes, map) {
        (Codes::U16(c), None) => run::<_, false>(st, nq, stride, c, &[], acc),
        (Codes::U32(c), None) => run::<_, false>(st, nq, stride, c, &[], acc),
        (Codes::U16(c), Some(m)) => run::<_, true>(st, nq, stride, c, &m.map, acc),
        (Codes::U32(c), Some(m)) => run::<_, true>(st, nq, stride, c, &m.map, acc),
    }
}

#[inline(always)]
fn max_into(a: &mut [f32], v: &[f32]) {
    for (a8, v8) in a.chunks_exact_mut(8).zip(v.chunks_exact(8)) {
        for j in 0..8 {
            a8[j] = if v8[j] > a8[j] { v8[j] } else { a8[j] };
        }
    }
}

#[inline(always)]
fn run<C: Code, const MAPPED: bool>(
    st: &[f32],
    nq: usize,
    stride: usize,
    codes: &[C],
    map: &[u32],
    acc: &mut [f32],
) -> f32 {
    let row = |c: C| -> &[f32] {
        let r = if MAPPED {
            map[c.idx()] as usize
        } else {
            c.idx()
        };
        &st[r * stride..(r + 1) * stride]
    };
    let Some((&first, rest)) = codes.split_first() else {
        return 0.0;
    };
    let (a0, more) = acc[..4 * stride].split_at_mut(stride);
    let (a1, more) = more.split_at_mut(stride);
    let (a2, a3) = more.split_at_mut(stride);
    let f = row(first);
    for a in [&mut *a0, &mut *a1, &mut *a2, &mut *a3] {
        a.copy_from_slice(f);
    }
    let mut quads = rest.chunks_exact(4);
    for q in &mut quads {
        max_into(a0, row(q[0]));
        max_into(a1, row(q[1]));
        max_into(a2, row(q[2]));
        max_into(a3, row(q[3]));
    }
    for &c in quads.remainder() {
        max_into(a0, row(c));
    }
    max_into(a0, a1);
    max_into(a2, a3);
    max_into(a0, a2);
    a0[..nq].iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// `Σ_r max_t m[code_t][r]`, straight from the definition.
    fn reference(m: &[f32], nq: usize, stride: usize, codes: &[u16]) -> f32 {
        if codes.is_empty() {
            return 0.0;
        }
        (0..nq)
            .map(|r| {
                codes
                    .iter()
                    .map(|&c| m[c as usize * stride + r])
                    .fold(f32::NEG_INFINITY, f32::max)
            })
            .sum()
    }

    #[test]
    fn full_and_pruned_interactions_follow_the_definition() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(32);
        for nq in [13usize, 5, 32, 22, 36, 45] {
            let kc = 40usize;
            let stride = nq.div_ceil(8) * 8;
            // kc rows plus the zero row; few distinct values, so ties are frequent
            let mut st: Vec<f32> = (0..(kc + 1) * stride)
                .map(|_| rng.random_range(-4i32..5) as f32 / 4.0)
                .collect();
            st[kc * stride..].iter_mut().for_each(|v| *v = 0.0);
            let mut acc = vec![0.0f32; 4 * stride];
            for case in 0..200 {
                let threshold = rng.random_range(-1.0f32..1.2);
                let pruned = PrunedRows::new(&st, nq, stride, kc, threshold);
                let mut zeroed = st.clone();
                for (c, row) in zeroed.chunks_exact_mut(stride).enumerate().take(kc) {
                    if row[..nq].iter().all(|&v| v < threshold) {
                        assert_eq!(pruned.map[c], kc as u32);
                        row.iter_mut().for_each(|v| *v = 0.0);
                    }
                }
                let len = case % 11;
                let codes: Vec<u16> = (0..len).map(|_| rng.random_range(0..kc as u16)).collect();
                let full = interaction(&st, nq, stride, Codes::U16(&codes), None, &mut acc);
                assert_eq!(
                    full,
                    reference(&st, nq, stride, &codes),
                    "full, case {case}"
                );
                let got = interaction(&st, nq, stride, Codes::U16(&codes), Some(&pruned), &mut acc);
                let want = reference(&zeroed, nq, stride, &codes);
                assert_eq!(got, want, "pruned, case {case}: codes {codes:?}");
            }
        }
    }
}
