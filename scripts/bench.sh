#!/usr/bin/env bash
# Speed of the face engine on this machine, with the references measured in the same
# run: our candle engine (cargo bench, release) beside dlib / face_recognition and
# facenet-pytorch (in the venv that scripts/golden/generate.sh creates), then the
# end-to-end throughput.
#
#   bash scripts/bench.sh              # everything
#   bash scripts/bench.sh throughput   # only the end-to-end throughput
#
# Throughput: photos per minute of 30-face classroom photos (`attendance-worker
# synth-classroom`, 2000x1125 JPEG) through the whole system: 1 and 2
# `attendance-worker run` processes against PostgreSQL (a database of its own on
# TEST_DATABASE_URL's server, dropped afterwards) and RabbitMQ (a queue prefix of its
# own on TEST_AMQP_URL), each job from the queue to its records; and face_recognition on
# the same JPEGs with 1 and 2 processes (scripts/bench_throughput_reference.py).
# THROUGHPUT_PHOTOS (12) photos per run.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${BENCH_RUNS:-5}"
export MODEL_DIR="${MODEL_DIR:-$PWD/data/models}"
PHOTOS="${THROUGHPUT_PHOTOS:-12}"
DB_SERVER="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}"
AMQP="${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"

cargo build --release -q -p worker --bin attendance-worker
target/release/attendance-worker --model-dir "$MODEL_DIR" fetch-models --model all >/dev/null
# The references live in the golden venv, which generate.sh sets up.
bash scripts/golden/generate.sh --venv-only

# Our worker processes and face_recognition on the same synthesised photos.
throughput() {
    local dir ours1 ours2 ref
    dir=$(mktemp -d /tmp/classroom.XXXXXX)
    target/release/attendance-worker synth-classroom "$dir" --photos "$PHOTOS" --faces 30
    local worker=(target/release/attendance-worker --model-dir "$MODEL_DIR" --device cpu throughput
        --photos "$PHOTOS" --database-url "$DB_SERVER" --queue-url "$AMQP")
    echo "== throughput: ours, 1 worker process" >&2
    ours1=$(RUST_LOG=warn "${worker[@]}" --processes 1)
    echo "== throughput: ours, 2 worker processes" >&2
    ours2=$(RUST_LOG=warn "${worker[@]}" --processes 2)
    echo "== throughput: face_recognition, 1 and 2 processes" >&2
    ref=$(.venv-golden/bin/python scripts/bench_throughput_reference.py --photos-dir "$dir" --processes 1,2)
    rm -rf "$dir"
    OURS1="$ours1" OURS2="$ours2" REF="$ref" python3 -c '
import json, os
ours = [json.loads(os.environ["OURS1"]), json.loads(os.environ["OURS2"])]
ref = json.loads(os.environ["REF"])
ratio = {str(o["processes"]): round(o["photos_per_minute"] / r["photos_per_minute"], 2)
         for o, r in zip(ours, ref["runs"])}
print(json.dumps({"throughput": {"ours": ours, "face_recognition": ref,
                                 "ours_over_face_recognition": ratio}}, indent=2))
'
}

if [[ "${1:-}" == throughput ]]; then
    throughput
    exit 0
fi

echo "== ours (candle, CPU, release)" >&2
ours=$(BENCH_RUNS="$RUNS" cargo bench -q -p worker --bench engine 2>/dev/null)
echo "== reference (dlib / face_recognition / facenet-pytorch)" >&2
ref=$(.venv-golden/bin/python scripts/bench_reference.py --runs "$RUNS" --fixtures worker/tests/fixtures/faces)
echo "== reference (InsightFace ArcFace, onnxruntime)" >&2
bash scripts/golden/generate_insightface.sh --venv-only
ref_insightface=$(.venv-insightface/bin/python scripts/bench_reference_insightface.py --runs "$RUNS")

OURS="$ours" REF="$ref" REF_INSIGHTFACE="$ref_insightface" python3 - <<'PY'
import json, os
o = json.loads(os.environ["OURS"]); r = json.loads(os.environ["REF"])
ri = json.loads(os.environ["REF_INSIGHTFACE"])
print(json.dumps({"ours": o, "reference": r, "reference_insightface": ri}, indent=2))
PY
throughput
