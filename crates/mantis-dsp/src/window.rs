//! Window functions, equal to `scipy.signal.get_window`.
//!
//! SciPy's `get_window(name, N)` returns the **periodic** variant (`fftbins=True`: the first N
//! points of an N+1-point symmetric window), which is the right one for spectral analysis; the
//! functions `scipy.signal.windows.hann(N)` etc. default to the **symmetric** variant, used for
//! filter design. Both are available through [`Symmetry`]. The cosine windows are computed as
//! SciPy's `general_cosine` does (`Σ a_k cos(k·φ)` over `φ = linspace(−π, π, M)`).

use std::f64::consts::PI;

/// A window function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WindowFunction {
    /// All ones (`'boxcar'`).
    Rectangular,
    /// Hann (`'hann'`), coefficients 0.5, 0.5. The default.
    #[default]
    Hann,
    /// Hamming (`'hamming'`), coefficients 0.54, 0.46.
    Hamming,
    /// Blackman (`'blackman'`), coefficients 0.42, 0.5, 0.08.
    Blackman,
}

/// Periodic (spectral analysis, SciPy's `get_window` default) or symmetric (filter design).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Symmetry {
    /// `sym=False`: N points of an N+1-point symmetric window. The default.
    #[default]
    Periodic,
    /// `sym=True`.
    Symmetric,
}

impl WindowFunction {
    /// SciPy's name for the window.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Rectangular => "boxcar",
            Self::Hann => "hann",
            Self::Hamming => "hamming",
            Self::Blackman => "blackman",
        }
    }

    /// The window called `name` in SciPy (`boxcar`/`rectangular`, `hann`, `hamming`,
    /// `blackman`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "boxcar" | "rectangular" | "rect" => Some(Self::Rectangular),
            "hann" | "hanning" => Some(Self::Hann),
            "hamming" => Some(Self::Hamming),
            "blackman" => Some(Self::Blackman),
            _ => None,
        }
    }

    fn coefficients_a(&self) -> &'static [f64] {
        match self {
            Self::Rectangular => &[1.0],
            Self::Hann => &[0.5, 0.5],
            Self::Hamming => &[0.54, 0.46],
            Self::Blackman => &[0.42, 0.5, 0.08],
        }
    }

    /// Fills `out` with the window of length `out.len()`.
    pub fn fill(&self, out: &mut [f64], symmetry: Symmetry) {
        let n = out.len();
        if n <= 1 || *self == Self::Rectangular {
            out.fill(1.0);
            return;
        }
        let m = match symmetry {
            Symmetry::Periodic => n + 1,
            Symmetry::Symmetric => n,
        };
        let step = (PI - (-PI)) / (m - 1) as f64;
        let a = self.coefficients_a();
        for (i, w) in out.iter_mut().enumerate() {
            // numpy.linspace: i·step + start, the last point set to stop exactly.
            let phi = if i == m - 1 {
                PI
            } else {
                i as f64 * step + -PI
            };
            let mut v = 0.0;
            for (k, ak) in a.iter().enumerate() {
                v += ak * (k as f64 * phi).cos();
            }
            *w = v;
        }
    }

    /// The window of length `n` as a new vector.
    pub fn coefficients(&self, n: usize, symmetry: Symmetry) -> Vec<f64> {
        let mut w = vec![0.0; n];
        self.fill(&mut w, symmetry);
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_hann_starts_at_zero_and_peaks_at_the_middle() {
        let w = WindowFunction::Hann.coefficients(8, Symmetry::Periodic);
        assert_eq!(w[0], 0.0);
        assert!((w[4] - 1.0).abs() < 1e-15);
        assert!((w[1] - w[7]).abs() < 1e-15);
        let s = WindowFunction::Hann.coefficients(9, Symmetry::Symmetric);
        assert_eq!(&s[..8], &w[..]);
    }

    #[test]
    fn short_windows_are_ones() {
        assert_eq!(
            WindowFunction::Blackman.coefficients(1, Symmetry::Periodic),
            vec![1.0]
        );
        assert!(
            WindowFunction::Hann
                .coefficients(0, Symmetry::Periodic)
                .is_empty()
        );
    }

    #[test]
    fn names_round_trip() {
        for w in [
            WindowFunction::Rectangular,
            WindowFunction::Hann,
            WindowFunction::Hamming,
            WindowFunction::Blackman,
        ] {
            assert_eq!(WindowFunction::from_name(w.name()), Some(w));
        }
    }
}
