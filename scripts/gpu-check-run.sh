#!/usr/bin/env bash
# gpu-check/run.sh (written by `scripts/gpu-check.sh prepare`): the device check on the
# machine it was carried to, run from the repository root. Needs no Rust and no
# network: it unpacks the binary and the models to /tmp, finds the CUDA 13 libraries of
# the machine's Python environment (cuBLAS, NVRTC, cuRAND under /opt/torch/.venv, or
# CUDA_LIB_ROOTS) and runs `attendance-worker device-check` on the fixtures and goldens
# of the checkout. Arguments go to device-check (e.g. --quick).
#
#   bash gpu-check/run.sh                    # DEVICE=cuda:0
#   DEVICE=cpu bash gpu-check/run.sh --quick # the plumbing, on the CPU
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
device="${DEVICE:-cuda:0}"
work="${GPU_CHECK_WORK:-/tmp/gpu-check}"

rm -rf "$work"
mkdir -p "$work"
xz -dc "$here/payload.tar.xz" | tar -C "$work" -xf -

if [[ "$device" != cpu ]]; then
    roots="${CUDA_LIB_ROOTS:-/opt/torch/.venv}"
    # shellcheck disable=SC2086
    dirs=$(find $roots \( -name 'libcublas.so*' -o -name 'libcublasLt.so*' -o -name 'libnvrtc.so*' \
        -o -name 'libnvrtc-builtins.so*' -o -name 'libcurand.so*' -o -name 'libcudart.so*' \) \
        -printf '%h\n' 2>/dev/null | sort -u | paste -sd: -)
    if [[ -z "$dirs" ]]; then
        echo "error: no CUDA libraries (libcublas, libnvrtc, libcurand) under $roots; set CUDA_LIB_ROOTS" >&2
        exit 1
    fi
    export LD_LIBRARY_PATH="$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "CUDA libraries: $dirs"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
fi

export WORKER_CRATE_DIR="$repo/worker" MODEL_DIR="$work/models" RUST_LOG="${RUST_LOG:-warn}"
# What the binary will load, for the record (a missing library shows here first).
ldd "$work/attendance-worker" | grep -E 'not found|cuda|cublas|nvrtc|curand' || true
exec timeout "${GPU_CHECK_TIMEOUT:-570}" "$work/attendance-worker" --device "$device" device-check "$@"
