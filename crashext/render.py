"""Presentation: aligned tables, JSON, human units and bars.

Analyses return plain data; only this module and the command modules turn it
into text, so every number is testable without parsing output.
"""

import json
import math
from typing import Any, Iterable, List, Optional, Sequence, TextIO

from tabulate import tabulate

__all__ = ["table", "write_table", "write_json", "human_bytes", "bar", "kv_block"]


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str],
          align: Optional[Sequence[str]] = None) -> str:
    """Rows as an aligned plain-text table (crash-style: no borders)."""
    kwargs = {}
    if align is not None:
        kwargs["colalign"] = list(align)
    return tabulate(list(rows), headers=list(headers), tablefmt="plain",
                    disable_numparse=True, **kwargs)


def write_table(out: TextIO, rows: Iterable[Sequence[Any]], headers: Sequence[str],
                align: Optional[Sequence[str]] = None, chunk: int = 2000) -> None:
    """Write a table that may be long, ``chunk`` rows at a time.

    Column widths are fixed from the first chunk, so thousands of rows
    stream instead of being held twice; later values wider than the first
    chunk's widen only their own line.
    """
    it = iter(rows)
    first: List[Sequence[Any]] = []
    for row in it:
        first.append([("" if v is None else str(v)) for v in row])
        if len(first) >= chunk:
            break
    widths = [len(h) for h in headers]
    for row in first:
        for i, v in enumerate(row):
            widths[i] = max(widths[i], len(v))
    aligns = list(align) if align else ["left"] * len(headers)

    def fmt(row: Sequence[str]) -> str:
        cells = []
        for i, v in enumerate(row):
            cells.append(v.rjust(widths[i]) if aligns[i] == "right" else v.ljust(widths[i]))
        return "  ".join(cells).rstrip()

    out.write(fmt(list(headers)) + "\n")
    for row in first:
        out.write(fmt(row) + "\n")
    for row in it:
        out.write(fmt([("" if v is None else str(v)) for v in row]) + "\n")


def write_json(out: TextIO, data: Any) -> None:
    """Stable JSON: sorted keys, two-space indent, trailing newline."""
    json.dump(data, out, indent=2, sort_keys=True, default=_json_default)
    out.write("\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict
        return asdict(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]


def human_bytes(n: Optional[float]) -> str:
    """``1536`` -> ``1.5 KiB``; whole numbers of a unit print without decimals."""
    if n is None:
        return "-"
    n = float(n)
    i = 0
    while abs(n) >= 1024 and i < len(_UNITS) - 1:
        n /= 1024
        i += 1
    if n == int(n):
        return f"{int(n)} {_UNITS[i]}"
    return f"{n:.1f} {_UNITS[i]}"


def bar(value: float, maximum: float, width: int = 20) -> str:
    """A bar of ``#`` proportional to value/maximum; any value above 0 shows."""
    if maximum <= 0 or value <= 0:
        return ""
    n = max(1, int(math.ceil(width * value / maximum)))
    return "#" * min(n, width)


def kv_block(pairs: Iterable[Sequence[Any]]) -> str:
    """``KEY: value`` lines aligned like the crash banner."""
    pairs = [(str(k), "-" if v is None or v == "" else str(v)) for k, v in pairs]
    if not pairs:
        return ""
    w = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.rjust(w)}: {v}" for k, v in pairs)
