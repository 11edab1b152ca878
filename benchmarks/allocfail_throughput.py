#!/usr/bin/env python3
"""allocfail throughput on a large generated log, against grep -c.

Builds SIZE_MB of kernel log: the seed incident's allocation failure (with
its full Mem-Info, zone and buddy lines) every N lines among ordinary dmesg
lines, timestamps increasing, then times

    grep -c 'page allocation failure' FILE
    python3 -m crashext allocfail FILE            (table output)

and reports MB/s and the peak RSS of the crashext run (constant memory is
the claim: run with two sizes and compare).  Run by hand; numbers go in
docs/allocfail.md.

    python3 benchmarks/allocfail_throughput.py [SIZE_MB ...]
"""

import os
import re
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = os.path.join(ROOT, "tests", "data", "logs", "rhel7-3.10.0-693.2.2-idr-bug.dmesg")
NOISE = [
    "docker0: port 18(veth455b303) entered blocking state",
    "IPv6: ADDRCONF(NETDEV_CHANGE): veth455b303: link becomes ready",
    "XFS (dm-3): Mounting V5 Filesystem",
    "EXT4-fs (vda1): re-mounted. Opts: (null)",
    "nf_conntrack: falling back to vmalloc.",
    "overlayfs: upper fs does not support tmpfile.",
]


def generate(path: str, size_mb: int, every: int = 5000) -> int:
    seed = open(SEED).read().splitlines()
    fail = [l for l in seed[2:52]]           # the failure report, lines 3..52
    body = [re.sub(r"^\[\s*\d+\.\d+\] ?", "", l) if l.startswith("[") else None for l in fail]
    target = size_mb << 20
    ts = 1000.0
    n = 0
    failures = 0
    with open(path, "w") as f:
        written = 0
        while written < target:
            if n % every == 0:
                for raw, text in zip(fail, body):
                    line = raw if text is None else f"[{ts:14.6f}] {text}"
                    f.write(line + "\n")
                    written += len(line) + 1
                failures += 1
            line = f"[{ts:14.6f}] {NOISE[n % len(NOISE)]}"
            f.write(line + "\n")
            written += len(line) + 1
            ts += 0.000731
            n += 1
    return failures


def timed(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {p.stderr.strip()}")
    return dt, p.stdout


def main(argv):
    sizes = [int(a) for a in argv] or [100]
    for size in sizes:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "big.log")
            failures = generate(path, size)
            mb = os.path.getsize(path) / 1e6
            gt, gout = timed(["grep", "-c", "page allocation failure", path])
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            ct, cout = timed([sys.executable, "-m", "crashext", "allocfail", path])
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            found = int(cout.split()[0]) if cout[0].isdigit() else 0
            print(f"{mb:8.1f} MB, {failures} failures planted: grep {gt:6.2f}s "
                  f"({mb / gt:7.1f} MB/s, counted {gout.strip()}); crashext {ct:6.2f}s "
                  f"({mb / ct:6.1f} MB/s, found {found}); peak RSS of runs so far "
                  f"{max(rss, before) / 1024:.0f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
