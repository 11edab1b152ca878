"""``memcgids``: every memory cgroup, online and dying, with its ids and kmem id anomalies."""

from .. import render
from .. import watch
from ..analysis.memcg import ANOMALIES, memcg_scan
from ..errors import InputError
from ..presentation import kmem_ids_text, snapshot_label
from ..progress import Progress
from ..sources import cgroupfs

NAME = "memcgids"
SUMMARY = "every memory cgroup (online and dying) with its ids and kmemcg_id anomalies"
DESCRIPTION = """\
List every struct mem_cgroup of the kernel, including offline ("dying") ones
that are still referenced: address, cgroup path, cgroup id (the inode number
user space sees), css id, memcg id, kmemcg_id, state, css refcount, memory
and kmem usage in pages, and anomalies.

A summary comes first: counts, which kernel structures were read to find
the memcgs, kmem accounting mode, kmem ids in use and their capacity, and on
kernels that index per-cache arrays by kmemcg_id (3.10 to 5.17) the size and
page order of the next array growth next to the largest free order.

Without debug info or root, --sys DIR (e.g. /sys/fs/cgroup) reports what
cgroupfs alone tells: the visible tree with usage, cgroup.stat's dying
descendants per cgroup (v2), and /proc/cgroups' num_cgroups against the
65535 memcg id limit; --sos PATH reads the same from a sosreport (directory
or archive, in place).  A tree outside /sys is a snapshot and is labelled
with when it was taken, not as read now.  --watch SECONDS (live kernel, --qemu or --sys)
prints the changes every interval until Ctrl-C or --count samples.

Anomaly codes:
""" + "\n".join(f"  {k}: {v}" for k, v in ANOMALIES.items())
TARGET = "optional"

_HEADERS = ["MEMCG", "STATE", "CGROUP_ID", "CSS_ID", "MEMCG_ID", "KMEMCG_ID",
            "REFS", "USAGE_PG", "KMEM_PG", "PATH", "ANOMALIES"]
_ALIGN = ["left", "left", "right", "right", "right", "right", "right", "right", "right",
          "left", "left"]


def add_arguments(parser) -> None:
    parser.add_argument("--dying", action="store_true", help="list only dying (offline) memcgs")
    parser.add_argument("--flagged", action="store_true", help="list only memcgs with anomalies")
    parser.add_argument("--tree", action="store_true",
                        help="show paths indented like the cgroup tree")
    parser.add_argument("--sys", metavar="DIR",
                        help="read cgroupfs under DIR (e.g. /sys/fs/cgroup) instead of a kernel: "
                             "no debug info or root needed")
    parser.add_argument("--sos", metavar="PATH",
                        help="read the cgroup tree and /proc/cgroups of a sosreport (its "
                             "directory or .tar.xz/.tar.gz archive, read in place)")
    parser.add_argument("--proc", metavar="DIR", default=None,
                        help="with --sys: where to read cgroups (/proc/cgroups) from "
                             "(default /proc)")
    watch.add_arguments(parser)


_dash = render.dash


def _refs(m) -> str:
    if m.refcount is None:
        return m.ref_mode if m.ref_mode != "?" else "-"
    return str(m.refcount) + ("" if m.ref_mode == "atomic" else f" ({m.ref_mode})")


def _summary_lines(s) -> list:
    verdict = (f"{s['total']} memcgs: {s['online']} online, {s['dying']} dying; "
               f"{s['flagged']} flagged")
    if s["anomalies"]:
        verdict += " (" + ", ".join(f"{k} x{v}" for k, v in sorted(s["anomalies"].items())) + ")"
    pairs = [
        ("MEMCGS", verdict),
        ("RELEASE", s["release"]),
        ("FOUND VIA", ", ".join(s["sources"])),
        ("KMEM", s["kmem_mode"]),
        ("KMEM IDS", kmem_ids_text(s)),
    ]
    r = s["next_resize"]
    if r is None:
        pairs.append(("NEXT RESIZE", "n/a (no per-kmemcg_id arrays on this kernel)"))
    elif r.get("at_maximum"):
        pairs.append(("NEXT RESIZE", f"none: arrays at their maximum of {r['size']} ids"))
    else:
        order = "slab object (no page order)" if r["order"] is None else f"order {r['order']}"
        lfo = s["largest_free_order"]
        lfo_s = f"largest free order {lfo}" if lfo is not None else "largest free order n/a"
        fb = "; vmalloc fallback" if r["vmalloc_fallback"] else "; no fallback"
        pairs.append(("NEXT RESIZE", f"{r['size']} ids, {render.human_bytes(r['bytes'])} "
                                     f"({r['bytes']} bytes) {order}, {r['what']}{fb}; {lfo_s}"))
    if s.get("live"):
        pairs.insert(0, ("LIVE", watch.stamp_line(s["live"])))
    if s["walk_problem"]:
        pairs.append(("WALK", "INCOMPLETE: " + s["walk_problem"]))
    for name, why in sorted(s["idr_problems"].items()):
        pairs.append(("IDR", f"{name} INCOMPLETE: {why}"))
    if s["only_in_idr"]:
        pairs.append(("NOT IN TREE", f"{s['only_in_idr']} memcgs found only through an id tree"))
    return [render.kv_block(pairs)]


def _live_scan(t, ctx, progress=None):
    """:func:`memcg_scan` with its rows in a temporary file (what the
    command prints is streamed, so its memory does not grow with the number
    of memcgs); on a live kernel a walk broken by a memcg freed mid-walk is
    retried once, and the time of reading recorded."""
    scan = memcg_scan(t, progress=progress, spool=True)
    if t.is_live and scan.summary["walk_problem"]:
        scan.close()
        scan = memcg_scan(t, spool=True)
    if t.is_live:
        scan.summary["live"] = watch.live_stamp(t)
    return scan


def run(args, ctx) -> int:
    # options added for live use; callers that build args by hand may omit them
    for opt in ("watch", "count", "sys", "proc", "sos"):
        if not hasattr(args, opt):
            setattr(args, opt, None)
    watch.check_interval(args.watch, args.count)
    if args.sos:
        if args.sys or args.proc or args.watch is not None:
            raise InputError("--sos PATH reads the report's own sys/fs/cgroup and proc/: "
                             "not with --sys, --proc or --watch (a report does not change)")
        if ctx.has_target and not ctx.inside_crash:
            raise InputError("give either --sos PATH or a kernel (-c/-k/--qemu), not both")
        return _run_sys(args, ctx)
    if args.proc and not args.sys:
        raise InputError("--proc DIR goes with --sys DIR (memcgids reads /proc/cgroups from it)")
    if args.sys:
        if ctx.has_target and not ctx.inside_crash:
            raise InputError("give either --sys DIR or a kernel (-c/-k/--qemu), not both")
        return _run_sys(args, ctx)
    t = ctx.target()
    if args.watch is not None:
        if not t.is_live:
            raise InputError("--watch needs a running kernel (-k, --qemu) or --sys DIR; "
                             "a dump does not change")

        def sample():
            with _live_scan(t, ctx) as scan:
                s = scan.summary
            return {"memcgs": s["total"], "online": s["online"], "dying": s["dying"],
                    "flagged": s["flagged"], "walk": "incomplete" if s["walk_problem"] else "ok"}

        return watch.watch(sample, args.watch, ctx.out, count=args.count,
                           header=f"memcgs of the {t.source}", json_lines=args.json,
                           err=ctx.err)
    prog = Progress("memcgids: memcgs read", stream=ctx.err)
    with _live_scan(t, ctx, progress=prog) as scan:
        prog.done()
        return _write(args, ctx, scan)


def _write(args, ctx, scan) -> int:
    """The summary, then the rows as they are read back from the scan."""
    def rows():
        for m in scan.rows():
            # not "not online": a memcg whose flags could not be read is "unknown"
            if args.dying and m.state != "dying":
                continue
            if args.flagged and not m.anomalies:
                continue
            yield m

    if args.json:
        render.write_json(ctx.out, {"summary": scan.summary,
                                    "anomaly_codes": ANOMALIES,
                                    # Memcg.to_json per row as it is written
                                    "memcgs": render.Rows(rows)})
        return 0
    for line in _summary_lines(scan.summary):
        ctx.out.write(line + "\n")
    ctx.out.write("\n")
    errors = []

    def table_rows():
        for m in rows():
            path = m.path
            if args.tree:
                leaf = path.rstrip("/").rsplit("/", 1)[-1] or "/"
                path = "  " * m.depth + leaf
            errors.extend((m.address, e) for e in m.errors)
            yield (f"{m.address:x}", m.state, _dash(m.cgroup_id), _dash(m.css_id),
                   _dash(m.memcg_id), _dash(m.kmemcg_id), _refs(m), _dash(m.usage_pages),
                   _dash(m.kmem_pages), path, ",".join(m.anomalies) or "-")

    render.write_table(ctx.out, table_rows(), _HEADERS, _ALIGN)
    for address, e in errors:
        ctx.warn(f"memcg {address:#x}: {e}")
    return 0


# -- --sys: cgroupfs only ------------------------------------------------------

_SYS_HEADERS = ["PATH", "INO", "MEMORY", "KMEM", "DESCENDANTS", "DYING", "DYING_HERE"]
_SYS_ALIGN = ["left", "right", "right", "right", "right", "right", "right"]


def _sys_summary(s) -> str:
    dying = "unknown" if s["dying"] is None else str(s["dying"])
    verdict = (f"{s['visible']} visible cgroups, {dying} dying" if s["visible"] is not None
               else "no cgroup tree: per-cgroup detail is missing")
    if s["num_cgroups"] is not None:
        verdict += (f"; {s['num_cgroups_source']} {s['num_cgroups']} of the "
                    f"{s['id_limit']} memcg id limit ({s['id_use_percent']}%)")
    if s.get("snapshot"):
        when = snapshot_label(s["snapshot"])
    else:
        when = f"{s['read_at']} in {s['read_seconds']} s (live: values change while read)"
    pairs = [("CGROUPFS", verdict),
             ("ROOT", f"{s['root']} (cgroup {s['hierarchy']})" if s["hierarchy"]
              else f"{s['root']}: {s.get('tree_missing') or 'not read'}"),
             ("SNAPSHOT" if s.get("snapshot") else "READ AT", when),
             ("RELEASE", s["release"] or "-"),
             ("DYING FROM", s["dying_source"] or "not available"),
             ("USAGE", render.human_bytes(s["memory_current"]) if s["memory_current"] is not None
              else "-")]
    if s["vanished"]:
        pairs.append(("VANISHED", f"{s['vanished']} cgroups removed while being read"))
    if s["walk_problem"]:
        pairs.append(("WALK", s["walk_problem"]))
    return render.kv_block(pairs)


def _run_sys(args, ctx) -> int:
    warn = None if args.json else ctx.warn
    proc = args.proc or "/proc"

    def read():
        if args.sos:
            from ..sources import sosreport, sosviews
            sos = sosreport.SosReport(args.sos)
            for p in sos.problems:
                ctx.warn(p)
            return sosviews.read_cgroups(sos, warn=warn)
        return cgroupfs.read_cgroupfs(args.sys, proc=proc, warn=warn)

    if args.watch is not None:
        first = [True]

        def sample():
            s = cgroupfs.read_cgroupfs(args.sys, proc=proc,
                                       warn=warn if first[0] else None).summary
            first[0] = False
            return {"visible cgroups": s["visible"], "dying": s["dying"],
                    "num_cgroups (memory)": s["num_cgroups"], "root usage": s["memory_current"]}

        return watch.watch(sample, args.watch, ctx.out, count=args.count,
                           header=f"cgroupfs {args.sys}", json_lines=args.json, err=ctx.err)
    report = read()
    rows = report.cgroups
    if args.dying:
        rows = [c for c in rows if c.dying_here]
    if args.json:
        render.write_json(ctx.out, {"summary": report.summary,
                                    "cgroups": [c.to_json() for c in rows]})
        return 0
    ctx.out.write(_sys_summary(report.summary) + "\n\n")
    if report.summary.get("tree_missing"):
        return 0        # no tree, no rows (a sosreport without sys/fs/cgroup)

    def table_rows():
        for c in rows:
            path = c.path
            if args.tree:
                path = "  " * c.depth + (path.rsplit("/", 1)[-1] or "/")
            yield (path, _dash(c.ino),
                   "-" if c.memory_current is None else render.human_bytes(c.memory_current),
                   "-" if c.kmem_usage is None else render.human_bytes(c.kmem_usage),
                   _dash(c.nr_descendants), _dash(c.nr_dying_descendants), _dash(c.dying_here))

    render.write_table(ctx.out, table_rows(), _SYS_HEADERS, _SYS_ALIGN)
    return 0
