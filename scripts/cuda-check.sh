#!/usr/bin/env bash
# Type-checks the worker with the `cuda` feature, using NVIDIA's CUDA 13.0 compiler from
# PyPI wheels instead of a system CUDA install. Not part of CI (slow; no GPU needed).
#
#   scripts/cuda-check.sh            # set up .venv-cuda if needed, then cargo check
#   scripts/cuda-check.sh --env-only # set up and print the toolchain, skip cargo
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv-cuda"
python="${PYTHON:-python3}"

# nvvm is pinned with nvcc: a newer libnvvm emits PTX that ptxas 13.0 rejects.
packages=(
    "nvidia-cuda-nvcc==13.0.*"
    "nvidia-nvvm==13.0.*"
    "nvidia-cuda-runtime==13.0.*"
    "nvidia-cuda-crt==13.0.*"
    "nvidia-cuda-cccl==13.0.*"
)

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet "${packages[@]}"

site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
export CUDA_ROOT="$site/nvidia/cu13"
export CUDA_PATH="$CUDA_ROOT"
export PATH="$CUDA_ROOT/bin:$PATH"
export LD_LIBRARY_PATH="$CUDA_ROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
# A target dir of its own: the cuda feature rebuilds candle, and the normal one stays warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target/cuda}"

if [[ ! -x "$CUDA_ROOT/bin/nvcc" ]]; then
    echo "error: nvcc not found under $CUDA_ROOT/bin" >&2
    exit 1
fi
nvcc --version | tail -n 2
echo "CUDA_ROOT=$CUDA_ROOT CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP CARGO_TARGET_DIR=$CARGO_TARGET_DIR"

if [[ "${1:-}" == "--env-only" ]]; then
    exit 0
fi
cd "$repo"
exec cargo check -p worker --features cuda
