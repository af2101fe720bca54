//! Seeded, deterministic spherical k-means for PLAID centroids, and the size formulas.
//!
//! Contract:
//! - Sample size (documents used for training when the whole corpus is at hand, as in
//!   fast-plaid / PLAID): [`sample_docs`]`(N) = min(1 + 16·sqrt(120·N), N)`.
//! - Number of centroids: [`num_centroids`]`(T, S) = min(2^floor(log2(16·sqrt(T))), S,
//!   cap)` where `T` is the (estimated) total number of corpus tokens, `S` the number of
//!   sample tokens and `cap` a configurable ceiling (default 2^18); at least 1.
//! - [`kmeans`]: points are assigned by maximum inner product (equal to nearest L2 for
//!   unit vectors); centroids are L2-normalised means. At most
//!   `k · max_points_per_centroid` points are used (a seeded subsample); initial
//!   centroids are `k` distinct seeded points; an empty cluster is re-seeded with the
//!   worst-assigned point not yet used. Same input, same config ⇒ bit-identical output,
//!   whatever the number of threads (assignment is parallel, sums are sequential).
//! - [`assign`]: nearest centroid (max inner product, lowest index on ties) of every
//!   point, in parallel.

use crate::error::{IndexError, Result};
use crate::kernel::{argmax_packed, pack_panels};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Documents to sample for training out of `n_docs`: `min(1 + 16·sqrt(120·n), n)`.
pub fn sample_docs(n_docs: usize) -> usize {
    let s = 1.0 + 16.0 * (120.0 * n_docs as f64).sqrt();
    (s.floor() as usize).min(n_docs)
}

/// The documents (positions in `0..n_docs`, ascending) whose tokens train an index's
/// centroids and codec: [`sample_docs`]`(n_docs)` of them drawn without replacement by a
/// ChaCha8 generator seeded with `seed ^ 0x5eed`. The one sampling policy of index builds:
/// the library's `build_index`, the CLI's streaming build and the benchmarks all use it,
/// so the same corpus and seed give the same index whichever way it is built.
pub fn sample_positions(n_docs: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut idx = sample(&mut rng, n_docs, sample_docs(n_docs)).into_vec();
    idx.sort_unstable();
    idx
}

/// PLAID's K: `2^floor(log2(16·sqrt(total_tokens)))`, capped by the sample size and `cap`.
pub fn num_centroids(total_tokens: usize, sample_tokens: usize, cap: usize) -> usize {
    let x = 16.0 * (total_tokens.max(1) as f64).sqrt();
    let k = 1usize << (x.log2().floor().max(0.0) as u32);
    k.min(sample_tokens).min(cap).max(1)
}

/// k-means settings.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansConfig {
    /// Number of centroids.
    pub k: usize,
    /// Lloyd iterations (default 4, as PLAID / fast-plaid).
    pub niters: usize,
    /// At most `k · max_points_per_centroid` points are clustered (default 256).
    pub max_points_per_centroid: usize,
    /// RNG seed for the subsample and the initial centroids.
    pub seed: u64,
}

/// Nearest centroid of every row of `points` (`n x dim`): `(index, inner product)`.
/// `centroid_panels` holds `k` centroids in panel layout.
pub fn assign(points: &[f32], dim: usize, centroid_panels: &[f32], k: usize) -> Vec<(u32, f32)> {
    const ROWS: usize = 128;
    let mut out = vec![(0u32, 0.0f32); points.len() / dim];
    out.par_chunks_mut(ROWS)
        .zip(points.par_chunks(ROWS * dim))
        .for_each(|(o, p)| argmax_packed(p, dim, centroid_panels, k, o));
    out
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Clusters the rows of `points` (`n x dim`) into `min(cfg.k, n)` unit centroids,
/// returned row-major. Fails when there are no points or `k == 0`.
pub fn kmeans(points: &[f32], dim: usize, cfg: &KMeansConfig) -> Result<Vec<f32>> {
    let n = points.len() / dim;
    if n == 0 || cfg.k == 0 {
        return Err(IndexError::Invalid(format!(
            "k-means needs at least one point and k > 0 (got {n} points, k = {})",
            cfg.k
        )));
    }
    let k = cfg.k.min(n);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let max_points = k.saturating_mul(cfg.max_points_per_centroid.max(1));
    let owned;
    let pts: &[f32] = if n > max_points {
        let mut idx = sample(&mut rng, n, max_points).into_vec();
        idx.sort_unstable();
        owned = idx
            .iter()
            .flat_map(|&i| points[i * dim..(i + 1) * dim].iter().copied())
            .collect::<Vec<f32>>();
        &owned
    } else {
        points
    };
    let n = pts.len() / dim;
    let mut init = sample(&mut rng, n, k).into_vec();
    init.sort_unstable();
    let mut centroids: Vec<f32> = init
        .iter()
        .flat_map(|&i| pts[i * dim..(i + 1) * dim].iter().copied())
        .collect();
    centroids.chunks_exact_mut(dim).for_each(normalize);
    let mut panels = Vec::new();
    for _ in 0..cfg.niters {
        panels.clear();
        pack_panels(&centroids, dim, &mut panels);
        let a = assign(pts, dim, &panels, k);
        let mut sums = vec![0.0f32; k * dim];
        let mut counts = vec![0usize; k];
        for (p, &(c, _)) in pts.chunks_exact(dim).zip(&a) {
            let c = c as usize;
            counts[c] += 1;
            sums[c * dim..(c + 1) * dim]
                .iter_mut()
                .zip(p)
                .for_each(|(s, x)| *s += x);
        }
        // Empty clusters take the worst-assigned points (lowest best score), in order.
        let mut worst: Vec<usize> = Vec::new();
        if counts.contains(&0) {
            worst = (0..n).collect();
            worst.sort_by(|&i, &j| a[i].1.total_cmp(&a[j].1).then(i.cmp(&j)));
        }
        let mut next_worst = worst.into_iter();
        for c in 0..k {
            let dst = &mut centroids[c * dim..(c + 1) * dim];
            if counts[c] == 0 {
                if let Some(i) = next_worst.next() {
                    dst.copy_from_slice(&pts[i * dim..(i + 1) * dim]);
                }
            } else {
                dst.copy_from_slice(&sums[c * dim..(c + 1) * dim]);
            }
            normalize(dst);
        }
    }
    Ok(centroids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn formulas_match_plaid() {
        assert_eq!(sample_docs(10), 10);
        // 1 + 16·sqrt(120·5183) = 12616.3 > 5183
        assert_eq!(sample_docs(5183), 5183);
        // 1 + 16·sqrt(120·1e6) = 175272.2
        assert_eq!(sample_docs(1_000_000), 175_272);
        // 16·sqrt(1e6) = 16000 -> 2^13
        assert_eq!(num_centroids(1_000_000, 1_000_000, 1 << 18), 8192);
        assert_eq!(num_centroids(1_000_000, 500, 1 << 18), 500);
        assert_eq!(num_centroids(1_000_000, 1_000_000, 1024), 1024);
        assert_eq!(num_centroids(0, 0, 8), 1);
    }

    #[test]
    fn recovers_separated_clusters_deterministically() {
        let dim = 16;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut pts = Vec::new();
        for i in 0..400 {
            let c = i % 4;
            let mut v: Vec<f32> = (0..dim).map(|_| rng.random_range(-0.05..0.05)).collect();
            v[c * 4] += 1.0;
            normalize(&mut v);
            pts.extend(v);
        }
        // Random initialisation may put two seeds in one true cluster, so over-cluster.
        let cfg = KMeansConfig {
            k: 16,
            niters: 10,
            max_points_per_centroid: 256,
            seed: 3,
        };
        let c1 = kmeans(&pts, dim, &cfg).unwrap();
        let c2 = kmeans(&pts, dim, &cfg).unwrap();
        assert_eq!(c1, c2);
        // each true direction has a centroid within cos > 0.99
        for axis in 0..4 {
            let best = c1
                .chunks_exact(dim)
                .map(|c| c[axis * 4])
                .fold(f32::NEG_INFINITY, f32::max);
            assert!(best > 0.99, "axis {axis}: {best}");
        }
        // Lloyd iterations improve the objective (mean best inner product) over the seeds.
        let objective = |c: &[f32]| {
            let mut p = Vec::new();
            pack_panels(c, dim, &mut p);
            assign(&pts, dim, &p, c.len() / dim)
                .iter()
                .map(|a| a.1)
                .sum::<f32>()
                / 400.0
        };
        let init = kmeans(
            &pts,
            dim,
            &KMeansConfig {
                niters: 0,
                ..cfg.clone()
            },
        )
        .unwrap();
        assert!(
            objective(&c1) > objective(&init) + 1e-3,
            "{} vs {}",
            objective(&c1),
            objective(&init)
        );
        assert!(kmeans(&[], dim, &cfg).is_err());
    }
}
