"""Synthetic kernels for tests: a drgn Program over a memory buffer.

For what no real dump here can show — a kernel we cannot boot (RHEL7 3.10),
or lists broken on purpose — tests state the C structures (from the kernel
source they cite), lay objects out in a byte buffer, and read them through
the same :class:`crashext.kernel.drgn_backend.DrgnTarget` the real dumps
use.  Layout follows the x86_64 System V ABI: natural alignment, structs
aligned to their widest member.
"""

import struct
from typing import Dict, List, Optional, Sequence, Tuple, Union

import drgn

from crashext.kernel.drgn_backend import DrgnTarget

__all__ = ["SynthKernel"]

BASE = 0xFFFF888000000000

MemberSpec = Tuple[Union[str, drgn.Type], str]


class SynthKernel:
    """Build types and objects, then :meth:`target` to read them."""

    def __init__(self, release: str = "3.10.0-693.2.2.el7.x86_64", size: int = 1 << 20) -> None:
        self.prog = drgn.Program(drgn.Platform(
            drgn.Architecture.X86_64,
            drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN))
        self.mem = bytearray(size)
        self.base = BASE
        self._brk = 64  # keep address 0 of the buffer unused
        self.types: Dict[str, drgn.Type] = {}
        self.variables: Dict[str, Tuple[drgn.Type, int]] = {}
        self.constants: Dict[str, Tuple[drgn.Type, int]] = {}
        self.release = release
        self.prog.add_memory_segment(self.base, size, self._read)
        self.prog.register_type_finder("synth", self._find_type, enable_index=0)
        self.prog.register_object_finder("synth", self._find_object, enable_index=0)
        self.prog.register_symbol_finder("synth", self._find_symbol, enable_index=0)
        for name, size_, signed in [("char", 1, True), ("unsigned char", 1, False),
                                    ("short", 2, True), ("unsigned short", 2, False),
                                    ("int", 4, True), ("unsigned int", 4, False),
                                    ("long", 8, True), ("unsigned long", 8, False),
                                    ("long long", 8, True), ("unsigned long long", 8, False)]:
            self.types[name] = self.prog.int_type(name, size_, signed)
        self.types["_Bool"] = self.prog.bool_type("_Bool", 1)
        self.types["void"] = self.prog.void_type()
        for alias, target in [("u8", "unsigned char"), ("u16", "unsigned short"),
                              ("u32", "unsigned int"), ("u64", "unsigned long long"),
                              ("s64", "long long"), ("atomic_t", None), ("bool", "_Bool")]:
            if target:
                self.types[alias] = self.prog.typedef_type(alias, self.types[target])
        self.struct("list_head", [("struct list_head *", "next"), ("struct list_head *", "prev")])
        self.types["atomic_t"] = self.prog.typedef_type(
            "atomic_t", self.struct("", [("int", "counter")], register=False))
        self.types["atomic_long_t"] = self.prog.typedef_type(
            "atomic_long_t", self.struct("", [("long", "counter")], register=False))

    # -- memory -------------------------------------------------------------
    def _read(self, address: int, count: int, offset: int, physical: bool) -> bytes:
        return bytes(self.mem[offset:offset + count])

    def alloc(self, size: int, align: int = 8) -> int:
        self._brk = (self._brk + align - 1) & ~(align - 1)
        addr = self.base + self._brk
        self._brk += max(size, 1)
        if self._brk > len(self.mem):
            raise MemoryError("synthetic kernel memory exhausted")
        return addr

    def write(self, address: int, data: bytes) -> None:
        off = address - self.base
        self.mem[off:off + len(data)] = data

    def write_u64(self, address: int, value: int) -> None:
        self.write(address, struct.pack("<Q", value & (2**64 - 1)))

    def write_u32(self, address: int, value: int) -> None:
        self.write(address, struct.pack("<I", value & (2**32 - 1)))

    # -- types --------------------------------------------------------------
    def type(self, spec: Union[str, drgn.Type]) -> drgn.Type:
        """``"struct foo *"``, ``"int [4]"``, ``"unsigned long"`` or a Type."""
        if isinstance(spec, drgn.Type):
            return spec
        spec = spec.strip()
        if spec.endswith("]"):
            base, _, n = spec[:-1].rpartition("[")
            return self.prog.array_type(self.type(base), int(n) if n.strip() else None)
        if spec.endswith("*"):
            return self.prog.pointer_type(self.type(spec[:-1]))
        if spec in self.types:
            return self.types[spec]
        kind, _, name = spec.partition(" ")
        if kind in ("struct", "union") and spec not in self.types:
            # forward reference: an incomplete type, resolved by name later
            t = (self.prog.struct_type if kind == "struct" else self.prog.union_type)(name, None, None)
            return t
        raise KeyError(f"unknown synthetic type {spec!r}")

    def struct(self, name: str, members: Sequence[MemberSpec], register: bool = True,
               union: bool = False, size: Optional[int] = None) -> drgn.Type:
        """Define ``struct name`` with naturally aligned members."""
        offset = 0
        align = 1
        tm: List[drgn.TypeMember] = []
        for spec, mname in members:
            if isinstance(spec, str) and spec.strip().endswith("*"):
                # pointers resolve lazily, so structs may point to each other
                # (and to themselves) before both are defined
                t = (lambda spec=spec: self.type(spec))
                a = s = 8
            elif isinstance(spec, str) and spec.strip().endswith("[]"):
                # a flexible array member (e.g. struct cgroup_name's char name[])
                t = self.type(spec)
                a = drgn.alignof(t.type)
                s = 0
            else:
                t = self.type(spec)
                a = drgn.alignof(t)
                s = drgn.sizeof(t)
            if not union:
                offset = (offset + a - 1) & ~(a - 1)
                tm.append(drgn.TypeMember(t, mname, offset * 8))
                offset += s
            else:
                tm.append(drgn.TypeMember(t, mname, 0))
                offset = max(offset, s)
            align = max(align, a)
        total = (offset + align - 1) & ~(align - 1)
        if size is not None:
            total = size
        maker = self.prog.union_type if union else self.prog.struct_type
        t = maker(name or None, total, tm)
        if register and name:
            self.types[("union " if union else "struct ") + name] = t
        return t

    def enum(self, name: Optional[str], values: Dict[str, int]) -> drgn.Type:
        t = self.prog.enum_type(name, self.types["unsigned int"],
                                [drgn.TypeEnumerator(k, v) for k, v in values.items()])
        if name:
            self.types["enum " + name] = t
        for k, v in values.items():
            self.constants[k] = (t, v)
        return t

    def _find_type(self, prog, kinds, name, filename):
        for kind in kinds:
            prefix = {drgn.TypeKind.STRUCT: "struct ", drgn.TypeKind.UNION: "union ",
                      drgn.TypeKind.ENUM: "enum "}.get(kind, "")
            t = self.types.get(prefix + name)
            if t is not None and t.kind == kind:
                return t
            t = self.types.get(name)
            if t is not None and t.kind == kind:
                return t
        return None

    # -- objects ------------------------------------------------------------
    def new(self, type_spec: str, **init) -> drgn.Object:
        """Allocate a zeroed object; ``init`` sets integer/pointer members (dotted names ok)."""
        t = self.type(type_spec)
        try:
            align = drgn.alignof(t)
        except TypeError:  # a struct ending in a flexible array member
            align = 8
        addr = self.alloc(drgn.sizeof(t), align)
        obj = drgn.Object(self.prog, t, address=addr)
        for key, value in init.items():
            self.set(obj, key.replace("__", "."), value)
        return obj

    def set(self, obj: drgn.Object, member: str, value: int) -> None:
        """Write an integer or pointer ``value`` into ``obj.member`` (dotted path)."""
        m = obj
        for part in member.split("."):
            m = m.member_(part)
        size = drgn.sizeof(m.type_)
        fmt = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}[size]
        self.write(m.address_, struct.pack(fmt, int(value) & ((1 << (8 * size)) - 1)))

    def set_string(self, address: int, text: str) -> None:
        self.write(address, text.encode() + b"\0")

    def variable(self, name: str, obj_or_type, address: Optional[int] = None) -> drgn.Object:
        """Make a global variable; pass an Object to name it, or a type to allocate one."""
        if isinstance(obj_or_type, drgn.Object):
            t, addr = obj_or_type.type_, obj_or_type.address_
        else:
            t = self.type(obj_or_type)
            addr = address if address is not None else self.alloc(drgn.sizeof(t), drgn.alignof(t))
        self.variables[name] = (t, addr)
        return drgn.Object(self.prog, t, address=addr)

    def _find_object(self, prog, name, flags, filename):
        if flags & drgn.FindObjectFlags.VARIABLE and name in self.variables:
            t, addr = self.variables[name]
            return drgn.Object(prog, t, address=addr)
        if flags & drgn.FindObjectFlags.CONSTANT:
            if name in self.constants:
                t, v = self.constants[name]
                return drgn.Object(prog, t, value=v)
            if name == "UTS_RELEASE":
                return drgn.Object(prog, self.prog.array_type(self.types["char"], len(self.release) + 1),
                                   value=self.release.encode() + b"\0")
            if name == "PAGE_SIZE":
                return drgn.Object(prog, self.types["unsigned long"], value=4096)
        return None

    def _find_symbol(self, prog, name, address, one):
        out = []
        for vname, (t, addr) in self.variables.items():
            if (name is None or name == vname) and (address is None or addr <= address < addr + drgn.sizeof(t)):
                out.append(drgn.Symbol(vname, addr, drgn.sizeof(t), drgn.SymbolBinding.GLOBAL,
                                       drgn.SymbolKind.OBJECT))
                if one:
                    break
        return out

    def target(self) -> DrgnTarget:
        return DrgnTarget(self.prog, f"synthetic {self.release}")
