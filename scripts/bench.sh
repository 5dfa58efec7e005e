#!/usr/bin/env bash
# Speed of the face engine on this machine, with the references measured in the same
# run: our candle engine (cargo bench, release) beside dlib / face_recognition and
# facenet-pytorch (in the venv that scripts/golden/generate.sh creates).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${BENCH_RUNS:-5}"
export MODEL_DIR="${MODEL_DIR:-$PWD/data/models}"

cargo build --release -q -p worker --bin attendance-worker
target/release/attendance-worker --model-dir "$MODEL_DIR" fetch-models >/dev/null
# The references live in the golden venv, which generate.sh sets up.
bash scripts/golden/generate.sh --venv-only

echo "== ours (candle, CPU, release)" >&2
ours=$(BENCH_RUNS="$RUNS" cargo bench -q -p worker --bench engine 2>/dev/null)
echo "== reference (dlib / face_recognition / facenet-pytorch)" >&2
ref=$(.venv-golden/bin/python scripts/bench_reference.py --runs "$RUNS" --fixtures worker/tests/fixtures/faces)

OURS="$ours" REF="$ref" python3 - <<'PY'
import json, os
o = json.loads(os.environ["OURS"]); r = json.loads(os.environ["REF"])
print(json.dumps({"ours": o, "reference": r}, indent=2))
PY
