#!/usr/bin/env bash
# The GPU device check of issue 12, in one call to a machine that has NVIDIA's driver
# and CUDA 13 libraries in its Python environment but no Rust and no network.
#
#   bash scripts/gpu-check.sh prepare   # here: CUDA release build, then lay out gpu-check/
#   bash gpu-check/run.sh               # there (from the repository root): the check
#   bash scripts/gpu-check.sh cpu       # here: gpu-check/run.sh --quick on the CPU
#
# `prepare` builds the release worker with `--features cuda` using CUDA 13's compiler
# from PyPI (scripts/cuda-env.sh, shared with scripts/cuda-check.sh), for compute
# capability 9.0 (H100/H200; CUDA_COMPUTE_CAP overrides) in a target dir of its own,
# then writes the ignored folder gpu-check/: run.sh, worker.tar.xz (the stripped binary)
# and one archive per face model (dlib-resnet.tar.xz, arcface-mbf.tar.xz) with its model
# files, which run.sh unpacks to /tmp. The fixture photos and golden files are tracked,
# so they travel with the repository. What travels (tracked files + what is carried)
# must stay within 64 MiB: prepare says whether the whole folder fits one call or, if
# not, what to carry in each of two calls (one per face model); run.sh checks the
# models whose archive it finds.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
limit_mib=64

case "${1:-}" in
prepare) ;;
cpu)
    # The prepared folder's plumbing on this machine: the CUDA binary on the CPU, its
    # CUDA libraries from .venv-cuda and the driver stub (never called on the CPU).
    # shellcheck source=scripts/cuda-env.sh
    source "$repo/scripts/cuda-env.sh"
    export LD_LIBRARY_PATH="$CUDA_ROOT/lib:$CUDA_ROOT/lib/stubs:$LD_LIBRARY_PATH"
    shift
    DEVICE=cpu exec bash "$repo/gpu-check/run.sh" --quick "$@"
    ;;
*)
    echo "usage: $0 prepare | cpu [device-check arguments]" >&2
    exit 2
    ;;
esac

model_dir="${MODEL_DIR:-$repo/data/models}"
# Each face model's files in an archive of its own, so that a call can carry one model.
dlib_models=(pnet.pt rnet.pt onet.pt shape_predictor_5_face_landmarks.dat dlib_face_recognition_resnet_model_v1.dat)
# arcface-mbf's file set has MTCNN's too (DETECTOR=mtcnn may be chosen with it).
arcface_models=(pnet.pt rnet.pt onet.pt scrfd_500m_bnkps.onnx w600k_mbf.onnx)
for m in "${dlib_models[@]}" "${arcface_models[@]}"; do
    if [[ ! -f "$model_dir/$m" ]]; then
        echo "error: $model_dir/$m is missing: run \`attendance-worker fetch-models --model all\` (or set MODEL_DIR)" >&2
        exit 1
    fi
done

# shellcheck source=scripts/cuda-env.sh
source "$repo/scripts/cuda-env.sh"
export CARGO_TARGET_DIR="${GPU_CHECK_TARGET_DIR:-$repo/target/gpu-check}"

# Linking: candle turns on cudarc's dynamic linking, so the binary is linked against
# cuBLAS, NVRTC, cuRAND and the runtime (the 13.0 libraries from PyPI; the device's newer 13.x ones
# have the same sonames) and the driver's libcuda.so.1. The driver exists only where a
# GPU does, so the link uses a stub that only carries its functions' names (what CUDA's
# own lib/stubs/libcuda.so is); the real driver is loaded at run time.
"$venv/bin/pip" install --quiet "nvidia-cublas==13.0.*" "nvidia-cuda-nvrtc==13.0.*" "nvidia-curand==10.4.0.*"
lib="$CUDA_ROOT/lib"
for name in cublas cublasLt nvrtc curand cudart; do
    real=$(cd "$lib" && ls "lib$name.so."[0-9]* | head -n 1)
    ln -sf "$real" "$lib/lib$name.so"
done
(cd "$repo" && cargo fetch -q)
cudarc_version=$(awk '/^name = "cudarc"$/ { getline; gsub(/"/, "", $3); print $3 }' "$repo/Cargo.lock")
cudarc_src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$cudarc_version" | head -n 1)
mkdir -p "$lib/stubs"
grep -ohE 'pub unsafe fn cu[A-Za-z0-9_]+\(' "$cudarc_src/src/driver/sys/mod.rs" |
    sed -E 's/pub unsafe fn (.*)\(/void \1(void) {}/' | sort -u >"$lib/stubs/libcuda_stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$lib/stubs/libcuda.so.1" "$lib/stubs/libcuda_stub.c"
# Beside the others: cudarc's build script lists only the folders that existed when it
# first ran.
ln -sf stubs/libcuda.so.1 "$lib/libcuda.so"
echo "building the CUDA worker (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)" >&2
(cd "$repo" && nice -n 5 cargo build --release -p worker --features cuda --bin attendance-worker)

out="$repo/gpu-check"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$CARGO_TARGET_DIR/release/attendance-worker" "$stage/attendance-worker"
strip "$stage/attendance-worker"
rm -rf "$out"
mkdir -p "$out"
echo "compressing the binary and the models (xz)" >&2
pack() { # archive, files relative to $model_dir (or the stage)
    local archive=$1
    shift
    tar -cf - "$@" | xz -T2 -9 >"$out/$archive"
}
(cd "$stage" && pack worker.tar.xz attendance-worker)
(cd "$model_dir" && pack dlib-resnet.tar.xz "${dlib_models[@]}")
(cd "$model_dir" && pack arcface-mbf.tar.xz "${arcface_models[@]}")
cp "$repo/scripts/gpu-check-run.sh" "$out/run.sh"
chmod +x "$out/run.sh"

# What travels: the tracked files, plus what a call carries.
tracked=$(cd "$repo" && git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
size() { stat -c %s "$@" | awk '{s+=$1} END {print s+0}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b/1048576}'; }
limit=$((limit_mib * 1048576))
base=$((tracked + $(size "$out/run.sh" "$out/worker.tar.xz")))
all=$((base + $(size "$out/dlib-resnet.tar.xz" "$out/arcface-mbf.tar.xz")))
echo "tracked files $(mib "$tracked"); binary $(mib "$(stat -c %s "$stage/attendance-worker")") stripped, $(mib "$(stat -c %s "$out/worker.tar.xz")") packed"
echo "both models in one call: $(mib "$all") of $limit_mib MiB"
if ((all <= limit)); then
    echo "carry [\"gpu-check\"], run: bash gpu-check/run.sh"
    exit 0
fi
for model in dlib-resnet arcface-mbf; do
    one=$((base + $(size "$out/$model.tar.xz")))
    echo "$model alone: $(mib "$one"): carry [\"gpu-check/run.sh\", \"gpu-check/worker.tar.xz\", \"gpu-check/$model.tar.xz\"], run: bash gpu-check/run.sh"
    if ((one > limit)); then
        echo "error: more than $limit_mib MiB would travel even with one model" >&2
        exit 1
    fi
done
echo "(two calls, one per face model: together they are above $limit_mib MiB)"
