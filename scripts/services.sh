#!/usr/bin/env bash
# Makes sure the servers the tests talk to are installed and running:
# PostgreSQL (127.0.0.1:5432), RabbitMQ (127.0.0.1:5672) and an S3-compatible server
# (s3s-fs on 127.0.0.1:9000). Idempotent: what already runs is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then echo "$name is up"; return 0; fi
    sleep 1
  done
  echo "error: $name did not come up" >&2
  return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# PostgreSQL
if ! command -v pg_isready >/dev/null; then apt_install postgresql; fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  as_root service postgresql start || true
fi
wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432

# RabbitMQ
if ! port_open 5672; then
  if ! command -v rabbitmq-server >/dev/null && ! [ -x /usr/sbin/rabbitmq-server ]; then apt_install rabbitmq-server; fi
  as_root service rabbitmq-server start || true
fi
wait_for RabbitMQ port_open 5672

# S3 (s3s-fs)
bash scripts/s3-server.sh
