"""The PyKdump backend of the kernel access layer (inside a crash session).

Imported only inside crash, after ``extend mpykdump.so``: it reads through
crash's own symbol table, gdb's type information and crash's ``readmem``,
via the ``crash`` module PyKdump's extension provides (``gdb_typeinfo``,
``gdb_whatis``, ``sym2addr``, ``symbol_exists``, ``enumerator_value``,
``readmem``, ``readInt``, ``exec_crash_command``).

Objects are typed views built from ``crash.gdb_typeinfo`` descriptions,
as the :class:`~crashext.kernel.target.KObj` interface requires, so the
analyses see the same members, integers and arrays as under drgn.

A type description is the dict ``gdb_typeinfo`` returns: ``codetype``
(for arrays the element's), ``typelength`` (likewise), ``basetype``,
``stars`` (pointer depth), ``dims`` (array dimensions), ``uint``, ``body``
(struct/union members, each with ``fname`` and ``bitoffset``/``bitsize``),
``edef`` (enumerators).
"""

import os
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..errors import CrashextError, MissingSymbolError, ReadError, TargetError
from . import dumpfile
from .target import KObj, LogRecord, Target

__all__ = ["PykdumpObj", "PykdumpTarget", "open_session"]

try:
    import crash  # the module PyKdump's extension registers inside crash
except ImportError:  # pragma: no cover - outside crash
    crash = None

Desc = Dict[str, Any]

#: addresses are 64-bit: sums of them wrap as the CPU's do
_U64 = (1 << 64) - 1


def _codes() -> Dict[str, int]:
    return {name: getattr(crash, name) for name in dir(crash) if name.startswith("TYPE_CODE")}


class _Types:
    """Cached gdb type descriptions (gdb_typeinfo is slow to call)."""

    def __init__(self) -> None:
        self.cache: Dict[str, Optional[Desc]] = {}
        self.constants: Dict[str, Any] = {}
        codes = _codes()
        self.PTR = codes.get("TYPE_CODE_PTR")
        self.STRUCT = codes.get("TYPE_CODE_STRUCT")
        self.UNION = codes.get("TYPE_CODE_UNION")
        self.ENUM = codes.get("TYPE_CODE_ENUM")
        self.BOOL = codes.get("TYPE_CODE_BOOL")
        self.INT = codes.get("TYPE_CODE_INT")
        self.CHAR = codes.get("TYPE_CODE_CHAR")

    def get(self, name: str) -> Optional[Desc]:
        if name not in self.cache:
            try:
                self.cache[name] = crash.gdb_typeinfo(name)
            except Exception:  # crash.error, or gdb's own failure
                self.cache[name] = None
        return self.cache[name]

    def need(self, name: str) -> Desc:
        d = self.get(name)
        if d is None:
            raise MissingSymbolError(f"debug info has no type {name}")
        return d

    def body(self, desc: Desc) -> List[Desc]:
        """Members of a struct/union description (looked up by name if not expanded)."""
        if "body" in desc:
            return desc["body"]
        base = desc.get("basetype", "")
        full = self.get(base) if base else None
        if full is None or "body" not in full:
            raise MissingSymbolError(f"{base or 'type'} is not a known struct or union")
        return full["body"]

    def find_member(self, desc: Desc, name: str):
        """(member description, byte offset), searching anonymous members too."""
        for m in self.body(desc):
            fname = m.get("fname")
            off = m.get("bitoffset", 0) // 8
            if fname == name:
                return m, off
            if not fname and m.get("codetype") in (self.STRUCT, self.UNION) and not m.get("stars"):
                found = self._find_in(m, name)
                if found is not None:
                    return found[0], off + found[1]
        return None

    def _find_in(self, desc: Desc, name: str):
        try:
            return self.find_member(desc, name)
        except MissingSymbolError:
            return None


def _type_name(desc: Desc) -> str:
    base = desc.get("typedef") if desc.get("basetype") in ("struct", "union") else None
    name = base or desc.get("basetype") or "?"
    if desc.get("stars"):
        name += " " + "*" * desc["stars"]
    for d in desc.get("dims") or []:
        name += f"[{d}]"
    return name


def _read(addr: int, size: int) -> bytes:
    try:
        return crash.readmem(addr, size)
    except IndexError as exc:
        raise ReadError("NULL pointer dereference", 0) from exc
    except Exception as exc:  # crash.error
        raise ReadError(f"cannot read kernel memory at {addr:#x} (not in the dump)", addr) from exc


def _read_int(addr: int, size: int, signed: bool) -> int:
    return int.from_bytes(_read(addr, size), "little", signed=signed)


class PykdumpObj(KObj):
    __slots__ = ("_t", "_d", "_addr")

    def __init__(self, types: _Types, desc: Desc, address: int) -> None:
        self._t = types
        self._d = desc
        self._addr = address

    # -- helpers -------------------------------------------------------------
    def _is_pointer(self) -> bool:
        return bool(self._d.get("stars")) and not self._d.get("dims")

    def _target_desc(self) -> Desc:
        """Description of what a pointer points to (one star less)."""
        d = dict(self._d)
        stars = d.get("stars", 0) - 1
        d.pop("dims", None)
        if stars > 0:
            d["stars"] = stars
            d["typelength"] = 8
            d["codetype"] = self._t.PTR
        else:
            d.pop("stars", None)
            d["codetype"] = d.get("ptrbasetype", d.get("codetype"))
            base = d.get("basetype", "")
            full = self._t.get(base) if base and base not in ("struct", "union") else None
            if full is not None:
                d["typelength"] = full.get("typelength", 0)
                if "body" in full:
                    d["body"] = full["body"]
        return d

    def _element(self) -> Desc:
        d = dict(self._d)
        dims = list(d.get("dims") or [])
        rest = dims[1:]
        if rest:
            d["dims"] = rest
        else:
            d.pop("dims", None)
        return d

    def _size(self, desc: Desc) -> int:
        size = 8 if desc.get("stars") and not desc.get("dims") else desc.get("typelength", 0)
        for dim in desc.get("dims") or []:
            size *= dim
        return size

    # -- KObj ----------------------------------------------------------------
    def member(self, name: str) -> "PykdumpObj":
        obj = self
        for part in name.split("."):
            if obj._is_pointer():
                obj = obj.deref()
            found = obj._t.find_member(obj._d, part)
            if found is None:
                raise MissingSymbolError(f"{obj.type_name} has no member {part}")
            mdesc, off = found
            obj = PykdumpObj(obj._t, mdesc, obj._addr + off)
        return obj

    def __int__(self) -> int:
        d = self._d
        if d.get("dims"):
            return self._addr  # an array decays to its address
        if self._is_pointer():
            return _read_int(self._addr, 8, False)
        size = d.get("typelength", 8)
        bitsize = d.get("bitsize")
        signed = not d.get("uint", 0) and d.get("codetype") in (self._t.INT, self._t.ENUM, self._t.CHAR)
        if bitsize:
            bitoff = d.get("bitoffset", 0) % 8
            nbytes = (bitoff + bitsize + 7) // 8
            raw = _read_int(self._addr, nbytes, False)
            v = (raw >> bitoff) & ((1 << bitsize) - 1)
            if signed and v >> (bitsize - 1):
                v -= 1 << bitsize
            return v
        if d.get("codetype") == self._t.BOOL:
            return int(bool(_read_int(self._addr, size, False)))
        if size not in (1, 2, 4, 8):
            raise MissingSymbolError(f"{self.type_name} is not an integer")
        return _read_int(self._addr, size, signed)

    def __getitem__(self, index: int) -> "PykdumpObj":
        if self._d.get("dims"):
            el = self._element()
            return PykdumpObj(self._t, el, self._addr + index * self._size(el))
        if self._is_pointer():
            el = self._target_desc()
            return PykdumpObj(self._t, el, int(self) + index * self._size(el))
        raise MissingSymbolError(f"{self.type_name} is neither an array nor a pointer")

    @property
    def address(self) -> Optional[int]:
        return self._addr

    @property
    def type_name(self) -> str:
        return _type_name(self._d)

    def deref(self) -> "PykdumpObj":
        if not self._is_pointer():
            raise MissingSymbolError(f"{self.type_name} is not a pointer")
        ptr = int(self)
        if ptr == 0:
            raise ReadError(f"NULL {self.type_name} dereferenced", 0)
        return PykdumpObj(self._t, self._target_desc(), ptr)

    def string(self, limit: int = 4096) -> str:
        if self._d.get("dims"):
            raw = _read(self._addr, min(self._d["dims"][0], limit))
        else:
            ptr = int(self)
            if ptr == 0:
                return ""
            raw = b""
            while len(raw) < limit and b"\0" not in raw:
                # read up to the end of the page, then go on
                chunk = 4096 - ((ptr + len(raw)) & 4095)
                raw += _read(ptr + len(raw), min(chunk, limit - len(raw)))
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    def length(self) -> int:
        dims = self._d.get("dims")
        if not dims:
            raise MissingSymbolError(f"{self.type_name} is not an array")
        return dims[0]

    def __repr__(self) -> str:
        return f"PykdumpObj({self.type_name} @ {self._addr:#x})"


class PykdumpTarget(Target):
    backend = "pykdump"

    def __init__(self) -> None:
        if crash is None:
            raise TargetError("the PyKdump backend runs only inside crash (extend mpykdump.so)")
        self._t = _Types()
        self._sys: Optional[Dict[str, str]] = None
        self._bt_cache: Optional[Dict[str, Any]] = None
        self._release: Optional[str] = None
        self.warnings: List[str] = []

    def _sysinfo(self) -> Dict[str, str]:
        if self._sys is None:
            out = {}
            for line in self.command("sys").splitlines():
                key, sep, value = line.partition(":")
                if sep:
                    out[key.strip()] = value.strip()
            self._sys = out
        return self._sys

    def command(self, cmd: str) -> str:
        """Run a crash command and return its output."""
        try:
            return crash.exec_crash_command(cmd)
        except Exception as exc:
            raise ReadError(f"crash command '{cmd}' failed: {exc}") from exc

    @property
    def release(self) -> str:
        # As drgn does: the release VMCOREINFO recorded in the dump file
        # (OSRELEASE, copied from init_uts_ns at boot), which a damaged
        # init_uts_ns in the dump cannot change; a live kernel: init_uts_ns.
        if self._release is None:
            rel = None
            path = self._dumpfile()
            if path and not self.is_live and os.path.isfile(path):
                try:
                    rel = dumpfile.read_dump_info(path).release
                except TargetError:
                    rel = None
            if not rel:
                try:
                    rel = self.uts()["release"]
                except (ReadError, MissingSymbolError):
                    rel = self._sysinfo().get("RELEASE", "?")
            self._release = rel
        return self._release

    def _dumpfile(self) -> Optional[str]:
        """The dump crash reads (its DUMPFILE line, without "[PARTIAL DUMP]")."""
        value = self._sysinfo().get("DUMPFILE", "")
        return value.split(" [", 1)[0].strip() or None

    @property
    def page_size(self) -> int:
        try:
            return int(crash.PAGESIZE())
        except Exception:
            return 4096

    @property
    def is_live(self) -> bool:
        dumpfile = self._sysinfo().get("DUMPFILE", "")
        return dumpfile.startswith("/dev/") or "kcore" in dumpfile or "LIVE" in dumpfile

    @property
    def source(self) -> str:
        info = self._sysinfo()
        return f"crash session on {info.get('DUMPFILE', '?')}"

    # -- symbols and types -----------------------------------------------
    def symbol(self, name: str) -> KObj:
        if not self.has_symbol(name):
            raise MissingSymbolError(f"kernel has no symbol {name}")
        try:
            desc = crash.gdb_whatis(name)
        except Exception as exc:
            raise MissingSymbolError(f"debug info has no type for symbol {name}") from exc
        return PykdumpObj(self._t, desc, self.symbol_address(name))

    def symbol_address(self, name: str) -> int:
        if not self.has_symbol(name):
            raise MissingSymbolError(f"kernel has no symbol {name}")
        return int(crash.sym2addr(name))

    def has_symbol(self, name: str) -> bool:
        try:
            return bool(crash.symbol_exists(name))
        except Exception:
            return False

    def has_type(self, type_name: str) -> bool:
        return self._t.get(type_name) is not None

    def type_size(self, type_name: str) -> int:
        return int(self._t.need(type_name).get("typelength", 0))

    def _member(self, type_name: str, member: str) -> Tuple[Dict[str, Any], int]:
        """The description and offset of ``member`` ("a.b.c") of ``type_name``."""
        desc = self._t.need(type_name)
        off = 0
        for part in member.split("."):
            found = self._t.find_member(desc, part)
            if found is None:
                raise MissingSymbolError(f"{type_name} has no member {member}")
            desc, moff = found
            off += moff
        return desc, off

    def member_offset(self, type_name: str, member: str) -> int:
        return self._member(type_name, member)[1]

    def member_int_layout(self, type_name: str, member: str) -> Tuple[int, int, bool]:
        # the same decoding as PykdumpObj.__int__, for the members it reads whole
        desc, off = self._member(type_name, member)
        if not desc.get("dims") and not desc.get("bitsize"):
            if desc.get("stars"):
                return off, 8, False
            size = desc.get("typelength", 8)
            code = desc.get("codetype")
            if code in (self._t.INT, self._t.ENUM, self._t.CHAR) and size in (1, 2, 4, 8):
                return off, size, not desc.get("uint", 0)
        raise MissingSymbolError(f"{type_name}.{member} is not a whole integer or pointer")

    def enum_constants(self, enum_type: str) -> Dict[str, int]:
        desc = self._t.need(enum_type)
        if "edef" not in desc:
            raise MissingSymbolError(f"{enum_type} is not an enum")
        return {name: int(value) for name, value in desc["edef"]}

    def constant(self, name: str) -> int:
        # Cached, found or not.  gdb_whatis(NAME) of an enumerator describes
        # its enum with every sibling (CSS_ONLINE brings CSS_DYING...) in about
        # 10 ms; enumerator_value() is a gdb print of 0.1-0.2 s each.
        cache = self._t.constants
        if name not in cache:
            cache[name] = None
            try:
                desc = crash.gdb_whatis(name)
            except Exception:  # no such symbol: enumerator_value() would not find it either
                desc = None
            for sibling, value in (desc or {}).get("edef") or ():
                cache.setdefault(sibling, value)
                if sibling == name:
                    cache[name] = value
            if desc is not None and cache[name] is None:
                try:
                    cache[name] = crash.enumerator_value(name)
                except Exception:
                    pass
        value = cache[name]
        if value is None:
            raise MissingSymbolError(f"debug info has no constant {name}")
        return int(value)

    # -- objects and memory ---------------------------------------------
    def object(self, type_name: str, address: int) -> KObj:
        return PykdumpObj(self._t, self._t.need(type_name), address)

    def read_u64(self, address: int) -> int:
        return _read_int(address, 8, False)

    def read_u32(self, address: int) -> int:
        return _read_int(address, 4, False)

    def read_bytes(self, address: int, size: int) -> bytes:
        return _read(address, size)

    # -- per-CPU ---------------------------------------------------------------
    def possible_cpus(self) -> List[int]:
        # Since Linux kernel commit 5aec01b834fd ("kernel/cpu.c: eliminate
        # cpu_*_mask") (in v4.5) the mask is __cpu_possible_mask
        name = "__cpu_possible_mask" if self.has_symbol("__cpu_possible_mask") else "cpu_possible_mask"
        mask = self.symbol(name)
        if mask._is_pointer():  # type: ignore[attr-defined]
            mask = mask.deref()
        bits = mask.member("bits")
        out = []
        for w in range(bits.length()):
            word = int(bits[w])
            for b in range(64):
                if word >> b & 1:
                    out.append(w * 64 + b)
        return out

    def per_cpu(self, obj: KObj, cpu: int) -> KObj:
        # per-CPU addresses are offsets added to __per_cpu_offset[cpu]
        # (include/asm-generic/percpu.h, SHIFT_PERCPU_PTR), summed modulo
        # 2**64 as the CPU sums them.  On x86-64 up to 6.12 a per-CPU
        # symbol's address is its offset in the per-CPU area (vm_event_states
        # at 0x31260 on the 6.12 fixture dump); on the 7.3 one it is a
        # kernel address (0xffffffffaa0f0fe0) and __per_cpu_offset[cpu] the
        # difference, so the plain sum overflows 64 bits (the kernel commit
        # that made the change is unconfirmed here)
        offset = int(self.symbol("__per_cpu_offset")[cpu])
        if not isinstance(obj, PykdumpObj):
            raise TypeError("per_cpu needs an object of this backend")
        if obj._is_pointer():
            return PykdumpObj(self._t, obj._target_desc(), (int(obj) + offset) & _U64)
        return PykdumpObj(self._t, obj._d, (obj._addr + offset) & _U64)

    # -- the panicking task ---------------------------------------------------------
    def _bt(self) -> Dict[str, Any]:
        # crash's own unwinder: `bt` of the panic task (the default context),
        # run once per session: crashed_task() and backtrace() both need it
        if self._bt_cache is None:
            from ..sources.crashlog import parse_crash_session
            from ..errors import InputError
            try:
                parsed = parse_crash_session(self.command("bt"), "crash bt")
            except InputError as exc:
                raise TargetError(f"crash's bt gave nothing usable: {exc.one_line()}") from exc
            if parsed["bt"] is None:
                raise TargetError("crash's bt printed no task header")
            self._bt_cache = parsed["bt"]
        return self._bt_cache

    def crashed_task(self) -> Optional[Dict[str, Any]]:
        if self.is_live:
            return None
        bt = self._bt()
        return {k: bt[k] for k in ("pid", "comm", "cpu", "task")}

    def backtrace(self) -> List[Dict[str, Any]]:
        bt = self._bt()
        frames = []
        for f in bt["frames"]:
            frames.append({"function": f["function"], "offset": f.get("offset"), "size": None,
                           "pc": f["pc"], "file": None, "line": None, "exception": False,
                           "inline": False})
        exc = bt.get("exception")
        if exc:
            frame = {"function": exc["function"], "offset": exc.get("offset"), "size": None,
                     "pc": exc.get("pc"), "file": None, "line": None, "exception": True,
                     "inline": False}
            if frame["pc"] is not None:
                # `dis -l ADDR 1` names the source line of the exception RIP
                from ..sources.crashlog import kernel_source_path, parse_crash_session
                try:
                    dis = parse_crash_session(self.command(f"dis -l {frame['pc']:#x} 1"), "dis")["dis"]
                except CrashextError:
                    dis = []
                if dis and dis[0].get("line"):
                    frame["file"] = kernel_source_path(dis[0]["file"])
                    frame["line"] = dis[0]["line"]
            frames.insert(bt.get("exception_after", len(frames)), frame)
        return frames

    # -- log --------------------------------------------------------------------
    def log_records(self) -> Iterator[LogRecord]:
        # crash's `log` prints "[seconds] text" lines: the shared log
        # normaliser reads them like any dmesg
        from ..sources.logs import normalize
        for line in normalize(self.command("log").splitlines()):
            yield line.ts, line.text


def open_session() -> PykdumpTarget:
    """The kernel of the running crash session."""
    return PykdumpTarget()
