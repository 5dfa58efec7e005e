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
export FIXTURES_DIR="${FIXTURES_DIR:-$(cd .. && pwd)/shared/fixtures/faces}"
if [ ! -f "$FIXTURES_DIR/labels.json" ]; then
  echo "error: no face fixtures at $FIXTURES_DIR (expected ../shared/fixtures/faces beside the checkout; set FIXTURES_DIR)" >&2
  exit 1
fi

bash scripts/services.sh

cargo build --workspace --all-targets
# The binary just built: `cargo run -p worker` would resolve features for that crate
# alone and rebuild it.
"${CARGO_TARGET_DIR:-target}/debug/attendance-worker" --model-dir "$MODEL_CACHE" fetch-models --model all >/dev/null
mkdir -p "$MODEL_DIR"
for f in "$MODEL_CACHE"/*.pt "$MODEL_CACHE"/*.dat "$MODEL_CACHE"/*.onnx; do
  [ -e "$MODEL_DIR/$(basename "$f")" ] || cp "$f" "$MODEL_DIR/"
done
cargo test --workspace --no-fail-fast -- --test-threads "${TEST_THREADS:-2}"
