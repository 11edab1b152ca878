#!/usr/bin/env python3
"""Time frag's migrate-type walk against crash's ``kmem -f`` on one dump.

Run by hand:  python3 benchmarks/frag_walk.py VMCORE VMLINUX [--repeat N]
Prints seconds for: opening the dump (drgn), frag without the walk, frag
with --migratetypes (the walk), and crash's `kmem -f` (whole crash session
minus a session running only `sys`, so crash's own start-up is not counted).
Record the numbers in docs/frag.md.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from crashext.analysis import frag as fa  # noqa: E402
from crashext.kernel import drgn_backend  # noqa: E402


def _crash(vmcore, vmlinux, commands):
    script = "\n".join(commands + ["quit"]) + "\n"
    t0 = time.monotonic()
    r = subprocess.run(["crash", "-s", vmlinux, vmcore], input=script, capture_output=True,
                       text=True, timeout=1800)
    return time.monotonic() - t0, r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("vmcore")
    ap.add_argument("vmlinux")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    best = {}
    for _ in range(a.repeat):
        t0 = time.monotonic()
        t = drgn_backend.open_core(a.vmcore, a.vmlinux)
        t1 = time.monotonic()
        rep = fa.from_target(t, migratetypes=False, progress=False)
        t2 = time.monotonic()
        rep = fa.from_target(t, migratetypes=True, progress=False)
        t3 = time.monotonic()
        for k, v in (("open", t1 - t0), ("zones", t2 - t1), ("walk", t3 - t2)):
            best[k] = min(best.get(k, v), v)
    blocks = sum(sum(z.state.nr_free) for z in rep.zones)
    print(f"kernel {rep.release}: {len(rep.zones)} zones, {blocks} free blocks walked")
    print(f"drgn open          {best['open']:.2f} s")
    print(f"frag (no walk)     {best['zones']:.3f} s")
    print(f"frag --migratetypes {best['walk']:.3f} s "
          f"({blocks / max(best['walk'], 1e-9):,.0f} blocks/s)")
    if shutil.which("crash"):
        base = min(_crash(a.vmcore, a.vmlinux, ["sys"])[0] for _ in range(a.repeat))
        kmem = min(_crash(a.vmcore, a.vmlinux, ["sys", "kmem -f"])[0] for _ in range(a.repeat))
        print(f"crash start-up     {base:.2f} s")
        print(f"crash kmem -f      {kmem - base:.2f} s (session {kmem:.2f} s)")
    else:
        print("crash not installed: kmem -f not timed")


if __name__ == "__main__":
    main()
