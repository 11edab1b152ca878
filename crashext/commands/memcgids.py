"""``memcgids``: every memory cgroup, online and dying, with its ids and kmem id anomalies."""

from .. import render
from ..analysis.memcg import ANOMALIES, memcg_report
from ..progress import Progress

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

Anomaly codes:
""" + "\n".join(f"  {k}: {v}" for k, v in ANOMALIES.items())
TARGET = "required"

_HEADERS = ["MEMCG", "STATE", "CGROUP_ID", "CSS_ID", "MEMCG_ID", "KMEMCG_ID",
            "REFS", "USAGE_PG", "KMEM_PG", "PATH", "ANOMALIES"]
_ALIGN = ["left", "left", "right", "right", "right", "right", "right", "right", "right",
          "left", "left"]


def add_arguments(parser) -> None:
    parser.add_argument("--dying", action="store_true", help="list only dying (offline) memcgs")
    parser.add_argument("--flagged", action="store_true", help="list only memcgs with anomalies")
    parser.add_argument("--tree", action="store_true",
                        help="show paths indented like the cgroup tree")


def _dash(v) -> str:
    return "-" if v is None else str(v)


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
        ("KMEM IDS", f"{_dash(s['kmem_ids_in_use'])} in use, capacity "
                     f"{_dash(s['kmem_id_capacity'])}"
                     + (f" ({s['kmem_id_capacity_symbol']})" if s["kmem_id_capacity_symbol"] else "")),
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
    if s["walk_problem"]:
        pairs.append(("WALK", "INCOMPLETE: " + s["walk_problem"]))
    for name, why in sorted(s["idr_problems"].items()):
        pairs.append(("IDR", f"{name} INCOMPLETE: {why}"))
    if s["only_in_idr"]:
        pairs.append(("NOT IN TREE", f"{s['only_in_idr']} memcgs found only through an id tree"))
    return [render.kv_block(pairs)]


def run(args, ctx) -> int:
    t = ctx.target()
    prog = Progress("memcgids: memcgs read", stream=ctx.err)
    report = memcg_report(t, progress=prog)
    prog.done()
    rows = report.memcgs
    if args.dying:
        rows = [m for m in rows if not m.online]
    if args.flagged:
        rows = [m for m in rows if m.anomalies]
    if args.json:
        render.write_json(ctx.out, {"summary": report.summary,
                                    "anomaly_codes": ANOMALIES,
                                    "memcgs": [m.to_json() for m in rows]})
        return 0
    for line in _summary_lines(report.summary):
        ctx.out.write(line + "\n")
    ctx.out.write("\n")

    def table_rows():
        for m in rows:
            path = m.path
            if args.tree:
                leaf = path.rstrip("/").rsplit("/", 1)[-1] or "/"
                path = "  " * m.depth + leaf
            yield (f"{m.address:x}", m.state, _dash(m.cgroup_id), _dash(m.css_id),
                   _dash(m.memcg_id), _dash(m.kmemcg_id), _refs(m), _dash(m.usage_pages),
                   _dash(m.kmem_pages), path, ",".join(m.anomalies) or "-")

    render.write_table(ctx.out, table_rows(), _HEADERS, _ALIGN)
    for m in rows:
        for e in m.errors:
            ctx.warn(f"memcg {m.address:#x}: {e}")
    return 0
