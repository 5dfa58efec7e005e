#!/usr/bin/env python3
"""Checker for scripts/soak.sh (standard library only); the load itself comes from
api/examples/upload_load.rs, which writes the request lines read here.

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
from datetime import datetime, timezone


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
    c = sub.add_parser("check")
    c.add_argument("--requests", nargs="+", required=True)
    c.add_argument("--db-dump", required=True)
    c.add_argument("--bucket-dir", required=True)
    c.add_argument("--students", type=int, required=True)
    args = parser.parse_args()
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
