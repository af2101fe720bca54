//! The 8-bit PLAID rerank: MaxSim over decompressed tokens computed from the compressed
//! form, without writing the tokens out as floats.
//!
//! Contract: a token is `x = c + w` (centroid `c`, residual `w` of bucket weights) and is
//! scored normalised, so `q · x̂ = (q · c + q · w) / ‖c + w‖`. The search already holds
//! `S[c][r] = c · q_r` (the stage-1 query-centroid matrix, exact f32), so only `q · w` is
//! left, and it runs in 8-bit integers:
//! - the residual is decoded to one byte per dimension, `w8 + 128` with
//!   `w ≈ ws · w8` ([`crate::codec::ResidualCodec::decode_u8`]);
//! - each query token is quantized symmetrically, `q_r ≈ qs_r · q8_r`, `q8_r` in
//!   -127..=127 with the largest coordinate at ±127;
//! - `q_r · w ≈ qs_r · ws · (Σ_d u_d · q8_rd − 128 · Σ_d q8_rd)`, exact in i32;
//! - `1 / ‖c + w‖` is exact f32, from the index's per-chunk cache
//!   (`PlaidIndex::doc_inv_norms`, 1 for a zero vector as in the f32 path).
//!
//! The score is `Σ_r max_t (S[c_t][r] + qs_r ws dot_tr) / ‖c_t + w_t‖`. Against the f32
//! rerank over the same reconstructed tokens this differs only by the rounding of `q`
//! and `w` to 8 bits (about 1e-4 per query token at nbits 2, see the tests). On x86_64 with AVX-512 F/BW/VNNI (detected at
//! run time) one `vpdpbusd` does 64 multiply-adds: blocks of 4 document tokens x up to
//! 64 query tokens, no horizontal sum in the inner loop. [`available`] says whether it
//! runs; the search falls back to the f32 rerank when it does not. [`score_scalar`] is
//! the portable reference with the same arithmetic.

use crate::codec::ResidualCodec;
use crate::codec::{Code, Codes};

/// Query tokens per 512-bit lane group.
const QL: usize = 16;

/// Whether the SIMD 8-bit rerank can run on this CPU.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A query quantized for the 8-bit rerank.
pub(crate) struct QueryI8 {
    nq: usize,
    dim: usize,
    /// `ceil(nq / 16)` groups; group `j`, dimension quad `g`: 16 tokens x 4 bytes at
    /// `((j · dim/4) + g) · 64` (zero for padding tokens).
    packed: Vec<i8>,
    /// `qs_r · ws` per (padded) token, 0 for padding.
    scale: Vec<f32>,
    /// `128 · Σ_d q8_rd` per (padded) token.
    corr: Vec<i32>,
    /// The codec's residual decoding tables (SIMD path).
    tables: DecodeTables,
}

/// The constant byte vectors of the VBMI residual decode for one codec: per output byte
/// `k` of 64, the residual byte it comes from, the bit offset of its bucket in the
/// 64-bit word, and the offset-binary byte of each bucket (repeated per 16-byte lane).
pub(crate) struct DecodeTables {
    nbits: usize,
    idx: [u8; 64],
    ctrl: [u8; 64],
    tab: [u8; 64],
}

impl DecodeTables {
    pub(crate) fn new(codec: &ResidualCodec) -> Self {
        let nbits = codec.nbits();
        let vpb = 8 / nbits;
        let bucket = codec.bucket_u8();
        let (mut idx, mut ctrl, mut tab) = ([0u8; 64], [0u8; 64], [0u8; 64]);
        for k in 0..64 {
            idx[k] = (k / vpb) as u8;
            // dimension j of a byte sits at bits 8 - nbits (j + 1) .. (most significant first)
            ctrl[k] = (8 * (k % 8) + 8 - nbits * (k % vpb + 1)) as u8;
            tab[k] = bucket[k % 16];
        }
        Self {
            nbits,
            idx,
            ctrl,
            tab,
        }
    }
}

impl QueryI8 {
    /// Quantizes a row-major query (`nq x dim`, `dim` a multiple of 4) for `codec`.
    pub(crate) fn new(q: &[f32], codec: &ResidualCodec) -> Self {
        let (dim, ws) = (codec.dim(), codec.int8_scale());
        assert!(
            dim.is_multiple_of(4),
            "QueryI8: dim must be a multiple of 4"
        );
        let nq = q.len() / dim;
        let groups = nq.div_ceil(QL);
        let quads = dim / 4;
        let mut packed = vec![0i8; groups * quads * QL * 4];
        let mut scale = vec![0.0f32; groups * QL];
        let mut corr = vec![0i32; groups * QL];
        for (r, row) in q.chunks_exact(dim).enumerate() {
            let m = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let qs = if m > 0.0 { m / 127.0 } else { 0.0 };
            let (j, l) = (r / QL, r % QL);
            let mut sum = 0i32;
            for (d, &v) in row.iter().enumerate() {
                let q8 = if qs > 0.0 {
                    (v / qs).round().clamp(-127.0, 127.0) as i8
                } else {
                    0
                };
                sum += q8 as i32;
                packed[((j * quads + d / 4) * QL + l) * 4 + d % 4] = q8;
            }
            scale[r] = qs * ws;
            corr[r] = 128 * sum;
        }
        Self {
            nq,
            dim,
            packed,
            scale,
            corr,
            tables: DecodeTables::new(codec),
        }
    }

    fn q8(&self, r: usize, d: usize) -> i32 {
        let quads = self.dim / 4;
        self.packed[(((r / QL) * quads + d / 4) * QL + r % QL) * 4 + d % 4] as i32
    }
}

/// Per-thread buffers of the rerank.
#[derive(Default)]
pub(crate) struct Scratch {
    u: Vec<u8>,
    offsets: Vec<usize>,
}

/// Decodes one document into `s`: offset-binary residual bytes (unless `decoded`: already
/// in `s.u`) and the offset of each token's row in `st`.
fn prepare(
    codec: &ResidualCodec,
    stride: usize,
    codes: Codes<'_>,
    res: &[u8],
    s: &mut Scratch,
    decoded: bool,
) {
    if !decoded {
        codec.decode_u8(res, &mut s.u);
    }
    s.offsets.clear();
    match codes {
        Codes::U16(c) => s.offsets.extend(c.iter().map(|&c| c.idx() * stride)),
        Codes::U32(c) => s.offsets.extend(c.iter().map(|&c| c.idx() * stride)),
    }
}

/// One document's compressed tokens, as the rerank reads them.
#[derive(Clone, Copy)]
pub(crate) struct Doc<'a> {
    pub(crate) codes: Codes<'a>,
    /// Residual bytes, `bytes_per_token` per token.
    pub(crate) res: &'a [u8],
    /// Inverse norms of the reconstructed tokens.
    pub(crate) inv: &'a [f32],
}

/// Rerank score of one document (see the module docs): SIMD when [`available`], else
/// the scalar reference. `st` is the query-centroid matrix, `stride` floats per
/// centroid, column `r` = query token `r`.
pub(crate) fn score(
    q: &QueryI8,
    (st, stride): (&[f32], usize),
    codec: &ResidualCodec,
    doc: &Doc<'_>,
    s: &mut Scratch,
) -> f32 {
    let Doc { codes, inv, .. } = *doc;
    assert_eq!(
        inv.len(),
        codes.len(),
        "rerank8: one inverse norm per token"
    );
    if q.nq == 0 || codes.is_empty() {
        return 0.0;
    }
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: AVX-512 F/BW/VNNI detected; the document has tokens.
        return unsafe { simd::score(q, (st, stride), codec, doc, s) };
    }
    score_scalar(q, (st, stride), codec, doc, s)
}

/// Portable reference of [`score`] (same quantization, scalar arithmetic).
pub(crate) fn score_scalar(
    q: &QueryI8,
    (st, stride): (&[f32], usize),
    codec: &ResidualCodec,
    doc: &Doc<'_>,
    s: &mut Scratch,
) -> f32 {
    let Doc { codes, res, inv } = *doc;
    if q.nq == 0 || codes.is_empty() {
        return 0.0;
    }
    prepare(codec, stride, codes, res, s, false);
    score_prepared_scalar(q, st, inv, s)
}

fn score_prepared_scalar(q: &QueryI8, st: &[f32], inv: &[f32], s: &Scratch) -> f32 {
    let dim = q.dim;
    (0..q.nq)
        .map(|r| {
            s.u.chunks_exact(dim)
                .zip(&s.offsets)
                .zip(inv)
                .map(|((u, &off), &inv)| {
                    let dot: i32 = u
                        .iter()
                        .enumerate()
                        .map(|(d, &b)| b as i32 * q.q8(r, d))
                        .sum();
                    (st[off + r] + q.scale[r] * (dot - q.corr[r]) as f32) * inv
                })
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .sum()
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{DecodeTables, Doc, QueryI8, Scratch, QL};
    use crate::codec::ResidualCodec;
    use std::arch::x86_64::*;

    /// Σ over `G` query groups (starting at group `j0`) of the max over all tokens.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // register blocks indexed [token][group]
    unsafe fn groups<const G: usize>(
        q: &QueryI8,
        j0: usize,
        st: &[f32],
        inv: &[f32],
        s: &Scratch,
    ) -> f32 {
        let dim = q.dim;
        let quads = dim / 4;
        let ntok = inv.len();
        let up = s.u.as_ptr();
        let qp = q.packed.as_ptr();
        let mut corr = [_mm512_setzero_si512(); G];
        let mut scale = [_mm512_setzero_ps(); G];
        let mut mask = [0u16; G];
        for j in 0..G {
            let jj = j0 + j;
            corr[j] = _mm512_loadu_si512(q.corr.as_ptr().add(jj * QL) as *const _);
            scale[j] = _mm512_loadu_ps(q.scale.as_ptr().add(jj * QL));
            let valid = (q.nq - jj * QL).min(QL);
            mask[j] = if valid == QL {
                u16::MAX
            } else {
                (1u16 << valid) - 1
            };
        }
        let mut best = [_mm512_set1_ps(f32::NEG_INFINITY); G];
        let mut t0 = 0;
        while t0 < ntok {
            // a short last block repeats its last token (the max is unchanged)
            let ts = [
                t0,
                (t0 + 1).min(ntok - 1),
                (t0 + 2).min(ntok - 1),
                (t0 + 3).min(ntok - 1),
            ];
            let mut acc = [[_mm512_setzero_si512(); G]; 4];
            for g in 0..quads {
                let mut b = [_mm512_setzero_si512(); 4];
                for i in 0..4 {
                    let p = up.add(ts[i] * dim + g * 4) as *const i32;
                    b[i] = _mm512_set1_epi32(p.read_unaligned());
                }
                for j in 0..G {
                    let qv =
                        _mm512_loadu_si512(qp.add(((j0 + j) * quads + g) * QL * 4) as *const _);
                    for i in 0..4 {
                        acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], b[i], qv);
                    }
                }
            }
            for i in 0..4 {
                let t = ts[i];
                let inv_t = _mm512_set1_ps(*inv.get_unchecked(t));
                let row = st.as_ptr().add(*s.offsets.get_unchecked(t));
                for j in 0..G {
                    let dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][j], corr[j]));
                    let sv = _mm512_maskz_loadu_ps(mask[j], row.add((j0 + j) * QL));
                    let v = _mm512_mul_ps(_mm512_fmadd_ps(dot, scale[j], sv), inv_t);
                    best[j] = _mm512_max_ps(best[j], v);
                }
            }
            t0 += 4;
        }
        // padding lanes score exactly 0 (zero query, zero scale, masked S)
        let mut total = 0.0f32;
        for b in best {
            total += _mm512_reduce_add_ps(b);
        }
        total
    }

    pub(super) fn has_vbmi() -> bool {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx512vbmi"))
    }

    /// [`ResidualCodec::decode_u8`] with AVX-512 VBMI (tables from [`DecodeTables`]):
    /// per 64 dimensions, one byte permute copies each residual byte to its `8 / nbits`
    /// dimensions, one multishift brings each dimension's bits down, a mask and a
    /// 16-entry shuffle map bucket to byte. Safety: AVX-512 F/BW/VBMI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) unsafe fn decode_vbmi(res: &[u8], t: &DecodeTables, out: &mut Vec<u8>) {
        let nbits = t.nbits;
        let vpb = 8 / nbits;
        out.resize(res.len() * vpb, 0);
        let idx = _mm512_loadu_si512(t.idx.as_ptr() as *const _);
        let ctrl = _mm512_loadu_si512(t.ctrl.as_ptr() as *const _);
        let tab = _mm512_loadu_si512(t.tab.as_ptr() as *const _);
        let mask = _mm512_set1_epi8(((1u32 << nbits) - 1) as i8);
        let per = 64 / vpb; // residual bytes per 64 dimensions
        let full = res.len() / per;
        for i in 0..full {
            let p = res.as_ptr().add(i * per);
            let src = match per {
                8 => _mm512_castsi128_si512(_mm_loadl_epi64(p as *const _)),
                16 => _mm512_castsi128_si512(_mm_loadu_si128(p as *const _)),
                _ => _mm512_castsi256_si512(_mm256_loadu_si256(p as *const _)),
            };
            let spread = _mm512_permutexvar_epi8(idx, src);
            let bits = _mm512_and_si512(_mm512_multishift_epi64_epi8(ctrl, spread), mask);
            let o = _mm512_shuffle_epi8(tab, bits);
            _mm512_storeu_si512(out.as_mut_ptr().add(i * 64) as *mut _, o);
        }
        let m = (1u8 << nbits) - 1;
        for (j, &b) in res.iter().enumerate().skip(full * per) {
            for v in 0..vpb {
                out[j * vpb + v] = t.tab[((b >> (8 - nbits * (v + 1))) & m) as usize];
            }
        }
    }

    /// Safety: AVX-512 F/BW/VNNI; the document has at least one token.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn score(
        q: &QueryI8,
        (st, stride): (&[f32], usize),
        codec: &ResidualCodec,
        doc: &Doc<'_>,
        s: &mut Scratch,
    ) -> f32 {
        let Doc { codes, res, inv } = *doc;
        let fast_decode = has_vbmi();
        if fast_decode {
            decode_vbmi(res, &q.tables, &mut s.u);
        }
        super::prepare(codec, stride, codes, res, s, fast_decode);
        let last = s.offsets.iter().max().copied().unwrap_or(0);
        assert!(last + q.nq <= st.len(), "rerank8: score matrix too short");
        let ng = q.nq.div_ceil(QL);
        let mut total = 0.0f32;
        let mut j0 = 0;
        while j0 < ng {
            let g = (ng - j0).min(4);
            total += match g {
                4 => groups::<4>(q, j0, st, inv, s),
                3 => groups::<3>(q, j0, st, inv, s),
                2 => groups::<2>(q, j0, st, inv, s),
                _ => groups::<1>(q, j0, st, inv, s),
            };
            j0 += g;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::evenly_spaced;
    use rand::{Rng, SeedableRng};

    /// Unit vectors near a few directions, like real token embeddings.
    fn unit_rows(rng: &mut rand_chacha::ChaCha8Rng, n: usize, dim: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let row: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            out.extend(row.iter().map(|v| v / norm));
        }
        out
    }

    #[test]
    fn simd_equals_scalar_and_both_track_the_f32_rerank() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(41);
        let dim = 64;
        let kc = 12;
        let centroids = unit_rows(&mut rng, kc, dim);
        for nbits in [1usize, 2, 4] {
            let codec = evenly_spaced(dim, nbits, (-0.1, 0.2), (-0.09, 0.18, 0.5));
            for &(nq, ntok) in &[(36usize, 9usize), (1, 1), (16, 4), (70, 5), (32, 130)] {
                let qf = unit_rows(&mut rng, nq, dim);
                let mut q_panels = Vec::new();
                crate::kernel::pack_panels(&qf, dim, &mut q_panels);
                let stride = crate::kernel::n_panels(nq) * crate::kernel::LANES;
                let mut st = vec![0.0f32; kc * stride];
                crate::kernel::rows_scores(&q_panels, nq, dim, &centroids, &mut st);
                let codes: Vec<u16> = (0..ntok).map(|_| rng.random_range(0..kc as u16)).collect();
                let res: Vec<u8> = (0..ntok * codec.bytes_per_token())
                    .map(|_| rng.random())
                    .collect();
                let q8 = QueryI8::new(&qf, &codec);
                let mut s = Scratch::default();
                let (mut rows, mut scales) = (Vec::new(), Vec::new());
                codec.decode_rows(&centroids, Codes::U16(&codes), &res, &mut rows, &mut scales);
                let doc = Doc {
                    codes: Codes::U16(&codes),
                    res: &res,
                    inv: &scales,
                };
                let fast = score(&q8, (&st, stride), &codec, &doc, &mut s);
                let slow = score_scalar(&q8, (&st, stride), &codec, &doc, &mut s);
                assert!(
                    (fast - slow).abs() < 1e-4 * nq as f32,
                    "nbits {nbits} {nq}x{ntok}: {fast} vs {slow}"
                );
                let f32_score = crate::kernel::maxsim_rows(&q_panels, nq, dim, &rows, &scales);
                // 8-bit q and w: at most 1.5e-4 per query token measured on this data
                assert!(
                    (fast - f32_score).abs() < 5e-4 * nq as f32,
                    "nbits {nbits} {nq}x{ntok}: int8 {fast} vs f32 {f32_score}"
                );
            }
        }
    }

    #[test]
    fn vbmi_decode_equals_the_codec_lookup() {
        #[cfg(target_arch = "x86_64")]
        if simd::has_vbmi() {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
            for nbits in [1usize, 2, 4] {
                let codec = evenly_spaced(128, nbits, (-0.1, 0.2), (-0.2, 0.4, 0.0));
                let bpt = codec.bytes_per_token();
                for ntok in [1usize, 2, 3, 17] {
                    // plus a ragged tail, as the SIMD loop goes by 64 dimensions
                    for extra in [0usize, 5] {
                        let res: Vec<u8> = (0..ntok * bpt + extra).map(|_| rng.random()).collect();
                        let (mut want, mut got) = (Vec::new(), vec![7u8; 3]);
                        codec.decode_u8(&res, &mut want);
                        // SAFETY: VBMI detected (F and BW come with it on every such CPU)
                        unsafe { simd::decode_vbmi(&res, &DecodeTables::new(&codec), &mut got) };
                        assert_eq!(got, want, "nbits {nbits}, {ntok} tokens + {extra} bytes");
                    }
                }
            }
        }
    }

    #[test]
    fn empty_document_or_query_scores_zero() {
        let codec = ResidualCodec::new(
            8,
            2,
            vec![-0.1, 0.0, 0.1],
            vec![-0.2, -0.05, 0.05, 0.2],
            0.3,
        )
        .unwrap();
        let q8 = QueryI8::new(&[0.5; 8], &codec);
        let mut s = Scratch::default();
        let empty: [u16; 0] = [];
        let none = Doc {
            codes: Codes::U16(&empty),
            res: &[],
            inv: &[],
        };
        assert_eq!(score(&q8, (&[0.0; 8], 8), &codec, &none, &mut s), 0.0);
        let q0 = QueryI8::new(&[], &codec);
        let one = Doc {
            codes: Codes::U16(&[0]),
            res: &[0, 0],
            inv: &[1.0],
        };
        assert_eq!(score(&q0, (&[0.0; 8], 8), &codec, &one, &mut s), 0.0);
    }
}
