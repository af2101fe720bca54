//! Dense scoring kernels over the "panel" layout shared by the exact index and the PLAID
//! reranker.
//!
//! Contract:
//! - Panel layout: a block of `n` token vectors of dimension `dim` is stored as
//!   `ceil(n / LANES)` panels; panel `p` holds `dim * LANES` floats where element
//!   `d * LANES + l` is coordinate `d` of token `p * LANES + l` (0.0 past the last token).
//!   [`pack_panels`] writes it.
//! - [`maxsim_packed`] returns `Σ_r max_t q_r · doc_t` over the `n` real tokens only:
//!   padding lanes never take part in the max (they are masked to -inf). A document with
//!   zero tokens scores 0, exactly as `colzero_core::maxsim`. Results agree with the
//!   reference up to float summation order (~1e-5 relative).
//! - [`scores_packed`] writes every dot product `q_r · x_t` (row-major `[nq][n]`).
//! - On x86_64 with AVX2+FMA (detected at run time) a register-blocked SIMD kernel runs
//!   (4 query rows x 2 panels per step, broadcast-FMA, no horizontal sums in the inner
//!   loop); elsewhere a portable scalar kernel with the same semantics is used.

/// Tokens per panel (one AVX2 register of f32).
pub const LANES: usize = 8;

/// Number of panels holding `n` tokens.
#[inline]
pub fn n_panels(n: usize) -> usize {
    n.div_ceil(LANES)
}

/// Appends row-major `tokens` (`n x dim`) to `out` in panel layout.
pub fn pack_panels(tokens: &[f32], dim: usize, out: &mut Vec<f32>) {
    let n = tokens.len() / dim;
    let base = out.len();
    out.resize(base + n_panels(n) * dim * LANES, 0.0);
    let dst = &mut out[base..];
    for (t, row) in tokens.chunks_exact(dim).enumerate() {
        let panel = &mut dst[(t / LANES) * dim * LANES..];
        let l = t % LANES;
        for (d, &v) in row.iter().enumerate() {
            panel[d * LANES + l] = v;
        }
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// MaxSim of a row-major query (`nq x dim`) against one document of `ntok` tokens in
/// panel layout (see module docs).
pub fn maxsim_packed(query: &[f32], dim: usize, panels: &[f32], ntok: usize) -> f32 {
    debug_assert_eq!(query.len() % dim, 0);
    debug_assert!(panels.len() >= n_panels(ntok) * dim * LANES);
    if ntok == 0 || query.is_empty() {
        return 0.0;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above); slice bounds are checked
        // by the debug assertions and guaranteed by every caller in this crate.
        return unsafe { avx2::maxsim(query, dim, panels, ntok) };
    }
    maxsim_scalar(query, dim, panels, ntok)
}

/// Portable MaxSim over panels (also the reference for the SIMD kernel's tests).
pub fn maxsim_scalar(query: &[f32], dim: usize, panels: &[f32], ntok: usize) -> f32 {
    if ntok == 0 {
        return 0.0;
    }
    let np = n_panels(ntok);
    let mut total = 0.0f32;
    for q in query.chunks_exact(dim) {
        let mut best = f32::NEG_INFINITY;
        for p in 0..np {
            let panel = &panels[p * dim * LANES..(p + 1) * dim * LANES];
            let mut acc = [0.0f32; LANES];
            for (d, &qv) in q.iter().enumerate() {
                let col = &panel[d * LANES..(d + 1) * LANES];
                for l in 0..LANES {
                    acc[l] += qv * col[l];
                }
            }
            let valid = if p + 1 == np { ntok - p * LANES } else { LANES };
            for &a in &acc[..valid] {
                best = best.max(a);
            }
        }
        total += best;
    }
    total
}

/// All dot products of a row-major query (`nq x dim`) with `n` vectors in panel layout:
/// `out[r * n + t] = q_r · x_t`. `out.len()` must be `nq * n`.
pub fn scores_packed(query: &[f32], dim: usize, panels: &[f32], n: usize, out: &mut [f32]) {
    let nq = query.len() / dim;
    assert_eq!(
        out.len(),
        nq * n,
        "scores_packed: output has the wrong size"
    );
    let np = n_panels(n);
    let mut acc = [0.0f32; LANES];
    for (r, q) in query.chunks_exact(dim).enumerate() {
        for p in 0..np {
            acc.iter_mut().for_each(|a| *a = 0.0);
            let panel = &panels[p * dim * LANES..(p + 1) * dim * LANES];
            for (d, &qv) in q.iter().enumerate() {
                let col = &panel[d * LANES..(d + 1) * LANES];
                for l in 0..LANES {
                    acc[l] += qv * col[l];
                }
            }
            let valid = (n - p * LANES).min(LANES);
            out[r * n + p * LANES..r * n + p * LANES + valid].copy_from_slice(&acc[..valid]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{n_panels, LANES};
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hmax(v: __m256) -> f32 {
        let hi = _mm256_extractf128_ps(v, 1);
        let m = _mm_max_ps(_mm256_castps256_ps128(v), hi);
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
        _mm_cvtss_f32(m)
    }

    /// See [`super::maxsim_packed`]. Safety: AVX2+FMA available; `query.len()` a
    /// multiple of `dim`; `panels` holds at least `n_panels(ntok)` panels; `ntok > 0`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn maxsim(query: &[f32], dim: usize, panels: &[f32], ntok: usize) -> f32 {
        let nq = query.len() / dim;
        let np = n_panels(ntok);
        let ps = dim * LANES;
        let last_valid = (ntok - (np - 1) * LANES) as i32;
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let last_mask =
            _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(last_valid), lanes));
        let neg = _mm256_set1_ps(f32::NEG_INFINITY);
        let qp = query.as_ptr();
        let pp = panels.as_ptr();
        let mut total = 0.0f32;
        let mut r0 = 0;
        while r0 < nq {
            let rows = (nq - r0).min(4);
            // Rows past the end alias the last real row; their results are discarded.
            let q0 = qp.add(r0 * dim);
            let q1 = qp.add((r0 + 1.min(rows - 1)) * dim);
            let q2 = qp.add((r0 + 2.min(rows - 1)) * dim);
            let q3 = qp.add((r0 + 3.min(rows - 1)) * dim);
            let (mut m0, mut m1, mut m2, mut m3) = (neg, neg, neg, neg);
            let mut p = 0;
            while p + 2 <= np {
                let a = pp.add(p * ps);
                let b = pp.add((p + 1) * ps);
                let z = _mm256_setzero_ps();
                let (mut c0a, mut c0b, mut c1a, mut c1b) = (z, z, z, z);
                let (mut c2a, mut c2b, mut c3a, mut c3b) = (z, z, z, z);
                for d in 0..dim {
                    let va = _mm256_loadu_ps(a.add(d * LANES));
                    let vb = _mm256_loadu_ps(b.add(d * LANES));
                    let x = _mm256_broadcast_ss(&*q0.add(d));
                    c0a = _mm256_fmadd_ps(x, va, c0a);
                    c0b = _mm256_fmadd_ps(x, vb, c0b);
                    let x = _mm256_broadcast_ss(&*q1.add(d));
                    c1a = _mm256_fmadd_ps(x, va, c1a);
                    c1b = _mm256_fmadd_ps(x, vb, c1b);
                    let x = _mm256_broadcast_ss(&*q2.add(d));
                    c2a = _mm256_fmadd_ps(x, va, c2a);
                    c2b = _mm256_fmadd_ps(x, vb, c2b);
                    let x = _mm256_broadcast_ss(&*q3.add(d));
                    c3a = _mm256_fmadd_ps(x, va, c3a);
                    c3b = _mm256_fmadd_ps(x, vb, c3b);
                }
                if p + 2 == np {
                    c0b = _mm256_blendv_ps(neg, c0b, last_mask);
                    c1b = _mm256_blendv_ps(neg, c1b, last_mask);
                    c2b = _mm256_blendv_ps(neg, c2b, last_mask);
                    c3b = _mm256_blendv_ps(neg, c3b, last_mask);
                }
                m0 = _mm256_max_ps(m0, _mm256_max_ps(c0a, c0b));
                m1 = _mm256_max_ps(m1, _mm256_max_ps(c1a, c1b));
                m2 = _mm256_max_ps(m2, _mm256_max_ps(c2a, c2b));
                m3 = _mm256_max_ps(m3, _mm256_max_ps(c3a, c3b));
                p += 2;
            }
            if p < np {
                // The single remaining panel is the last one.
                let a = pp.add(p * ps);
                let z = _mm256_setzero_ps();
                let (mut c0, mut c1, mut c2, mut c3) = (z, z, z, z);
                for d in 0..dim {
                    let va = _mm256_loadu_ps(a.add(d * LANES));
                    c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*q0.add(d)), va, c0);
                    c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*q1.add(d)), va, c1);
                    c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*q2.add(d)), va, c2);
                    c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*q3.add(d)), va, c3);
                }
                m0 = _mm256_max_ps(m0, _mm256_blendv_ps(neg, c0, last_mask));
                m1 = _mm256_max_ps(m1, _mm256_blendv_ps(neg, c1, last_mask));
                m2 = _mm256_max_ps(m2, _mm256_blendv_ps(neg, c2, last_mask));
                m3 = _mm256_max_ps(m3, _mm256_blendv_ps(neg, c3, last_mask));
            }
            let best = [hmax(m0), hmax(m1), hmax(m2), hmax(m3)];
            total += best[..rows].iter().sum::<f32>();
            r0 += 4;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use colzero_core::{maxsim, MultiVector};
    use rand::{Rng, SeedableRng};

    fn random_mv(rng: &mut rand_chacha::ChaCha8Rng, n: usize, dim: usize) -> MultiVector {
        let data: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        MultiVector::new(dim, data).unwrap()
    }

    #[test]
    fn packed_maxsim_equals_reference_for_all_shapes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for &dim in &[1usize, 3, 8, 17, 128] {
            for &nq in &[1usize, 2, 3, 4, 5, 9] {
                for &nd in &[0usize, 1, 7, 8, 9, 15, 16, 17, 33] {
                    let q = random_mv(&mut rng, nq, dim);
                    let d = random_mv(&mut rng, nd, dim);
                    let mut panels = Vec::new();
                    pack_panels(d.as_slice(), dim, &mut panels);
                    let want = maxsim(&q, &d);
                    let fast = maxsim_packed(q.as_slice(), dim, &panels, nd);
                    let slow = maxsim_scalar(q.as_slice(), dim, &panels, nd);
                    let tol = 1e-4 * (1.0 + want.abs());
                    assert!(
                        (fast - want).abs() < tol,
                        "dim {dim} nq {nq} nd {nd}: {fast} vs {want}"
                    );
                    assert!(
                        (slow - want).abs() < tol,
                        "dim {dim} nq {nq} nd {nd}: {slow} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn padding_never_wins_the_max() {
        // All real similarities are negative; zero padding would win if it were scored.
        let q = MultiVector::new(2, vec![1.0, 0.0]).unwrap();
        let d = MultiVector::new(2, vec![-0.5, 0.0, -0.25, 0.0, -0.75, 0.0]).unwrap();
        let mut panels = Vec::new();
        pack_panels(d.as_slice(), 2, &mut panels);
        assert_eq!(maxsim_packed(q.as_slice(), 2, &panels, 3), -0.25);
        assert_eq!(maxsim_scalar(q.as_slice(), 2, &panels, 3), -0.25);
    }

    #[test]
    fn scores_packed_gives_every_dot_product() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let q = random_mv(&mut rng, 3, 5);
        let x = random_mv(&mut rng, 11, 5);
        let mut panels = Vec::new();
        pack_panels(x.as_slice(), 5, &mut panels);
        let mut out = vec![0.0; 33];
        scores_packed(q.as_slice(), 5, &panels, 11, &mut out);
        for r in 0..3 {
            for t in 0..11 {
                let want = colzero_core::maxsim::dot(q.row(r), x.row(t));
                assert!((out[r * 11 + t] - want).abs() < 1e-5);
            }
        }
    }
}
