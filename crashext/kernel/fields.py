"""Members of a kernel struct decoded from one read of its bytes.

Reading a struct member by member costs a lookup and a memory access per
member; a walk over tens of thousands of structs (every memcg of a host)
spends most of its time there.  :class:`StructFields` asks the backend once
where each wanted integer or pointer member lives
(:meth:`Target.member_int_layout`: offset, size, sign, from debug info),
then reads the span that covers them in one :meth:`Target.read_bytes` and
decodes each with a precompiled :mod:`struct` unpacker, so the values equal
``int()`` of the members read one by one.
"""

import struct
from typing import Callable, Dict, List, Optional, Tuple

from .target import Target

__all__ = ["StructFields"]

_FMT = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
        (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}


class StructFields:
    """Integer/pointer members ``{key: dotted member path}`` of ``type_name``.

    Raises MissingSymbolError (from the backend) if a member is absent or not
    a whole integer or pointer; callers then keep their member-by-member path.
    """

    def __init__(self, t: Target, type_name: str, members: Dict[str, str]) -> None:
        self.t = t
        self.type_name = type_name
        layout = {key: t.member_int_layout(type_name, path) for key, path in members.items()}
        self.lo = min(off for off, _, _ in layout.values())
        self.hi = max(off + size for off, size, _ in layout.values())
        self._unpack: List[Tuple[str, Callable, int]] = []
        for key, (off, size, signed) in layout.items():
            fmt = _FMT.get((size, signed))
            if fmt is None:
                from ..errors import MissingSymbolError
                raise MissingSymbolError(f"{type_name}.{members[key]}: {size}-byte integer")
            self._unpack.append((key, struct.Struct("<" + fmt).unpack_from, off - self.lo))
        self.offsets = {key: off for key, (off, _, _) in layout.items()}
        # the members side by side (none overlapping): one unpacker for the
        # whole span, pad bytes between them, a C call per read
        self._keys: Tuple[str, ...] = ()
        self._whole: Optional[Callable] = None
        order = sorted(layout.items(), key=lambda kv: kv[1][0])
        fmt, pos = "<", self.lo
        for key, (off, size, signed) in order:
            if off < pos:
                break  # members of a union: each is unpacked alone
            fmt += ("%dx" % (off - pos) if off > pos else "") + _FMT[(size, signed)]
            pos = off + size
        else:
            self._keys = tuple(key for key, _ in order)
            self._whole = struct.Struct(fmt).unpack_from

    @property
    def span(self) -> int:
        """Bytes one :meth:`read` reads."""
        return self.hi - self.lo

    def read(self, address: int, cache=None) -> Dict[str, int]:
        """The members of the struct at ``address`` (ReadError if the dump
        lacks any byte of the span), read through ``cache`` (a
        :class:`~crashext.kernel.walk.BlockCache`) if given."""
        if cache is not None:
            buf = cache.read(address + self.lo, self.hi - self.lo)
        else:
            buf = self.t.read_bytes(address + self.lo, self.hi - self.lo)
        if self._whole is not None:
            return dict(zip(self._keys, self._whole(buf)))
        return {key: unpack(buf, off)[0] for key, unpack, off in self._unpack}
