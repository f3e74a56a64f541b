#!/usr/bin/env python3
"""Model study under the cv protocol: the candidates and probes of models/README.md.

Trains one seed of train_rul.train_cv (5 fold models, each stopping early on its held-out fold)
with a chosen architecture (`--arch lstm|stats|hybrid|...`, or `a+b` for fold models that
average one net of each) and knobs of the LSTM, and prints validation figures only: the
out-of-fold RMSE against the unclipped truth over every train engine's cut points with true
RUL <= 150 (each predicted by the fold model that did not learn from it), and the folds' capped
validation RMSE. The test set is never printed. `--save x.npz` keeps the out-of-fold
predictions, so that averages of variants trained with the same seed (same folds) can be
scored without training again.

    ~/.cache/mantis/venv-rul/bin/python models/training/cv_study.py --noise 0.1
    ~/.cache/mantis/venv-rul/bin/python models/training/cv_study.py --arch hybrid --save /tmp/h0.npz
"""
import argparse
import functools
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402

import train_rul as T  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--data", type=Path, default=Path("../shared/data/cmapss"))
ap.add_argument("--ds", default="FD001")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--arch", default="lstm", help="as train_rul.py --arch (e.g. hybrid, stats, hybrid+stats)")
ap.add_argument("--folds", type=int, default=5)
ap.add_argument("--patience", type=int, default=8)
ap.add_argument("--epochs", type=int, default=80)
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--dropout", type=float, default=0.3)
ap.add_argument("--noise", type=float, default=0.0, help="Gaussian input noise (z-score units); 0 = off")
ap.add_argument("--l2", type=float, default=0.0, help="L2 penalty on the LSTM kernels; 0 = off")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--calibration", choices=["spline", "none"], default="spline",
                help="as train_rul.py --calibration (the out-of-fold file keeps the uncalibrated predictions)")
ap.add_argument("--far-weight", type=float, default=1.0,
                help="weight of the cut points with true RUL > 150 in the training and early-stopping losses")
ap.add_argument("--summaries", choices=["v1", "v2"], default="v1",
                help="window summaries of the stats and hybrid networks (as train_rul.py --summaries)")
ap.add_argument("--baseline", type=int, default=0,
                help="append each row's difference from the mean of the engine's first N cycles (0 = off)")
ap.add_argument("--crop", type=float, default=0.0,
                help="augmentation: add this share of the training windows again with their history cut short and "
                "front-padded (0 = off)")
ap.add_argument("--extra", default="", help="comma-separated other train files (e.g. FD003) whose engines every fold "
                "model also learns from (pooled training; the normaliser is fitted on all of them); never scored")
ap.add_argument("--save", type=Path, help="write the out-of-fold predictions here (.npz: engine, cut, true, pred) "
                "to study averages of variants")
a = ap.parse_args()
try:
    kinds = T.parse_arch(a.arch)
except ValueError as e:
    ap.error(str(e))
# Comparisons are the negations, so that NaN fails them too.
if not 0.0 < a.lr < 1.0:
    ap.error(f"--lr must lie in (0, 1); got {a.lr:g}")
if not 0.0 <= a.dropout < 1.0:
    ap.error(f"--dropout must lie in [0, 1); got {a.dropout:g}")
for name, value in [("--noise", a.noise), ("--l2", a.l2)]:
    if not 0.0 <= value < float("inf"):
        ap.error(f"{name} must be 0 (off) or a finite positive number; got {value:g}")
if not 0.0 <= a.far_weight < float("inf"):
    ap.error(f"--far-weight must be a finite number >= 0; got {a.far_weight:g}")
for name, value, least in [("--folds", a.folds, 2), ("--patience", a.patience, 1), ("--epochs", a.epochs, 1),
                           ("--threads", a.threads, 1), ("--baseline", a.baseline, 0)]:
    if value < least:
        ap.error(f"{name} must be at least {least}; got {value}")
if a.noise > 0 and kinds != ["lstm"]:
    ap.error("--noise applies to --arch lstm only")
if a.l2 > 0 and not set(kinds) & {"lstm", "hybrid"}:
    ap.error("--l2 applies to the LSTM kernels: --arch lstm or hybrid")
T.SUMMARIES = a.summaries
T.BASELINE = a.baseline
T.FAR_WEIGHT = a.far_weight
if not 0.0 <= a.crop <= 1.0:
    ap.error(f"--crop must lie in [0, 1]; got {a.crop:g}")
if a.crop > 0 and a.baseline > 0:
    ap.error("--crop cuts the window's history short, not the baseline's: use one or the other")
T.CROP = a.crop
T.CALIBRATION = a.calibration
T.setup_tf(a.threads)
orig_build = T.build_model
# The served network with one knob changed (the defaults give the same network and numbers).
T.build_model = functools.partial(orig_build, lr=a.lr, dropout=a.dropout, noise=a.noise, l2=a.l2)
train = T.load_table(a.data / f"train_{a.ds}.txt")
test = T.load_table(a.data / f"test_{a.ds}.txt")
test_rul = np.loadtxt(a.data / f"RUL_{a.ds}.txt").reshape(-1)
extra = [T.load_table(a.data / f"train_{x}.txt") for x in a.extra.split(",") if x]
norm = T.fit_normaliser(np.concatenate([train, *extra]) if extra else train)
train_z = [T.normalise(e, norm) for e in T.engines(train)]
extra_z = [T.normalise(e, norm) for t in extra for e in T.engines(t)]
test_z = [T.normalise(e, norm) for e in T.engines(test)]
oof = {} if a.save else None
res, *_ = T.train_cv(a.ds, a.arch, a.seed, train_z, test_z, test_rul, a.epochs, a.patience, a.folds,
                     lambda msg: None, oof_out=oof, extra_z=extra_z)
if a.save:
    np.savez(a.save, **oof)
print(f"{a.ds} {a.arch} ({a.summaries} summaries) seed {a.seed} lr {a.lr:g} dropout {a.dropout:g} noise {a.noise:g} l2 {a.l2:g} far-weight {a.far_weight:g} baseline {a.baseline} crop {a.crop:g} extra {a.extra or '-'}: "
      + (f"out-of-fold RMSE (true RUL <= 150) uncalibrated {res['oof_rmse_uncalibrated']:.2f}, calibrated "
         f"{res['oof_rmse_calibrated_cv']:.2f} (map cross-fitted by engine; {res['oof_rmse_true_rul_le_150']:.2f} "
         "with the served map, fitted on all), "
         if a.calibration == "spline" else
         f"out-of-fold RMSE (true RUL <= 150) {res['oof_rmse_true_rul_le_150']:.2f}, ")
    + f"folds' val RMSE {res['val_rmse_capped']:.2f}, best epochs {res['best_epoch']}, "
      f"wall {res['wall_seconds']:.0f}s", flush=True)
