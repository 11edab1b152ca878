"""``memcgpins``: what keeps each dying memory cgroup alive."""

from typing import Any, Dict, List

from .. import render
from ..analysis.memcgpins import HELD_ORDER, TOP_FILES, memcg_pins
from ..errors import InputError
from ..progress import Progress

NAME = "memcgpins"
SUMMARY = "what keeps each dying memory cgroup alive: page cache, tmpfs, anon, swap, kmem, refs"
DESCRIPTION = """\
For every dying (removed but not freed) memory cgroup, the memory still
charged to it by kind, read from the kernel's own objects in one pass over
the page array: page cache of regular files, tmpfs/shmem, anonymous pages,
swapped-out pages (the swap owner records), kernel pages charged with
__GFP_ACCOUNT, slab pages of its own kmem caches (kernels before 5.9), the
child cgroups still linked under it, and the references its reference count
holds that none of these accounts for (a leak candidate).  For each, the
files behind its page cache (inode, device, filesystem type and path) and a
verdict; first a summary that says what holds how many, and the cure for
each kind.

Which kinds can keep a removed cgroup alive depends on the kernel: slab
objects are handed to the parent since 5.9, kernel pages since 5.13, page
cache and anonymous pages since 7.1; swapped-out pages always keep it.  The
summary names the rule this kernel follows.

--all lists every memcg, online ones too, with what is charged to each.
Struct pages the dump lacks (makedumpfile excluded them, or the file is cut)
are counted and said: the counts are then lower bounds."""
TARGET = "required"

_HEADERS = ["MEMCG", "STATE", "FILE", "SHMEM", "ANON", "SWAP", "KMEM", "SLAB", "KIDS",
            "REFS", "LEFT", "PATH", "VERDICT"]
_ALIGN = ["left", "left"] + ["right"] * 9 + ["left", "left"]
_FILE_HEADERS = ["PAGES", "KIND", "INO", "DEV", "FSTYPE", "MEMCGS", "PATH"]
_FILE_ALIGN = ["right", "left", "right", "left", "left", "right", "left"]


def add_arguments(parser) -> None:
    parser.add_argument("--all", action="store_true",
                        help="every memcg, online ones too (default: dying ones)")
    parser.add_argument("--top", type=int, default=TOP_FILES, metavar="N",
                        help=f"files named per memcg (default {TOP_FILES})")


def run(args, ctx) -> int:
    top = getattr(args, "top", TOP_FILES)
    if top is None or top < 0:
        raise InputError("--top N needs N >= 0")
    t = ctx.target()
    # inside crash or drgn the progress stream is the command's output, which
    # a redirection (memcgpins --json > FILE) writes whole to the file
    prog = Progress("memcgpins: struct pages read", stream=ctx.err,
                    enabled=not ctx.inside_crash)
    report = memcg_pins(t, all_memcgs=getattr(args, "all", False), top=top, progress=prog)
    s = report.summary
    if args.json:
        # the memcgs' rows are made as they are written, not all at once
        rows = render.Rows(lambda: (p.to_json() for p in report.memcgs))
        render.write_json(ctx.out, report.to_json(memcgs=rows))
        for w in s["warnings"]:
            ctx.warn(w)
        return 0
    ctx.out.write(render.kv_block(_summary_pairs(s)) + "\n\n")
    render.write_table(ctx.out, (_row(p) for p in report.memcgs), _HEADERS, _ALIGN)
    if s["top_files"]:
        ctx.out.write("\nFILES HOLDING DYING MEMCGS\n")
        render.write_table(ctx.out, (_file_row(f) for f in s["top_files"]),
                           _FILE_HEADERS, _FILE_ALIGN)
    for w in s["warnings"]:
        ctx.warn(w)
    return 0


def _summary_pairs(s: Dict[str, Any]) -> List[List[str]]:
    g = s["generation"]
    pins = [k for k, v in g["pins"].items() if v]
    free = [k for k, v in g["pins"].items() if not v]
    pa = s["page_array"]
    sw = s["swap"]
    pairs = [["MEMCGPINS", s["verdict"]],
             ["RELEASE", f"{s['release']}: rules of {g['releases']} ({g['record']})"],
             ["CAN PIN", ", ".join(pins) + (f"; handed to the parent at removal: "
                                            f"{', '.join(free)}" if free else "")],
             ["PAGE ARRAY", f"{pa['scanned']:,} of {pa['pages']:,} struct pages read "
                            f"({pa['model']})"
              + (f", {pa['unreadable']:,} unreadable" if pa["unreadable"] else "")],
             ["SWAP", f"{sw['slots']:,} slots recorded ({sw['source']}, {sw['devices']} device"
                      f"{'s' if sw['devices'] != 1 else ''})" if sw["source"]
              else "no swap owner records (no swap device, or swap not accounted)"]]
    for kind in HELD_ORDER:
        cure = s["cures"].get(kind)
        if cure:
            pairs.append([f"CURE {kind.upper()}", cure])
    if s.get("live"):
        pairs.append(["LIVE", "a running kernel: counts change while they are read"])
    if s.get("walk_problem"):
        pairs.append(["WALK", "INCOMPLETE: " + s["walk_problem"]])
    return pairs


def _row(p) -> tuple:
    d = render.dash
    refs = p.refs
    return (f"{p.memcg.address:x}", p.memcg.state, d(p.pages.get("file", 0)),
            d(p.pages.get("shmem", 0)), d(p.pages.get("anon", 0)), d(p.swap),
            d(p.pages.get("kmem", 0)), d(p.slab_pages), d(p.children), d(refs.get("total")),
            d(refs.get("unexplained")), p.memcg.path, p.verdict)


def _file_row(f: Dict[str, Any]) -> tuple:
    d = render.dash
    return (f["pages"], d(f.get("kind")), d(f.get("ino")), d(f.get("dev")), d(f.get("fstype")),
            f.get("memcgs", 1), f.get("path") or f"(unnamed: {f.get('problem') or '?'})")
