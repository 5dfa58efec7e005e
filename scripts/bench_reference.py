#!/usr/bin/env python3
"""Timings of the reference implementations on this machine, for comparison with the
Rust engine (scripts/bench.sh runs the Rust side).

Measures, as the median of --runs runs after one warm-up run:
  (a) dlib ResNet descriptor, ms per face: a batch of 16 aligned 150x150 chips in one
      compute_face_descriptor call, and one chip per call;
  (b) facenet-pytorch 2.6.0 MTCNN (keep_all, CPU), ms per photo: groups/six_people.jpg at
      its own size and resized to 1366x768;
  (c) face_recognition.face_encodings(img) on six_people.jpg: HOG detection + 5-point
      landmarks + descriptors for the whole photo.
Prints one JSON object on stdout.

Run with the golden environment (scripts/golden/generate.sh sets it up):
  .venv-golden/bin/python scripts/bench_reference.py --runs 5
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import dlib
import face_recognition
import face_recognition_models
import numpy as np
import torch
from facenet_pytorch import MTCNN
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def median_ms(fn, runs: int) -> float:
    fn()  # warm-up: first-call allocations, lazy initialisation
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return round(statistics.median(times), 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per measurement (median is reported)")
    ap.add_argument("--fixtures", default=str(REPO / "worker/tests/fixtures/faces"), help="the fixtures/faces directory")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)

    photo_path = Path(args.fixtures) / "groups" / "six_people.jpg"
    photo = Image.open(photo_path).convert("RGB")
    photo_np = np.asarray(photo)
    resized = photo.resize((1366, 768), Image.BILINEAR)

    models = Path(face_recognition_models.__file__).parent / "models"
    predictor = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    resnet = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
    mtcnn = MTCNN(keep_all=True, device="cpu")

    # Aligned chips of the faces MTCNN finds in the photo, as the Rust pipeline makes them.
    boxes, _ = mtcnn.detect(photo)
    if boxes is None:
        print(f"error: no face found in {photo_path}", file=sys.stderr)
        return 1
    chips = []
    for x1, y1, x2, y2 in boxes:
        rect = dlib.rectangle(*(int(np.floor(v + 0.5)) for v in (x1, y1, x2, y2)))
        shape = predictor(photo_np, rect)
        chips.append(dlib.get_face_chip(photo_np, shape, size=150, padding=0.25))
    batch = [chips[i % len(chips)] for i in range(16)]
    # The chip API must give the descriptor of the full-image API (same alignment).
    assert len(resnet.compute_face_descriptor(batch)) == 16

    batch_ms = median_ms(lambda: resnet.compute_face_descriptor(batch), args.runs)
    single_ms = median_ms(lambda: resnet.compute_face_descriptor(chips[0]), args.runs)
    mtcnn_full_ms = median_ms(lambda: mtcnn.detect(photo, landmarks=True), args.runs)
    mtcnn_small_ms = median_ms(lambda: mtcnn.detect(resized, landmarks=True), args.runs)
    small_boxes, _ = mtcnn.detect(resized)

    fr_img = face_recognition.load_image_file(str(photo_path))
    fr_faces = len(face_recognition.face_encodings(fr_img))
    fr_ms = median_ms(lambda: face_recognition.face_encodings(fr_img), args.runs)

    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus_available": len(os.sched_getaffinity(0)),
            "torch_threads": torch.get_num_threads(),
            "dlib_use_cuda": bool(dlib.DLIB_USE_CUDA),
        },
        "versions": {n: metadata.version(n) for n in ("facenet-pytorch", "torch", "dlib-bin", "face_recognition")},
        "runs": args.runs,
        "photo": {"path": "groups/six_people.jpg", "width": photo.width, "height": photo.height},
        "dlib_descriptor_ms_per_face": {
            "batch_of_16": round(batch_ms / 16, 3),
            "one_at_a_time": single_ms,
        },
        "mtcnn_ms_per_photo": {
            f"{photo.width}x{photo.height}": mtcnn_full_ms,
            "1366x768": mtcnn_small_ms,
        },
        "mtcnn_faces": {
            f"{photo.width}x{photo.height}": len(boxes),
            "1366x768": 0 if small_boxes is None else len(small_boxes),
        },
        "face_recognition_face_encodings_ms_per_photo": fr_ms,
        "face_recognition_faces": fr_faces,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
