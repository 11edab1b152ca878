"""Matching the evidence of a crash against knowledge-base entries.

Split out of :mod:`crashext.analysis.evidence` (which collects the evidence):
:class:`Evidence` is what the matcher may look at, :func:`evaluate` marks
each signature element of an entry matched, unmatched or unknown and
scores it.

A required element that could not be checked (the kernel release of a log
that does not print it, a dump predicate without a dump) does not decide
whether an entry matches, but the match is then not a full one: its weight
counts against the score, and the result lists what would confirm it
(``unconfirmed``), which :func:`conditions` turns into words for a headline.
"""

import re
from typing import Any, Dict, List, Optional

from ..sources.kmsg import vmalloc_size_text
from .. import kb

__all__ = ["Evidence", "evaluate", "evaluate_precursor", "log_element", "norm_func",
           "held_back_zones", "allocfail_ok", "conditions",
           "STATUS_MATCHED", "STATUS_UNMATCHED", "STATUS_UNKNOWN"]

STATUS_MATCHED = "matched"
STATUS_UNMATCHED = "unmatched"
STATUS_UNKNOWN = "unknown"

# Weights of the signature elements that are not weighted in the entry itself.
_W_PANIC = 3.0
_W_RIP = 2.0
_W_FRAME_REQUIRED = 1.0
_W_FRAME_OPTIONAL = 0.5
_W_KERNEL = 1.0


_FUNC_SUFFIX = re.compile(r"\.(?:isra|constprop|part|cold|lto_priv|llvm)(?:\.\d+)*$")


def norm_func(name: Optional[str]) -> Optional[str]:
    """Compiler clones (``online_css.isra.9``, ``foo.cold``) are the function itself."""
    return _FUNC_SUFFIX.sub("", name) if name else name


# ---------------------------------------------------------------------------
# Matching (the evidence is collected by crashext.analysis.evidence)
# ---------------------------------------------------------------------------

class Evidence:
    """What the matcher may look at; None means "not known" (not "absent")."""

    def __init__(self) -> None:
        self.release: Optional[str] = None
        self.panic: Optional[str] = None
        self.panic_known = False           # some source could tell the panic string
        self.rip_function: Optional[str] = None
        self.rip_known = False             # some source could tell whether there was an exception
        self.frames: Optional[List[str]] = None
        self.log_hits: Optional[Dict[str, Optional[str]]] = None  # regex -> first line
        self.allocfails: Optional[List[Dict[str, Any]]] = None
        self.dump_codes: Optional[set] = None
        self.dump_why = "no dump given"
        self.log_why = "no kernel log"
        # user-space text (kb.LOG_SOURCES "text"): regex -> first line
        self.text_hits: Optional[Dict[str, Optional[str]]] = None
        self.text_why = "no user-space text given (--text FILE, or a sosreport)"


def _el(name: str, status: str, detail: str, weight: float, required: bool, group: str
        ) -> Dict[str, Any]:
    return {"element": name, "status": status, "detail": detail, "weight": weight,
            "required": required, "group": group}


def _gfp_names(f: Dict[str, Any]) -> set:
    return set((f.get("flags") or "").split("|")) - {""}


#: Zones whose being held back by lowmem_reserve says nothing: on x86-64
#: ZONE_DMA is the first 16 MB (include/linux/mmzone.h, enum zone_type:
#: "i386, x86_64 and multiple other arches <16M") and its reserve for a
#: Normal-class request is the managed pages of DMA32 + Normal divided by
#: sysctl_lowmem_reserve_ratio[ZONE_DMA] = 256 (mm/page_alloc.c,
#: setup_per_zone_lowmem_reserve(), the default in every version from v2.6
#: through v6.x) -- more than the whole zone on any host above ~4 GB
#: (rhel7-3.10.0-693.2.2-idr-bug.dmesg: 15869 pages reserved of a 3977-page
#: zone).  It is kept for
#: __GFP_DMA requests by design.  (On arm64 and others ZONE_DMA can be
#: larger; the entry is about x86-64 hosts.)
_HELD_BY_DESIGN = frozenset({"DMA"})


def held_back_zones(f: Dict[str, Any]) -> Optional[List[str]]:
    """The usable zones of failure ``f`` held back by lowmem_reserve, those
    held back by design (DMA) left out; None when no verdict could be made.

    Only when every usable zone failed: if some zone passes the watermark as
    printed (class "transient"), the reserve of another zone did not decide
    the failure, so none counts."""
    held = f.get("held_back")
    if held is None:
        return None
    if f.get("zones") == "transient":
        return []
    return [z for z in held if z not in _HELD_BY_DESIGN]


def allocfail_ok(lp: "kb.LogPattern", f: Dict[str, Any]) -> bool:
    """Whether one allocation failure (triage's dict) meets an allocfail element."""
    if lp.min_order is not None and (f["order"] is None or f["order"] < lp.min_order):
        return False
    if lp.max_order is not None and (f["order"] is None or f["order"] > lp.max_order):
        return False
    fnames = set(norm_func(x["function"]) for x in f["frames"])
    if lp.frames_any and not fnames & set(lp.frames_any):
        return False
    if lp.frames_none and fnames & set(lp.frames_none):
        return False
    names = _gfp_names(f)
    if lp.flags_all and not set(lp.flags_all) <= names:
        return False
    if lp.flags_none and set(lp.flags_none) & names:
        return False
    if lp.zones is not None and f.get("zones") != lp.zones:
        return False
    if lp.zones_held_back is not None:
        held = held_back_zones(f)
        if held is None or bool(held) != lp.zones_held_back:
            return False
    return True


def _allocfail_wanted(lp: "kb.LogPattern") -> str:
    parts = []
    if lp.min_order is not None:
        parts.append(f"order >= {lp.min_order}")
    if lp.max_order is not None:
        parts.append(f"order <= {lp.max_order}")
    if lp.frames_any:
        parts.append(f"through {', '.join(lp.frames_any)}")
    if lp.frames_none:
        parts.append(f"not through {', '.join(lp.frames_none)}")
    if lp.flags_all:
        parts.append(f"with {'|'.join(lp.flags_all)}")
    if lp.flags_none:
        parts.append(f"without {'|'.join(lp.flags_none)}")
    if lp.zones:
        parts.append(f"zone verdict {lp.zones}")
    if lp.zones_held_back is True:
        parts.append("with a zone other than DMA held back by lowmem_reserve")
    elif lp.zones_held_back is False:
        parts.append("without a zone other than DMA held back by lowmem_reserve")
    return ", ".join(parts) or "any"


_EXCERPT = 160


def _excerpt(line: str, pattern: str) -> str:
    """The matching line, or for a long one (a runtime's error chain) the
    part around the match, marked with "..." where it is cut."""
    text = line.strip()
    if len(text) <= _EXCERPT:
        return text
    m = re.search(pattern, text, re.MULTILINE)
    start = max(0, (m.start() if m else 0) - 40)
    start = min(start, len(text) - _EXCERPT)
    return (("..." if start else "") + text[start:start + _EXCERPT]
            + ("..." if start + _EXCERPT < len(text) else ""))


def log_element(lp: "kb.LogPattern", ev: Evidence) -> Dict[str, Any]:
    """One log element of a signature or precursor against ``ev``."""
    group = "log-absent" if lp.absent else "log"
    if lp.source == "text":
        label, hits, why_none, where = f"text: {lp.name}", ev.text_hits, ev.text_why, "the text"
    else:
        label, hits, why_none, where = f"log: {lp.name}", ev.log_hits, ev.log_why, "the log"
    if hits is None or (lp.kind == "regex" and lp.pattern not in hits):
        why = why_none if hits is None else f"{where} was not searched for it"
        return _el(label, STATUS_UNKNOWN, why, lp.weight, lp.required, group)
    if lp.kind == "regex":
        hit = hits.get(lp.pattern)
        if lp.absent:
            return _el(label, STATUS_UNMATCHED if hit else STATUS_MATCHED,
                       f"present: {hit.strip()[:160]}" if hit else
                       f"no line matches /{lp.pattern}/", lp.weight, lp.required, group)
        return _el(label, STATUS_MATCHED if hit else STATUS_UNMATCHED,
                   _excerpt(hit, lp.pattern) if hit else f"no line matches /{lp.pattern}/",
                   lp.weight, lp.required, group)
    # allocfail
    found = next((f for f in ev.allocfails or [] if allocfail_ok(lp, f)), None)
    if found:
        via = sorted(set(norm_func(x["function"]) for x in found["frames"]) & set(lp.frames_any))
        what = ("vmalloc failure of "
                + vmalloc_size_text(found.get("size"), found.get("allocated"))
                if found.get("kind") == "vmalloc"
                else f"order-{found['order']} allocation failure")
        detail = (f"{found['comm']}: {what}, mode {found['mode']}"
                  + (f" ({found['flags']})" if found.get("flags") else "")
                  + (f", via {', '.join(via)}" if via else "")
                  + (f", zones: {found['zones']}" if lp.zones else "")
                  + (f", held back by lowmem_reserve: {', '.join(found['held_back'])}"
                     if lp.zones_held_back and found.get("held_back") else ""))
    else:
        detail = (f"{len(ev.allocfails or [])} allocation failure(s) in the log, none "
                  f"{_allocfail_wanted(lp)}")
    return _el(label, STATUS_MATCHED if found else STATUS_UNMATCHED, detail,
               lp.weight, lp.required, group)


def _panic_elements(sig: "kb.Signature", ev: Evidence) -> List[Dict[str, Any]]:
    """The panic string, exception RIP and backtrace frame elements."""
    els: List[Dict[str, Any]] = []
    if sig.panic:
        if not ev.panic_known:
            els.append(_el("panic string", STATUS_UNKNOWN, "no panic string available",
                           _W_PANIC, sig.panic_required, "panic"))
        else:
            hit = next((p for p in sig.panic if ev.panic and re.search(p, ev.panic)), None)
            els.append(_el("panic string", STATUS_MATCHED if hit else STATUS_UNMATCHED,
                           f"{ev.panic!r} ~ /{hit}/" if hit else
                           f"{ev.panic!r} matches none of {sig.panic}" if ev.panic else
                           "no panic message found", _W_PANIC, sig.panic_required, "panic"))
    if sig.rip_function:
        if not ev.rip_known:
            els.append(_el("exception RIP function", STATUS_UNKNOWN, "no backtrace or RIP line",
                           _W_RIP, sig.rip_required, "panic"))
        else:
            ok = norm_func(ev.rip_function) in sig.rip_function
            els.append(_el("exception RIP function", STATUS_MATCHED if ok else STATUS_UNMATCHED,
                           f"RIP in {ev.rip_function}" if ev.rip_function else
                           "no exception RIP (the panic was not an exception)",
                           _W_RIP, sig.rip_required, "panic"))
    names = set(norm_func(f) for f in ev.frames) if ev.frames is not None else None
    for fr, w, req in ([(f, _W_FRAME_REQUIRED, True) for f in sig.frames_required]
                       + [(f, _W_FRAME_OPTIONAL, False) for f in sig.frames_optional]):
        if names is None:
            els.append(_el(f"frame {fr}", STATUS_UNKNOWN, "no backtrace of the panicking task",
                           w, req, "backtrace"))
        else:
            ok = fr in names
            els.append(_el(f"frame {fr}", STATUS_MATCHED if ok else STATUS_UNMATCHED,
                           "in the panicking task's backtrace" if ok else "not in the backtrace",
                           w, req, "backtrace"))
    return els


def _dump_elements(sig: "kb.Signature", ev: Evidence) -> List[Dict[str, Any]]:
    """The dump predicates: anomaly codes of the memcg analysis."""
    els: List[Dict[str, Any]] = []
    for dp in sig.dump:
        label = f"dump: {dp.name}"
        if ev.dump_codes is None:
            els.append(_el(label, STATUS_UNKNOWN, ev.dump_why, dp.weight, dp.required, "dump"))
        else:
            ok = dp.code in ev.dump_codes
            els.append(_el(label, STATUS_MATCHED if ok else STATUS_UNMATCHED,
                           f"memcg analysis reports {dp.code}" if ok else
                           f"memcg analysis does not report {dp.code}", dp.weight, dp.required,
                           "dump"))
    return els


def evaluate(entry: "kb.Entry", ev: Evidence) -> Dict[str, Any]:
    """Each signature element of ``entry`` against ``ev``, and the score."""
    sig = entry.signature
    els = _panic_elements(sig, ev)
    for lp in sig.log:
        els.append(log_element(lp, ev))
    els += _dump_elements(sig, ev)
    caveats = []
    if entry.affected:
        status, why, caveat = kb.release_check(ev.release, entry.affected)
        els.append(_el("kernel release", status, why, _W_KERNEL, True, "kernel"))
        if caveat:
            caveats.append(caveat)
    checked = [e for e in els if e["status"] != STATUS_UNKNOWN]
    got = sum(e["weight"] for e in checked if e["status"] == STATUS_MATCHED)
    possible = sum(e["weight"] for e in checked)
    # the threshold is met on what could be checked; a required element that
    # could not be checked still counts against the score
    evidence_score = got / possible if possible else 0.0
    unconfirmed = [dict(element=e["element"], why=e["detail"], confirm=_confirm(e, entry))
                   for e in els if e["required"] and e["status"] == STATUS_UNKNOWN]
    pending = sum(e["weight"] for e in els if e["required"] and e["status"] == STATUS_UNKNOWN)
    score = got / (possible + pending) if possible + pending else 0.0
    blockers = [e for e in els if e["required"] and e["status"] == STATUS_UNMATCHED]
    evidence = [e for e in els if e["group"] not in ("kernel", "log-absent")
                and e["status"] == STATUS_MATCHED]
    matched = bool(evidence) and not blockers and evidence_score >= entry.min_score
    if matched:
        why_not = None
    elif blockers:
        why_not = "required element unmatched: " + ", ".join(e["element"] for e in blockers)
    elif not evidence:
        why_not = "no signature element matched" + (
            "" if checked else " (nothing could be checked)")
    else:
        why_not = f"score {evidence_score:.2f} below {entry.min_score:.2f}"
    return {
        "id": entry.id, "title": entry.title, "kind": entry.kind, "matched": matched,
        "score": round(score, 3), "checked_weight": possible, "matched_weight": got,
        "unconfirmed_weight": pending, "unconfirmed": unconfirmed, "caveats": caveats,
        "total_weight": sum(e["weight"] for e in els),
        "unknown": sum(1 for e in els if e["status"] == STATUS_UNKNOWN),
        "why_not": why_not, "elements": els, "summary": entry.summary,
        "meaning": " ".join(entry.meaning.split()), "fixed_in": entry.fixed_in,
        "workarounds": entry.workarounds,
        "references": [{"title": r.title, "url": r.url, "note": r.note, "status": r.status}
                       for r in entry.references],
        "fixes": [{"what": f.what, "first_release": f.first_release, "status": f.status,
                   "checked": f.checked, "url": f.url} for f in entry.fixes],
        "kb_file": entry.source,
    }


def _release_phrase(affected: List["kb.Affected"]) -> str:
    """The kernels of an entry's ranges in words: "a RHEL 7 kernel (el7)
    before 3.10.0-1048.el7 (unconfirmed)", "an upstream kernel before 4.7"."""
    out = []
    for a in affected:
        what = (f"a RHEL {a.dist[2:]} kernel ({a.dist})" if a.family == "rhel" and a.dist
                else "an upstream kernel")
        bounds = " ".join(b for b in ((f"from {a.since}" if a.since else ""),
                                      (f"before {a.before}" if a.before else "")) if b)
        if bounds:
            what += " " + bounds + (" (unconfirmed)" if a.status == "unconfirmed" else "")
        out.append(what)
    return " or ".join(out)


def _confirm(e: Dict[str, Any], entry: "kb.Entry") -> str:
    """What would confirm a required element that could not be checked."""
    label = e["element"]
    if e["group"] == "kernel":
        return "the kernel is " + _release_phrase(entry.affected)
    if e["group"] == "dump":
        return "a dump shows " + label.split(": ", 1)[1]
    if label.startswith("text: "):
        return "user-space text shows " + label.split(": ", 1)[1]
    if e["group"] == "log-absent":
        return "the kernel log does not show " + label.split(": ", 1)[1]
    if e["group"] == "log":
        return "the kernel log shows " + label.split(": ", 1)[1]
    if label.startswith("frame "):
        return f"the panicking task's backtrace has {label[len('frame '):]}"
    if label == "panic string":
        return "the panic string is " + " or ".join(f"/{p}/" for p in entry.signature.panic)
    return "the exception RIP is in " + " or ".join(entry.signature.rip_function)


def conditions(result: Dict[str, Any]) -> str:
    """The part of a headline that says what a match rests on: what would
    confirm its required elements that could not be checked, and the caveats
    of its kernel release ("" when there is neither)."""
    parts = []
    unc = result.get("unconfirmed") or []
    if unc:
        parts.append("if " + " and ".join(u["confirm"] for u in unc)
                     + ": " + "; ".join(u["why"] for u in unc))
    parts += [f"but {c}" for c in result.get("caveats") or []]
    return "".join(f" -- {p}" for p in parts)


def evaluate_precursor(entry: "kb.Entry", ev: Evidence) -> Optional[Dict[str, Any]]:
    """The entry's precursor against ``ev``: None if the entry has none.

    It matches when at least one of its (not absent) log elements matched,
    none of its required ones is unmatched and the kernel release is not
    outside the entry's affected ranges (unknown is allowed and said; a
    release past an unconfirmed bound is allowed, with its caveat).
    """
    pre = entry.precursor
    if pre is None:
        return None
    els = [log_element(lp, ev) for lp in pre.log]
    caveats = []
    if entry.affected:
        status, why, caveat = kb.release_check(ev.release, entry.affected)
        els.append(_el("kernel release", status, why, _W_KERNEL, True, "kernel"))
        if caveat:
            caveats.append(caveat)
    blockers = [e for e in els if e["required"] and e["status"] == STATUS_UNMATCHED]
    evidence = [e for e in els if e["group"] == "log" and e["status"] == STATUS_MATCHED]
    matched = bool(evidence) and not blockers
    shows = ""
    if evidence:
        # the first matched element's detail, then what else was seen (by name)
        shows = evidence[0]["detail"] + "".join(
            f"; {e['element'].split(': ', 1)[1]}" for e in evidence[1:])
    return {"matched": matched, "evidence": pre.evidence, "elements": els, "shows": shows,
            "caveats": caveats, "why_not": None if matched else (
                "required element unmatched: " + ", ".join(e["element"] for e in blockers)
                if blockers else "no precursor element matched")}
