#!/usr/bin/env python3
"""MANTIS deep RUL model: offline training pipeline for NASA C-MAPSS, exported to ONNX.

One command trains, evaluates and exports a model per dataset:

    python3 models/training/train_rul.py --data ../shared/data/cmapss --out models/

(or `models/training/train.sh`, which makes the pinned virtualenv first and runs at nice 19).

Protocol (the one of the literature, so the numbers compare; see ../shared/data/README.md):
  * label min(max_cycle - cycle, LABEL_CAP) with LABEL_CAP = 125;
  * operating regimes: k-means on the 3 settings of the TRAIN file, the smallest k (1..MAX_REGIMES)
    whose every train row lies within REGIME_RADIUS of its centroid (raw setting units); rows are
    assigned to the nearest centroid. FD001/FD003 have one regime, FD002/FD004 six: the code is
    the same;
  * sensors dropped when near-constant within every regime of the TRAIN file (< MIN_DISTINCT
    distinct values, or zero spread); each kept sensor is normalised per regime with the mean and
    standard deviation of the TRAIN file rows of that regime (label-free statistics);
  * windows of the last WINDOW (50) cycles; an engine shorter than WINDOW is padded at the front
    by repeating its first row; the model trains on every cut point of the fit engines, the early
    ones padded the same way; every test engine is predicted once, from its last window;
  * RMSE and the PHM08 score against the UNCLIPPED true RUL; prediction clamped at 0 (the Rust
    server does the same);
  * `--protocol cv` (the default): per seed, the 100 train engines are cut into 5 folds by
    engine; fold model k learns from the other four folds and stops early on fold k (the test set
    is never used to choose anything); its errors on fold k are the conformal scores of the 90 %
    interval (cross-fitting: every train engine is scored once by a model that did not learn from
    it); the served model is the average of the 5 fold models, exported as one graph.
    `--protocol split` (the first versions): one model per seed on a fit (70 %) / validation
    (15 %, early stopping) / calibration (15 %, split-conformal interval) split of the engines.

Models (`--arch`): `lstm`, two stacked 64-unit LSTMs and a dense head; `stats`, a small MLP over
fixed per-sensor summaries of the window (means, least-squares slopes, last value, mean square:
what the in-platform trees see; `--summaries v2` adds the means of the last 5 cycles, the slope
over the last 10 and the curvature of the window); `hybrid`, both side by side under one head;
`cnn` (a TCN) and `dcnn` (Li 2018). `a+b` makes every fold model the average of one net of each kind; the served
models are `hybrid+stats`, chosen on out-of-fold RMSE (see models/README.md; train.sh).
`--jobs N` trains N seeds at once in worker processes (same numbers as one process).

Output per dataset: models/rul-cmapss-<ds>.onnx and models/rul-cmapss-<ds>.json (the input
contract, the scores, and a fixed reference batch for the Rust equivalence test), plus
models/training/results-<ds>.json with every seed's numbers.

A long run can take several sittings: every finished seed leaves its record in `--runs`
(models/training/runs: its numbers, test predictions and reference outputs, and its graph while it
is its data set's best-validation seed); a later run with the same configuration trains only the
seeds not yet recorded, and a data set is exported once all its seeds are. `--start-within M`
starts no seed later than M minutes after launch. Exit status 3: some seeds are still to train.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

WINDOW = 50
LABEL_CAP = 125.0
# The fixed window summaries of the `stats` and `hybrid` networks (summary_filters): "v1" is the
# served models' set, "v2" a richer one under study (models/README.md).
SUMMARIES = "v1"
# Cycles of the engine's early-life baseline appended to each window row (last_window); 0 = none
# (the served models). A study knob (cv_study.py --baseline).
BASELINE = 0
MAX_REGIMES = 8
REGIME_RADIUS = 1.0
MIN_DISTINCT = 5
NOMINAL_COVERAGE = 0.90
# Calibration population: cut points whose true RUL is at most this (the capped zone plus 20 %).
# Beyond it the model (trained on capped labels) predicts ~LABEL_CAP whatever the true RUL, so no
# finite interval is informative there; the sidecar states the bound.
CALIBRATION_MAX_RUL = 1.2 * LABEL_CAP
# Weight, in the training loss and the early-stopping loss of the cv protocol, of the cut points
# whose true RUL exceeds CALIBRATION_MAX_RUL (long-healthy windows, all labelled 125); 1 = all
# alike (the served models). A study knob (cv_study.py --far-weight).
FAR_WEIGHT = 1.0
# Study knob (cv_study.py --crop): the share of training windows added again with their history
# cut short, front-padded as a short engine's window is (0 = off).
CROP = 0.0
SETTING_COLUMNS = ["setting1", "setting2", "setting3"]
SENSOR_COLUMNS = [f"s{i}" for i in range(1, 22)]

PUBLISHED = {
    "FD001": {"LSTM (Zheng 2017)": 16.14, "DCNN (Li 2018)": 12.61, "MS-DCNN (2020)": 11.44},
    "FD003": {"LSTM (Zheng 2017)": 16.18, "DCNN (Li 2018)": 12.64, "MS-DCNN (2020)": 11.67},
}


# --------------------------------------------------------------------------------------------
# data


def load_table(path: Path) -> np.ndarray:
    """unit, cycle, 3 settings, 21 sensors (float64, as parsed from the text)."""
    a = np.loadtxt(path, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 26:
        raise ValueError(f"{path}: expected 26 columns, got shape {a.shape}")
    return a


def engines(table: np.ndarray) -> list[np.ndarray]:
    """Rows per unit, in file order (units are contiguous and cycles increase)."""
    out = []
    for u in np.unique(table[:, 0]):
        rows = table[table[:, 0] == u]
        if not np.all(np.diff(rows[:, 1]) == 1):
            raise ValueError(f"unit {u}: cycles are not consecutive")
        out.append(rows)
    return out


# --------------------------------------------------------------------------------------------
# regimes and normalisation (mirrored in crates/mantis-rul-model/src/contract.rs)


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 100) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # k-means++ initialisation
    c = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.array(c)[None]) ** 2).sum(-1), axis=1)
        if d2.sum() == 0:
            break
        c.append(x[rng.choice(len(x), p=d2 / d2.sum())])
    c = np.array(c)
    for _ in range(iters):
        lab = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        new = np.array([x[lab == j].mean(0) if np.any(lab == j) else c[j] for j in range(len(c))])
        if np.allclose(new, c):
            break
        c = new
    lab = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
    return c, lab


def fit_regimes(settings: np.ndarray) -> np.ndarray:
    """Centroids of the operating regimes: the smallest k whose clusters have radius < REGIME_RADIUS."""
    for k in range(1, MAX_REGIMES + 1):
        best = None
        for init in range(5):
            c, lab = kmeans(settings, k, seed=init)
            radius = np.sqrt(((settings - c[lab]) ** 2).sum(-1)).max()
            if best is None or radius < best[0]:
                best = (radius, c)
        if best[0] < REGIME_RADIUS:
            return best[1]
    raise ValueError(f"no clustering of the settings into <= {MAX_REGIMES} regimes of radius < {REGIME_RADIUS}")


def assign_regimes(settings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    d2 = ((settings[:, None, :] - centroids[None]) ** 2).sum(-1)
    return np.argmin(d2, axis=1)


def fit_normaliser(train: np.ndarray) -> dict:
    settings, sensors = train[:, 2:5], train[:, 5:]
    centroids = fit_regimes(settings)
    reg = assign_regimes(settings, centroids)
    keep = []
    for j in range(sensors.shape[1]):
        varies = False
        for r in range(len(centroids)):
            col = sensors[reg == r, j]
            if len(col) and len(np.unique(col)) >= MIN_DISTINCT and col.std() > 0:
                varies = True
        if varies:
            keep.append(j)
    mean = np.zeros((len(centroids), len(keep)))
    std = np.ones((len(centroids), len(keep)))
    for r in range(len(centroids)):
        rows = sensors[reg == r][:, keep]
        if len(rows):
            mean[r] = rows.mean(0)
            s = rows.std(0)
            std[r] = np.where(s > 0, s, 1.0)
    return {"centroids": centroids, "keep": keep, "mean": mean, "std": std}


def normalise(rows: np.ndarray, norm: dict) -> np.ndarray:
    """rows: [n, 26] raw table rows (or [n, 24] settings+sensors) -> [n, F] float32."""
    settings, sensors = (rows[:, 2:5], rows[:, 5:]) if rows.shape[1] == 26 else (rows[:, :3], rows[:, 3:])
    reg = assign_regimes(settings, norm["centroids"])
    z = (sensors[:, norm["keep"]] - norm["mean"][reg]) / norm["std"][reg]
    return z.astype(np.float32)


def last_window(z: np.ndarray, end: int) -> np.ndarray:
    """Window of WINDOW rows ending at row `end` (inclusive), front-padded with the first row.
    With BASELINE > 0 (a study knob), each row also carries its difference from the engine's own
    early-life baseline: the mean of its first min(BASELINE, end + 1) rows (nothing after `end`)."""
    start = end - WINDOW + 1
    if start >= 0:
        w = z[start : end + 1]
    else:
        pad = np.repeat(z[:1], -start, axis=0)
        w = np.concatenate([pad, z[: end + 1]], axis=0)
    if BASELINE > 0:
        base = z[: min(BASELINE, end + 1)].mean(0, keepdims=True)
        w = np.concatenate([w, w - base], axis=1)
    return w


def cropped(x: np.ndarray, yc: np.ndarray, yt: np.ndarray, share: float, seed: int):
    """Augmentation (a study knob): the windows plus a `share` of them again, each with its first
    k rows (k uniform in 1..WINDOW-1) replaced by its row k, as if the engine's history began
    there and had been front-padded (the label stays: the cut point is the same)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x), size=int(round(share * len(x))), replace=False)
    extra = x[pick].copy()
    for row, k in zip(extra, rng.integers(1, x.shape[1], len(pick))):
        row[:k] = row[k]
    return (np.concatenate([x, extra]), np.concatenate([yc, yc[pick]]), np.concatenate([yt, yt[pick]]))


def windows_of(engine_z: list[np.ndarray], full_only: bool = True):
    """All windows and (capped, true) labels of a list of normalised engines."""
    xs, yc, yt = [], [], []
    for z in engine_z:
        n = len(z)
        first = WINDOW - 1 if (full_only and n >= WINDOW) else 0
        for end in range(first, n):
            xs.append(last_window(z, end))
            rul = n - 1 - end
            yt.append(rul)
            yc.append(min(rul, LABEL_CAP))
    return np.stack(xs).astype(np.float32), np.array(yc, np.float32), np.array(yt, np.float32)


# --------------------------------------------------------------------------------------------
# metrics


def rmse(pred, true) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(true)) ** 2)))


def phm08(pred, true) -> float:
    d = np.asarray(pred, np.float64) - np.asarray(true, np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def conformal_q(scores: np.ndarray, coverage: float) -> float:
    n = len(scores)
    k = int(np.ceil((n + 1) * coverage))
    if k > n:
        return float("inf")
    return float(np.sort(scores)[k - 1])


def postprocess(raw: np.ndarray) -> np.ndarray:
    return np.maximum(np.asarray(raw, np.float64).reshape(-1), 0.0)


# --------------------------------------------------------------------------------------------
# calibration of the cross-fitted ensemble

# "spline": the served graph ends with a monotone piecewise-linear map of the averaged output,
# fitted on the out-of-fold predictions against the capped labels (calibration_fit); "none": no map.
CALIBRATION = "spline"
CALIBRATION_KNOTS = np.arange(0.0, LABEL_CAP + 15.0 + 1e-9, 10.0)  # 0, 10, ..., 140 cycles
CALIBRATION_RIDGE = 1.0  # pulls each knot's value towards the identity (weight of ~1 point)


def calibration_basis(p: np.ndarray) -> np.ndarray:
    """[n, knots]: the hat functions of linear interpolation between the knots (flat outside)."""
    kn = CALIBRATION_KNOTS
    p = np.clip(np.asarray(p, np.float64).reshape(-1), kn[0], kn[-1])
    j = np.clip(np.searchsorted(kn, p, side="right") - 1, 0, len(kn) - 2)
    f = (p - kn[j]) / (kn[j + 1] - kn[j])
    b = np.zeros((len(p), len(kn)))
    b[np.arange(len(p)), j] = 1.0 - f
    b[np.arange(len(p)), j + 1] += f
    return b


def calibration_fit(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """The map's values at the knots: least squares of the capped label min(true, 125) on the
    out-of-fold predictions (every cut point: the labels the networks learn, nothing the test set
    decides), a light ridge towards the identity, then made non-decreasing (a higher output must
    not mean less life)."""
    b = calibration_basis(pred)
    y = np.minimum(np.asarray(true, np.float64), LABEL_CAP)
    a = b.T @ b + CALIBRATION_RIDGE * np.eye(len(CALIBRATION_KNOTS))
    v = np.linalg.solve(a, b.T @ y + CALIBRATION_RIDGE * CALIBRATION_KNOTS)
    return np.maximum.accumulate(v)


def calibration_apply(values: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return calibration_basis(pred) @ values


def calibration_cv_rmse(engine: np.ndarray, pred: np.ndarray, true: np.ndarray, seed: int, folds: int = 5) -> float:
    """Out-of-fold RMSE (true RUL <= CALIBRATION_MAX_RUL) of the calibrated predictions with the
    map itself cross-fitted by engine: each engine's points mapped by a map fitted on the others
    (the honest figure; the served map is fitted on all of them)."""
    units = np.unique(engine)
    rng = np.random.default_rng(seed)
    rng.shuffle(units)
    out = np.empty(len(pred))
    for g in np.array_split(units, folds):
        held = np.isin(engine, g)
        out[held] = calibration_apply(calibration_fit(pred[~held], true[~held]), pred[held])
    m = true <= CALIBRATION_MAX_RUL
    return rmse(np.maximum(out[m], 0.0), true[m])


def calibration_layers(values: np.ndarray):
    """The map as Keras layers (exported to ONNX with the networks): g(p) = v0 + sum_k d_k
    relu(p - knot_k), d_k the change of slope at knot k, flat below the first knot and after the
    last. Dense layers with fixed weights: MatMul, Add and Relu in the graph."""
    import keras

    kn = CALIBRATION_KNOTS
    slopes = np.diff(values) / np.diff(kn)
    d = np.concatenate([[slopes[0]], np.diff(slopes), [-slopes[-1]]])
    hinge = keras.layers.Dense(len(kn), activation="relu", name="calibration_hinges", trainable=False)
    out = keras.layers.Dense(1, name="calibration", trainable=False)
    hinge.build((None, 1))
    out.build((None, len(kn)))
    hinge.set_weights([np.ones((1, len(kn)), np.float32), (-kn).astype(np.float32)])
    out.set_weights([d.reshape(-1, 1).astype(np.float32), np.array([values[0]], np.float32)])
    return lambda x: out(hinge(x))


# --------------------------------------------------------------------------------------------
# models


ARCHS = ("cnn", "dcnn", "lstm", "stats", "hybrid")


def parse_arch(arch: str) -> list[str]:
    """The kinds of `--arch` (`hybrid+stats` -> ["hybrid", "stats"]); ValueError naming the
    choices when one is unknown or repeated."""
    kinds = arch.split("+")
    if not all(k in ARCHS for k in kinds) or len(set(kinds)) != len(kinds):
        raise ValueError(f"--arch {arch}: expected one of {', '.join(ARCHS)}, or distinct ones joined by +")
    return kinds


def summary_filters(window: int) -> np.ndarray:
    """[window, k] fixed weights over time (oldest first). v1 (k = 5): mean of the window, mean of
    its last 10 cycles, least-squares slope (per cycle) over the window and over its last 20
    cycles, and the last value. v2 (k = 8) adds the mean of the last 5 cycles, the slope over the
    last 10 and the curvature of the window (the quadratic term of a least-squares parabola).
    Linear in the window, so one constant MatMul in the graph."""
    def mean(n):
        w = np.zeros(window)
        w[-n:] = 1.0 / n
        return w

    def slope(n):
        t = np.arange(n, dtype=np.float64)
        t -= t.mean()
        w = np.zeros(window)
        w[-n:] = t / (t ** 2).sum()
        return w

    def curvature(n):
        # Centred t and t² - mean(t²) are orthogonal, so this is the parabola's t² coefficient.
        t = np.arange(n, dtype=np.float64)
        t -= t.mean()
        q = t ** 2 - (t ** 2).mean()
        w = np.zeros(window)
        if (q ** 2).sum() > 0:
            w[-n:] = q / (q ** 2).sum()
        return w

    last = np.zeros(window)
    last[-1] = 1.0
    cols = [mean(window), mean(min(10, window)), slope(window), slope(min(20, window)), last]
    if SUMMARIES == "v2":
        cols += [mean(min(5, window)), slope(min(10, window)), curvature(window)]
    elif SUMMARIES != "v1":
        raise ValueError(f"unknown summary set {SUMMARIES!r}")
    return np.stack(cols, axis=1).astype(np.float32)


def window_summaries(inp):
    """Per sensor: the summary_filters of its series, and the mean square over the window
    (spread); flattened to [batch, 6 * features]."""
    import keras

    window = inp.shape[1]
    filters = summary_filters(window)
    fixed = keras.initializers.Constant(filters)
    t = keras.layers.Permute((2, 1))(inp)  # [batch, features, window]
    lin = keras.layers.Dense(filters.shape[1], use_bias=False, trainable=False, kernel_initializer=fixed,
                             name="summaries")(t)
    sq = keras.layers.Multiply()([t, t])
    msq = keras.layers.Dense(1, use_bias=False, trainable=False,
                             kernel_initializer=keras.initializers.Constant(np.full((window, 1), 1.0 / window)),
                             name="mean_square")(sq)
    return keras.layers.Flatten()(keras.layers.Concatenate()([lin, msq]))


def build_model(arch: str, n_features: int, seed: int, *, lr: float = 1e-3, dropout: float = 0.3,
                noise: float = 0.0, l2: float = 0.0):
    """The network of `arch`; `lr`, and for the LSTM `dropout`, Gaussian input `noise` (0 = none)
    and an `l2` penalty on its kernels (0 = none), are the knobs of models/training/cv_study.py."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((WINDOW, n_features), name="window")
    if arch == "cnn":
        # A small TCN: causal dilated convolutions (receptive field 1 + 2*(1+2+4+8) = 31 cycles)
        # with residual connections, then every time step through a dense head.
        x = keras.layers.Conv1D(32, 1, name="proj")(inp)
        for d in (1, 2, 4, 8):
            h = keras.layers.Conv1D(32, 3, padding="causal", dilation_rate=d, activation="relu")(x)
            h = keras.layers.Conv1D(32, 3, padding="causal", dilation_rate=d, activation="relu")(h)
            x = keras.layers.Add()([x, h])
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dropout(0.3)(x)
        x = keras.layers.Dense(64, activation="relu")(x)
    elif arch == "dcnn":
        # Li et al. 2018: 4 x Conv(10, k=10, tanh) -> Conv(1, k=3) -> Flatten -> Dense(100).
        x = keras.layers.GaussianNoise(0.1)(inp)
        for _ in range(4):
            x = keras.layers.Conv1D(10, 10, padding="same", activation="tanh")(x)
        x = keras.layers.Conv1D(1, 3, padding="same", activation="tanh")(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dropout(0.5)(x)
        x = keras.layers.Dense(100, activation="tanh")(x)
    elif arch == "stats":
        # What the in-platform trees see, as a network: fixed per-sensor summaries of the window
        # (summary_filters), then a small MLP.
        x = keras.layers.Dense(64, activation="relu")(window_summaries(inp))
        x = keras.layers.Dropout(dropout)(x)
        x = keras.layers.Dense(32, activation="relu")(x)
    elif arch == "hybrid":
        # The two LSTMs and the fixed summaries side by side, one dense head over both.
        reg = keras.regularizers.L2(l2) if l2 > 0 else None
        h = keras.layers.LSTM(64, return_sequences=True, kernel_regularizer=reg)(inp)
        h = keras.layers.LSTM(64, kernel_regularizer=reg)(h)
        s = keras.layers.Dense(64, activation="relu")(window_summaries(inp))
        x = keras.layers.Concatenate()([h, s])
        x = keras.layers.Dropout(dropout)(x)
        x = keras.layers.Dense(32, activation="relu")(x)
    elif arch == "lstm":
        x = keras.layers.GaussianNoise(noise)(inp) if noise > 0 else inp
        reg = keras.regularizers.L2(l2) if l2 > 0 else None
        x = keras.layers.LSTM(64, return_sequences=True, kernel_regularizer=reg)(x)
        x = keras.layers.LSTM(64, kernel_regularizer=reg)(x)
        x = keras.layers.Dropout(dropout)(x)
        x = keras.layers.Dense(32, activation="relu")(x)
    else:
        raise ValueError(arch)
    out = keras.layers.Dense(1)(x)
    out = keras.layers.Rescaling(LABEL_CAP, name="rul")(out)  # output in cycles
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    return model


def split_engines(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    perm = np.random.default_rng(1000 + seed).permutation(n)
    n_val = int(round(0.15 * n))
    n_cal = int(round(0.15 * n))
    return perm[n_val + n_cal :], perm[:n_val], perm[n_val : n_val + n_cal]


def early_stopping(patience: int) -> list:
    """Stop `patience` epochs after the best validation loss (and restore it); halve the learning
    rate after (patience - 2) // 2 flat epochs (5 for 12, 3 for 8)."""
    import keras

    return [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(2, (patience - 2) // 2),
                                          min_lr=1e-5),
    ]


def train_one(ds, arch, seed, train_z, test_z, test_rul, epochs, patience, log):
    fit_idx, val_idx, cal_idx = split_engines(len(train_z), seed)
    # Every cut point of an engine, the first WINDOW - 1 front-padded like a short test engine's
    # window: the model learns the padded windows it is asked to predict from.
    x_fit, y_fit, _ = windows_of([train_z[i] for i in fit_idx], full_only=False)
    x_val, y_val, _ = windows_of([train_z[i] for i in val_idx], full_only=False)
    model = build_model(arch, x_fit.shape[2], seed)
    t0 = time.process_time()
    w0 = time.time()
    cbs = early_stopping(patience)
    hist = model.fit(
        x_fit, y_fit, validation_data=(x_val, y_val), epochs=epochs, batch_size=256,
        callbacks=cbs, verbose=0, shuffle=True,
    )
    cpu = time.process_time() - t0
    wall = time.time() - w0
    val_loss = hist.history["val_loss"]
    best_epoch = int(np.argmin(val_loss)) + 1
    val_rmse = float(np.sqrt(min(val_loss)))

    # calibration: every cut point of the held-out calibration engines within the calibrated zone
    x_cal, _, t_cal = windows_of([train_z[i] for i in cal_idx], full_only=False)
    m = t_cal <= CALIBRATION_MAX_RUL
    p_cal = postprocess(model.predict(x_cal[m], batch_size=1024, verbose=0))
    q90 = conformal_q(np.abs(p_cal - t_cal[m]), NOMINAL_COVERAGE)

    # test: the last window of every test engine, against the unclipped truth
    x_test = np.stack([last_window(z, len(z) - 1) for z in test_z])
    pred = postprocess(model.predict(x_test, batch_size=1024, verbose=0))
    covered = np.abs(pred - test_rul) <= q90
    res = {
        "seed": seed,
        "arch": arch,
        "epochs_run": len(val_loss),
        "best_epoch": best_epoch,
        "val_rmse_capped": round(val_rmse, 4),
        "calibration_points": int(m.sum()),
        "q90": round(q90, 4),
        "test_rmse": round(rmse(pred, test_rul), 4),
        "test_phm08": round(phm08(pred, test_rul), 2),
        "test_coverage90": round(float(covered.mean()), 4),
        "test_coverage90_true_rul_le_150": round(float(covered[test_rul <= CALIBRATION_MAX_RUL].mean()), 4),
        "cpu_seconds": round(cpu, 1),
        "wall_seconds": round(wall, 1),
        "split": {"fit": sorted(int(i) + 1 for i in fit_idx), "validation": sorted(int(i) + 1 for i in val_idx),
                  "calibration": sorted(int(i) + 1 for i in cal_idx)},
    }
    log(f"{ds} {arch} seed {seed}: epochs {res['epochs_run']} (best {best_epoch}), val RMSE {val_rmse:.2f}, "
        f"test RMSE {res['test_rmse']:.2f}, PHM08 {res['test_phm08']:.1f}, q90 {q90:.1f}, "
        f"coverage {res['test_coverage90']:.2f}, cpu {cpu:.0f}s wall {wall:.0f}s")
    return res, model, pred, x_test


def fold_engines(n: int, seed: int, folds: int) -> list[np.ndarray]:
    perm = np.random.default_rng(1000 + seed).permutation(n)
    return [np.sort(f) for f in np.array_split(perm, folds)]


def train_cv(ds, arch, seed, train_z, test_z, test_rul, epochs, patience, folds, log, oof_out=None,
             extra_z=None):
    """Cross-fitting by engine: every train engine is held out once. Fold model k learns from the
    other folds and stops early on fold k; its predictions on fold k (every cut point with true
    RUL <= CALIBRATION_MAX_RUL) are the conformal scores. The served model is the average of the
    fold models, one graph (its residuals are at most the members' on average, so the interval
    from single-model scores leans conservative; the test coverage measures it). When `oof_out` is
    a dict it receives the out-of-fold predictions of every cut point (engine, cut, true, pred:
    cv_study.py --save). `extra_z` (a study knob: cv_study.py --extra) are engines of other train
    files that every fold model also learns from; they are never held out nor scored."""
    import keras

    parts = fold_engines(len(train_z), seed, folds)
    kinds = parse_arch(arch)
    members, fold_runs = [], []
    oof_all = {}  # every held-out cut point: engine, cut, true, pred (the fold model's, uncalibrated)
    by_kind = {kind: [] for kind in kinds}  # each kind's net of every fold (reported, not served alone)
    x_test = np.stack([last_window(z, len(z) - 1) for z in test_z])
    cpu0, wall0 = time.process_time(), time.time()
    for k, held in enumerate(parts):
        fit_idx = np.concatenate([p for j, p in enumerate(parts) if j != k])
        x_fit, y_fit, t_fit = windows_of([train_z[i] for i in fit_idx] + list(extra_z or []), full_only=False)
        if CROP > 0:
            x_fit, y_fit, t_fit = cropped(x_fit, y_fit, t_fit, CROP, seed * 100 + k)
        x_val, y_val, t_val = windows_of([train_z[i] for i in held], full_only=False)
        m = t_val <= CALIBRATION_MAX_RUL
        w_fit = np.where(t_fit <= CALIBRATION_MAX_RUL, 1.0, FAR_WEIGHT).astype(np.float32)
        w_val = np.where(m, 1.0, FAR_WEIGHT).astype(np.float32)
        weighted = FAR_WEIGHT != 1.0
        nets, net_runs = [], []
        for j, kind in enumerate(kinds):
            # The first kind keeps the seeds of a single-architecture run (same nets, same numbers).
            net = build_model(kind, x_fit.shape[2], seed * 100 + k + 1000 * j)
            hist = net.fit(x_fit, y_fit, sample_weight=w_fit if weighted else None,
                           validation_data=(x_val, y_val, w_val) if weighted else (x_val, y_val),
                           epochs=epochs, batch_size=256, callbacks=early_stopping(patience), verbose=0,
                           shuffle=True)
            val_loss = hist.history["val_loss"]
            # With --far-weight the loss is weighted: the capped RMSE is then measured, not read off it.
            best_val = (rmse(net.predict(x_val, batch_size=1024, verbose=0).reshape(-1), y_val) if weighted
                        else float(np.sqrt(min(val_loss))))
            net_runs.append({"arch": kind, "epochs_run": len(val_loss), "best_epoch": int(np.argmin(val_loss)) + 1,
                             "val_rmse_capped": round(best_val, 4)})
            nets.append(net)
            by_kind[kind].append(net)
        if len(nets) == 1:
            model = nets[0]
            val_capped = net_runs[0]["val_rmse_capped"]
        else:
            # The fold model: the average of its nets, one per kind.
            fin = keras.Input((WINDOW, x_fit.shape[2]))
            model = keras.Model(fin, keras.layers.Average()([n(fin) for n in nets]))
            val_capped = round(rmse(model.predict(x_val, batch_size=1024, verbose=0).reshape(-1), y_val), 4)
        p_all = postprocess(model.predict(x_val, batch_size=1024, verbose=0))
        p_val = p_all[m]
        # windows_of yields every cut point of each held-out engine, in order
        cuts = np.concatenate([np.arange(len(train_z[i])) for i in held])
        units = np.concatenate([np.full(len(train_z[i]), i + 1) for i in held])
        for key, v in (("engine", units), ("cut", cuts), ("true", t_val), ("pred", p_all)):
            oof_all.setdefault(key, []).append(v)
        p_test = postprocess(model.predict(x_test, batch_size=1024, verbose=0))
        run = {"fold": k, "held_out": [int(i) + 1 for i in held],
               "epochs_run": net_runs[0]["epochs_run"] if len(nets) == 1 else [r["epochs_run"] for r in net_runs],
               "best_epoch": net_runs[0]["best_epoch"] if len(nets) == 1 else [r["best_epoch"] for r in net_runs],
               "val_rmse_capped": val_capped,
               "val_rmse_true_rul_le_150": round(rmse(p_val, t_val[m]), 4),
               "test_rmse_alone": round(rmse(p_test, test_rul), 4)}
        if len(nets) > 1:
            run["nets"] = net_runs
        fold_runs.append(run)
        log(f"{ds} {arch} seed {seed} fold {k}: epochs {run['epochs_run']} (best {run['best_epoch']}), "
            f"val RMSE {val_capped:.2f}, alone on test {run['test_rmse_alone']:.2f}, "
            f"wall {time.time() - wall0:.0f}s")
        members.append(model)
    cpu, wall = time.process_time() - cpu0, time.time() - wall0

    inp = keras.Input((WINDOW, x_test.shape[2]), name="window")
    outs = []
    for k, m_ in enumerate(members):
        m_.name = f"fold{k}"
        outs.append(m_(inp))
    avg = keras.layers.Average(name="average")(outs) if len(outs) > 1 else outs[0]
    oof_all = {key: np.concatenate(v) for key, v in oof_all.items()}
    near = oof_all["true"] <= CALIBRATION_MAX_RUL
    oof_raw = rmse(oof_all["pred"][near], oof_all["true"][near])
    calib = None
    if CALIBRATION == "spline":
        calib = calibration_fit(oof_all["pred"], oof_all["true"])
        layers = calibration_layers(calib)
        ensemble = keras.Model(inp, layers(avg))
        p_oof = postprocess(calibration_apply(calib, oof_all["pred"]))
        # The interval is computed with calibration_apply, the graph serves the layers: they must agree.
        probe = np.linspace(-10.0, LABEL_CAP + 40.0, 401)
        pin = keras.Input((1,))
        gap = np.abs(keras.Model(pin, layers(pin)).predict(probe.reshape(-1, 1).astype(np.float32), verbose=0)
                     .reshape(-1) - calibration_apply(calib, probe)).max()
        if gap > 1e-3:
            raise RuntimeError(f"the calibration layers differ from the fitted map by {gap:.2e} cycles")
    elif CALIBRATION == "none":
        ensemble = keras.Model(inp, avg)
        p_oof = oof_all["pred"]
    else:
        raise ValueError(f"unknown calibration {CALIBRATION!r}")
    all_scores = np.abs(p_oof[near] - oof_all["true"][near])
    q90 = conformal_q(all_scores, NOMINAL_COVERAGE)
    pred = postprocess(ensemble.predict(x_test, batch_size=1024, verbose=0))
    covered = np.abs(pred - test_rul) <= q90
    oof = np.sqrt(np.mean(all_scores ** 2))
    if oof_out is not None:
        oof_out.update(oof_all)
    kind_rmse = {}
    if len(kinds) > 1:
        for kind, nets in by_kind.items():
            p = np.mean([n.predict(x_test, batch_size=1024, verbose=0).reshape(-1) for n in nets], axis=0)
            kind_rmse[kind] = round(rmse(postprocess(p), test_rul), 4)
    res = {
        "seed": seed,
        "arch": arch,
        "protocol": f"{folds}-fold cross-fitting by engine; served: the average of the {folds} fold models",
        "folds": fold_runs,
        "best_epoch": [f["best_epoch"] for f in fold_runs],
        "val_rmse_capped": round(float(np.mean([f["val_rmse_capped"] for f in fold_runs])), 4),
        "oof_rmse_true_rul_le_150": round(float(oof), 4),
        "calibration": CALIBRATION,
        **({"oof_rmse_uncalibrated": round(oof_raw, 4),
            "oof_rmse_calibrated_cv": round(calibration_cv_rmse(oof_all["engine"], oof_all["pred"], oof_all["true"], seed), 4),
            "calibration_knots": [round(float(v), 4) for v in CALIBRATION_KNOTS],
            "calibration_values": [round(float(v), 4) for v in calib],
            "test_rmse_uncalibrated": round(rmse(postprocess(keras.Model(inp, avg).predict(x_test, batch_size=1024, verbose=0)), test_rul), 4)}
           if calib is not None else {}),
        "calibration_points": int(len(all_scores)),
        "q90": round(q90, 4),
        "test_rmse": round(rmse(pred, test_rul), 4),
        "test_rmse_members_mean": round(float(np.mean([f["test_rmse_alone"] for f in fold_runs])), 4),
        **({"test_rmse_by_arch": kind_rmse} if kind_rmse else {}),
        "test_phm08": round(phm08(pred, test_rul), 2),
        "test_coverage90": round(float(covered.mean()), 4),
        "test_coverage90_true_rul_le_150": round(float(covered[test_rul <= CALIBRATION_MAX_RUL].mean()), 4),
        "cpu_seconds": round(cpu, 1),
        "wall_seconds": round(wall, 1),
        "split": {"folds": [[int(i) + 1 for i in p] for p in parts]},
    }
    log(f"{ds} {arch} seed {seed}: ensemble of {folds}: test RMSE {res['test_rmse']:.2f} "
        f"(members alone {res['test_rmse_members_mean']:.2f}), PHM08 {res['test_phm08']:.1f}, q90 {q90:.1f}, "
        f"coverage {res['test_coverage90']:.2f}, out-of-fold RMSE {oof:.2f}, cpu {cpu:.0f}s wall {wall:.0f}s")
    return res, ensemble, pred, x_test


def calibration_meta(run: dict) -> dict:
    """The sidecar's record of the map at the end of the graph (provenance: the graph applies it)."""
    if run.get("calibration") != "spline":
        return {"method": "none"}
    return {"method": "monotone piecewise-linear map of the averaged output, in the graph; least squares of the "
                      f"capped label on the out-of-fold predictions of every train cut point, ridge {CALIBRATION_RIDGE:g} "
                      "towards the identity",
            "knots": run["calibration_knots"], "values": run["calibration_values"],
            "oof_rmse_uncalibrated": run["oof_rmse_uncalibrated"],
            "oof_rmse_calibrated_cv": run["oof_rmse_calibrated_cv"]}


def export_onnx(model, n_features: int, path: Path) -> None:
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec([None, WINDOW, n_features], tf.float32, name="window")]

    @tf.function(input_signature=spec)
    def serve(x):
        return {"rul": model(x, training=False)}

    tf2onnx.convert.from_function(serve, input_signature=spec, opset=17, output_path=str(path))
    strip_zero_initial_states(path)


def strip_zero_initial_states(path: Path) -> int:
    """Drops the LSTM initial states that tf2onnx builds as zeros of shape [1, batch, units] from
    Shape(input) -> Expand: ONNX defaults absent states to zeros (same outputs), and tract cannot
    type a shape computed from a symbolic batch ("shape input is variable"). Returns how many
    state inputs were removed; prunes the nodes left unused."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    g = m.graph
    producer = {o: n for n in g.node for o in n.output}
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}

    def is_zeros(name: str) -> bool:
        n = producer.get(name)
        while n is not None and n.op_type in ("Unsqueeze", "Reshape", "Identity"):
            n = producer.get(n.input[0])
        if n is None or n.op_type != "Expand":
            return False
        value = consts.get(n.input[0])
        return value is not None and not np.any(value)

    removed = 0
    for n in g.node:
        if n.op_type == "LSTM":
            for k in (5, 6):  # initial_h, initial_c
                if len(n.input) > k and n.input[k] and is_zeros(n.input[k]):
                    n.input[k] = ""
                    removed += 1
    # prune nodes whose outputs nobody uses (iterate to a fixed point)
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    used = {i for n in g.node for i in n.input}
    for t in [t for t in g.initializer if t.name not in used]:
        g.initializer.remove(t)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return removed


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def summary(values) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": round(float(v.mean()), 4), "std": round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 4)}


# --------------------------------------------------------------------------------------------


def log(msg):
    print(msg, flush=True)


def setup_tf(threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()


def train_seed(ds, args, seed, train_z, test_z, test_rul, log, extra_z=None):
    if args.protocol == "cv":
        return train_cv(ds, args.arch, seed, train_z, test_z, test_rul, args.epochs, args.patience, args.folds, log,
                        extra_z=extra_z)
    return train_one(ds, args.arch, seed, train_z, test_z, test_rul, args.epochs, args.patience, log)


REF_UNITS = [1, 2, 3, 10, 25, 50, 75, 100]


def reference_batch(test_eng, test_z) -> tuple[list, np.ndarray]:
    """The sidecar's fixed reference batch: the last windows of 8 test engines, as raw rows (settings +
    sensors: the last <= WINDOW rows, or the whole history when the input carries the early-life
    baseline) and as the normalised tensor, for the Rust equivalence tests."""
    ref_raw, ref_x = [], []
    for u in REF_UNITS:
        e = test_eng[u - 1]
        ref_raw.append((e[:, 2:] if BASELINE > 0 else e[-WINDOW:, 2:]).tolist())
        ref_x.append(last_window(test_z[u - 1], len(e) - 1))
    return ref_raw, np.stack(ref_x).astype(np.float32)


# The libraries a seed's numbers and graph depend on, each by its distribution names.
SOFTWARE = {"tensorflow": ("tensorflow-cpu", "tensorflow"), "keras": ("keras",), "numpy": ("numpy",),
            "tf2onnx": ("tf2onnx",), "onnx": ("onnx",), "onnxruntime": ("onnxruntime",)}


def software_versions() -> dict:
    """The installed versions of the libraries a seed's numbers and graph depend on."""
    from importlib import metadata

    def version(names):
        for name in names:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        return None

    return {lib: version(names) for lib, names in SOFTWARE.items()}


def run_config(args, ds: str, others: list, data: Path) -> dict:
    """What a seed's numbers depend on: a record is resumed only under the same configuration
    (the options, the protocol's constants, the data files, the library versions). The code of
    this file is not part of it: a change of what it computes must go with clearing the runs
    directory (models/README.md)."""
    files = [f"train_{ds}.txt", f"test_{ds}.txt", f"RUL_{ds}.txt"] + [f"train_{d}.txt" for d in others]
    return {"dataset": ds, "arch": args.arch, "protocol": args.protocol, "folds": args.folds, "epochs": args.epochs,
            "patience": args.patience, "threads": args.threads, "window": WINDOW, "summaries": SUMMARIES,
            "calibration": CALIBRATION, "baseline": BASELINE, "pooled_with": others, "export": not args.no_export,
            "constants": {"label_cap": LABEL_CAP, "max_regimes": MAX_REGIMES, "regime_radius": REGIME_RADIUS,
                          "min_distinct": MIN_DISTINCT, "nominal_coverage": NOMINAL_COVERAGE,
                          "calibration_max_rul": CALIBRATION_MAX_RUL,
                          "calibration_knots": [float(k) for k in CALIBRATION_KNOTS],
                          "calibration_ridge": CALIBRATION_RIDGE, "far_weight": FAR_WEIGHT, "crop": CROP},
            "software": software_versions(),
            "data_sha256": {f: sha256(data / f) for f in files}}


def record_path(runs: Path, ds: str, seed: int, ext: str = "json") -> Path:
    return runs / f"{ds.lower()}-seed{seed}.{ext}"


def read_record(runs: Path, ds: str, seed: int, config: dict) -> dict | None:
    """A finished seed's record, or None when the seed has not finished. A record of another
    configuration is an error: its numbers must not be mixed with this run's."""
    path = record_path(runs, ds, seed)
    if not path.exists():
        return None
    rec = json.loads(path.read_text())
    if rec.get("config") != config:
        raise SystemExit(f"{path} was trained with another configuration; delete it or choose another --runs")
    if config["export"]:
        onnx = record_path(runs, ds, seed, "onnx")
        if onnx.exists() and sha256(onnx) != rec["onnx_sha256"]:
            raise SystemExit(f"{onnx} does not match its record's sha256")
    return rec


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def best_seed(records: dict) -> int:
    """The seed with the best validation RMSE (ties: the lowest seed): the test set chooses nothing."""
    return min(records, key=lambda s: (records[s]["run"]["val_rmse_capped"], s))


def keep_best_graph(runs: Path, ds: str, records: dict) -> None:
    """Only the best-validation seed's graph is kept among the finished seeds of a data set (the
    others' numbers stay in their records); a seed still training keeps its own."""
    best = best_seed(records)
    for s in records:
        if s != best:
            record_path(runs, ds, s, "onnx").unlink(missing_ok=True)


def seed_job(job):
    """Trains one seed (in a worker process when `--jobs` > 1), exports its graph and leaves its
    record in the runs directory; a job that would start after the deadline is skipped."""
    global WINDOW, SUMMARIES, CALIBRATION, BASELINE
    ds, args, seed, train_z, test_z, test_rul, extra_z, ref_x, config, deadline, in_worker = job
    if deadline is not None and time.time() > deadline:
        return ds, seed, None
    if in_worker:
        WINDOW = args.window
        SUMMARIES = args.summaries
        BASELINE = args.baseline
        CALIBRATION = args.calibration
        setup_tf(args.threads)
    res, model, pred, _ = train_seed(ds, args, seed, train_z, test_z, test_rul, log, extra_z)
    rec = {"config": config, "seed": seed, "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "run": res, "test_predictions": [round(float(p), 4) for p in pred]}
    if config["export"]:
        onnx_path = record_path(args.runs, ds, seed, "onnx")
        export_onnx(model, ref_x.shape[2], onnx_path)
        import onnxruntime as ort

        keras_out = model.predict(ref_x, verbose=0).reshape(-1)
        sess = ort.InferenceSession(str(onnx_path))
        ort_out = sess.run(None, {sess.get_inputs()[0].name: ref_x})[0].reshape(-1)
        log(f"{ds} seed {seed}: |keras - onnxruntime| max {np.abs(keras_out - ort_out).max():.2e}")
        rec |= {"onnx_sha256": sha256(onnx_path), "keras_output": keras_out.astype(np.float64).tolist(),
                "onnxruntime_output": ort_out.astype(np.float64).tolist()}
    write_atomic(record_path(args.runs, ds, seed), json.dumps(rec, indent=1) + "\n")
    return ds, seed, rec


def main() -> int:
    global WINDOW, SUMMARIES, CALIBRATION, BASELINE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/cmapss"))
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--datasets", nargs="+", default=["FD001", "FD003"])
    ap.add_argument("--arch", default="lstm",
                    help="cnn, dcnn, lstm, stats or hybrid; `a+b`: every fold model is the average of one "
                         "net of each (cv protocol)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=80, help="maximum; early stopping on validation")
    ap.add_argument("--protocol", choices=["cv", "split"], default="cv",
                    help="cv: 5-fold cross-fitting by engine, the fold models averaged (default); "
                         "split: one model per seed on a 70/15/15 fit/validation/calibration split")
    ap.add_argument("--folds", type=int, default=5, help="folds of the cv protocol")
    ap.add_argument("--patience", type=int, default=12, help="early-stopping patience, epochs")
    ap.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads (per job)")
    ap.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel processes")
    ap.add_argument("--window", type=int, default=WINDOW, help="cycles per input window")
    ap.add_argument("--summaries", choices=["v1", "v2"], default=SUMMARIES,
                    help="window summaries of the stats and hybrid networks (v1: the served models')")
    ap.add_argument("--calibration", choices=["spline", "none"], default=CALIBRATION,
                    help="cv protocol: end the served graph with a monotone piecewise-linear map fitted on the "
                         "out-of-fold predictions (spline), or not (none)")
    ap.add_argument("--baseline", type=int, default=BASELINE,
                    help="each window row also carries its difference from the mean of the engine's first N "
                         "cycles (its early-life baseline; 0 = off)")
    ap.add_argument("--pool", action="store_true",
                    help="cv protocol: every fold model of a dataset also learns from the train engines of the other "
                         "datasets given (never held out nor scored; the normaliser is fitted on all of them)")
    ap.add_argument("--no-export", action="store_true", help="train and score only (architecture comparison)")
    ap.add_argument("--runs", type=Path, default=None,
                    help="where every finished seed leaves its record (numbers, test predictions, reference "
                         "outputs) and, while it is its data set's best-validation seed, its graph; a run resumes "
                         "from the records of the same configuration (default: <out>/training/runs; a fresh "
                         "temporary directory with --no-export)")
    ap.add_argument("--start-within", type=float, default=None, metavar="MINUTES",
                    help="no seed starts later than this after launch (the running ones finish): a long run "
                         "split over several sittings; each data set is exported once all its seeds are recorded")
    ap.add_argument("--only", type=int, nargs="+", default=None, metavar="SEED",
                    help="train only these of the seeds not yet recorded (another process may be training the "
                         "others into the same --runs)")
    ap.add_argument("--date", default=dt.date.today().isoformat(), help="training date written to the sidecar")
    args = ap.parse_args()
    if args.window < 1:
        ap.error("--window must be at least 1")
    if args.baseline < 0:
        ap.error("--baseline must be 0 (off) or a number of cycles")
    if args.jobs < 1 or args.threads < 1:
        ap.error("--jobs and --threads must be at least 1")
    if args.folds < 2:
        ap.error("--folds must be at least 2")
    if args.seeds < 1 or args.epochs < 1 or args.patience < 1:
        ap.error("--seeds, --epochs and --patience must be at least 1")
    if args.start_within is not None and args.start_within < 0:
        ap.error("--start-within must be a number of minutes, at least 0")
    if args.only is not None and any(not 0 <= s < args.seeds for s in args.only):
        ap.error(f"--only takes seeds of 0..{args.seeds - 1}")
    if args.start_within is not None and args.no_export and args.runs is None:
        ap.error("--start-within with --no-export needs --runs (records in a temporary directory are never resumed)")
    try:
        kinds = parse_arch(args.arch)
    except ValueError as e:
        ap.error(str(e))
    if len(kinds) > 1 and args.protocol != "cv":
        ap.error("--arch a+b needs --protocol cv")
    if args.pool and (args.protocol != "cv" or len(args.datasets) < 2):
        ap.error("--pool needs --protocol cv and at least two --datasets")
    WINDOW = args.window
    SUMMARIES = args.summaries
    CALIBRATION = args.calibration
    BASELINE = args.baseline
    if args.runs is None:
        import tempfile

        args.runs = Path(tempfile.mkdtemp(prefix="mantis-rul-runs-")) if args.no_export else args.out / "training" / "runs"
    args.runs.mkdir(parents=True, exist_ok=True)
    deadline = None if args.start_within is None else time.time() + 60.0 * args.start_within

    import tensorflow as tf
    import keras

    setup_tf(args.threads)

    sets, jobs = {}, []
    for ds in args.datasets:
        train = load_table(args.data / f"train_{ds}.txt")
        test = load_table(args.data / f"test_{ds}.txt")
        test_rul = np.loadtxt(args.data / f"RUL_{ds}.txt", dtype=np.float64).reshape(-1)
        others = [d for d in args.datasets if d != ds] if args.pool else []
        extra = [load_table(args.data / f"train_{d}.txt") for d in others]
        norm = fit_normaliser(np.concatenate([train, *extra]) if extra else train)
        extra_z = [normalise(e, norm) for t in extra for e in engines(t)] or None
        train_eng = engines(train)
        test_eng = engines(test)
        if len(test_eng) != len(test_rul):
            raise ValueError(f"{ds}: {len(test_eng)} test engines but {len(test_rul)} RUL lines")
        train_z = [normalise(e, norm) for e in train_eng]
        test_z = [normalise(e, norm) for e in test_eng]
        log(f"{ds}: {len(norm['centroids'])} regime(s), sensors kept: "
            f"{[SENSOR_COLUMNS[j] for j in norm['keep']]}")
        config = run_config(args, ds, others, args.data)
        ref_raw, ref_x = reference_batch(test_eng, test_z)
        records = {s: r for s in range(args.seeds) if (r := read_record(args.runs, ds, s, config)) is not None}
        if records:
            log(f"{ds}: seeds {sorted(records)} already recorded in {args.runs}")
            if not args.no_export:
                best = best_seed(records)
                if not record_path(args.runs, ds, best, "onnx").exists():
                    raise SystemExit(f"{ds}: the graph of seed {best}, the best recorded one of seeds 0..{args.seeds - 1}, "
                                     f"is not in {args.runs} (a run with more seeds dropped it): run with the seed "
                                     "count of that run, or delete the records to train again")
                keep_best_graph(args.runs, ds, records)
        sets[ds] = {"norm": norm, "others": others, "test_rul": test_rul, "ref_raw": ref_raw, "ref_x": ref_x,
                    "records": records}
        jobs += [(ds, args, s, train_z, test_z, test_rul, extra_z, ref_x, config, deadline, args.jobs > 1)
                 for s in range(args.seeds) if s not in records and (args.only is None or s in args.only)]

    def finished(ds, seed, rec):
        if rec is None:
            log(f"{ds} seed {seed}: not started (--start-within)")
            return
        sets[ds]["records"][seed] = rec
        if not args.no_export:
            keep_best_graph(args.runs, ds, sets[ds]["records"])

    if args.jobs == 1:
        for job in jobs:
            finished(*seed_job(job))
    else:
        # Seeds in parallel worker processes; each seed's numbers are the same as in one process
        # (seeded, deterministic ops, the same thread count); each leaves its record as it finishes.
        import concurrent.futures
        import multiprocessing

        with concurrent.futures.ProcessPoolExecutor(
            max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            try:
                for fut in concurrent.futures.as_completed([pool.submit(seed_job, job) for job in jobs]):
                    finished(*fut.result())
            except BaseException:
                # A failed seed stops the run now, not after every queued seed has trained.
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    missing = []
    for ds, st in sets.items():
        records = st["records"]
        if len(records) < args.seeds:
            log(f"{ds}: {len(records)} of {args.seeds} seeds recorded in {args.runs}; run again to train the rest")
            missing.append(ds)
            continue
        assemble(ds, args, st, tf, keras)
    return 0 if not missing else 3


def assemble(ds, args, st, tf, keras) -> None:
    """A data set's results once every seed is recorded: the numbers of all seeds, and the best-
    validation seed's graph with its sidecar."""
    runs = [st["records"][s]["run"] for s in range(args.seeds)]
    norm, others, ref_raw, ref_x = st["norm"], st["others"], st["ref_raw"], st["ref_x"]
    agg = {k: summary([r[k] for r in runs]) for k in
           ("test_rmse", "test_phm08", "test_coverage90", "q90", "val_rmse_capped", "cpu_seconds")}
    if args.protocol == "cv":
        agg |= {k: summary([r[k] for r in runs]) for k in ("test_rmse_members_mean", "oof_rmse_true_rul_le_150")}
        agg |= {k: summary([r[k] for r in runs]) for k in
                ("oof_rmse_uncalibrated", "oof_rmse_calibrated_cv", "test_rmse_uncalibrated") if k in runs[0]}
    log(f"{ds} {args.arch}: RMSE {agg['test_rmse']['mean']:.2f} ± {agg['test_rmse']['std']:.2f}, "
        f"PHM08 {agg['test_phm08']['mean']:.0f} ± {agg['test_phm08']['std']:.0f}, "
        f"coverage {agg['test_coverage90']['mean']:.3f} ± {agg['test_coverage90']['std']:.3f}")
    meta = {
        "dataset": ds, "arch": args.arch, "protocol": args.protocol, "date": args.date, "window": WINDOW, "label_cap": LABEL_CAP,
        "summaries": SUMMARIES, "calibration": CALIBRATION, "baseline": BASELINE, "pooled_with": others,
        "seeds": list(range(args.seeds)), "runs": runs, "summary": agg,
        "published_rmse": PUBLISHED.get(ds, {}),
        "software": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "numpy": np.__version__},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if not args.no_export else f"-{args.arch}-compare"
    res_path = args.out / "training" / f"results-{ds.lower()}{suffix}.json"
    res_path.parent.mkdir(parents=True, exist_ok=True)
    res_path.write_text(json.dumps(meta, indent=1) + "\n")
    if args.no_export:
        return

    # Export the seed with the best VALIDATION RMSE (the test set chooses nothing).
    best = best_seed(st["records"])
    rec = st["records"][best]
    src = record_path(args.runs, ds, best, "onnx")
    if not src.exists() or sha256(src) != rec["onnx_sha256"]:
        raise SystemExit(f"{src}: the graph of the best-validation seed is missing or does not match its record")
    onnx_path = args.out / f"rul-cmapss-{ds.lower()}.onnx"
    onnx_path.write_bytes(src.read_bytes())
    n_inputs = len(norm["keep"]) * (2 if BASELINE > 0 else 1)
    log(f"{ds}: exported seed {best}")
    r = rec["run"]
    sidecar = {
        "format": "mantis-rul-onnx/1",
        "name": f"rul-cmapss-{ds.lower()}",
        "onnx": onnx_path.name,
        "onnx_sha256": sha256(onnx_path),
        "arch": f"{args.arch}-ensemble{args.folds}" if args.protocol == "cv" else args.arch,
        "input": {"name": "window", "shape": ["batch", WINDOW, n_inputs], "dtype": "float32",
                  "layout": "oldest cycle first; front-padded by repeating the first row when the engine has fewer cycles"
                  + ("; per row the normalised sensors, then their differences from the baseline (the mean of the "
                     "normalised first min(baseline, cycles so far) cycles of the engine's life)" if BASELINE > 0 else "")},
        "output": {"name": "rul", "shape": ["batch", 1], "unit": "cycles",
                   "postprocess": "rul = max(raw, 0); interval [max(rul - q90, 0), rul + q90]"
                   + ("; raw already passes through the calibration map (training.calibration), part of the graph"
                      if r.get("calibration") == "spline" else "")},
        "window": WINDOW,
        **({"baseline": BASELINE} if BASELINE > 0 else {}),
        "label_cap": LABEL_CAP,
        "setting_columns": SETTING_COLUMNS,
        "sensor_columns": [SENSOR_COLUMNS[j] for j in norm["keep"]],
        "sensor_indices": [j for j in norm["keep"]],
        "regimes": {
            "method": f"k-means on the raw settings, smallest k with radius < {REGIME_RADIUS}; nearest centroid (Euclidean)",
            "centroids": norm["centroids"].tolist(),
            "mean": norm["mean"].tolist(),
            "std": norm["std"].tolist(),
        },
        "interval": {"method": ("cross-conformal" if args.protocol == "cv" else "split conformal")
                     + ", absolute residual against the unclipped true RUL",
                     "nominal_coverage": NOMINAL_COVERAGE, "q90": r["q90"],
                     "calibration": (f"every cut point with true RUL <= {CALIBRATION_MAX_RUL:g} of every train engine, "
                                     "scored by the fold model that did not learn from it (cross-fitting)"
                                     if args.protocol == "cv" else
                                     f"every cut point of the held-out calibration engines with true RUL <= {CALIBRATION_MAX_RUL:g}"),
                     "calibration_points": r["calibration_points"]},
        "training": {"date": args.date, "data": f"NASA C-MAPSS train_{ds}.txt (100 engines)"
                     + "".join(f" + train_{d}.txt (every fold model also learns from its engines)" for d in others),
                     "framework": f"tensorflow {tf.__version__} / keras {keras.__version__}, tf2onnx, opset 17",
                     "protocol": args.protocol, "summaries": SUMMARIES, "calibration": calibration_meta(r), "exported_seed": best,
                     "seeds": list(range(args.seeds)),
                     "split_of_exported_seed": r["split"]},
        "scores": {"exported_seed": {k: r[k] for k in ("val_rmse_capped", "test_rmse", "test_phm08", "test_coverage90")},
                   "over_seeds": agg, "test": f"test_{ds}.txt / RUL_{ds}.txt, last window per engine, unclipped truth",
                   "published_rmse": PUBLISHED.get(ds, {})},
        "reference": {"units": REF_UNITS, "raw_rows": ref_raw, "input": ref_x.tolist(),
                      "keras_output": rec["keras_output"],
                      "onnxruntime_output": rec["onnxruntime_output"],
                      "test_predictions": rec["test_predictions"]},
    }
    (args.out / f"rul-cmapss-{ds.lower()}.json").write_text(json.dumps(sidecar, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
