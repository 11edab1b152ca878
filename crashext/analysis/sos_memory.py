"""A sosreport's memory state when it was taken: triage's ``sosreport`` section.

When and how the report was taken, the parts it has and lacks, frag's
verdict on its /proc free lists (:mod:`crashext.analysis.fragmentation`) with
the compaction and reclaim counters, /proc/meminfo's main lines, the largest
slab caches and its cgroups (:func:`crashext.sources.sosviews.read_cgroups`).
"""

from typing import Any, Dict

from ..errors import CrashextError
from ..sources import procfs, sosviews
from ..sources.sosreport import SosReport
from .fragmentation import FragOptions, fragmentation, verdict_line

__all__ = ["sos_section"]


def sos_section(report: Dict[str, Any], sos: SosReport) -> None:
    """Add the ``sosreport`` section (snapshot time, parts present and
    missing, the /proc memory state with frag's verdict, compaction and
    reclaim counters, cgroups) and fill the system facts the log lacked."""
    files, notes = sos.kernel_log_sources()
    sec: Dict[str, Any] = {"path": sos.path, "kind": sos.kind, "taken": sos.taken,
                           "label": sos.taken_label(), "release": sos.release(),
                           "hostname": sos.hostname(), "missing": sos.missing(),
                           "log_files": files, "log_notes": notes, "frag": None,
                           "reclaim": None, "cgroups": None, "errors": {}}
    try:
        res = fragmentation(sos, FragOptions())
        sec["frag"] = {"verdict": verdict_line(res, res["page_size"]),
                       "rule": res["rule"], "summary": res["verdict"],
                       "zones": [{"node": z["node"], "zone": z["zone"],
                                  "free_pages": z["free_pages"],
                                  "min": z["watermark"]["min"],
                                  "largest_free_order": max(
                                      [o for o, n in enumerate(z["nr_free"]) if n] or [-1]),
                                  "nr_free": z["nr_free"]} for z in res["zones"]],
                       "errors": res["errors"]}
        sec["reclaim"] = res.get("reclaim")
    except CrashextError as exc:
        sec["errors"]["frag"] = str(exc)
    sec["meminfo"], sec["slab_top"] = _sos_memory(sos, sec["errors"])
    try:
        cg = sosviews.read_cgroups(sos)
        sec["cgroups"] = cg.summary
    except CrashextError as exc:
        sec["errors"]["cgroups"] = str(exc)
    sec["problems"] = list(sos.problems)
    report["sosreport"] = sec
    report["sources"].append(f"sosreport {sos.path}")
    system = report["system"]
    if system.get("release") is None and sec["release"]:
        system["release"] = sec["release"]
        system["sources"]["release"] = "sosreport uname"
    if system.get("nodename") is None and sec["hostname"]:
        system["nodename"] = sec["hostname"]
        system["sources"]["nodename"] = "sosreport uname"


_MEMINFO_KEYS = ("MemTotal", "MemFree", "MemAvailable", "Slab", "SReclaimable", "SUnreclaim",
                 "AnonPages", "Cached", "Shmem", "PageTables", "KernelStack", "VmallocUsed")


def _sos_memory(sos, errors: Dict[str, str]):
    """/proc/meminfo's main lines and the five largest slab caches."""
    mi = top = None
    text = sos.read("proc/meminfo")
    if text:
        try:
            full = procfs.parse_meminfo(text, "proc/meminfo")
            mi = {k: full[k] for k in _MEMINFO_KEYS if k in full}
        except CrashextError as exc:
            errors["meminfo"] = str(exc)
    text = sos.read("proc/slabinfo")
    if text:
        try:
            caches = procfs.parse_slabinfo(text, "proc/slabinfo")
            top = sorted(caches, key=lambda c: (-c["bytes"], c["name"]))[:5]
        except CrashextError as exc:
            errors["slabinfo"] = str(exc)
    return mi, top
