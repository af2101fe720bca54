//! Scalar math for the fused CPU kernels, written so LLVM vectorises the loops that call it.
//!
//! Contract: [`exp`] is within 2 ulp of `f32::exp` on the whole range (`-inf -> 0`,
//! overflow -> `inf`, NaN -> NaN); [`erfc`] has relative error below 1e-6 for `|x| < 9`
//! (the Chebyshev-fitted "erfcc" approximation, 1.2e-7 in exact arithmetic, with the
//! exponent `-x^2 + p(t)` evaluated in double-f32 so its rounding does not hurt).
//! Everything is `#[inline(always)]` and branch-free (selects only) so it inlines into the
//! AVX2/FMA clones produced by [`simd_fn!`](crate::kernels) and runs 8 lanes at a time.
//! [`sum`], [`sum_dev`], [`max`] and [`dot`] reduce with 8 independent accumulators (vectorisable,
//! and more accurate than one running sum).

/// `e^x` for f32 with round-to-nearest range reduction and a degree-7 Taylor polynomial.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const SHIFTER: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer.
    let xc = x.clamp(-87.5, 88.5);
    let t = xc * LOG2E + SHIFTER;
    let n = t - SHIFTER;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // n in [-127, 128]: split the power of two in two halves so 2^n never overflows the
    // exponent field on its own.
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    // Wrapping ops: the dev profile keeps overflow checks, whose branches would stop LLVM
    // from vectorising the loops this inlines into (values here never overflow).
    let n1 = ni >> 1;
    let n2 = ni.wrapping_sub(n1);
    let s1 = f32::from_bits((n1.wrapping_add(127) as u32) << 23);
    let s2 = f32::from_bits((n2.wrapping_add(127) as u32) << 23);
    let y = p * s1 * s2;
    let y = if x < -87.33 { 0.0 } else { y };
    let y = if x > 88.72 { f32::INFINITY } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// `exp(-q + p)` where `q = k * x^2` (`k` = 1 or 1/2, exact scalings) is formed without
/// rounding: Dekker split of `x` and TwoSum of the exponent, so large `x` loses no accuracy
/// (`exp(s + e) ~ exp(s) * (1 + e)`).
#[inline(always)]
fn exp_neg_sq_plus(x: f32, k: f32, p: f32) -> f32 {
    let xh = f32::from_bits(x.to_bits() & 0xFFFF_F000);
    let xl = x - xh;
    let a = -(xh * xh) * k;
    let b = p - (2.0 * xh + xl) * xl * k;
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    exp(s) * (1.0 + e)
}

/// Chebyshev-fitted "erfcc" polynomial: `erfc(z) = t * exp(-z^2 + poly(t))`, `t = 1/(1+z/2)`.
#[inline(always)]
fn erfcc_poly(t: f32) -> f32 {
    -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))))
}

/// Complementary error function `1 - erf(x)` (accuracy in the module contract).
#[inline(always)]
pub fn erfc(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t * exp_neg_sq_plus(z, 1.0, erfcc_poly(t));
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Standard normal CDF `Phi(x) = 0.5 * erfc(-x / sqrt 2)`, with the exponent `-x^2/2`
/// taken from `x` itself (not from the rounded `x / sqrt 2`), so the far tail stays
/// relatively accurate.
#[inline(always)]
pub fn normal_cdf(x: f32) -> f32 {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = 0.5 * t * exp_neg_sq_plus(x, 0.5, erfcc_poly(t));
    if x <= 0.0 {
        r
    } else {
        1.0 - r
    }
}

/// Standard normal density `exp(-x^2/2) / sqrt(2 pi)`.
#[inline(always)]
pub fn normal_pdf(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    INV_SQRT_2PI * exp_neg_sq_plus(x, 0.5, 0.0)
}

/// Sum of a slice with 8 independent lanes.
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    let mut s = 0f32;
    for v in chunks.remainder() {
        s += v;
    }
    s + lanes(&acc)
}

/// `(sum(x - c), sum((x - c)^2))` with 8 independent lanes (shifted two-pass moments).
#[inline(always)]
pub fn sum_dev(x: &[f32], c: f32) -> (f32, f32) {
    let mut a1 = [0f32; 8];
    let mut a2 = [0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for ch in &mut chunks {
        for k in 0..8 {
            let d = ch[k] - c;
            a1[k] += d;
            a2[k] += d * d;
        }
    }
    let (mut s1, mut s2) = (0f32, 0f32);
    for v in chunks.remainder() {
        s1 += v - c;
        s2 += (v - c) * (v - c);
    }
    (s1 + lanes(&a1), s2 + lanes(&a2))
}

#[inline(always)]
fn lanes(a: &[f32; 8]) -> f32 {
    ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
}

/// Dot product with 8 independent lanes.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    s + lanes(&acc)
}

/// Maximum of a slice (`-inf` for an empty slice; NaNs are ignored).
#[inline(always)]
pub fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for k in 0..8 {
            acc[k] = if c[k] > acc[k] { c[k] } else { acc[k] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &v in chunks.remainder().iter().chain(acc.iter()) {
        m = if v > m { v } else { m };
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_std() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = exp(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst}");
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(100.0).is_infinite());
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn erfc_matches_libm_relatively() {
        let mut worst = 0f64;
        let mut x = -6.0f32;
        while x < 9.0 {
            let got = erfc(x) as f64;
            let want = candle_core::cpu::erf::erfc_f64(x as f64);
            worst = worst.max(((got - want) / want).abs());
            x += 0.00731;
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
        // Where gelu uses it (|x| < 6), it must be tighter.
        let mut worst_core = 0f64;
        let mut x = -4.0f32;
        while x < 4.0 {
            let got = erfc(x) as f64;
            let want = candle_core::cpu::erf::erfc_f64(x as f64);
            worst_core = worst_core.max(((got - want) / want).abs());
            x += 0.00731;
        }
        assert!(
            worst_core < 6e-7,
            "worst relative error on [-4,4]: {worst_core}"
        );
    }

    #[test]
    fn reductions_match_naive_f64() {
        let x: Vec<f32> = (0..389)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let y: Vec<f32> = (0..389)
            .map(|i| ((i * 11 % 53) as f32 - 26.0) / 3.0)
            .collect();
        let s: f64 = x.iter().map(|&v| v as f64).sum();
        assert!((sum(&x) as f64 - s).abs() < 1e-3);
        let d: f64 = x.iter().zip(&y).map(|(&a, &b)| a as f64 * b as f64).sum();
        assert!((dot(&x, &y) as f64 - d).abs() < 1e-2);
        let c = 0.25f32;
        let q: f64 = x.iter().map(|&v| (v as f64 - 0.25).powi(2)).sum();
        let l: f64 = x.iter().map(|&v| v as f64 - 0.25).sum();
        let (s1, s2) = sum_dev(&x, c);
        assert!((s2 as f64 - q).abs() / q < 1e-6);
        assert!((s1 as f64 - l).abs() < 1e-3);
        assert_eq!(max(&x), x.iter().cloned().fold(f32::MIN, f32::max));
        assert_eq!(max(&[]), f32::NEG_INFINITY);
    }
}
