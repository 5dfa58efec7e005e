#!/usr/bin/env bash
# Load and fault soak (issue 9, item 7). Starts its OWN PostgreSQL cluster (initdb in a
# temp dir, free port) and its OWN S3 server (s3s-fs, free port), uses the shared
# RabbitMQ under a queue prefix of its own, and runs the built `attendance-api`
# (production mode: QUEUE_URL=amqp, no in-process worker) and `attendance-worker`
# (as SCHED_IDLE, as infra/systemd runs it on a server shared with the API: on 2 cores
# it gets the CPU the API, PostgreSQL and RabbitMQ leave). Every loop is bounded and
# stops by itself.
#
#   load     SOAK_CLIENTS (50) clients upload classroom photos (the fixtures'
#            groups/, their people registered in the class) for SOAK_SECONDS (60),
#            each pausing a random time (exponential, mean SOAK_THINK (2) s) between
#            uploads, as independent teachers do (api/examples/upload_load.rs)
#   kill     worker killed with SIGKILL SOAK_KILLS (10) times, restarted each time
#   rabbit   our RabbitMQ connections closed (rabbitmqctl close_connection, only the
#            API's and worker's own); with SOAK_RESTART_RABBITMQ=1 also a real
#            `rabbitmqctl stop_app; start_app` (disturbs every other user of it)
#   s3       the S3 server stopped for SOAK_S3_DOWN (30) seconds
#   postgres the PostgreSQL cluster restarted
# each fault with SOAK_FAULT_CLIENTS (4) clients uploading meanwhile (SOAK_FAULT_THINK
# (0.5) s apart on average) for SOAK_FAULT_SECONDS (SOAK_SECONDS). Then it waits
# (at most SOAK_DRAIN (1200) s) for every job to end, and checks against the database
# and the bucket that every accepted upload (202) has its photo stored, its job
# finished (or failed with a reason) and exactly one record per student; it prints
# the table and "lost: 0" only when that holds, and exits non-zero otherwise.
#
#   bash scripts/soak.sh            # the full run (about 6 minutes plus the drain)
#   bash scripts/soak.sh --short    # a few seconds of each phase (scripts/test.sh)
#   PROFILE=dev bash scripts/soak.sh   # the dev build (--short's default)
set -euo pipefail
cd "$(dirname "$0")/.."

short=0
[ "${1:-}" = --short ] && short=1
if [ "$short" = 1 ]; then
  : "${SOAK_SECONDS:=4}" "${SOAK_CLIENTS:=4}" "${SOAK_KILLS:=2}" "${SOAK_S3_DOWN:=3}"
  : "${SOAK_FAULT_CLIENTS:=1}" "${SOAK_FAULT_THINK:=1}" "${SOAK_DRAIN:=300}" "${PROFILE:=dev}"
fi
SOAK_SECONDS="${SOAK_SECONDS:-60}"
SOAK_CLIENTS="${SOAK_CLIENTS:-50}"
SOAK_THINK="${SOAK_THINK:-2}"
SOAK_FAULT_CLIENTS="${SOAK_FAULT_CLIENTS:-4}"
SOAK_FAULT_THINK="${SOAK_FAULT_THINK:-0.5}"
SOAK_KILLS="${SOAK_KILLS:-10}"
SOAK_S3_DOWN="${SOAK_S3_DOWN:-30}"
SOAK_DRAIN="${SOAK_DRAIN:-1200}"
PROFILE="${PROFILE:-release}"
AMQP="${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
S3_KEY=soak S3_SECRET=soak-secret
export MODEL_DIR="${MODEL_DIR:-$PWD/data/models}"

# In the dev profile the very build scripts/test.sh made (same targets, same features:
# nothing to rebuild); in release the two binaries.
if [ "$PROFILE" = dev ]; then
  cargo build --workspace --all-targets
else
  cargo build --profile "$PROFILE" -p api -p worker
  cargo build --profile "$PROFILE" -p api --example upload_load
fi
BIN="${CARGO_TARGET_DIR:-target}/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
command -v s3s-fs >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
command -v s3s-fs >/dev/null || { echo "error: s3s-fs missing (bash scripts/s3-server.sh installs it)" >&2; exit 1; }

work=$(mktemp -d /tmp/soak.XXXXXX)
chmod 755 "$work"
pids=()
api_pid="" worker_pid="" s3_pid=""
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for pid in "${pids[@]}" $api_pid $worker_pid $s3_pid; do kill "$pid" 2>/dev/null || true; done
  as_pg "$PGBIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  if [ -n "${prefix:-}" ]; then
    for q in $(rabbitmqctl -q list_queues name 2>/dev/null | grep "^$prefix" || true); do
      rabbitmqctl -q delete_queue "$q" >/dev/null 2>&1 || true
    done
  fi
  [ -n "${SOAK_KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
log() { echo "[soak $(date +%T)] $*" >&2; }

# --- our own PostgreSQL and S3 server -----------------------------------------
pg_port=$(free_port)
mkdir -p "$work/pg" && chown postgres "$work/pg" 2>/dev/null || true
as_pg "$PGBIN/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
pg_start() {
  as_pg "$PGBIN/pg_ctl" -D "$work/pg" -l "$work/pg/server.log" -w \
    -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
}
pg_start
psql -q "postgres://postgres@127.0.0.1:$pg_port/postgres" -c "CREATE DATABASE soak"
DB="postgres://postgres@127.0.0.1:$pg_port/soak"

s3_port=$(free_port)
bucket=soak
mkdir -p "$work/s3/$bucket"
s3_start() {
  s3s-fs --host 127.0.0.1 --port "$s3_port" --access-key "$S3_KEY" --secret-key "$S3_SECRET" \
    "$work/s3" >>"$work/s3.log" 2>&1 &
  s3_pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$s3_port/" && return; sleep 0.1; done
  echo "error: s3s-fs did not start" >&2; exit 1
}
s3_start

# --- the API and the worker ------------------------------------------------------
prefix="soak$(date +%s%N | tail -c 9)"
api_port=$(free_port)
export DATABASE_URL="$DB" QUEUE_URL="$AMQP?prefix=$prefix" DATA_DIR="$work/data" RUST_LOG="${RUST_LOG:-warn}"
export STORAGE_URL="s3://$bucket?region=us-east-1&endpoint=http://127.0.0.1:$s3_port&access_key=$S3_KEY&secret_key=$S3_SECRET"
BIND="127.0.0.1:$api_port" "$BIN/attendance-api" serve >>"$work/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 600); do grep -q "listening on" "$work/api.log" && break; sleep 0.2; done
grep -q "listening on" "$work/api.log" || { cat "$work/api.log" >&2; exit 1; }
# As infra/systemd's unit runs it: SCHED_IDLE, on the CPU nothing else wants.
# SOAK_WORKER_SCHED=nice: under `nice -n 10` instead (the earlier runs' setting).
case "${SOAK_WORKER_SCHED:-idle}" in
  idle) worker_sched=(chrt --idle 0) ;;
  nice) worker_sched=(nice -n 10) ;;
  *) echo "error: SOAK_WORKER_SCHED is idle or nice" >&2; exit 2 ;;
esac
worker_start() {
  "${worker_sched[@]}" "$BIN/attendance-worker" run >>"$work/worker.log" 2>&1 &
  worker_pid=$!
}
worker_start
base="http://127.0.0.1:$api_port"
key=$(cat "$DATA_DIR/admin.key")
auth=(-H "Authorization: Bearer $key")
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {'d': d}))" "$1"; }

# --- the class: the fixtures' people, and their group photos as classroom photos ---
fixtures=worker/tests/fixtures/faces
class=$(curl -sf "${auth[@]}" -H 'content-type: application/json' \
  -d '{"name":"Soak","department":"CSE","year":1,"section":"A"}' "$base/classes" | json 'd["id"]')
students=0
jobs=()
for person in $(python3 -c "import json; print(' '.join(json.load(open('$fixtures/labels.json'))['people']))"); do
  form=(-F "class_id=$class" -F "roll_no=$person" -F "name=$person")
  for photo in $(python3 -c "import json; print(' '.join(json.load(open('$fixtures/labels.json'))['people']['$person']))"); do
    form+=(-F "photos=@$fixtures/$photo")
  done
  jobs+=("$(curl -sf "${auth[@]}" "${form[@]}" "$base/students/register" | json 'd["job_id"]')")
  students=$((students + 1))
done
for job in "${jobs[@]}"; do
  for _ in $(seq 600); do
    status=$(curl -sf "${auth[@]}" "$base/jobs/$job" | json 'd["status"]')
    [ "$status" = succeeded ] || [ "$status" = failed ] && break
    sleep 0.5
  done
done
log "class of $students students registered"
photos=("$fixtures"/groups/*.jpg)

load() { # phase clients seconds think
  "$BIN/examples/upload_load" --base "$base" --key "$key" --class "$class" \
    --phase "$1" --clients "$2" --seconds "$3" --think "$4" --out "$work/requests.jsonl" "${photos[@]}"
}
# The API's and the worker's own connections to RabbitMQ, by their client ports.
close_our_rabbitmq_connections() {
  local ports
  ports=$(ss -tnpH state established '( dport = :5672 )' 2>/dev/null |
    grep -E "pid=($api_pid|$worker_pid)," | awk '{print $3}' | sed 's/.*://' | sort -u)
  log "our RabbitMQ client ports: $(echo $ports)"
  rabbitmqctl -q list_connections pid peer_port 2>/dev/null | while read -r pid port; do
    if grep -qx "$port" <<<"$ports"; then
      rabbitmqctl -q close_connection "$pid" "soak: connection closed on purpose" </dev/null >/dev/null || true
      echo closed
    fi
  done | wc -l
}

# --- phases ----------------------------------------------------------------------------
log "load: $SOAK_CLIENTS clients for $SOAK_SECONDS s"
load load "$SOAK_CLIENTS" "$SOAK_SECONDS" "$SOAK_THINK"

fault_seconds=${SOAK_FAULT_SECONDS:-$SOAK_SECONDS}
log "kill: the worker killed $SOAK_KILLS times"
load kill "$SOAK_FAULT_CLIENTS" "$fault_seconds" "$SOAK_FAULT_THINK" &
loader=$!
interval=$(python3 -c "print(max(0.5, $fault_seconds / $SOAK_KILLS))")
for _ in $(seq "$SOAK_KILLS"); do
  sleep "$interval"
  kill -9 "$worker_pid" 2>/dev/null || true
  wait "$worker_pid" 2>/dev/null || true
  worker_start
done
wait "$loader"

log "rabbit: closing our connections"
load rabbit "$SOAK_FAULT_CLIENTS" "$fault_seconds" "$SOAK_FAULT_THINK" &
loader=$!
sleep "$(python3 -c "print($fault_seconds / 3)")"
closed=$(close_our_rabbitmq_connections)
log "closed $closed connections"
if [ "${SOAK_RESTART_RABBITMQ:-0}" = 1 ]; then
  log "rabbit: stop_app; start_app"
  rabbitmqctl -q stop_app && rabbitmqctl -q start_app
fi
wait "$loader"

log "s3: stopped for $SOAK_S3_DOWN s"
load s3 "$SOAK_FAULT_CLIENTS" "$(python3 -c "print($fault_seconds + $SOAK_S3_DOWN)")" "$SOAK_FAULT_THINK" &
loader=$!
sleep "$(python3 -c "print($fault_seconds / 3)")"
kill "$s3_pid"; wait "$s3_pid" 2>/dev/null || true
sleep "$SOAK_S3_DOWN"
s3_start
wait "$loader"

log "postgres: restart"
load postgres "$SOAK_FAULT_CLIENTS" "$fault_seconds" "$SOAK_FAULT_THINK" &
loader=$!
sleep "$(python3 -c "print($fault_seconds / 3)")"
as_pg "$PGBIN/pg_ctl" -D "$work/pg" -m fast -w restart \
  -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1" >/dev/null
wait "$loader"

kill -0 "$api_pid" || { echo "error: the API died" >&2; tail -50 "$work/api.log" >&2; exit 1; }

# --- drain and check ---------------------------------------------------------------------
log "waiting (at most $SOAK_DRAIN s) for every job to end"
sql() { psql -qAt "$DB" -c "$1"; }
end=$(( $(date +%s) + SOAK_DRAIN ))
while :; do
  open=$(sql "SELECT count(*) FROM jobs WHERE status NOT IN ('succeeded','failed')" || echo "?")
  [ "$open" = 0 ] && break
  if [ "$(date +%s)" -ge "$end" ]; then log "$open jobs still open"; break; fi
  kill -0 "$worker_pid" 2>/dev/null || worker_start
  sleep 2
done
mkdir -p "$work/dump"
csv() { psql -q "$DB" -c "\\copy ($1) TO '$work/dump/$2' WITH CSV"; }
csv "SELECT id, status, coalesce(error, ''), coalesce(to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '') FROM jobs" jobs.csv
csv "SELECT id FROM attendance_sessions" sessions.csv
csv "SELECT session_id, blob_key FROM session_photos" photos.csv
csv "SELECT session_id, student_id, count(*) FROM attendance_records GROUP BY 1, 2" records.csv

echo
echo "soak: $SOAK_CLIENTS clients for $SOAK_SECONDS s (think $SOAK_THINK s), then faults with $SOAK_FAULT_CLIENTS clients;"
echo "      profile $PROFILE, worker under ${worker_sched[*]} beside the API on $(nproc) cores; 503 = refused on purpose (backlog, dependency down)"
python3 scripts/soak_load.py check --requests "$work/requests.jsonl" --db-dump "$work/dump" \
  --bucket-dir "$work/s3/$bucket" --students "$students"
