#!/usr/bin/env bash
# The GPU device check of issue 12, in one call to a machine that has NVIDIA's driver
# and CUDA 13 libraries in its Python environment but no Rust and no network.
#
#   bash scripts/gpu-check.sh prepare   # here: CUDA release build, then lay out gpu-check/
#   bash gpu-check/run.sh               # there (from the repository root): the check
#   DEVICE=cpu bash gpu-check/run.sh --quick   # here: the same plumbing on the CPU
#
# `prepare` builds the release worker with `--features cuda` using CUDA 13's compiler
# from PyPI (scripts/cuda-env.sh, shared with scripts/cuda-check.sh), for compute
# capability 9.0 (H100/H200; CUDA_COMPUTE_CAP overrides) in a target dir of its own,
# then writes the ignored folder gpu-check/: payload.tar.xz (the stripped binary and the
# model files, which run.sh unpacks to /tmp) and run.sh. The fixture photos and golden
# files are tracked, so they travel with the repository. What travels (tracked files +
# gpu-check/) must stay within 64 MiB; prepare checks it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
limit_mib=64

case "${1:-}" in
prepare) ;;
*)
    echo "usage: $0 prepare" >&2
    exit 2
    ;;
esac

model_dir="${MODEL_DIR:-$repo/data/models}"
models=(
    pnet.pt rnet.pt onet.pt
    shape_predictor_5_face_landmarks.dat dlib_face_recognition_resnet_model_v1.dat
    scrfd_500m_bnkps.onnx w600k_mbf.onnx
)
for m in "${models[@]}"; do
    if [[ ! -f "$model_dir/$m" ]]; then
        echo "error: $model_dir/$m is missing: run \`attendance-worker fetch-models --model all\` (or set MODEL_DIR)" >&2
        exit 1
    fi
done

# shellcheck source=scripts/cuda-env.sh
source "$repo/scripts/cuda-env.sh"
export CARGO_TARGET_DIR="${GPU_CHECK_TARGET_DIR:-$repo/target/gpu-check}"
echo "building the CUDA worker (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)" >&2
(cd "$repo" && nice -n 5 cargo build --release -p worker --features cuda --bin attendance-worker)

out="$repo/gpu-check"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/models"
cp "$CARGO_TARGET_DIR/release/attendance-worker" "$stage/attendance-worker"
strip "$stage/attendance-worker"
for m in "${models[@]}"; do
    cp "$model_dir/$m" "$stage/models/"
done
rm -rf "$out"
mkdir -p "$out"
echo "compressing the binary and the models (xz)" >&2
tar -C "$stage" -cf - attendance-worker models | xz -T2 -9e >"$out/payload.tar.xz"
cp "$repo/scripts/gpu-check-run.sh" "$out/run.sh"
chmod +x "$out/run.sh"

tracked=$(cd "$repo" && git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
folder=$(du -sb "$out" | cut -f1)
total=$((tracked + folder))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b/1048576}'; }
echo "gpu-check/: $(mib "$folder") (binary $(mib "$(stat -c %s "$stage/attendance-worker")") stripped, before xz); tracked files: $(mib "$tracked"); travels: $(mib "$total") of $limit_mib MiB"
if ((total > limit_mib * 1048576)); then
    echo "error: more than $limit_mib MiB would travel" >&2
    exit 1
fi
echo "carry gpu-check and run: bash gpu-check/run.sh"
