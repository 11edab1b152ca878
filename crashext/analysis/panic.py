"""How the kernel died: the panicking task, its backtrace and the exception RIP.

Three sources, one shape.  From a dump, :func:`panic_from_target` asks the
kernel access layer (``t.crashed_task()``, ``t.backtrace()``: drgn's
crashed thread and unwinder, or crash's ``bt`` and ``dis -l`` inside crash).
From a saved crash session transcript (``sys`` banner, ``bt`` and ``dis -l``
output, parsed by :func:`crashext.sources.crashlog.parse_crash_session`),
:func:`panic_from_crash_session`.  From the kernel log, the oops header
:mod:`crashext.sources.kmsg` extracts (RIP, task line, call trace) is
normalised by :func:`panic_from_oops`.

Every function returns plain dicts (see :func:`empty_panic` for the keys);
nothing is printed here.
"""

import re
from typing import Any, Dict, Optional

from ..errors import CrashextError
from ..kernel.target import Target
from ..sources.crashlog import kernel_source_path
from ..sources.kmsg import Frame, OopsHeader, parse_frame
from .system import panic_message

__all__ = ["empty_panic", "panic_from_target", "panic_from_oops", "frame_from_log",
           "panic_from_crash_session"]


def empty_panic(source: str) -> Dict[str, Any]:
    """The panic record every source fills in (None where it does not know)."""
    return {
        "source": source,        # "dump", "log" or "crash-log"
        "panic": None,           # the panic string, as crash's sys PANIC shows it
        "pid": None, "comm": None, "cpu": None, "task": None,
        "rip": None,             # {"function", "offset", "size", "pc", "file", "line"}
        "frames": [],            # [{"function", "offset", "pc", "file", "line", "exception", ...}]
        "errors": {},            # part -> one-line reason it could not be read
    }


# -- from a dump ----------------------------------------------------------------

def panic_from_target(t: Target, panic: Optional[str] = None) -> Dict[str, Any]:
    """The panic record of the kernel ``t``; each part fails alone into ``errors``.

    ``panic`` is the panic string if the caller already has it from the
    dump's log; otherwise the log is read here.
    """
    out = empty_panic("dump")
    errors = out["errors"]
    try:
        out["panic"] = panic if panic is not None else panic_message(t.log_records())
    except CrashextError as exc:
        errors["panic"] = exc.one_line()
    try:
        task = t.crashed_task()
        if task is None:
            errors["task"] = "a live kernel has no panicking task"
        else:
            out.update({k: task.get(k) for k in ("pid", "comm", "cpu", "task")})
    except CrashextError as exc:
        errors["task"] = exc.one_line()
    try:
        frames = t.backtrace()
        out["frames"] = frames
        # The exception RIP is the pc of the first frame whose registers an
        # exception saved (pt_regs); a plain panic() (sysrq on current
        # kernels) has none, and then there is no exception RIP.
        for f in frames:
            if f.get("exception"):
                out["rip"] = {k: f.get(k) for k in ("function", "offset", "size", "pc", "file", "line")}
                break
    except CrashextError as exc:
        errors["backtrace"] = exc.one_line()
    return out


# -- from an oops header of the kernel log ---------------------------------------------

def frame_from_log(fr: Frame) -> Dict[str, Any]:
    """A call-trace frame the log printed (:class:`crashext.sources.kmsg.Frame`)
    in the frame shape of :func:`empty_panic`; "?" frames are unreliable."""
    return {"function": fr.func, "offset": fr.offset, "size": fr.size, "pc": None,
            "module": fr.module, "reliable": not fr.unreliable, "file": None, "line": None,
            "exception": False}


def panic_from_oops(oops: Optional[OopsHeader], panic: Optional[str]) -> Dict[str, Any]:
    """The panic record of the log's oops header (may be None) and panic string."""
    out = empty_panic("log")
    out["panic"] = panic
    if oops is None:
        if panic is None:
            out["errors"]["panic"] = "no panic, oops or BUG message in the log"
        return out
    out.update(pid=oops.pid, comm=oops.comm, cpu=oops.cpu, time=oops.ts)
    rip = parse_frame(oops.rip) if oops.rip else None
    if rip is not None:
        out["rip"] = {"function": rip.func, "offset": rip.offset, "size": rip.size,
                      "pc": oops.rip_pc, "file": None, "line": None}
    out["frames"] = [frame_from_log(fr) for fr in oops.trace]
    return out


# -- from a crash session transcript ------------------------------------------------------

def _unquote(s: Optional[str]) -> Optional[str]:
    if s is None:
        return None
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] == '"':
        s = s[1:-1]
    return s or None


def panic_from_crash_session(session: Dict[str, Any]) -> Dict[str, Any]:
    """The panic record of a parsed crash transcript
    (:func:`crashext.sources.crashlog.parse_crash_session`)."""
    out = empty_panic("crash-log")
    sysinfo = session.get("sys", {})
    out["panic"] = _unquote(sysinfo.get("PANIC"))
    for key, field_, conv in (("PID", "pid", int), ("CPU", "cpu", int), ("COMMAND", "comm", _unquote)):
        val = sysinfo.get(key)
        if val is not None:
            try:
                out[field_] = conv(val)
            except ValueError:
                out["errors"][field_] = f"cannot read crash's {key}: {val!r}"
    task = sysinfo.get("TASK")
    if task:
        m = re.match(r"([0-9a-f]+)", task)
        if m:
            out["task"] = int(m.group(1), 16)
    bt = session.get("bt")
    if bt:
        for k in ("pid", "cpu", "comm", "task"):
            if out[k] is None:
                out[k] = bt[k]
        frames = [dict(f) for f in bt["frames"]]
        exc = bt.get("exception")
        if exc:
            rip = dict(exc)
            for d in session.get("dis", []):
                if (rip.get("pc") is not None and d["address"] == rip["pc"]) or \
                        (d["function"] == rip["function"] and d["offset"] == rip["offset"]):
                    rip["file"] = kernel_source_path(d["file"]) if d.get("file") else None
                    rip["line"] = d.get("line")
                    rip["pc"] = rip["pc"] if rip["pc"] is not None else d["address"]
                    break
            out["rip"] = rip
            # crash prints "[exception RIP: ...]" after the frame of the
            # exception entry stub and before the frames of the interrupted code
            ex_frame = dict(rip)
            ex_frame.update({"exception": True, "index": None, "sp": None, "module": None})
            split = bt.get("exception_after", len(frames))
            frames.insert(split, ex_frame)
        out["frames"] = frames
    elif not out["panic"]:
        out["errors"]["backtrace"] = "the transcript has no bt output"
    return out
