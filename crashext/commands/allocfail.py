"""``allocfail``: page allocation failures in a kernel log, and why each failed."""

from typing import Any, Dict, List, Optional

from .. import gfp
from .. import render
from ..render import plural
from ..analysis import allocflags as afl
from ..analysis.allocreport import AllocReport, FailureView, analyze, analyze_file
from ..errors import CrashextError, InputError
from ..sources import logs
from ..sources.kmsg import record_when

NAME = "allocfail"
SUMMARY = "allocation failures in a kernel log: GFP flags decoded, caller, watermark verdict"
DESCRIPTION = """\
Read kernel logs the way an expert does: find every "page allocation
failure" (and vmalloc failure, OOM-killer report, SLUB failure), decode its
GFP mask with the kernel's own names for its version, name the caller, and
re-run the buddy allocator's watermark check on the zone and buddy lines
printed with it to say which zone failed at which order and by how much.

OOM-kill reports (global, memcg, cpuset) and SysRq-m / show_mem dumps get
the same zone and buddy analysis: header, constraint, memcg usage and limit,
the killed task, the largest tasks, and the watermark check re-run for the
OOM's own request (-v shows each in full).

Input: log files (dmesg, dmesg -T, vmcore-dmesg.txt, /var/log/messages,
journalctl output; .gz/.xz/.bz2 too), '-' for stdin, or the log inside a
dump with -c VMCORE -s VMLINUX.  Offline use needs neither root nor debug
info.

  crashext allocfail /var/crash/*/vmcore-dmesg.txt
  crashext allocfail -v messages.1.gz
  journalctl -k | crashext allocfail -
  crashext allocfail -c vmcore -s vmlinux --json
  crashext allocfail --sos sosreport-HOST-DATE.tar.xz"""
TARGET = "optional"


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="kernel log files ('-' for stdin); none: the dump's log (-c)")
    parser.add_argument("--sos", metavar="PATH",
                        help="the kernel log of a sosreport (directory or .tar.xz/.tar.gz "
                             "archive, read in place)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="each failure with its call trace, zones and verdict")
    parser.add_argument("--kernel-version", metavar="RELEASE",
                        help="decode GFP masks for this kernel release (e.g. 3.10.0-693.el7, "
                             "5.10, 6.1.116) instead of the release in the log; a stable "
                             "sublevel picks the allocator rules backported to it (a release "
                             "followed by its `uname -v`, 'Debian 6.1.192-3', says it too)")


def _reports(args, ctx) -> List[AllocReport]:
    out = []
    if getattr(args, "sos", None):
        if args.files or ctx.has_target:
            raise InputError("--sos PATH reads the report's own kernel log: not with log "
                             "FILEs or a dump")
        from ..sources import sosreport
        sos = sosreport.SosReport(args.sos)
        files, notes = sos.kernel_log_sources()
        if not files:
            raise InputError(f"{args.sos}: the sosreport has no kernel log "
                             "(sos_commands/kernel/dmesg, var/log/kern.log, var/log/messages)")
        raw = logs.CountingLines(sos.log_lines(files))
        rep = analyze(logs.normalize(raw), f"{args.sos} ({', '.join(files)})",
                      args.kernel_version)
        # the lines read, as for a log file, not the kernel lines kept after
        # normalising (other programs' lines dropped, #012 splits counted apart)
        rep.lines = raw.n
        rep.warnings += notes + sos.problems
        return [rep]
    if args.files:
        for path in args.files:
            name = "stdin" if path == "-" else path
            # the plain summary needs only the last failure of each group: memory
            # then stays flat however many failures a log holds
            keep = 100000 if (args.verbose or args.json) else 0
            rep = analyze_file(path, name, args.kernel_version, keep=keep)
            out.append(rep)
        return out
    if not ctx.has_target:
        raise InputError("give a log FILE ('-' for stdin) or a dump with -c VMCORE -s VMLINUX")
    t = ctx.target()
    names = gfp.names_from_target(t)
    try:
        uts = None if args.kernel_version else t.uts()["version"]
    except CrashextError:
        uts = None
    rep = analyze(logs.from_records(t.log_records()), f"kernel log of {t.source}",
                  args.kernel_version or t.release, names, uts_version=uts)
    if names is None:
        rep.warnings.append("the dump has no gfpflag_names[] (before v4.6): GFP names from "
                            "the built-in tables")
    return out + [rep]


def run(args, ctx) -> int:
    reports = _reports(args, ctx)
    if args.json:
        data = [r.to_json() for r in reports]
        render.write_json(ctx.out, data[0] if len(data) == 1 else data)
        return 0
    for i, rep in enumerate(reports):
        if i:
            ctx.out.write("\n")
        _write(ctx, rep, args.verbose)
    return 0


def _verdict_line(rep: AllocReport) -> str:
    n = sum(g.count for g in rep.groups)
    if not n:
        head = "no allocation failures found"
    else:
        comms = len({g.comm for g in rep.groups})
        head = f"{plural(n, 'allocation failure')} ({plural(comms, 'task name')})"
    extra = []
    if rep.ooms:
        extra.append(plural(len(rep.ooms), "OOM-killer report"))
    if rep.slub:
        extra.append(plural(len(rep.slub), "SLUB failure"))
    if rep.oops:
        extra.append(plural(len(rep.oops), "oops/BUG/panic header"))
    if rep.showmem:
        extra.append(f"{plural(len(rep.showmem), 'show_mem dump')} "
                     "(SysRq-m or other)")
    return head + ("; " + ", ".join(extra) if extra else "") + f" in {rep.source} ({rep.lines} lines)"


def _zone_why(zone: str, d: Dict[str, Any], short_of: str = "room") -> str:
    """One zone's watermark verdict in a few words.  A zone that fails only
    because of lowmem_reserve (it would pass with a reserve of 0: the
    verdict's ``lowmem_reserve_held``) says so: its memory is kept for
    lower-zone requests, not missing."""
    if d["ok"]:
        return f"{zone}: ok"
    if d.get("lowmem_reserve_held"):
        return f"{zone}: held back by lowmem_reserve"
    if d["check"] == "watermark":
        return f"{zone}: below min+reserve"
    return f"{zone}: no order-{d['failed_order']} {short_of}"


def _short_why(f: FailureView) -> str:
    if not f.zone_verdicts:
        notes = [e for e in f.explanation if "assumed" not in e]
        return (notes or f.explanation or ["-"])[0]
    return "; ".join(_zone_why(v.zone, v.verdict) for v in f.zone_verdicts)


def _newer_rule(f) -> Optional[str]:
    """What was assumed for a failure's kernel when it is newer than any
    this tool knows (said once per report, not per failure)."""
    try:
        gen = afl.generation(f.release, f.uts_version)
    except ValueError:
        return None
    return gen.assumed if gen.newer else None


def _write(ctx, rep: AllocReport, verbose: bool) -> None:
    out = ctx.out
    out.write(_verdict_line(rep) + "\n")
    for w in rep.warnings:
        ctx.warn(w)
    if rep.groups:
        out.write("\n")
        rows = []
        for g in rep.groups:
            f = g.last_view
            rows.append((g.count, g.comm, "-" if g.order is None else g.order,
                         "-" if g.mode is None else f"{g.mode:#x}", g.names or "-",
                         g.first, g.last, _short_why(f) if f else "-"))
        render.write_table(out, rows, ["COUNT", "COMM", "ORDER", "MODE", "FLAGS", "FIRST",
                                       "LAST", "WHY (last)"],
                           ["right", "left", "right", "left", "left", "left", "left", "left"])
        views = [g.last_view for g in rep.groups if g.last_view is not None]
        tables = sorted({f"{f.gfp_table_how}" for f in views})
        for t in tables:
            out.write(f"GFP names: {t}\n")
        for note in sorted({n for n in map(_newer_rule, views) if n}):
            out.write(f"RULE: {note}\n")
    if rep.ooms:
        out.write("\n")
        rows = [(v["comm"], v["gfp"]["mask"] or "-",
                 "|".join(v["gfp"]["names"] or v["gfp"]["printed"] or []) or "-",
                 "-" if v["order"] is None else v["order"],
                 "-" if v["oom_score_adj"] is None else v["oom_score_adj"],
                 v["scope"], _killed(v), _oom_why(v), v["when"])
                for v in rep.oom_views]
        render.write_table(out, rows, ["OOM INVOKER", "GFP", "FLAGS", "ORDER", "ADJ", "SCOPE",
                                       "KILLED", "WHY", "TIME"])
    if rep.showmem_views:
        out.write("\n")
        rows = []
        for v in rep.showmem_views:
            for z in v["zones"]:
                rows.append((v["when"], v["kind"], f"{z['node']} {z['zone']}",
                             _kb(z["free_kb"]), _kb(z["min_kb"]),
                             "-" if z["largest_free_order"] is None else z["largest_free_order"],
                             _largest_pass(v)))
        render.write_table(out, rows, ["SHOW_MEM", "TRIGGER", "ZONE", "FREE", "MIN",
                                       "LARGEST ORDER", "GFP_KERNEL PASSES UP TO"],
                           ["left", "left", "left", "right", "right", "right", "left"])
    if rep.slub:
        out.write("\n")
        rows = [(s.cache or "-", s.node, f"{s.gfp:#x}",
                 "|".join(s.gfp_names) if s.gfp_names else "-",
                 "-" if s.min_order is None else s.min_order,
                 "-" if s.default_order is None else s.default_order,
                 record_when(s))
                for s in rep.slub]
        render.write_table(out, rows, ["SLUB CACHE", "NODE", "GFP", "FLAGS", "MIN ORDER",
                                       "ORDER", "TIME"])
    if rep.oops:
        out.write("\n")
        for o in rep.oops:
            who = f" ({o.comm}, pid {o.pid})" if o.comm else ""
            rip = f" at {o.rip}" if o.rip else ""
            out.write(f"{o.kind.upper()}: {o.message}{rip}{who}, line {o.line}\n")
    if verbose:
        for f in rep.failures:
            out.write("\n")
            _write_failure(out, f)
        for v in rep.oom_views:
            out.write("\n")
            _write_oom(out, v)
        for v in rep.showmem_views:
            out.write("\n")
            out.write(f"== {v['header']}  ({v['kind']}, {v['when']}, lines "
                      f"{v['lines'][0]}-{v['lines'][1]}{', partial' if v['partial'] else ''})\n")
            _write_zones(out, v["zones"])
            g = v["gfp_kernel"]
            out.write(f"  a GFP_KERNEL request (rule {g['rule']}): {_largest_pass(v)}\n")
            for p in v["problems"]:
                out.write(f"  problem: {p}\n")


def _write_failure(out, f: FailureView) -> None:
    r = f.record
    when = f"{r.ts:.6f}" if r.ts is not None else (r.stamp or "-")
    out.write(f"== {r.header}\n")
    pairs = [
        ("LINES", f"{r.lines[0]}-{r.lines[1]}" + (" (partial)" if r.partial else "")),
        ("TIME", when),
        ("TASK", f"{r.task_comm or r.comm} pid {r.pid if r.pid is not None else '-'} "
                 f"cpu {r.cpu if r.cpu is not None else '-'}"),
        ("RELEASE", f.release or "-"),
        ("ORDER", "-" if r.order is None else f"{r.order} ({4 << r.order} kB with 4 kB pages)"
         + (", the vmalloc area's pages are allocated one such block at a time"
            if r.kind == "vmalloc" else "")),
        ("MODE", "-" if r.mode is None else f"{r.mode:#x} = {'|'.join(f.decoded or [])}"),
        ("GFP TABLE", f.gfp_table_how),
    ]
    if r.kind == "vmalloc":
        asked = "not printed" if r.size is None else f"{r.size} bytes"
        pairs.insert(5, ("SIZE", asked + ("" if r.allocated is None else
                                          f", {r.allocated} allocated before a page "
                                          "allocation failed")))
    if f.alloc_flags is not None:
        pairs.append(("ALLOC FLAGS", ("|".join(f.alloc_flags["names"]) or "none")
                      + f" (gfp_to_alloc_flags of generation {f.alloc_flags['generation']})"))
    if f.printed_names is not None:
        pairs.append(("PRINTED", "|".join(f.printed_names) +
                      ("" if f.names_agree else "  (differs from the table!)")))
    pairs.append(("CALLER", (f.caller or "-") + (f": {f.caller_why}" if f.caller_why else "")))
    for k in f.known_frames:
        if k["frame"] != f.caller:
            pairs.append(("CONTEXT", f"{k['frame']}: {k['why']}"))
    out.write(render.kv_block(pairs) + "\n")
    for p in r.problems:
        out.write(f"  problem: {p}\n")
    if r.trace:
        out.write("  call trace:\n")
        for fr in r.trace:
            out.write(f"    {fr}\n")
    if r.buddy:
        out.write("  buddy lines:\n")
        for b in r.buddy:
            state = {True: "total verified", False: "TOTAL MISMATCH", None: "no total"}[b.total_ok]
            out.write(f"    node {b.node} {b.zone:<7} {b.computed_kb} kB in blocks, printed "
                      f"{'-' if b.total_kb is None else b.total_kb} kB: {state}; free blocks "
                      f"per order {b.counts}\n")
    if f.zone_verdicts:
        out.write(f"  watermark check (rule {f.watermark_rule}, MIN watermark, pages):\n")
        rows = []
        for v in f.zone_verdicts:
            d = v.verdict
            rows.append((v.node, v.zone, v.free_pages, v.min, f"[{v.classzone_idx}] {v.reserve}",
                         "ok" if d["ok"] else f"FAIL at order {d['failed_order']}", d["reason"]))
        import io
        buf = io.StringIO()
        render.write_table(buf, rows, ["NODE", "ZONE", "FREE", "MIN", "RESERVE", "VERDICT",
                                       "BECAUSE"],
                           ["right", "left", "right", "right", "right", "left", "left"])
        for line in buf.getvalue().splitlines():
            out.write("    " + line + "\n")
    for e in f.explanation:
        out.write(f"  {e}\n")


def _kb(v) -> str:
    return "-" if v is None else f"{v} kB"


def _killed(v) -> str:
    k = v["killed"]
    if not k:
        return "-"
    rss = sum(k["kb"].get(x, 0) for x in ("anon-rss", "file-rss", "shmem-rss"))
    return f"{k['pid']} ({k['comm']})" + (f" rss {render.human_bytes(rss * 1024)}"
                                          if k["kb"] else "")


def _oom_why(v) -> str:
    if v["memcg"] and v["memcg"]["counters"].get("memory"):
        m = v["memcg"]["counters"]["memory"]
        return (f"memcg {v['memcg']['path'] or '?'} at {render.human_bytes(m['usage_kb'] * 1024)}"
                f" of limit {render.human_bytes(m['limit_kb'] * 1024)}, failcnt {m['failcnt']}")
    if v["verdicts"]:
        return "; ".join(_zone_why(z["zone"], z["verdict"], "block") for z in v["verdicts"])
    return (v["notes"] or ["-"])[0]


def _largest_pass(v) -> str:
    g = v["gfp_kernel"]
    if g["largest_passing_order"] is None:
        return "no order passes the MIN watermark" if g["per_order"] else \
            ("; ".join(g["notes"]) or "-")
    top = max(int(o) for o in g["per_order"])
    if g["first_failing_order"] is None:
        return f"order {g['largest_passing_order']} (every order 0..{top} passes)"
    return (f"order {g['largest_passing_order']}; orders {g['first_failing_order']} and above "
            "fail in every zone")


def _write_zones(out, zones) -> None:
    rows = []
    for z in zones:
        state = {True: "total ok", False: "TOTAL MISMATCH", None: "no total"}[z["buddy_total_ok"]]
        rows.append((z["node"], z["zone"], _kb(z["free_kb"]), _kb(z["min_kb"]), _kb(z["low_kb"]),
                     " ".join(str(x) for x in z["lowmem_reserve"] or []) or "-",
                     _kb(z["buddy_total_kb"]), state,
                     "-" if z["largest_free_order"] is None else z["largest_free_order"],
                     " ".join(str(x) for x in z["free_blocks"] or []) or "-"))
    import io
    buf = io.StringIO()
    render.write_table(buf, rows, ["NODE", "ZONE", "FREE", "MIN", "LOW", "LOWMEM_RESERVE",
                                   "BUDDY", "CHECK", "LARGEST", "FREE BLOCKS PER ORDER"],
                       ["right", "left", "right", "right", "right", "left", "right", "left",
                        "right", "left"])
    for line in buf.getvalue().splitlines():
        out.write("    " + line + "\n")


def _write_oom(out, v) -> None:
    out.write(f"== {v['header']}\n")
    g = v["gfp"]
    pairs = [("LINES", f"{v['lines'][0]}-{v['lines'][1]}" + (" (partial)" if v["partial"] else "")),
             ("TIME", v["when"]), ("SCOPE", v["scope"]),
             ("GFP", f"{g['mask']} = {'|'.join(g['names'] or []) or '-'} ({g['table_how']})"),
             ("ORDER", "-" if v["order"] is None else v["order"]),
             ("OOM_SCORE_ADJ", "-" if v["oom_score_adj"] is None else v["oom_score_adj"])]
    if v["constraint"]:
        pairs.append(("CONSTRAINT", ",".join(f"{k}={x}" if x else k
                                              for k, x in v["constraint"].items())))
    if v["memcg"]:
        for what, c in v["memcg"]["counters"].items():
            pairs.append((f"MEMCG {what.upper()}",
                          f"usage {c['usage_kb']} kB, limit {c['limit_kb']} kB, "
                          f"failcnt {c['failcnt']}"))
        if v["memcg"]["path"]:
            pairs.append(("MEMCG", v["memcg"]["path"]))
    if v["killed"]:
        k = v["killed"]
        pairs.append(("KILLED", f"{k['pid']} ({k['comm']}) "
                      + ", ".join(f"{n} {x} kB" for n, x in k["kb"].items())))
    out.write(render.kv_block(pairs) + "\n")
    for p in v["problems"]:
        out.write(f"  problem: {p}\n")
    if v["largest_tasks"]:
        out.write(f"  largest tasks by rss ({len(v['largest_tasks'])} of {v['tasks_listed']} "
                  "listed, pages):\n")
        for t in v["largest_tasks"]:
            out.write(f"    {t['pid']:>8} {t['name']:<16} rss {t['rss_pages']}  total_vm "
                      f"{t['total_vm_pages']}  oom_score_adj {t['oom_score_adj']}\n")
    if v["zones"]:
        out.write("  zones:\n")
        _write_zones(out, v["zones"])
    if v["verdicts"]:
        out.write(f"  watermark check of its own request (rule {v['watermark_rule']}, MIN, "
                  "pages):\n")
        for z in v["verdicts"]:
            d = z["verdict"]
            out.write(f"    node {z['node']} {z['zone']:<7} "
                      f"{'ok' if d['ok'] else 'FAIL at order %s' % d['failed_order']}: "
                      f"{d['reason']}\n")
    if v["conclusion"]:
        out.write(f"  verdict: {v['conclusion']}\n")
    for n in v["notes"]:
        out.write(f"  {n}\n")
