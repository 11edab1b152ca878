#!/usr/bin/env python3
"""triage / frag on a large sosreport archive: time and peak memory.

Takes a real sosreport made by Debian's ``sos report`` (made here with the
kernel, memory, cgroups and logs plugins unless one is given), unpacks it to
a temporary directory, adds

- ``var/log/kern.log``: LOG_MB of kernel log (the generator of
  benchmarks/allocfail_throughput.py: the RHEL7 idr-bug log's allocation failure every 5000
  lines among ordinary dmesg lines), and
- ``var/log/journal/filler.journal``: FILL_MB of random bytes, so the archive
  is large when compressed (a real report's binary journal does not compress
  either),

packs it again with ``tar -cJf`` (xz) and times

    python3 -m crashext triage ARCHIVE
    python3 -m crashext frag --sos ARCHIVE

reporting seconds and the peak RSS of each run.  The claim: memory stays flat
(the archive is streamed, only the small /proc and cgroup members and the log
lines in flight are held).  Run by hand; numbers go in docs/sosreport.md.

    python3 benchmarks/sosreport_archive.py [--sos ARCHIVE] [LOG_MB FILL_MB ...]
"""

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from allocfail_throughput import ROOT, generate  # noqa: E402


def make_sos(d: str) -> str:
    out = os.path.join(d, "sos")
    os.mkdir(out)
    subprocess.run(["sos", "report", "--batch", "--tmp-dir", out, "-o",
                    "kernel,memory,cgroups,logs"], check=True, capture_output=True)
    return next(os.path.join(out, n) for n in os.listdir(out)
                if n.startswith("sosreport-") and n.endswith(".tar.xz"))


def timed(args):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "crashext", *args], capture_output=True,
                       text=True, cwd=ROOT)
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    first = (p.stdout.splitlines() or [p.stderr.strip()])[0]
    # ru_maxrss of children is the largest so far: report it only when it grew
    return dt, rss / 1024, rss > before, p.returncode, first


def run(src: str, log_mb: int, fill_mb: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["tar", "-xf", src, "-C", d], check=True)
        top = next(os.path.join(d, n) for n in os.listdir(d) if n.startswith("sosreport-"))
        os.makedirs(os.path.join(top, "var", "log", "journal"), exist_ok=True)
        failures = generate(os.path.join(top, "var", "log", "kern.log"), log_mb)
        with open(os.path.join(top, "var", "log", "journal", "filler.journal"), "wb") as f:
            for _ in range(fill_mb):
                f.write(os.urandom(1 << 20))
        arc = os.path.join(d, os.path.basename(top) + ".tar.xz")
        env = dict(os.environ, XZ_OPT="-0 -T2")
        subprocess.run(["tar", "-cJf", arc, "-C", d, os.path.basename(top)], check=True,
                       env=env)
        shutil.rmtree(top)
        size = os.path.getsize(arc) / (1 << 20)
        print(f"archive {size:.1f} MB compressed: kern.log {log_mb} MB ({failures} failures), "
              f"filler {fill_mb} MB")
        for args in (["triage", arc], ["frag", "--sos", arc]):
            dt, rss, grew, rc, first = timed(args)
            print(f"  {' '.join(args[:-1]):<10} {dt:6.2f} s  peak RSS "
                  f"{rss:6.1f} MiB{'' if grew else ' (not above an earlier run)'}  rc {rc}"
                  f"  | {first[:70]}")


if __name__ == "__main__":
    argv = sys.argv[1:]
    src = None
    if argv[:1] == ["--sos"]:
        src, argv = argv[1], argv[2:]
    sizes = [int(x) for x in argv] or [20, 100]
    with tempfile.TemporaryDirectory() as d:
        src = src or make_sos(d)
        for i in range(0, len(sizes) - 1, 2):
            run(src, sizes[i], sizes[i + 1])
