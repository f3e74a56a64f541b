#!/usr/bin/env bash
# Builds MANTIS (release) and runs the demo: all seven services in one process over embedded
# infrastructure in ./data, with a simulated plant. Extra arguments go to `mantis`
# (e.g. `./scripts/demo.sh --config mantis.toml`).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --locked -p mantis -- demo "$@"
