#!/usr/bin/env python3
"""face_recognition's end-to-end throughput on the synthesised classroom photos, for
comparison with `attendance-worker throughput` (scripts/bench.sh throughput runs both in
the same run).

The photos and their manifest.json come from `attendance-worker synth-classroom DIR`.
Each registered person's portraits are encoded once per process (the largest face of
each, as a registration would keep it); then, per photo, what an attendance job does
with face_recognition: load -> face_locations (HOG, one upsampling: its default) ->
face_encodings -> compare against the registered encodings (nearest within its
customary 0.6) -> the people present. With P processes the photos are shared out by a
multiprocessing pool; the wall time runs from the first photo to the last, the pool
already started and every process's encodings made.

Prints one JSON object: per process count, photos/s and /min, faces found per photo,
recall (people marked present / people seated) and false presents.

  .venv-golden/bin/python scripts/bench_throughput_reference.py --photos-dir DIR --processes 1,2
"""

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import face_recognition
import numpy as np

TOLERANCE = 0.6

_known_names = []
_known = None


def _init(fixtures: str, people: list) -> None:
    """Encodes every registered portrait (per process, before the clock starts)."""
    global _known, _known_names
    names, encodings = [], []
    for person in people:
        for portrait in person["portraits"]:
            image = face_recognition.load_image_file(str(Path(fixtures) / portrait))
            locations = face_recognition.face_locations(image)
            if not locations:
                continue
            largest = max(locations, key=lambda l: (l[2] - l[0]) * (l[1] - l[3]))
            encodings.append(face_recognition.face_encodings(image, [largest])[0])
            names.append(person["name"])
    _known_names, _known = names, np.array(encodings)


def _ready(_: int) -> bool:
    time.sleep(0.5)
    return _known is not None


def _attendance(path: str) -> tuple:
    image = face_recognition.load_image_file(path)
    locations = face_recognition.face_locations(image)
    encodings = face_recognition.face_encodings(image, locations)
    present = set()
    for encoding in encodings:
        distances = face_recognition.face_distance(_known, encoding)
        best = int(np.argmin(distances))
        if distances[best] <= TOLERANCE:
            present.add(_known_names[best])
    return len(locations), sorted(present)


def measure(manifest: dict, photos_dir: Path, processes: int) -> dict:
    paths = [str(photos_dir / p["file"]) for p in manifest["photos"]]
    with multiprocessing.Pool(processes, _init, (manifest["fixtures_dir"], manifest["people"])) as pool:
        assert all(pool.map(_ready, range(processes), chunksize=1))
        start = time.perf_counter()
        results = pool.map(_attendance, paths, chunksize=1)
        wall = time.perf_counter() - start
    present = expected = false_present = faces = 0
    for photo, (found, marked) in zip(manifest["photos"], results):
        seated = {f["person"] for f in photo["faces"]}
        faces += found
        expected += len(seated)
        present += len(seated & set(marked))
        false_present += len(set(marked) - seated)
    n = len(paths)
    return {
        "processes": processes,
        "photos": n,
        "faces_per_photo": len(manifest["photos"][0]["faces"]) if n else 0,
        "faces_found_per_photo": faces / max(n, 1),
        "wall_seconds": round(wall, 3),
        "photos_per_second": n / wall,
        "photos_per_minute": n * 60.0 / wall,
        "recall": present / max(expected, 1),
        "present": present,
        "expected": expected,
        "false_present": false_present,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos-dir", required=True, help="the folder synth-classroom wrote")
    ap.add_argument("--processes", default="1,2", help="comma-separated process counts")
    args = ap.parse_args()
    photos_dir = Path(args.photos_dir)
    manifest = json.loads((photos_dir / "manifest.json").read_text())
    if not manifest["photos"]:
        print("error: no photos in the manifest", file=sys.stderr)
        return 1
    runs = [measure(manifest, photos_dir, int(p)) for p in args.processes.split(",")]
    print(json.dumps({
        "implementation": "face_recognition (dlib HOG + 5-point + ResNet)",
        "cpus_available": len(os.sched_getaffinity(0)),
        "tolerance": TOLERANCE,
        "runs": runs,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
