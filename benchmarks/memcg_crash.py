#!/usr/bin/env python3
"""memcgids inside crash (PyKdump) against crash's own list + struct, in one run.

Usage::

    python3 benchmarks/memcg_crash.py VMCORE VMLINUX [--parent /many] [--sample 1000]
                                      [--repeat 3] [--crash DIR]

``--crash DIR``: a crash + PyKdump build (``DIR/crash``, ``DIR/mpykdump.so``,
e.g. ``~/.cache/crashext/pykdump/crash-8.0.2``); default: ``crash`` on PATH
and PyKdump where crashext finds it.  Each session is a fresh crash
process; times are taken inside the session by shell escapes (wall clock
and crash's CPU time from ``/proc/PID/schedstat``), so crash's start-up is
not counted.  Sessions taking turns, ``--repeat`` rounds, best and median:

- ``memcgids``: ``memcgids > /dev/null`` twice in one session: the first
  (cold: the pack's imports, gdb's type lookups) and the second (warm);
- ``crash``: crash's own way, which has no recursive walk and no paths:
  ``list -o cgroup_subsys_state.sibling -H`` over the children of
  ``--parent`` (all of them), then ``struct mem_cgroup.id,kmemcg_id,css.flags
  ADDR`` for ``--sample`` of them; the per-memcg cost of ``struct`` times
  the number of memcgs is the estimate for all of them.

The memcg addresses and the list head come from a drgn run of memcgids
beforehand.  Numbers go to docs/performance.md.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MARK = "!echo CXMARK $(date +%s.%N) $(cut -d' ' -f1 /proc/$PPID/schedstat)"


def _marks(out: str):
    return [(float(a), int(b) / 1e9) for a, b in re.findall(r"^CXMARK (\S+) (\d+)$", out, re.M)]


def _env(a):
    env = dict(os.environ, PYTHONPATH=ROOT)
    if a.crash:
        env["PATH"] = a.crash + os.pathsep + env.get("PATH", "")
        env["CRASHEXT_PYKDUMP"] = os.path.join(a.crash, "mpykdump.so")
    return env


def session_memcgids(a) -> dict:
    cmds = [_MARK, "memcgids > /dev/null", _MARK, "memcgids > /dev/null", _MARK,
            "!grep VmHWM /proc/$PPID/status"]
    w0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "crashext", "crash", a.vmlinux, a.vmcore, "--",
                        *cmds], capture_output=True, text=True, timeout=3600, env=_env(a),
                       cwd=ROOT)
    total = time.monotonic() - w0
    m = _marks(r.stdout)
    if len(m) != 3:
        raise SystemExit("memcgids session failed:\n" + (r.stdout + r.stderr)[-2000:])
    hwm = re.findall(r"^VmHWM:\s+(\d+) kB", r.stdout, re.M)
    return {"session": total, "cold_wall": m[1][0] - m[0][0], "cold_cpu": m[1][1] - m[0][1],
            "warm_wall": m[2][0] - m[1][0], "warm_cpu": m[2][1] - m[1][1],
            "hwm_kb": int(hwm[0]) if hwm else None}


def session_crash(a, head: int, sample) -> dict:
    lines = ["set scroll off", _MARK,
             f"list -o cgroup_subsys_state.sibling -H {head:#x} > /dev/null", _MARK]
    lines += [f"struct mem_cgroup.id,kmemcg_id,css.flags {x:#x} > /dev/null" for x in sample]
    lines += [_MARK, f"list -o cgroup_subsys_state.sibling -H {head:#x} | wc -l", "quit"]
    binary = os.path.join(a.crash, "crash") if a.crash else "crash"
    w0 = time.monotonic()
    r = subprocess.run([binary, "-s", a.vmlinux, a.vmcore], input="\n".join(lines) + "\n",
                       capture_output=True, text=True, timeout=7200)
    total = time.monotonic() - w0
    m = _marks(r.stdout)
    if len(m) != 3:
        raise SystemExit("crash session failed:\n" + (r.stdout + r.stderr)[-2000:])
    listed = re.findall(r"^\s*(\d+)\s*$", r.stdout, re.M)
    return {"session": total, "list_wall": m[1][0] - m[0][0], "list_cpu": m[1][1] - m[0][1],
            "struct_wall": m[2][0] - m[1][0], "struct_cpu": m[2][1] - m[1][1],
            "listed": int(listed[-1]) if listed else None, "sampled": len(sample)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("vmcore")
    ap.add_argument("vmlinux")
    ap.add_argument("--parent", default="/many", help="cgroup whose children crash lists")
    ap.add_argument("--sample", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--crash", help="directory with a crash binary and mpykdump.so")
    a = ap.parse_args()
    sys.path.insert(0, ROOT)
    from crashext.analysis.memcg import memcg_report
    from crashext.kernel import drgn_backend
    t = drgn_backend.open_core(a.vmcore, a.vmlinux)
    rep = memcg_report(t)
    parent = [m for m in rep.memcgs if m.path == a.parent]
    if not parent:
        raise SystemExit(f"no memcg with path {a.parent}")
    head = parent[0].address + t.member_offset("struct mem_cgroup", "css.children")
    kids = [m.address for m in rep.memcgs if m.path.rsplit("/", 1)[0] == a.parent]
    step = max(1, len(kids) // a.sample)
    sample = kids[::step][:a.sample]
    total = len(rep.memcgs)
    del t, rep
    runs = {"memcgids": [], "crash": []}
    load0 = os.getloadavg()[0]
    for _ in range(a.repeat):
        runs["memcgids"].append(session_memcgids(a))
        runs["crash"].append(session_crash(a, head, sample))
    load1 = os.getloadavg()[0]
    print(f"{a.vmcore}: {total} memcgs; crash lists the {len(kids)} children of {a.parent} "
          f"and reads {len(sample)} with struct; {a.repeat} rounds, load {load0:.1f} -> {load1:.1f}")

    def bm(kind, key):
        xs = [r[key] for r in runs[kind]]
        return min(xs), statistics.median(xs)
    for key in ("cold_cpu", "cold_wall", "warm_cpu", "warm_wall"):
        b, m = bm("memcgids", key)
        print(f"  memcgids in crash {key:10s} best {b:7.2f} s median {m:7.2f} s")
    print(f"  memcgids in crash session peak RSS "
          f"{max(r['hwm_kb'] or 0 for r in runs['memcgids']) / 1024:.0f} MiB")
    for key in ("list_cpu", "list_wall", "struct_cpu", "struct_wall"):
        b, m = bm("crash", key)
        print(f"  crash {key:11s} best {b:7.2f} s median {m:7.2f} s")
    per = bm("crash", "struct_cpu")[0] / max(len(sample), 1)
    lst = bm("crash", "list_cpu")[0]
    est = lst * total / max(len(kids), 1) + per * total
    print(f"  crash struct: {per * 1e3:.2f} ms CPU per memcg; estimate for all {total}: "
          f"{est:.1f} s CPU (list scaled + struct), no paths")
    print(f"  memcgids cold / crash estimate (CPU): {bm('memcgids', 'cold_cpu')[0] / est:.2f}")
    print(json.dumps({"runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
