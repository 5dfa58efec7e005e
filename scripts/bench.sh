#!/usr/bin/env bash
# Speed of the face engine on this machine, with the references measured in the same
# run: our candle engine (cargo bench, release) beside dlib / face_recognition and
# facenet-pytorch (in the venv that scripts/golden/generate.sh creates).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${BENCH_RUNS:-5}"
export MODEL_DIR="${MODEL_DIR:-$PWD/data/models}"
export FIXTURES_DIR="${FIXTURES_DIR:-$(cd .. && pwd)/shared/fixtures/faces}"

cargo build --release -q -p worker --bin attendance-worker
target/release/attendance-worker --model-dir "$MODEL_DIR" fetch-models >/dev/null
# The references live in the golden venv, which generate.sh sets up.
bash scripts/golden/generate.sh --venv-only

echo "== ours (candle, CPU, release)" >&2
ours=$(BENCH_RUNS="$RUNS" cargo bench -q -p worker --bench engine 2>/dev/null)
echo "== reference (dlib / face_recognition / facenet-pytorch)" >&2
ref=$(.venv-golden/bin/python scripts/bench_reference.py --runs "$RUNS" --fixtures "$FIXTURES_DIR")
echo "== reference (InsightFace ArcFace, onnxruntime)" >&2
bash scripts/golden/generate_insightface.sh --venv-only
ref_insightface=$(.venv-insightface/bin/python scripts/bench_reference_insightface.py --runs "$RUNS")

OURS="$ours" REF="$ref" REF_INSIGHTFACE="$ref_insightface" python3 - <<'PY'
import json, os
o = json.loads(os.environ["OURS"]); r = json.loads(os.environ["REF"])
ri = json.loads(os.environ["REF_INSIGHTFACE"])
print(json.dumps({"ours": o, "reference": r, "reference_insightface": ri}, indent=2))
PY
