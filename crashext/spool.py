"""Records kept until a report is complete: in a list, or in a temporary file.

A walk that must finish before its first row can be shown (the summary
comes first, and a later row can change an earlier row's anomalies) keeps
what it read in a store and reads it back once the walk is over.
:class:`ListStore` keeps the objects themselves, for callers that want them
all anyway. :class:`FileStore` writes each record to an unnamed temporary
file as it comes, so memory stays flat however many rows there are; it
reads them back on demand, as often as needed.

Both give out integer handles: ``put`` returns one and ``get`` takes it.
"""

import marshal
import os
import tempfile
from typing import Any, Callable, List, Optional

from .errors import CrashextError

__all__ = ["ListStore", "FileStore"]

#: a FileStore handle is ``offset << _LEN_BITS | length``: one pread per get
_LEN_BITS = 24
_LEN_MAX = (1 << _LEN_BITS) - 1


class ListStore:
    """Records held in memory; ``get`` returns the object ``put`` was given."""

    def __init__(self) -> None:
        self._items: List[Any] = []

    def put(self, item: Any) -> int:
        self._items.append(item)
        return len(self._items) - 1

    def get(self, handle: int) -> Any:
        return self._items[handle]

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> None:
        self._items = []


class FileStore:
    """Records written to a temporary file and read back by handle.

    ``pack(item)`` turns an item into something :mod:`marshal` writes
    (tuples, lists, str, int, None, bool); ``unpack`` makes a new item from
    it on every ``get``, so what a reader changes is never written back.
    The file has no name (``tempfile.TemporaryFile``, in ``TMPDIR``): it is
    gone when the store is closed or the process ends, however it ends.
    Creating it raises OSError (the caller may keep rows in memory
    instead); a write that fails later (a full disk) raises CrashextError,
    one line saying where and what to do.
    """

    def __init__(self, pack: Callable[[Any], Any], unpack: Callable[[Any], Any],
                 dir: Optional[str] = None) -> None:
        self._pack = pack
        self._unpack = unpack
        self._file = tempfile.TemporaryFile(prefix="crashext-", dir=dir)
        self._dir = dir or tempfile.gettempdir()
        self._fd = self._file.fileno()
        self._end = 0          # bytes put, written or not
        self._written = 0      # bytes on disk; the rest is in _pending
        self._pending: List[bytes] = []
        self._count = 0

    def put(self, item: Any) -> int:
        raw = marshal.dumps(self._pack(item))
        if len(raw) > _LEN_MAX:
            raise ValueError(f"a record of {len(raw)} bytes is too big for this store")
        handle = (self._end << _LEN_BITS) | len(raw)
        self._end += len(raw)
        self._pending.append(raw)
        if self._end - self._written >= 1 << 18:
            self._flush()
        self._count += 1
        return handle

    def _flush(self) -> None:
        if self._pending:
            view = memoryview(b"".join(self._pending))
            try:
                while view:
                    view = view[os.write(self._fd, view):]
            except OSError as exc:
                raise CrashextError(
                    f"cannot write the temporary file that holds the rows "
                    f"({self._dir}): {exc.strerror}; set TMPDIR to a "
                    f"directory with room") from exc
            self._pending.clear()
            self._written = self._end

    def get(self, handle: int) -> Any:
        self._flush()
        length = handle & _LEN_MAX
        offset = handle >> _LEN_BITS
        raw = os.pread(self._fd, length, offset)
        if len(raw) != length:
            raise CrashextError(f"the temporary file that holds the rows ({self._dir}) gave "
                                f"{len(raw)} of the {length} bytes written at {offset}")
        return self._unpack(marshal.loads(raw))

    def __len__(self) -> int:
        return self._count

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._end

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
