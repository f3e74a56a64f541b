//! Isolation Forest (Liu, Ting & Zhou 2008), optionally extended (Hariri, Kind & Brunner 2019).
//!
//! Each tree isolates a random subsample by random cuts; anomalies are isolated in few cuts.
//! With `extension_level = 0` a cut is axis-parallel (one feature, a threshold); with
//! `extension_level = k` it is a random hyperplane over `k + 1` features, which removes the
//! axis-aligned artefacts of the score map. Features are standardised on the training set
//! first so that a hyperplane's random slope means the same in every direction.
//!
//! Explanation: walking a vector down a tree, every cut shrinks the set of training points it
//! shares a node with, from `n_parent` to `n_child`; the cut is credited `log2(n_parent+1) −
//! log2(n_child+1)` bits, split over the cut's features by their share of the cut's slope. The
//! credits sum to how much the tree did to isolate the vector; features that isolate an
//! anomaly early collect most of them.

use crate::detector::{Detector, DetectorKind};
use crate::error::{Error, Result, invalid};
use crate::matrix::Matrix;
use crate::rng::Rng;
use crate::scaler::Standardizer;
use serde::{Deserialize, Serialize};

const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// Training parameters of an [`IsolationForest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IsolationForestConfig {
    /// Number of trees. Default 100 (as scikit-learn).
    pub n_trees: usize,
    /// Rows sampled (without replacement) per tree. Default 256 (as the paper and scikit-learn).
    pub sample_size: usize,
    /// 0 for axis-parallel cuts; `k` for hyperplanes over `k + 1` features. Default 0.
    pub extension_level: usize,
    /// Seed of the subsampling and the cuts.
    pub seed: u64,
}

impl Default for IsolationForestConfig {
    fn default() -> Self {
        Self {
            n_trees: 100,
            sample_size: 256,
            extension_level: 0,
            seed: 0x1F0E_5700,
        }
    }
}

/// A node of a tree, stored in pre-order (children after their parent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Node {
    /// Goes left when `Σ weights[k]·x[dims[k]] < offset`.
    Split {
        dims: Vec<u32>,
        weights: Vec<f64>,
        offset: f64,
        left: u32,
        right: u32,
        size: u32,
    },
    Leaf {
        size: u32,
    },
}

/// A fitted Isolation Forest. Raw score: `2^(−E[h(x)] / c(ψ))` in (0,1], ≈0.5 for ordinary
/// points and near 1 for anomalies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    scaler: Standardizer,
    /// Average path length of an unsuccessful BST search over the subsample size: the normaliser.
    c_psi: f64,
    trees: Vec<Vec<Node>>,
}

/// Average path length of an unsuccessful search in a binary search tree of `n` points.
fn c_factor(n: f64) -> f64 {
    if n <= 1.0 {
        0.0
    } else if n <= 2.0 {
        1.0
    } else {
        2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
    }
}

struct Builder<'a> {
    x: &'a Matrix,
    ext: usize,
    max_depth: usize,
    rng: Rng,
    nodes: Vec<Node>,
}

impl Builder<'_> {
    fn build(&mut self, idx: &mut [usize], depth: usize) -> u32 {
        let at = self.nodes.len();
        let size = idx.len() as u32;
        self.nodes.push(Node::Leaf { size });
        if depth >= self.max_depth || idx.len() <= 1 {
            return at as u32;
        }
        // Features that still vary in this node: cutting a constant one isolates nothing.
        let cols = self.x.cols();
        let mut lo = vec![f64::INFINITY; cols];
        let mut hi = vec![f64::NEG_INFINITY; cols];
        for &i in idx.iter() {
            for (j, v) in self.x.row(i).iter().enumerate() {
                lo[j] = lo[j].min(*v);
                hi[j] = hi[j].max(*v);
            }
        }
        let varying: Vec<usize> = (0..cols).filter(|&j| hi[j] > lo[j]).collect();
        if varying.is_empty() {
            return at as u32;
        }
        let (dims, weights, offset) = if self.ext == 0 {
            let j = varying[self.rng.below(varying.len())];
            let t = lo[j] + self.rng.uniform() * (hi[j] - lo[j]);
            (vec![j as u32], vec![1.0], t)
        } else {
            let k = (self.ext + 1).min(varying.len());
            let pick = self.rng.sample_indices(varying.len(), k);
            let mut dims = Vec::with_capacity(k);
            let mut weights = Vec::with_capacity(k);
            let mut offset = 0.0;
            for p in pick {
                let j = varying[p];
                let w = self.rng.normal();
                let point = lo[j] + self.rng.uniform() * (hi[j] - lo[j]);
                dims.push(j as u32);
                weights.push(w);
                offset += w * point;
            }
            (dims, weights, offset)
        };
        let goes_left = |row: &[f64]| {
            dims.iter()
                .zip(&weights)
                .map(|(d, w)| w * row[*d as usize])
                .sum::<f64>()
                < offset
        };
        // Partition in place: left part first.
        let mut split = 0;
        for i in 0..idx.len() {
            if goes_left(self.x.row(idx[i])) {
                idx.swap(i, split);
                split += 1;
            }
        }
        let (l, r) = idx.split_at_mut(split);
        let left = self.build(l, depth + 1);
        let right = self.build(r, depth + 1);
        self.nodes[at] = Node::Split {
            dims,
            weights,
            offset,
            left,
            right,
            size,
        };
        at as u32
    }
}

impl IsolationForest {
    /// Grows the forest on the training rows (at least 2).
    pub fn fit(x: &Matrix, config: &IsolationForestConfig) -> Result<Self> {
        if x.rows() < 2 {
            return Err(Error::TooFewRows {
                needed: 2,
                got: x.rows(),
            });
        }
        if config.n_trees == 0 {
            return Err(invalid("n_trees", "must be at least 1"));
        }
        if config.sample_size < 2 {
            return Err(invalid("sample_size", "must be at least 2"));
        }
        let scaler = Standardizer::fit(x);
        let z = scaler.transform_matrix(x)?;
        let psi = config.sample_size.min(x.rows());
        let max_depth = (psi as f64).log2().ceil() as usize;
        let mut rng = Rng::new(config.seed);
        let mut trees = Vec::with_capacity(config.n_trees);
        for _ in 0..config.n_trees {
            let mut idx = rng.sample_indices(z.rows(), psi);
            let mut b = Builder {
                x: &z,
                ext: config.extension_level.min(z.cols().saturating_sub(1)),
                max_depth,
                rng: Rng::new(rng.next_u64()),
                nodes: Vec::new(),
            };
            b.build(&mut idx, 0);
            trees.push(b.nodes);
        }
        Ok(Self {
            scaler,
            c_psi: c_factor(psi as f64),
            trees,
        })
    }

    /// Loads a model saved by [`Detector::save`].
    pub fn load(bytes: &[u8]) -> Result<Self> {
        let m: Self = serde_json::from_slice(bytes)?;
        m.validate()?;
        Ok(m)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.scaler.validate()?;
        let d = self.scaler.n_features();
        if self.trees.is_empty() || !crate::error::positive(self.c_psi) {
            return Err(Error::CorruptModel("isolation forest without trees".into()));
        }
        for tree in &self.trees {
            for (i, node) in tree.iter().enumerate() {
                if let Node::Split {
                    dims,
                    weights,
                    left,
                    right,
                    ..
                } = node
                {
                    // Children after the parent: walking always ends.
                    let ok = dims.len() == weights.len()
                        && !dims.is_empty()
                        && dims.iter().all(|j| (*j as usize) < d)
                        && (*left as usize) > i
                        && (*right as usize) > i
                        && (*left as usize) < tree.len()
                        && (*right as usize) < tree.len();
                    if !ok {
                        return Err(Error::CorruptModel(format!(
                            "isolation forest node {i} is malformed"
                        )));
                    }
                }
            }
            if tree.is_empty() {
                return Err(Error::CorruptModel("empty isolation tree".into()));
            }
        }
        Ok(())
    }

    /// Walks `z` (standardised) down one tree; calls `on_cut(dims, weights, bits)` per cut.
    fn walk(tree: &[Node], z: &[f64], mut on_cut: impl FnMut(&[u32], &[f64], f64)) -> f64 {
        let mut at = 0usize;
        let mut depth = 0.0;
        loop {
            match &tree[at] {
                Node::Leaf { size } => return depth + c_factor(f64::from(*size)),
                Node::Split {
                    dims,
                    weights,
                    offset,
                    left,
                    right,
                    size,
                } => {
                    let v: f64 = dims
                        .iter()
                        .zip(weights)
                        .map(|(d, w)| w * z[*d as usize])
                        .sum();
                    let next = if v < *offset { *left } else { *right } as usize;
                    let child = match &tree[next] {
                        Node::Leaf { size } | Node::Split { size, .. } => *size,
                    };
                    on_cut(
                        dims,
                        weights,
                        (f64::from(*size) + 1.0).log2() - (f64::from(child) + 1.0).log2(),
                    );
                    at = next;
                    depth += 1.0;
                }
            }
        }
    }

    /// Mean path length of `x` over the trees.
    pub fn mean_path_length(&self, x: &[f64]) -> Result<f64> {
        let z = self.scaler.transform(x)?;
        let total: f64 = self
            .trees
            .iter()
            .map(|t| Self::walk(t, &z, |_, _, _| {}))
            .sum();
        Ok(total / self.trees.len() as f64)
    }
}

impl Detector for IsolationForest {
    fn kind(&self) -> DetectorKind {
        DetectorKind::IsolationForest
    }

    fn n_features(&self) -> usize {
        self.scaler.n_features()
    }

    fn score(&self, x: &[f64]) -> Result<f64> {
        Ok(2f64.powf(-self.mean_path_length(x)? / self.c_psi))
    }

    fn contributions(&self, x: &[f64]) -> Result<Vec<f64>> {
        let z = self.scaler.transform(x)?;
        let mut credit = vec![0.0; z.len()];
        for tree in &self.trees {
            Self::walk(tree, &z, |dims, weights, bits| {
                let total: f64 = weights.iter().map(|w| w.abs()).sum();
                if total > 0.0 {
                    for (d, w) in dims.iter().zip(weights) {
                        credit[*d as usize] += bits * w.abs() / total;
                    }
                }
            });
        }
        let n = self.trees.len() as f64;
        credit.iter_mut().for_each(|c| *c /= n);
        Ok(credit)
    }

    fn save(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_factor_matches_the_paper() {
        assert_eq!(c_factor(1.0), 0.0);
        assert_eq!(c_factor(2.0), 1.0);
        // c(256) ≈ 10.24 (Liu et al. 2008).
        assert!(
            (c_factor(256.0) - 10.24).abs() < 0.01,
            "{}",
            c_factor(256.0)
        );
    }
}
