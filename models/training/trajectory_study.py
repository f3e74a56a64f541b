#!/usr/bin/env python3
"""Trajectory study: does reading the model's predictions over an engine's recent windows, instead
of its last window alone, estimate the remaining life better? Validation figures only.

An engine's true RUL falls by exactly one per cycle, and the model was trained on labels capped at
125, so its prediction k cycles ago should be about min(125, r + k) when r is the RUL now. Given
the predictions p_i of the windows ending i = 0 .. n-1 cycles before now, the estimators are

- `last`: p_0 (the served model);
- `shift`: the mean of p_i - i (the line of slope -1 through the predictions);
- `knee`: the r in [0, 125] that minimises sum_i w_i (p_i - min(125, r + i))^2, the capped
  trajectory through them (equal to `shift` while every r + i stays under the cap);

with w_i = 1 (uniform) or decaying by half every `h` cycles. Read from the out-of-fold predictions
of `cv_study.py --save` (every cut point of every train engine, each predicted by the fold model
that did not learn from it), scored as the out-of-fold RMSE is: every cut point whose true RUL is
<= 150, against the unclipped truth. An engine younger than n cycles uses the windows it has.

    python3 models/training/trajectory_study.py /tmp/hs0.npz /tmp/hs1.npz
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oof_mix import MAX_RUL, rmse, runs_of_args  # noqa: E402
from train_rul import LABEL_CAP as CAP  # noqa: E402

GRID = np.arange(0.0, CAP + 1e-9, 0.2)  # candidate r of `knee` (0.2 cycles: far below the errors)


def estimates(engine, cut, pred, n: int, method: str, half: float | None):
    out = np.empty_like(pred, dtype=np.float64)
    k = np.arange(n, dtype=np.float64)
    w = np.ones(n) if half is None else 0.5 ** (k / half)
    for e in np.unique(engine):
        idx = np.flatnonzero(engine == e)
        idx = idx[np.argsort(cut[idx])]
        p_e = pred[idx].astype(np.float64)
        j = np.arange(len(idx))[:, None] - k[None, :].astype(int)  # [J, n]: the cut i cycles back
        mask = j >= 0  # an engine younger than n cycles uses the windows it has
        back = np.where(mask, p_e[np.clip(j, 0, None)], 0.0)
        wm = w[None, :] * mask
        if method == "last":
            est = back[:, 0]
        elif method == "shift":
            est = np.sum(wm * (back - k), axis=1) / wm.sum(axis=1)
        elif method == "knee":
            traj = np.minimum(CAP, GRID[None, :] + k[:, None])  # [n, R]
            loss = (np.einsum("jn,jn->j", wm, back ** 2)[:, None] - 2 * (wm * back) @ traj
                    + wm @ traj ** 2)  # [J, R]
            est = GRID[np.argmin(loss, axis=1)]
        else:
            raise ValueError(method)
        out[idx] = est
    return np.maximum(out, 0.0)


def main(paths: list[str]) -> int:
    runs = runs_of_args(paths, __doc__)
    if isinstance(runs, int):
        return runs
    for p, r in zip(paths, runs):
        if r["true"].max() <= MAX_RUL:
            print(f"{p}: holds only cut points with true RUL <= {MAX_RUL:g} (an older cv_study.py); "
                  "the shifted windows need every cut point", file=sys.stderr)
            return 1
    grid = [("last", 1, None)]
    for n in (5, 10, 20, 30, 40):
        grid += [("shift", n, None), ("knee", n, None)]
    for n, h in ((40, 10.0), (60, 15.0), (80, 20.0)):
        grid += [("knee", n, h)]
    print("estimator        " + "  ".join(f"{p.split('/')[-1]:>10}" for p in paths) + "        mean")
    for method, n, half in grid:
        vals = [rmse(estimates(r["engine"], r["cut"], r["pred"], n, method, half), r["true"]) for r in runs]
        name = f"{method} n={n}" + (f" half={half:g}" if half else "")
        print(f"{name:<17}" + "  ".join(f"{v:>10.2f}" for v in vals) + f"  {np.mean(vals):>10.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
