# Sourced by scripts/cuda-check.sh and scripts/gpu-check.sh: NVIDIA's CUDA 13.0 compiler
# from PyPI wheels in .venv-cuda (no system CUDA install), and the variables candle's
# build reads. Expects `repo` to be set to the checkout.

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
# The H200 (and H100) are compute capability 9.0.
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"

if [[ ! -x "$CUDA_ROOT/bin/nvcc" ]]; then
    echo "error: nvcc not found under $CUDA_ROOT/bin" >&2
    exit 1
fi
