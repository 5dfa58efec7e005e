#!/usr/bin/env bash
# Starts an S3-compatible server (s3s-fs) for tests and local development.
#   listens on   ${S3_HOST:-127.0.0.1}:${S3_PORT:-9000}
#   credentials  ${S3_ACCESS_KEY:-attendance} / ${S3_SECRET_KEY:-attendance-secret}
#   data         ${S3_DATA_DIR:-target/s3-data}   log: target/s3-server.log
# Installs s3s-fs (cargo install, a few minutes) when it is missing. Idempotent: if the
# port already answers HTTP, nothing is started.
set -euo pipefail
cd "$(dirname "$0")/.."

S3S_VERSION=0.14.1
host=${S3_HOST:-127.0.0.1}
port=${S3_PORT:-9000}
access_key=${S3_ACCESS_KEY:-attendance}
secret_key=${S3_SECRET_KEY:-attendance-secret}
data_dir=${S3_DATA_DIR:-target/s3-data}
log=target/s3-server.log

answers() { curl -s -o /dev/null --max-time 2 "http://$host:$port/"; }

if answers; then
  echo "S3 server already answering on $host:$port"
  exit 0
fi

if ! command -v s3s-fs >/dev/null; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v s3s-fs >/dev/null; then
  echo "installing s3s-fs $S3S_VERSION (cargo install, takes a few minutes)"
  cargo install s3s-fs --version "$S3S_VERSION" --features binary --locked
fi

mkdir -p "$data_dir" "$(dirname "$log")"
# setsid + nohup: the server outlives this script and the shell that ran it.
setsid nohup s3s-fs --host "$host" --port "$port" \
  --access-key "$access_key" --secret-key "$secret_key" \
  "$data_dir" >"$log" 2>&1 </dev/null &
echo $! > target/s3-server.pid

for _ in $(seq 1 60); do
  if answers; then
    echo "S3 server (s3s-fs, pid $(cat target/s3-server.pid)) up on http://$host:$port, data in $data_dir"
    exit 0
  fi
  if ! kill -0 "$(cat target/s3-server.pid)" 2>/dev/null; then
    echo "error: s3s-fs exited; see $log" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.5
done
echo "error: s3s-fs did not answer on $host:$port within 30 s; see $log" >&2
exit 1
