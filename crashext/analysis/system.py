"""What kind of kernel this is and how it died: the facts of crash's banner.

:func:`system_info` returns a plain dict; each fact that cannot be read is
``None`` with the reason in ``errors`` rather than failing the whole report.
"""

from typing import Any, Dict, Iterable, Optional

from ..errors import CrashextError
from ..kernel.target import LogRecord, Target
from ..sources.kmsg import OopsHeader, iter_oops
from ..sources.oops import NOT_FATAL
from ..sources.logs import from_records

__all__ = ["system_info", "panic_message", "panic_string", "total_ram_pages", "uptime_seconds"]

_PANIC_PREFIX = "Kernel panic - not syncing: "   # kernel/panic.c


def panic_string(headers: Iterable[OopsHeader]) -> Optional[str]:
    """The panic string crash's ``sys`` shows, from the oops/BUG/panic headers
    of a kernel log (:func:`crashext.sources.kmsg.iter_oops`, in log order).

    The first oops/BUG header names the cause; a later "Kernel panic - not
    syncing" line is only the consequence when it says so (see
    :data:`_CONSEQUENCES`), and otherwise the message itself (a sysrq crash,
    panic_on_warn, a hung task or soft lockup panic).  WARNINGs and SLUB's
    reports are not panics.
    """
    first_oops = None
    last_panic = None
    for h in headers:
        if h.kind == "panic":
            last_panic = h.message[len(_PANIC_PREFIX):] if h.message.startswith(_PANIC_PREFIX) \
                else h.message
        elif h.kind not in NOT_FATAL and first_oops is None:
            first_oops = h.message
    if first_oops and (last_panic is None or last_panic.startswith(_CONSEQUENCES)):
        return first_oops
    return last_panic or first_oops


#: panic messages that only follow an oops: the oops killed a task that may
#: not die (kernel/exit.c do_exit(): the idle task, init, an interrupt
#: handler) or panic_on_oops turned it into a panic (die(): "Fatal exception",
#: "Fatal exception in interrupt")
_CONSEQUENCES = ("Fatal exception", "Attempted to kill the idle task!",
                 "Attempted to kill init!", "Aiee, killing interrupt handler!")


def panic_message(records: Iterable[LogRecord]) -> Optional[str]:
    """:func:`panic_string` of a kernel log given as (seconds, text) records."""
    return panic_string(iter_oops(from_records(records)))


def total_ram_pages(t: Target) -> int:
    """Pages the kernel manages (MemTotal in /proc/meminfo).

    ``totalram_pages`` is the atomic ``_totalram_pages`` since Linux kernel
    commit ca79b0c211af ("mm: convert totalram_pages and totalhigh_pages
    variables to atomic") (in v5.0).
    """
    if t.has_symbol("_totalram_pages"):
        return int(t.symbol("_totalram_pages").counter)
    return int(t.symbol("totalram_pages"))


def uptime_seconds(t: Target) -> float:
    """Seconds since boot when the dump was taken (CLOCK_BOOTTIME).

    kernel/time/timekeeping.c: monotonic time is ``xtime_sec +
    wall_to_monotonic`` plus the shifted ``xtime_nsec``; boot time adds
    ``offs_boot`` (time spent suspended).  The timekeeper is in ``tk_core``
    since Linux kernel commit 3fdb14fd1df7 (its subject not confirmed here)
    (in v3.17), and ``xtime_nsec``/``shift`` in ``tkr_mono`` since Linux
    kernel commit 876e78818def ("time: Rename timekeeper::tkr to tkr_mono")
    (in v4.1; ``tkr`` from v3.17).
    """
    # Since Linux kernel commit 22c62b9a84b8 ("timekeeping: Introduce auxiliary
    # timekeepers") (in v6.17), tk_core is a macro for
    # timekeeper_data[TIMEKEEPER_CORE].
    if t.has_symbol("timekeeper_data"):
        tk = t.symbol("timekeeper_data")[t.constant("TIMEKEEPER_CORE")].timekeeper
    elif t.has_symbol("tk_core"):
        tk = t.symbol("tk_core").timekeeper
    else:
        tk = t.symbol("timekeeper")
    if t.has_member("struct timekeeper", "tkr_mono"):
        tkr = tk.tkr_mono
    elif t.has_member("struct timekeeper", "tkr"):
        tkr = tk.tkr
    else:
        tkr = tk
    nsec = int(tkr.xtime_nsec) >> int(tkr.shift)
    wtm = tk.wall_to_monotonic
    secs = int(tk.xtime_sec) + _signed(int(wtm.tv_sec))
    ns = nsec + _signed(int(wtm.tv_nsec))
    if t.has_member("struct timekeeper", "offs_boot"):
        boot = tk.offs_boot
        try:
            ns += _signed(int(boot))
        except (CrashextError, TypeError):
            ns += _signed(int(boot.tv64))  # ktime_t was a union with tv64 before v4.10
    return secs + ns / 1e9


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def system_info(t: Target) -> Dict[str, Any]:
    """Release, machine, page size, memory, uptime and panic message of ``t``."""
    out: Dict[str, Any] = {"source": t.source, "backend": t.backend, "live": t.is_live}
    errors: Dict[str, str] = {}

    def fact(key, fn):
        try:
            out[key] = fn()
        except CrashextError as exc:
            out[key] = None
            errors[key] = exc.one_line()

    uts: Dict[str, str] = {}
    try:
        uts = t.uts()
    except CrashextError as exc:
        errors["uts"] = exc.one_line()
    out["release"] = uts.get("release") or t.release
    try:
        noted = t.release  # drgn: VMCOREINFO's OSRELEASE, copied from init_uts_ns at boot
    except CrashextError:
        noted = None
    if uts.get("release") and noted and uts["release"] != noted:
        # the vmlinux was matched against the noted release (dumpfile.check_pair);
        # init_uts_ns in memory saying otherwise means that memory is damaged
        errors["release"] = (f"init_uts_ns in memory says {uts['release']!r} but the dump's "
                             f"VMCOREINFO says {noted!r}; showing the latter")
        out["release"] = noted
    out["version"] = uts.get("version")
    out["machine"] = uts.get("machine")
    out["nodename"] = uts.get("nodename")
    fact("page_size", lambda: t.page_size)
    fact("cpus", lambda: len(t.possible_cpus()))
    fact("memory_bytes", lambda: total_ram_pages(t) * t.page_size)
    fact("uptime_seconds", lambda: round(uptime_seconds(t), 1))
    fact("panic", lambda: None if t.is_live else panic_message(t.log_records()))
    out["errors"] = errors
    return out
