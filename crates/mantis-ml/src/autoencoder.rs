//! A dense autoencoder on feature vectors, trained here in Rust (hand-written backpropagation
//! and Adam), so a new asset gets its own model from its own baseline without anyone writing
//! code or running Python.
//!
//! Architecture: standardised input `d` → `hidden` (tanh) → `code` (linear) → `hidden` (tanh)
//! → `d` (linear). Loss: mean squared reconstruction error. Training: Glorot-uniform init,
//! mini-batches in a seeded shuffled order, Adam with decoupled weight decay (AdamW), a fixed
//! number of epochs (no early stopping: the result depends only on the data and the seed), and
//! Gaussian input noise (a denoising autoencoder, which learns the normal manifold rather than
//! the identity).
//!
//! Raw score: mean squared reconstruction error of the standardised vector. Explanation: the
//! squared error of each feature.

use crate::detector::{Detector, DetectorKind};
use crate::error::{Error, Result, invalid};
use crate::matrix::Matrix;
use crate::rng::Rng;
use crate::scaler::Standardizer;
use serde::{Deserialize, Serialize};

/// Training parameters of an [`Autoencoder`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoencoderConfig {
    /// Width of the two hidden layers; 0 for `max(4, n_features)`.
    pub hidden: usize,
    /// Width of the code (bottleneck); 0 for `max(2, n_features / 4)`.
    pub code: usize,
    /// Passes over the training rows. Default 150.
    pub epochs: usize,
    /// Rows per gradient step. Default 32.
    pub batch_size: usize,
    /// Adam step size. Default 3e-3.
    pub learning_rate: f64,
    /// Decoupled weight decay per step (× learning rate). Default 1e-4.
    pub weight_decay: f64,
    /// Standard deviation of the Gaussian noise added to standardised inputs while training.
    /// Default 0.1.
    pub noise_std: f64,
    /// Seed of the initial weights, the shuffling and the noise.
    pub seed: u64,
}

impl Default for AutoencoderConfig {
    fn default() -> Self {
        Self {
            hidden: 0,
            code: 0,
            epochs: 150,
            batch_size: 32,
            learning_rate: 3e-3,
            weight_decay: 1e-4,
            noise_std: 0.1,
            seed: 0xA0_70E7,
        }
    }
}

/// A fully connected layer `y = f(W x + b)`, `W` row-major `n_out × n_in`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Dense {
    n_in: usize,
    n_out: usize,
    w: Vec<f64>,
    b: Vec<f64>,
    tanh: bool,
}

impl Dense {
    fn new(n_in: usize, n_out: usize, tanh: bool, rng: &mut Rng) -> Self {
        let limit = (6.0 / (n_in + n_out) as f64).sqrt();
        Self {
            n_in,
            n_out,
            w: (0..n_in * n_out)
                .map(|_| (2.0 * rng.uniform() - 1.0) * limit)
                .collect(),
            b: vec![0.0; n_out],
            tanh,
        }
    }

    fn forward(&self, x: &[f64], out: &mut Vec<f64>) {
        out.clear();
        for o in 0..self.n_out {
            let row = &self.w[o * self.n_in..(o + 1) * self.n_in];
            let v = self.b[o] + row.iter().zip(x).map(|(w, x)| w * x).sum::<f64>();
            out.push(if self.tanh { v.tanh() } else { v });
        }
    }
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// One AdamW step: gradients `g` summed over `n` rows, bias corrections `c1`, `c2`.
#[allow(clippy::too_many_arguments)]
fn adam(
    params: &mut [f64],
    g: &[f64],
    m: &mut [f64],
    v: &mut [f64],
    n: f64,
    lr: f64,
    decay: f64,
    c1: f64,
    c2: f64,
) {
    for (((p, g), m), v) in params.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = g / n;
        *m = BETA1 * *m + (1.0 - BETA1) * g;
        *v = BETA2 * *v + (1.0 - BETA2) * g * g;
        *p -= lr * ((*m / c1) / ((*v / c2).sqrt() + EPS) + decay * *p);
    }
}

/// Adam moments of one layer's parameters.
struct Moments {
    mw: Vec<f64>,
    vw: Vec<f64>,
    mb: Vec<f64>,
    vb: Vec<f64>,
}

/// A fitted autoencoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Autoencoder {
    scaler: Standardizer,
    layers: Vec<Dense>,
    /// Mean training loss of the last epoch (diagnostic).
    final_loss: f64,
}

impl Autoencoder {
    /// Trains on the training rows (at least 2).
    pub fn fit(x: &Matrix, config: &AutoencoderConfig) -> Result<Self> {
        if x.rows() < 2 {
            return Err(Error::TooFewRows {
                needed: 2,
                got: x.rows(),
            });
        }
        if config.batch_size == 0 {
            return Err(invalid("batch_size", "must be at least 1"));
        }
        if !(config.learning_rate > 0.0 && config.learning_rate.is_finite()) {
            return Err(invalid("learning_rate", "must be positive"));
        }
        if !(config.noise_std >= 0.0 && config.weight_decay >= 0.0) {
            return Err(invalid("noise_std / weight_decay", "must not be negative"));
        }
        let d = x.cols();
        let hidden = if config.hidden == 0 {
            d.max(4)
        } else {
            config.hidden
        };
        let code = if config.code == 0 {
            (d / 4).max(2)
        } else {
            config.code
        };
        let scaler = Standardizer::fit(x);
        let z = scaler.transform_matrix(x)?;
        let mut rng = Rng::new(config.seed);
        let mut layers = vec![
            Dense::new(d, hidden, true, &mut rng),
            Dense::new(hidden, code, false, &mut rng),
            Dense::new(code, hidden, true, &mut rng),
            Dense::new(hidden, d, false, &mut rng),
        ];
        let mut moments: Vec<Moments> = layers
            .iter()
            .map(|l| Moments {
                mw: vec![0.0; l.w.len()],
                vw: vec![0.0; l.w.len()],
                mb: vec![0.0; l.b.len()],
                vb: vec![0.0; l.b.len()],
            })
            .collect();
        let mut gw: Vec<Vec<f64>> = layers.iter().map(|l| vec![0.0; l.w.len()]).collect();
        let mut gb: Vec<Vec<f64>> = layers.iter().map(|l| vec![0.0; l.b.len()]).collect();
        let mut acts: Vec<Vec<f64>> = vec![Vec::new(); layers.len() + 1];
        let mut order: Vec<usize> = (0..z.rows()).collect();
        let mut step = 0i32;
        let mut final_loss = 0.0;
        for _ in 0..config.epochs {
            rng.shuffle(&mut order);
            let mut epoch_loss = 0.0;
            for batch in order.chunks(config.batch_size) {
                gw.iter_mut().for_each(|g| g.fill(0.0));
                gb.iter_mut().for_each(|g| g.fill(0.0));
                for &r in batch {
                    let target = z.row(r);
                    acts[0].clear();
                    acts[0].extend(target.iter().map(|v| v + config.noise_std * rng.normal()));
                    for (l, layer) in layers.iter().enumerate() {
                        let (before, after) = acts.split_at_mut(l + 1);
                        layer.forward(&before[l], &mut after[0]);
                    }
                    let out = &acts[layers.len()];
                    let mut delta: Vec<f64> = out
                        .iter()
                        .zip(target)
                        .map(|(y, t)| 2.0 * (y - t) / d as f64)
                        .collect();
                    epoch_loss += out
                        .iter()
                        .zip(target)
                        .map(|(y, t)| (y - t) * (y - t))
                        .sum::<f64>()
                        / d as f64;
                    for l in (0..layers.len()).rev() {
                        let layer = &layers[l];
                        if layer.tanh {
                            for (dv, a) in delta.iter_mut().zip(&acts[l + 1]) {
                                *dv *= 1.0 - a * a;
                            }
                        }
                        let input = &acts[l];
                        let rows = gw[l].chunks_exact_mut(layer.n_in);
                        for ((g, gbo), dv) in rows.zip(gb[l].iter_mut()).zip(&delta) {
                            *gbo += dv;
                            for (gi, xi) in g.iter_mut().zip(input) {
                                *gi += dv * xi;
                            }
                        }
                        if l > 0 {
                            let mut prev = vec![0.0; layer.n_in];
                            for (row, dv) in layer.w.chunks_exact(layer.n_in).zip(&delta) {
                                for (p, w) in prev.iter_mut().zip(row) {
                                    *p += w * dv;
                                }
                            }
                            delta = prev;
                        }
                    }
                }
                step += 1;
                let n = batch.len() as f64;
                let lr = config.learning_rate;
                let c1 = 1.0 - BETA1.powi(step);
                let c2 = 1.0 - BETA2.powi(step);
                for (l, layer) in layers.iter_mut().enumerate() {
                    let m = &mut moments[l];
                    adam(
                        &mut layer.w,
                        &gw[l],
                        &mut m.mw,
                        &mut m.vw,
                        n,
                        lr,
                        config.weight_decay,
                        c1,
                        c2,
                    );
                    adam(
                        &mut layer.b,
                        &gb[l],
                        &mut m.mb,
                        &mut m.vb,
                        n,
                        lr,
                        0.0,
                        c1,
                        c2,
                    );
                }
            }
            final_loss = epoch_loss / z.rows() as f64;
        }
        if !final_loss.is_finite() || layers.iter().any(|l| l.w.iter().any(|w| !w.is_finite())) {
            return Err(invalid(
                "learning_rate",
                "training diverged (non-finite weights); lower the learning rate",
            ));
        }
        Ok(Self {
            scaler,
            layers,
            final_loss,
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
        let mut width = self.scaler.n_features();
        for l in &self.layers {
            if l.n_in != width || l.w.len() != l.n_in * l.n_out || l.b.len() != l.n_out {
                return Err(Error::CorruptModel("autoencoder layer shapes".into()));
            }
            width = l.n_out;
        }
        if self.layers.is_empty() || width != self.scaler.n_features() {
            return Err(Error::CorruptModel(
                "autoencoder output must match its input".into(),
            ));
        }
        Ok(())
    }

    /// Mean training loss of the last epoch.
    pub fn final_loss(&self) -> f64 {
        self.final_loss
    }

    /// The standardised input and its reconstruction.
    pub fn reconstruct(&self, x: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let z = self.scaler.transform(x)?;
        let mut a = z.clone();
        let mut b = Vec::with_capacity(a.len());
        for layer in &self.layers {
            layer.forward(&a, &mut b);
            std::mem::swap(&mut a, &mut b);
        }
        Ok((z, a))
    }
}

impl Detector for Autoencoder {
    fn kind(&self) -> DetectorKind {
        DetectorKind::Autoencoder
    }

    fn n_features(&self) -> usize {
        self.scaler.n_features()
    }

    fn score(&self, x: &[f64]) -> Result<f64> {
        let (z, y) = self.reconstruct(x)?;
        Ok(z.iter()
            .zip(&y)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            / z.len() as f64)
    }

    fn contributions(&self, x: &[f64]) -> Result<Vec<f64>> {
        let (z, y) = self.reconstruct(x)?;
        Ok(z.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).collect())
    }

    fn save(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_linear_manifold() {
        // Points on a 2-D plane in 6-D: the reconstruction error drops far below the variance.
        let mut r = Rng::new(11);
        let rows: Vec<Vec<f64>> = (0..300)
            .map(|_| {
                let (a, b) = (r.normal(), r.normal());
                vec![a, b, a + b, a - b, 2.0 * a, 0.5 * b]
            })
            .collect();
        let x = Matrix::from_rows(&rows).expect("matrix");
        let ae = Autoencoder::fit(
            &x,
            &AutoencoderConfig {
                epochs: 60,
                noise_std: 0.0,
                ..Default::default()
            },
        )
        .expect("fit");
        assert!(ae.final_loss() < 0.05, "loss {}", ae.final_loss());
        // Off the plane: a large error.
        assert!(ae.score(&[1.0, 1.0, -2.0, 2.0, -2.0, 0.5]).expect("score") > 0.5);
    }
}
