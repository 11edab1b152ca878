"""The report's pictures: matplotlib figures written as inline SVG.

Each function takes a section of :func:`crashext.report.data.assemble` and
returns the ``<svg>`` element as text.  Every figure has a title, axis
labels with units and a legend; series differ by hatching or marker shape
as well as colour, so a greyscale print keeps them apart.  Text is kept as
SVG text (``svg.fonttype = none``): smaller pages, searchable numbers.
"""

import io
import re
from typing import Any, Dict, List, Optional, Tuple

import matplotlib

matplotlib.use("svg")  # no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

__all__ = ["zone_figure", "memcg_figure", "timeline_figure", "MIB"]

MIB = 1024 * 1024

# Colours with distinct lightness (a greyscale print keeps them apart) plus hatches.
_SHADES = ["#1b3a6b", "#e0a33a", "#6fa8dc", "#7a2e2e", "#b7d7a8", "#555555", "#f4cccc"]
_HATCHES = ["", "//", "..", "xx", "\\\\", "oo", "--"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]

_RC = {"svg.fonttype": "none", "font.size": 10, "axes.titlesize": 11,
       "axes.labelsize": 10, "legend.fontsize": 9, "font.family": "sans-serif",
       "hatch.linewidth": 0.6}


def _svg(fig, salt: str) -> str:
    buf = io.StringIO()
    with plt.rc_context({"svg.hashsalt": salt, **_RC}):
        # no bbox_inches="tight": each figure is laid out once by tight_layout
        # (a tight bbox would lay out and measure every text a second time)
        fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # inline: no XML declaration or DOCTYPE
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    # ids are unique per figure through the salt; make them unique per page too
    prefix = re.sub(r"\W", "_", salt)
    text = re.sub(r'id="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = re.sub(r'url\(#([^)]+)\)', lambda m: f'url(#{prefix}-{m.group(1)})', text)
    text = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{prefix}-{m.group(1)}"', text)
    text = re.sub(r'<svg ', f'<svg role="img" aria-label="{salt}" ', text, count=1)
    return text


def _short_mt(mt: str) -> str:
    return mt[8:].capitalize() if mt.startswith("MIGRATE_") else mt


def _mark_failed(ax, failed: Optional[int], orders: int) -> None:
    if failed is not None and 0 <= failed < orders:
        ax.axvspan(failed - 0.5, failed + 0.5, facecolor="none", edgecolor="#000000",
                   linestyle="--", linewidth=1.2, label=f"failed request: order {failed}")


def _order_bars(ax, what: str, series: List[Tuple[str, List[int]]], n: int,
                page_size: int, failed: Optional[int], title: str) -> None:
    """One bar panel of :func:`zone_figure` over ``n`` orders: free blocks
    (``what`` "blocks") or free memory ("mib") by order, stacked by migrate
    type."""
    orders = list(range(n))
    page_mib = page_size / MIB
    bottom = [0.0] * n
    for i, (mt, counts) in enumerate(series):
        vals = [(counts[o] if o < len(counts) else 0) * ((1 << o) * page_mib
                                                           if what == "mib" else 1)
                for o in orders]
        # zero-height bars draw nothing but still cost SVG paths: leave them out
        nz = [o for o in orders if vals[o]] or [0]
        ax.bar(nz, [vals[o] for o in nz], bottom=[bottom[o] for o in nz],
               color=_SHADES[i % len(_SHADES)], hatch=_HATCHES[i % len(_HATCHES)],
               edgecolor="#222222", linewidth=0.5, label=_short_mt(mt))
        bottom = [b + v for b, v in zip(bottom, vals)]
    _mark_failed(ax, failed, n)
    ax.set_xticks(orders)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel(f"order (block = 2^order x {page_size // 1024} KiB pages)")
    if what == "mib":
        ax.set_ylim(0, (max(bottom) or 1) * 1.08)
    if what == "blocks":
        ymax = max(bottom) or 1
        nonzero = [v for v in bottom if v]
        # order-0 counts can dwarf the rest by 10^5: a log axis keeps the
        # high orders visible (the totals are printed on the bars either way)
        logy = bool(nonzero) and ymax / min(nonzero) > 50
        if logy:
            ax.set_yscale("log")
            ax.set_ylim(0.5, ymax * 4)
        else:
            ax.set_ylim(0, ymax * 1.12)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("free blocks (count" + (", log scale)" if logy else ")"))
        ax.set_title(f"{title}: free blocks by order")
        for o, tot in enumerate(bottom):
            ax.text(o, tot * 1.1 if logy else tot + ymax * 0.01, f"{int(tot)}",
                    ha="center", va="bottom", fontsize=7)
    else:
        ax.set_ylabel("free memory (MiB)")
        ax.set_title(f"{title}: free memory by order")
    ax.grid(axis="y", linestyle=":", linewidth=0.5)


def _unusable_panel(ax, zone: Dict[str, Any], failed: Optional[int], title: str) -> None:
    """The unusable free index by order, with the orders whose request fails
    the min watermark marked."""
    n = len(zone["nr_free"])
    orders = list(range(n))
    ui = [v / 1000 for v in zone["unusable_index"]]
    ax.plot(orders, ui, marker="o", color="#1b3a6b", label="unusable free index")
    if zone.get("passes"):
        fails = [p["order"] for p in zone["passes"] if not p["min"]]
        if fails:
            ax.plot(fails, [ui[o] for o in fails], linestyle="none", marker="X",
                    markersize=10, color="#7a2e2e",
                    label="order-N request fails min watermark")
    _mark_failed(ax, failed, n)
    ax.set_ylim(-0.03, 1.05)
    ax.set_xticks(orders)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("order")
    ax.set_ylabel("unusable index (fraction, 0..1)")
    ax.set_title(f"{title}: unusable free index")
    ax.grid(linestyle=":", linewidth=0.5)


def zone_figure(zone: Dict[str, Any], page_size: int, failed: Optional[int], key: str) -> str:
    """Free blocks and free memory by order (stacked by migrate type where
    known) and the unusable free index by order, for one zone."""
    with plt.rc_context(_RC):
        nr = zone["nr_free"]
        n = len(nr)
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        title = f"Node {zone['node']} zone {zone['zone']}"
        by_mt = zone.get("free_by_migratetype") or None
        if by_mt:
            series = [(k, v) for k, v in by_mt.items() if any(v)]
            if not series:
                series = [("all types", nr)]
        else:
            series = [("all types (split unknown)", nr)]
        for ax, what in ((axes[0], "blocks"), (axes[1], "mib")):
            _order_bars(ax, what, series, n, page_size, failed, title)
        ax = axes[2]
        _unusable_panel(ax, zone, failed, title)
        # one legend under the panels: it never hides a bar or a point
        handles, labels = axes[0].get_legend_handles_labels()
        h2, l2 = ax.get_legend_handles_labels()
        for h, lab in zip(h2, l2):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
        # fixed margins, not tight_layout: one zone figure per zone, and measuring
        # every tick label to place the panels costs more than drawing them
        fig.subplots_adjust(left=0.055, right=0.99, bottom=0.27, top=0.91, wspace=0.25)
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6),
                   frameon=False, title="migrate type / marks" if by_mt else None)
        return _svg(fig, f"zone {key}")


def memcg_figure(mc: Dict[str, Any]) -> str:
    """Counts online/dying/flagged, the parents holding most dying memcgs,
    and kmem ids in use against the arrays' capacity."""
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6),
                                 gridspec_kw={"width_ratios": [1, 1.6, 1.1]})
        ax = axes[0]
        labels = ["online", "dying", "flagged"]
        vals = [mc.get("online") or 0, mc.get("dying") or 0, mc.get("flagged") or 0]
        for i, (lab, v) in enumerate(zip(labels, vals)):
            ax.barh(i, v, color=_SHADES[i], hatch=_HATCHES[i], edgecolor="#222222", label=lab)
            ax.text(v, i, f" {v}", va="center", fontsize=9)
        ax.set_yticks(range(3))
        ax.set_yticklabels(labels)
        ax.invert_yaxis()
        ax.set_xlabel("memcgs (count)")
        ax.set_title(f"Memory cgroups: {mc.get('total')} in all")
        ax.set_xlim(0, max(vals + [1]) * 1.25)
        ax.legend(loc="lower right")
        ax = axes[1]
        parents = mc.get("dying_parents") or []
        if parents:
            names = [_ellipsize(p["parent"], 38) for p in parents]
            counts = [p["dying"] for p in parents]
            ax.barh(range(len(parents)), counts, color=_SHADES[1], hatch=_HATCHES[1],
                    edgecolor="#222222", label="dying children")
            for i, c in enumerate(counts):
                ax.text(c, i, f" {c}", va="center", fontsize=8)
            ax.set_yticks(range(len(parents)))
            ax.set_yticklabels(names, fontsize=8)
            ax.invert_yaxis()
            ax.set_xlim(0, max(counts) * 1.2)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(loc="lower right")
        else:
            ax.text(0.5, 0.5, "no dying memcgs", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_yticks([])
        ax.set_xlabel("dying memcgs (count)")
        ax.set_title("Parents holding the most dying memcgs")
        ax = axes[2]
        used, cap = mc.get("kmem_ids_in_use"), mc.get("kmem_id_capacity")
        if used is not None:
            ax.barh(0, used, color=_SHADES[0], edgecolor="#222222", label="kmem ids in use")
            ax.text(used, 0, f" {used}", va="center", fontsize=9)
            if cap is not None:
                ax.axvline(cap, color="#000000", linestyle="--",
                           label=f"capacity ({mc.get('kmem_id_capacity_symbol') or 'arrays'}): {cap}")
            ax.set_xlim(0, max(used, cap or 0, 1) * 1.3)
            ax.legend(loc="upper right", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no kmem ids in this kernel", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_yticks([])
        ax.set_ylim(-0.8, 1.4)
        ax.set_xlabel("kmem cache ids (count)")
        nr = mc.get("next_resize") or {}
        sub = ""
        if nr.get("order") is not None:
            sub = f"\nnext array growth: order {nr['order']}"
            if mc.get("largest_free_order") is not None:
                sub += f", largest free order {mc['largest_free_order']}"
        if used is not None and cap is None:
            sub = "\n(no fixed-size id arrays in this kernel)"
        ax.set_title("kmem ids against capacity" + sub)
        fig.tight_layout()
        return _svg(fig, "memcgs")


def _ellipsize(s: str, n: int) -> str:
    return s if len(s) <= n else "..." + s[-(n - 3):]


_EVENT_STYLE = {  # kind: (lane label, marker, shade)
    "oom": ("OOM kill", "X", "#7a2e2e"),
    "warning": ("warning", "^", "#e0a33a"),
    "oops": ("oops / BUG", "D", "#555555"),
    "panic": ("panic", "*", "#000000"),
}


def timeline_figure(tl: Dict[str, Any]) -> str:
    """Allocation failures (by order), OOM kills, warnings and the panic on
    one time axis; below, the largest free order each Mem-Info printed."""
    with plt.rc_context(_RC):
        events = tl["events"]
        t0 = events[0]["time"]
        rel = lambda t: t - t0  # noqa: E731
        lfo = tl.get("largest_free_order") or {}
        rows = 3 if lfo else 2
        fig, axes = plt.subplots(rows, 1, figsize=(13, 2.2 * rows + 0.8), sharex=True,
                                 gridspec_kw={"height_ratios": [2, 1.2] + ([2] if lfo else [])})
        ax = axes[0]
        fails = [e for e in events if e["kind"] == "allocfail" and e["order"] is not None]
        if fails:
            ax.plot([rel(e["time"]) for e in fails], [e["order"] for e in fails],
                    linestyle="none", marker="o", markersize=8, markerfacecolor="none",
                    markeredgewidth=1.5,
                    color="#1b3a6b", label=f"allocation failure ({len(fails)})")
            top = max(e["order"] for e in fails)
            ax.set_ylim(-0.5, max(top, 3) + 0.5)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
        else:
            ax.text(0.5, 0.5, "no allocation failures in the log", ha="center", va="center",
                    transform=ax.transAxes)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("request order")
        ax.set_title("The kernel log on one time axis: allocation failures, OOM kills, "
                     "warnings, the panic")
        ax.grid(linestyle=":", linewidth=0.5)
        ax = axes[1]
        lanes = [k for k in ("oom", "warning", "oops", "panic")]
        for i, k in enumerate(lanes):
            lab, marker, shade = _EVENT_STYLE[k]
            xs = [rel(e["time"]) for e in events if e["kind"] == k]
            if xs:
                ax.plot(xs, [i] * len(xs), linestyle="none", marker=marker, markersize=9,
                        color=shade, label=f"{lab} ({len(xs)})")
        for e in events:
            if e["kind"] == "panic":
                for a in axes:
                    a.axvline(rel(e["time"]), color="#000000", linestyle="--", linewidth=0.8)
        ax.set_yticks(range(len(lanes)))
        ax.set_yticklabels([_EVENT_STYLE[k][0] for k in lanes])
        ax.set_ylim(-0.6, len(lanes) - 0.4)
        ax.grid(axis="x", linestyle=":", linewidth=0.5)
        if any(e["kind"] != "allocfail" for e in events):
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
        if lfo:
            ax = axes[2]
            for i, (zone, pts) in enumerate(sorted(lfo.items())):
                ax.plot([rel(t) for t, _ in pts], [o for _, o in pts],
                        marker=_MARKERS[i % len(_MARKERS)], linestyle="-" if len(pts) > 1 else "none",
                        drawstyle="steps-post", color=_SHADES[i % len(_SHADES)], label=zone)
            ax.set_ylabel("largest free order")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(linestyle=":", linewidth=0.5)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0,
                      title="zone (Mem-Info\nof each failure)")
        axes[-1].set_xlabel(f"seconds after the first event (log time {events[0]['when']} s "
                            "after boot)")
        span = rel(events[-1]["time"])
        pad = span * 0.04 if span > 0 else 1.0
        axes[-1].set_xlim(-pad, span + pad)
        fig.tight_layout(rect=(0, 0, 0.84, 1))  # the legends sit right of the axes
        return _svg(fig, "timeline")
