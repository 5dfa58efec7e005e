#!/usr/bin/env bash
# Regenerates worker/tests/golden/{mtcnn,dlib}.json from the reference implementations
# (facenet-pytorch's MTCNN, dlib's shape predictor and ResNet descriptor).
#
#   scripts/golden/generate.sh [FIXTURES_DIR] [--south-asian DIR]
#   scripts/golden/generate.sh --venv-only     # only set up the environment (bench.sh)
#
# FIXTURES_DIR defaults to the committed photos (worker/tests/fixtures/faces); the
# South-Asian set, which both golden files cover, to $SOUTH_ASIAN_DIR or
# ../shared/fixtures/faces/south_asian (relative to the repository root).
# The pinned environment lives in .venv-golden at the repository root (git-ignored) and
# is reused on later runs; scripts/bench_reference.py uses it too.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$repo/.venv-golden"
requirements="$repo/scripts/golden/requirements.txt"
python="${PYTHON:-python3.11}"

if ! command -v "$python" >/dev/null; then
    echo "error: $python not found (the pinned torch 2.2.2 has wheels for CPython 3.8-3.11; set PYTHON)" >&2
    exit 1
fi

# Reinstall when requirements.txt changed since the venv was made.
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "setting up $venv (about 2.5 GB, mostly the CUDA libraries that PyPI's torch wheel loads)" >&2
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    # --no-deps: every package is pinned in requirements.txt; this keeps pip from
    # resolving facenet-pytorch's and torch's own (wider) requirements and triton.
    "$venv/bin/pip" install --no-deps -r "$requirements"
    "$venv/bin/python" -c "import torch, torchvision, dlib, facenet_pytorch, face_recognition_models"
    echo "$want" >"$stamp"
fi

if [[ "${1:-}" == "--venv-only" ]]; then
    exit 0
fi
cd "$repo"
exec "$venv/bin/python" scripts/golden/make_golden.py "$@"
