#!/usr/bin/env bash
# Runs every test: starts the servers the tests need, fetches the model weights once
# (cached in MODEL_DIR across runs), then the whole workspace's tests. Dependencies
# (candle's kernels above all) are optimised even in the test profile (Cargo.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

# Weights are downloaded once into a per-user cache and copied into data/models, where
# every test looks for them (MODEL_DIR for the engine, MODELS_DIR for the unit tests).
MODEL_CACHE="${MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/attendance/models}"
export MODEL_DIR="$PWD/data/models" MODELS_DIR="$PWD/data/models"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}"
export TEST_AMQP_URL="${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
export TEST_S3_ENDPOINT="${TEST_S3_ENDPOINT:-http://127.0.0.1:9000}"

# The face photos are committed (worker/tests/fixtures/faces), except the South-Asian
# set, whose licence keeps it out of the repository. Without it its tests return early
# (with CI=true they fail instead); they are named at the end as NOT RUN, never passed.
export SOUTH_ASIAN_DIR="${SOUTH_ASIAN_DIR:-$(cd .. && pwd)/shared/fixtures/faces/south_asian}"
if [ ! -d "$SOUTH_ASIAN_DIR/people" ]; then
  not_run=$(grep -rhoE 'fixtures::south_asian\("[a-z0-9_]+"\)' worker api --include='*.rs' |
    sed -E 's/.*\("([a-z0-9_]+)"\)/\1/' | sort -u | paste -sd' ' -)
  report_not_run() {
    echo "NOT RUN: the South-Asian recognition and parity tests ($not_run): no set at" \
      "$SOUTH_ASIAN_DIR (put it at ../shared/fixtures/faces/south_asian beside the checkout," \
      "or set SOUTH_ASIAN_DIR to a folder with people/<name>/*.jpg and groups/)" >&2
  }
  trap report_not_run EXIT
  if [ "${CI:-}" = true ]; then
    echo "error: CI=true and the South-Asian set is missing: its tests will fail" >&2
  fi
fi

# The production API links no face engine: without its default embedded-worker feature
# no candle crate is in its dependency tree.
api_tree=$(cargo tree -p api --no-default-features -e normal --prefix none)
candle=$(grep -c '^candle' <<<"$api_tree" || true)
if ! grep -q '^api v' <<<"$api_tree"; then
  echo "error: cargo tree did not list the api crate" >&2
  exit 1
elif [ "$candle" != 0 ]; then
  echo "error: attendance-api --no-default-features depends on $candle candle crates:" >&2
  cargo tree -p api --no-default-features -e normal -i candle-core >&2 || true
  exit 1
fi
echo "attendance-api --no-default-features links no candle crate"

bash scripts/services.sh

# The web UI's committed bundle (embedded in attendance-api) must be what its sources
# build; this also installs its npm dependencies.
bash scripts/web.sh check

cargo build --workspace --all-targets
# The binary just built: `cargo run -p worker` would resolve features for that crate
# alone and rebuild it.
"${CARGO_TARGET_DIR:-target}/debug/attendance-worker" --model-dir "$MODEL_CACHE" fetch-models --model all >/dev/null
mkdir -p "$MODEL_DIR"
for f in "$MODEL_CACHE"/*.pt "$MODEL_CACHE"/*.dat "$MODEL_CACHE"/*.onnx; do
  [ -e "$MODEL_DIR/$(basename "$f")" ] || cp "$f" "$MODEL_DIR/"
done
cargo test --workspace --no-fail-fast -- --test-threads "${TEST_THREADS:-2}"
# The web UI: Vitest, then the browser tests (Debian's Chromium, installed if missing)
# against the attendance-api just built; screenshots in target/ui-screenshots/.
bash scripts/web.sh test
# The shortened load-and-fault soak: its own PostgreSQL and S3 server, the shared
# RabbitMQ; fails unless every accepted upload is accounted for ("lost: 0").
bash scripts/soak.sh --short
