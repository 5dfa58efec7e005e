#!/usr/bin/env bash
# Registration batch benchmark (not a test): the real release binaries
# (`attendance-api` without the embedded worker, and `attendance-worker`) over
# PostgreSQL, RabbitMQ and S3 (scripts/services.sh). For each size it synthesises a
# batch from the committed fixture photos (one folder of two photos per roll number),
# uploads it, waits until every student is registered, and prints students per minute
# and the peak resident memory (VmHWM) of the API and the worker. The API's peak must
# not grow with the ZIP: the upload streams to S3 (multipart) and the worker streams
# it back to a temporary file.
#
#   bash scripts/bench_batch.sh               # 100 and 500 students
#   SIZES="500" WORKERS=2 bash scripts/bench_batch.sh
#   PROFILE=dev bash scripts/bench_batch.sh  # the dev build (its engine crates are optimised too)
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES="${SIZES:-100 500}"
WORKERS="${WORKERS:-1}"
PG="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}"
AMQP="${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
S3="${TEST_S3_ENDPOINT:-http://127.0.0.1:9000}"
S3_KEY="${TEST_S3_ACCESS_KEY:-attendance}"
S3_SECRET="${TEST_S3_SECRET_KEY:-attendance-secret}"
export MODEL_DIR="${MODEL_DIR:-$PWD/data/models}"

PROFILE="${PROFILE:-release}"
cargo build --profile "$PROFILE" -p api -p worker --no-default-features
BIN="${CARGO_TARGET_DIR:-target}/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

peak_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

# A batch of $1 students from the fixture people (photos reused round-robin).
synthesise() {
  python3 - "$1" "$2" <<'PY'
import os, sys, zipfile
n, out = int(sys.argv[1]), sys.argv[2]
root = "worker/tests/fixtures/faces/people"
photos = sorted(os.path.join(root, p, f) for p in os.listdir(root) for f in os.listdir(os.path.join(root, p)))
with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
    lines = ["roll_no,name,class"]
    for i in range(n):
        roll = f"B{i:05d}"
        lines.append(f"{roll},Student {i},")
        for j in range(2):
            z.write(photos[(2 * i + j) % len(photos)], f"{roll}/{j}.jpg")
    z.writestr("students.csv", "\n".join(lines) + "\n")
PY
}

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {'d': d}))" "$1"; }

printf '%-9s %-9s %-10s %-12s %-14s %-14s\n' students zip_MB seconds students/min api_VmHWM_MB worker_VmHWM_MB
for n in $SIZES; do
  run="bench$(date +%s%N | tail -c 9)"
  psql "$PG/postgres" -qc "CREATE DATABASE $run" >/dev/null
  bucket="$run"
  export DATABASE_URL="$PG/$run"
  export QUEUE_URL="$AMQP?prefix=$run"
  export STORAGE_URL="s3://$bucket?region=us-east-1&endpoint=$S3&access_key=$S3_KEY&secret_key=$S3_SECRET"
  export DATA_DIR="$work/$run" RUST_LOG=warn
  # A signed CreateBucket (curl's SigV4), as the S3 server wants.
  curl -sf -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_KEY:$S3_SECRET" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$S3/$bucket" >/dev/null
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  BIND="127.0.0.1:$port" "$BIN/attendance-api" serve >"$work/api-$n.log" 2>&1 &
  api=$!; pids+=("$api")
  for _ in $(seq 300); do grep -q "listening on" "$work/api-$n.log" && break; sleep 0.2; done
  worker_pids=()
  for _ in $(seq "$WORKERS"); do
    "$BIN/attendance-worker" run >>"$work/worker-$n.log" 2>&1 &
    worker_pids+=($!); pids+=($!)
  done
  base="http://127.0.0.1:$port"; key=$(cat "$DATA_DIR/admin.key")
  class=$(curl -sf -H "Authorization: Bearer $key" -H 'content-type: application/json' \
    -d '{"name":"Bench","department":"CSE","year":1,"section":"A"}' "$base/classes" | json 'd["id"]')
  synthesise "$n" "$work/batch-$n.zip"
  mb=$(du -m "$work/batch-$n.zip" | cut -f1)
  start=$(date +%s.%N)
  batch=$(curl -sf -H "Authorization: Bearer $key" -F "class_id=$class" \
    -F "file=@$work/batch-$n.zip" "$base/students/batches" | json 'd["batch_id"]')
  while :; do
    status=$(curl -sf -H "Authorization: Bearer $key" "$base/students/batches/$batch" | json 'd["status"]')
    [ "$status" = completed ] || [ "$status" = failed ] && break
    sleep 1
  done
  end=$(date +%s.%N)
  counts=$(curl -sf -H "Authorization: Bearer $key" "$base/students/batches/$batch" | json 'd["counts"]')
  secs=$(python3 -c "print(f'{$end - $start:.1f}')")
  rate=$(python3 -c "print(f'{$n * 60 / ($end - $start):.1f}')")
  api_mb=$(( $(peak_kb "$api") / 1024 ))
  worker_mb=0
  for w in "${worker_pids[@]}"; do worker_mb=$(( worker_mb > $(peak_kb "$w") / 1024 ? worker_mb : $(peak_kb "$w") / 1024 )); done
  printf '%-9s %-9s %-10s %-12s %-14s %-14s\n' "$n" "$mb" "$secs" "$rate" "$api_mb" "$worker_mb"
  echo "  $status: $counts" >&2
  kill "$api" "${worker_pids[@]}" 2>/dev/null || true
  wait "$api" "${worker_pids[@]}" 2>/dev/null || true
  psql "$PG/postgres" -qc "DROP DATABASE $run WITH (FORCE)" >/dev/null || true
done
