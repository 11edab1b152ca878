"""The knowledge base of known kernel bugs: TOML files, loaded and validated.

One file may hold one or more ``[[entry]]`` tables; the package ships
``crashext/kb/*.toml`` and users add directories with ``--kb DIR``.  Every
file is validated on load; a problem is a :class:`KbError` whose message is
one line naming the file and the field (``kb/x.toml: entry[0].signature.panic:
not a valid regex: ...``).  The format is documented in
``docs/knowledge-base.md``.

Also here: :func:`compare_releases`, an honest ordering of kernel release
strings (``3.10.0-693.2.2.el7.x86_64`` < ``3.10.0-1048.el7``) following
rpm's segment comparison, and :func:`release_affected` for an entry's
``[[affected]]`` ranges.
"""

import glob
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ..errors import CrashextError
# an entry's affected ranges, kernel release parsing and comparison (re-exported here)
from .releases import Affected, compare_releases, release_affected, release_check, split_release

__all__ = ["KbError", "Entry", "Signature", "LogPattern", "DumpPredicate", "Affected",
           "Reference", "Fix", "Precursor", "load_kb", "load_file", "default_dirs",
           "compare_releases", "split_release", "release_affected", "release_check", "KINDS",
           "LOG_KINDS", "DUMP_KINDS", "STATUSES", "ZONE_VERDICTS", "LOG_SOURCES"]

#: what an entry describes: a kernel bug, a crash done on purpose, or a known
#: condition (OOM kills, fragmentation) that is the kernel working as designed
#: but has known remedies
KINDS = ("bug", "deliberate", "condition")
#: how a fact of an entry (fixing commit, first release, bug id) was checked
STATUSES = ("verified", "unconfirmed")
#: what the watermark verdict of a failure's zones says (allocfail elements)
ZONE_VERDICTS = ("fragmentation", "lowmem_reserve", "short", "transient")
#: kinds of log evidence a signature may ask for
LOG_KINDS = ("allocfail", "regex")
#: where a regex log element looks: the kernel log, or user-space text given
#: beside it (kubelet/runc/docker logs, `kubectl describe`, /proc/cgroups of a
#: sosreport) -- for failures the kernel itself does not print
LOG_SOURCES = ("kernel", "text")
#: kinds of dump evidence a signature may ask for
DUMP_KINDS = ("memcg-anomaly",)
_FAMILIES = ("rhel", "upstream")


class KbError(CrashextError):
    """A knowledge-base file that cannot be used; one line naming file and field."""


def _toml_loads():
    """``tomllib.loads`` (Python 3.11+) or ``tomli.loads``; KbError if neither."""
    try:
        import tomllib  # type: ignore[import-not-found]  # novm (guarded: tomli below)
        return tomllib.loads, tomllib.TOMLDecodeError
    except ImportError:
        pass
    try:
        import tomli  # type: ignore[import-not-found]
        return tomli.loads, tomli.TOMLDecodeError
    except ImportError:
        raise KbError("reading the knowledge base needs Python 3.11+ or the tomli package "
                      "(pip install tomli)") from None


@dataclass
class LogPattern:
    """Evidence to look for in the kernel log."""
    kind: str                                  # "allocfail" | "regex"
    name: str
    weight: float = 1.0
    required: bool = False
    pattern: Optional[str] = None              # regex (kind "regex")
    min_order: Optional[int] = None            # allocfail: order >= this
    frames_any: List[str] = field(default_factory=list)   # allocfail: one of these frames
    max_order: Optional[int] = None            # allocfail: order <= this
    flags_all: List[str] = field(default_factory=list)    # allocfail: GFP names all present
    flags_none: List[str] = field(default_factory=list)   # allocfail: GFP names all absent
    frames_none: List[str] = field(default_factory=list)  # allocfail: none of these frames
    zones: Optional[str] = None                # allocfail: the zones' verdict (ZONE_VERDICTS)
    # allocfail: true -- some usable zone other than DMA was held back by
    # lowmem_reserve (failed the watermark with the reserve, passes without);
    # false -- none was (crashext.analysis.kbmatch, zones_held_back)
    zones_held_back: Optional[bool] = None
    absent: bool = False                       # regex: matched when no line matches
    source: str = "kernel"                     # regex: LOG_SOURCES, where to look


@dataclass
class DumpPredicate:
    """Evidence only a dump can give (e.g. an anomaly code of the memcg analysis)."""
    kind: str                                  # "memcg-anomaly"
    name: str
    code: str
    weight: float = 1.0
    required: bool = False


@dataclass
class Signature:
    panic: List[str] = field(default_factory=list)            # regexes, any
    panic_required: bool = False
    rip_function: List[str] = field(default_factory=list)     # any
    rip_required: bool = False
    frames_required: List[str] = field(default_factory=list)  # each must be in the bt
    frames_optional: List[str] = field(default_factory=list)
    log: List[LogPattern] = field(default_factory=list)
    dump: List[DumpPredicate] = field(default_factory=list)


@dataclass
class Reference:
    title: str
    url: str
    status: str                 # STATUSES: was what it is cited for checked in it?
    note: str = ""


@dataclass
class Fix:
    """One fixing change: the commit, and the first release whose tag contains it."""
    what: str                   # commit id and subject, or a distribution package
    first_release: Optional[str]
    status: str                 # STATUSES, for both facts together
    checked: str = ""           # how it was checked (or why it could not be)
    url: str = ""


@dataclass
class Precursor:
    """The state that leads to an entry's bug, reported as AT RISK when the
    bug itself is not in the evidence."""
    evidence: str               # the precursor in words ("a high-order ... failure")
    log: List["LogPattern"] = field(default_factory=list)


@dataclass
class Entry:
    id: str
    title: str
    kind: str
    summary: str
    meaning: str
    signature: Signature
    affected: List[Affected]
    fixed_in: List[str]
    workarounds: List[str]
    references: List[Reference]
    source: str                 # the file it came from
    min_score: float = 0.5
    fixes: List[Fix] = field(default_factory=list)
    precursor: Optional[Precursor] = None

    def to_json(self) -> Dict[str, Any]:
        from dataclasses import asdict
        return asdict(self)


# -- validation -------------------------------------------------------------

_HEADER = re.compile(r"^\s*\[\[\s*entry\s*\]\]\s*(?:#.*)?$")
_WHERE = re.compile(r"^entry\[(\d+)\]")


class _V:
    """Field access with one-line errors naming file, line and field.

    TOML parsers report syntax errors with their line; for the errors found
    after parsing, the line is that of the field's key (or table header)
    inside the entry's ``[[entry]]`` block, else the block's first line.
    """

    def __init__(self, path: str, text: str = "") -> None:
        self.path = path
        self.lines = text.split("\n")
        self.starts = [i for i, ln in enumerate(self.lines) if _HEADER.match(ln)]

    def line_of(self, where: str) -> Optional[int]:
        m = _WHERE.match(where)
        if not m or int(m.group(1)) >= len(self.starts):
            return None
        n = int(m.group(1))
        lo = self.starts[n]
        hi = self.starts[n + 1] if n + 1 < len(self.starts) else len(self.lines)
        keys = [k for k in re.split(r"[.\[\]]+", where[m.end():]) if k and not k.isdigit()]
        best = lo
        for key in keys:           # walk down: each key searched after the previous one
            rx = re.compile(r"^\s*(?:%s\s*=|\[{1,2}[^\]]*\b%s\s*\]{1,2})" % (re.escape(key),
                                                                              re.escape(key)))
            hit = next((i for i in range(best, hi) if rx.match(self.lines[i])), None)
            if hit is None:
                break
            best = hit
        return best + 1

    def fail(self, where: str, why: str) -> "KbError":
        line = self.line_of(where)
        at = f"{self.path}:{line}" if line else self.path
        return KbError(f"{at}: {where}: {why}")

    def table(self, d: Dict[str, Any], where: str, allowed: Sequence[str]) -> None:
        if not isinstance(d, dict):
            raise self.fail(where, "must be a table")
        for k in d:
            if k not in allowed:
                raise self.fail(f"{where}.{k}" if where else k,
                                f"unknown field (allowed: {', '.join(allowed)})")

    def str_(self, d, key, where, required=True, default=None) -> Optional[str]:
        if key not in d:
            if required:
                raise self.fail(f"{where}.{key}" if where else key, "missing")
            return default
        v = d[key]
        if not isinstance(v, str) or not v.strip():
            raise self.fail(f"{where}.{key}" if where else key, "must be a non-empty string")
        return v

    def strs(self, d, key, where) -> List[str]:
        v = d.get(key, [])
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
            raise self.fail(f"{where}.{key}", "must be a list of non-empty strings")
        return list(v)

    def regexes(self, d, key, where) -> List[str]:
        out = self.strs(d, key, where)
        for i, pat in enumerate(out):
            try:
                re.compile(pat)
            except re.error as exc:
                raise self.fail(f"{where}.{key}[{i}]", f"not a valid regex: {exc}") from None
        return out

    def bool_(self, d, key, where, default=False) -> bool:
        v = d.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(f"{where}.{key}", "must be true or false")
        return v

    def num(self, d, key, where, default, lo=0.0, hi=None) -> float:
        v = d.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < lo or (hi is not None and v > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise self.fail(f"{where}.{key}", f"must be a number in {rng}")
        return float(v)

    def tables(self, d, key, where, fields, header):
        """(where, table) for each table of the array ``key`` ([[header]] in TOML)."""
        raw = d.get(key, [])
        if not isinstance(raw, list):
            raise self.fail(f"{where}.{key}", f"must be an array of tables ([[{header}]])")
        for i, item in enumerate(raw):
            w = f"{where}.{key}[{i}]"
            self.table(item, w, fields)
            yield w, item

    def choice(self, d, key, where, options) -> str:
        v = self.str_(d, key, where)
        if v not in options:
            raise self.fail(f"{where}.{key}", f"must be one of {', '.join(options)}")
        return v

    def int_(self, d, key, where, lo=0, hi=None) -> Optional[int]:
        if key not in d:
            return None
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
            raise self.fail(f"{where}.{key}", f"must be an integer in {lo}..{hi}")
        return v


_ENTRY_FIELDS = ("id", "title", "kind", "summary", "meaning", "signature", "affected",
                 "fixed_in", "fixes", "workarounds", "references", "min_score", "precursor")
_SIG_FIELDS = ("panic", "panic_required", "rip_function", "rip_required", "frames_required",
               "frames_optional", "log", "dump")
_LOG_FIELDS = ("kind", "name", "weight", "required", "pattern", "min_order", "frames_any",
               "max_order", "flags_all", "flags_none", "frames_none", "zones", "absent", "source",
               "zones_held_back")
_ALLOC_ONLY = ("min_order", "frames_any", "max_order", "flags_all", "flags_none", "frames_none",
               "zones", "zones_held_back")
_FIX_FIELDS = ("what", "first_release", "status", "checked", "url")
_PRE_FIELDS = ("evidence", "log")
_DUMP_FIELDS = ("kind", "name", "code", "weight", "required")
_AFF_FIELDS = ("family", "dist", "since", "before", "note", "status")
_REF_FIELDS = ("title", "url", "status", "note")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _log_patterns(v: _V, parent: Dict[str, Any], where: str) -> List[LogPattern]:
    logs = []
    for lw, lp in v.tables(parent, "log", where, _LOG_FIELDS, "...log"):
        lk = v.choice(lp, "kind", lw, LOG_KINDS)
        pat = None
        if lk == "regex":
            pats = v.regexes(lp, "pattern", lw)
            if len(pats) != 1:
                raise v.fail(f"{lw}.pattern", "a regex log pattern needs exactly one pattern")
            pat = pats[0]
        elif "pattern" in lp:
            raise v.fail(f"{lw}.pattern", "only for kind = \"regex\"")
        if lk != "allocfail":
            bad = [k for k in _ALLOC_ONLY if k in lp]
            if bad:
                raise v.fail(f"{lw}.{bad[0]}", "only for kind = \"allocfail\"")
        elif "absent" in lp:
            raise v.fail(f"{lw}.absent", "only for kind = \"regex\"")
        source = "kernel"
        if "source" in lp:
            if lk != "regex":
                raise v.fail(f"{lw}.source", "only for kind = \"regex\" (allocation failures "
                             "are read from the kernel log)")
            source = v.choice(lp, "source", lw, LOG_SOURCES)
        zones = None
        if "zones" in lp:
            zones = v.choice(lp, "zones", lw, ZONE_VERDICTS)
        held = v.bool_(lp, "zones_held_back", lw) if "zones_held_back" in lp else None
        lo, hi = v.int_(lp, "min_order", lw, 0, 10), v.int_(lp, "max_order", lw, 0, 10)
        if lo is not None and hi is not None and lo > hi:
            raise v.fail(f"{lw}.max_order", f"below min_order {lo}")
        logs.append(LogPattern(kind=lk, name=v.str_(lp, "name", lw),
                               weight=v.num(lp, "weight", lw, 1.0, 0.0, 10.0),
                               required=v.bool_(lp, "required", lw), pattern=pat,
                               min_order=lo, max_order=hi,
                               frames_any=v.strs(lp, "frames_any", lw),
                               flags_all=v.strs(lp, "flags_all", lw),
                               flags_none=v.strs(lp, "flags_none", lw),
                               frames_none=v.strs(lp, "frames_none", lw), zones=zones,
                               absent=v.bool_(lp, "absent", lw), source=source,
                               zones_held_back=held))
    return logs


def _affected(v: _V, raw: Dict[str, Any], where: str) -> list:
    """An entry's ``[[affected]]`` ranges."""
    affected = []
    for aw, a in v.tables(raw, "affected", where, _AFF_FIELDS, "entry.affected"):
        fam = v.choice(a, "family", aw, _FAMILIES)
        dist = v.str_(a, "dist", aw, required=(fam == "rhel"))
        if dist is not None and not re.match(r"^el\d+$", dist):
            raise v.fail(f"{aw}.dist", "must be a RHEL dist tag such as el7")
        since = v.str_(a, "since", aw, required=False)
        before = v.str_(a, "before", aw, required=False)
        for key, val in (("since", since), ("before", before)):
            if val is not None and split_release(val) is None:
                raise v.fail(f"{aw}.{key}", f"not a kernel release: {val!r}")
        if since and before and compare_releases(since, before) >= 0:
            raise v.fail(aw, f"since {since} is not before {before}")
        if (since or before) and "status" not in a:
            raise v.fail(f"{aw}.status", "missing: a range with since/before says whether "
                         "they were checked (verified) or not (unconfirmed; then they never "
                         "exclude a kernel)")
        status = v.choice(a, "status", aw, STATUSES) if "status" in a else "unconfirmed"
        affected.append(Affected(family=fam, dist=dist, since=since, before=before,
                                 note=v.str_(a, "note", aw, required=False, default="") or "",
                                 status=status))
    return affected


def _references(v: _V, raw: Dict[str, Any], where: str) -> list:
    """An entry's ``[[references]]``; an entry names at least one."""
    refs = []
    for rw, r in v.tables(raw, "references", where, _REF_FIELDS, "entry.references"):
        url = v.str_(r, "url", rw)
        if not re.match(r"^https?://\S+$", url):
            raise v.fail(f"{rw}.url", "must be an http(s) URL")
        refs.append(Reference(title=v.str_(r, "title", rw), url=url,
                              status=v.choice(r, "status", rw, STATUSES),
                              note=v.str_(r, "note", rw, required=False, default="") or ""))
    if not refs:
        raise v.fail(f"{where}.references", "missing: an entry names its sources "
                     "([[entry.references]] with title, url and status)")
    return refs


def _fixes(v: _V, raw: Dict[str, Any], where: str) -> list:
    """An entry's ``[[fixes]]``."""
    fixes = []
    for fw, fx in v.tables(raw, "fixes", where, _FIX_FIELDS, "entry.fixes"):
        url = v.str_(fx, "url", fw, required=False, default="") or ""
        if url and not re.match(r"^https?://\S+$", url):
            raise v.fail(f"{fw}.url", "must be an http(s) URL")
        fixes.append(Fix(what=v.str_(fx, "what", fw),
                         first_release=v.str_(fx, "first_release", fw, required=False),
                         status=v.choice(fx, "status", fw, STATUSES),
                         checked=v.str_(fx, "checked", fw, required=False, default="") or "",
                         url=url))
    return fixes


def _entry(v: _V, raw: Dict[str, Any], where: str) -> Entry:
    v.table(raw, where, _ENTRY_FIELDS)
    eid = v.str_(raw, "id", where)
    if not _ID.match(eid):
        raise v.fail(f"{where}.id", "must be lower-case letters, digits, '.', '_' or '-'")
    kind = v.choice(raw, "kind", where, KINDS)
    sw = f"{where}.signature"
    sraw = raw.get("signature")
    if sraw is None:
        raise v.fail(sw, "missing")
    v.table(sraw, sw, _SIG_FIELDS)
    logs = _log_patterns(v, sraw, sw)
    dumps = []
    for dw, dp in v.tables(sraw, "dump", sw, _DUMP_FIELDS, "...signature.dump"):
        dk = v.choice(dp, "kind", dw, DUMP_KINDS)
        dumps.append(DumpPredicate(kind=dk, name=v.str_(dp, "name", dw), code=v.str_(dp, "code", dw),
                                   weight=v.num(dp, "weight", dw, 1.0, 0.0, 10.0),
                                   required=v.bool_(dp, "required", dw)))
    sig = Signature(panic=v.regexes(sraw, "panic", sw),
                    panic_required=v.bool_(sraw, "panic_required", sw),
                    rip_function=v.strs(sraw, "rip_function", sw),
                    rip_required=v.bool_(sraw, "rip_required", sw),
                    frames_required=v.strs(sraw, "frames_required", sw),
                    frames_optional=v.strs(sraw, "frames_optional", sw),
                    log=logs, dump=dumps)
    if not (sig.panic or sig.rip_function or sig.frames_required or sig.frames_optional
            or sig.log or sig.dump):
        raise v.fail(sw, "has no elements to match")
    affected = _affected(v, raw, where)
    refs = _references(v, raw, where)
    fixes = _fixes(v, raw, where)
    pre = None
    if "precursor" in raw:
        pw = f"{where}.precursor"
        v.table(raw["precursor"], pw, _PRE_FIELDS)
        plogs = _log_patterns(v, raw["precursor"], pw)
        if not plogs:
            raise v.fail(pw, "has no log elements ([[entry.precursor.log]])")
        if all(lp.absent for lp in plogs):
            raise v.fail(pw, "needs at least one log element that is not absent = true")
        pre = Precursor(evidence=v.str_(raw["precursor"], "evidence", pw), log=plogs)
    return Entry(id=eid, title=v.str_(raw, "title", where), kind=kind,
                 summary=v.str_(raw, "summary", where), meaning=v.str_(raw, "meaning", where),
                 signature=sig, affected=affected, fixed_in=v.strs(raw, "fixed_in", where),
                 workarounds=v.strs(raw, "workarounds", where), references=refs,
                 source=v.path, min_score=v.num(raw, "min_score", where, 0.5, 0.0, 1.0),
                 fixes=fixes, precursor=pre)


def load_file(path: str) -> List[Entry]:
    """The entries of one TOML file; KbError naming file and field on any problem."""
    loads, decode_error = _toml_loads()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise KbError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KbError(f"{path}: not UTF-8 text") from None
    try:
        doc = loads(text)
    except decode_error as exc:
        raise KbError(f"{path}: not valid TOML: {' '.join(str(exc).split())}") from None
    v = _V(path, text)
    v.table(doc, "", ("entry",))
    raw = doc.get("entry")
    if not isinstance(raw, list) or not raw:
        raise v.fail("entry", "missing: a file holds one or more [[entry]] tables")
    return [_entry(v, e, f"entry[{i}]") for i, e in enumerate(raw)]


def default_dirs() -> List[str]:
    """The directory of the knowledge base shipped with crashext."""
    return [os.path.dirname(os.path.abspath(__file__))]


def load_kb(extra_dirs: Optional[Sequence[str]] = None, builtin: bool = True,
            problems: Optional[List[str]] = None) -> List[Entry]:
    """All entries: the shipped ones, then those of ``extra_dirs`` (``--kb``).

    A bad file of an extra directory is skipped and its one-line error added
    to ``problems`` (when given), so one bad file does not stop the others;
    a directory none of whose files loads, or a bad shipped file, is an
    error.  An id defined twice is an error naming both files.
    """
    dirs = (default_dirs() if builtin else []) + list(extra_dirs or [])
    entries: List[Entry] = []
    seen: Dict[str, str] = {}
    for d in dirs:
        if not os.path.isdir(d):
            raise KbError(f"{d}: not a directory of knowledge-base .toml files")
        shipped = d in default_dirs()
        files = sorted(glob.glob(os.path.join(d, "*.toml")))
        if not files and not shipped:
            raise KbError(f"{d}: no .toml files in this knowledge-base directory")
        bad: List[KbError] = []
        for path in files:
            try:
                got = load_file(path)
                for e in got:
                    if e.id in seen:
                        raise KbError(f"{path}: id: {e.id!r} is already defined in {seen[e.id]}")
            except KbError as exc:
                if shipped or problems is None:
                    raise
                bad.append(exc)
                continue
            for e in got:
                seen[e.id] = path
                entries.append(e)
        if bad and len(bad) == len(files):
            raise bad[0]
        if problems is not None:
            problems.extend(f"skipped: {exc}" for exc in bad)
    return entries
