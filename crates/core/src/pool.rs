//! Token pooling: fewer vectors per document by hierarchical clustering, as PyLate's
//! `ColBERT.pool_embeddings_hierarchical` does it (PyLate 1.6, `models/colbert.py`).
//!
//! Contract, for a document of `n` tokens, `pool_factor` f and `protected` p:
//! - The first `p` tokens (the `[CLS]`/`[D]` prefix, `p = 1` by default as in PyLate) are
//!   kept as they are, first, in order. The other `m = n - p` tokens are pooled into at
//!   most `k = max(m / f, 1)` vectors (integer division); when `k >= m` (f <= 1, short
//!   documents) the document is returned unchanged.
//! - Distances are `1 - cos` = `1 - x·y` computed in f32 from the vectors as given (they
//!   are unit vectors after the ColBERT head), then handled in f64 like scipy does.
//! - Ward linkage on those distances (scipy's `linkage(method="ward")` on a condensed
//!   matrix of non-squared distances: the Lance–Williams update
//!   `d(i∪j, k) = sqrt(((s_i+s_k)·d(i,k)² + (s_j+s_k)·d(j,k)² - s_k·d(i,j)²) / (s_i+s_j+s_k))`),
//!   computed with the nearest-neighbour chain in O(m²) memory and time, which yields the
//!   same merges as greedy agglomeration.
//! - The flat cut is scipy's `fcluster(criterion="maxclust", t=k)`: the smallest height r
//!   such that merging every pair joined at height <= r leaves at most k clusters. When
//!   several merges tie at that height, fewer than k clusters remain (PyLate drops the
//!   empty ones; so do we).
//! - Each cluster becomes the mean of its tokens, **not renormalised** (PyLate does not
//!   renormalise). Clusters are emitted in order of their smallest token position (scipy
//!   numbers them in tree order; MaxSim does not depend on the order of document vectors).
//! - A crate does not do this: `kodama` (used by pylate-rs) would add a dependency for
//!   one linkage; the chain algorithm is 60 lines and is tested against PyLate's output
//!   (`tools/make_pooling_fixture.py`) and against a brute-force greedy reference.

use crate::embedding::MultiVector;

/// Pools the tokens of `mv` (see module docs).
pub fn pool_tokens(mv: &MultiVector, pool_factor: usize, protected: usize) -> MultiVector {
    let (n, dim) = (mv.n_tokens(), mv.dim());
    let p = protected.min(n);
    let m = n - p;
    let k = (m / pool_factor.max(1)).max(1);
    if k >= m {
        return mv.clone();
    }
    let rows: Vec<&[f32]> = (p..n).map(|t| mv.row(t)).collect();
    let labels = ward_maxclust(&rows, k);
    let n_clusters = labels.iter().copied().max().map_or(0, |l| l + 1);
    let mut sums = vec![0.0f32; n_clusters * dim];
    let mut counts = vec![0u32; n_clusters];
    for (r, &l) in rows.iter().zip(&labels) {
        counts[l] += 1;
        for (s, &v) in sums[l * dim..(l + 1) * dim].iter_mut().zip(r.iter()) {
            *s += v;
        }
    }
    let mut data = Vec::with_capacity((p + n_clusters) * dim);
    for t in 0..p {
        data.extend_from_slice(mv.row(t));
    }
    for (c, &cnt) in counts.iter().enumerate() {
        data.extend(sums[c * dim..(c + 1) * dim].iter().map(|s| s / cnt as f32));
    }
    MultiVector::new(dim, data).expect("pooled rows have the input dimension")
}

/// Cluster labels (0-based, numbered by smallest member) of scipy's Ward linkage on
/// `1 - x·y` cut with `fcluster(maxclust, k)`.
fn ward_maxclust(rows: &[&[f32]], k: usize) -> Vec<usize> {
    let m = rows.len();
    let mut d = vec![0.0f64; m * m];
    for i in 0..m {
        for j in i + 1..m {
            let dot: f32 = rows[i].iter().zip(rows[j]).map(|(a, b)| a * b).sum();
            let v = (1.0f32 - dot) as f64;
            d[i * m + j] = v;
            d[j * m + i] = v;
        }
    }
    let merges = nn_chain_ward(&mut d, m);
    cut(&merges, m, k)
}

/// Ward merges `(a, b, height)` by the nearest-neighbour chain (scipy's `nn_chain`): `a`
/// and `b` are the slots (leaf indices) of the two clusters; the union lives on in `a`.
fn nn_chain_ward(d: &mut [f64], m: usize) -> Vec<(usize, usize, f64)> {
    let mut size = vec![1.0f64; m];
    let mut active = vec![true; m];
    let mut chain: Vec<usize> = Vec::with_capacity(m);
    let mut merges = Vec::with_capacity(m.saturating_sub(1));
    for _ in 1..m {
        if chain.is_empty() {
            chain.push(active.iter().position(|&a| a).expect("an active cluster"));
        }
        let (x, y, dist) = loop {
            let x = *chain.last().expect("non-empty chain");
            // Start from the previous element of the chain so that ties close the chain.
            let (mut y, mut best) = match chain.len() {
                l if l >= 2 => (chain[l - 2], d[x * m + chain[l - 2]]),
                _ => (usize::MAX, f64::INFINITY),
            };
            for i in 0..m {
                if active[i] && i != x && d[x * m + i] < best {
                    best = d[x * m + i];
                    y = i;
                }
            }
            if chain.len() >= 2 && y == chain[chain.len() - 2] {
                break (x, y, best);
            }
            chain.push(y);
        };
        chain.pop();
        chain.pop();
        // The union lives on in the smaller slot (a label convention only).
        let (lo, hi) = (x.min(y), x.max(y));
        let (sx, sy) = (size[x], size[y]);
        for i in 0..m {
            if !active[i] || i == x || i == y {
                continue;
            }
            let si = size[i];
            let (dxi, dyi) = (d[x * m + i], d[y * m + i]);
            let v = (((sx + si) * dxi * dxi + (sy + si) * dyi * dyi - si * dist * dist)
                / (sx + sy + si))
                .max(0.0)
                .sqrt();
            d[lo * m + i] = v;
            d[i * m + lo] = v;
        }
        active[hi] = false;
        size[lo] = sx + sy;
        merges.push((lo, hi, dist));
    }
    merges
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// `fcluster(maxclust, k)` on the merges: every merge at height <= the (m-k)-th smallest
/// height is applied; labels are numbered by smallest member.
fn cut(merges: &[(usize, usize, f64)], m: usize, k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..merges.len()).collect();
    order.sort_by(|&a, &b| merges[a].2.total_cmp(&merges[b].2));
    let r = merges[order[m - k - 1]].2;
    let mut parent: Vec<usize> = (0..m).collect();
    for &i in &order {
        let (a, b, h) = merges[i];
        if h > r {
            break;
        }
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        parent[ra.max(rb)] = ra.min(rb);
    }
    let mut label = vec![usize::MAX; m];
    let mut next = 0;
    (0..m)
        .map(|i| {
            let r = find(&mut parent, i);
            if label[r] == usize::MAX {
                label[r] = next;
                next += 1;
            }
            label[r]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Greedy Ward agglomeration by brute force (the definition the chain must equal).
    fn greedy(rows: &[&[f32]], k: usize) -> Vec<usize> {
        let m = rows.len();
        let mut clusters: Vec<Vec<usize>> = (0..m).map(|i| vec![i]).collect();
        let mut d: Vec<Vec<f64>> = (0..m)
            .map(|i| {
                (0..m)
                    .map(|j| {
                        let dot: f32 = rows[i].iter().zip(rows[j]).map(|(a, b)| a * b).sum();
                        (1.0f32 - dot) as f64
                    })
                    .collect()
            })
            .collect();
        while clusters.len() > k {
            let (mut bi, mut bj, mut best) = (0, 1, f64::INFINITY);
            for (i, row) in d.iter().enumerate() {
                for (j, &v) in row.iter().enumerate().skip(i + 1) {
                    if v < best {
                        (bi, bj, best) = (i, j, v);
                    }
                }
            }
            let (si, sj) = (clusters[bi].len() as f64, clusters[bj].len() as f64);
            let mut row = Vec::new();
            for (c, cl) in clusters.iter().enumerate() {
                let sc = cl.len() as f64;
                let v = (((si + sc) * d[bi][c].powi(2) + (sj + sc) * d[bj][c].powi(2)
                    - sc * best * best)
                    / (si + sj + sc))
                    .max(0.0)
                    .sqrt();
                row.push(v);
            }
            for c in 0..clusters.len() {
                d[bi][c] = row[c];
                d[c][bi] = row[c];
            }
            let moved = clusters.remove(bj);
            clusters[bi].extend(moved);
            d.remove(bj);
            for r in d.iter_mut() {
                r.remove(bj);
            }
        }
        let mut out = vec![0; m];
        let mut cl: Vec<Vec<usize>> = clusters;
        cl.iter_mut().for_each(|c| c.sort());
        cl.sort();
        for (l, c) in cl.iter().enumerate() {
            for &i in c {
                out[i] = l;
            }
        }
        out
    }

    fn random_unit(n: usize, dim: usize, seed: u64) -> MultiVector {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut data = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let row: Vec<f32> = (0..dim)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                })
                .collect();
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            data.extend(row.iter().map(|v| v / norm));
        }
        MultiVector::new(dim, data).unwrap()
    }

    #[test]
    fn chain_equals_greedy_agglomeration() {
        for seed in 0..20 {
            let n = 5 + (seed as usize * 7) % 40;
            let mv = random_unit(n, 16, seed);
            let rows: Vec<&[f32]> = (0..n).map(|t| mv.row(t)).collect();
            for k in [1, 2, n / 3 + 1, n / 2, n - 1] {
                assert_eq!(
                    ward_maxclust(&rows, k),
                    greedy(&rows, k),
                    "seed {seed} k {k}"
                );
            }
        }
    }

    #[test]
    fn pooling_keeps_protected_tokens_and_means_clusters() {
        let mv = random_unit(21, 8, 3);
        let p = pool_tokens(&mv, 2, 1);
        assert_eq!(p.n_tokens(), 1 + 10);
        assert_eq!(p.row(0), mv.row(0));
        // Every pooled vector is the mean of the tokens its cluster holds.
        let rows: Vec<&[f32]> = (1..21).map(|t| mv.row(t)).collect();
        let labels = ward_maxclust(&rows, 10);
        for c in 0..10 {
            let members: Vec<&[f32]> = rows
                .iter()
                .zip(&labels)
                .filter(|(_, &l)| l == c)
                .map(|(r, _)| *r)
                .collect();
            for d in 0..8 {
                let mean = members.iter().map(|r| r[d]).sum::<f32>() / members.len() as f32;
                assert!((p.row(1 + c)[d] - mean).abs() < 1e-6);
            }
        }
        // Nothing to gain: unchanged.
        assert_eq!(pool_tokens(&mv, 1, 1), mv);
        let short = random_unit(2, 8, 4);
        assert_eq!(pool_tokens(&short, 3, 1), short);
    }

    #[test]
    fn ties_at_the_cut_give_fewer_clusters_like_fcluster() {
        // Four identical tokens and two others: with k = 4 the three zero-height merges
        // tie at the cut height, so all of them apply and 3 clusters remain.
        let a = [1.0f32, 0.0, 0.0];
        let b = [0.0f32, 1.0, 0.0];
        let c = [0.0f32, 0.0, 1.0];
        let data: Vec<f32> = [a, a, a, a, b, c].concat();
        let mv = MultiVector::new(3, data).unwrap();
        let rows: Vec<&[f32]> = (0..6).map(|t| mv.row(t)).collect();
        assert_eq!(ward_maxclust(&rows, 4), vec![0, 0, 0, 0, 1, 2]);
    }
}
