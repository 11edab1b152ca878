#!/usr/bin/env python3
"""allocfail throughput on a large generated log, against grep -c, in one run.

Builds SIZE_MB of kernel log: the RHEL7 idr-bug incident's allocation failure (with
its full Mem-Info, zone and buddy lines) every 5,000 lines among ordinary
dmesg lines, timestamps increasing, then runs, each in a fresh process and
taking turns for ``--repeat`` rounds,

    grep -c 'page allocation failure' FILE
    python3 -m crashext allocfail FILE            (table output)
    python3 -m crashext --help                    (start-up alone)

and reports per command the CPU seconds (user + system of the child, from
wait4) best and median, MB/s of the best, the ratio to grep, and the peak
RSS (constant memory is the claim: run with two sizes and compare).
``--code DIR`` adds the same allocfail run from another checkout (before /
after).  Sources are compiled first so no run pays for it.  Numbers go in
docs/performance.md.

    python3 benchmarks/allocfail_throughput.py [SIZE_MB ...] [--repeat N] [--code DIR]
"""

import os
import re
import resource
import statistics
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


def timed(cmd, code=ROOT):
    """(CPU seconds of the child, its peak RSS in KiB, its stdout)."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE,
                             env=dict(os.environ, PYTHONPATH=code), cwd=code)
        _, status, ru = os.wait4(p.pid, 0)
        err = p.stderr.read().decode()
        p.stderr.close()
        if status != 0:
            raise SystemExit(f"{cmd[0]} failed: {err.strip()}")
        out.seek(0)
        return ru.ru_utime + ru.ru_stime, ru.ru_maxrss, out.read().decode()


def main(argv):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="*", type=int)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--code", help="another checkout's allocfail, run alongside")
    a = ap.parse_args(argv)
    codes = [("crashext", ROOT)] + ([("before", a.code)] if a.code else [])
    for _, c in codes:
        subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(c, "crashext")],
                       stdout=subprocess.DEVNULL)
    for size in a.sizes or [315]:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "big.log")
            failures = generate(path, size)
            mb = os.path.getsize(path) / 1e6
            kinds = {"grep -c": (["grep", "-c", "page allocation failure", path], ROOT),
                     "start-up": ([sys.executable, "-m", "crashext", "--help"], ROOT)}
            for name, c in codes:
                kinds[f"{name} allocfail"] = ([sys.executable, "-m", "crashext", "allocfail",
                                               path], c)
            runs = {k: [] for k in kinds}
            load0 = os.getloadavg()[0]
            for _ in range(a.repeat):
                for k, (cmd, c) in kinds.items():
                    runs[k].append(timed(cmd, c))
            load1 = os.getloadavg()[0]
            print(f"{mb:.1f} MB, {failures} failures planted, {a.repeat} rounds, "
                  f"load average {load0:.1f} -> {load1:.1f}")
            gbest = min(r[0] for r in runs["grep -c"])
            for k, rs in runs.items():
                cpu = [r[0] for r in rs]
                best = min(cpu)
                found = rs[0][2].split()[0] if rs[0][2] else "-"
                rate = f"{mb / best:8.0f} MB/s" if best > 0 else "      -     "
                print(f"  {k:20s} CPU best {best:6.3f} s median {statistics.median(cpu):6.3f} s "
                      f"{rate}  {best / max(gbest, 1e-9):6.1f}x grep  peak RSS "
                      f"{max(r[1] for r in rs) / 1024:5.0f} MiB  printed {found}")


if __name__ == "__main__":
    main(sys.argv[1:])
