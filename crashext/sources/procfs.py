"""Parsers for the allocator's text files: buddyinfo, zoneinfo, pagetypeinfo,
and debugfs ``extfrag/extfrag_index`` / ``extfrag/unusable_index``.

They read a live ``/proc``, a saved copy, an sosreport's ``proc/`` or a test
fixture's ``truth/`` directory, from RHEL7's 3.10 through 6.x.  Every parser
takes the file's text and returns plain data keyed by ``(node, zone name)``;
a line it cannot read is an :class:`~crashext.errors.InputError` naming the
file and line, never a guess.

Formats (mm/vmstat.c of each version):

- buddyinfo: ``Node %d, zone %8s`` then ``%6lu`` per order (frag_show_print).
- pagetypeinfo: ``Page block order: %d``, ``Pages per block: %lu``, then
  ``Node %4d, zone %8s, type %12s`` and per order ``%6lu``; since Linux
  kernel commit 93b3a674485f ("mm,vmstat: reduce zone->lock holding time by
  /proc/pagetypeinfo") (in v5.6) a count of 100000 or more prints as
  ``>100000`` -- kept as 100000 and listed in ``capped``.  Then a "Number of blocks type"
  table.  Type names are ``migratetype_names[]`` ("Unmovable", "Movable",
  "Reclaimable", "HighAtomic"/"Reserve", "CMA", "Isolate"), which are the
  ``MIGRATE_*`` enumerators' names in another case: we key by the
  enumerator name (``"MIGRATE_" + name.upper()``).
- zoneinfo: ``Node %d, zone %8s``, then ``pages free``, ``boost`` (v5.0+),
  ``min``, ``low``, ``high``, ..., ``spanned``, ``present``, ``managed``,
  ``protection: (a, b, ...)`` and the zone's vm_stat items; per-cpu
  ``pagesets`` follow.  Values are the un-folded atomic counters
  (zone_page_state()), not the per-CPU-folded ones.
- extfrag_index / unusable_index: ``Node %d, zone %8s`` then per order
  ``%d.%03d`` of an integer index in thousandths (extfrag uses ``%2d``);
  -1.000 is the extfrag index of an order that would succeed.
"""

import os
import re
from typing import Dict, List, Optional, Tuple

from ..errors import InputError

__all__ = ["parse_buddyinfo", "parse_zoneinfo", "parse_pagetypeinfo", "parse_meminfo",
           "parse_slabinfo",
           "parse_frag_index", "migratetype_key", "ProcDir", "ZoneKey"]

ZoneKey = Tuple[int, str]

_NODE_ZONE = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)")
_BUDDY = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)((?:\s+\d+)+)\s*$")
_PT_FREE = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+),\s+type\s+(\S+)((?:\s+>?\d+)+)\s*$")
_PT_BLOCKS = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)((?:\s+\d+)+)\s*$")
_INDEX = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)((?:\s+-?\d+\.\d{3})+)\s*$")
_KV = re.compile(r"^([A-Za-z_][\w]*)\s+(-?\d+)$")


def _bad(what: str, lineno: int, line: str) -> InputError:
    text = line.strip()
    if len(text) > 80:
        text = text[:77] + "..."
    return InputError(f"{what}: line {lineno} is not in the expected format: {text!r}")


def _lines(text: str):
    for i, ln in enumerate(text.splitlines(), 1):
        yield i, ln.rstrip("\r")


def parse_buddyinfo(text: str, what: str = "buddyinfo") -> Dict[ZoneKey, List[int]]:
    """``{(node, zone): [free blocks of order 0, 1, ...]}``."""
    out: Dict[ZoneKey, List[int]] = {}
    for i, ln in _lines(text):
        if not ln.strip():
            continue
        m = _BUDDY.match(ln)
        if not m:
            raise _bad(what, i, ln)
        out[(int(m.group(1)), m.group(2))] = [int(x) for x in m.group(3).split()]
    if not out:
        raise InputError(f"{what}: no zones in it (empty file?)")
    widths = {len(v) for v in out.values()}
    if len(widths) != 1:
        raise InputError(f"{what}: zones list different numbers of orders {sorted(widths)}")
    return out


def migratetype_key(name: str) -> str:
    """pagetypeinfo's "HighAtomic" -> enumerator name "MIGRATE_HIGHATOMIC"."""
    return "MIGRATE_" + name.upper()


def parse_pagetypeinfo(text: str, what: str = "pagetypeinfo") -> Dict:
    """``{"pageblock_order", "pages_per_block", "types" (enumerator names in
    file order), "free": {(node, zone): {type: [blocks per order]}},
    "blocks": {(node, zone): {type: pageblocks}}, "capped": [(node, zone,
    type, order), ...]}``."""
    out: Dict = {"pageblock_order": None, "pages_per_block": None, "types": [],
                 "free": {}, "blocks": {}, "capped": []}
    header: Optional[List[str]] = None
    for i, ln in _lines(text):
        s = ln.strip()
        if not s or s.startswith("Free pages count per migrate type"):
            continue
        m = re.match(r"^Page block order:\s*(\d+)$", s)
        if m:
            out["pageblock_order"] = int(m.group(1))
            continue
        m = re.match(r"^Pages per block:\s*(\d+)$", s)
        if m:
            out["pages_per_block"] = int(m.group(1))
            continue
        if s.startswith("Number of blocks type"):
            header = [migratetype_key(x) for x in s.split()[4:]]
            continue
        if s.startswith("Number of mixed blocks"):  # CONFIG_PAGE_OWNER table: not ours
            header = None
            continue
        m = _PT_FREE.match(s)
        if m:
            key = (int(m.group(1)), m.group(2))
            mt = migratetype_key(m.group(3))
            counts = []
            for order, tok in enumerate(m.group(4).split()):
                if tok.startswith(">"):
                    out["capped"].append((key[0], key[1], mt, order))
                    tok = tok[1:]
                counts.append(int(tok))
            out["free"].setdefault(key, {})[mt] = counts
            if mt not in out["types"]:
                out["types"].append(mt)
            continue
        m = _PT_BLOCKS.match(s)
        if m and header is not None:
            vals = [int(x) for x in m.group(3).split()]
            if len(vals) != len(header):
                raise _bad(what, i, ln)
            out["blocks"][(int(m.group(1)), m.group(2))] = dict(zip(header, vals))
            continue
        if header is None and not out["free"]:
            raise _bad(what, i, ln)
        # lines of other tables (page owner) after ours are ignored
    if not out["free"]:
        raise InputError(f"{what}: no 'Node N, zone Z, type T' lines in it")
    return out


def parse_zoneinfo(text: str, what: str = "zoneinfo") -> Dict[ZoneKey, Dict]:
    """``{(node, zone): {name: int, ..., "protection": [..]}}``.

    ``pages free`` is stored as ``free``; every ``name value`` line of the
    zone before its per-CPU ``pagesets`` is kept (first occurrence wins;
    the per-node stats some kernels print under the first zone are kept
    under ``node_stats``)."""
    out: Dict[ZoneKey, Dict] = {}
    cur: Optional[Dict] = None
    section = "zone"
    for i, ln in _lines(text):
        s = ln.strip()
        if not s:
            continue
        m = _NODE_ZONE.match(s)
        if m:
            cur = out.setdefault((int(m.group(1)), m.group(2)), {})
            section = "zone"
            continue
        if cur is None:
            raise _bad(what, i, ln)
        if s.startswith("per-node stats"):
            section = "node"
            cur.setdefault("node_stats", {})
            continue
        if s.startswith("pagesets"):
            section = "pcp"
            continue
        if s.startswith("pages free"):
            section = "zone"
            parts = s.split()
            if len(parts) != 3 or not parts[2].isdigit():
                raise _bad(what, i, ln)
            cur["free"] = int(parts[2])
            continue
        if s.startswith("protection:"):
            cur["protection"] = [int(x) for x in re.findall(r"-?\d+", s)]
            continue
        if section == "pcp":
            if s.startswith("node_unreclaimable") or s.startswith("start_pfn"):
                section = "tail"
            else:
                continue
        m = _KV.match(s)
        if m:
            target = cur["node_stats"] if section == "node" else cur
            target.setdefault(m.group(1), int(m.group(2)))
            continue
        if s.startswith("all_unreclaimable") or s.startswith("prev_priority") \
                or s.startswith("inactive_ratio") or s.startswith("node_unreclaimable"):
            continue  # older kernels' odd lines
        # other shapes (e.g. "scanned" in 3.10 is "scanned  0" -> handled) are rare;
        # ignore what is not a number rather than fail a whole file
    if not out:
        raise InputError(f"{what}: no 'Node N, zone Z' lines in it")
    return out


def parse_frag_index(text: str, what: str = "extfrag index") -> Dict[ZoneKey, List[int]]:
    """``{(node, zone): [index in thousandths per order]}`` (-1.000 -> -1000)."""
    out: Dict[ZoneKey, List[int]] = {}
    for i, ln in _lines(text):
        if not ln.strip():
            continue
        m = _INDEX.match(ln.strip())
        if not m:
            raise _bad(what, i, ln)
        vals = []
        for tok in m.group(3).split():
            whole, frac = tok.split(".")
            neg = whole.startswith("-")
            v = abs(int(whole)) * 1000 + int(frac)
            vals.append(-v if neg else v)
        out[(int(m.group(1)), m.group(2))] = vals
    return out


def parse_meminfo(text: str, what: str = "meminfo") -> Dict[str, int]:
    """``/proc/meminfo`` as ``{name: value}``; values in kB where the line
    says ``kB`` (``HugePages_*`` are counts).  Lines of another shape are
    skipped; a file with none of the expected shape is an InputError."""
    out: Dict[str, int] = {}
    for ln in text.splitlines():
        m = re.match(r"^([A-Za-z_()0-9]+):\s+(\d+)(?:\s+kB)?\s*$", ln.strip())
        if m:
            out[m.group(1)] = int(m.group(2))
    if not out:
        raise InputError(f"{what}: no 'Name: value' lines in it")
    return out


def parse_slabinfo(text: str, what: str = "slabinfo") -> List[Dict]:
    """``/proc/slabinfo`` (version 2.x, mm/slab_common.c ``cache_show``) as one
    dict per cache: ``name``, ``active_objs``, ``num_objs``, ``objsize``,
    ``objperslab``, ``pagesperslab``, ``active_slabs``, ``num_slabs`` and
    ``bytes`` (num_objs * objsize)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("slabinfo - version: 2."):
        raise InputError(f"{what}: not slabinfo version 2.x (first line "
                         f"{(lines[0] if lines else '')[:40]!r})")
    out = []
    for i, ln in enumerate(lines[1:], 2):
        if not ln.strip() or ln.startswith("#"):
            continue
        head, _, rest = ln.partition(":")
        words = head.split()
        slab = rest.rpartition("slabdata")[2].split()
        if len(words) != 6 or len(slab) != 3 or not all(w.isdigit() for w in words[1:] + slab):
            raise _bad(what, i, ln)
        d = dict(zip(("active_objs", "num_objs", "objsize", "objperslab", "pagesperslab"),
                     map(int, words[1:])))
        d["name"] = words[0]
        d["active_slabs"], d["num_slabs"] = int(slab[0]), int(slab[1])
        d["bytes"] = d["num_objs"] * d["objsize"]
        out.append(d)
    return out


class ProcDir:
    """Where the allocator's text files of one system are.

    ``path`` may be a live ``/proc``, a saved copy, an sosreport's ``proc/``
    or a fixture ``truth/`` directory; the debugfs extfrag files are looked
    for next to the others and at ``../sys/kernel/debug/extfrag/`` (and, for
    the live ``/proc``, at ``/sys/kernel/debug/extfrag/``).
    """

    def __init__(self, path: str) -> None:
        if not os.path.isdir(path):
            raise InputError(f"{path}: not a directory (give a /proc, a saved copy of one, "
                             "an sosreport's proc/ or a fixture truth/ directory)")
        self.path = path
        self.live = os.path.realpath(path) == "/proc"

    def _candidates(self, name: str) -> List[str]:
        out = [os.path.join(self.path, name)]
        if name in ("extfrag_index", "unusable_index"):
            out.append(os.path.join(self.path, os.pardir, "sys", "kernel", "debug",
                                    "extfrag", name))
            if self.live:
                out.append(os.path.join("/sys/kernel/debug/extfrag", name))
        return out

    def read(self, name: str) -> Optional[str]:
        """The text of file ``name``, or None where it is absent or unreadable."""
        for p in self._candidates(name):
            try:
                with open(p, encoding="utf-8", errors="replace") as f:
                    return f.read()
            except (FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError):
                continue
            except OSError:
                continue
        return None

    def snapshot(self) -> Dict[str, Optional[str]]:
        """When a saved copy was taken: the newest modification time of the
        allocator files in it (a copy is never "read now")."""
        import time
        times = []
        for name in ("buddyinfo", "zoneinfo", "pagetypeinfo", "vmstat"):
            for p in self._candidates(name)[:1]:
                try:
                    times.append(os.stat(p).st_mtime)
                except OSError:
                    continue
        if not times:
            return {"start": None, "end": None, "how": "unknown: no file times"}
        return {"start": None,
                "end": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(max(times))),
                "how": "newest modification time of buddyinfo/zoneinfo/pagetypeinfo/vmstat "
                       "(a saved copy)"}

    def release(self) -> Optional[str]:
        """The kernel release, where the directory says it."""
        if self.live:
            return os.uname().release
        for name in ("uname_r", os.path.join("sys", "kernel", "osrelease"),
                     os.path.join(os.pardir, "uname")):
            text = self.read(name)
            if text and text.split():
                words = text.split()
                # sosreport's "uname" is `uname -a`: the release is the 3rd word
                return words[2] if len(words) > 2 and words[0] == "Linux" else words[0]
        return None

    def version(self) -> Optional[str]:
        """The kernel's version string (``uname -v``), where the directory says it."""
        if self.live:
            return os.uname().version
        text = self.read(os.path.join("sys", "kernel", "version"))
        if text and text.strip():
            return text.strip()
        for name in ("uname_a", os.path.join(os.pardir, "uname")):
            words = (self.read(name) or "").split()
            if len(words) > 3 and words[0] == "Linux":   # `uname -a`: after the release
                return " ".join(words[3:])
        return None
