#!/usr/bin/env python3
"""Candidate study of the deep RUL model (the "Window length" table of models/README.md).

Trains one candidate on the fit engines of the given seeds' splits (train_rul.split_engines) and
prints validation figures only: RMSE with capped labels over the validation engines' full
windows, and RMSE against the unclipped truth over every cut point with true RUL <= 150 (the
figure the table compares). The test set is read only with --test, never for a choice.

    ~/.cache/mantis/venv-rul/bin/python models/training/window_study.py --window 50 --pad
"""
import argparse, sys, time, os
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import train_rul as T

ap = argparse.ArgumentParser()
ap.add_argument("--ds", default="FD001")
ap.add_argument("--splits", type=int, nargs="+", default=[0, 1])
ap.add_argument("--window", type=int, default=30)
ap.add_argument("--alpha", type=float, default=0.0)  # in-graph EWMA; 0 = off
ap.add_argument("--units", type=int, default=64)
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--batch", type=int, default=256)
ap.add_argument("--patience", type=int, default=12)
ap.add_argument("--epochs", type=int, default=80)
ap.add_argument("--dropout", type=float, default=0.3)
ap.add_argument("--noise", type=float, default=0.0)
ap.add_argument("--arch", default="lstm")
ap.add_argument("--test", action="store_true")
ap.add_argument("--tag", default="")
ap.add_argument("--base", type=int, default=0)
ap.add_argument("--pad", action="store_true")
ap.add_argument("--baseonly", action="store_true")
a = ap.parse_args()
T.WINDOW = a.window
import tensorflow as tf, keras
tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(1)

def ewma_matrix(w, alpha):
    A = np.zeros((w, w), np.float32)
    for t in range(w):
        k = np.arange(t + 1)
        wt = (1 - alpha) ** (t - k)
        A[t, : t + 1] = wt / wt.sum()
    return A

def build(nf, seed):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((a.window, nf), name="window")
    x = inp
    if a.alpha > 0:
        x = keras.layers.Permute((2, 1))(x)
        d = keras.layers.Dense(a.window, use_bias=False, trainable=False, name="ewma")
        x = d(x)
        d.set_weights([ewma_matrix(a.window, a.alpha).T])
        x = keras.layers.Permute((2, 1))(x)
    if a.noise > 0:
        x = keras.layers.GaussianNoise(a.noise)(x)
    if a.arch == "lstm":
        x = keras.layers.LSTM(a.units, return_sequences=True)(x)
        x = keras.layers.LSTM(a.units)(x)
        x = keras.layers.Dropout(a.dropout)(x)
        x = keras.layers.Dense(32, activation="relu")(x)
    elif a.arch == "cnnlstm":
        x = keras.layers.Conv1D(32, 5, padding="same", activation="relu")(x)
        x = keras.layers.LSTM(a.units, return_sequences=True)(x)
        x = keras.layers.LSTM(a.units)(x)
        x = keras.layers.Dropout(a.dropout)(x)
        x = keras.layers.Dense(32, activation="relu")(x)
    elif a.arch == "mlp":
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(128, activation="relu")(x)
        x = keras.layers.Dropout(a.dropout)(x)
        x = keras.layers.Dense(64, activation="relu")(x)
    out = keras.layers.Dense(1)(x)
    out = keras.layers.Rescaling(T.LABEL_CAP, name="rul")(out)
    m = keras.Model(inp, out)
    m.compile(optimizer=keras.optimizers.Adam(a.lr), loss="mse")
    return m

ap_data = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cmapss"
data = ap_data
train = T.load_table(data / f"train_{a.ds}.txt"); test = T.load_table(data / f"test_{a.ds}.txt")
test_rul = np.loadtxt(data / f"RUL_{a.ds}.txt").reshape(-1)
norm = T.fit_normaliser(train)
train_z = [T.normalise(e, norm) for e in T.engines(train)]
test_z = [T.normalise(e, norm) for e in T.engines(test)]
if a.base:
    def addb(z):
        b = z[: a.base].mean(0, keepdims=True)
        return (z - b) if a.baseonly else np.concatenate([z, z - b], axis=1)
    train_z = [addb(z) for z in train_z]; test_z = [addb(z) for z in test_z]
out = []
for s in a.splits:
    fit_idx, val_idx, cal_idx = T.split_engines(len(train_z), s)
    xf, yf, _ = T.windows_of([train_z[i] for i in fit_idx], full_only=not a.pad)
    xv, yv, tv = T.windows_of([train_z[i] for i in val_idx])
    m = build(xf.shape[2], s)
    cbs = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=a.patience, restore_best_weights=True),
           keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(5, a.patience // 2), min_lr=1e-5)]
    t0 = time.time()
    h = m.fit(xf, yf, validation_data=(xv, yv), epochs=a.epochs, batch_size=a.batch, callbacks=cbs, verbose=0, shuffle=True)
    vl = h.history["val_loss"]
    # val last-window-like: cut points of val engines with true RUL <= 150, unclipped
    xc, _, tc = T.windows_of([train_z[i] for i in val_idx], full_only=False)
    mk = tc <= 150
    pv = T.postprocess(m.predict(xc[mk], batch_size=2048, verbose=0))
    r = {"split": s, "best_epoch": int(np.argmin(vl)) + 1, "epochs": len(vl), "val_capped": round(float(np.sqrt(min(vl))), 3),
         "val_true150": round(T.rmse(pv, tc[mk]), 3), "secs": round(time.time() - t0)}
    if a.test:
        xt = np.stack([T.last_window(z, len(z) - 1) for z in test_z])
        p = T.postprocess(m.predict(xt, verbose=0))
        r["test"] = round(T.rmse(p, test_rul), 3)
    print(a.tag, r, flush=True)
    out.append(r)
print(a.tag, "MEAN val_capped", round(np.mean([r["val_capped"] for r in out]), 3), "val_true150", round(np.mean([r["val_true150"] for r in out]), 3), flush=True)
