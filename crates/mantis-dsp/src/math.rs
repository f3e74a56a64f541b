//! Small numerical kernels shared by the feature families.

/// `(Σ v, Σ v ln v)` over `values`, terms with `v ≤ 0` contributing 0 to the second sum (the
/// `0 ln 0 = 0` convention of Shannon entropy). With `T = Σ v` and `p = v/T`, the entropy is
/// `−Σ p ln p = ln T − (Σ v ln v)/T`, so one pass suffices. Four independent accumulators keep
/// the logarithms (glibc's, ~3 ns each) from waiting on one another.
#[inline]
pub(crate) fn sum_and_sum_v_ln_v(values: &[f64], f: impl Fn(f64) -> f64) -> (f64, f64) {
    let mut s = [0.0f64; 4];
    let mut h = [0.0f64; 4];
    let mut chunks = values.chunks_exact(4);
    let mut add = |l: usize, v: f64| {
        let p = f(v);
        s[l] += p;
        h[l] += if p > 0.0 { p * p.ln() } else { 0.0 };
    };
    for c in &mut chunks {
        for (l, v) in c.iter().enumerate() {
            add(l, *v);
        }
    }
    for &v in chunks.remainder() {
        add(0, v);
    }
    ((s[0] + s[1]) + (s[2] + s[3]), (h[0] + h[1]) + (h[2] + h[3]))
}

/// Shannon entropy (nats) of the distribution `v/T` from the sums of
/// [`sum_and_sum_v_ln_v`]; 0 when `T` is not positive.
#[inline]
pub(crate) fn entropy_from_sums(total: f64, sum_v_ln_v: f64) -> f64 {
    if total.is_nan() || total <= 0.0 {
        return 0.0;
    }
    // Rounding can leave a tiny negative value for a one-point distribution.
    (total.ln() - sum_v_ln_v / total).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_from_one_pass_sums() {
        let v = [0.0, 1.0, 1.0, 2.0, -1.0];
        let (t, h) = sum_and_sum_v_ln_v(&v, |x| x.max(0.0));
        assert_eq!(t, 4.0);
        let want = -(0.5 * 0.25f64.ln() + 0.5 * 0.5f64.ln());
        assert!((entropy_from_sums(t, h) - want).abs() < 1e-15);
        assert_eq!(entropy_from_sums(0.0, 0.0), 0.0);
        let (t, h) = sum_and_sum_v_ln_v(&[0.0, 7.0], |x| x);
        assert_eq!(entropy_from_sums(t, h), 0.0);
    }
}
