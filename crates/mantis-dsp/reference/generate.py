#!/usr/bin/env python3
"""Generate the test vectors of crates/mantis-dsp from NumPy, SciPy and PyWavelets.

Usage (from the repository root):

    python3 -m pip install -r crates/mantis-dsp/reference/requirements.txt
    python3 crates/mantis-dsp/reference/generate.py

writes crates/mantis-dsp/tests/vectors/*.json, which `cargo test -p mantis-dsp --test vectors`
compares against. The output is deterministic (fixed seeds); running it twice gives identical
files. Inputs are rounded to 9 decimals and outputs to 15 significant digits to keep the files
small; both are far below the 1e-9 relative tolerance of the tests.

Where the library defines a quantity itself (spectral features, Hampel filter, resampling), the
reference is written here independently in plain NumPy/SciPy from the definition in the Rust
docs, not by porting the Rust code.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import math
import pathlib
import sys
import warnings

import numpy as np
import pywt
import scipy.signal as sig
import scipy.stats as st

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "vectors"


def r15(v):
    """Round floats to 15 significant digits, recursively (keeps JSON small)."""
    if isinstance(v, dict):
        return {k: r15(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [r15(x) for x in v]
    if isinstance(v, np.ndarray):
        return r15(v.tolist())
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            raise ValueError("non-finite value in a test vector")
        return float(f"{f:.15g}")
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def write(name: str, payload: dict) -> None:
    payload = {
        "generator": "crates/mantis-dsp/reference/generate.py",
        "versions": {
            "python": sys.version.split()[0],
            "numpy": md.version("numpy"),
            "scipy": md.version("scipy"),
            "PyWavelets": md.version("PyWavelets"),
        },
        **r15(payload),
    }
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(payload, separators=(",", ":")) + "\n")
    print(f"{path.relative_to(OUT.parent.parent)}: {path.stat().st_size / 1024:.1f} KiB")


# ---------------------------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------------------------


def signals() -> dict[str, dict]:
    out = {}

    def add(name, fs, x):
        out[name] = {"fs": float(fs), "x": np.round(np.asarray(x, dtype=float), 9)}

    fs = 1000.0
    t = np.arange(1000) / fs
    add("sines", fs, 1.5 * np.sin(2 * np.pi * 50 * t) + 0.4 * np.sin(2 * np.pi * 120 * t + 0.3) + 0.2)

    fs = 500.0
    t = np.arange(1000) / fs
    add("chirp", fs, sig.chirp(t, f0=1.0, t1=2.0, f1=100.0, method="linear"))

    rng = np.random.default_rng(42)
    add("noise", 200.0, rng.standard_normal(1024))

    x = np.zeros(256)
    x[10], x[100], x[255] = 1.0, -2.5, 0.75
    add("impulses", 100.0, x)

    # Bearing-like vibration: shaft tone, and a 3 kHz structural resonance excited at the
    # outer-race ball-pass frequency and amplitude-modulated by the shaft rotation, plus noise.
    fs, n = 12000.0, 2048
    t = np.arange(n) / fs
    shaft, bpfo, fres = 29.95, 107.36, 3000.0
    x = 0.3 * np.sin(2 * np.pi * shaft * t)
    for t0 in np.arange(0.0, t[-1], 1.0 / bpfo):
        tau = t - t0
        on = tau >= 0
        x[on] += (1.0 + 0.5 * np.cos(2 * np.pi * shaft * t0)) * np.exp(-tau[on] / 0.0012) * np.sin(
            2 * np.pi * fres * tau[on]
        )
    x += 0.05 * np.random.default_rng(7).standard_normal(n)
    add("bearing", fs, x)

    add("short", 10.0, [0.5, -1.25, 3.0, 2.0, -0.75])
    add("odd", 50.0, np.cumsum(np.random.default_rng(3).standard_normal(101)))
    return out


# ---------------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------------


RUN_LEN = 400  # samples of each signal filtered (keeps the vectors small)


def filters(sigs) -> dict:
    designs = []
    fs = 1000.0
    for order in range(1, 9):
        designs.append((order, "lowpass", [100.0], fs))
        designs.append((order, "lowpass", [10.0], fs))
        designs.append((order, "highpass", [50.0], fs))
    for order in range(1, 5):
        designs.append((order, "lowpass", [400.0], fs))
        designs.append((order, "highpass", [300.0], fs))
    for order in range(1, 7):
        designs.append((order, "bandpass", [50.0, 150.0], fs))
        designs.append((order, "bandpass", [240.0, 260.0], fs))
    for order in range(1, 4):
        designs.append((order, "bandpass", [10.0, 400.0], fs))
        designs.append((order, "bandpass", [200.0, 300.0], fs))
    # Vibration rates.
    designs.append((4, "lowpass", [5000.0], 25600.0))
    designs.append((4, "bandpass", [2000.0, 4000.0], 25600.0))
    designs.append((2, "highpass", [10.0], 25600.0))
    designs.append((8, "bandpass", [1.0, 40.0], 100.0))
    out = []
    for order, btype, wn, fs in designs:
        w = wn[0] if len(wn) == 1 else wn
        sos = sig.butter(order, w, btype=btype, fs=fs, output="sos")
        out.append(
            {
                "order": order,
                "btype": btype,
                "cutoffs_hz": wn,
                "fs": fs,
                "sos": sos,
                "zi": sig.sosfilt_zi(sos),
            }
        )

    runs = []
    for name, order, btype, wn in (
        ("chirp", 4, "lowpass", [20.0]),
        ("noise", 3, "highpass", [10.0]),
        ("bearing", 3, "bandpass", [2500.0, 3500.0]),
        ("odd", 2, "lowpass", [5.0]),
    ):
        s = sigs[name]
        x = np.asarray(s["x"])[:RUN_LEN]
        w = wn[0] if len(wn) == 1 else wn
        sos = sig.butter(order, w, btype=btype, fs=s["fs"], output="sos")
        zi = sig.sosfilt_zi(sos)
        run = {
            "signal": name,
            "order": order,
            "btype": btype,
            "cutoffs_hz": wn,
            "fs": s["fs"],
            "sosfilt": sig.sosfilt(sos, x),
            "sosfilt_steady": sig.sosfilt(sos, x, zi=zi * x[0])[0],
            "sosfiltfilt": sig.sosfiltfilt(sos, x),
        }
        if name == "odd":
            run["sosfiltfilt_padlen"] = {
                "0": sig.sosfiltfilt(sos, x, padlen=0),
                "40": sig.sosfiltfilt(sos, x, padlen=40),
            }
        runs.append(run)
    return {"designs": out, "runs": runs}


# ---------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------


def windows() -> dict:
    out = []
    for name in ("boxcar", "hann", "hamming", "blackman"):
        for n in (1, 2, 3, 8, 16, 101):
            out.append(
                {
                    "name": name,
                    "n": n,
                    "periodic": sig.get_window(name, n),
                    "symmetric": sig.get_window(name, n, fftbins=False),
                }
            )
    return {"windows": out}


# ---------------------------------------------------------------------------------------------
# Spectra and features
# ---------------------------------------------------------------------------------------------

BANDS = {
    "sines": [("low", 0.0, 80.0), ("mid", 80.0, 200.0), ("rest", 200.0, 1e9)],
    "chirp": [("a", 0.0, 25.0), ("b", 25.0, 75.0), ("c", 75.0, 250.1)],
    "noise": [("a", 0.0, 50.0), ("b", 50.0, 100.0)],
    "impulses": [("a", 0.0, 10.0), ("b", 10.0, 50.0)],
    "bearing": [("shaft", 25.0, 35.0), ("bpfo", 105.0, 110.0), ("resonance", 2500.0, 3500.0)],
    "short": [("all", 0.0, 5.0)],
    "odd": [("a", 0.0, 5.0), ("b", 5.0, 25.0)],
}
WINDOW_FOR = {
    "sines": "hann",
    "chirp": "hamming",
    "noise": "blackman",
    "impulses": "boxcar",
    "bearing": "hann",
    "short": "hann",
    "odd": "hann",
}
HARMONICS = 3
HARMONIC_TOLERANCE = 1
WAVELET_LEVELS = 4


def spectrum(x, fs, window):
    n = len(x)
    w = sig.get_window(window, n)
    xw = (x - x.mean()) * w
    X = np.fft.rfft(xw)
    c = np.full(len(X), 2.0)
    c[0] = 1.0
    if n % 2 == 0:
        c[-1] = 1.0
    amp = c * np.abs(X) / w.sum()
    f, pxx = sig.periodogram(x, fs=fs, window=w, detrend="constant", scaling="density")
    power = pxx * fs / n
    return amp, power, fs / n


def spectral_features(x, fs, window, bands):
    amp, power, df = spectrum(x, fs, window)
    f = np.arange(len(amp)) * df
    k = 1 + int(np.argmax(amp[1:]))
    total = power.sum()
    p = power / total
    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum() / np.log(len(power)))
    out = {
        "spectral_peak_frequency_hz": k * df,
        "spectral_peak_amplitude": amp[k],
        "spectral_centroid_hz": (f * amp).sum() / amp.sum(),
        "spectral_entropy": entropy,
        "spectral_total_power": total,
    }
    for name, lo, hi in bands:
        e = power[(f >= lo) & (f < hi)].sum()
        out[f"band_energy_{name}"] = e
        out[f"band_energy_ratio_{name}"] = e / total
    f0 = k * df
    out["harmonic_fundamental_hz"] = f0
    last = len(amp) - 1
    for h in range(1, HARMONICS + 1):
        fh = h * f0
        v = 0.0
        if fh <= f[last] + 0.5 * df:
            centre = int(math.floor(fh / df + 0.5))
            lo = max(centre - HARMONIC_TOLERANCE, 1)
            hi = min(centre + HARMONIC_TOLERANCE, last)
            if lo <= hi:
                v = float(amp[lo : hi + 1].max())
        out[f"harmonic_{h}_amplitude"] = v
    return out, amp, power


def time_features(x):
    n = len(x)
    a = np.abs(x)
    rms = np.sqrt(np.mean(x**2))
    return {
        "mean": np.mean(x),
        "std": np.std(x),
        "rms": rms,
        "min": np.min(x),
        "max": np.max(x),
        "peak_to_peak": np.ptp(x),
        "kurtosis": st.kurtosis(x, fisher=False, bias=True),
        "skewness": st.skew(x, bias=True),
        "crest_factor": a.max() / rms,
        "shape_factor": rms / a.mean(),
        "impulse_factor": a.max() / a.mean(),
        "clearance_factor": a.max() / np.mean(np.sqrt(a)) ** 2,
        # tsfresh number_crossing_m(x, m) = np.where(np.diff(x > m))[0].size, over n - 1 pairs.
        "zero_crossing_rate": np.count_nonzero(np.diff(x > 0)) / (n - 1),
        "mean_crossing_rate": np.count_nonzero(np.diff(x > np.mean(x))) / (n - 1),
    }


def wavelet_features(x, levels):
    coeffs = pywt.wavedec(x, "db4", mode="symmetric", level=levels)
    labels = [f"a{levels}"] + [f"d{l}" for l in range(levels, 0, -1)]
    out = {}
    for lab, c in zip(labels, coeffs):
        out[f"wavelet_energy_{lab}"] = float(np.sum(c**2))
    for lab, c in zip(labels, coeffs):
        e = np.sum(c**2)
        p = c**2 / e if e > 0 else np.zeros_like(c)
        p = p[p > 0]
        out[f"wavelet_entropy_{lab}"] = float(-(p * np.log(p)).sum())
    return out, coeffs


def features(sigs) -> dict:
    cases = []
    spectra = []
    for name, s in sigs.items():
        x = np.asarray(s["x"])
        fs = s["fs"]
        window = WINDOW_FOR[name]
        bands = BANDS[name]
        sf, amp, power = spectral_features(x, fs, window, bands)
        wf, _ = wavelet_features(x, WAVELET_LEVELS)
        feats = {**time_features(x), **sf, **wf}
        cases.append(
            {
                "signal": name,
                "fs": fs,
                "window": window,
                "bands": [{"name": b[0], "low_hz": b[1], "high_hz": b[2]} for b in bands],
                "harmonics": HARMONICS,
                "harmonic_tolerance_bins": HARMONIC_TOLERANCE,
                "wavelet_levels": WAVELET_LEVELS,
                "features": feats,
            }
        )
        if name in ("sines", "odd", "short", "impulses", "chirp"):
            spectra.append({"signal": name, "window": window, "amplitude": amp, "power": power})
    return {"cases": cases, "spectra": spectra}


# ---------------------------------------------------------------------------------------------
# Wavelets
# ---------------------------------------------------------------------------------------------


def wavelets(sigs) -> dict:
    w = pywt.Wavelet("db4")
    cases = []
    rng = np.random.default_rng(11)
    for n in (1, 2, 3, 5, 7, 8, 9, 16, 33):
        x = np.round(rng.standard_normal(n), 9)
        cases.append({"x": x, "level": 3, "coeffs": pywt.wavedec(x, "db4", mode="symmetric", level=3)})
    for name, level in (("noise", 5), ("impulses", 4), ("odd", 3), ("sines", 6)):
        x = np.asarray(sigs[name]["x"])
        cases.append({"signal": name, "level": level, "coeffs": pywt.wavedec(x, "db4", mode="symmetric", level=level)})
    return {
        # Full precision (repr strings), compared exactly.
        "dec_lo": [repr(float(c)) for c in w.dec_lo],
        "dec_hi": [repr(float(c)) for c in w.dec_hi],
        "max_level": [
            {"n": n, "max_level": pywt.dwt_max_level(n, w.dec_len)} for n in (1, 6, 7, 13, 14, 100, 1000, 3000, 768000)
        ],
        "cases": cases,
    }


# ---------------------------------------------------------------------------------------------
# Cleaning and resampling
# ---------------------------------------------------------------------------------------------


def hampel(x, k, n_sigmas):
    y = x.copy()
    n = len(x)
    replaced = 0
    for i in range(n):
        w = x[max(0, i - k) : min(n, i + k + 1)]
        med = np.median(w)
        sigma = st.median_abs_deviation(w, scale="normal")
        if abs(x[i] - med) > n_sigmas * sigma:
            y[i] = med
            replaced += 1
    return y, replaced


def clean() -> dict:
    rng = np.random.default_rng(5)
    x = np.round(np.sin(np.arange(400) / 15.0) + 0.1 * rng.standard_normal(400), 9)
    spikes = rng.choice(400, size=12, replace=False)
    x[spikes] += np.round(rng.choice([-1, 1], size=12) * rng.uniform(2, 6, size=12), 9)
    x[200:210] = 0.25  # a flat run: MAD = 0 inside it
    cases = []
    for k, ns in ((3, 3.0), (5, 2.0), (1, 3.0), (10, 4.5)):
        y, replaced = hampel(x, k, ns)
        cases.append({"half_width": k, "n_sigmas": ns, "y": y, "replaced": replaced})
    return {"x": x, "hampel": cases}


def resample_reference(t, x, rate, method, max_gap, origin):
    def time(k):
        return origin + k / rate

    k_lo = math.floor((t[0] - origin) * rate) - 3
    k_hi = math.ceil((t[-1] - origin) * rate) + 3
    ks = np.arange(k_lo, k_hi + 1)
    grid = origin + ks.astype(float) / rate
    keep = (grid >= t[0]) & (grid <= t[-1])
    gaps = []
    dt = np.diff(t)
    for j in np.flatnonzero(dt > max_gap):
        keep &= ~((grid > t[j]) & (grid < t[j + 1]))
        gaps.append([t[j], t[j + 1]])
    g = grid[keep]
    if method == "linear":
        v = np.interp(g, t, x)
    else:
        v = x[np.searchsorted(t, g, side="right") - 1]
    # Segments: split where a gap lies between consecutive kept grid points.
    segments = []
    start = 0
    for i in range(1, len(g)):
        if any(a < b and g[i - 1] <= a and g[i] >= b for a, b in gaps):
            segments.append([float(g[start]), start, i])
            start = i
    if len(g):
        segments.append([float(g[start]), start, len(g)])
    return v, segments, gaps


def resample() -> dict:
    rng = np.random.default_rng(9)
    dt = rng.uniform(0.004, 0.016, size=300)
    dt[120] = 0.5  # a gap
    dt[200] = 0.08  # bridged at max_gap 0.1
    t = np.round(np.cumsum(dt), 6)
    x = np.round(np.sin(2 * np.pi * 1.3 * t) + 0.05 * rng.standard_normal(len(t)), 9)
    cases = []
    for method in ("linear", "hold"):
        for rate, origin in ((100.0, None), (50.0, 0.0), (150.0, None)):
            o = t[0] if origin is None else origin
            v, segments, gaps = resample_reference(t, x, rate, method, 0.1, o)
            cases.append(
                {
                    "method": method,
                    "rate_hz": rate,
                    "origin_s": origin,
                    "max_gap_s": 0.1,
                    "values": v,
                    "segments": segments,
                    "gaps": gaps,
                }
            )
    return {"t": t, "x": x, "cases": cases}


def main() -> None:
    # Levels beyond pywt.dwt_max_level are tested on purpose (short signals).
    warnings.filterwarnings("ignore", message="Level value of")
    OUT.mkdir(parents=True, exist_ok=True)
    sigs = signals()
    write("signals", {"signals": sigs})
    write("filter", filters(sigs))
    write("window", windows())
    write("features", features(sigs))
    write("wavelet", wavelets(sigs))
    write("clean", clean())
    write("resample", resample())


if __name__ == "__main__":
    main()
