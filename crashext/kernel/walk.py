"""Defensive walks over kernel ``list_head`` and ``hlist`` chains.

A walk never raises for a broken list and never loops: it stops at a bound,
at a cycle, at a pointer it cannot read, at a misaligned or NULL ``next``, or
at a node whose ``prev`` does not point back, and says which in
:attr:`Walk.corruption`.  Callers iterate the walk and then look at that
attribute; what was yielded before the break is still good.

Speed (``walk_list`` with the prev check on a dump): the node's ``next``
and ``prev`` come from one 16-byte unpack out of a small per-walk cache of
4 KiB blocks read with :meth:`Target.read_bytes` (a buddy free list runs
through ``struct page``s that sit next to each other in the memory map, so
most nodes need no read of their own), and no set of visited nodes is kept:
on memory that does not change while it is read, the prev check alone stops
a walk at the first node it would visit twice.  Proof: let X be the first
node reached a second time; the first time it was reached from P (the head
or a node), so X->prev == P was checked; the second time from Q.  Q == P
would make P (a node: the walk ends when it reaches the head) a node
visited twice before X, so Q != P, and X->prev, still P, fails the check.
Only then does the walk look back over the nodes it yielded (once, on that
error path) to tell "cycle" from a plain bad prev, so the reasons are the
same as with a set.  Live kernels, walks without the prev check and hlist
walks keep the set.

Layout used (include/linux/types.h, unchanged from 2.6 through 6.x):
``struct list_head { struct list_head *next, *prev; }`` and
``struct hlist_node { struct hlist_node *next, **pprev; }``;
``struct hlist_head { struct hlist_node *first; }``.
"""

import struct
from collections import deque
from typing import Iterator, Optional

from ..errors import ReadError
from .target import KObj, Target

__all__ = ["Walk", "walk_list", "walk_hlist", "list_entries", "DEFAULT_LIMIT", "BlockCache"]

#: The most nodes one walk visits unless the caller says otherwise.
DEFAULT_LIMIT = 1 << 24

_PTR = 8

#: bytes per cached block, and blocks a walk keeps (1 MiB at most)
_BLOCK = 4096
_CACHE_BLOCKS = 256
#: struct list_head { next, prev } (little-endian 64-bit kernels: x86_64, arm64)
_PAIR = struct.Struct("<QQ")
#: progress is reported in steps of this many nodes (Progress reports when
#: its count reaches a multiple of 1024)
_PROGRESS_STEP = 1024


class BlockCache:
    """Aligned 4 KiB blocks of kernel memory, each read once while cached
    (at most ``max_blocks``; the cache is emptied when full).

    :meth:`block` gives None for a block the dump lacks (in whole or part);
    :meth:`word` then reads the 8 bytes alone, so an unreadable block never
    hides a readable pointer.  On a dump each read costs about the same
    whatever its size (the reader's cost is per page), so code that reads
    many small structs living side by side (a tree walk, then each node's
    members) shares one cache.  For memory that does not change while it is
    read: not for live kernels."""

    __slots__ = ("target", "cache", "max_blocks", "native")

    def __init__(self, target: Target, max_blocks: int = _CACHE_BLOCKS) -> None:
        self.target = target
        self.cache: dict = {}
        self.max_blocks = max_blocks
        #: None until a walk has checked that the blocks decode as the
        #: backend's own pointer reads (False on a big-endian kernel)
        self.native: Optional[bool] = None

    def block(self, base: int) -> Optional[bytes]:
        buf = self.cache.get(base, False)
        if buf is False:
            if len(self.cache) >= self.max_blocks:
                self.cache.clear()
            try:
                buf = self.target.read_bytes(base, _BLOCK)
            except ReadError:
                buf = None
            self.cache[base] = buf
        return buf

    def word(self, addr: int) -> Optional[int]:
        base = addr & ~(_BLOCK - 1)
        off = addr - base
        buf = self.block(base) if off <= _BLOCK - _PTR else None
        if buf is not None:
            return int.from_bytes(buf[off:off + _PTR], "little")
        try:
            return self.target.read_pointer(addr)
        except ReadError:
            return None

    def read(self, addr: int, size: int) -> bytes:
        """``size`` bytes at ``addr`` from the cached blocks; ReadError if a
        block they touch is not in the dump."""
        base = addr & ~(_BLOCK - 1)
        off = addr - base
        if off + size <= _BLOCK:
            buf = self.block(base)
            if buf is None:
                raise ReadError(f"cannot read {size} bytes at {addr:#x}", addr)
            return buf[off:off + size]
        parts = []
        for b in range(base, addr + size, _BLOCK):
            buf = self.block(b)
            if buf is None:
                raise ReadError(f"cannot read {size} bytes at {addr:#x}", addr)
            parts.append(buf)
        return b"".join(parts)[off:off + size]


_Blocks = BlockCache


class Walk:
    """An iterable walk; yields node addresses (of the embedded list member)."""

    def __init__(self, target: Target, head: int, kind: str, limit: int,
                 check_prev: bool, progress=None, cache: Optional[BlockCache] = None) -> None:
        self.target = target
        self.cache = cache
        self.head = head
        self.kind = kind
        self.limit = limit
        self.check_prev = check_prev
        self.progress = progress
        self.count = 0
        #: None for a clean walk, else a one-line reason the walk stopped early
        self.corruption: Optional[str] = None
        #: address of the last good node before the break (or the head)
        self.broken_at: Optional[int] = None

    @property
    def complete(self) -> bool:
        return self.corruption is None

    def _stop(self, where: int, why: str) -> None:
        self.broken_at = where
        self.corruption = why

    def _read(self, addr: int) -> Optional[int]:
        try:
            return self.target.read_pointer(addr)
        except ReadError:
            return None

    def __iter__(self) -> Iterator[int]:
        if self.kind == "list":
            if self.check_prev and not self.target.is_live:
                return self._iter_list_static()
            return self._iter_list()
        return self._iter_hlist()

    def run(self) -> int:
        """Walk to the end without keeping the nodes; the number walked."""
        deque(self, maxlen=0)  # consumes the walk without a Python-level loop
        return self.count

    def _seen_before(self, blocks: _Blocks, node: int, n: int) -> bool:
        """Whether ``node`` is one of the first ``n`` nodes (the ones this
        iteration yielded), re-read from the head: the memory has not changed."""
        pos = blocks.word(self.head)
        for _ in range(n):
            if pos == node:
                return True
            if pos is None:
                return False
            pos = blocks.word(pos)
        return False

    def _bad_back(self, blocks: _Blocks, prev: int, node: int, back: Optional[int],
                  n: int) -> None:
        if self._seen_before(blocks, node, n):
            self._stop(prev, f"cycle: node {node:#x} visited twice")
        else:
            self._stop(prev, f"node {node:#x} prev {back if back is None else hex(back)}"
                       f" does not point back to {prev:#x}")

    def _iter_list_static(self) -> Iterator[int]:
        """:meth:`_iter_list` for memory that does not change while read, with
        the prev check standing in for the set of visited nodes (module
        docstring).  Same nodes, same reasons, in the same order of checks."""
        blocks = self.cache if self.cache is not None else BlockCache(self.target)
        head = self.head
        node = blocks.word(head)
        if not self._native(blocks, node):
            # not so (a big-endian kernel, or the head unreadable): walk with
            # the backend's reads instead
            yield from self._iter_list()
            return
        if self._bad_pointer(head, node):
            return
        last = _BLOCK - 16  # the last offset whose list_head fits in the block
        unpack = _PAIR.unpack_from
        limit = self.limit
        progress = self.progress
        count = stepped = start = self.count
        if progress is not None:
            # step so that progress.count lands on multiples of _PROGRESS_STEP
            due = count + _PROGRESS_STEP - (progress.count & (_PROGRESS_STEP - 1))
        else:
            due = limit + 1
        check = min(limit, due)  # the next count at which the rare checks run
        cur = -(1 << 70)  # base address of buf (none yet)
        buf = b""
        prev = head
        while node != head:
            if count >= check:
                if count >= limit:
                    self._over_limit(blocks, prev, node, count - start)
                    break
                progress.step(count - stepped)
                stepped = count
                due = count + _PROGRESS_STEP
                check = min(limit, due)
            off = node - cur
            if 0 <= off <= last:
                nxt, back = unpack(buf, off)
            else:
                if not node:
                    self._stop(prev, f"NULL next pointer at {prev:#x}")
                    break
                base = node & ~(_BLOCK - 1)
                off = node - base
                nb = blocks.block(base)
                if nb is not None and off <= last:
                    buf, cur = nb, base
                    nxt, back = unpack(buf, off)
                else:  # block not in the dump, or the list_head crosses its end
                    nxt = blocks.word(node)
                    if nxt is None:
                        # a revisited node was readable the first time: no cycle here
                        self._stop(prev, f"unreadable list node {node:#x}")
                        break
                    back = blocks.word(node + _PTR)
            if back != prev:
                self._bad_back(blocks, prev, node, back, count - start)
                break
            count += 1
            self.count = count
            yield node
            if nxt & (_PTR - 1):
                self._bad_pointer(node, nxt)
                break
            prev = node
            node = nxt
        else:
            back = blocks.word(head + _PTR)
            if back != prev:
                self._stop(prev, f"list head {head:#x} prev does not point to the last node")
        if progress is not None and count > stepped:
            progress.step(count - stepped)

    def _native(self, blocks: BlockCache, first: Optional[int]) -> bool:
        """Whether the block bytes decode as the backend's own pointer read
        (``first``: the head's next pointer from the blocks); a shared cache
        checks that once (the byte order is the kernel's)."""
        if blocks.native is not None and first is not None:
            return blocks.native
        native = first == self._read(self.head)
        if first is not None:
            blocks.native = native
        return native

    def _over_limit(self, blocks: BlockCache, prev: int, node: int, n: int) -> None:
        """The walk reached its bound at ``node`` after ``n`` nodes: the
        set-based walk names a NULL next and a revisit before the bound."""
        back = blocks.word(node + _PTR) if node else None
        if not node:
            self._stop(prev, f"NULL next pointer at {prev:#x}")
        elif back != prev and self._seen_before(blocks, node, n):
            self._stop(prev, f"cycle: node {node:#x} visited twice")
        else:
            self._stop(prev, f"more than {self.limit} nodes")

    def _bad_pointer(self, prev_node: int, ptr: Optional[int]) -> bool:
        if ptr is None:
            self._stop(prev_node, f"unreadable list pointer at {prev_node:#x}")
            return True
        if ptr == 0:
            self._stop(prev_node, f"NULL next pointer at {prev_node:#x}")
            return True
        if ptr % _PTR:
            self._stop(prev_node, f"misaligned next pointer {ptr:#x} at {prev_node:#x}")
            return True
        return False

    def _next_of(self, prev: int, node: int, seen: set, kind: str) -> Optional[int]:
        """The checks both walks make before visiting ``node``: its next
        pointer, or None (with the reason recorded) to stop here."""
        if node in seen:
            self._stop(prev, f"cycle: node {node:#x} visited twice")
            return None
        if self.count >= self.limit:
            self._stop(prev, f"more than {self.limit} nodes")
            return None
        nxt = self._read(node)
        if nxt is None:
            self._stop(prev, f"unreadable {kind} node {node:#x}")
        return nxt

    def _visit(self, node: int, seen: set) -> None:
        seen.add(node)
        self.count += 1
        if self.progress is not None:
            self.progress.step()

    def _iter_list(self) -> Iterator[int]:
        seen: set = set()
        prev = self.head
        node = self._read(self.head)
        if self._bad_pointer(self.head, node):
            return
        while node != self.head:
            nxt = self._next_of(prev, node, seen, "list")
            if nxt is None:
                return
            if self.check_prev:
                back = self._read(node + _PTR)
                if back != prev:
                    self._stop(prev, f"node {node:#x} prev {back if back is None else hex(back)}"
                               f" does not point back to {prev:#x}")
                    return
            self._visit(node, seen)
            yield node
            if self._bad_pointer(node, nxt):
                return
            prev, node = node, nxt
        if self.check_prev:
            back = self._read(self.head + _PTR)
            if back != prev:
                self._stop(prev, f"list head {self.head:#x} prev does not point to the last node")

    def _iter_hlist(self) -> Iterator[int]:
        seen: set = set()
        prev = self.head
        node = self._read(self.head)
        if node is None:
            self._stop(self.head, f"unreadable hlist head at {self.head:#x}")
            return
        while node:
            if node % _PTR:
                self._stop(prev, f"misaligned next pointer {node:#x} at {prev:#x}")
                return
            nxt = self._next_of(prev, node, seen, "hlist")
            if nxt is None:
                return
            self._visit(node, seen)
            yield node
            prev, node = node, nxt


def walk_list(target: Target, head: int, limit: int = DEFAULT_LIMIT,
              check_prev: bool = True, progress=None,
              cache: Optional[BlockCache] = None) -> Walk:
    """Walk the ``struct list_head`` at address ``head`` (the head is not yielded).

    ``cache``: a :class:`BlockCache` shared with other walks and reads of
    the same dump (ignored on a live kernel)."""
    return Walk(target, head, "list", limit, check_prev, progress, cache)


def walk_hlist(target: Target, head: int, limit: int = DEFAULT_LIMIT,
               progress=None) -> Walk:
    """Walk the ``struct hlist_head`` at address ``head``."""
    return Walk(target, head, "hlist", limit, False, progress)


def list_entries(target: Target, walk: Walk, type_name: str, member: str) -> Iterator[KObj]:
    """``list_for_each_entry``: the containing objects of a walk's nodes."""
    offset = target.member_offset(type_name, member)
    for node in walk:
        yield target.object(type_name, node - offset)
