"""How the kernel died: the panicking task, its backtrace and the exception RIP.

Three sources, one shape.  From a dump, :func:`panic_from_target` asks the
kernel access layer (``t.crashed_task()``, ``t.backtrace()``: drgn's
crashed thread and unwinder, or crash's ``bt`` and ``dis -l`` inside crash).
From a saved crash session transcript, :func:`parse_crash_session` reads the
``sys`` banner, the ``bt`` frames with the ``[exception RIP: ...]`` line and
the ``dis -l`` source lines.  From the kernel log, the oops header
:mod:`crashext.sources.kmsg` extracts (RIP, task line, call trace) is
normalised by :func:`panic_from_oops`.

Every function returns plain dicts (see :func:`empty_panic` for the keys);
nothing is printed here.
"""

import re
from typing import Any, Dict, List, Optional

from ..errors import CrashextError, InputError
from ..kernel.target import Target
from ..sources.kmsg import Frame, OopsHeader, parse_frame
from .system import panic_message

__all__ = ["empty_panic", "panic_from_target", "panic_from_oops", "frame_from_log",
           "parse_crash_session", "panic_from_crash_session", "format_location"]


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


def format_location(rip: Optional[Dict[str, Any]]) -> str:
    """``ida_simple_remove+0x41/0x50 at lib/idr.c:1157`` (parts that are known)."""
    if not rip:
        return "-"
    text = rip.get("function") or (f"{rip['pc']:#x}" if rip.get("pc") is not None else "?")
    if rip.get("function") and rip.get("offset") is not None:
        text += f"+{rip['offset']:#x}"
        if rip.get("size"):
            text += f"/{rip['size']:#x}"
    if rip.get("file"):
        text += f" at {rip['file']}"
        if rip.get("line"):
            text += f":{rip['line']}"
    return text


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

_PROMPT = re.compile(r"^(?:crash(?:\s+\S+)?>\s*)(?P<cmd>.*)$")
_SYS_LINE = re.compile(r"^\s*(?P<key>[A-Z][A-Z ]*[A-Z]):\s(?P<value>.*)$")
_BT_HEAD = re.compile(r"^PID:\s*(?P<pid>\d+)\s+TASK:\s*(?P<task>[0-9a-f]+)\s+CPU:\s*(?P<cpu>\d+)"
                      r"\s+COMMAND:\s*\"(?P<comm>.*)\"")
# " #8 [ffff88015ae33dc0] __mem_cgroup_free at ffffffff811f0654 [module]"
_BT_FRAME = re.compile(r"^\s*#(?P<n>\d+)\s+\[(?P<sp>[0-9a-f]+)\]\s+(?P<func>\S+)\s+at\s+"
                       r"(?P<pc>[0-9a-f]+)(?:\s+\[(?P<mod>[^\]]+)\])?")
_BT_EXC = re.compile(r"^\s*\[exception RIP:\s*(?P<func>[^+\]\s]+)(?:\+(?P<off>\d+))?\]")
_BT_RIP = re.compile(r"^\s*RIP:\s*(?P<pc>[0-9a-f]{8,16})\b")
# "/usr/src/debug/.../lib/idr.c: 1157"
_DIS_SRC = re.compile(r"^(?P<file>/?\S+\.[chS]):\s*(?P<line>\d+)\s*$")
# "0xffffffff81324031 <ida_simple_remove+65>:\tud2"
_DIS_INSN = re.compile(r"^0x(?P<addr>[0-9a-f]+)\s+<(?P<func>[^+>]+)(?:\+(?P<off>\d+))?>:\s*(?P<insn>.*)$")


def parse_crash_session(text: str, name: str = "crash log") -> Dict[str, Any]:
    """Parse a saved crash session: ``sys`` banner, ``bt`` and ``dis -l`` output.

    Returns ``{"sys": {KEY: value}, "bt": {...} or None, "dis": [...]}``.
    The banner keys are crash's (``RELEASE``, ``PANIC``, ``PID``,
    ``COMMAND``, ``CPU``, ...).  InputError if nothing of these is found.
    """
    sysinfo: Dict[str, str] = {}
    bt: Optional[Dict[str, Any]] = None
    dis: List[Dict[str, Any]] = []
    cmd = ""
    src = None
    pending_exc = None
    for raw in text.splitlines():
        line = raw.rstrip()
        m = _PROMPT.match(line.strip())
        if m:
            cmd = m.group("cmd").split()[0] if m.group("cmd").strip() else cmd
            src = None
            continue
        m = _BT_HEAD.match(line.strip())
        if m and bt is None:
            bt = {"pid": int(m.group("pid")), "task": int(m.group("task"), 16),
                  "cpu": int(m.group("cpu")), "comm": m.group("comm"), "frames": [],
                  "exception": None}
            cmd = "bt"
            continue
        if bt is not None and cmd == "bt":
            m = _BT_FRAME.match(line)
            if m:
                bt["frames"].append({"index": int(m.group("n")), "sp": int(m.group("sp"), 16),
                                     "function": m.group("func"), "pc": int(m.group("pc"), 16),
                                     "module": m.group("mod"), "offset": None, "file": None,
                                     "line": None, "exception": False})
                continue
            m = _BT_EXC.match(line)
            if m:
                pending_exc = {"function": m.group("func"),
                               "offset": int(m.group("off")) if m.group("off") else None,
                               "pc": None, "size": None, "file": None, "line": None}
                bt["exception"] = pending_exc
                bt["exception_after"] = len(bt["frames"])
                continue
            m = _BT_RIP.match(line)
            if m and pending_exc is not None and pending_exc["pc"] is None:
                pending_exc["pc"] = int(m.group("pc"), 16)
                continue
        m = _DIS_SRC.match(line.strip())
        if m:
            src = (m.group("file"), int(m.group("line")))
            continue
        m = _DIS_INSN.match(line.strip())
        if m:
            dis.append({"address": int(m.group("addr"), 16), "function": m.group("func"),
                        "offset": int(m.group("off")) if m.group("off") else 0,
                        "insn": m.group("insn").strip(),
                        "file": src[0] if src else None, "line": src[1] if src else None})
            continue
        m = _SYS_LINE.match(line)
        if m and not cmd.startswith(("bt", "dis")):
            key = m.group("key").strip()
            if key not in sysinfo:
                sysinfo[key] = m.group("value").strip()
    if not sysinfo.get("PANIC") and bt is None and not dis:
        raise InputError(f"{name}: no crash 'sys' banner, 'bt' or 'dis -l' output found; "
                         "is this a crash session transcript?")
    return {"sys": sysinfo, "bt": bt, "dis": dis}


def _unquote(s: Optional[str]) -> Optional[str]:
    if s is None:
        return None
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] == '"':
        s = s[1:-1]
    return s or None


def kernel_source_path(path: str) -> str:
    """``/usr/src/debug/kernel-X/linux-X/lib/idr.c`` -> ``lib/idr.c``."""
    m = re.search(r"/linux-[^/]+/(.+)$", path)
    return m.group(1) if m else path


def panic_from_crash_session(session: Dict[str, Any]) -> Dict[str, Any]:
    """The panic record of a parsed crash transcript (see :func:`parse_crash_session`)."""
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
