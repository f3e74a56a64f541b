#!/usr/bin/env python3
"""scikit-learn's IsolationForest and OneClassSVM vs mantis-ml, on the same SKAB rows.

Trains on the first 400 rows of one SKAB file (its 8 sensor columns) and scores the rest, as
`examples/speed.rs` does; runs that example (release build) for the Rust figures, then prints
both side by side with the ratio. Single-record latency is the median over individual
one-row calls (what a streaming service does per window); throughput is one batch call.

    pip install -r crates/mantis-ml/reference/requirements.txt
    python3 crates/mantis-ml/reference/sklearn_speed.py [path/to/skab/valve1/0.csv]

Run from anywhere; the default data path is ../shared/data/skab/valve1/0.csv beside the repo.
"""

import json
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

REPO = pathlib.Path(__file__).resolve().parents[3]
TRAIN_ROWS = 400
SINGLE_CALLS = 300


def load(path):
    rows = []
    with open(path) as f:
        header = f.readline().strip().split(";")
        sensors = [i for i, c in enumerate(header) if c not in ("datetime", "anomaly", "changepoint")]
        for line in f:
            if line.strip():
                fields = line.strip().split(";")
                rows.append([float(fields[i]) for i in sensors])
    x = np.asarray(rows)
    return x[:TRAIN_ROWS], x[TRAIN_ROWS:]


def time_model(score, test):
    for i in range(20):
        score(test[i : i + 1])  # warm-up
    single = []
    for i in range(SINGLE_CALLS):
        row = test[i % len(test) : i % len(test) + 1]
        t = time.perf_counter()
        score(row)
        single.append((time.perf_counter() - t) * 1e6)
    t = time.perf_counter()
    repeats = 5
    for _ in range(repeats):
        score(test)
    batch = repeats * len(test) / (time.perf_counter() - t)
    return statistics.median(single), batch


def main():
    data = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared/data/skab/valve1/0.csv"
    train, test = load(data)

    iforest = IsolationForest(n_estimators=100, max_samples=256, random_state=0).fit(train)
    ocsvm = make_pipeline(StandardScaler(), OneClassSVM(nu=0.05, gamma="scale")).fit(train)
    py = {
        "isolation_forest": time_model(iforest.score_samples, test),
        "one_class_svm": time_model(ocsvm.decision_function, test),
    }

    out = subprocess.run(
        ["cargo", "run", "--quiet", "--release", "-p", "mantis-ml", "--example", "speed", "--", str(data), "--json"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    rust = json.loads(out.stdout.strip().splitlines()[-1])

    print(f"data: {data} ({len(train)} training rows, {len(test)} scored rows, {train.shape[1]} features)")
    print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}; mantis-ml release build")
    print()
    print(f"{'detector':<18} {'sklearn µs/rec':>15} {'mantis µs/rec':>14} {'speed-up':>9}   "
          f"{'sklearn rows/s':>15} {'mantis rows/s':>14} {'ratio':>7}")
    for name, (single, batch) in py.items():
        r = rust[name]
        print(f"{name:<18} {single:>15.1f} {r['single_median_us']:>14.2f} {single / r['single_median_us']:>8.0f}×   "
              f"{batch:>15.0f} {r['batch_rows_per_s']:>14.0f} {r['batch_rows_per_s'] / batch:>6.1f}×")
    for name in ("robust_z", "autoencoder", "ensemble", "ensemble+explain"):
        r = rust[name]
        print(f"{name:<18} {'—':>15} {r['single_median_us']:>14.2f} {'':>9}   "
              f"{'—':>15} {r['batch_rows_per_s']:>14.0f}")
    worst = max(rust["ensemble"]["single_median_us"], 1e-9)
    best_py = min(s for s, _ in py.values())
    print()
    print(f"whole mantis ensemble (4 detectors) per record vs the faster single scikit-learn model: "
          f"{best_py / worst:.0f}×")


if __name__ == "__main__":
    main()
