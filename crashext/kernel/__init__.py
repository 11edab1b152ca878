"""Kernel access layer: the one interface analyses read kernels through.

Backends: :mod:`.drgn_backend` (standalone) and :mod:`.pykdump_backend`
(inside crash).  This package itself imports neither drgn nor pykdump.
"""

from .target import KObj, LogRecord, Target
from .walk import DEFAULT_LIMIT, Walk, list_entries, walk_hlist, walk_list

__all__ = ["KObj", "LogRecord", "Target", "Walk", "walk_list", "walk_hlist",
           "list_entries", "DEFAULT_LIMIT"]
