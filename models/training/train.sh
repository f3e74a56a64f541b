#!/usr/bin/env bash
# Retrains and re-exports the deep RUL models (models/rul-cmapss-*.onnx + .json sidecars).
#   models/training/train.sh [extra train_rul.py arguments]
# Makes a pinned virtualenv under ~/.cache/mantis/venv-rul on first use (~600 MB, CPU-only
# TensorFlow), then trains at the lowest CPU priority. About 2 h on 2 cores (2026-12-03: FD001
# 70 min, FD003 42 min); `--pool` (the served sixth version) about twice that. Each finished seed is recorded in
# models/training/runs, so an interrupted run resumes where it stopped (`--start-within MINUTES`:
# no seed starts later; exit status 3 while seeds remain).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${MANTIS_RUL_VENV:-$HOME/.cache/mantis/venv-rul}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --progress-bar off -r models/training/requirements.txt
exec nice -n 19 "$VENV/bin/python" models/training/train_rul.py \
  --data ../shared/data/cmapss --out models/ --arch hybrid+stats --protocol cv --folds 5 --seeds 5 --epochs 80 \
  --patience 8 --threads 1 --jobs 2 "$@"
