#!/usr/bin/env python3
"""Golden outputs of the reference implementations, for the Rust engine's tests.

Writes, for every photo of the committed fixtures (worker/tests/fixtures/faces) and of the
South-Asian set (kept outside the repository; named south_asian/... in the output):
  mtcnn.json  facenet-pytorch 2.6.0 MTCNN(keep_all=True) boxes, probabilities, landmarks;
  dlib.json   for every MTCNN face: the dlib rectangle made from the box exactly as the Rust
              pipeline makes it, dlib's 5-point shape and its 128-D ResNet descriptor.

Run through scripts/golden/generate.sh, which sets up the pinned environment.
"""

import argparse
import json
import math
import os
import sys
from importlib import metadata
from pathlib import Path

import dlib
import face_recognition_models
import numpy as np
import torch
from facenet_pytorch import MTCNN
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
EXTENSIONS = {".jpg", ".jpeg", ".png"}


def versions() -> str:
    names = ["facenet-pytorch", "torch", "torchvision", "numpy", "pillow", "dlib-bin", "face_recognition_models"]
    return ", ".join(f"{n} {metadata.version(n)}" for n in names) + f", python {sys.version.split()[0]}"


def r(x: float, nd: int) -> float:
    return round(float(x), nd)


def dlib_rect(box) -> tuple[int, int, int, int]:
    """The dlib rectangle for an MTCNN box: each corner rounded half up (floor(v + 0.5))."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return (math.floor(x1 + 0.5), math.floor(y1 + 0.5), math.floor(x2 + 0.5), math.floor(y2 + 0.5))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fixtures", nargs="?", default=str(REPO / "worker/tests/fixtures/faces"),
                    help="the committed photos (default: worker/tests/fixtures/faces)")
    ap.add_argument("--south-asian",
                    default=os.environ.get("SOUTH_ASIAN_DIR") or str(REPO / "../shared/fixtures/faces/south_asian"),
                    help="the South-Asian set (default: $SOUTH_ASIAN_DIR, else ../shared/fixtures/faces/south_asian)")
    ap.add_argument("--out", default=str(REPO / "worker/tests/golden"), help="output directory")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # (name in the golden files, path): the tests resolve south_asian/... to the set.
    images = []
    for root, prefix in ((Path(args.fixtures).resolve(), ""), (Path(args.south_asian).resolve(), "south_asian/")):
        found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
        if not found:
            # The golden files cover both sets; one made without the South-Asian set
            # would silently drop its checks.
            print(f"no images under {root}", file=sys.stderr)
            return 1
        images += [(prefix + p.relative_to(root).as_posix(), p) for p in found]

    torch.set_grad_enabled(False)
    # Defaults of facenet-pytorch 2.6.0: min_face_size=20, thresholds=[0.6, 0.7, 0.7], factor=0.709.
    mtcnn = MTCNN(keep_all=True, device="cpu")
    assert mtcnn.min_face_size == 20 and list(mtcnn.thresholds) == [0.6, 0.7, 0.7] and mtcnn.factor == 0.709

    models = Path(face_recognition_models.__file__).parent / "models"
    predictor = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    resnet = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    generator = versions()
    mtcnn_out = {"generator": generator, "images": {}}
    dlib_out = {"generator": generator, "faces": []}

    for rel, path in images:
        img = Image.open(path).convert("RGB")
        boxes, probs, landmarks = mtcnn.detect(img, landmarks=True)
        faces = []
        if boxes is not None:
            img_np = np.asarray(img)
            for box, prob, lms in zip(boxes, probs, landmarks):
                faces.append({
                    "box": [r(v, 5) for v in box],
                    "prob": r(prob, 7),
                    "landmarks": [[r(x, 5), r(y, 5)] for x, y in lms],
                })
                rect = dlib_rect(box)
                shape = predictor(img_np, dlib.rectangle(*rect))
                descriptor = resnet.compute_face_descriptor(img_np, shape)
                dlib_out["faces"].append({
                    "image": rel,
                    "rect": list(rect),
                    "parts": [[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)],
                    "descriptor": [r(v, 6) for v in descriptor],
                })
        mtcnn_out["images"][rel] = {"width": img.width, "height": img.height, "faces": faces}
        print(f"{len(faces):3d} faces  {rel}")

    for name, doc in (("mtcnn.json", mtcnn_out), ("dlib.json", dlib_out)):
        target = out / name
        target.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        print(f"wrote {target} ({target.stat().st_size} bytes)")
    total = sum(len(v["faces"]) for v in mtcnn_out["images"].values())
    print(f"{len(images)} images, {total} faces; {generator}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
