//! Discrete wavelet transform with Daubechies wavelets, equal to PyWavelets:
//! [`wavedec`] is `pywt.wavedec(x, 'db4', mode='symmetric', level=L)`, and one level is
//! `pywt.dwt(x, 'db4', mode='symmetric')`.
//!
//! One level convolves the signal, extended by half-sample symmetry (`… x1 x0 | x0 x1 … xn−1 |
//! xn−1 xn−2 …`, repeated for signals shorter than the filter), with the decomposition low-pass and
//! high-pass filters and keeps every second output starting at index 1: `⌊(n + F − 1)/2⌋`
//! coefficients each. The loop visits the filter taps in the order PyWavelets' C kernel does, so
//! the coefficients agree to the last bit or two.
//!
//! Per level, [`energy`] is `Σc²` and [`shannon_entropy`] is `−Σ p ln p` with `p = c²/Σc²` (nats;
//! 0 for an all-zero level).

use crate::{Error, Result};
use std::ops::Range;

/// A wavelet family member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Wavelet {
    /// Daubechies with 4 vanishing moments (8 taps), PyWavelets' `'db4'`. The default.
    #[default]
    Db4,
}

/// `pywt.Wavelet('db4').dec_lo`.
const DB4_DEC_LO: [f64; 8] = [
    -0.010_597_401_785_069_032,
    0.032_883_011_666_885_2,
    0.030_841_381_835_560_764,
    -0.187_034_811_719_093_09,
    -0.027_983_769_416_859_854,
    0.630_880_767_929_858_9,
    0.714_846_570_552_915_7,
    0.230_377_813_308_896_5,
];

/// `pywt.Wavelet('db4').dec_hi`.
const DB4_DEC_HI: [f64; 8] = [
    -0.230_377_813_308_896_5,
    0.714_846_570_552_915_7,
    -0.630_880_767_929_858_9,
    -0.027_983_769_416_859_854,
    0.187_034_811_719_093_09,
    0.030_841_381_835_560_764,
    -0.032_883_011_666_885_2,
    -0.010_597_401_785_069_032,
];

impl Wavelet {
    /// PyWavelets' name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Db4 => "db4",
        }
    }

    /// Decomposition low-pass filter (`dec_lo`).
    pub fn dec_lo(&self) -> &'static [f64] {
        match self {
            Self::Db4 => &DB4_DEC_LO,
        }
    }

    /// Decomposition high-pass filter (`dec_hi`).
    pub fn dec_hi(&self) -> &'static [f64] {
        match self {
            Self::Db4 => &DB4_DEC_HI,
        }
    }

    fn filters(&self) -> (&'static [f64; 8], &'static [f64; 8]) {
        match self {
            Self::Db4 => (&DB4_DEC_LO, &DB4_DEC_HI),
        }
    }

    /// Filter length.
    pub fn filter_len(&self) -> usize {
        self.dec_lo().len()
    }
}

/// Number of coefficients of one level for an input of `n` samples (`pywt.dwt_coeff_len` in
/// symmetric mode).
pub fn dwt_len(n: usize, filter_len: usize) -> usize {
    (n + filter_len - 1) / 2
}

/// Deepest level without boundary effects everywhere (`pywt.dwt_max_level`):
/// `⌊log2(⌊n / (F − 1)⌋)⌋`, 0 for short signals.
pub fn dwt_max_level(n: usize, filter_len: usize) -> usize {
    if filter_len <= 1 || n < filter_len - 1 {
        return 0;
    }
    let q = n / (filter_len - 1);
    (usize::BITS - 1 - q.leading_zeros()) as usize
}

/// Index into a signal of length `n` of position `m` of its half-sample symmetric extension.
#[inline]
fn sym_index(m: isize, n: usize) -> usize {
    let p = 2 * n as isize;
    let r = m.rem_euclid(p) as usize;
    if r < n { r } else { 2 * n - 1 - r }
}

/// One output of the downsampled convolution at full-convolution index `i`, summing taps in
/// PyWavelets' order (taps that fall past the right end first, from the innermost outwards).
#[inline]
fn boundary_output(x: &[f64], f: &[f64], i: usize) -> f64 {
    let n = x.len();
    let mut sum = 0.0;
    let first_in = if i >= n {
        for j in (0..=(i - n).min(f.len() - 1)).rev() {
            sum += f[j] * x[sym_index(i as isize - j as isize, n)];
        }
        i - n + 1
    } else {
        0
    };
    for (j, fj) in f.iter().enumerate().skip(first_in) {
        sum += fj * x[sym_index(i as isize - j as isize, n)];
    }
    sum
}

/// Convolves `x` with the filters `lo` and `hi` (of equal length) and keeps outputs 1, 3, 5, …,
/// appending them to `out_lo` and `out_hi`. The interior runs over fixed-size windows, both
/// filters in one pass; each output still sums its taps in PyWavelets' order.
fn downsample_convolve_pair<const F: usize>(
    x: &[f64],
    lo: &[f64; F],
    hi: &[f64; F],
    out_lo: &mut Vec<f64>,
    out_hi: &mut Vec<f64>,
) {
    let n = x.len();
    let total = n + F - 1;
    out_lo.reserve(total / 2);
    out_hi.reserve(total / 2);
    let mut i = 1;
    // Left boundary: i < F − 1.
    while i < total && i + 1 < F {
        out_lo.push(boundary_output(x, lo, i));
        out_hi.push(boundary_output(x, hi, i));
        i += 2;
    }
    // Interior: every tap inside the signal. Two output positions per iteration give the CPU
    // four independent accumulation chains.
    while i + 2 < n && i + 1 >= F {
        let w: &[f64; F] = match x[i + 1 - F..=i].try_into() {
            Ok(w) => w,
            Err(_) => break,
        };
        let v: &[f64; F] = match x[i + 3 - F..=i + 2].try_into() {
            Ok(v) => v,
            Err(_) => break,
        };
        let (mut a0, mut d0, mut a1, mut d1) = (0.0, 0.0, 0.0, 0.0);
        for j in 0..F {
            a0 += w[F - 1 - j] * lo[j];
            d0 += w[F - 1 - j] * hi[j];
            a1 += v[F - 1 - j] * lo[j];
            d1 += v[F - 1 - j] * hi[j];
        }
        out_lo.push(a0);
        out_hi.push(d0);
        out_lo.push(a1);
        out_hi.push(d1);
        i += 4;
    }
    while i < n {
        let w: &[f64; F] = match x[i + 1 - F..=i].try_into() {
            Ok(w) => w,
            Err(_) => break,
        };
        let (mut a, mut d) = (0.0, 0.0);
        for j in 0..F {
            a += w[F - 1 - j] * lo[j];
            d += w[F - 1 - j] * hi[j];
        }
        out_lo.push(a);
        out_hi.push(d);
        i += 2;
    }
    // Right boundary (and signals shorter than the filter).
    while i < total {
        out_lo.push(boundary_output(x, lo, i));
        out_hi.push(boundary_output(x, hi, i));
        i += 2;
    }
}

/// One level of the transform: appends the approximation to `approx` and the detail to `detail`
/// (`pywt.dwt(x, wavelet, mode='symmetric')`).
pub fn dwt_into(
    x: &[f64],
    wavelet: Wavelet,
    approx: &mut Vec<f64>,
    detail: &mut Vec<f64>,
) -> Result<()> {
    if x.is_empty() {
        return Err(Error::Empty);
    }
    let (lo, hi) = wavelet.filters();
    downsample_convolve_pair(x, lo, hi, approx, detail);
    Ok(())
}

/// `pywt.wavedec(x, wavelet, mode='symmetric', level=levels)`: `[cA_L, cD_L, …, cD_1]`.
pub fn wavedec(x: &[f64], wavelet: Wavelet, levels: usize) -> Result<Vec<Vec<f64>>> {
    let mut t = WaveletTransform::new(wavelet, levels)?;
    let d = t.decompose(x)?;
    Ok(d.bands().map(|(_, c)| c.to_vec()).collect())
}

/// Energy of a coefficient band, `Σc²`.
pub fn energy(c: &[f64]) -> f64 {
    c.iter().map(|v| v * v).sum()
}

/// Shannon entropy (nats) of a band's energy distribution, `−Σ p ln p` with `p = c²/Σc²`; 0 for
/// an all-zero band.
pub fn shannon_entropy(c: &[f64]) -> f64 {
    energy_and_entropy(c).1
}

/// [`energy`] and [`shannon_entropy`] of a band in one pass (`H = ln E − Σc² ln c² / E`).
pub fn energy_and_entropy(c: &[f64]) -> (f64, f64) {
    let (e, s) = crate::math::sum_and_sum_v_ln_v(c, |v| v * v);
    (e, crate::math::entropy_from_sums(e, s))
}

/// Multilevel decomposition with reusable buffers.
#[derive(Clone, Debug)]
pub struct WaveletTransform {
    wavelet: Wavelet,
    levels: usize,
    coeffs: Vec<f64>,
    details: Vec<Range<usize>>,
    approx: Range<usize>,
    work_a: Vec<f64>,
    work_b: Vec<f64>,
}

impl WaveletTransform {
    /// A transform of `levels` levels (1 to 32). As PyWavelets, levels beyond
    /// [`dwt_max_level`] are allowed; their coefficients are dominated by the boundary extension.
    pub fn new(wavelet: Wavelet, levels: usize) -> Result<Self> {
        if !(1..=32).contains(&levels) {
            return Err(Error::invalid(
                "wavelet levels",
                format!("{levels} is outside 1..=32"),
            ));
        }
        Ok(Self {
            wavelet,
            levels,
            coeffs: Vec::new(),
            details: Vec::with_capacity(levels),
            approx: 0..0,
            work_a: Vec::new(),
            work_b: Vec::new(),
        })
    }

    /// Number of levels.
    pub fn levels(&self) -> usize {
        self.levels
    }

    /// The wavelet.
    pub fn wavelet(&self) -> Wavelet {
        self.wavelet
    }

    /// Decomposes `x` (finite values, at least one).
    pub fn decompose(&mut self, x: &[f64]) -> Result<Decomposition<'_>> {
        if x.is_empty() {
            return Err(Error::Empty);
        }
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite { index });
        }
        self.coeffs.clear();
        self.details.clear();
        self.work_a.clear();
        self.work_a.extend_from_slice(x);
        for _ in 0..self.levels {
            self.work_b.clear();
            let start = self.coeffs.len();
            let (lo, hi) = self.wavelet.filters();
            downsample_convolve_pair(&self.work_a, lo, hi, &mut self.work_b, &mut self.coeffs);
            self.details.push(start..self.coeffs.len());
            std::mem::swap(&mut self.work_a, &mut self.work_b);
        }
        let start = self.coeffs.len();
        self.coeffs.extend_from_slice(&self.work_a);
        self.approx = start..self.coeffs.len();
        Ok(Decomposition {
            coeffs: &self.coeffs,
            details: &self.details,
            approx: self.approx.clone(),
        })
    }
}

/// The coefficients of one decomposition (borrowed from its [`WaveletTransform`]).
#[derive(Clone, Debug)]
pub struct Decomposition<'a> {
    coeffs: &'a [f64],
    details: &'a [Range<usize>],
    approx: Range<usize>,
}

/// Which band of a decomposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Band {
    /// Approximation at the deepest level `L` (`cA_L`).
    Approximation(usize),
    /// Detail at a level, 1 being the finest (`cD_level`).
    Detail(usize),
}

impl std::fmt::Display for Band {
    /// `a5`, `d5`, …, `d1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Approximation(l) => write!(f, "a{l}"),
            Self::Detail(l) => write!(f, "d{l}"),
        }
    }
}

impl<'a> Decomposition<'a> {
    /// Number of levels.
    pub fn levels(&self) -> usize {
        self.details.len()
    }

    /// The deepest approximation `cA_L`.
    pub fn approximation(&self) -> &'a [f64] {
        &self.coeffs[self.approx.clone()]
    }

    /// Detail coefficients `cD_level`, level 1 (finest) to L; `None` outside.
    pub fn detail(&self, level: usize) -> Option<&'a [f64]> {
        let r = self.details.get(level.checked_sub(1)?)?;
        Some(&self.coeffs[r.clone()])
    }

    /// The bands in PyWavelets' order `[cA_L, cD_L, …, cD_1]`.
    pub fn bands(&self) -> impl Iterator<Item = (Band, &'a [f64])> + '_ {
        let l = self.levels();
        std::iter::once((Band::Approximation(l), self.approximation())).chain((1..=l).rev().map(
            move |lvl| {
                (
                    Band::Detail(lvl),
                    &self.coeffs[self.details[lvl - 1].clone()],
                )
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_follow_pywavelets() {
        assert_eq!(dwt_len(100, 8), 53);
        assert_eq!(dwt_len(1, 8), 4);
        assert_eq!(dwt_max_level(1000, 8), 7);
        assert_eq!(dwt_max_level(3000, 8), 8);
        assert_eq!(dwt_max_level(6, 8), 0);
    }

    #[test]
    fn a_constant_has_no_detail_and_keeps_energy_in_the_approximation() {
        let x = vec![2.0; 64];
        let c = wavedec(&x, Wavelet::Db4, 3).expect("ok");
        assert_eq!(c.len(), 4);
        for d in &c[1..] {
            assert!(d.iter().all(|v| v.abs() < 1e-12));
        }
        // Orthogonal filters with √2 DC gain: each level multiplies a constant by √2.
        assert!(
            c[0].iter()
                .all(|v| (v - 2.0 * 2f64.sqrt().powi(3)).abs() < 1e-12)
        );
    }

    #[test]
    fn entropy_and_energy() {
        assert_eq!(energy(&[3.0, 4.0]), 25.0);
        assert_eq!(shannon_entropy(&[0.0, 0.0]), 0.0);
        assert!((shannon_entropy(&[1.0, 1.0]) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(shannon_entropy(&[0.0, 5.0]), 0.0);
    }

    #[test]
    fn band_labels() {
        let mut t = WaveletTransform::new(Wavelet::Db4, 2).expect("ok");
        let d = t.decompose(&[1.0, 2.0, 3.0]).expect("ok");
        let labels: Vec<String> = d.bands().map(|(b, _)| b.to_string()).collect();
        assert_eq!(labels, ["a2", "d2", "d1"]);
        assert!(d.detail(0).is_none() && d.detail(3).is_none());
        assert!(WaveletTransform::new(Wavelet::Db4, 0).is_err());
    }
}
