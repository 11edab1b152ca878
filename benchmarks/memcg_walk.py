#!/usr/bin/env python3
"""memcgids against a bare drgn walk, and --json against the table, in one run.

Usage::

    python3 benchmarks/memcg_walk.py VMCORE VMLINUX [--repeat N] [--code DIR]

Every measurement runs in a fresh process (``--child``), the kinds taking
turns round after round so that the machine's load falls on all of them
alike; CPU seconds (``time.process_time``) are the steadier number on a
shared host, wall seconds are printed too.  Per kind, best and median of
``--repeat`` rounds:

- ``bare``: drgn alone, after the dump is open: ``css_for_each_descendant_pre``
  from ``root_mem_cgroup`` reading each memcg's id, kmemcg_id, css flags and
  ``cgroup_path`` (drgn's helpers) -- the anchor; its peak RSS is "drgn with
  the dump open and walked";
- ``walk``: crashext's ``memcg_report`` (tree walk, every field, both id
  trees, the anomaly checks) after the same open;
- ``table`` / ``json``: the whole ``memcgids`` command (``crashext.cli.main``)
  with its output to /dev/null, open included, so ``json - table`` is what
  the JSON costs beyond the table; peak RSS of each, against drgn with the
  dump open (the target: at most 50 MiB more) and against drgn's own walk
  (what crashext adds beyond the dump pages any walk maps).  Each child
  also reports, at its end, how much of the vmcore file is mapped
  (libkdumpfile maps the dump) and how much anonymous memory it holds.

Ratios are computed from the best CPU seconds of the same run.  ``--code
DIR`` imports crashext from another checkout (e.g. a ``git worktree`` of an
older commit) for a before/after.  Numbers go to docs/performance.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _hwm_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _mapped_kb(vmcore: str) -> dict:
    """Now (not peak): resident KiB of the vmcore file's mappings (libkdumpfile
    maps it) and of anonymous memory, from /proc/self/smaps."""
    real = os.path.realpath(vmcore)
    out = {"vmcore_kb": 0, "anon_kb": 0}
    current = None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(None, 1)
            if not head[0].endswith(":") or "-" in head[0]:
                parts = line.split()
                current = parts[5] if len(parts) > 5 else ""
            elif head[0] == "Rss:" and current == real:
                out["vmcore_kb"] += int(line.split()[1])
            elif head[0] == "Anonymous:":
                out["anon_kb"] += int(line.split()[1])
    return out


def _clock():
    return time.monotonic(), time.process_time()


def child(kind: str, vmcore: str, vmlinux: str, code: str) -> dict:
    sys.path.insert(0, code)
    if kind in ("table", "json"):
        from crashext import cli
        argv = ["memcgids", "-c", vmcore, "-s", vmlinux] + (["--json"] if kind == "json" else [])
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        w0, c0 = _clock()
        os.dup2(devnull, 1)
        try:
            rc = cli.main(argv)
            sys.stdout.flush()
        finally:
            os.dup2(saved, 1)
        w1, c1 = _clock()
        return {"kind": kind, "wall": w1 - w0, "cpu": c1 - c0, "rc": rc, "hwm_kb": _hwm_kb(),
                **_mapped_kb(vmcore)}
    from crashext.kernel import drgn_backend
    t = drgn_backend.open_core(vmcore, vmlinux)
    open_kb = _hwm_kb()
    if kind == "bare":
        from drgn import container_of
        from drgn.helpers.linux.cgroup import cgroup_path, css_for_each_descendant_pre
        prog = t.prog
        w0, c0 = _clock()
        n = 0
        root = prog["root_mem_cgroup"]
        for css in css_for_each_descendant_pre(root.css.address_of_()):
            memcg = container_of(css, "struct mem_cgroup", "css")
            memcg.id.id.value_()
            memcg.kmemcg_id.value_()
            css.flags.value_()
            cgroup_path(css.cgroup)
            n += 1
        w1, c1 = _clock()
        return {"kind": kind, "wall": w1 - w0, "cpu": c1 - c0, "memcgs": n,
                "open_hwm_kb": open_kb, "hwm_kb": _hwm_kb(), **_mapped_kb(vmcore)}
    from crashext.analysis.memcg import memcg_report
    w0, c0 = _clock()
    r = memcg_report(t)
    w1, c1 = _clock()
    return {"kind": kind, "wall": w1 - w0, "cpu": c1 - c0, "memcgs": len(r.memcgs),
            "dying": r.summary["dying"], "open_hwm_kb": open_kb, "hwm_kb": _hwm_kb(),
            **_mapped_kb(vmcore)}


def run_child(kind: str, a, script: str = __file__) -> dict:
    """One measurement in a fresh process: ``script --child KIND``."""
    extra = ["--crash", a.crash] if getattr(a, "crash", None) else []
    p = subprocess.run([sys.executable, os.path.abspath(script), "--child", kind,
                        a.vmcore, a.vmlinux, "--code", a.code, *extra],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=a.code),
                       cwd=a.code)
    if p.returncode != 0:
        raise SystemExit(f"{kind} run failed: {p.stderr.strip()[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def rounds(kinds, a, script: str = __file__) -> dict:
    """``a.repeat`` rounds of every kind in turn (so the machine's load falls
    on all of them alike): {kind: [result...]}; says the rounds and the load."""
    runs = {k: [] for k in kinds}
    load0 = os.getloadavg()
    for _ in range(a.repeat):
        for k in kinds:
            runs[k].append(run_child(k, a, script))
    load1 = os.getloadavg()
    print(f"{a.vmcore}: {a.repeat} rounds, {os.cpu_count()} CPUs, load average "
          f"{load0[0]:.1f} -> {load1[0]:.1f}; code {a.code}")
    return runs


def _stats(xs):
    return min(xs), statistics.median(xs)


def arguments(kinds: str, repeat: int, crash: bool = False):
    """The command line every such benchmark takes (VMCORE VMLINUX, --repeat,
    --code, --kinds, and --child for the measured process; ``crash``: and
    --crash DIR, a crash + PyKdump build)."""
    ap = argparse.ArgumentParser()
    if crash:
        ap.add_argument("--crash", metavar="DIR",
                        help="crash + PyKdump build (DIR/crash, DIR/mpykdump.so)")
    ap.add_argument("vmcore")
    ap.add_argument("vmlinux")
    ap.add_argument("--repeat", type=int, default=repeat)
    ap.add_argument("--code", default=ROOT)
    ap.add_argument("--kinds", default=kinds)
    ap.add_argument("--child")
    return ap.parse_args()


def main() -> int:
    a = arguments("bare,walk,table,json", 5)
    if a.child:
        print(json.dumps(child(a.child, a.vmcore, a.vmlinux, a.code)))
        return 0
    kinds = a.kinds.split(",")
    runs = rounds(kinds, a)
    best = {}
    for k in kinds:
        cb, cm = _stats([r["cpu"] for r in runs[k]])
        wb, wm = _stats([r["wall"] for r in runs[k]])
        hwm = max(r["hwm_kb"] for r in runs[k]) / 1024
        extra = ""
        r0 = runs[k][0]
        if "memcgs" in r0:
            extra = f", {r0['memcgs']} memcgs, dump open {r0['open_hwm_kb'] / 1024:.0f} MiB"
        best[k] = cb
        last = runs[k][-1]
        print(f"  {k:6s} CPU best {cb:6.2f} s median {cm:6.2f} s | wall best {wb:6.2f} s "
              f"median {wm:6.2f} s | peak RSS {hwm:5.0f} MiB{extra}; at the end "
              f"vmcore mapped {last['vmcore_kb'] / 1024:.0f} MiB, anonymous "
              f"{last['anon_kb'] / 1024:.0f} MiB")
    if "bare" in best and "walk" in best:
        print(f"  walk / bare (best CPU): {best['walk'] / best['bare']:.2f}x")
    if "table" in best and "json" in best:
        print(f"  json - table (best CPU): {best['json'] - best['table']:+.2f} s")
    if "bare" in runs and "table" in runs:
        print(f"  peak RSS: memcgids table {max(r['hwm_kb'] for r in runs['table']) / 1024:.0f} MiB, "
              f"json {max(r['hwm_kb'] for r in runs.get('json', runs['table'])) / 1024:.0f} MiB; "
              f"drgn with the dump open and walked {max(r['hwm_kb'] for r in runs['bare']) / 1024:.0f} MiB")
        # the anchor: drgn with the dump open (median of the bare runs, taken
        # before their walk); ours: the highest peak of any run
        opened = statistics.median(r["open_hwm_kb"] for r in runs["bare"]) / 1024
        walked = statistics.median(r["hwm_kb"] for r in runs["bare"]) / 1024
        for k in ("table", "json"):
            if k in runs:
                peaks = [r["hwm_kb"] / 1024 for r in runs[k]]
                over = max(peaks) - opened
                print(f"  memcgids {k} over drgn with the dump open ({opened:.0f} MiB): "
                      f"{over:+.0f} MiB, median {statistics.median(peaks) - opened:+.0f} "
                      f"(target <= +50: {'met' if over <= 50 else 'not met'}); over drgn's "
                      f"own walk ({walked:.0f} MiB): {max(peaks) - walked:+.0f} MiB, median "
                      f"{statistics.median(peaks) - walked:+.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
