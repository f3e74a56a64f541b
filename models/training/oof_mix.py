#!/usr/bin/env python3
"""Out-of-fold RMSE of variants saved by `cv_study.py --save`, and of their average.

    python3 models/training/oof_mix.py /tmp/hybrid-0.npz /tmp/stats-0.npz

The files must come from the same dataset and seed (the same folds, so the same cut points);
validation figures only (train engines scored by fold models that did not learn from them).
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The out-of-fold RMSE is over the cut points whose true RUL is <= CALIBRATION_MAX_RUL (150); the
# files hold every cut point. (train_rul imports TensorFlow only where it trains.)
from train_rul import CALIBRATION_MAX_RUL as MAX_RUL  # noqa: E402


def rmse(pred, true) -> float:
    m = true <= MAX_RUL
    return float(np.sqrt(np.mean((pred[m] - true[m]) ** 2)))


def load_runs(paths: list[str]) -> list[dict] | None:
    """The files' arrays (engine, cut, true, pred), or None after saying which file is not one."""
    runs = []
    for p in paths:
        try:
            r = np.load(p)
            runs.append({k: r[k] for k in ("engine", "cut", "true", "pred")})
        except (OSError, ValueError, KeyError) as e:
            print(f"{p}: not an out-of-fold file of cv_study.py --save ({e})", file=sys.stderr)
            return None
    return runs


def runs_of_args(paths: list[str], usage: str) -> list[dict] | int:
    """The files named on the command line, or the exit code after the usage (none) or an error."""
    if not paths:
        print(usage, file=sys.stderr)
        return 2
    runs = load_runs(paths)
    return 1 if runs is None else runs


def main(paths: list[str]) -> int:
    runs = runs_of_args(paths, __doc__)
    if isinstance(runs, int):
        return runs
    for p, r in zip(paths[1:], runs[1:]):
        if not (np.array_equal(r["engine"], runs[0]["engine"]) and np.array_equal(r["cut"], runs[0]["cut"])):
            print(f"{p}: other cut points than {paths[0]} (another dataset or seed?)", file=sys.stderr)
            return 1
    for p, r in zip(paths, runs):
        print(f"{p}: out-of-fold RMSE {rmse(r['pred'], r['true']):.2f}")
    if len(runs) > 1:
        avg = np.mean([r["pred"] for r in runs], axis=0)
        print(f"average of the {len(runs)}: out-of-fold RMSE {rmse(avg, runs[0]['true']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
