"""``frag``: buddy free lists by zone, order and migrate type; fragmentation
indices; and whether an order-N allocation would pass each zone's watermark."""

import argparse
from typing import Any, Dict, Optional

from .. import render
from .. import watch
from ..analysis import buddy
from ..analysis.fragmentation import FragOptions, fragmentation, verdict_line
from ..analysis import allocflags as afl
from ..errors import InputError
from ..presentation import snapshot_label
from ..sources.procfs import ProcDir

NAME = "frag"
SUMMARY = "buddy free lists, fragmentation indices and an order-N watermark verdict"
DESCRIPTION = """\
Per node and zone: managed/present/free pages, watermarks, lowmem_reserve and
free blocks per order (as /proc/buddyinfo), the kernel's unusable-free and
fragmentation indices per order (as debugfs extfrag/), and whether an order-N
request passes the zone's low and min watermarks as the kernel's
__zone_watermark_ok() of that generation decides it.  The first line is the
verdict.

Reads a kernel (-c VMCORE -s VMLINUX, or -k) or text (--proc DIR: a live
/proc, a saved copy, an sosreport's proc/, or a directory holding
buddyinfo, zoneinfo, pagetypeinfo, extfrag_index, unusable_index).

The verdict is for a request that may use zones up to --classzone (default
Normal, what GFP_KERNEL reaches on x86_64) and has no ALLOC_* flags unless
--alloc-flags says so; the allocation fails only if every zone fails the min
watermark (the slowpath's), it wakes kswapd when every zone fails low.

--sos PATH reads a sosreport's proc/ in place (directory or .tar.xz/.tar.gz)
and says when it was taken; a saved --proc copy is labelled by its file
times.  Every reading ends with the compaction and reclaim counters
(/proc/vmstat, or the dump's vm_event_states).  --log FILE instead shows
every Mem-Info block of a kernel log (allocation failures, OOM reports,
SysRq-m) per zone: free memory and largest free order over time.

--watch SECONDS (live kernel, --qemu or --proc) prints the changes of each
zone's free pages and highest free order every interval, until Ctrl-C or
--count N samples."""
TARGET = "optional"

_FLAGS = ("high", "harder", "oom", "highatomic", "cma")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--order", type=int, metavar="N",
                        help="give the verdict for an order-N request (default: every order)")
    parser.add_argument("--migratetypes", action="store_true",
                        help="count free blocks per migrate type (walks the kernel's free "
                             "lists; from text, pagetypeinfo's counts)")
    parser.add_argument("--all", action="store_true", help="show unpopulated zones too")
    parser.add_argument("--proc", metavar="DIR", help="read text files from DIR instead of a kernel")
    parser.add_argument("--sos", metavar="PATH",
                        help="read the proc/ files of a sosreport (directory or .tar.xz/.tar.gz "
                             "archive, read in place)")
    parser.add_argument("--log", metavar="FILE",
                        help="fragmentation over time: every Mem-Info block of a kernel log "
                             "(allocation failures, OOM reports, SysRq-m), per zone")
    parser.add_argument("--page-size", type=int, metavar="BYTES",
                        help="page size of --proc/--sos text (default: from its meminfo and "
                             "zoneinfo, else 4096, said to be assumed)")
    parser.add_argument("--release", metavar="RELEASE",
                        help="kernel release of --proc text (picks the watermark rule)")
    parser.add_argument("--classzone", metavar="ZONE",
                        help="highest zone the request may use (default Normal)")
    parser.add_argument("--alloc-flags", metavar="FLAGS", default="",
                        help="comma-separated ALLOC_* rights of the request: "
                             + ", ".join(_FLAGS) + " (default none, as GFP_KERNEL)")
    watch.add_arguments(parser)


def _parse_flags(text: str) -> Dict[str, bool]:
    out = {}
    for w in [x.strip().lower() for x in text.split(",") if x.strip()]:
        if w not in _FLAGS:
            raise InputError(f"unknown --alloc-flags word {w!r} (choose from {', '.join(_FLAGS)})")
        out[w] = True
    return out


def _short(mt: str) -> str:
    return mt[8:].capitalize() if mt.startswith("MIGRATE_") else mt


def _newer(res: Dict[str, Any]) -> bool:
    """Whether the kernel is newer than any this tool knows."""
    try:
        return afl.generation(res["release"] or "").newer
    except ValueError:
        return False


def _watch_sample(res: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for z in res["zones"]:
        name = f"Node {z['node']} {z['zone']}"
        nr = z["nr_free"]
        top = max([o for o, n in enumerate(nr) if n] or [-1])
        out[f"{name} highest free order"] = top if top >= 0 else None
        out[f"{name} free pages"] = z["free_pages"]
    s = res["verdict"]
    out["first failing order"] = s["first_failing_order"]
    return out


def _result(args, ctx) -> Dict[str, Any]:
    """The options and the source the arguments name, and the analysis of it."""
    flags = _parse_flags(args.alloc_flags)
    if args.proc and args.sos:
        raise InputError("give either --proc DIR or --sos PATH, not both")
    opts = FragOptions(order=args.order, classzone=args.classzone, alloc_flags=flags,
                       migratetypes=args.migratetypes, all_zones=args.all,
                       release=args.release, page_size=getattr(args, "page_size", None))
    source: Any
    if args.sos:
        if ctx.has_target:
            raise InputError("give either --sos PATH or a kernel (-c/-k), not both")
        from ..sources import sosreport
        source = sosreport.SosReport(args.sos)
    elif args.proc:
        if ctx.has_target:
            raise InputError("give either --proc DIR or a kernel (-c/-k), not both")
        source = ProcDir(args.proc)
    else:
        if not ctx.has_target:
            raise InputError("nothing to read: give -c VMCORE -s VMLINUX, -k, or --proc DIR")
        source = ctx.target()
    res = fragmentation(source, opts, err=ctx.err)
    if not args.proc and not args.sos and ctx.target().is_live:
        res["live"] = watch.live_stamp(ctx.target())
    return res


def run(args, ctx) -> int:
    # options added for live use; callers that build args by hand may omit them
    for opt in ("watch", "count", "sys", "proc", "sos", "log"):
        if not hasattr(args, opt):
            setattr(args, opt, None)
    watch.check_interval(args.watch, args.count)
    if args.log:
        return _run_log(args, ctx)
    if args.watch is not None:
        if args.sos:
            raise InputError("--watch needs a running kernel or --proc DIR; a sosreport "
                             "does not change")
        if not args.proc and ctx.has_target and not ctx.target().is_live:
            raise InputError("--watch needs a running kernel (-k, --qemu) or --proc DIR; "
                             "a dump does not change")
        first = _result(args, ctx)
        for e in first["errors"]:
            ctx.warn(e)
        pending = [first]

        def sample():
            res = pending.pop() if pending else _result(args, ctx)
            return _watch_sample(res)

        return watch.watch(sample, args.watch, ctx.out, count=args.count,
                           header=f"free lists of {first['source']}", json_lines=args.json,
                           err=ctx.err)
    res = _result(args, ctx)
    for e in res["errors"]:
        ctx.warn(e)
    if args.json:
        render.write_json(ctx.out, res)
        return 0
    out = ctx.out
    ps = res["page_size"]
    out.write(verdict_line(res, ps) + "\n")
    if res["rule_note"] and (res["alloc_flags"] or _newer(res)):
        # without ALLOC_* rights the candidate rules agree; with them, say it is a
        # guess; a kernel newer than any known is said to be one either way
        out.write(f"RULE: {res['rule_note']}\n")
    if res["page_size_source"].startswith("assumed"):
        out.write(f"PAGE SIZE: {render.human_bytes(ps)}, {res['page_size_source']}\n")
    if res["live"]:
        out.write("LIVE: " + watch.stamp_line(res["live"]) + "\n")
    if res.get("snapshot"):
        out.write("SNAPSHOT: " + snapshot_label(res["snapshot"]) + "\n")
    for z in res["zones"]:
        out.write("\n")
        _zone_block(out, z, ps, res, args)
    if res.get("reclaim"):
        out.write(f"\nCOMPACTION AND RECLAIM (from {res['reclaim']['source']}, "
                  "cumulative since boot)\n")
        for line in res["reclaim"]["statements"]:
            out.write(f"  {line}\n")
    return 0


def _pages(n: Optional[int], ps: int) -> str:
    return "-" if n is None else f"{render.human_bytes(n * ps)} ({n})"


def _zone_block(out, z: Dict[str, Any], ps: int, res: Dict[str, Any], args) -> None:
    wm = z["watermark"]
    out.write(f"Node {z['node']}, zone {z['zone']}"
              + ("" if z["populated"] else " (unpopulated)") + "\n")
    free = f"free {_pages(z['free_pages'], ps)}"
    if z["free_pages_folded"] is not None and z["free_pages_folded"] != z["free_pages"]:
        free += f", with per-CPU deltas {z['free_pages_folded']}"
    free += f", in buddy lists {z['free_pages_buddy']}"
    rows = [("managed", _pages(z["managed_pages"], ps)), ("present", _pages(z["present_pages"], ps)),
            ("free", free[5:]),
            ("watermarks", f"min {_pages(wm['min'], ps)}  low {_pages(wm['low'], ps)}  "
                           f"high {_pages(wm['high'], ps)}  boost {wm['boost']}"),
            ("lowmem_reserve", " ".join(str(x) for x in z["lowmem_reserve"]) or "-")]
    if z["highatomic_pages"]:
        rows.append(("highatomic", _pages(z["highatomic_pages"], ps)))
    out.write(render.kv_block(rows) + "\n")
    nr = z["nr_free"]
    bym = z["free_by_migratetype"] if args.migratetypes else None
    mts = [m for m in (res["migratetypes"] or (list(bym) if bym else [])) if bym and m in bym]
    headers = ["ORDER", "BLOCK", "BLOCKS", "FREE"]
    align = ["right", "right", "right", "right"]
    headers += [_short(m).upper() for m in mts]
    align += ["right"] * len(mts)
    headers += ["UNUSABLE", "EXTFRAG"]
    align += ["right", "right"]
    ver = z["verdicts"]
    if ver:
        headers += ["LOW", "MIN"]
        align += ["left", "left"]
    headers.append("")
    align.append("left")
    biggest = max([n << o for o, n in enumerate(nr)] + [1])
    rows_t = []
    orders = [args.order] if args.order is not None else range(len(nr))
    for o in orders:
        row = [str(o), render.human_bytes(ps << o), str(nr[o]), render.human_bytes((nr[o] << o) * ps)]
        for m in mts:
            val = str(bym[m][o])
            if {"migratetype": m, "order": o} in z["migratetype_capped"]:
                val = ">" + val
            row.append(val)
        row += [buddy.format_index(z["unusable_index"][o]), buddy.format_index(z["extfrag_index"][o])]
        if ver:
            vo = ver.get(str(o))
            row += [("PASS" if vo["low"]["ok"] else "FAIL") if vo else "-",
                    ("PASS" if vo["min"]["ok"] else "FAIL") if vo else "-"]
        row.append(render.bar(nr[o] << o, biggest, 20))
        rows_t.append(row)
    render.write_table(out, rows_t, headers, align)
    for o, mm in z["migratetype_mismatch"].items():
        out.write(f"  order {o}: free lists hold {mm['walked']} blocks, nr_free says "
                  f"{mm['nr_free']}\n")
    for e in z["walk_errors"]:
        out.write(f"  free list walk stopped: {e}\n")
    for name, mine, theirs in (("unusable_index", z["unusable_index"], z["kernel_unusable_index"]),
                               ("extfrag_index", z["extfrag_index"], z["kernel_extfrag_index"])):
        if theirs is not None and theirs != mine[:len(theirs)]:
            out.write(f"  note: the kernel's {name} differs from the one computed from "
                      f"buddyinfo (files read at different times?)\n")


# -- --log: fragmentation over time ---------------------------------------------

def log_timeline(lines, source: str) -> Dict[str, Any]:
    """The JSON of ``frag --log``: every show_mem block of a log, per zone."""
    from ..analysis import meminfo_blocks
    from ..sources import kmsg
    entries = meminfo_blocks.timeline(kmsg.extract(lines))
    series = meminfo_blocks.zone_series(entries)
    return {"source": source, "blocks": entries,
            "zones": {f"{k[0]}:{k[1]}": v for k, v in sorted(series.items())}}


def _run_log(args, ctx) -> int:
    from ..sources import logs
    if args.proc or args.sos or ctx.has_target or args.watch is not None:
        raise InputError("--log FILE reads a kernel log only: not with --proc, --sos, a kernel "
                         "or --watch")
    res = log_timeline(logs.kernel_log(args.log), "stdin" if args.log == "-" else args.log)
    if args.json:
        render.write_json(ctx.out, res)
        return 0
    write_timeline(ctx.out, res)
    return 0


def write_timeline(out, res: Dict[str, Any], indent: str = "") -> None:
    """Per zone, one row per Mem-Info block: free memory and largest free order."""
    blocks = res["blocks"]
    if not blocks:
        out.write(f"{indent}no Mem-Info blocks (allocation failures, OOM reports, SysRq-m) "
                  f"in {res['source']}\n")
        return
    kinds: Dict[str, int] = {}
    for b in blocks:
        kinds[b["kind"]] = kinds.get(b["kind"], 0) + 1
    out.write(f"{indent}{render.plural(len(blocks), 'Mem-Info block')} in "
              f"{res['source']} ({', '.join(f'{k} x{n}' for k, n in kinds.items())})\n")
    for key, rows in res["zones"].items():
        node, zone = key.split(":", 1)
        out.write(f"\n{indent}Node {node}, zone {zone}: free memory and largest free order "
                  "at each block\n")
        top = max([r["free_kb"] or 0 for r in rows] + [1])
        table_rows = []
        for r in rows:
            lo = r["largest_free_order"]
            table_rows.append((r["when"], r["kind"],
                               "-" if r["free_kb"] is None else f"{r['free_kb']} kB",
                               "-" if r["min_kb"] is None else f"{r['min_kb']} kB",
                               "-" if lo is None else lo,
                               "-" if lo is None else render.human_bytes(r["largest_block_kb"] * 1024),
                               render.bar(r["free_kb"] or 0, top, 20)))
        import io
        buf = io.StringIO()
        render.write_table(buf, table_rows, ["TIME", "BLOCK", "FREE", "MIN", "LARGEST ORDER",
                                             "BLOCK SIZE", ""],
                           ["left", "left", "right", "right", "right", "right", "left"])
        for line in buf.getvalue().splitlines():
            out.write(indent + line + "\n")
