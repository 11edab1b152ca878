#!/usr/bin/env python3
"""triage on a large kernel log: time and peak memory against the log's size.

Builds SIZE_MB of kernel log (the same generator as
benchmarks/allocfail_throughput.py: the RHEL7 idr-bug incident's allocation failure
every 5000 lines among ordinary dmesg lines), appends the RHEL7 idr-bug log's BUG report,
and times

    python3 -m crashext triage --log FILE

reporting MB/s and the peak RSS of the run.  The claim is constant memory
(the log is read once, streaming): run with two sizes and compare.  Run by
hand; numbers go in docs/triage.md.

    python3 benchmarks/triage_log.py [SIZE_MB ...]
"""

import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from allocfail_throughput import ROOT, SEED, generate  # noqa: E402


def run(size_mb: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "big.log")
        failures = generate(path, size_mb)
        seed = open(SEED).read().splitlines()
        with open(path, "a") as f:
            f.write("\n".join(seed[52:]) + "\n")   # the BUG report after the failures
        size = os.path.getsize(path) / (1 << 20)
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "crashext", "triage", "--log", path],
                           capture_output=True, text=True, cwd=ROOT)
        dt = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        first = p.stdout.splitlines()[0] if p.stdout else p.stderr.strip()
        print(f"{size:8.1f} MB  {failures:6d} failures  {dt:6.2f} s  {size / dt:6.1f} MB/s  "
              f"peak RSS {rss:6.1f} MiB  | {first[:60]}")


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["20", "100"]:
        run(int(arg))
