#!/usr/bin/env bash
# Runs every test: starts the servers the tests need, fetches the model weights once
# (cached in MODEL_DIR across runs), then the whole workspace's tests. Dependencies
# (candle's kernels above all) are optimised even in the test profile (Cargo.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

export MODEL_DIR="${MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/attendance/models}"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}"
export TEST_AMQP_URL="${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
export TEST_S3_ENDPOINT="${TEST_S3_ENDPOINT:-http://127.0.0.1:9000}"
export FIXTURES_DIR="${FIXTURES_DIR:-$(cd .. && pwd)/shared/fixtures/faces}"
# In CI a missing server is a failure, never a skip.
export REQUIRE_SERVICES=1

bash scripts/services.sh

cargo build --workspace --all-targets
cargo run -q -p worker --bin attendance-worker -- fetch-models >/dev/null
cargo test --workspace --no-fail-fast -- --test-threads "${TEST_THREADS:-2}"
