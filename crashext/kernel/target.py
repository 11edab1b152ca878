"""The kernel access layer: what every analysis may ask of a kernel.

A :class:`Target` is one kernel (a vmcore, a live kernel) seen through one
backend (drgn standalone, PyKdump inside crash).  Analyses use only this
interface; they never import drgn or pykdump.  Objects come back as
:class:`KObj`, a small uniform view of a typed kernel object: members as
attributes, ``int()`` for scalars and pointers, ``[i]`` for arrays.

Every failure to read memory is a :class:`~crashext.errors.ReadError`, so a
caller can mark one object unreadable and go on.
"""

import abc
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..errors import MissingSymbolError, TargetError

__all__ = ["KObj", "Target", "LogRecord"]

#: One kernel log record: seconds since boot (None where not known), text.
LogRecord = Tuple[Optional[float], str]


class KObj(abc.ABC):
    """A typed kernel object.

    ``obj.member`` and ``obj.member("name")`` give members (through pointers
    to structs too, like C's ``->``); ``int(obj)`` gives the value of an
    integer, enum, bool or pointer; ``obj[i]`` indexes arrays and pointers.
    """

    __slots__ = ()

    @abc.abstractmethod
    def member(self, name: str) -> "KObj":
        """The member ``name`` (dotted paths such as ``"css.id"`` allowed)."""

    def __getattr__(self, name: str) -> "KObj":
        if name.startswith("_"):
            raise AttributeError(name)
        return self.member(name)

    @abc.abstractmethod
    def __int__(self) -> int:
        """Value of an integer, enum, bool or pointer object."""

    def __index__(self) -> int:
        return int(self)

    @abc.abstractmethod
    def __getitem__(self, index: int) -> "KObj":
        """Element ``index`` of an array, or of the array a pointer points to."""

    @property
    @abc.abstractmethod
    def address(self) -> Optional[int]:
        """Where the object lives in kernel memory (None for values)."""

    @property
    @abc.abstractmethod
    def type_name(self) -> str:
        """The C spelling of the object's type, e.g. ``struct zone *``."""

    @abc.abstractmethod
    def deref(self) -> "KObj":
        """The object a pointer points to."""

    @abc.abstractmethod
    def string(self, limit: int = 4096) -> str:
        """A ``char`` array or ``char *`` as text (decoded with replacement)."""

    @abc.abstractmethod
    def length(self) -> int:
        """Number of elements of an array object."""

    def is_null(self) -> bool:
        return int(self) == 0


class Target(abc.ABC):
    """One kernel to analyse, through one backend."""

    #: short name of the backend ("drgn", "pykdump")
    backend = "?"

    # -- what kernel is this ---------------------------------------------
    @property
    @abc.abstractmethod
    def release(self) -> str:
        """``uname -r`` of the kernel."""

    @property
    @abc.abstractmethod
    def page_size(self) -> int:
        """Bytes per page."""

    @property
    def is_live(self) -> bool:
        """True when reading a running kernel (values change while we read)."""
        return False

    @property
    def source(self) -> str:
        """One phrase saying what is read, e.g. ``vmcore /x/vmcore``."""
        return "kernel"

    # -- symbols and types -------------------------------------------------
    @abc.abstractmethod
    def symbol(self, name: str) -> KObj:
        """The global variable ``name``; MissingSymbolError if absent."""

    @abc.abstractmethod
    def symbol_address(self, name: str) -> int:
        """Address of the symbol ``name``; MissingSymbolError if absent."""

    @abc.abstractmethod
    def has_symbol(self, name: str) -> bool:
        """Whether the kernel has the global symbol ``name``."""

    @abc.abstractmethod
    def has_type(self, type_name: str) -> bool:
        """Whether debug info has ``type_name`` (e.g. ``struct mem_cgroup``)."""

    def has_member(self, type_name: str, member: str) -> bool:
        """Whether ``type_name`` has ``member`` (dotted paths allowed)."""
        try:
            self.member_offset(type_name, member)
            return True
        except MissingSymbolError:
            return False

    @abc.abstractmethod
    def type_size(self, type_name: str) -> int:
        """``sizeof(type_name)``."""

    @abc.abstractmethod
    def member_offset(self, type_name: str, member: str) -> int:
        """``offsetof(type_name, member)``; MissingSymbolError if absent."""

    def member_int_layout(self, type_name: str, member: str) -> Tuple[int, int, bool]:
        """``(offset, size, signed)`` of an integer, enum or pointer member
        (dotted paths through embedded structs), such that decoding those
        bytes little-endian gives what ``int()`` of the member gives.  Lets a
        caller read a struct once (:meth:`read_bytes`) and decode the members
        it needs by offset.  MissingSymbolError for other members (bit fields,
        bools, arrays, structs) or a backend that cannot tell."""
        raise MissingSymbolError(f"{type(self).__name__} cannot describe {type_name}.{member}")

    @abc.abstractmethod
    def enum_constants(self, enum_type: str) -> Dict[str, int]:
        """All enumerators of ``enum_type`` (e.g. ``enum migratetype``)."""

    @abc.abstractmethod
    def constant(self, name: str) -> int:
        """Value of the enumerator ``name`` (of any enum, named or not)."""

    def has_constant(self, name: str) -> bool:
        try:
            self.constant(name)
        except MissingSymbolError:
            return False
        return True

    # -- objects and memory -----------------------------------------------
    @abc.abstractmethod
    def object(self, type_name: str, address: int) -> KObj:
        """The object of ``type_name`` at ``address``."""

    def container_of(self, address: int, type_name: str, member: str) -> KObj:
        """The ``type_name`` whose ``member`` lives at ``address``."""
        return self.object(type_name, address - self.member_offset(type_name, member))

    @abc.abstractmethod
    def read_u64(self, address: int) -> int:
        """Read 8 bytes; ReadError when the dump lacks them."""

    @abc.abstractmethod
    def read_u32(self, address: int) -> int:
        """Read 4 bytes; ReadError when the dump lacks them."""

    def read_pointer(self, address: int) -> int:
        return self.read_u64(address)

    def read_bytes(self, address: int, size: int) -> bytes:
        """Read ``size`` bytes; ReadError when the dump lacks any of them.

        Backends override this with one read; this default assembles the
        bytes from aligned :meth:`read_u64` calls."""
        start = address & ~7
        words = bytearray()
        for a in range(start, address + size, 8):
            words += self.read_u64(a).to_bytes(8, "little")
        return bytes(words[address - start:address - start + size])

    # -- per-CPU ----------------------------------------------------------
    @abc.abstractmethod
    def possible_cpus(self) -> List[int]:
        """Numbers of the possible CPUs."""

    @abc.abstractmethod
    def per_cpu(self, obj: KObj, cpu: int) -> KObj:
        """The CPU ``cpu`` copy of a per-CPU variable or ``__percpu`` pointer."""

    # -- the kernel log -----------------------------------------------------
    @abc.abstractmethod
    def log_records(self) -> Iterator[LogRecord]:
        """The kernel log, oldest first, as (seconds, text) per line."""

    # -- facts a banner shows ----------------------------------------------
    def uts(self) -> Dict[str, str]:
        """``init_uts_ns`` as a dict: sysname, nodename, release, version, machine."""
        name = self.symbol("init_uts_ns").name
        out = {}
        for field in ("sysname", "nodename", "release", "version", "machine"):
            out[field] = name.member(field).string()
        return out

    # -- the crash itself (what crash's ``bt`` and ``dis -l`` show) ----------
    def crashed_task(self) -> Optional[Dict[str, Any]]:
        """The task that panicked: ``{"pid", "comm", "cpu", "task"}``.

        ``task`` is the address of its ``struct task_struct``.  None on a
        live kernel; TargetError when the backend cannot tell.
        """
        raise TargetError(f"the {self.backend} backend cannot find the panicking task")

    def backtrace(self) -> List[Dict[str, Any]]:
        """The panicking task's stack, innermost frame first, as plain dicts.

        Keys: ``function`` (None if no symbol), ``offset`` (pc - symbol
        start), ``size`` (symbol size or None), ``pc``, ``file`` and
        ``line`` (None without line tables), ``exception`` (True for a frame
        whose registers an exception or interrupt saved: its pc is the
        exception RIP), ``inline`` (an inlined call inside the next frame).
        TargetError when the backend cannot unwind.
        """
        raise TargetError(f"the {self.backend} backend cannot unwind the panicking task")
