//! Residual codec: a token is stored as its nearest centroid's index plus its residual
//! quantized to `nbits` per dimension (PLAID / fast-plaid compression).
//!
//! Contract:
//! - Training (on held-out sample tokens): residual `r = x - c[nearest(x)]`;
//!   `bucket_cutoffs` are the quantiles of all residual values at `i / 2^nbits`
//!   (i = 1..2^nbits-1), `bucket_weights` the quantiles at `(i + 0.5) / 2^nbits`
//!   (i = 0..2^nbits-1); `cluster_threshold` is the 0.75 quantile of the residual L2 norms
//!   (used by updates to detect outliers). Quantiles interpolate linearly between order
//!   statistics (as `torch.quantile`).
//! - Encoding: value `v` goes to bucket `#{cutoffs < v}`; buckets are packed `nbits` at a
//!   time, most significant bits first, `dim · nbits / 8` bytes per token
//!   (`dim · nbits` must be a multiple of 8). nbits ∈ {1, 2, 4}.
//! - Decoding: `x̂ = normalize(c + weights[bucket])`, through a 256-entry lookup table
//!   per byte. The search rerank decodes `c + weights[bucket]` and the inverse norm
//!   separately (`decode_rows`) and scales the dot products instead of the vectors.

use crate::error::{IndexError, Result};
use crate::kernel::argmax_packed;
use rayon::prelude::*;

/// Quantile `q ∈ [0, 1]` of sorted values, interpolating linearly.
pub fn quantile_sorted(sorted: &[f32], q: f64) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = (pos - lo as f64) as f32;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// `out = centroid + lut[byte]` for every residual byte (`V` values per byte); returns
/// the squared norm of `out`.
#[inline]
fn decode_raw<const V: usize>(lut: &[f32], centroid: &[f32], bytes: &[u8], out: &mut [f32]) -> f32 {
    let mut acc = [0.0f32; V];
    for ((&b, c), o) in bytes
        .iter()
        .zip(centroid.chunks_exact(V))
        .zip(out.chunks_exact_mut(V))
    {
        let w = &lut[b as usize * V..b as usize * V + V];
        for j in 0..V {
            let v = c[j] + w[j];
            o[j] = v;
            acc[j] += v * v;
        }
    }
    acc.iter().sum()
}

/// The trained residual quantizer.
#[derive(Debug, Clone, PartialEq)]
pub struct ResidualCodec {
    dim: usize,
    nbits: usize,
    cutoffs: Vec<f32>,
    weights: Vec<f32>,
    cluster_threshold: f32,
    lut: Vec<f32>,
    /// `w8[bucket] + 128` per value of each byte (see [`Self::decode_u8`]).
    lut_u8: Vec<u8>,
    /// `max |weights| / 127`: `weights[b] ≈ w_scale · w8[b]` with `w8` in -127..=127.
    w_scale: f32,
}

impl ResidualCodec {
    /// Rebuilds a codec from its parameters (validated).
    pub fn new(
        dim: usize,
        nbits: usize,
        cutoffs: Vec<f32>,
        weights: Vec<f32>,
        cluster_threshold: f32,
    ) -> Result<Self> {
        if ![1, 2, 4].contains(&nbits) {
            return Err(IndexError::Invalid(format!(
                "nbits must be 1, 2 or 4, got {nbits}"
            )));
        }
        if dim == 0 || !(dim * nbits).is_multiple_of(8) {
            return Err(IndexError::Invalid(format!(
                "dim · nbits must be a positive multiple of 8 (dim {dim}, nbits {nbits})"
            )));
        }
        let nb = 1usize << nbits;
        if cutoffs.len() != nb - 1 || weights.len() != nb {
            return Err(IndexError::Invalid(format!(
                "codec with nbits {nbits} needs {} cutoffs and {nb} weights, got {} and {}",
                nb - 1,
                cutoffs.len(),
                weights.len()
            )));
        }
        let vpb = 8 / nbits;
        let mask = (nb - 1) as u8;
        let mut lut = Vec::with_capacity(256 * vpb);
        for byte in 0..256usize {
            for j in 0..vpb {
                let b = ((byte as u8) >> (8 - nbits * (j + 1))) & mask;
                lut.push(weights[b as usize]);
            }
        }
        let wmax = weights.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        let w_scale = if wmax > 0.0 { wmax / 127.0 } else { 1.0 };
        let lut_u8 = lut
            .iter()
            .map(|&w| ((w / w_scale).round().clamp(-127.0, 127.0) as i32 + 128) as u8)
            .collect();
        Ok(Self {
            dim,
            nbits,
            cutoffs,
            weights,
            cluster_threshold,
            lut,
            lut_u8,
            w_scale,
        })
    }

    /// Trains the quantizer on held-out tokens (`n x dim`) against unit `centroids`
    /// (row-major, `k` rows, also given in panel layout).
    pub fn train(
        heldout: &[f32],
        dim: usize,
        centroids: &[f32],
        centroid_panels: &[f32],
        nbits: usize,
    ) -> Result<Self> {
        let k = centroids.len() / dim;
        let n = heldout.len() / dim;
        if n == 0 || k == 0 {
            return Err(IndexError::Invalid(
                "codec training needs at least one token and one centroid".into(),
            ));
        }
        let codes = crate::kmeans::assign(heldout, dim, centroid_panels, k);
        let mut values = Vec::with_capacity(n * dim);
        let mut norms = Vec::with_capacity(n);
        for (x, &(c, _)) in heldout.chunks_exact(dim).zip(&codes) {
            let cent = &centroids[c as usize * dim..(c as usize + 1) * dim];
            let mut sq = 0.0f32;
            for (a, b) in x.iter().zip(cent) {
                values.push(a - b);
                sq += (a - b) * (a - b);
            }
            norms.push(sq.sqrt());
        }
        values.par_sort_unstable_by(f32::total_cmp);
        norms.sort_unstable_by(f32::total_cmp);
        let nb = 1usize << nbits.min(8);
        let cutoffs = (1..nb)
            .map(|i| quantile_sorted(&values, i as f64 / nb as f64))
            .collect();
        let weights = (0..nb)
            .map(|i| quantile_sorted(&values, (i as f64 + 0.5) / nb as f64))
            .collect();
        Self::new(dim, nbits, cutoffs, weights, quantile_sorted(&norms, 0.75))
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Bits per dimension.
    pub fn nbits(&self) -> usize {
        self.nbits
    }
    /// Bucket boundaries (`2^nbits - 1`, ascending).
    pub fn cutoffs(&self) -> &[f32] {
        &self.cutoffs
    }
    /// Bucket reconstruction values (`2^nbits`).
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }
    /// 0.75 quantile of training residual norms.
    pub fn cluster_threshold(&self) -> f32 {
        self.cluster_threshold
    }
    /// Residual bytes per token: `dim · nbits / 8`.
    pub fn bytes_per_token(&self) -> usize {
        self.dim * self.nbits / 8
    }

    /// Scale of the 8-bit bucket weights: `weights[b] ≈ int8_scale() · w8[b]`, with
    /// `w8[b] = round(weights[b] / int8_scale())` in -127..=127 (the largest weight
    /// exactly ±127).
    pub fn int8_scale(&self) -> f32 {
        self.w_scale
    }

    /// The offset-binary byte of each bucket, `w8[b] + 128` (`2^nbits` entries, padded
    /// with zeros to 16).
    pub(crate) fn bucket_u8(&self) -> [u8; 16] {
        let vpb = 8 / self.nbits;
        let mut out = [0u8; 16];
        for (b, o) in out.iter_mut().enumerate().take(1 << self.nbits) {
            // byte b << (8 - nbits) holds bucket b in its first (most significant) value
            *o = self.lut_u8[(b << (8 - self.nbits)) * vpb];
        }
        out
    }

    /// Decodes residual bytes into one byte per dimension, `w8[bucket] + 128` (offset
    /// binary, for unsigned x signed 8-bit dot products); `out` is resized to
    /// `res.len() · 8 / nbits` (`dim` per token).
    pub fn decode_u8(&self, res: &[u8], out: &mut Vec<u8>) {
        fn run<const V: usize>(lut: &[u8], res: &[u8], out: &mut [u8]) {
            for (&b, o) in res.iter().zip(out.chunks_exact_mut(V)) {
                o.copy_from_slice(&lut[b as usize * V..b as usize * V + V]);
            }
        }
        out.resize(res.len() * (8 / self.nbits), 0);
        match self.nbits {
            1 => run::<8>(&self.lut_u8, res, out),
            2 => run::<4>(&self.lut_u8, res, out),
            _ => run::<2>(&self.lut_u8, res, out),
        }
    }

    /// Quantizes `x - centroid` into `out` (`bytes_per_token` bytes).
    pub fn encode_residual(&self, x: &[f32], centroid: &[f32], out: &mut [u8]) {
        let vpb = 8 / self.nbits;
        out.iter_mut().for_each(|b| *b = 0);
        for (d, (a, c)) in x.iter().zip(centroid).enumerate() {
            let v = a - c;
            let bucket = self.cutoffs.partition_point(|&cut| cut < v) as u8;
            out[d / vpb] |= bucket << (8 - self.nbits * (d % vpb + 1));
        }
    }

    /// Reconstructs a unit token from its centroid and residual bytes into `out`.
    pub fn decode_into(&self, centroid: &[f32], bytes: &[u8], out: &mut [f32]) {
        let sq = match self.nbits {
            1 => decode_raw::<8>(&self.lut, centroid, bytes, out),
            2 => decode_raw::<4>(&self.lut, centroid, bytes, out),
            _ => decode_raw::<2>(&self.lut, centroid, bytes, out),
        };
        if sq > 0.0 {
            let inv = 1.0 / sq.sqrt();
            out.iter_mut().for_each(|v| *v *= inv);
        }
    }

    /// Decodes a document's tokens (codes + residual bytes) row-major into `rows`
    /// *without* normalising them (`c + weights[bucket]`), and their inverse norms into
    /// `scales` (1 for a zero vector, as [`Self::decode_into`] leaves it unchanged):
    /// `rows_t · scales[t]` is what `decode_into` gives. Both are resized to fit; meant
    /// for [`crate::kernel::maxsim_rows`], which folds the scale into the dot products.
    pub(crate) fn decode_rows(
        &self,
        centroids: &[f32],
        codes: Codes<'_>,
        res: &[u8],
        rows: &mut Vec<f32>,
        scales: &mut Vec<f32>,
    ) {
        match codes {
            Codes::U16(c) => self.decode_rows_t(centroids, c, res, rows, scales),
            Codes::U32(c) => self.decode_rows_t(centroids, c, res, rows, scales),
        }
    }

    fn decode_rows_t<C: Code>(
        &self,
        centroids: &[f32],
        codes: &[C],
        res: &[u8],
        rows: &mut Vec<f32>,
        scales: &mut Vec<f32>,
    ) {
        let dim = self.dim;
        let bpt = self.bytes_per_token();
        rows.resize(codes.len() * dim, 0.0);
        scales.clear();
        for ((&c, out), bytes) in codes
            .iter()
            .zip(rows.chunks_exact_mut(dim))
            .zip(res.chunks_exact(bpt))
        {
            let c = c.idx();
            let cent = &centroids[c * dim..(c + 1) * dim];
            let sq = match self.nbits {
                1 => decode_raw::<8>(&self.lut, cent, bytes, out),
                2 => decode_raw::<4>(&self.lut, cent, bytes, out),
                _ => decode_raw::<2>(&self.lut, cent, bytes, out),
            };
            scales.push(if sq > 0.0 { 1.0 / sq.sqrt() } else { 1.0 });
        }
    }

    /// The inverse norms of tokens' reconstructions `c + weights[bucket]` (1 for a zero
    /// vector), as [`Self::decode_rows`] gives them, decoded 1,024 tokens at a time.
    pub(crate) fn inv_norms(&self, centroids: &[f32], codes: Codes<'_>, res: &[u8]) -> Vec<f32> {
        let bpt = self.bytes_per_token();
        let (mut rows, mut scales) = (Vec::new(), Vec::new());
        let mut out = Vec::with_capacity(codes.len());
        let mut a = 0;
        while a < codes.len() {
            let b = (a + 1024).min(codes.len());
            let part = codes.slice(a, b);
            self.decode_rows(
                centroids,
                part,
                &res[a * bpt..b * bpt],
                &mut rows,
                &mut scales,
            );
            out.extend_from_slice(&scales);
            a = b;
        }
        out
    }

    /// Compresses tokens (`n x dim`): nearest-centroid codes and packed residuals.
    pub fn compress(
        &self,
        tokens: &[f32],
        centroids: &[f32],
        centroid_panels: &[f32],
    ) -> (Vec<u32>, Vec<u8>) {
        let dim = self.dim;
        let k = centroids.len() / dim;
        let n = tokens.len() / dim;
        let bpt = self.bytes_per_token();
        let mut codes = vec![(0u32, 0.0f32); n];
        let mut res = vec![0u8; n * bpt];
        const ROWS: usize = 128;
        codes
            .par_chunks_mut(ROWS)
            .zip(res.par_chunks_mut(ROWS * bpt.max(1)))
            .zip(tokens.par_chunks(ROWS * dim))
            .for_each(|((c, r), x)| {
                argmax_packed(x, dim, centroid_panels, k, c);
                for ((xt, &(code, _)), rt) in x
                    .chunks_exact(dim)
                    .zip(c.iter())
                    .zip(r.chunks_exact_mut(bpt))
                {
                    let cent = &centroids[code as usize * dim..(code as usize + 1) * dim];
                    self.encode_residual(xt, cent, rt);
                }
            });
        (codes.into_iter().map(|c| c.0).collect(), res)
    }
}

/// A codec with evenly spaced cutoffs `c0 + cspan · i / 2^nbits` (i = 1..) and weights
/// `w0 + wspan · (i + off) / 2^nbits` (i = 0..), for tests.
/// A centroid code as stored (u16 or u32).
pub(crate) trait Code: Copy + Send + Sync {
    fn idx(self) -> usize;
}

impl Code for u16 {
    #[inline(always)]
    fn idx(self) -> usize {
        self as usize
    }
}

impl Code for u32 {
    #[inline(always)]
    fn idx(self) -> usize {
        self as usize
    }
}

/// The centroid codes of some tokens, in their stored width.
#[derive(Clone, Copy)]
pub(crate) enum Codes<'a> {
    U16(&'a [u16]),
    U32(&'a [u32]),
}

impl<'a> Codes<'a> {
    pub(crate) fn slice(&self, start: usize, end: usize) -> Codes<'a> {
        match self {
            Codes::U16(c) => Codes::U16(&c[start..end]),
            Codes::U32(c) => Codes::U32(&c[start..end]),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Codes::U16(c) => c.len(),
            Codes::U32(c) => c.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn max(&self) -> Option<usize> {
        match self {
            Codes::U16(c) => c.iter().max().map(|&v| v as usize),
            Codes::U32(c) => c.iter().max().map(|&v| v as usize),
        }
    }

    pub(crate) fn to_u32(self) -> Vec<u32> {
        match self {
            Codes::U16(c) => c.iter().map(|&v| v as u32).collect(),
            Codes::U32(c) => c.to_vec(),
        }
    }
}

#[cfg(test)]
pub(crate) fn evenly_spaced(
    dim: usize,
    nbits: usize,
    (c0, cspan): (f32, f32),
    (w0, wspan, off): (f32, f32, f32),
) -> ResidualCodec {
    let nb = 1usize << nbits;
    let cutoffs = (1..nb).map(|i| c0 + cspan * i as f32 / nb as f32).collect();
    let weights = (0..nb)
        .map(|i| w0 + wspan * (i as f32 + off) / nb as f32)
        .collect();
    ResidualCodec::new(dim, nbits, cutoffs, weights, 0.3).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let v = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(quantile_sorted(&v, 0.0), 0.0);
        assert_eq!(quantile_sorted(&v, 0.5), 1.5);
        assert_eq!(quantile_sorted(&v, 1.0), 3.0);
    }

    #[test]
    fn encode_decode_packs_msb_first_and_reconstructs() {
        // nbits 2: cutoffs -0.1, 0, 0.1; weights -0.2, -0.05, 0.05, 0.2
        let c = ResidualCodec::new(
            4,
            2,
            vec![-0.1, 0.0, 0.1],
            vec![-0.2, -0.05, 0.05, 0.2],
            0.3,
        )
        .unwrap();
        assert_eq!(c.bytes_per_token(), 1);
        let cent = [0.5, 0.5, 0.5, 0.5];
        let x = [0.3, 0.45, 0.55, 0.7]; // residuals -0.2, -0.05, 0.05, 0.2 -> buckets 0,1,2,3
        let mut b = [0u8; 1];
        c.encode_residual(&x, &cent, &mut b);
        assert_eq!(b[0], 0b00_01_10_11);
        let mut out = [0.0f32; 4];
        c.decode_into(&cent, &b, &mut out);
        let n = (0.3f32 * 0.3 + 0.45 * 0.45 + 0.55 * 0.55 + 0.7 * 0.7).sqrt();
        for (o, xv) in out.iter().zip(x) {
            assert!((o - xv / n).abs() < 1e-6);
        }
    }

    #[test]
    fn bad_parameters_are_rejected() {
        assert!(ResidualCodec::new(4, 3, vec![0.0; 7], vec![0.0; 8], 0.1).is_err());
        assert!(ResidualCodec::new(3, 2, vec![0.0; 3], vec![0.0; 4], 0.1).is_err());
        assert!(ResidualCodec::new(4, 1, vec![0.0; 2], vec![0.0; 2], 0.1).is_err());
    }

    #[test]
    fn decode_rows_times_scale_is_decode_into() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let dim = 16;
        for nbits in [1usize, 2, 4] {
            let codec = evenly_spaced(dim, nbits, (-0.2, 0.4), (-0.25, 0.5, 0.0));
            let k = 3;
            let centroids: Vec<f32> = (0..k * dim).map(|_| rng.random_range(-0.3..0.3)).collect();
            let ntok = 7;
            let codes: Vec<u16> = (0..ntok).map(|_| rng.random_range(0..k as u16)).collect();
            let res: Vec<u8> = (0..ntok * codec.bytes_per_token())
                .map(|_| rng.random())
                .collect();
            let (mut rows, mut scales) = (Vec::new(), Vec::new());
            codec.decode_rows(&centroids, Codes::U16(&codes), &res, &mut rows, &mut scales);
            assert_eq!((rows.len(), scales.len()), (ntok * dim, ntok));
            let bpt = codec.bytes_per_token();
            for t in 0..ntok {
                let c = codes[t] as usize;
                let mut want = vec![0.0f32; dim];
                codec.decode_into(
                    &centroids[c * dim..(c + 1) * dim],
                    &res[t * bpt..(t + 1) * bpt],
                    &mut want,
                );
                for d in 0..dim {
                    let got = rows[t * dim + d] * scales[t];
                    assert!((got - want[d]).abs() < 1e-6, "nbits {nbits} t {t} d {d}");
                }
            }
        }
    }

    #[test]
    fn decode_u8_is_the_rounded_bucket_weight_in_offset_binary() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let dim = 16;
        for nbits in [1usize, 2, 4] {
            let codec = evenly_spaced(dim, nbits, (-0.2, 0.4), (-0.07, 0.1, 0.0));
            let ws = codec.int8_scale();
            assert!(
                (ws * 127.0 - 0.07).abs() < 1e-7,
                "nbits {nbits}: the largest |weight| maps to 127"
            );
            let centroid = vec![0.0f32; dim];
            let ntok = 5;
            let res: Vec<u8> = (0..ntok * codec.bytes_per_token())
                .map(|_| rng.random())
                .collect();
            let mut u = Vec::new();
            codec.decode_u8(&res, &mut u);
            assert_eq!(u.len(), ntok * dim);
            let bpt = codec.bytes_per_token();
            for t in 0..ntok {
                // zero centroid, unnormalised: decode_raw gives the bucket weights
                let mut w = vec![0.0f32; dim];
                match nbits {
                    1 => {
                        decode_raw::<8>(&codec.lut, &centroid, &res[t * bpt..(t + 1) * bpt], &mut w)
                    }
                    2 => {
                        decode_raw::<4>(&codec.lut, &centroid, &res[t * bpt..(t + 1) * bpt], &mut w)
                    }
                    _ => {
                        decode_raw::<2>(&codec.lut, &centroid, &res[t * bpt..(t + 1) * bpt], &mut w)
                    }
                };
                for d in 0..dim {
                    let got = (u[t * dim + d] as i32 - 128) as f32 * ws;
                    assert!(
                        (got - w[d]).abs() <= ws / 2.0 + 1e-7,
                        "nbits {nbits} t {t} d {d}"
                    );
                }
            }
        }
    }
}
