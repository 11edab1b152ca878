"""crashext.spool: records put in a store come back equal, by handle, in any order."""

import os
import random

import pytest
from hypothesis import given, settings, strategies as st

from crashext.spool import FileStore, ListStore

_atoms = st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.text(max_size=30)
_records = st.tuples(_atoms, st.lists(st.text(max_size=10), max_size=4), _atoms,
                     st.lists(_atoms, max_size=3))


@settings(max_examples=60, deadline=None)
@given(st.lists(_records, max_size=300), st.randoms())
def test_file_store_gives_back_each_record_by_handle(records, rnd):
    store = FileStore(tuple, tuple)
    try:
        handles = [store.put(r) for r in records]
        assert len(store) == len(records)
        order = list(range(len(records)))
        rnd.shuffle(order)
        for i in order:          # out of order, as a pre-order walk reads them
            assert store.get(handles[i]) == records[i]
        for i in order[:5]:      # and again
            assert store.get(handles[i]) == records[i]
    finally:
        store.close()


def test_file_store_makes_a_new_object_on_each_get_and_reads_while_writing():
    store = FileStore(lambda d: sorted(d.items()), dict)
    first = store.put({"a": 1, "b": [1, 2]})
    got = store.get(first)
    got["a"] = 99                # a reader's change is not written back
    assert store.get(first) == {"a": 1, "b": [1, 2]}
    assert store.get(first) is not store.get(first)
    # records put after a get (the buffered ones are written first)
    more = [store.put({"n": i, "s": "x" * (i % 700)}) for i in range(3000)]
    assert [store.get(h)["n"] for h in more[::-1]] == list(range(2999, -1, -1))
    assert store.size > 3000 * 5
    store.close()
    store.close()                # twice is harmless


def test_file_store_writes_as_it_goes_and_its_file_has_no_name():
    store = FileStore(tuple, tuple)
    fd = store._fd
    assert os.readlink(f"/proc/self/fd/{fd}").endswith("(deleted)")
    rec = tuple(random.Random(1).choices(range(10**6), k=50))
    for _ in range(4000):
        store.put(rec)
    # what was put is on disk but for at most the last 256 KiB of records
    on_disk = os.fstat(fd).st_size
    assert store.size > 1 << 19 and store.size - on_disk < 1 << 18
    store.close()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_file_store_refuses_what_marshal_cannot_write():
    store = FileStore(lambda x: x, lambda x: x)
    with pytest.raises(ValueError):
        store.put(object())
    store.close()


def test_list_store_gives_back_the_same_object():
    store = ListStore()
    obj = {"a": 1}
    h = store.put(obj)
    assert store.get(h) is obj and len(store) == 1
    store.close()
    assert len(store) == 0


def test_a_failed_write_is_one_line_saying_where_and_what_to_do(monkeypatch):
    from crashext.errors import CrashextError
    import errno

    store = FileStore(tuple, tuple)

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    handle = store.put((1, 2))
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(CrashextError) as e:
        store.get(handle)        # a read flushes what is buffered first
    assert "No space left on device" in e.value.one_line() and "TMPDIR" in e.value.one_line()
    monkeypatch.undo()
    store.close()

