#!/usr/bin/env bash
# Peak memory of the worker on one large photo: synthesises a ~100 MP JPEG and PNG (a
# fixture group photo upscaled to 12000×8300) and a 12 MP one for comparison, runs the
# worker's `process-photo` (what an attendance job does with one photo: decode, detect,
# embed, crop) on each under /usr/bin/time -v, and prints the peak RSS. Fails when a
# photo needs more than LIMIT_MB (default 1500, the issue's 1.5 GB).
#
#   scripts/bench_memory.sh            # release build
#   PROFILE=dev scripts/bench_memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export MODEL_DIR="${MODEL_DIR:-$PWD/data/models}"
PROFILE="${PROFILE:-release}"
LIMIT_MB="${LIMIT_MB:-1500}"
DEVICE="${DEVICE:-cpu}"

if [ "$PROFILE" = release ]; then
  cargo build --release -q -p worker --bin attendance-worker --example large_photo
  bin=target/release
else
  cargo build -q -p worker --bin attendance-worker --example large_photo
  bin=target/debug
fi
"$bin/attendance-worker" --model-dir "$MODEL_DIR" fetch-models >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/examples/large_photo" "$work/100mp.jpg" 12000 8300
"$bin/examples/large_photo" "$work/100mp.png" 12000 8300
"$bin/examples/large_photo" "$work/12mp.jpg" 4000 3000

printf '%-10s %-12s %-12s %6s %12s %8s\n' photo size working faces "peak RSS MB" "wall s"
failed=0
for photo in 12mp.jpg 100mp.jpg 100mp.png; do
  /usr/bin/time -v -o "$work/time.txt" \
    "$bin/attendance-worker" --model-dir "$MODEL_DIR" --device "$DEVICE" \
    process-photo "$work/$photo" >"$work/out.json"
  rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
  read -r size working faces < <(python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
print("%dx%d %dx%d %d" % (o["width"], o["height"], o["working_width"], o["working_height"], len(o["faces"])))
' "$work/out.json")
  rss_mb=$((rss_kb * 1024 / 1000000))
  printf '%-10s %-12s %-12s %6s %12s %8s\n' "$photo" "$size" "$working" "$faces" "$rss_mb" "$wall"
  echo "peak RSS $photo: $rss_mb MB" >&2
  if [ "$rss_mb" -gt "$LIMIT_MB" ]; then
    echo "FAIL: $photo needed $rss_mb MB, more than $LIMIT_MB MB" >&2
    failed=1
  fi
done
exit "$failed"
