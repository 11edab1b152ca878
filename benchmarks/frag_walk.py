#!/usr/bin/env python3
"""Time frag's migrate-type walk against crash's and drgn's ``kmem -f`` on one dump.

Run by hand (numbers go in docs/frag.md, "Measured")::

    python3 benchmarks/frag_walk.py VMCORE VMLINUX [--repeat 5] [--no-crash] [--no-drgn]
                                    [--code DIR] [--json]

Each tool runs in its own fresh process, ``--repeat`` times, so every run
starts cold (no page cache of an earlier run in the same process) and pays
its own start-up, which is measured apart and not counted:

- ``frag``: crashext's ``from_target(migratetypes=False)`` (the per-order
  summary), then ``from_target(migratetypes=True)`` (the walk of every
  ``free_area[o].free_list[mt]``); timed after drgn has opened the dump.
  ``--code DIR`` imports crashext from another checkout (e.g. a
  ``git worktree`` of an older commit) to compare before and after.
- ``drgn``: drgn's own crash-compatible ``kmem -f``
  (``drgn.commands._crash``), run through its command namespace with
  stdout captured; timed after the same open.
- ``crash``: ``kmem -f > /dev/null`` inside one crash session, timed from
  inside the session with shell escapes before and after (wall clock and
  the crash process's CPU time from /proc/PID/schedstat), so crash's
  start-up is not counted; then ``kmem -f`` again (warm) and its last line.
- ``frag-in-crash`` (``--pykdump``): ``frag --migratetypes`` inside crash
  through PyKdump (``crashext crash``), i.e. crashext's walk over crash's
  reader: the same shell-escape timing, minus a ``frag`` without the walk.

For each: wall seconds and CPU seconds of the walk (best and median over the
repeats), blocks per second, the process's peak RSS (VmHWM) before and after
the walk, and the free page total the tool printed or computed, checked
against the dump's own ``nr_free`` sums.  The machine's load average is
printed too: on a shared host the CPU seconds are the steadier number.
"""

import argparse
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import redirect_stdout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _hwm_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _clock():
    return time.monotonic(), time.process_time()


# ------------------------------------------------------------------ children

def child_frag(vmcore: str, vmlinux: str, code: str) -> dict:
    sys.path.insert(0, code)
    from crashext.analysis import buddy_read
    from crashext.kernel import drgn_backend
    w0, _ = _clock()
    t = drgn_backend.open_core(vmcore, vmlinux)
    w1, c1 = _clock()
    rep = buddy_read.from_target(t, migratetypes=False, progress=False)
    w2, c2 = _clock()
    hwm_before = _hwm_kb()
    rep = buddy_read.from_target(t, migratetypes=True, progress=False)
    w3, c3 = _clock()
    hwm_after = _hwm_kb()
    rep2 = buddy_read.from_target(t, migratetypes=True, progress=False)
    w4, c4 = _clock()
    blocks = sum(sum(z.state.nr_free) for z in rep.zones)
    walked = sum(sum(sum(c) for c in z.state.free_by_mt.values()) for z in rep.zones)
    pages = sum(n << o for z in rep.zones for c in z.state.free_by_mt.values()
                for o, n in enumerate(c))
    errors = [e for z in rep.zones for e in z.walk_errors] + \
        [f"{z.key}: order {o} walked {a} nr_free {b}" for z in rep.zones
         for o, (a, b) in z.mt_mismatch.items()]
    same = [z.state.free_by_mt for z in rep.zones] == [z.state.free_by_mt for z in rep2.zones]
    # the floor for any walk through this reader: each 4 KiB block holding a
    # free-list node read once, in a freshly opened program (cold caches)
    from crashext.kernel.walk import walk_list
    pgdats = buddy_read.online_pgdats(t)
    blocks_read = set()
    for z in rep.zones:
        fa_ = buddy_read.pgdats_zone(t, pgdats, z).free_area
        for o in range(fa_.length()):
            for mt in range(fa_[o].free_list.length()):
                blocks_read.update(n & ~4095 for n in walk_list(t, fa_[o].free_list[mt].address))
    fresh = drgn_backend.open_core(vmcore, vmlinux)
    w5, c5 = _clock()
    for b in sorted(blocks_read):
        fresh.prog.read(b, 4096)  # drgn's reader itself (also in older checkouts)
    w6, c6 = _clock()
    return {"tool": "frag", "startup": w1 - w0, "summary_wall": w2 - w1,
            "summary_cpu": c2 - c1, "wall": w3 - w2, "cpu": c3 - c2,
            "warm_wall": w4 - w3, "warm_cpu": c4 - c3, "hwm_before_kb": hwm_before,
            "read_floor_wall": w6 - w5, "read_floor_cpu": c6 - c5, "node_blocks": len(blocks_read),
            "hwm_after_kb": hwm_after, "blocks": walked, "nr_free_blocks": blocks,
            "free_pages": pages, "release": rep.release, "zones": len(rep.zones),
            "lists": sum(len(z.state.free_by_mt) * len(z.state.nr_free) for z in rep.zones),
            "errors": errors + ([] if same else ["second walk differs from the first"])}


def _drgn_program(vmcore: str, vmlinux: str):
    import drgn
    prog = drgn.Program()
    prog.set_enabled_debug_info_finders([])
    prog.set_core_dump(vmcore)
    try:
        prog.load_debug_info([vmlinux])
    except drgn.MissingDebugInfoError:
        pass
    return prog


def child_drgn(vmcore: str, vmlinux: str) -> dict:
    w0, _ = _clock()
    import drgn
    import drgn.commands._crash  # noqa: F401  (registers the crash commands)
    from drgn.commands._crash.common import CRASH_COMMAND_NAMESPACE
    prog = _drgn_program(vmcore, vmlinux)
    w1, _ = _clock()

    def kmem_f() -> str:
        buf = io.StringIO()
        with redirect_stdout(buf):
            CRASH_COMMAND_NAMESPACE.run(prog, "kmem -f", globals={})
        return buf.getvalue()

    hwm_before = _hwm_kb()
    w2, c2 = _clock()
    out = kmem_f()
    w3, c3 = _clock()
    hwm_after = _hwm_kb()
    kmem_f()
    w4, c4 = _clock()
    m = re.search(r"nr_free_pages: (\d+)\s+\((verified|found \d+)\)", out)
    blocks = sum(int(r.group(1)) for r in re.finditer(
        r"^\s*\d+\s+\d+k\s+\w+\s+[0-9a-f]+\s+(\d+)\s+\d+\s*$", out, re.M))
    return {"tool": "drgn", "drgn": drgn.__version__, "startup": w1 - w0, "wall": w3 - w2,
            "cpu": c3 - c2, "warm_wall": w4 - w3, "warm_cpu": c4 - c3,
            "hwm_before_kb": hwm_before, "hwm_after_kb": hwm_after, "blocks": blocks,
            "last_line": m.group(0) if m else out.strip().splitlines()[-1:],
            "errors": [] if m and m.group(2) == "verified" else ["kmem -f did not verify"]}


# ------------------------------------------------------------------ crash

_MARK = "!echo CXMARK $(date +%s.%N) $(cut -d' ' -f1 /proc/$PPID/schedstat)"


def run_crash(vmcore: str, vmlinux: str) -> dict:
    script = "\n".join([
        "sys", _MARK,
        "!grep VmHWM /proc/$PPID/status",
        "kmem -f > /dev/null", _MARK,
        "!grep VmHWM /proc/$PPID/status",
        "kmem -f > /dev/null", _MARK,
        "kmem -f | grep -E '^ *[0-9]+ +[0-9]+k|nr_free_pages'",
        "quit"]) + "\n"
    w0 = time.monotonic()
    r = subprocess.run(["crash", "-s", vmlinux, vmcore], input=script, capture_output=True,
                       text=True, timeout=1800)
    total = time.monotonic() - w0
    marks = [(float(a), int(b) / 1e9) for a, b in re.findall(r"^CXMARK (\S+) (\d+)$", r.stdout, re.M)]
    hwm = [int(x) for x in re.findall(r"^VmHWM:\s+(\d+) kB", r.stdout, re.M)]
    if len(marks) != 3 or len(hwm) != 2:
        raise SystemExit(f"crash session did not run as expected (exit {r.returncode}):\n"
                         + (r.stdout + r.stderr)[-2000:])
    m = re.search(r"nr_free_pages: (\d+)\s+\((verified|found \d+)\)", r.stdout)
    blocks = sum(int(x.group(1)) for x in re.finditer(
        r"^\s*\d+\s+\d+k\s+[0-9a-f]+\s+(\d+)\s+\d+\s*$", r.stdout, re.M))
    return {"tool": "crash", "session": total, "startup": None,
            "wall": marks[1][0] - marks[0][0], "cpu": marks[1][1] - marks[0][1],
            "warm_wall": marks[2][0] - marks[1][0], "warm_cpu": marks[2][1] - marks[1][1],
            "hwm_before_kb": hwm[0], "hwm_after_kb": hwm[1], "blocks": blocks,
            "last_line": m.group(0) if m else None,
            "errors": [] if m and m.group(2) == "verified" else ["kmem -f did not verify"]}


def run_pykdump(vmcore: str, vmlinux: str, code: str) -> dict:
    """frag inside crash (PyKdump backend, crash's own reader): the walk is
    ``frag --migratetypes`` minus a ``frag`` without it, both after a first
    ``frag`` that loads the pack."""
    hwm = "!grep VmHWM /proc/$PPID/status"
    cmds = ["frag > /dev/null", _MARK, "frag > /dev/null", _MARK, hwm,
            "frag --migratetypes > /dev/null", _MARK, hwm,
            "frag --migratetypes > /dev/null", _MARK]
    env = dict(os.environ, PYTHONPATH=code)
    w0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "crashext", "crash", vmlinux, vmcore, "--", *cmds],
                       capture_output=True, text=True, timeout=1800, env=env, cwd=code)
    total = time.monotonic() - w0
    marks = [(float(a), int(b) / 1e9) for a, b in re.findall(r"^CXMARK (\S+) (\d+)$", r.stdout, re.M)]
    hwms = [int(x) for x in re.findall(r"^VmHWM:\s+(\d+) kB", r.stdout, re.M)]
    if len(marks) != 4 or len(hwms) != 2:
        raise SystemExit(f"crashext crash did not run as expected (exit {r.returncode}):\n"
                         + (r.stdout + r.stderr)[-2000:])
    base_w, base_c = marks[1][0] - marks[0][0], marks[1][1] - marks[0][1]
    return {"tool": "frag-in-crash", "session": total, "startup": None,
            "summary_cpu": base_c,
            "wall": marks[2][0] - marks[1][0] - base_w, "cpu": marks[2][1] - marks[1][1] - base_c,
            "warm_wall": marks[3][0] - marks[2][0] - base_w,
            "warm_cpu": marks[3][1] - marks[2][1] - base_c,
            "hwm_before_kb": hwms[0], "hwm_after_kb": hwms[1], "blocks": None, "errors": []}


# ------------------------------------------------------------------ driver

def _child(kind: str, a) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, a.vmcore, a.vmlinux,
           "--code", a.code]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"{kind} run failed (exit {r.returncode}): {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _summary(runs: list) -> dict:
    out = dict(runs[0])
    for k in ("wall", "cpu", "warm_wall", "warm_cpu", "startup", "summary_cpu", "session",
              "read_floor_cpu"):
        vals = [r[k] for r in runs if r.get(k) is not None]
        if vals:
            out[k] = min(vals)
            out[k + "_median"] = statistics.median(vals)
    out["hwm_before_kb"] = max(r["hwm_before_kb"] for r in runs)
    out["hwm_after_kb"] = max(r["hwm_after_kb"] for r in runs)
    out["errors"] = sorted({e for r in runs for e in r["errors"]})
    out["repeats"] = len(runs)
    return out


def _line(s: dict) -> str:
    rate = s["blocks"] / max(s["cpu"], 1e-9)
    return (f"{s['tool']:13} walk {s['wall']:6.2f} s wall (median {s['wall_median']:.2f}), "
            f"{s['cpu']:6.2f} s CPU (median {s['cpu_median']:.2f}), {rate:,.0f} blocks/CPU-s; "
            f"warm {s['warm_cpu']:.2f} s CPU; peak RSS {s['hwm_before_kb'] / 1024:.0f} -> "
            f"{s['hwm_after_kb'] / 1024:.0f} MiB; blocks {s['blocks']}"
            + (f"; ERRORS {s['errors']}" if s["errors"] else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("vmcore")
    ap.add_argument("vmlinux")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-crash", action="store_true")
    ap.add_argument("--no-drgn", action="store_true")
    ap.add_argument("--pykdump", action="store_true",
                    help="also time frag --migratetypes inside crash (needs PyKdump)")
    ap.add_argument("--code", default=ROOT, help="checkout whose crashext is timed")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", choices=("frag", "drgn"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child == "frag":
        print(json.dumps(child_frag(a.vmcore, a.vmlinux, a.code)))
        return 0
    if a.child == "drgn":
        print(json.dumps(child_drgn(a.vmcore, a.vmlinux)))
        return 0
    kinds = ["frag"] + ([] if a.no_drgn else ["drgn"]) + \
        ([] if a.no_crash or not shutil.which("crash") else ["crash"]) + \
        (["frag-in-crash"] if a.pykdump else [])
    runs = {k: [] for k in kinds}
    load = [os.getloadavg()[0]]
    for _ in range(a.repeat):  # interleaved, so load changes hit every tool alike
        for k in kinds:
            if k == "crash":
                runs[k].append(run_crash(a.vmcore, a.vmlinux))
            elif k == "frag-in-crash":
                runs[k].append(run_pykdump(a.vmcore, a.vmlinux, a.code))
            else:
                runs[k].append(_child(k, a))
        load.append(os.getloadavg()[0])
    res = {k: _summary(v) for k, v in runs.items()}
    res["load_average"] = [min(load), max(load)]
    res["dump"] = {"vmcore": a.vmcore, "bytes": os.path.getsize(a.vmcore), "code": a.code}
    if "frag-in-crash" in res:  # the same lists frag counted standalone
        res["frag-in-crash"]["blocks"] = res["frag"]["blocks"]
    if a.json:
        print(json.dumps(res, indent=1, sort_keys=True))
        return 0
    f = res["frag"]
    print(f"kernel {f['release']}, vmcore {res['dump']['bytes'] / 2**20:.1f} MiB: {f['zones']} zones, "
          f"{f['lists']} free lists, {f['blocks']} free blocks walked ({f['free_pages']} pages; "
          f"nr_free sums {f['nr_free_blocks']} blocks); best/median of {a.repeat}, "
          f"load average {res['load_average'][0]:.1f}..{res['load_average'][1]:.1f}")
    print(f"frag summary (no walk) {f['summary_cpu']:.3f} s CPU; drgn open {f['startup']:.2f} s; "
          f"reading the {f['node_blocks']} 4 KiB blocks that hold the nodes once, cold: "
          f"{f['read_floor_cpu']:.2f} s CPU")
    for k in kinds:
        print(_line(res[k]))
    if "crash" in res:
        print(f"crash session (start-up + 3x kmem -f) {res['crash']['session']:.1f} s; "
              f"crash says: {res['crash']['last_line']}")
    if "drgn" in res:
        print(f"drgn {res['drgn']['drgn']} says: {res['drgn']['last_line']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
