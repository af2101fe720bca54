//! AVX2+FMA implementations of the panel kernels of [`crate::kernel`].
//!
//! Contract: each function computes exactly what its portable counterpart in
//! `kernel.rs` computes (up to float summation order) and is only called after run-time
//! detection of AVX2 and FMA. Blocking: 4 query rows x 1 or 2 panels of 8 tokens per
//! step; the inner loop over `dim` is broadcast(q[r][d]) * panel[d][0..8] accumulated
//! with FMA, so no horizontal reduction happens inside it. Rows past the end of the
//! query alias its last row and their results are discarded.
#![cfg(target_arch = "x86_64")]

use crate::panel::{n_panels, LANES};
use std::arch::x86_64::*;

/// Accumulates one panel against 4 query rows: returns 4 vectors of 8 dot products.
macro_rules! block1 {
    ($q:expr, $a:expr, $dim:expr) => {{
        let z = _mm256_setzero_ps();
        let (mut c0, mut c1, mut c2, mut c3) = (z, z, z, z);
        for d in 0..$dim {
            let va = _mm256_loadu_ps($a.add(d * LANES));
            c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*$q[0].add(d)), va, c0);
            c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*$q[1].add(d)), va, c1);
            c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*$q[2].add(d)), va, c2);
            c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*$q[3].add(d)), va, c3);
        }
        [c0, c1, c2, c3]
    }};
}

/// Accumulates two panels against 4 query rows: returns (panel a, panel b) results.
macro_rules! block2 {
    ($q:expr, $a:expr, $b:expr, $dim:expr) => {{
        let z = _mm256_setzero_ps();
        let (mut c0a, mut c0b, mut c1a, mut c1b) = (z, z, z, z);
        let (mut c2a, mut c2b, mut c3a, mut c3b) = (z, z, z, z);
        for d in 0..$dim {
            let va = _mm256_loadu_ps($a.add(d * LANES));
            let vb = _mm256_loadu_ps($b.add(d * LANES));
            let x = _mm256_broadcast_ss(&*$q[0].add(d));
            c0a = _mm256_fmadd_ps(x, va, c0a);
            c0b = _mm256_fmadd_ps(x, vb, c0b);
            let x = _mm256_broadcast_ss(&*$q[1].add(d));
            c1a = _mm256_fmadd_ps(x, va, c1a);
            c1b = _mm256_fmadd_ps(x, vb, c1b);
            let x = _mm256_broadcast_ss(&*$q[2].add(d));
            c2a = _mm256_fmadd_ps(x, va, c2a);
            c2b = _mm256_fmadd_ps(x, vb, c2b);
            let x = _mm256_broadcast_ss(&*$q[3].add(d));
            c3a = _mm256_fmadd_ps(x, va, c3a);
            c3b = _mm256_fmadd_ps(x, vb, c3b);
        }
        ([c0a, c1a, c2a, c3a], [c0b, c1b, c2b, c3b])
    }};
}

#[inline(always)]
unsafe fn hmax(v: __m256) -> f32 {
    let hi = _mm256_extractf128_ps(v, 1);
    let m = _mm_max_ps(_mm256_castps256_ps128(v), hi);
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    _mm_cvtss_f32(m)
}

/// Pointers to 4 query rows starting at row `r0` (rows past `nq` alias row `nq - 1`).
#[inline(always)]
unsafe fn rows4(qp: *const f32, r0: usize, nq: usize, dim: usize) -> [*const f32; 4] {
    let last = nq - 1;
    [
        qp.add(r0 * dim),
        qp.add((r0 + 1).min(last) * dim),
        qp.add((r0 + 2).min(last) * dim),
        qp.add((r0 + 3).min(last) * dim),
    ]
}

/// Lane mask selecting the first `valid` lanes.
#[inline(always)]
unsafe fn lane_mask(valid: usize) -> __m256 {
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(valid as i32), lanes))
}

/// See `kernel::maxsim_packed`. Safety: AVX2+FMA; `ntok > 0`; shapes as documented.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn maxsim(query: &[f32], dim: usize, panels: &[f32], ntok: usize) -> f32 {
    let nq = query.len() / dim;
    let np = n_panels(ntok);
    let ps = dim * LANES;
    let last_mask = lane_mask(ntok - (np - 1) * LANES);
    let neg = _mm256_set1_ps(f32::NEG_INFINITY);
    let pp = panels.as_ptr();
    let mut total = 0.0f32;
    let mut r0 = 0;
    while r0 < nq {
        let q = rows4(query.as_ptr(), r0, nq, dim);
        let mut m = [neg; 4];
        let mut p = 0;
        while p + 2 <= np {
            let (ca, mut cb) = block2!(q, pp.add(p * ps), pp.add((p + 1) * ps), dim);
            if p + 2 == np {
                for c in cb.iter_mut() {
                    *c = _mm256_blendv_ps(neg, *c, last_mask);
                }
            }
            for r in 0..4 {
                m[r] = _mm256_max_ps(m[r], _mm256_max_ps(ca[r], cb[r]));
            }
            p += 2;
        }
        if p < np {
            let c = block1!(q, pp.add(p * ps), dim);
            for r in 0..4 {
                m[r] = _mm256_max_ps(m[r], _mm256_blendv_ps(neg, c[r], last_mask));
            }
        }
        for mr in m.iter().take((nq - r0).min(4)) {
            total += hmax(*mr);
        }
        r0 += 4;
    }
    total
}

/// See `kernel::scores_packed`. Safety: AVX2+FMA; `out.len() == nq * n`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn scores(query: &[f32], dim: usize, panels: &[f32], n: usize, out: &mut [f32]) {
    let nq = query.len() / dim;
    let np = n_panels(n);
    let ps = dim * LANES;
    let pp = panels.as_ptr();
    let mut tmp = [0.0f32; LANES];
    let mut r0 = 0;
    while r0 < nq {
        let q = rows4(query.as_ptr(), r0, nq, dim);
        let rows = (nq - r0).min(4);
        for p in 0..np {
            let c = block1!(q, pp.add(p * ps), dim);
            let valid = (n - p * LANES).min(LANES);
            for (r, cr) in c.iter().enumerate().take(rows) {
                let dst = &mut out[(r0 + r) * n + p * LANES..];
                if valid == LANES {
                    _mm256_storeu_ps(dst.as_mut_ptr(), *cr);
                } else {
                    _mm256_storeu_ps(tmp.as_mut_ptr(), *cr);
                    dst[..valid].copy_from_slice(&tmp[..valid]);
                }
            }
        }
        r0 += 4;
    }
}

/// Bytes of centroid panels processed per cache block in [`argmax`] (fits in L2).
const ARGMAX_BLOCK_BYTES: usize = 96 * 1024;

/// See `kernel::argmax_packed`. Safety: AVX2+FMA; `n > 0`; `out.len() == nq`.
///
/// Cache blocking: the panels are walked in blocks of about [`ARGMAX_BLOCK_BYTES`]; each
/// block is swept by every group of 4 rows while it is hot in L2, the running per-lane
/// maxima and their indices being kept per row between blocks.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn argmax(query: &[f32], dim: usize, panels: &[f32], n: usize, out: &mut [(u32, f32)]) {
    let nq = query.len() / dim;
    let np = n_panels(n);
    let ps = dim * LANES;
    let pp = panels.as_ptr();
    let last_mask = lane_mask(n - (np - 1) * LANES);
    let neg = _mm256_set1_ps(f32::NEG_INFINITY);
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let block = (ARGMAX_BLOCK_BYTES / (ps * 4)).max(1);
    let groups = nq.div_ceil(4);
    let mut best_v = vec![[neg; 4]; groups];
    let mut best_i = vec![[_mm256_set1_epi32(-1); 4]; groups];
    let mut b0 = 0;
    while b0 < np {
        let b1 = (b0 + block).min(np);
        for g in 0..groups {
            let r0 = g * 4;
            let q = rows4(query.as_ptr(), r0, nq, dim);
            let mut m = best_v[g];
            let mut mi = best_i[g];
            for p in b0..b1 {
                let mut c = block1!(q, pp.add(p * ps), dim);
                if p + 1 == np {
                    for cr in c.iter_mut() {
                        *cr = _mm256_blendv_ps(neg, *cr, last_mask);
                    }
                }
                let idx = _mm256_add_epi32(lanes, _mm256_set1_epi32((p * LANES) as i32));
                for r in 0..4 {
                    // Strictly greater: within a lane the earliest column wins ties.
                    let gt = _mm256_cmp_ps(c[r], m[r], _CMP_GT_OQ);
                    m[r] = _mm256_blendv_ps(m[r], c[r], gt);
                    mi[r] = _mm256_castps_si256(_mm256_blendv_ps(
                        _mm256_castsi256_ps(mi[r]),
                        _mm256_castsi256_ps(idx),
                        gt,
                    ));
                }
            }
            best_v[g] = m;
            best_i[g] = mi;
        }
        b0 = b1;
    }
    for g in 0..groups {
        let r0 = g * 4;
        for r in 0..(nq - r0).min(4) {
            let mut vals = [0.0f32; LANES];
            let mut ids = [0i32; LANES];
            _mm256_storeu_ps(vals.as_mut_ptr(), best_v[g][r]);
            _mm256_storeu_si256(ids.as_mut_ptr() as *mut __m256i, best_i[g][r]);
            let mut best = (u32::MAX, f32::NEG_INFINITY);
            for l in 0..LANES {
                if ids[l] < 0 {
                    continue;
                }
                let (i, v) = (ids[l] as u32, vals[l]);
                if best.0 == u32::MAX || v > best.1 || (v == best.1 && i < best.0) {
                    best = (i, v);
                }
            }
            out[r0 + r] = if best.0 == u32::MAX {
                (0, f32::NAN)
            } else {
                best
            };
        }
    }
}

/// Dot products of 2 row-major tokens (`xa`, `xb`) with `G` query panels: 2·G independent
/// FMA chains, one broadcast per token and coordinate.
#[inline(always)]
unsafe fn rows_block<const G: usize>(
    qp: *const f32,
    ps: usize,
    xa: *const f32,
    xb: *const f32,
    dim: usize,
) -> ([__m256; G], [__m256; G]) {
    let mut a = [_mm256_setzero_ps(); G];
    let mut b = [_mm256_setzero_ps(); G];
    for d in 0..dim {
        let va = _mm256_broadcast_ss(&*xa.add(d));
        let vb = _mm256_broadcast_ss(&*xb.add(d));
        for g in 0..G {
            let q = _mm256_loadu_ps(qp.add(g * ps + d * LANES));
            a[g] = _mm256_fmadd_ps(va, q, a[g]);
            b[g] = _mm256_fmadd_ps(vb, q, b[g]);
        }
    }
    (a, b)
}

/// Running maxima of `G` query panels (starting at `qp`) over all tokens, summed over
/// the `nq_here` real query rows of those panels.
#[inline(always)]
unsafe fn rows_sweep<const G: usize>(
    qp: *const f32,
    nq_here: usize,
    dim: usize,
    rows: &[f32],
    scales: &[f32],
) -> f32 {
    let ps = dim * LANES;
    let ntok = scales.len();
    let mut m = [_mm256_set1_ps(f32::NEG_INFINITY); G];
    let rp = rows.as_ptr();
    let mut t = 0;
    while t < ntok {
        // An odd last token is paired with itself (the max is unchanged).
        let t1 = if t + 1 < ntok { t + 1 } else { t };
        let (a, b) = rows_block::<G>(qp, ps, rp.add(t * dim), rp.add(t1 * dim), dim);
        let sa = _mm256_set1_ps(scales[t]);
        let sb = _mm256_set1_ps(scales[t1]);
        for g in 0..G {
            m[g] = _mm256_max_ps(
                m[g],
                _mm256_max_ps(_mm256_mul_ps(a[g], sa), _mm256_mul_ps(b[g], sb)),
            );
        }
        t += 2;
    }
    let mut vals = [0.0f32; LANES];
    let mut total = 0.0f32;
    for (g, mg) in m.iter().enumerate() {
        _mm256_storeu_ps(vals.as_mut_ptr(), *mg);
        let valid = nq_here.saturating_sub(g * LANES).min(LANES);
        total += vals[..valid].iter().sum::<f32>();
    }
    total
}

/// See `kernel::maxsim_rows`. Safety: AVX2+FMA; `nq, ntok > 0`; `q_panels` holds
/// `n_panels(nq)` panels and `rows` `ntok · dim` floats.
///
/// Blocking: up to 5 query panels (40 query rows) x 2 document tokens per step, 10
/// accumulators; the query block stays in L1 while the document's rows stream by.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn maxsim_rows(
    q_panels: &[f32],
    nq: usize,
    dim: usize,
    rows: &[f32],
    scales: &[f32],
) -> f32 {
    let ng = n_panels(nq);
    let ps = dim * LANES;
    let mut total = 0.0f32;
    let mut g0 = 0;
    while g0 < ng {
        let qp = q_panels.as_ptr().add(g0 * ps);
        let here = nq - g0 * LANES;
        let g = (ng - g0).min(5);
        total += match g {
            5 => rows_sweep::<5>(qp, here, dim, rows, scales),
            4 => rows_sweep::<4>(qp, here, dim, rows, scales),
            3 => rows_sweep::<3>(qp, here, dim, rows, scales),
            2 => rows_sweep::<2>(qp, here, dim, rows, scales),
            _ => rows_sweep::<1>(qp, here, dim, rows, scales),
        };
        g0 += g;
    }
    total
}

/// Dot products of every row-major token with `G` query panels (starting at `qp`),
/// stored as `G · LANES` contiguous floats per token at `out + t · stride`.
#[inline(always)]
unsafe fn rows_store<const G: usize>(
    qp: *const f32,
    dim: usize,
    rows: &[f32],
    out: *mut f32,
    stride: usize,
) {
    let ps = dim * LANES;
    let ntok = rows.len() / dim;
    let rp = rows.as_ptr();
    let mut t = 0;
    while t < ntok {
        let t1 = if t + 1 < ntok { t + 1 } else { t };
        let (a, b) = rows_block::<G>(qp, ps, rp.add(t * dim), rp.add(t1 * dim), dim);
        for (g, v) in a.iter().enumerate() {
            _mm256_storeu_ps(out.add(t * stride + g * LANES), *v);
        }
        if t1 != t {
            for (g, v) in b.iter().enumerate() {
                _mm256_storeu_ps(out.add(t1 * stride + g * LANES), *v);
            }
        }
        t += 2;
    }
}

/// See `kernel::rows_scores`. Safety: AVX2+FMA; `q_panels` holds `n_panels(nq)` panels
/// and `out` `rows.len() / dim · n_panels(nq) · LANES` floats.
///
/// Blocking as [`maxsim_rows`]: up to 5 query panels x 2 rows per step (10 accumulators),
/// so each row is read once per 5 panels and every FMA shares its loads.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn rows_scores(q_panels: &[f32], nq: usize, dim: usize, rows: &[f32], out: &mut [f32]) {
    let ng = n_panels(nq);
    let stride = ng * LANES;
    let ps = dim * LANES;
    let mut g0 = 0;
    while g0 < ng {
        let qp = q_panels.as_ptr().add(g0 * ps);
        let o = out.as_mut_ptr().add(g0 * LANES);
        let g = (ng - g0).min(5);
        match g {
            5 => rows_store::<5>(qp, dim, rows, o, stride),
            4 => rows_store::<4>(qp, dim, rows, o, stride),
            3 => rows_store::<3>(qp, dim, rows, o, stride),
            2 => rows_store::<2>(qp, dim, rows, o, stride),
            _ => rows_store::<1>(qp, dim, rows, o, stride),
        }
        g0 += g;
    }
}

/// See `kernel::centroid_scores`. Safety: AVX2+FMA; `panels` holds `n_panels(n)` panels,
/// `out` `n · stride` floats with `stride >= nq`.
///
/// Blocking: 2 centroid panels (16 centroids) x up to 6 query rows per step, 12
/// accumulators; each step loads 2 panel vectors and broadcasts 6 query coordinates per
/// dimension, so a short query reads the centroids once at 12 FMA per 8 loads.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn centroid_scores(
    query: &[f32],
    dim: usize,
    panels: &[f32],
    n: usize,
    out: &mut [f32],
    stride: usize,
) {
    let nq = query.len() / dim;
    let np = n_panels(n);
    let ps = dim * LANES;
    let mut r0 = 0;
    while r0 < nq {
        let rows = (nq - r0).min(6);
        match rows {
            6 => centroid_block::<6>(query, r0, dim, panels, np, ps, n, out, stride),
            5 => centroid_block::<5>(query, r0, dim, panels, np, ps, n, out, stride),
            4 => centroid_block::<4>(query, r0, dim, panels, np, ps, n, out, stride),
            3 => centroid_block::<3>(query, r0, dim, panels, np, ps, n, out, stride),
            2 => centroid_block::<2>(query, r0, dim, panels, np, ps, n, out, stride),
            _ => centroid_block::<1>(query, r0, dim, panels, np, ps, n, out, stride),
        }
        r0 += rows;
    }
}

/// `R` query rows from `r0` against every panel, two panels per step (an odd last panel
/// is paired with itself and written once).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn centroid_block<const R: usize>(
    query: &[f32],
    r0: usize,
    dim: usize,
    panels: &[f32],
    np: usize,
    ps: usize,
    n: usize,
    out: &mut [f32],
    stride: usize,
) {
    let qp = query.as_ptr().add(r0 * dim);
    let pp = panels.as_ptr();
    let mut tmp = [0.0f32; LANES];
    let mut p = 0;
    while p < np {
        let p1 = if p + 1 < np { p + 1 } else { p };
        let (a, b) = (pp.add(p * ps), pp.add(p1 * ps));
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for d in 0..dim {
            let va = _mm256_loadu_ps(a.add(d * LANES));
            let vb = _mm256_loadu_ps(b.add(d * LANES));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*qp.add(r * dim + d));
                acc_r[0] = _mm256_fmadd_ps(x, va, acc_r[0]);
                acc_r[1] = _mm256_fmadd_ps(x, vb, acc_r[1]);
            }
        }
        for (half, panel) in [(0usize, p), (1, p1)] {
            if half == 1 && p1 == p {
                break;
            }
            let valid = (n - panel * LANES).min(LANES);
            for (r, acc_r) in acc.iter().enumerate() {
                _mm256_storeu_ps(tmp.as_mut_ptr(), acc_r[half]);
                for (l, &v) in tmp.iter().enumerate().take(valid) {
                    *out.get_unchecked_mut((panel * LANES + l) * stride + r0 + r) = v;
                }
            }
        }
        p += 2;
    }
}
