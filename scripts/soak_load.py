#!/usr/bin/env python3
"""Load client and checker for scripts/soak.sh (standard library only).

  soak_load.py load  --base URL --key KEY --class ID --clients N --seconds S
                     --think S --phase NAME --out FILE PHOTO...
      N threads, each uploading `POST /attendance/mark` with one of the photos in
      turn (then waiting --think seconds) until S seconds have passed. One JSON line
      per request: phase, send time, accept latency, status, session and job ids.

  soak_load.py check --requests FILE... --db-dump DIR --bucket-dir DIR --students N
      Every accepted upload (202) must have its session, its photos in the bucket,
      its job finished (or failed with a reason) and, when finished, exactly one
      record per student of the class. Prints the table and "lost: N"; exits 1 when
      anything was lost.
"""

import argparse
import csv
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone


def multipart(fields, files):
    boundary = uuid.uuid4().hex
    out = bytearray()
    for name, value in fields:
        out += f"--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
    for name, filename, data in files:
        out += (
            f"--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"; "
            f"filename=\"{filename}\"\r\ncontent-type: image/jpeg\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def load(args):
    photos = [(os.path.basename(p), open(p, "rb").read()) for p in args.photos]
    deadline = time.time() + args.seconds
    lock = threading.Lock()
    out = open(args.out, "a")

    def client(n):
        i = n
        while time.time() < deadline:
            name, data = photos[i % len(photos)]
            i += 1
            body, ctype = multipart([("class_id", args.class_id)], [("photos", name, data)])
            req = urllib.request.Request(
                args.base + "/attendance/mark",
                data=body,
                method="POST",
                headers={"authorization": "Bearer " + args.key, "content-type": ctype},
            )
            sent = time.time()
            rec = {"phase": args.phase, "sent": sent, "photo": name}
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    rec["status"] = resp.status
                    payload = json.loads(resp.read())
                    rec["session_id"] = payload.get("session_id")
                    rec["job_id"] = payload.get("job_id")
            except urllib.error.HTTPError as e:
                rec["status"] = e.code
                e.read()
            except Exception as e:  # connection refused or reset: no answer at all
                rec["status"] = 0
                rec["error"] = str(e)[:200]
            rec["ms"] = (time.time() - sent) * 1000
            with lock:
                out.write(json.dumps(rec) + "\n")
                out.flush()
            time.sleep(args.think)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.close()


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def parse_ts(text):
    # psql's to_char(... 'YYYY-MM-DD"T"HH24:MI:SS.US') in UTC.
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()


def check(args):
    requests = []
    for path in args.requests:
        with open(path) as f:
            requests += [json.loads(line) for line in f if line.strip()]
    jobs = {r[0]: r for r in read_csv(os.path.join(args.db_dump, "jobs.csv"))}
    sessions = {r[0] for r in read_csv(os.path.join(args.db_dump, "sessions.csv"))}
    photos = {}
    for session_id, key in read_csv(os.path.join(args.db_dump, "photos.csv")):
        photos.setdefault(session_id, []).append(key)
    records = {}
    for session_id, student_id, count in read_csv(os.path.join(args.db_dump, "records.csv")):
        records.setdefault(session_id, {})[student_id] = int(count)

    phases = []
    for r in requests:
        if r["phase"] not in phases:
            phases.append(r["phase"])
    lost = []
    rows = []
    for phase in phases:
        rs = [r for r in requests if r["phase"] == phase]
        accepted = [r for r in rs if r["status"] == 202]
        latency = [r["ms"] for r in accepted]
        finished, failed, e2e = 0, 0, []
        for r in accepted:
            problems = []
            job = jobs.get(r["job_id"])
            if r["session_id"] not in sessions:
                problems.append("no session row")
            keys = photos.get(r["session_id"], [])
            if not keys:
                problems.append("no photo row")
            for key in keys:
                if not os.path.isfile(os.path.join(args.bucket_dir, key)):
                    problems.append(f"photo {key} not in the bucket")
            if job is None:
                problems.append("no job row")
            else:
                _, status, error, finished_at = job
                if status == "succeeded":
                    finished += 1
                    counts = records.get(r["session_id"], {})
                    if len(counts) != args.students or any(c != 1 for c in counts.values()):
                        problems.append(
                            f"{len(counts)} students recorded, counts {sorted(set(counts.values()))}"
                        )
                    if finished_at:
                        e2e.append(parse_ts(finished_at) - r["sent"])
                elif status == "failed":
                    failed += 1
                    if not error.strip():
                        problems.append("failed without a reason")
                else:
                    problems.append(f"job still {status}")
            if problems:
                lost.append((r, problems))
        rows.append(
            {
                "phase": phase,
                "requests": len(rs),
                "accepted": len(accepted),
                "503": sum(1 for r in rs if r["status"] == 503),
                "other_5xx": sum(1 for r in rs if r["status"] >= 500 and r["status"] != 503),
                "no_answer": sum(1 for r in rs if r["status"] == 0),
                "accept_p50_ms": percentile(latency, 50),
                "accept_p99_ms": percentile(latency, 99),
                "jobs_finished": finished,
                "jobs_failed": failed,
                "e2e_p50_s": percentile(e2e, 50),
                "e2e_p99_s": percentile(e2e, 99),
            }
        )
    header = list(rows[0].keys()) if rows else []
    widths = [max(len(h), 9) for h in header]
    print(" ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        cells = []
        for h, w in zip(header, widths):
            v = row[h]
            cells.append((f"{v:.1f}" if isinstance(v, float) else str(v)).ljust(w))
        print(" ".join(cells))
    for r, problems in lost[:20]:
        print(f"LOST {r['phase']} session {r.get('session_id')} job {r.get('job_id')}: {'; '.join(problems)}")
    accepted_total = sum(row["accepted"] for row in rows)
    print(f"accepted: {accepted_total}")
    print(f"lost: {len(lost)}")
    if accepted_total == 0:
        print("error: no upload was accepted", file=sys.stderr)
        return 1
    return 1 if lost else 0


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("load")
    p.add_argument("--base", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--class", dest="class_id", required=True)
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--think", type=float, default=0.0)
    p.add_argument("--phase", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("photos", nargs="+")
    c = sub.add_parser("check")
    c.add_argument("--requests", nargs="+", required=True)
    c.add_argument("--db-dump", required=True)
    c.add_argument("--bucket-dir", required=True)
    c.add_argument("--students", type=int, required=True)
    args = parser.parse_args()
    if args.command == "load":
        load(args)
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
