"""Oops, BUG, WARNING and panic headers in a kernel log, with the RIP, the
``CPU: .. PID: .. Comm:`` line and the call trace that follow them; the
call-trace frame format they share with allocation failures and OOM
reports (lib/dump_stack.c, arch/x86/kernel/dumpstack.c of each version).
:mod:`crashext.sources.kmsg` reads them alongside its own records."""

import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator, List, Optional

from .logs import LogLine

__all__ = ["Frame", "OopsHeader", "OopsTracker", "CPU_LINE", "parse_frame", "iter_oops"]


@dataclass
class Frame:
    func: str
    offset: int
    size: int
    module: Optional[str] = None
    unreliable: bool = False  # "?" frame: found on the stack, not on the unwind chain

    def __str__(self) -> str:
        mod = f" [{self.module}]" if self.module else ""
        return f"{'? ' if self.unreliable else ''}{self.func}+{self.offset:#x}/{self.size:#x}{mod}"


@dataclass
class OopsHeader:
    message: str
    kind: str                      # "bug", "oops", "warning", "panic", "gpf", "pagefault"
    ts: Optional[float] = None
    stamp: Optional[str] = None
    line: int = 0
    rip: Optional[str] = None      # "func+0x41/0x50"
    rip_func: Optional[str] = None
    comm: Optional[str] = None
    pid: Optional[int] = None
    release: Optional[str] = None
    cpu: Optional[int] = None
    rip_pc: Optional[int] = None   # the address 3.10-era "RIP: 0010:[<addr>]" lines print
    trace: List[Frame] = field(default_factory=list)  # the first "Call Trace:" after the header


CPU_LINE = re.compile(r"^\s*CPU: (?P<cpu>\d+) (?:UID: \d+ )?PID: (?P<pid>\d+) Comm: (?P<comm>.*?) "
                      r"(?P<taint>Not tainted|Tainted: [^#]*?)\s*(?P<rel>\d+\.\d+[^\s#]*)?\s*#")
_FRAME = re.compile(r"^\s*(?:</?[A-Z]+>\s*)*(?:\[<[0-9a-fA-F]+>\]\s*)?(?P<q>\?\s+)?"
                    r"(?P<func>[A-Za-z_.$][\w.$]*)\+0x(?P<off>[0-9a-fA-F]+)/0x(?P<size>[0-9a-fA-F]+)"
                    r"(?:\s+\[(?P<mod>[^\]]+)\])?")
_OOPS = [
    (re.compile(r"(kernel BUG at \S+:\d+!?)"), "bug"),
    (re.compile(r"(BUG: unable to handle (?:kernel )?.*?)\s*$"), "pagefault"),
    (re.compile(r"(BUG: kernel NULL pointer dereference.*?)\s*$"), "pagefault"),
    (re.compile(r"(BUG: (?:soft lockup|scheduling while atomic|sleeping function|"
                r"Bad page|KASAN|workqueue lockup|Dentry|Bad rss).*?)\s*$"), "bug"),
    (re.compile(r"^\s*(general protection fault.*?)\s*$"), "gpf"),
    (re.compile(r"^\s*(Oops: .*?)\s*$"), "oops"),
    (re.compile(r"^\s*(invalid opcode: .*?)\s*$"), "oops"),
    (re.compile(r"^\s*(WARNING: (?:CPU: \d+ PID: \d+ )?at .*?)\s*$"), "warning"),
    (re.compile(r"^\s*(Kernel panic - not syncing: .*?)\s*$"), "panic"),
]


def _oops_hint(text: str) -> bool:
    """Whether ``text`` holds one of the words every oops header has (a
    substring test each: several times a regex alternation's speed)."""
    return "BUG" in text or "Oops" in text or "WARNING" in text or "protection fault" in text \
        or "invalid opcode" in text or "Kernel panic" in text


_RIP = re.compile(r"^\s*(?:RIP: [0-9a-f]{4}:(?:\[<(?P<pc>[0-9a-f]+)>\]\s*\[<[0-9a-f]+>\]\s*)?|"
                  r"pc : |PC is at |NIP \[[0-9a-f]+\] |EIP: [0-9a-f]{4}:\[<[0-9a-f]+>\] EFLAGS.*? )"
                  r"(?P<func>[A-Za-z_.][\w.]*)\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)")


def parse_frame(text: str) -> Optional[Frame]:
    m = _FRAME.match(text)
    if not m:
        return None
    return Frame(m.group("func"), int(m.group("off"), 16), int(m.group("size"), 16),
                 m.group("mod"), bool(m.group("q")))


def _oops_of(ln: LogLine) -> Optional[OopsHeader]:
    text = ln.text
    if not _oops_hint(text):
        return None
    for pat, kind in _OOPS:
        m = pat.search(text)
        if m:
            return OopsHeader(m.group(1), kind, ln.ts, ln.stamp, ln.lineno)
    return None


_TRACE_START = re.compile(r"^\s*Call [Tt]race:")
_TRACE_MARK = re.compile(r"^\s*(?:</?(?:IRQ|TASK|NMI|EOI|SOFTIRQ)>\s*)+$")


class OopsTracker:
    """The oops header being read: attaches the RIP, the ``CPU: .. PID: ..
    Comm:`` line and the first call trace that follow it.

    A header is finished when its call trace has ended, when a RIP and a
    PID were seen and ``lookahead`` lines passed without a trace starting,
    or when a new header starts.  ``invalid opcode`` and ``Oops:`` lines
    within 3 lines of a ``kernel BUG`` / ``BUG: unable to handle`` / general
    protection fault header belong to it (x86 die() prints them under it).
    """

    __slots__ = ("pending", "seen", "lookahead", "in_trace")

    def __init__(self, lookahead: int = 60) -> None:
        self.pending: Optional[OopsHeader] = None
        self.seen = 0
        self.lookahead = lookahead
        self.in_trace = False

    def feed(self, ln: LogLine) -> List[OopsHeader]:
        """Take one line; return the headers it finished (0, 1 or 2)."""
        done: List[OopsHeader] = []
        text = ln.text
        p = self.pending
        if p is not None:
            self.seen += 1
            if self.in_trace:
                fr = parse_frame(text) if "+0x" in text else None
                if fr is not None:
                    p.trace.append(fr)
                elif not _TRACE_MARK.match(text):
                    done.append(p)
                    self.pending = p = None
            else:
                m = _RIP.match(text)
                if m and p.rip is None:
                    p.rip = f"{m.group('func')}+0x{m.group('off')}/0x{m.group('size')}"
                    p.rip_func = m.group("func")
                    if m.group("pc"):
                        p.rip_pc = int(m.group("pc"), 16)
                c = CPU_LINE.match(text) if "PID:" in text else None
                if c and p.pid is None:
                    p.pid = int(c.group("pid"))
                    p.cpu = int(c.group("cpu"))
                    p.comm = c.group("comm")
                    p.release = c.group("rel")
                if not p.trace and _TRACE_START.match(text):
                    self.in_trace = True
        h = _oops_of(ln)
        if h is not None:
            if p is not None and self.seen <= 3 and h.kind == "oops" and p.kind in (
                    "bug", "pagefault", "gpf"):
                return done  # the "invalid opcode: 0000 [#1]" line under "kernel BUG at"
            if p is not None:
                done.append(p)
            self.pending, self.seen, self.in_trace = h, 0, False
            return done
        if p is not None and not self.in_trace and self.seen > self.lookahead:
            done.append(p)
            self.pending = None
        if self.pending is None:
            self.in_trace = False
        return done

    def flush(self) -> List[OopsHeader]:
        p, self.pending, self.in_trace = self.pending, None, False
        return [p] if p is not None else []


def iter_oops(lines: Iterable[LogLine], lookahead: int = 60) -> Iterator[OopsHeader]:
    """Oops/BUG/WARNING/panic headers with the RIP, the ``CPU: .. PID: ..
    Comm:`` line and the call trace that follow them (see :class:`OopsTracker`)."""
    tr = OopsTracker(lookahead)
    for ln in lines:
        for h in tr.feed(ln):
            yield h
    yield from tr.flush()
