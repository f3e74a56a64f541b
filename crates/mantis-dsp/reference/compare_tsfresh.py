#!/usr/bin/env python3
"""Side-by-side throughput of tsfresh and the mantis-dsp feature extractor on the same windows.

Usage (from the repository root):

    python3 -m pip install -r crates/mantis-dsp/reference/requirements-tsfresh.txt
    python3 crates/mantis-dsp/reference/compare_tsfresh.py            # table
    python3 crates/mantis-dsp/reference/compare_tsfresh.py --json     # JSON
    python3 crates/mantis-dsp/reference/compare_tsfresh.py --quick    # fewer/shorter windows

It synthesises bearing-like 30 s windows at 100 Hz (3 000 samples) and 25.6 kHz (768 000
samples), times tsfresh's `extract_features` on them (single process, `n_jobs=0`, one BLAS/OpenMP
thread; median of three runs) with the feature set below, then writes the same windows to a file and times the Rust
extractor on them through `cargo run --release -p mantis-dsp --example throughput -- --json
--input FILE --rate FS --window N` (median per window over >= 2 s), and prints seconds per
window for both and their ratio, with the machine's load average (run it on an idle machine).

The tsfresh feature set mirrors the Rust `full-v1` families (41 features; 38 here):
  time      mean, standard_deviation, root_mean_square, minimum, maximum, absolute_maximum
            (for crest factor), kurtosis, skewness, number_crossing_m(0) (zero-crossing rate),
            binned_entropy
  spectral  fft_aggregated (centroid, variance, skew, kurtosis), fft_coefficient |X_k| k<10
            (peak, harmonics), spkt_welch_density (band powers), abs_energy (total power),
            fourier_entropy (spectral entropy)
  wavelet   cwt_coefficients (Ricker CWT, widths 2/5/10/20, 3 positions each: tsfresh has no DWT)

Both run on one core. The Rust figure is reported twice: features only (like for like) and
preprocessing + features (cleaning, Hampel, resampling, Butterworth filter, then features).
"""

from __future__ import annotations

import os
import sys

# One thread everywhere, and (as this machine's notes advise for benchmarks) without the
# OpenBLAS core-type override that slows a current NumPy: re-exec once with a clean environment.
if os.environ.get("MANTIS_COMPARE_REEXEC") != "1":
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = "1"
    env["MANTIS_COMPARE_REEXEC"] = "1"
    os.execve(sys.executable, [sys.executable, *sys.argv], env)

import argparse  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

warnings.filterwarnings("ignore")

from tsfresh import extract_features  # noqa: E402
from tsfresh import __version__ as tsfresh_version  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[3]

FC_PARAMETERS = {
    "mean": None,
    "standard_deviation": None,
    "root_mean_square": None,
    "minimum": None,
    "maximum": None,
    "absolute_maximum": None,
    "kurtosis": None,
    "skewness": None,
    "number_crossing_m": [{"m": 0}],
    "abs_energy": None,
    "fft_aggregated": [{"aggtype": a} for a in ("centroid", "variance", "skew", "kurtosis")],
    "fft_coefficient": [{"coeff": k, "attr": "abs"} for k in range(10)],
    "spkt_welch_density": [{"coeff": k} for k in (2, 5, 8)],
    "fourier_entropy": [{"bins": 10}],
    "binned_entropy": [{"max_bins": 10}],
    "cwt_coefficients": [
        {"widths": (2, 5, 10, 20), "coeff": c, "w": w} for c in (0, 1, 2) for w in (2, 5, 10, 20)
    ],
}


def bearing_windows(fs: float, n: int, count: int, seed: int) -> np.ndarray:
    """Shaft tone + resonance bursts at a ball-pass rate, amplitude-modulated, + noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    shaft, bpfo, fres = 0.0117 * fs, 0.0419 * fs, 0.117 * fs
    tau = np.mod(t, 1.0 / bpfo)
    base = 0.3 * np.sin(2 * np.pi * shaft * t) + (1 + 0.5 * np.cos(2 * np.pi * shaft * (t - tau))) * np.exp(
        -tau * 0.05 * fs
    ) * np.sin(2 * np.pi * fres * tau)
    return np.stack([base + 0.05 * rng.standard_normal(n) for _ in range(count)])


def time_tsfresh(windows: np.ndarray, repeats: int) -> tuple[float, int]:
    """Median over `repeats` runs of tsfresh's seconds per window (and its feature count)."""
    count, n = windows.shape
    df = pd.DataFrame(
        {
            "id": np.repeat(np.arange(count), n),
            "time": np.tile(np.arange(n), count),
            "value": windows.reshape(-1),
        }
    )
    kwargs = dict(
        column_id="id",
        column_sort="time",
        default_fc_parameters=FC_PARAMETERS,
        n_jobs=0,
        disable_progressbar=True,
    )
    # Warm-up on a short series (imports, caches), not timed.
    extract_features(df[df["id"] == 0].head(256), **kwargs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = extract_features(df, **kwargs)
        times.append((time.perf_counter() - start) / count)
    return float(np.median(times)), out.shape[1]


def time_rust(windows: np.ndarray, fs: float, min_seconds: float) -> dict:
    count, n = windows.shape
    with tempfile.TemporaryDirectory() as d:
        path = pathlib.Path(d) / "windows.f64"
        windows.astype("<f8").tofile(path)
        cmd = [
            "cargo",
            "run",
            "--release",
            "--quiet",
            "-p",
            "mantis-dsp",
            "--example",
            "throughput",
            "--",
            "--json",
            "--input",
            str(path),
            "--rate",
            repr(fs),
            "--window",
            str(n),
            "--min-seconds",
            repr(min_seconds),
        ]
        res = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(res.stdout)["scenarios"][0]


def blas_kernel() -> str:
    try:
        from threadpoolctl import threadpool_info

        info = threadpool_info()
        return ", ".join(f"{i.get('internal_api')} {i.get('architecture')} x{i.get('num_threads')}" for i in info)
    except Exception as e:  # pragma: no cover - informative only
        return f"unknown ({e})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--quick", action="store_true", help="fewer windows (smoke test)")
    args = ap.parse_args()
    # Both sides run on one core each, one after the other: other work on the machine slows
    # whichever runs while it does, so the ratio is only meaningful on an idle machine.
    load_before = os.getloadavg()[0]
    if load_before > 0.5 * (os.cpu_count() or 1):
        print(
            f"warning: load average {load_before:.2f} on {os.cpu_count()} cores: other work is running, "
            "the ratio below is not representative",
            file=sys.stderr,
        )

    scenarios = [("30s@100Hz", 100.0, 3_000, 8 if args.quick else 40), ("30s@25.6kHz", 25_600.0, 768_000, 1 if args.quick else 2)]
    rows = []
    for name, fs, n, count in scenarios:
        windows = bearing_windows(fs, n, count, seed=int(fs))
        ts_per_window, ts_features = time_tsfresh(windows, 1 if args.quick else 3)
        rust = time_rust(windows, fs, 0.5 if args.quick else 2.0)
        rows.append(
            {
                "scenario": name,
                "samples_per_window": n,
                "windows": count,
                "tsfresh_features": ts_features,
                "tsfresh_s_per_window": ts_per_window,
                "tsfresh_samples_per_s": n / ts_per_window,
                "rust_features": rust["features"],
                "rust_features_s_per_window": rust["features_s_per_window"],
                "rust_total_s_per_window": rust["total_s_per_window"],
                "rust_features_samples_per_s": rust["features_samples_per_s"],
                "rust_total_samples_per_s": rust["total_samples_per_s"],
                "ratio_features": ts_per_window / rust["features_s_per_window"],
                "ratio_preprocess_plus_features": ts_per_window / rust["total_s_per_window"],
            }
        )
    meta = {
        "tsfresh": tsfresh_version,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "blas": blas_kernel(),
        "cores_used": 1,
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
        return
    print(
        f"tsfresh {meta['tsfresh']} (numpy {meta['numpy']}, pandas {meta['pandas']}, BLAS {meta['blas']}), one core each; "
        f"load average {meta['load_average_before']} before, {meta['load_average_after']} after"
    )
    hdr = f"{'window':<12} {'samples':>8} {'tsfresh s/win':>14} {'rust feat s/win':>16} {'rust pre+feat s/win':>20} {'ratio feat':>11} {'ratio pre+feat':>15} {'rust pre+feat samples/s':>24}"
    print(hdr)
    for r in rows:
        print(
            f"{r['scenario']:<12} {r['samples_per_window']:>8} {r['tsfresh_s_per_window']:>14.4e} "
            f"{r['rust_features_s_per_window']:>16.4e} {r['rust_total_s_per_window']:>20.4e} "
            f"{r['ratio_features']:>10.0f}x {r['ratio_preprocess_plus_features']:>14.0f}x "
            f"{r['rust_total_samples_per_s']:>24.3e}"
        )
    worst_ratio = min(r["ratio_features"] for r in rows)
    worst_rate = min(r["rust_total_samples_per_s"] for r in rows)
    print(
        f"targets: >= 20x tsfresh per window -> {worst_ratio:.0f}x ({'met' if worst_ratio >= 20 else 'NOT met'}); "
        f">= 2e6 samples/s per core for preprocessing + features -> {worst_rate:.3e} "
        f"({'met' if worst_rate >= 2e6 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
