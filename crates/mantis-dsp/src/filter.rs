//! Butterworth IIR filters in second-order sections: design identical to
//! `scipy.signal.butter(N, Wn, btype, fs=fs, output='sos')`, a streaming [`SosFilter`] that
//! carries its state across windows (equal to `scipy.signal.sosfilt` over the concatenated
//! signal), steady-state initial conditions as `scipy.signal.sosfilt_zi`, and a zero-phase
//! [`ZeroPhaseFilter`] equal to `scipy.signal.sosfiltfilt` with its defaults (`padtype='odd'`,
//! `padlen = 3 · ntaps`).
//!
//! The design follows SciPy step by step (analog prototype `buttap`, frequency transform
//! `lp2lp_zpk` / `lp2hp_zpk` / `lp2bp_zpk` after pre-warping, `bilinear_zpk`, then `zpk2sos` with
//! its `'nearest'` pairing), using the same complex arithmetic (Smith's division as NumPy, the
//! C99 `csqrt` algorithm) so the sections agree with SciPy to rounding.
//!
//! ```
//! use mantis_dsp::filter::{butter, FilterBand, SosFilter};
//! let sos = butter(4, FilterBand::LowPass { cutoff_hz: 10.0 }, 100.0).unwrap();
//! assert_eq!(sos.sections().len(), 2);
//! let mut f = SosFilter::new(sos);
//! let mut window = vec![1.0; 50];
//! f.reset_to_steady_state(1.0);
//! f.process_in_place(&mut window);
//! assert!((window[49] - 1.0).abs() < 1e-12); // unit DC gain, no start-up transient
//! ```

use crate::{Error, Result};
use realfft::num_complex::Complex64 as C;
use std::f64::consts::PI;

/// Which frequencies a filter passes. Frequencies are in Hz, strictly between 0 and the Nyquist
/// frequency (half the sample rate).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FilterBand {
    /// Passes frequencies below the cut-off.
    LowPass {
        /// −3 dB frequency, Hz.
        cutoff_hz: f64,
    },
    /// Passes frequencies above the cut-off.
    HighPass {
        /// −3 dB frequency, Hz.
        cutoff_hz: f64,
    },
    /// Passes frequencies between the two edges.
    BandPass {
        /// Lower −3 dB frequency, Hz.
        low_hz: f64,
        /// Upper −3 dB frequency, Hz.
        high_hz: f64,
    },
}

/// A cascade of second-order sections `[b0, b1, b2, a0, a1, a2]` with `a0 = 1`, the layout of
/// SciPy's `sos` arrays.
#[derive(Clone, Debug, PartialEq)]
pub struct Sos {
    sections: Vec<[f64; 6]>,
}

impl Sos {
    /// Sections given as `[b0, b1, b2, a0, a1, a2]` rows; each row is divided by its `a0`.
    /// Refuses an empty cascade, a zero `a0` or a non-finite coefficient.
    pub fn from_sections(mut sections: Vec<[f64; 6]>) -> Result<Self> {
        if sections.is_empty() {
            return Err(Error::invalid("second-order sections", "none given"));
        }
        for s in &mut sections {
            if s.iter().any(|c| !c.is_finite()) {
                return Err(Error::invalid(
                    "second-order sections",
                    "non-finite coefficient",
                ));
            }
            if s[3] == 0.0 {
                return Err(Error::invalid("second-order sections", "a0 is zero"));
            }
            if s[3] != 1.0 {
                let a0 = s[3];
                for c in s.iter_mut() {
                    *c /= a0;
                }
            }
        }
        Ok(Self { sections })
    }

    /// The sections.
    pub fn sections(&self) -> &[[f64; 6]] {
        &self.sections
    }

    /// Poles of the cascade (two per section, roots of `z² + a1·z + a2`; a first-order section
    /// contributes a pole at 0).
    pub fn poles(&self) -> Vec<C> {
        let mut out = Vec::with_capacity(2 * self.sections.len());
        for s in &self.sections {
            let (a1, a2) = (s[4], s[5]);
            let disc = a1 * a1 - 4.0 * a2;
            if disc >= 0.0 {
                // Numerically stable real roots.
                let q = -0.5 * (a1 + a1.signum() * disc.sqrt());
                if q == 0.0 {
                    out.extend([C::new(0.0, 0.0), C::new(0.0, 0.0)]);
                } else {
                    out.extend([C::new(q, 0.0), C::new(a2 / q, 0.0)]);
                }
            } else {
                let im = (-disc).sqrt() / 2.0;
                out.extend([C::new(-a1 / 2.0, im), C::new(-a1 / 2.0, -im)]);
            }
        }
        out
    }

    /// Whether every pole lies strictly inside the unit circle.
    pub fn is_stable(&self) -> bool {
        self.poles().iter().all(|p| p.norm() < 1.0)
    }

    /// Steady-state initial conditions for a unit step, as `scipy.signal.sosfilt_zi`: the state
    /// the filter would hold after an infinitely long constant input of 1. Scale by the first
    /// sample to start without a transient.
    pub fn steady_state(&self) -> Vec<[f64; 2]> {
        let mut zi = Vec::with_capacity(self.sections.len());
        let mut scale = 1.0;
        for s in &self.sections {
            let z = lfilter_zi2(s);
            zi.push([scale * z[0], scale * z[1]]);
            scale *= (s[0] + s[1] + s[2]) / (s[3] + s[4] + s[5]);
        }
        zi
    }

    /// Gain at 0 Hz (the product of each section's `Σb / Σa`).
    pub fn dc_gain(&self) -> f64 {
        self.sections
            .iter()
            .map(|s| (s[0] + s[1] + s[2]) / (s[3] + s[4] + s[5]))
            .product()
    }

    /// The padding `scipy.signal.sosfiltfilt` uses by default: `3 · ntaps`, with
    /// `ntaps = 2·n_sections + 1 − min(#(b2 = 0), #(a2 = 0))`.
    pub fn default_padlen(&self) -> usize {
        let n = self.sections.len();
        let zb = self.sections.iter().filter(|s| s[2] == 0.0).count();
        let za = self.sections.iter().filter(|s| s[5] == 0.0).count();
        3 * (2 * n + 1 - zb.min(za))
    }
}

/// `scipy.signal.lfilter_zi` for one normalised section: solves `(I − Aᵀ) zi = B` with
/// `A` the companion matrix, by Gaussian elimination with partial pivoting (as LAPACK `gesv`).
fn lfilter_zi2(s: &[f64; 6]) -> [f64; 2] {
    let (b0, b1, b2, a1, a2) = (s[0], s[1], s[2], s[4], s[5]);
    // I − companion(a)ᵀ = [[1 + a1, −1], [a2, 1]]
    let m = [[1.0 + a1, -1.0], [a2, 1.0]];
    let rhs = [b1 - a1 * b0, b2 - a2 * b0];
    let (p, q) = if m[1][0].abs() > m[0][0].abs() {
        (1, 0)
    } else {
        (0, 1)
    };
    let piv = m[p][0];
    if piv == 0.0 {
        return [0.0, 0.0];
    }
    let l = m[q][0] * (1.0 / piv);
    let u11 = m[q][1] - l * m[p][1];
    let y1 = rhs[q] - l * rhs[p];
    let z1 = if u11 == 0.0 { 0.0 } else { y1 / u11 };
    let z0 = (rhs[p] - m[p][1] * z1) / piv;
    [z0, z1]
}

/// Designs a digital Butterworth filter of `order` (1 to 32) for signals sampled at
/// `sample_rate_hz`, as `scipy.signal.butter(order, Wn, btype, fs=sample_rate_hz,
/// output='sos')`. A band-pass filter of order N has 2N poles (N sections), as in SciPy.
pub fn butter(order: usize, band: FilterBand, sample_rate_hz: f64) -> Result<Sos> {
    if !(1..=32).contains(&order) {
        return Err(Error::invalid(
            "filter order",
            format!("{order} is outside 1..=32"),
        ));
    }
    if !(sample_rate_hz.is_finite() && sample_rate_hz > 0.0) {
        return Err(Error::invalid(
            "sample rate",
            format!("{sample_rate_hz} Hz is not a positive finite rate"),
        ));
    }
    let nyquist = sample_rate_hz / 2.0;
    let normalise = |f: f64| -> Result<f64> {
        let w = f / nyquist;
        if w.is_finite() && w > 0.0 && w < 1.0 {
            Ok(w)
        } else {
            Err(Error::invalid(
                "cut-off frequency",
                format!("{f} Hz must lie strictly between 0 and {nyquist} Hz (fs/2)"),
            ))
        }
    };
    // Pre-warp for the bilinear transform with SciPy's internal fs = 2.
    let warp = |w: f64| 4.0 * (PI * w / 2.0).tan();
    let poles = buttap(order);
    let (z, p, k) = match band {
        FilterBand::LowPass { cutoff_hz } => {
            let wo = warp(normalise(cutoff_hz)?);
            let p: Vec<C> = poles.iter().map(|&p| scale(p, wo)).collect();
            (Vec::new(), p, wo.powf(order as f64))
        }
        FilterBand::HighPass { cutoff_hz } => {
            let wo = warp(normalise(cutoff_hz)?);
            let p: Vec<C> = poles.iter().map(|&p| div(C::new(wo, 0.0), p)).collect();
            let prod_neg_p = prod(poles.iter().map(|&p| -p));
            let k = div(C::new(1.0, 0.0), prod_neg_p).re;
            (vec![C::new(0.0, 0.0); order], p, k)
        }
        FilterBand::BandPass { low_hz, high_hz } => {
            let (w0, w1) = (normalise(low_hz)?, normalise(high_hz)?);
            if w0 >= w1 {
                return Err(Error::invalid(
                    "band-pass edges",
                    format!("low edge {low_hz} Hz must be below high edge {high_hz} Hz"),
                ));
            }
            let (lo, hi) = (warp(w0), warp(w1));
            let bw = hi - lo;
            let wo = (lo * hi).sqrt();
            let wo2 = wo.powi(2);
            let mut p = Vec::with_capacity(2 * order);
            let lp: Vec<C> = poles.iter().map(|&p| half(scale(p, bw))).collect();
            for &q in &lp {
                p.push(q + csqrt(q * q - wo2));
            }
            for &q in &lp {
                p.push(q - csqrt(q * q - wo2));
            }
            (vec![C::new(0.0, 0.0); order], p, bw.powf(order as f64))
        }
    };
    // Bilinear transform with fs = 2 (fs2 = 4).
    let fs2 = C::new(4.0, 0.0);
    let degree = p.len() - z.len();
    let mut zz: Vec<C> = z.iter().map(|&z| div(fs2 + z, fs2 - z)).collect();
    zz.extend(std::iter::repeat_n(C::new(-1.0, 0.0), degree));
    let pz: Vec<C> = p.iter().map(|&p| div(fs2 + p, fs2 - p)).collect();
    let num = if z.is_empty() {
        C::new(1.0, 0.0)
    } else {
        prod(z.iter().map(|&z| fs2 - z))
    };
    let kz = k * div(num, prod(p.iter().map(|&p| fs2 - p))).re;
    zpk2sos(zz, pz, kz)
}

/// Poles of the analog Butterworth prototype (`scipy.signal.buttap`).
fn buttap(n: usize) -> Vec<C> {
    let n_i = n as i64;
    (0..n_i)
        .map(|i| {
            let m = -n_i + 1 + 2 * i;
            // NumPy evaluates 1j·π·m / (2N) as a complex division: im = (π·m) · (1 / (2N)).
            let theta = (PI * m as f64) * (1.0 / (2.0 * n as f64));
            let (s, c) = theta.sin_cos();
            C::new(-c, -s)
        })
        .collect()
}

/// Complex times real, as NumPy does after promoting the real to complex.
fn scale(z: C, r: f64) -> C {
    C::new(z.re * r - z.im * 0.0, z.re * 0.0 + z.im * r)
}

fn half(z: C) -> C {
    C::new(z.re * 0.5, z.im * 0.5)
}

/// Complex division with Smith's algorithm, as NumPy's `complex128` divide.
fn div(a: C, b: C) -> C {
    let (br, bi) = (b.re, b.im);
    if br.abs() >= bi.abs() {
        if br == 0.0 && bi == 0.0 {
            return C::new(a.re / br.abs(), a.im / br.abs());
        }
        let rat = bi / br;
        let scl = 1.0 / (br + bi * rat);
        C::new((a.re + a.im * rat) * scl, (a.im - a.re * rat) * scl)
    } else {
        let rat = br / bi;
        let scl = 1.0 / (bi + br * rat);
        C::new((a.re * rat + a.im) * scl, (a.im * rat - a.re) * scl)
    }
}

/// Principal square root, as C99 `csqrt` (glibc) computes it.
fn csqrt(z: C) -> C {
    let (x, y) = (z.re, z.im);
    if x == 0.0 && y == 0.0 {
        return C::new(0.0, y);
    }
    let h = x.hypot(y);
    if x >= 0.0 {
        let d = (0.5 * (h + x)).sqrt();
        C::new(d, 0.5 * (y / d))
    } else {
        let s = (0.5 * (h - x)).sqrt();
        C::new((0.5 * (y / s)).abs(), s.copysign(y))
    }
}

fn prod(mut it: impl Iterator<Item = C>) -> C {
    let Some(first) = it.next() else {
        return C::new(1.0, 0.0);
    };
    it.fold(first, |acc, z| acc * z)
}

fn is_real(z: C) -> bool {
    z.im == 0.0
}

/// `scipy.signal._filter_design._cplxreal`: complex values (one of each conjugate pair, sorted
/// by real part, pairs averaged) followed by the real ones.
fn cplxreal(mut z: Vec<C>) -> Result<Vec<C>> {
    let tol = 100.0 * f64::EPSILON;
    // Stable sort by (real part, |imaginary part|), as np.lexsort.
    z.sort_by(|a, b| {
        a.re.total_cmp(&b.re)
            .then_with(|| a.im.abs().total_cmp(&b.im.abs()))
    });
    let is_r = |v: &C| v.im.abs() <= tol * v.norm();
    let reals: Vec<C> = z
        .iter()
        .filter(|v| is_r(v))
        .map(|v| C::new(v.re, 0.0))
        .collect();
    if reals.len() == z.len() {
        return Ok(reals);
    }
    let complex: Vec<C> = z.iter().copied().filter(|v| !is_r(v)).collect();
    let mut zp: Vec<C> = complex.iter().copied().filter(|v| v.im > 0.0).collect();
    let mut zn: Vec<C> = complex.iter().copied().filter(|v| v.im < 0.0).collect();
    if zp.len() != zn.len() {
        return Err(Error::invalid(
            "filter design",
            "a complex root has no conjugate",
        ));
    }
    // Runs of (approximately) equal real parts are sorted by |imaginary part|.
    let mut start = 0;
    while start < zp.len() {
        let mut stop = start + 1;
        while stop < zp.len() && zp[stop].re - zp[stop - 1].re <= tol * zp[stop - 1].norm() {
            stop += 1;
        }
        if stop - start > 1 {
            zp[start..stop].sort_by(|a, b| a.im.abs().total_cmp(&b.im.abs()));
            zn[start..stop].sort_by(|a, b| a.im.abs().total_cmp(&b.im.abs()));
        }
        start = stop;
    }
    for (a, b) in zp.iter().zip(&zn) {
        if (a - b.conj()).norm() > tol * b.norm() {
            return Err(Error::invalid(
                "filter design",
                "complex roots do not come in conjugate pairs",
            ));
        }
    }
    let mut out: Vec<C> = zp
        .iter()
        .zip(&zn)
        .map(|(a, b)| half(a + b.conj()))
        .collect();
    out.extend(reals);
    Ok(out)
}

/// `np.argmin(np.abs(1 - np.abs(p)))` over `candidates` (indices into `p`).
fn idx_worst(p: &[C], candidates: impl Iterator<Item = usize>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for i in candidates {
        let d = (1.0 - p[i].norm()).abs();
        if best.is_none_or(|(_, b)| d < b) {
            best = Some((i, d));
        }
    }
    best.map(|(i, _)| i)
}

#[derive(Clone, Copy, PartialEq)]
enum Which {
    Real,
    Complex,
    Any,
}

/// `_nearest_real_complex_idx`: index of the element of `fro` closest to `to` that is real,
/// complex or either (ties keep the lower index, as NumPy's stable small-array argsort).
fn nearest(fro: &[C], to: C, which: Which) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &z) in fro.iter().enumerate() {
        let ok = match which {
            Which::Any => true,
            Which::Real => is_real(z),
            Which::Complex => !is_real(z),
        };
        if !ok {
            continue;
        }
        let d = (z - to).norm();
        if best.is_none_or(|(_, b)| d < b) {
            best = Some((i, d));
        }
    }
    best.map(|(i, _)| i)
}

/// `np.poly(roots)` (repeated convolution by `[1, −r]`), real part.
fn poly(roots: &[C]) -> Vec<f64> {
    let mut a = vec![C::new(1.0, 0.0)];
    for &r in roots {
        let mut next = vec![C::new(0.0, 0.0); a.len() + 1];
        for (i, &c) in a.iter().enumerate() {
            next[i] += c;
            next[i + 1] += c * -r;
        }
        a = next;
    }
    a.iter().map(|c| c.re).collect()
}

fn single_section(z: &[C], p: &[C]) -> [f64; 6] {
    let b = poly(z);
    let a = poly(p);
    let mut s = [0.0; 6];
    s[3 - b.len()..3].copy_from_slice(&b);
    s[6 - a.len()..6].copy_from_slice(&a);
    s
}

/// `scipy.signal.zpk2sos(z, p, k)` for digital filters, `pairing='nearest'`.
fn zpk2sos(mut z: Vec<C>, mut p: Vec<C>, k: f64) -> Result<Sos> {
    if z.len() > p.len() {
        p.resize(z.len(), C::new(0.0, 0.0));
    }
    if p.len() > z.len() {
        z.resize(p.len(), C::new(0.0, 0.0));
    }
    let n_sections = p.len().div_ceil(2);
    if p.len() % 2 == 1 {
        p.push(C::new(0.0, 0.0));
        z.push(C::new(0.0, 0.0));
    }
    let mut z = cplxreal(z)?;
    let mut p = cplxreal(p)?;
    let mut sos = vec![[0.0; 6]; n_sections];
    let broken = || Error::invalid("filter design", "poles and zeros cannot be paired");
    for si in (0..n_sections).rev() {
        let p1_idx = idx_worst(&p, 0..p.len()).ok_or_else(broken)?;
        let p1 = p.remove(p1_idx);
        let reals_left = p.iter().filter(|v| is_real(**v)).count();
        if is_real(p1) && reals_left == 0 {
            let z1_idx = nearest(&z, p1, Which::Real).ok_or_else(broken)?;
            let z1 = z.remove(z1_idx);
            sos[si] = single_section(&[z1, C::new(0.0, 0.0)], &[p1, C::new(0.0, 0.0)]);
        } else if p.len() + 1 == z.len()
            && !is_real(p1)
            && reals_left == 1
            && z.iter().filter(|v| is_real(**v)).count() == 1
        {
            let z1_idx = nearest(&z, p1, Which::Complex).ok_or_else(broken)?;
            let z1 = z.remove(z1_idx);
            sos[si] = single_section(&[z1, z1.conj()], &[p1, p1.conj()]);
        } else {
            let p2 = if is_real(p1) {
                let cand = (0..p.len()).filter(|&i| is_real(p[i]));
                let p2_idx = idx_worst(&p, cand).ok_or_else(broken)?;
                p.remove(p2_idx)
            } else {
                p1.conj()
            };
            if z.is_empty() {
                sos[si] = single_section(&[], &[p1, p2]);
            } else {
                let z1_idx = nearest(&z, p1, Which::Any).ok_or_else(broken)?;
                let z1 = z.remove(z1_idx);
                if !is_real(z1) {
                    sos[si] = single_section(&[z1, z1.conj()], &[p1, p2]);
                } else if z.is_empty() {
                    sos[si] = single_section(&[z1], &[p1, p2]);
                } else {
                    let z2_idx = nearest(&z, p1, Which::Real).ok_or_else(broken)?;
                    let z2 = z.remove(z2_idx);
                    sos[si] = single_section(&[z1, z2], &[p1, p2]);
                }
            }
        }
    }
    for c in &mut sos[0][..3] {
        *c *= k;
    }
    Sos::from_sections(sos)
}

/// One section's direct-form-II-transposed step, as SciPy's `_sosfilt` kernel.
#[inline(always)]
fn step(sections: &[[f64; 6]], state: &mut [[f64; 2]], x: f64) -> f64 {
    let mut cur = x;
    for (s, z) in sections.iter().zip(state.iter_mut()) {
        let new = s[0] * cur + z[0];
        z[0] = s[1] * cur - s[4] * new + z[1];
        z[1] = s[2] * cur - s[5] * new;
        cur = new;
    }
    cur
}

/// A streaming filter: state is carried from one call to the next, so filtering a signal window
/// by window gives exactly `scipy.signal.sosfilt` over the whole signal.
#[derive(Clone, Debug)]
pub struct SosFilter {
    sos: Sos,
    unit_state: Vec<[f64; 2]>,
    state: Vec<[f64; 2]>,
}

impl SosFilter {
    /// A filter at rest (zero state).
    pub fn new(sos: Sos) -> Self {
        let unit_state = sos.steady_state();
        let state = vec![[0.0; 2]; sos.sections.len()];
        Self {
            sos,
            unit_state,
            state,
        }
    }

    /// The filter's sections.
    pub fn sos(&self) -> &Sos {
        &self.sos
    }

    /// The current state, one `[z0, z1]` per section (SciPy's `zi`/`zf` layout).
    pub fn state(&self) -> &[[f64; 2]] {
        &self.state
    }

    /// Sets the state (for instance one saved from an earlier run); refuses a wrong length.
    pub fn set_state(&mut self, state: &[[f64; 2]]) -> Result<()> {
        if state.len() != self.state.len() {
            return Err(Error::invalid(
                "filter state",
                format!(
                    "{} sections given for a {}-section filter",
                    state.len(),
                    self.state.len()
                ),
            ));
        }
        self.state.copy_from_slice(state);
        Ok(())
    }

    /// Back to rest (zero state).
    pub fn reset(&mut self) {
        self.state.iter_mut().for_each(|z| *z = [0.0; 2]);
    }

    /// The state the filter would have after a long constant input `x0` (`sosfilt_zi(sos) ·
    /// x0`), so that a signal starting at `x0` has no start-up transient.
    pub fn reset_to_steady_state(&mut self, x0: f64) {
        for (z, u) in self.state.iter_mut().zip(&self.unit_state) {
            *z = [u[0] * x0, u[1] * x0];
        }
    }

    /// Filters one sample.
    pub fn process_sample(&mut self, x: f64) -> f64 {
        step(&self.sos.sections, &mut self.state, x)
    }

    /// Filters `x` in place.
    pub fn process_in_place(&mut self, x: &mut [f64]) {
        let sections = &self.sos.sections;
        let state = &mut self.state;
        for v in x.iter_mut() {
            *v = step(sections, state, *v);
        }
    }

    /// Filters `input` into `output` (of the same length; extra output is left untouched).
    pub fn process(&mut self, input: &[f64], output: &mut [f64]) {
        let sections = &self.sos.sections;
        let state = &mut self.state;
        for (o, &i) in output.iter_mut().zip(input) {
            *o = step(sections, state, i);
        }
    }
}

/// Zero-phase (forward-backward) filtering, equal to `scipy.signal.sosfiltfilt(sos, x,
/// padtype='odd', padlen=…)`; holds its scratch buffer.
#[derive(Clone, Debug)]
pub struct ZeroPhaseFilter {
    sos: Sos,
    unit_state: Vec<[f64; 2]>,
    padlen: usize,
    ext: Vec<f64>,
    state: Vec<[f64; 2]>,
}

impl ZeroPhaseFilter {
    /// A zero-phase filter with SciPy's default padding ([`Sos::default_padlen`]).
    pub fn new(sos: Sos) -> Self {
        let padlen = sos.default_padlen();
        Self::with_padlen(sos, padlen)
    }

    /// A zero-phase filter with `padlen` samples of odd extension at each end (`0` for none), as
    /// SciPy's `padlen` argument.
    pub fn with_padlen(sos: Sos, padlen: usize) -> Self {
        let unit_state = sos.steady_state();
        let state = vec![[0.0; 2]; sos.sections.len()];
        Self {
            sos,
            unit_state,
            padlen,
            ext: Vec::new(),
            state,
        }
    }

    /// Padding on each side.
    pub fn padlen(&self) -> usize {
        self.padlen
    }

    /// The filter's sections.
    pub fn sos(&self) -> &Sos {
        &self.sos
    }

    /// Filters `x` into `out` (resized to `x.len()`). As SciPy, refuses a signal not longer than
    /// the padding; values must be finite.
    pub fn apply(&mut self, x: &[f64], out: &mut Vec<f64>) -> Result<()> {
        let n = x.len();
        if n == 0 {
            return Err(Error::Empty);
        }
        if n <= self.padlen {
            return Err(Error::ShorterThanPadding {
                len: n,
                padlen: self.padlen,
            });
        }
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite { index });
        }
        let e = self.padlen;
        let ext = &mut self.ext;
        ext.clear();
        ext.reserve(n + 2 * e);
        // Odd extension: 2·x[0] − x[e..0], x, 2·x[n−1] − x[n−2 .. n−2−e].
        let (first, last) = (x[0], x[n - 1]);
        ext.extend((1..=e).rev().map(|i| 2.0 * first - x[i]));
        ext.extend_from_slice(x);
        ext.extend((1..=e).map(|i| 2.0 * last - x[n - 1 - i]));

        let sections = &self.sos.sections;
        let x0 = ext[0];
        for (z, u) in self.state.iter_mut().zip(&self.unit_state) {
            *z = [u[0] * x0, u[1] * x0];
        }
        for v in ext.iter_mut() {
            *v = step(sections, &mut self.state, *v);
        }
        let y0 = ext[ext.len() - 1];
        for (z, u) in self.state.iter_mut().zip(&self.unit_state) {
            *z = [u[0] * y0, u[1] * y0];
        }
        for v in ext.iter_mut().rev() {
            *v = step(sections, &mut self.state, *v);
        }
        out.clear();
        out.extend_from_slice(&ext[e..e + n]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_order_lowpass_matches_scipy() {
        // scipy.signal.butter(2, 10, 'low', fs=100, output='sos')
        let sos = butter(2, FilterBand::LowPass { cutoff_hz: 10.0 }, 100.0).expect("design");
        let want = [
            0.067_455_273_889_071_84,
            0.134_910_547_778_143_68,
            0.067_455_273_889_071_84,
            1.0,
            -1.142_980_502_539_901_1,
            0.412_801_598_096_188_6,
        ];
        for (a, b) in sos.sections()[0].iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{a} vs {b}");
        }
    }

    #[test]
    fn refuses_bad_designs() {
        let lp = |f| FilterBand::LowPass { cutoff_hz: f };
        assert!(butter(0, lp(10.0), 100.0).is_err());
        assert!(butter(2, lp(50.0), 100.0).is_err());
        assert!(butter(2, lp(0.0), 100.0).is_err());
        assert!(butter(2, lp(10.0), f64::NAN).is_err());
        let bp = FilterBand::BandPass {
            low_hz: 20.0,
            high_hz: 10.0,
        };
        assert!(butter(2, bp, 100.0).is_err());
    }

    #[test]
    fn streaming_in_pieces_equals_one_pass() {
        let sos = butter(5, FilterBand::HighPass { cutoff_hz: 3.0 }, 50.0).expect("design");
        let x: Vec<f64> = (0..200).map(|i| ((i * 37) % 11) as f64 - 5.0).collect();
        let mut whole = x.clone();
        SosFilter::new(sos.clone()).process_in_place(&mut whole);
        let mut f = SosFilter::new(sos);
        let mut pieces = x.clone();
        for chunk in pieces.chunks_mut(17) {
            f.process_in_place(chunk);
        }
        assert_eq!(whole, pieces);
    }

    #[test]
    fn zero_phase_refuses_short_signals() {
        let sos = butter(4, FilterBand::LowPass { cutoff_hz: 10.0 }, 100.0).expect("design");
        let mut f = ZeroPhaseFilter::new(sos);
        assert_eq!(f.padlen(), 15);
        let mut out = Vec::new();
        assert_eq!(
            f.apply(&[0.0; 15], &mut out),
            Err(Error::ShorterThanPadding {
                len: 15,
                padlen: 15
            })
        );
        assert!(f.apply(&[0.0; 16], &mut out).is_ok());
    }
}
