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
//! - [`maxsim_rows`] is MaxSim with the roles swapped: the query in panel layout, the
//!   document tokens row-major, each token's dot products multiplied by a per-token
//!   scale (the fused PLAID rerank over unnormalised decompressed tokens).
//! - [`scores_packed`] writes every dot product `q_r · x_t` (row-major `[nq][n]`);
//!   [`rows_scores`] the same with the roles swapped and a padded stride (the PLAID
//!   query-centroid matrix, one row of query-token scores per centroid).
//! - On x86_64 with AVX2+FMA (detected at run time) a register-blocked SIMD kernel runs
//!   (4 query rows x 2 panels per step, broadcast-FMA, no horizontal sums in the inner
//!   loop); elsewhere a portable scalar kernel with the same semantics is used.

pub use crate::panel::{n_panels, LANES};

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

pub(crate) fn has_avx2() -> bool {
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
        return unsafe { crate::simd::maxsim(query, dim, panels, ntok) };
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
    debug_assert!(panels.len() >= n_panels(n) * dim * LANES);
    if n == 0 || nq == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2+FMA present; output size asserted above; panel size by contract.
        return unsafe { crate::simd::scores(query, dim, panels, n, out) };
    }
    scores_scalar(query, dim, panels, n, out)
}

/// Portable version of [`scores_packed`].
pub fn scores_scalar(query: &[f32], dim: usize, panels: &[f32], n: usize, out: &mut [f32]) {
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

/// For each row `r` of a row-major `rows` matrix (`nq x dim`), the column `t < n` of the
/// panel-layout matrix maximising `rows_r · x_t` and that score: `out[r] = (t, score)`.
/// Ties go to the lowest `t`. `n` must be > 0 and `out.len() == nq`.
pub fn argmax_packed(rows: &[f32], dim: usize, panels: &[f32], n: usize, out: &mut [(u32, f32)]) {
    assert!(n > 0, "argmax_packed: no columns");
    assert_eq!(
        out.len(),
        rows.len() / dim,
        "argmax_packed: output has the wrong size"
    );
    debug_assert!(panels.len() >= n_panels(n) * dim * LANES);
    if rows.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2+FMA present; n > 0 and output size asserted above.
        return unsafe { crate::simd::argmax(rows, dim, panels, n, out) };
    }
    argmax_scalar(rows, dim, panels, n, out)
}

/// Portable version of [`argmax_packed`].
pub fn argmax_scalar(rows: &[f32], dim: usize, panels: &[f32], n: usize, out: &mut [(u32, f32)]) {
    let mut s = vec![0.0f32; n];
    for (r, row) in rows.chunks_exact(dim).enumerate() {
        scores_scalar(row, dim, panels, n, &mut s);
        let mut best = (0u32, f32::NAN);
        for (t, &v) in s.iter().enumerate() {
            if best.1.is_nan() && !v.is_nan() || v > best.1 {
                best = (t as u32, v);
            }
        }
        out[r] = best;
    }
}

/// Scaled MaxSim of a query in panel layout (`nq` rows, see [`pack_panels`]) against
/// `ntok = scales.len()` document tokens given row-major (`rows`, `ntok x dim`):
/// `Σ_r max_t scales[t] · (q_r · rows_t)` (0 when `ntok` or `nq` is 0). With `rows` the
/// unnormalised decompressed tokens and `scales` their inverse norms this is MaxSim over
/// the normalised tokens, without writing them out (the PLAID rerank).
pub fn maxsim_rows(q_panels: &[f32], nq: usize, dim: usize, rows: &[f32], scales: &[f32]) -> f32 {
    let ntok = scales.len();
    assert!(rows.len() >= ntok * dim, "maxsim_rows: rows too short");
    assert!(
        q_panels.len() >= n_panels(nq) * dim * LANES,
        "maxsim_rows: query panels too short"
    );
    if ntok == 0 || nq == 0 {
        return 0.0;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2+FMA present; ntok, nq > 0 and slice sizes asserted above.
        return unsafe { crate::simd::maxsim_rows(q_panels, nq, dim, rows, scales) };
    }
    maxsim_rows_scalar(q_panels, nq, dim, rows, scales)
}

/// Portable version of [`maxsim_rows`].
pub fn maxsim_rows_scalar(
    q_panels: &[f32],
    nq: usize,
    dim: usize,
    rows: &[f32],
    scales: &[f32],
) -> f32 {
    let mut total = 0.0f32;
    for r in 0..nq {
        let panel = &q_panels[(r / LANES) * dim * LANES..];
        let mut best = f32::NEG_INFINITY;
        for (x, &s) in rows.chunks_exact(dim).zip(scales) {
            let mut dot = 0.0f32;
            for (d, &xv) in x.iter().enumerate() {
                dot += panel[d * LANES + r % LANES] * xv;
            }
            best = best.max(s * dot);
        }
        total += best;
    }
    total
}

/// Every dot product of row-major `rows` (`n x dim`) with a query in panel layout (`nq`
/// rows): `out[t · stride + r] = rows_t · q_r` with `stride = n_panels(nq) · LANES`;
/// the `stride - nq` padding columns hold 0 (dot products with the zero padding).
/// `out.len()` must be `n · stride`. This is the PLAID query-centroid matrix, laid out
/// so that a centroid's scores for all query tokens are contiguous.
pub fn rows_scores(q_panels: &[f32], nq: usize, dim: usize, rows: &[f32], out: &mut [f32]) {
    let stride = n_panels(nq) * LANES;
    let n = rows.len() / dim;
    assert_eq!(
        out.len(),
        n * stride,
        "rows_scores: output has the wrong size"
    );
    assert!(
        q_panels.len() >= n_panels(nq) * dim * LANES,
        "rows_scores: query panels too short"
    );
    if n == 0 || nq == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2+FMA present; output and panel sizes asserted above.
        return unsafe { crate::simd::rows_scores(q_panels, nq, dim, rows, out) };
    }
    rows_scores_scalar(q_panels, nq, dim, rows, out)
}

/// [`rows_scores`] with the `n` vectors given in panel layout and the query row-major
/// (`nq x dim`): `out[t · stride + r] = q_r · x_t`, `stride = n_panels(nq) · LANES`,
/// padding columns set to 0. Faster than [`rows_scores`] for short queries (it reads the
/// vectors once per 6 query rows and keeps 12 accumulators busy), slower for long ones.
pub fn centroid_scores(query: &[f32], dim: usize, panels: &[f32], n: usize, out: &mut [f32]) {
    let nq = query.len() / dim;
    let stride = n_panels(nq) * LANES;
    assert_eq!(
        out.len(),
        n * stride,
        "centroid_scores: output has the wrong size"
    );
    assert!(
        panels.len() >= n_panels(n) * dim * LANES,
        "centroid_scores: panels too short"
    );
    if n == 0 || nq == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        for row in out.chunks_exact_mut(stride) {
            row[nq..].iter_mut().for_each(|v| *v = 0.0);
        }
        // SAFETY: AVX2+FMA present; sizes asserted above.
        return unsafe { crate::simd::centroid_scores(query, dim, panels, n, out, stride) };
    }
    centroid_scores_scalar(query, dim, panels, out)
}

/// Portable version of [`centroid_scores`].
pub fn centroid_scores_scalar(query: &[f32], dim: usize, panels: &[f32], out: &mut [f32]) {
    let stride = n_panels(query.len() / dim) * LANES;
    for (t, o) in out.chunks_exact_mut(stride).enumerate() {
        let panel = &panels[(t / LANES) * dim * LANES..];
        for (r, v) in o.iter_mut().enumerate() {
            *v = query.get(r * dim..(r + 1) * dim).map_or(0.0, |q| {
                q.iter()
                    .enumerate()
                    .map(|(d, &qv)| qv * panel[d * LANES + t % LANES])
                    .sum()
            });
        }
    }
}

/// Portable version of [`rows_scores`].
pub fn rows_scores_scalar(q_panels: &[f32], nq: usize, dim: usize, rows: &[f32], out: &mut [f32]) {
    let stride = n_panels(nq) * LANES;
    for (x, o) in rows.chunks_exact(dim).zip(out.chunks_exact_mut(stride)) {
        for (r, v) in o.iter_mut().enumerate() {
            let panel = &q_panels[(r / LANES) * dim * LANES..];
            *v = x
                .iter()
                .enumerate()
                .map(|(d, &xv)| panel[d * LANES + r % LANES] * xv)
                .sum();
        }
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
        let mut slow = vec![0.0; 33];
        scores_scalar(q.as_slice(), 5, &panels, 11, &mut slow);
        for r in 0..3 {
            for t in 0..11 {
                let want = colzero_core::maxsim::dot(q.row(r), x.row(t));
                assert!((out[r * 11 + t] - want).abs() < 1e-5);
                assert!((slow[r * 11 + t] - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn argmax_finds_best_column_with_lowest_index_on_ties() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for &(nq, n, dim) in &[
            (1usize, 1usize, 4usize),
            (5, 9, 16),
            (7, 40, 128),
            (3, 17, 3),
            (9, 300, 128),
            (6, 5000, 8),
        ] {
            let q = random_mv(&mut rng, nq, dim);
            // duplicate columns so that ties exist
            let mut x = random_mv(&mut rng, n, dim).into_vec();
            x.extend_from_within(0..dim.min(x.len()));
            let n2 = n + 1;
            let mut panels = Vec::new();
            pack_panels(&x, dim, &mut panels);
            let mut fast = vec![(0, 0.0); nq];
            let mut slow = vec![(0, 0.0); nq];
            argmax_packed(q.as_slice(), dim, &panels, n2, &mut fast);
            argmax_scalar(q.as_slice(), dim, &panels, n2, &mut slow);
            for r in 0..nq {
                let scores: Vec<f32> = x
                    .chunks_exact(dim)
                    .map(|c| colzero_core::maxsim::dot(q.row(r), c))
                    .collect();
                let best = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                for got in [fast[r], slow[r]] {
                    assert!((got.1 - best).abs() < 1e-5);
                    assert!((scores[got.0 as usize] - best).abs() < 1e-5);
                    assert_ne!(got.0 as usize, n, "tie must go to the lower column");
                }
            }
        }
    }

    #[test]
    fn maxsim_rows_equals_scaled_maxsim() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        for &(nq, n, dim) in &[
            (1usize, 1usize, 4usize),
            (32, 157, 128),
            (32, 1, 128),
            (5, 8, 16),
            (9, 17, 3),
            (40, 33, 64),
            (33, 2, 128),
            (45, 9, 16),
        ] {
            let q = random_mv(&mut rng, nq, dim);
            let x = random_mv(&mut rng, n, dim);
            let scales: Vec<f32> = (0..n).map(|_| rng.random_range(0.5..2.0)).collect();
            let mut q_panels = Vec::new();
            pack_panels(q.as_slice(), dim, &mut q_panels);
            let want: f32 = (0..nq)
                .map(|r| {
                    (0..n)
                        .map(|t| scales[t] * colzero_core::maxsim::dot(q.row(r), x.row(t)))
                        .fold(f32::NEG_INFINITY, f32::max)
                })
                .sum();
            let fast = maxsim_rows(&q_panels, nq, dim, x.as_slice(), &scales);
            let slow = maxsim_rows_scalar(&q_panels, nq, dim, x.as_slice(), &scales);
            let tol = 1e-4 * (1.0 + want.abs());
            assert!(
                (fast - want).abs() < tol,
                "{nq}x{n}x{dim}: {fast} vs {want}"
            );
            assert!(
                (slow - want).abs() < tol,
                "{nq}x{n}x{dim}: {slow} vs {want}"
            );
        }
        assert_eq!(maxsim_rows(&[0.0; 32], 1, 4, &[], &[]), 0.0);
    }

    #[test]
    fn centroid_scores_equals_rows_scores() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(23);
        for &(nq, n, dim) in &[
            (5usize, 37usize, 128usize),
            (12, 16, 16),
            (1, 1, 4),
            (13, 9, 8),
            (32, 24, 8),
        ] {
            let q = random_mv(&mut rng, nq, dim);
            let x = random_mv(&mut rng, n, dim);
            let (mut q_panels, mut x_panels) = (Vec::new(), Vec::new());
            pack_panels(q.as_slice(), dim, &mut q_panels);
            pack_panels(x.as_slice(), dim, &mut x_panels);
            let stride = n_panels(nq) * LANES;
            let mut want = vec![0.0f32; n * stride];
            rows_scores_scalar(&q_panels, nq, dim, x.as_slice(), &mut want);
            let mut got = vec![f32::NAN; n * stride];
            centroid_scores(q.as_slice(), dim, &x_panels, n, &mut got);
            let mut slow = vec![f32::NAN; n * stride];
            centroid_scores_scalar(q.as_slice(), dim, &x_panels, &mut slow);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() < 1e-4, "{nq}x{n}x{dim} at {i}: {g} vs {w}");
                assert!((slow[i] - w).abs() < 1e-4, "scalar {nq}x{n}x{dim} at {i}");
            }
        }
    }

    #[test]
    fn rows_scores_gives_every_dot_product_with_zero_padding() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(22);
        for &(nq, n, dim) in &[
            (36usize, 7usize, 128usize),
            (32, 8, 16),
            (1, 1, 4),
            (45, 3, 8),
        ] {
            let q = random_mv(&mut rng, nq, dim);
            let x = random_mv(&mut rng, n, dim);
            let mut q_panels = Vec::new();
            pack_panels(q.as_slice(), dim, &mut q_panels);
            let stride = n_panels(nq) * LANES;
            let mut fast = vec![f32::NAN; n * stride];
            let mut slow = vec![f32::NAN; n * stride];
            rows_scores(&q_panels, nq, dim, x.as_slice(), &mut fast);
            rows_scores_scalar(&q_panels, nq, dim, x.as_slice(), &mut slow);
            for t in 0..n {
                for r in 0..stride {
                    let want = if r < nq {
                        colzero_core::maxsim::dot(q.row(r), x.row(t))
                    } else {
                        0.0
                    };
                    for got in [fast[t * stride + r], slow[t * stride + r]] {
                        assert!((got - want).abs() < 1e-4, "{nq}x{n}x{dim} t {t} r {r}");
                    }
                }
            }
        }
    }
}
