#!/usr/bin/env bash
# gpu-check/run.sh (written by `scripts/gpu-check.sh prepare`): the device check on the
# machine it was carried to, run from the repository root. Needs no Rust and no
# network: it unpacks the binary and the models carried (worker.tar.xz and one or both
# of dlib-resnet.tar.xz, arcface-mbf.tar.xz) to /tmp, finds the CUDA 13 libraries of
# the machine's Python environment (cuBLAS, NVRTC, cuRAND under /opt/torch/.venv, or
# CUDA_LIB_ROOTS) and runs `attendance-worker device-check` on the fixtures and goldens
# of the checkout. Arguments go to device-check (e.g. --quick).
#
#   bash gpu-check/run.sh                    # DEVICE=cuda:0
#   bash scripts/gpu-check.sh cpu            # the plumbing, on the CPU of the build machine
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
device="${DEVICE:-cuda:0}"
work="${GPU_CHECK_WORK:-/tmp/gpu-check}"

rm -rf "$work"
mkdir -p "$work/models"
xz -dc "$here/worker.tar.xz" | tar -C "$work" -xf -
# The face models whose files were carried (one or both: see scripts/gpu-check.sh).
models=()
for model in dlib-resnet arcface-mbf; do
    if [[ -f "$here/$model.tar.xz" ]]; then
        xz -dc "$here/$model.tar.xz" | tar -C "$work/models" -xf -
        models+=("$model")
    fi
done
if ((${#models[@]} == 0)); then
    echo "error: no model archive (dlib-resnet.tar.xz, arcface-mbf.tar.xz) beside run.sh" >&2
    exit 1
fi

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
echo "face models: ${models[*]}"
exec timeout "${GPU_CHECK_TIMEOUT:-570}" "$work/attendance-worker" --device "$device" device-check \
    --models "$(IFS=,; echo "${models[*]}")" "$@"
