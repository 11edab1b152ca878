"""kernel.idr.IdrWalk keeps an id tree's entries in two arrays, in the order found."""

from crashext.kernel.idr import IdrWalk


def test_entries_keep_the_order_found_and_map_id_to_pointer():
    w = IdrWalk()
    for i, p in [(7, 0xffff888100000000), (1, 0xffff888100001000), (300, 0xffff888100002000)]:
        w._add(i, p)
    w._check_unique()
    assert w.corruption is None and len(w) == 3
    assert list(w.entries.items()) == [(7, 0xffff888100000000), (1, 0xffff888100001000),
                                       (300, 0xffff888100002000)]


def test_an_index_found_twice_is_corruption_and_its_first_entry_stays():
    # two nodes whose shifts overlap give the same index: the kernel's tree
    # cannot hold that, so the walk says so instead of choosing silently
    w = IdrWalk()
    w._add(5, 0x1000)
    w._add(9, 0x2000)
    w._add(5, 0x3000)
    w._check_unique()
    assert w.corruption == "idr index 5 found twice"
    assert w.entries == {5: 0x1000, 9: 0x2000}


def test_an_index_beyond_64_bits_is_corruption():
    w = IdrWalk()
    w._add(1 << 64, 0x1000)
    w._add(3, 0x2000)
    assert w.corruption.startswith("idr index 0x10000000000000000 beyond 64 bits")
    assert w.entries == {3: 0x2000}
