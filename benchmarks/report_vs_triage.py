#!/usr/bin/env python3
"""What the HTML report costs beyond triage on the same source.

For each fixture dump in the cache (or SUITE/SCENARIO arguments), times

    python3 -m crashext triage --json -c vmcore -s vmlinux
    python3 -m crashext report -o page.html -c vmcore -s vmlinux

(best of --runs, wall clock, each a fresh process so imports count) and
prints the page size; then the same for a generated kernel log of --log-mb
MB (the RHEL7 idr-bug incident's allocation failure every 5000 lines, as
benchmarks/allocfail_throughput.py makes it), whose timeline carries every
kept failure.  Targets: the report adds at most a second or two
to triage on the largest fixture dump; the page stays small for 20,000
memcgs.  Run by hand; numbers go in docs/report.md.

    python3 benchmarks/report_vs_triage.py [--runs 3] [--log-mb 50] [SUITE/SCENARIO ...]
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from allocfail_throughput import ROOT, generate  # noqa: E402

FIXTURES = os.environ.get("CRASHEXT_FIXTURE_DIR", os.path.expanduser("~/.cache/crashext/fixtures"))


def best(cmd, runs):
    """(wall, cpu) seconds, the best of ``runs``; CPU time (user + system of the
    child) is what the machine's other load disturbs least."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    walls, cpus = [], []
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        walls.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)}: {p.stderr.strip()}")
    return min(walls), min(cpus)


def compare(label, src, runs, tmp):
    page = os.path.join(tmp, "page.html")
    tw, tc = best([sys.executable, "-m", "crashext", "triage", "--json", *src], runs)
    rw, rc = best([sys.executable, "-m", "crashext", "report", "-o", page, *src], runs)
    print(f"{label:<30} triage {tw:5.2f} s wall {tc:5.2f} s cpu | report {rw:5.2f} s wall "
          f"{rc:5.2f} s cpu | +{rc - tc:4.2f} s cpu | page {os.path.getsize(page) // 1024} KiB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--log-mb", type=int, default=50)
    ap.add_argument("fixtures", nargs="*")
    a = ap.parse_args()
    names = a.fixtures or sorted(f"{s}/{c}" for s in os.listdir(FIXTURES)
                                 for c in os.listdir(os.path.join(FIXTURES, s))
                                 if os.path.isfile(os.path.join(FIXTURES, s, c, "vmcore")))
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            d = os.path.join(FIXTURES, name)
            size = os.path.getsize(os.path.join(d, "vmcore")) >> 20
            compare(f"{name} ({size} MiB)", ["-c", os.path.join(d, "vmcore"),
                                             "-s", os.path.join(d, "vmlinux")], a.runs, tmp)
        if a.log_mb:
            log = os.path.join(tmp, "big.log")
            n = generate(log, a.log_mb)
            compare(f"log {a.log_mb} MB, {n} failures", ["--log", log], a.runs, tmp)


if __name__ == "__main__":
    main()
