"""The list walker on lists broken on purpose (synthetic memory, real drgn).

Each test builds a ``struct list_head`` chain in a synthetic kernel
(tests/synth.py) and checks what the walker yields and what it says about
the break; no test may hang, so every broken shape ends in bounded steps.
"""

import pytest

pytest.importorskip("drgn")

from crashext.kernel.walk import list_entries, walk_hlist, walk_list  # noqa: E402
from synth import SynthKernel  # noqa: E402


def make_list(k, n):
    """A head and n nodes (struct item { long value; struct list_head link; })."""
    k.struct("item", [("long", "value"), ("struct list_head", "link")])
    head = k.new("struct list_head")
    items = [k.new("struct item", value=100 + i) for i in range(n)]
    nodes = [it.address_ + 8 for it in items]
    chain = [head.address_] + nodes + [head.address_]
    for a, b in zip(chain, chain[1:]):
        k.write_u64(a, b)          # a->next = b
        k.write_u64(b + 8, a)      # b->prev = a
    return head.address_, nodes, items


def test_clean_list_yields_every_node_in_order():
    k = SynthKernel()
    head, nodes, _ = make_list(k, 5)
    w = walk_list(k.target(), head)
    assert list(w) == nodes
    assert w.complete and w.count == 5


def test_list_entries_gives_containing_objects():
    k = SynthKernel()
    head, _, items = make_list(k, 3)
    t = k.target()
    values = [int(o.value) for o in list_entries(t, walk_list(t, head), "struct item", "link")]
    assert values == [100, 101, 102]


def test_empty_list():
    k = SynthKernel()
    head = k.new("struct list_head")
    k.write_u64(head.address_, head.address_)
    k.write_u64(head.address_ + 8, head.address_)
    w = walk_list(k.target(), head.address_)
    assert list(w) == [] and w.complete


def test_cycle_not_through_head_stops_and_says_cycle():
    k = SynthKernel()
    head, nodes, _ = make_list(k, 4)
    # node3 -> node1 with consistent prev links, so only cycle detection sees it
    k.write_u64(nodes[3], nodes[1])
    k.write_u64(nodes[1] + 8, nodes[3])
    w = walk_list(k.target(), head, check_prev=False)
    got = list(w)
    assert got == nodes  # every node once, none twice
    assert "cycle" in w.corruption


def test_bad_prev_is_reported():
    k = SynthKernel()
    head, nodes, _ = make_list(k, 4)
    k.write_u64(nodes[2] + 8, nodes[0])  # node2->prev should be node1
    w = walk_list(k.target(), head)
    assert list(w) == nodes[:2]
    assert "does not point back" in w.corruption


def test_pointer_outside_memory_is_unreadable_not_an_exception():
    k = SynthKernel()
    head, nodes, _ = make_list(k, 3)
    k.write_u64(nodes[1], 0xFFFFFFFF00000000)
    w = walk_list(k.target(), head, check_prev=False)
    assert list(w) == nodes[:2]
    assert "unreadable" in w.corruption


def test_misaligned_and_null_next():
    k = SynthKernel()
    head, nodes, _ = make_list(k, 3)
    k.write_u64(nodes[0], nodes[1] + 3)
    w = walk_list(k.target(), head, check_prev=False)
    assert list(w) == nodes[:1] and "misaligned" in w.corruption
    k.write_u64(nodes[0], 0)
    w = walk_list(k.target(), head, check_prev=False)
    assert list(w) == nodes[:1] and "NULL" in w.corruption


def test_limit_bounds_a_long_list():
    k = SynthKernel()
    head, nodes, _ = make_list(k, 50)
    w = walk_list(k.target(), head, limit=10)
    assert list(w) == nodes[:10]
    assert "more than 10" in w.corruption


def test_unreadable_head():
    k = SynthKernel()
    w = walk_list(k.target(), 0x1000)
    assert list(w) == [] and "unreadable" in w.corruption


def test_hlist_clean_and_cyclic():
    k = SynthKernel()
    k.struct("hlist_node", [("struct hlist_node *", "next"), ("struct hlist_node **", "pprev")])
    head = k.new("struct list_head")  # any 8-byte slot works as hlist_head.first
    nodes = [k.new("struct hlist_node").address_ for _ in range(4)]
    k.write_u64(head.address_, nodes[0])
    for a, b in zip(nodes, nodes[1:]):
        k.write_u64(a, b)
    w = walk_hlist(k.target(), head.address_)
    assert list(w) == nodes and w.complete
    k.write_u64(nodes[3], nodes[0])
    w = walk_hlist(k.target(), head.address_)
    assert list(w) == nodes and "cycle" in w.corruption
