"""The drgn backend of the kernel access layer (standalone use).

Opens a vmcore with its vmlinux, the running kernel, or a QEMU guest over
QMP.  Only the debug info the user names is loaded and drgn's debug-info
finders are switched off, so opening never reaches for the network.
"""

import logging
import os
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..errors import MissingSymbolError, ReadError, TargetError
from . import dumpfile
from .target import KObj, LogRecord, Target

__all__ = ["DrgnObj", "DrgnTarget", "open_core", "open_live", "open_qmp"]

try:  # drgn is an optional dependency (pip install crashext[drgn])
    import drgn
except ImportError:  # pragma: no cover - exercised only without drgn
    drgn = None


def _need_drgn() -> None:
    if drgn is None:
        raise TargetError("drgn is not installed: pip install 'crashext[drgn]' (or pip install drgn)")


def _fault(exc: Exception) -> ReadError:
    addr = getattr(exc, "address", None)
    if addr is not None:
        return ReadError(f"cannot read kernel memory at {addr:#x} (not in the dump)", addr)
    return ReadError(f"cannot read kernel memory: {exc}")


class DrgnObj(KObj):
    __slots__ = ("_o",)

    def __init__(self, obj: "drgn.Object") -> None:
        self._o = obj

    @property
    def drgn_object(self) -> "drgn.Object":
        return self._o

    def member(self, name: str) -> "DrgnObj":
        o = self._o
        try:
            for part in name.split("."):
                o = o.member_(part)  # through pointers too, like C's ->
        except LookupError as exc:
            raise MissingSymbolError(f"{self.type_name} has no member {name}") from exc
        except drgn.FaultError as exc:
            raise _fault(exc) from exc
        return DrgnObj(o)

    def __int__(self) -> int:
        try:
            return int(self._o.value_()) if self._o.type_.kind != drgn.TypeKind.BOOL \
                else int(bool(self._o.value_()))
        except drgn.FaultError as exc:
            raise _fault(exc) from exc

    def __getitem__(self, index: int) -> "DrgnObj":
        try:
            return DrgnObj(self._o[index])
        except drgn.FaultError as exc:
            raise _fault(exc) from exc

    @property
    def address(self) -> Optional[int]:
        return self._o.address_

    @property
    def type_name(self) -> str:
        return self._o.type_.type_name()

    def deref(self) -> "DrgnObj":
        try:
            return DrgnObj(self._o[0])
        except drgn.FaultError as exc:
            raise _fault(exc) from exc

    def string(self, limit: int = 4096) -> str:
        try:
            raw = self._o.string_()
        except drgn.FaultError as exc:
            raise _fault(exc) from exc
        return raw[:limit].decode("utf-8", "replace")

    def length(self) -> int:
        n = self._o.type_.length
        if n is None:
            raise MissingSymbolError(f"{self.type_name} is not an array of known length")
        return n

    def __repr__(self) -> str:
        return f"DrgnObj({self.type_name} @ {self.address if self.address is None else hex(self.address)})"


class DrgnTarget(Target):
    backend = "drgn"

    def __init__(self, prog: "drgn.Program", source: str, live: bool = False,
                 warnings: Optional[List[str]] = None) -> None:
        self.prog = prog
        self._source = source
        self._live = live
        #: non-fatal problems found while opening (e.g. a truncated dump)
        self.warnings: List[str] = list(warnings or [])
        self._enum_cache: Dict[str, Dict[str, int]] = {}

    # -- facts ---------------------------------------------------------
    @property
    def release(self) -> str:
        try:
            return self.prog["UTS_RELEASE"].string_().decode()
        except (LookupError, drgn.FaultError):
            return self.uts()["release"]

    @property
    def page_size(self) -> int:
        try:
            return int(self.prog["PAGE_SIZE"].value_())
        except LookupError:
            return 4096

    @property
    def is_live(self) -> bool:
        return self._live

    @property
    def source(self) -> str:
        return self._source

    # -- symbols and types -------------------------------------------------
    def symbol(self, name: str) -> KObj:
        try:
            return DrgnObj(self.prog.variable(name))
        except LookupError as exc:
            try:  # macros and constants drgn's Linux support provides
                return DrgnObj(self.prog[name])
            except LookupError:
                raise MissingSymbolError(f"kernel has no symbol {name}") from exc

    def symbol_address(self, name: str) -> int:
        try:
            return self.prog.symbol(name).address
        except LookupError as exc:
            raise MissingSymbolError(f"kernel has no symbol {name}") from exc

    def has_symbol(self, name: str) -> bool:
        try:
            self.prog.symbol(name)
            return True
        except LookupError:
            return False

    def _type(self, type_name: str) -> "drgn.Type":
        try:
            return self.prog.type(type_name)
        except (LookupError, SyntaxError) as exc:
            raise MissingSymbolError(f"debug info has no type {type_name}") from exc

    def has_type(self, type_name: str) -> bool:
        try:
            self._type(type_name)
            return True
        except MissingSymbolError:
            return False

    def type_size(self, type_name: str) -> int:
        return drgn.sizeof(self._type(type_name))

    def member_offset(self, type_name: str, member: str) -> int:
        t = self._type(type_name)
        try:
            return drgn.offsetof(t, member)
        except (LookupError, TypeError) as exc:  # TypeError: a dotted path through a non-struct
            raise MissingSymbolError(f"{type_name} has no member {member}") from exc

    def member_int_layout(self, type_name: str, member: str) -> Tuple[int, int, bool]:
        off = self.member_offset(type_name, member)
        try:
            # a reference at address 0 reads nothing until its value is asked for
            o = drgn.Object(self.prog, self._type(type_name), address=0)
            for part in member.split("."):
                o = o.member_(part)
        except (LookupError, drgn.FaultError) as exc:
            raise MissingSymbolError(f"{type_name} has no member {member}") from exc
        t = o.type_
        while t.kind == drgn.TypeKind.TYPEDEF:
            t = t.type
        if o.bit_field_size_ is None:
            if t.kind == drgn.TypeKind.POINTER:
                return off, drgn.sizeof(t), False
            if t.kind == drgn.TypeKind.ENUM and t.type is not None:
                return off, drgn.sizeof(t), t.type.is_signed
            if t.kind == drgn.TypeKind.INT:
                return off, drgn.sizeof(t), t.is_signed
        raise MissingSymbolError(f"{type_name}.{member} is not a whole integer or pointer")

    def enum_constants(self, enum_type: str) -> Dict[str, int]:
        cached = self._enum_cache.get(enum_type)
        if cached is None:
            t = self._type(enum_type)
            while t.kind == drgn.TypeKind.TYPEDEF:
                t = t.type
            if t.kind != drgn.TypeKind.ENUM or t.enumerators is None:
                raise MissingSymbolError(f"{enum_type} is not a complete enum")
            cached = {e.name: e.value for e in t.enumerators}
            self._enum_cache[enum_type] = cached
        return dict(cached)

    def constant(self, name: str) -> int:
        try:
            obj = self.prog.constant(name)
        except LookupError as exc:
            raise MissingSymbolError(f"debug info has no constant {name}") from exc
        return int(obj.value_())

    # -- objects and memory -------------------------------------------
    def object(self, type_name: str, address: int) -> KObj:
        return DrgnObj(drgn.Object(self.prog, self._type(type_name), address=address))

    def read_u64(self, address: int) -> int:
        try:
            return self.prog.read_u64(address)
        except drgn.FaultError as exc:
            raise _fault(exc) from exc

    def read_u32(self, address: int) -> int:
        try:
            return self.prog.read_u32(address)
        except drgn.FaultError as exc:
            raise _fault(exc) from exc

    def read_bytes(self, address: int, size: int) -> bytes:
        try:
            return self.prog.read(address, size)
        except drgn.FaultError as exc:
            raise _fault(exc) from exc

    # -- per-CPU -----------------------------------------------------------
    def possible_cpus(self) -> List[int]:
        from drgn.helpers.linux.cpumask import for_each_possible_cpu
        try:
            return list(for_each_possible_cpu(self.prog))
        except drgn.FaultError as exc:
            raise _fault(exc) from exc

    def per_cpu(self, obj: KObj, cpu: int) -> KObj:
        from drgn.helpers.linux.percpu import per_cpu, per_cpu_ptr
        o = obj.drgn_object  # type: ignore[attr-defined]
        try:
            if o.type_.kind == drgn.TypeKind.POINTER:
                return DrgnObj(per_cpu_ptr(o, cpu)[0])
            return DrgnObj(per_cpu(o, cpu))
        except drgn.FaultError as exc:
            raise _fault(exc) from exc

    # -- log ------------------------------------------------------------------
    def log_records(self) -> Iterator[LogRecord]:
        from drgn.helpers.linux.printk import get_printk_records
        try:
            records = get_printk_records(self.prog)
        except drgn.FaultError as exc:
            raise _fault(exc) from exc
        for rec in records:
            # seconds as printk prints them ("[%5lu.%06lu]": the nanoseconds
            # truncated to microseconds), so a dump's log equals its console
            # and crash's `log` (which prints the same format)
            ts = (rec.timestamp // 1000) / 1e6 if rec.timestamp is not None else None
            text = rec.text.decode("utf-8", "replace")
            for line in text.split("\n"):
                yield ts, line

    # -- the crash itself ---------------------------------------------------------
    def _crashed_thread(self) -> "drgn.Thread":
        try:
            return self.prog.crashed_thread()
        except (LookupError, ValueError) as exc:
            raise TargetError(f"cannot find the panicking task in this dump: {exc}") from exc
        except drgn.FaultError as exc:
            raise _fault(exc) from exc

    def crashed_task(self) -> Optional[Dict[str, Any]]:
        if self._live:
            return None
        from drgn.helpers.linux.sched import task_cpu
        thread = self._crashed_thread()
        try:
            task = thread.object
            return {"pid": int(thread.tid), "comm": task.comm.string_().decode("utf-8", "replace"),
                    "cpu": int(task_cpu(task)), "task": int(task.value_())}
        except drgn.FaultError as exc:
            raise _fault(exc) from exc

    def backtrace(self) -> List[Dict[str, Any]]:
        thread = self._crashed_thread()
        try:
            trace = thread.stack_trace()
        except (ValueError, LookupError) as exc:
            raise TargetError(f"cannot unwind the panicking task: {exc}") from exc
        except drgn.FaultError as exc:
            raise _fault(exc) from exc
        frames = []
        for i, frame in enumerate(trace):
            pc = frame.pc
            if pc == 0 and i > 0:
                # no kernel code lives at address 0: a zeroed (damaged) stack,
                # everything from here on is not a real frame
                break
            func, offset, size = frame.name, None, None
            try:
                sym = frame.symbol()
                if not frame.is_inline:  # an inlined frame's symbol is its caller's
                    func = func or sym.name
                    offset, size = pc - sym.address, sym.size
            except LookupError:
                pass
            try:
                path, line, _col = frame.source()
            except LookupError:
                path, line = None, None
            frames.append({"function": func, "offset": offset, "size": size, "pc": pc,
                           # frame 0's registers are the ones saved when the dump was
                           # taken (interrupted too), and user-space pt_regs at the
                           # syscall entry are not an exception in the kernel: only a
                           # later interrupted frame in the kernel half (x86_64/arm64:
                           # top bit set) is the exception RIP
                           "file": path, "line": line,
                           "exception": bool(frame.interrupted) and i > 0 and pc >= 1 << 63,
                           "inline": bool(frame.is_inline)})
        return frames


def _new_program() -> "drgn.Program":
    # drgn logs its own warnings (e.g. "can't find kernel modules" on a
    # damaged dump) to stderr; crashext reports what matters in one line.
    logging.getLogger("drgn").setLevel(logging.ERROR)
    prog = drgn.Program()
    # No debuginfod or other finders: only what the user named is loaded.
    try:
        prog.set_enabled_debug_info_finders([])
    except (AttributeError, ValueError):  # pragma: no cover - older drgn
        pass
    return prog


def _load_vmlinux(prog: "drgn.Program", vmlinux: str) -> None:
    try:
        prog.load_debug_info([vmlinux])
    except drgn.MissingDebugInfoError:
        pass
    main = prog.main_module()
    if main is None or main.debug_file_path is None:
        raise TargetError(f"{vmlinux}: no usable debug info for this kernel "
                          "(is it the debug vmlinux of the same build?)")


def open_core(core: str, vmlinux: Optional[str]) -> DrgnTarget:
    """Open ``core`` with the debug vmlinux ``vmlinux``."""
    _need_drgn()
    if vmlinux is None:
        raise TargetError("a vmcore needs its debug vmlinux: add -s VMLINUX")
    info = dumpfile.check_pair(core, vmlinux)
    prog = _new_program()
    try:
        prog.set_core_dump(core)
        _load_vmlinux(prog, vmlinux)
    except TargetError:
        raise
    except Exception as exc:  # drgn's FaultError, ValueError, OSError, ...
        why = " ".join(str(exc).split())
        if len(why) > 160:
            why = why[:157] + "..."
        known = "; ".join(info.warnings)
        raise TargetError(f"{core}: drgn cannot open this dump"
                          + (f" ({known})" if known else "") + f": {why}") from exc
    return DrgnTarget(prog, f"vmcore {core}", warnings=info.warnings)


def open_live(vmlinux: Optional[str]) -> DrgnTarget:
    """Open the running kernel (root and /proc/kcore needed)."""
    _need_drgn()
    prog = _new_program()
    try:
        prog.set_kernel()
    except PermissionError as exc:
        raise TargetError("reading the live kernel needs root (/proc/kcore)") from exc
    except FileNotFoundError as exc:
        raise TargetError("cannot open the running kernel: no /proc/kcore (kernel built without "
                          "CONFIG_PROC_KCORE, or a container/sandbox that hides it); without it, "
                          "use frag --proc /proc and memcgids --sys /sys/fs/cgroup") from exc
    except (OSError, ValueError) as exc:
        raise TargetError(f"cannot open the running kernel: {exc}") from exc
    if vmlinux:
        dumpfile.check_vmlinux_file(vmlinux)
        _load_vmlinux(prog, vmlinux)
    else:
        try:
            prog.set_enabled_debug_info_finders(["standard"])
            prog.load_debug_info(main=True)
        except (drgn.MissingDebugInfoError, ValueError):
            pass
        main = prog.main_module()
        if main is None or main.debug_file_path is None:
            raise TargetError(f"no debug info for the running kernel {os.uname().release}: "
                              "install its debug vmlinux (e.g. linux-image-*-dbg) or pass -s VMLINUX")
    return DrgnTarget(prog, "live kernel", live=True)


def open_qmp(socket_path: str, vmlinux: Optional[str]) -> DrgnTarget:
    """Attach to a running QEMU guest through its QMP socket."""
    _need_drgn()
    if not vmlinux:
        raise TargetError("--qemu needs the guest's debug vmlinux: add -s VMLINUX")
    dumpfile.check_vmlinux_file(vmlinux)
    prog = _new_program()
    try:
        prog.set_qemu_qmp(socket_path)
    except AttributeError as exc:  # pragma: no cover - older drgn
        raise TargetError("this drgn cannot attach over QMP (needs drgn >= 0.3)") from exc
    except (OSError, ValueError) as exc:
        raise TargetError(f"{socket_path}: cannot attach over QMP: {exc}") from exc
    _load_vmlinux(prog, vmlinux)
    return DrgnTarget(prog, f"QEMU guest via {socket_path}", live=True)
