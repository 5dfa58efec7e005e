#!/usr/bin/env bash
# Type-checks the worker with the `cuda` feature, using NVIDIA's CUDA 13.0 compiler from
# PyPI wheels instead of a system CUDA install. Not part of CI (slow; no GPU needed).
#
#   scripts/cuda-check.sh            # set up .venv-cuda if needed, then cargo check
#   scripts/cuda-check.sh --env-only # set up and print the toolchain, skip cargo
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/cuda-env.sh
source "$repo/scripts/cuda-env.sh"
# A target dir of its own: the cuda feature rebuilds candle, and the normal one stays warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target/cuda}"

nvcc --version | tail -n 2
echo "CUDA_ROOT=$CUDA_ROOT CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP CARGO_TARGET_DIR=$CARGO_TARGET_DIR"

if [[ "${1:-}" == "--env-only" ]]; then
    exit 0
fi
cd "$repo"
exec cargo check -p worker --features cuda
