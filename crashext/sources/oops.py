"""Oops, BUG, WARNING and panic headers in a kernel log, with the RIP, the
``CPU: .. PID: .. Comm:`` line and the call trace that follow them; the
call-trace frame format they share with allocation failures and OOM
reports (lib/dump_stack.c, arch/x86/kernel/dumpstack.c of each version).
:mod:`crashext.sources.kmsg` reads them alongside its own records.

Other architectures print the same parts in their own words:

- arm64 (arch/arm64/mm/fault.c die_kernel_fault(), kernel/traps.c __die(),
  kernel/process.c __show_regs()): ``Unable to handle kernel %s at virtual
  address %016lx`` (``NULL pointer dereference``, ``paging request``, ...),
  ``Internal error: %s: %x [#%d]``, ``pc : %pS`` / ``lr : %pS`` (``PC is
  at %pS`` on older kernels), ``Call trace:`` then ``  func+0x1/0x2`` (``[<addr>]
  func+0x1/0x2`` before);
- powerpc (arch/powerpc/mm/fault.c bad_page_fault(), kernel/traps.c die(),
  kernel/process.c show_regs() and show_stack()): ``BUG: Kernel NULL pointer
  dereference on read at 0x%08lx`` / ``BUG: Unable to handle kernel data
  access ...`` (newer kernels; older ones, 2.6.28's and 3.19's here, print
  ``Unable to handle kernel paging request for data at address 0x%08lx``;
  the release between is not confirmed), ``Faulting instruction address: 0x%08lx``,
  ``Oops: %s, sig: %ld [#%d]``, ``NIP [%016lx] %pS``, ``LR [%016lx] %pS``,
  ``REGS: %p TRAP: %04lx   %s  (%s)`` (taint, release), ``TASK = %p[%d]
  '%s' THREAD: %p CPU: %d`` (before the ``CPU: .. PID:`` line), ``Call
  Trace:`` then ``[sp] [ip] func+0x1/0x2``, the first marked ``(unreliable)``
  (64-bit ELF v1 kernels print function entry points with a leading dot:
  ``.mem_cgroup_charge_common``);
- s390 (arch/s390/kernel/dumpstack.c die() and show_regs(), lib/bug.c):
  ``%s: %04x ilc:%d [#%d]`` (``addressing exception: 0005 ilc:3 [#1]``),
  after the ``Kernel BUG at %p [verbose debug info unavailable]`` line that
  report_bug() prints for any kernel program check, ``Krnl PSW : %px %px
  (%pSR)``, ``Call Trace:`` then `` [<addr>] func+0x1/0x2`` (``([<addr>]
  ...)`` for a frame that is not reliable);
- SLUB's consistency checks (mm/slub.c slab_bug()): ``BUG %s (%s): %s``
  (cache, taint, what is wrong), then the ``CPU: .. PID:`` line of the task:
  a report, not a crash (kind ``slab``).
"""

import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator, List, Optional

from .logs import LogLine

__all__ = ["Frame", "OopsHeader", "OopsTracker", "CPU_LINE", "parse_frame", "iter_oops", "NOT_FATAL"]

#: header kinds that report without killing the task: a WARNING (unless
#: panic_on_warn), SLUB's consistency report
NOT_FATAL = ("warning", "slab")


@dataclass
class Frame:
    func: str
    offset: int
    size: int
    module: Optional[str] = None
    unreliable: bool = False  # "?" frame: found on the stack, not on the unwind chain
    pc: Optional[int] = None  # the address printed with it ("[<addr>]", ppc64's "[sp] [ip]")

    def __str__(self) -> str:
        mod = f" [{self.module}]" if self.module else ""
        return f"{'? ' if self.unreliable else ''}{self.func}+{self.offset:#x}/{self.size:#x}{mod}"


@dataclass
class OopsHeader:
    message: str
    kind: str                      # "bug", "oops", "warning", "panic", "gpf", "pagefault", "slab"
    ts: Optional[float] = None
    stamp: Optional[str] = None
    line: int = 0
    rip: Optional[str] = None      # "func+0x41/0x50"
    rip_func: Optional[str] = None
    comm: Optional[str] = None
    pid: Optional[int] = None
    release: Optional[str] = None
    cpu: Optional[int] = None
    # the address of the trapping instruction: 3.10-era "RIP: 0010:[<addr>]",
    # ppc64's "Faulting instruction address:", s390's PSW address
    rip_pc: Optional[int] = None
    trace: List[Frame] = field(default_factory=list)  # the first "Call Trace:" after the header
    address: Optional[int] = None  # the data address of a fault, as the header printed it


CPU_LINE = re.compile(r"^\s*CPU: (?P<cpu>\d+) (?:UID: \d+ )?PID: (?P<pid>\d+) Comm: (?P<comm>.*?) "
                      r"(?P<taint>Not tainted|Tainted: [^#]*?)\s*(?P<rel>\d+\.\d+[^\s#]*)?\s*#")
# ppc64, before the CPU: line:
# "TASK = c0000000f6c56cc0[4610] 'crash' THREAD: c0000000f6c7c000 CPU: 0"
_PPC_TASK = re.compile(r"^\s*TASK = [0-9a-f]+\[(?P<pid>\d+)\] '(?P<comm>.*)' THREAD: [0-9a-f]+"
                       r"(?: CPU: (?P<cpu>\d+))?")
# ppc64: "REGS: c0000000f6c7f1b0 TRAP: 0300   Tainted: G      D     (2.6.28-rc4)"
_PPC_REGS = re.compile(r"^\s*REGS: [0-9a-f]+ TRAP: [0-9a-f]+\s+(?:Not tainted|Tainted:[^(]*)"
                       r"\s*\((?P<rel>\d+\.\d+[^)\s]*)\)")
# ppc64: "Faulting instruction address: 0xc0000000005277fc"
_PPC_FAULTING = re.compile(r"^\s*Faulting instruction address: 0x(?P<pc>[0-9a-f]+)")
_FRAME = re.compile(r"^\s*(?:</?[A-Z]+>\s*)*(?P<paren>\()?(?:\[<?(?P<a1>[0-9a-fA-F]+)>?\]\s*)?"
                    r"(?:\[(?P<a2>[0-9a-fA-F]+)\]\s*)?(?P<q>\?\s+)?"
                    r"\.?(?P<func>[A-Za-z_$][\w.$]*)"
                    r"\+0x(?P<off>[0-9a-fA-F]+)/0x(?P<size>[0-9a-fA-F]+)"
                    r"(?:\s+\[(?P<mod>[^\]]+)\])?(?P<unrel>\s+\(unreliable\))?")
_OOPS = [
    (re.compile(r"(kernel BUG at \S+:\d+!?)"), "bug"),
    # lib/bug.c report_bug() without a file and line (s390 prints it for any
    # kernel program check)
    (re.compile(r"(Kernel BUG at [0-9a-f]+ \[verbose debug info unavailable\])"), "bug"),
    (re.compile(r"(BUG: [Uu]nable to handle (?:kernel |unknown ).*?)\s*$"), "pagefault"),
    (re.compile(r"(BUG: [Kk]ernel NULL pointer dereference.*?)\s*$"), "pagefault"),
    (re.compile(r"(BUG: (?:soft lockup|scheduling while atomic|sleeping function|"
                r"Bad page|KASAN|workqueue lockup|Dentry|Bad rss).*?)\s*$"), "bug"),
    # arm64, arm, older ppc64, riscv
    (re.compile(r"^\s*(Unable to handle kernel .*?)\s*$"), "pagefault"),
    (re.compile(r"^\s*(general protection fault.*?)\s*$"), "gpf"),
    (re.compile(r"^\s*(Oops: .*?)\s*$"), "oops"),
    (re.compile(r"^\s*(Internal error: .*?)\s*$"), "oops"),
    (re.compile(r"^\s*(invalid opcode: .*?)\s*$"), "oops"),
    # s390 die(): "addressing exception: 0005 ilc:3 [#1] SMP"
    (re.compile(r"^\s*([a-z][a-z -]*: [0-9a-f]{4} ilc:\d \[#\d+\].*?)\s*$"), "oops"),
    (re.compile(r"^\s*(WARNING: (?:CPU: \d+ PID: \d+ )?at .*?)\s*$"), "warning"),
    (re.compile(r"^\s*(Kernel panic - not syncing: .*?)\s*$"), "panic"),
    (re.compile(r"^\s*(BUG \S+ \((?:Not tainted|Tainted:[^)]*)\): .*?)\s*$"), "slab"),
]
# the data address a fault header printed: "at virtual address 0000000000000188",
# "at address 0x00000020", "on read at 0x00001508", "dereference at 00000000000003b0",
# "address: 0000000000000008"
_ADDRESS = re.compile(r"(?:\baddress:?|\bat)\s+(?:0x)?(?P<a>[0-9a-fA-F]{4,16})\b")
# s390: "Failing address: 0000000000000000 TEID: 0000000000000483"
_S390_FAILING = re.compile(r"^\s*Failing address: (?P<a>[0-9a-f]+)")


def _oops_hint(text: str) -> bool:
    """Whether ``text`` holds one of the words every oops header has (a
    substring test each: several times a regex alternation's speed)."""
    return "BUG" in text or "Oops" in text or "WARNING" in text or "protection fault" in text \
        or "invalid opcode" in text or "Kernel panic" in text or "nable to handle" in text \
        or "Internal error" in text or " ilc:" in text


_RIP = re.compile(r"^\s*(?:RIP: [0-9a-f]{4}:(?:\[<(?P<pc>[0-9a-f]+)>\]\s*\[<[0-9a-f]+>\]\s*)?|"
                  r"pc : |PC is at |NIP \[(?P<nip>[0-9a-f]+)\] |"
                  r"Krnl PSW : [0-9a-f]+ (?P<psw>[0-9a-f]+) \(|"
                  r"EIP: [0-9a-f]{4}:\[<[0-9a-f]+>\] EFLAGS.*? )"
                  r"\.?(?P<func>[A-Za-z_][\w.]*)\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)")


def parse_frame(text: str) -> Optional[Frame]:
    m = _FRAME.match(text)
    if not m:
        return None
    pc = m.group("a2") or m.group("a1")
    return Frame(m.group("func"), int(m.group("off"), 16), int(m.group("size"), 16),
                 m.group("mod"), bool(m.group("q") or m.group("paren") or m.group("unrel")),
                 int(pc, 16) if pc else None)


def _oops_of(ln: LogLine) -> Optional[OopsHeader]:
    text = ln.text
    if not _oops_hint(text):
        return None
    for pat, kind in _OOPS:
        m = pat.search(text)
        if m:
            h = OopsHeader(m.group(1), kind, ln.ts, ln.stamp, ln.lineno)
            if kind == "pagefault":
                a = _ADDRESS.search(h.message)
                h.address = int(a.group("a"), 16) if a else None
            return h
    return None


_TRACE_START = re.compile(r"^\s*Call [Tt]race:")
_TRACE_MARK = re.compile(r"^\s*(?:</?(?:IRQ|TASK|NMI|EOI|SOFTIRQ)>\s*)+$")
# lines inside a call trace that are not frames and do not end it: ppc64's
# exception frames ("--- interrupt: 300 at ...", "--- Exception: 300 at ...",
# "    LR = ..."), a frame without a symbol ("([<0000000000000000>]  (null))",
# s390), and "(unreliable)" wrapped off its frame
_TRACE_OTHER = re.compile(r"^\s*(?:--- (?:interrupt|Exception):|LR = |\(?\[<[0-9a-f]+>\]|"
                          r"\(unreliable\)\s*$)")


class OopsTracker:
    """The oops header being read: attaches the RIP, the ``CPU: .. PID: ..
    Comm:`` line and the first call trace that follow it.

    A header is finished when its call trace has ended, when a RIP and a
    PID were seen and ``lookahead`` lines passed without a trace starting,
    or when a new header starts.  ``invalid opcode``, ``Oops:`` and
    ``Internal error:`` lines belong to the ``kernel BUG`` / page fault /
    general protection fault header before them when they come within 3
    lines (x86 die() prints them under it), or before anything of that
    header was read (arm64 prints the fault's decoding first); s390's
    program check replaces the ``Kernel BUG at <address>`` line report_bug()
    printed for it.
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
            if not self.in_trace:
                self._attach(p, text)
            elif not _trace_line(p, text):
                done.append(_finished(p))
                self.pending = p = None
        h = _oops_of(ln)
        if h is not None:
            if p is not None and self._same_event(p, h):
                if " ilc:" in h.message and p.kind == "bug" and "[verbose" in p.message:
                    self.pending, self.seen = h, 0
                return done
            if p is not None:
                done.append(_finished(p))
            self.pending, self.seen, self.in_trace = h, 0, False
            return done
        if p is not None and not self.in_trace and self.seen > self.lookahead:
            done.append(_finished(p))
            self.pending = None
        if self.pending is None:
            self.in_trace = False
        return done

    def _same_event(self, p: OopsHeader, h: OopsHeader) -> bool:
        if h.kind != "oops" or p.kind not in ("bug", "pagefault", "gpf"):
            return False
        return self.seen <= 3 or (p.rip is None and p.pid is None and not p.trace
                                  and self.seen <= _DECODE_LINES)

    def _attach(self, p: OopsHeader, text: str) -> None:
        """The RIP, task, release and addresses a line after the header adds."""
        m = _RIP.match(text)
        if m and p.rip is None:
            p.rip = f"{m.group('func')}+0x{m.group('off')}/0x{m.group('size')}"
            p.rip_func = m.group("func")
            pc = m.group("pc") or m.group("nip") or m.group("psw")
            if pc:
                p.rip_pc = int(pc, 16)
        if "PID:" in text:
            c = CPU_LINE.match(text)
            if c and p.pid is None:
                p.pid, p.cpu, p.comm = int(c.group("pid")), int(c.group("cpu")), c.group("comm")
                p.release = c.group("rel") or p.release
        elif "TASK = " in text:
            t = _PPC_TASK.match(text)
            if t and p.pid is None:
                p.pid, p.comm = int(t.group("pid")), t.group("comm")
                p.cpu = int(t.group("cpu")) if t.group("cpu") else None
        elif "TRAP:" in text:
            r = _PPC_REGS.match(text)
            if r and p.release is None:
                p.release = r.group("rel")
        elif "address" in text:
            f = _PPC_FAULTING.match(text)
            if f and p.rip_pc is None:
                p.rip_pc = int(f.group("pc"), 16)
            f = _S390_FAILING.match(text) if f is None else None
            if f and p.address is None:
                p.address = int(f.group("a"), 16)
        if not p.trace and _TRACE_START.match(text):
            self.in_trace = True

    def flush(self) -> List[OopsHeader]:
        p, self.pending, self.in_trace = self.pending, None, False
        return [_finished(p)] if p is not None else []


#: lines an arm64 fault's decoding ("Mem abort info:", "Data abort info:",
#: the page-table walk) may take between its header and "Internal error:"
_DECODE_LINES = 30


def _trace_line(p: OopsHeader, text: str) -> bool:
    """Take a line of ``p``'s call trace; False when the trace has ended."""
    fr = parse_frame(text) if "+0x" in text else None
    if fr is not None:
        p.trace.append(fr)
        return True
    if _TRACE_MARK.match(text):
        return True
    if _TRACE_OTHER.match(text):
        if text.strip() == "(unreliable)" and p.trace:
            p.trace[-1].unreliable = True
        return True
    return False


def _finished(p: OopsHeader) -> OopsHeader:
    """``p`` with the trapping function taken from its call trace when no
    RIP line named it but the trapping address is known (ppc64's "Faulting
    instruction address:" of an excerpt without its NIP line): the frame
    whose function, from its printed address, offset and size, holds it."""
    if p.rip is None and p.rip_pc is not None:
        for fr in p.trace:
            if fr.pc is None:
                continue
            start = fr.pc - fr.offset
            if 0 <= p.rip_pc - start < fr.size:
                p.rip = f"{fr.func}+{p.rip_pc - start:#x}/{fr.size:#x}"
                p.rip_func = fr.func
                break
    return p


def iter_oops(lines: Iterable[LogLine], lookahead: int = 60) -> Iterator[OopsHeader]:
    """Oops/BUG/WARNING/panic headers with the RIP, the ``CPU: .. PID: ..
    Comm:`` line and the call trace that follow them (see :class:`OopsTracker`)."""
    tr = OopsTracker(lookahead)
    for ln in lines:
        for h in tr.feed(ln):
            yield h
    yield from tr.flush()
