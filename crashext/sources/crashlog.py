"""A saved crash session: the ``sys`` banner, ``bt`` frames with the
``[exception RIP: ...]`` line, and ``dis -l`` source lines, as text.

The transcript ``triage --crash-log`` reads is parsed here, and so is what
crash's own ``bt`` and ``dis -l`` print inside a session
(:mod:`crashext.kernel.pykdump_backend`); :func:`crashext.analysis.panic.panic_from_crash_session`
makes the panic record of it.
"""

import re
from typing import Any, Dict, List, Optional

from ..errors import InputError

__all__ = ["parse_crash_session", "kernel_source_path"]

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


def kernel_source_path(path: str) -> str:
    """``/usr/src/debug/kernel-X/linux-X/lib/idr.c`` -> ``lib/idr.c``."""
    m = re.search(r"/linux-[^/]+/(.+)$", path)
    return m.group(1) if m else path
