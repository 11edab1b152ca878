"""Presentation: aligned tables, JSON, human units and bars.

Analyses return plain data; this module, :mod:`crashext.presentation` and
the command modules turn it into text, so every number is testable without
parsing output.  Byte counts are written by :func:`crashext.units.human_bytes`
(here as ``render.human_bytes`` for the tables).
"""

import json
import math
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, TextIO

from tabulate import tabulate

from .units import human_bytes

__all__ = ["table", "write_table", "write_json", "json_default", "Rows", "human_bytes", "bar",
           "kv_block", "dash", "plural"]


def dash(v: Any) -> str:
    """A value in text: ``-`` for a missing one (None), as tables and
    ``KEY: value`` blocks show it, never ``None``."""
    return "-" if v is None else str(v)


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
    """Stable JSON: sorted keys, two-space indent, trailing newline.

    The text is exactly ``json.dump(data, out, indent=2, sort_keys=True,
    default=...)``'s, but written as it is made, a few thousand pieces at a
    time, and made faster: with an indent the standard library encodes in
    pure Python through generators, which made JSON cost as much as the
    walk on a host with 20,000 memcgs.  Here strings go through the C
    escaper and a list of rows is one loop."""
    parts: List[str] = []
    _encode(data, 0, parts, out)
    parts.append("\n")
    out.write("".join(parts))


_FLUSH = 4096
_esc = json.encoder.encode_basestring_ascii  # what json.dump uses (ensure_ascii)


def _float(o: float) -> str:
    # json.encoder's floatstr with allow_nan=True
    if o != o:
        return "NaN"
    if o == math.inf:
        return "Infinity"
    if o == -math.inf:
        return "-Infinity"
    return float.__repr__(o)


def _key(k: Any) -> str:
    # json.encoder._iterencode_dict's key conversion (skipkeys=False)
    if isinstance(k, str):
        return k
    if isinstance(k, float):
        return _float(k)
    if k is True:
        return "true"
    if k is False:
        return "false"
    if k is None:
        return "null"
    if isinstance(k, int):
        return int.__repr__(k)
    raise TypeError(f"keys must be str, int, float, bool or None, not {k.__class__.__name__}")


def _encode(o: Any, level: int, parts: List[str], out: TextIO) -> None:
    """Append the JSON of ``o`` at nesting ``level`` to ``parts`` (the
    standard library's type order: str, None, True, False, int, float,
    list/tuple, dict, else the default hook)."""
    add = parts.append
    if isinstance(o, str):
        add(_esc(o))
    elif o is None:
        add("null")
    elif o is True:
        add("true")
    elif o is False:
        add("false")
    elif isinstance(o, int):
        add(int.__repr__(o))
    elif isinstance(o, float):
        add(_float(o))
    elif isinstance(o, (list, tuple, Rows)):
        if not o:
            add("[]")
            return
        inner = "\n" + "  " * (level + 1)
        add("[")
        first = True
        for v in o:
            add(inner if first else "," + inner)
            first = False
            _encode(v, level + 1, parts, out)
            if len(parts) > _FLUSH:
                out.write("".join(parts))
                parts.clear()
        add("\n" + "  " * level + "]")
    elif isinstance(o, dict):
        if not o:
            add("{}")
            return
        inner = "\n" + "  " * (level + 1)
        add("{")
        first = True
        for k, v in sorted(o.items()):
            add((inner if first else "," + inner) + _esc(_key(k)) + ": ")
            first = False
            _encode(v, level + 1, parts, out)
        add("\n" + "  " * level + "}")
    else:
        _encode(json_default(o), level, parts, out)


class Rows:
    """A JSON array whose items are made while it is written:
    ``make()`` gives a new iterator over them each time it is called (the
    array is iterated once to write it, and once more up to its first item
    to tell whether it is empty)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Iterator[Any]]) -> None:
        self.make = make

    def __iter__(self) -> Iterator[Any]:
        return self.make()

    def __bool__(self) -> bool:
        for _ in self.make():
            return True
        return False


def json_default(obj: Any) -> Any:
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict
        return asdict(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def plural(n: int, noun: str) -> str:
    """``1 sample``, ``2 samples``: a count and its noun (plural by an s)."""
    return f"{n} {noun}{'s' if n != 1 else ''}"


def bar(value: float, maximum: float, width: int = 20) -> str:
    """A bar of ``#`` proportional to value/maximum; any value above 0 shows."""
    if maximum <= 0 or value <= 0:
        return ""
    n = max(1, int(math.ceil(width * value / maximum)))
    return "#" * min(n, width)


def kv_block(pairs: Iterable[Sequence[Any]]) -> str:
    """``KEY: value`` lines aligned like the crash banner."""
    pairs = [(str(k), "-" if v == "" else dash(v)) for k, v in pairs]
    if not pairs:
        return ""
    w = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.rjust(w)}: {v}" for k, v in pairs)
