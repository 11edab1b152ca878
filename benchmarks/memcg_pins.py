#!/usr/bin/env python3
"""memcgpins' page pass against a bare drgn loop over for_each_page(), in one run.

Usage::

    python3 benchmarks/memcg_pins.py VMCORE VMLINUX [--repeat N] [--code DIR]

Every measurement runs in a fresh process, the kinds taking turns round
after round so that the machine's load falls on all of them alike; CPU
seconds (``time.process_time``) are the steadier number on a shared host,
wall seconds are printed too.  Kinds, each after the dump is open:

- ``bare`` (the anchor): ``for page in for_each_page(prog):
  page.memcg_data.value_()`` (``mem_cgroup`` before v5.11) -- drgn's own
  loop reading nothing but each page's memcg word; its peak RSS before the
  loop is "drgn with the dump open";
- ``floor``: reading and decompressing the page array alone
  (:meth:`crashext.kernel.pages.PageArray.chunks`, nothing decoded): no
  pass over the struct pages can be faster;
- ``pass``: the whole of memcgpins after the memcg walk (done first,
  untimed): the page pass with every kind counted, the swap owner records,
  the files of every dying memcg named (``--top 5``), references and
  verdicts -- what the command does beyond memcgids' walk;
- ``walk``: the memcg walk alone, for reference;
- ``command``: ``crashext memcgpins --json`` to /dev/null, open included;
- ``crash`` (with ``--crash DIR``): ``memcgpins --json > /dev/null`` inside a
  crash session with PyKdump, timed inside the session between shell
  escapes as benchmarks/memcg_crash.py does (crash's start-up not counted;
  CPU from crash's /proc/PID/schedstat); against ``pass`` + ``walk`` it is
  the "inside crash within 2x of standalone" target.

Ratios come from the best CPU seconds of the same run.  Numbers go to
docs/performance.md.  The 8 GiB ``scale`` dump (tests/vmcore/scenarios/
scale.sh, 2,097,152 pages, 15,000 dying memcgs each holding one tmpfs page
of a file of its own) is the one the targets are stated for; build it with
``tests/vmcore/build-fixture --kernel bookworm --scenario scale``.
"""

import json
import os
import statistics
import sys

# the fresh-process rounds, peak RSS and clocks of the memcgids benchmark
from memcg_crash import _MARK, _env, _marks
from memcg_walk import _clock, _hwm_kb, arguments, rounds


def _command(vmcore: str, vmlinux: str) -> dict:
    from crashext import cli
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    w0, c0 = _clock()
    os.dup2(devnull, 1)
    try:
        rc = cli.main(["memcgpins", "--json", "-c", vmcore, "-s", vmlinux])
        sys.stdout.flush()
    finally:
        os.dup2(saved, 1)
    w1, c1 = _clock()
    return {"wall": w1 - w0, "cpu": c1 - c0, "rc": rc}


def _in_crash(a) -> dict:
    """memcgpins inside crash: one session, timed between shell escapes."""
    import subprocess
    cmds = [_MARK, "memcgpins --json > /dev/null", _MARK, "!grep VmHWM /proc/$PPID/status"]
    r = subprocess.run([sys.executable, "-m", "crashext", "crash", a.vmlinux, a.vmcore, "--",
                        *cmds], capture_output=True, text=True, timeout=3600, env=_env(a))
    m = _marks(r.stdout)
    if len(m) != 2:
        raise SystemExit("crash session failed:\n" + (r.stdout + r.stderr)[-2000:])
    hwm = [int(x) for x in r.stdout.split() if x.isdigit()][-1:]
    return {"kind": "crash", "wall": m[1][0] - m[0][0], "cpu": m[1][1] - m[0][1],
            "hwm_kb": hwm[0] if hwm else 0}


def child(kind: str, vmcore: str, vmlinux: str, code: str) -> dict:
    sys.path.insert(0, code)
    if kind == "command":
        out = _command(vmcore, vmlinux)
        out.update(kind=kind, hwm_kb=_hwm_kb())
        return out
    from crashext.kernel import drgn_backend
    t = drgn_backend.open_core(vmcore, vmlinux)
    open_kb = _hwm_kb()
    out = {"kind": kind, "open_hwm_kb": open_kb}
    if kind == "bare":
        import drgn
        from drgn.helpers.linux.mm import for_each_page
        prog = t.prog
        member = "memcg_data" if prog.type("struct page").has_member("memcg_data") \
            else "mem_cgroup"
        w0, c0 = _clock()
        n = charged = 0
        for page in for_each_page(prog):
            try:
                charged += page.member_(member).value_() != 0
            except drgn.FaultError:
                continue
            n += 1
        w1, c1 = _clock()
        out.update(pages=n, charged=charged)
    elif kind == "floor":
        from crashext.kernel.pages import PageArray
        w0, c0 = _clock()
        pa = PageArray.of(t)
        n = sum(c.count for c in pa.chunks())
        w1, c1 = _clock()
        out.update(pages=n, unreadable=pa.unreadable)
    elif kind == "walk":
        from crashext.analysis.memcgpins import memcg_walk
        w0, c0 = _clock()
        walked = memcg_walk(t)
        w1, c1 = _clock()
        out.update(memcgs=len(walked.addresses))
    else:
        from crashext.analysis.memcgpins import memcg_pins, memcg_walk
        walked = memcg_walk(t)
        import numpy  # noqa: F401  (its import is start-up, not the pass)
        w0, c0 = _clock()
        rep = memcg_pins(t, top=5, walked=walked)
        w1, c1 = _clock()
        s = rep.summary
        out.update(pages=s["page_array"]["scanned"], dying=s["dying"],
                   files=sum(len(p.files) for p in rep.memcgs), verdict=s["verdict"])
    out.update(wall=w1 - w0, cpu=c1 - c0, hwm_kb=_hwm_kb())
    return out


def main() -> int:
    a = arguments("bare,floor,pass,walk,command", 3, crash=True)
    if a.crash and "crash" not in a.kinds.split(","):
        a.kinds += ",crash"
    if a.child == "crash":
        print(json.dumps(_in_crash(a)))
        return 0
    if a.child:
        print(json.dumps(child(a.child, a.vmcore, a.vmlinux, a.code)))
        return 0
    kinds = a.kinds.split(",")
    runs = rounds(kinds, a, __file__)
    best = {}
    for k in kinds:
        cpus = [r["cpu"] for r in runs[k]]
        walls = [r["wall"] for r in runs[k]]
        best[k] = min(cpus)
        r0 = runs[k][0]
        extra = {key: r0[key] for key in ("pages", "charged", "dying", "files", "memcgs",
                                          "unreadable") if key in r0}
        print(f"  {k:7s} CPU best {min(cpus):6.2f} s median {statistics.median(cpus):6.2f} s | "
              f"wall best {min(walls):6.2f} s median {statistics.median(walls):6.2f} s | "
              f"peak RSS {max(r['hwm_kb'] for r in runs[k]) / 1024:5.0f} MiB {extra}")
    if "bare" in best:
        for k in ("floor", "pass", "command"):
            if k in best:
                print(f"  bare / {k} (best CPU): {best['bare'] / best[k]:.2f}x")
        opened = statistics.median(r["open_hwm_kb"] for r in runs["bare"]) / 1024
        for k in ("pass", "command"):
            if k in runs:
                over = max(r["hwm_kb"] for r in runs[k]) / 1024 - opened
                print(f"  {k} peak RSS over drgn with the dump open ({opened:.0f} MiB): "
                      f"{over:+.0f} MiB (target <= +100: {'met' if over <= 100 else 'not met'})")
    if "pass" in runs:
        print(f"  verdict: {runs['pass'][0]['verdict']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
