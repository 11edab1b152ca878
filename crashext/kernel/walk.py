"""Defensive walks over kernel ``list_head`` and ``hlist`` chains.

A walk never raises for a broken list and never loops: it stops at a bound,
at a cycle, at a pointer it cannot read, at a misaligned or NULL ``next``, or
at a node whose ``prev`` does not point back, and says which in
:attr:`Walk.corruption`.  Callers iterate the walk and then look at that
attribute; what was yielded before the break is still good.

Layout used (include/linux/types.h, unchanged from 2.6 through 6.x):
``struct list_head { struct list_head *next, *prev; }`` and
``struct hlist_node { struct hlist_node *next, **pprev; }``;
``struct hlist_head { struct hlist_node *first; }``.
"""

from typing import Iterator, Optional

from ..errors import ReadError
from .target import KObj, Target

__all__ = ["Walk", "walk_list", "walk_hlist", "list_entries", "DEFAULT_LIMIT"]

#: The most nodes one walk visits unless the caller says otherwise.
DEFAULT_LIMIT = 1 << 24

_PTR = 8


class Walk:
    """An iterable walk; yields node addresses (of the embedded list member)."""

    def __init__(self, target: Target, head: int, kind: str, limit: int,
                 check_prev: bool, progress=None) -> None:
        self.target = target
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
            return self._iter_list()
        return self._iter_hlist()

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
              check_prev: bool = True, progress=None) -> Walk:
    """Walk the ``struct list_head`` at address ``head`` (the head is not yielded)."""
    return Walk(target, head, "list", limit, check_prev, progress)


def walk_hlist(target: Target, head: int, limit: int = DEFAULT_LIMIT,
               progress=None) -> Walk:
    """Walk the ``struct hlist_head`` at address ``head``."""
    return Walk(target, head, "hlist", limit, False, progress)


def list_entries(target: Target, walk: Walk, type_name: str, member: str) -> Iterator[KObj]:
    """``list_for_each_entry``: the containing objects of a walk's nodes."""
    offset = target.member_offset(type_name, member)
    for node in walk:
        yield target.object(type_name, node - offset)
