"""The list walk's fast path on a dump (block reads, prev check as cycle check).

``walk_list`` on a target whose memory does not change keeps no set of
visited nodes: the prev check stops it at the first node it would visit
twice (crashext/kernel/walk.py's docstring has the proof).  These tests lay
out lists in synthetic memory (tests/synth.py) in the shapes that matter for
that path -- cycles with the prev check on, the bound, list_heads across a
4 KiB block end or at the end of readable memory -- and check the nodes
yielded and the reason given.  A property test draws arbitrary next/prev
words and checks the fast path against the set-based walk live kernels use
(same nodes, same reason), and against an independent statement of the
rules written here.
"""

import io

import pytest

pytest.importorskip("drgn")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from crashext.errors import ReadError  # noqa: E402
from crashext.kernel.drgn_backend import DrgnTarget  # noqa: E402
from crashext.kernel.target import Target  # noqa: E402
from crashext.kernel.walk import walk_list  # noqa: E402
from crashext.progress import Progress  # noqa: E402
from synth import SynthKernel  # noqa: E402


def live(k):
    """The same synthetic memory, flagged live: the walk keeps its set."""
    return DrgnTarget(k.prog, "synthetic live", live=True)


def chain(k, head, nodes):
    """Link head -> nodes... -> head with consistent prev pointers."""
    ring = [head] + list(nodes) + [head]
    for a, b in zip(ring, ring[1:]):
        k.write_u64(a, b)
        k.write_u64(b + 8, a)


def slots(k, n, stride=64):
    """n list_head slots ``stride`` bytes apart (struct page is 64 bytes)."""
    base = k.alloc(n * stride + 64, 4096)
    return [base + 8 + i * stride for i in range(n)]


def test_static_path_is_taken_and_equals_live_on_a_clean_list():
    k = SynthKernel()
    head, *nodes = slots(k, 201)
    chain(k, head, nodes)
    fast = walk_list(k.target(), head)
    slow = walk_list(live(k), head)
    assert list(fast) == nodes == list(slow)
    assert fast.complete and slow.complete and fast.count == 200


def test_cycle_with_prev_check_on_is_named_a_cycle():
    # node 5 -> node 2: node 2's prev still names node 1, so the prev check
    # stops the walk there; the walk must still call it a cycle
    k = SynthKernel()
    head, *nodes = slots(k, 9)
    chain(k, head, nodes)
    k.write_u64(nodes[5], nodes[2])
    w = walk_list(k.target(), head)
    assert list(w) == nodes[:6]
    assert w.corruption == f"cycle: node {nodes[2]:#x} visited twice"
    assert w.broken_at == nodes[5]


def test_self_loop_and_loop_to_first_node():
    k = SynthKernel()
    head, *nodes = slots(k, 5)
    chain(k, head, nodes)
    k.write_u64(nodes[3], nodes[3])  # node 3 -> itself
    w = walk_list(k.target(), head)
    assert list(w) == nodes[:4] and "cycle" in w.corruption
    chain(k, head, nodes)
    k.write_u64(nodes[3], nodes[0])  # back to the first node
    w = walk_list(k.target(), head)
    assert list(w) == nodes[:4] and f"cycle: node {nodes[0]:#x}" in w.corruption


def test_bad_prev_that_is_not_a_cycle():
    k = SynthKernel()
    head, *nodes = slots(k, 6)
    chain(k, head, nodes)
    k.write_u64(nodes[3] + 8, 0xDEAD0)
    w = walk_list(k.target(), head)
    assert list(w) == nodes[:3]
    assert w.corruption == f"node {nodes[3]:#x} prev 0xdead0 does not point back to {nodes[2]:#x}"


def test_cycle_exactly_at_the_bound_is_still_a_cycle():
    k = SynthKernel()
    head, *nodes = slots(k, 6)
    chain(k, head, nodes)
    k.write_u64(nodes[4], nodes[1])  # 5 nodes, then back to node 1
    w = walk_list(k.target(), head, limit=5)
    assert list(w) == nodes[:5] and "cycle" in w.corruption
    w = walk_list(k.target(), head, limit=3)
    assert list(w) == nodes[:3] and w.corruption == "more than 3 nodes"


def test_null_next_at_the_bound_is_null():
    k = SynthKernel()
    head, *nodes = slots(k, 4)
    chain(k, head, nodes)
    k.write_u64(nodes[2], 0)
    w = walk_list(k.target(), head, limit=3)
    assert list(w) == nodes and w.corruption == f"NULL next pointer at {nodes[2]:#x}"


def test_list_heads_across_a_block_end_and_at_the_end_of_memory():
    k = SynthKernel()
    base = k.alloc(3 * 4096, 4096)
    head = base + 16
    across = base + 4096 - 8          # next in one 4 KiB block, prev in the next
    inside = base + 2 * 4096 + 128
    chain(k, head, [across, inside])
    w = walk_list(k.target(), head)
    assert list(w) == [across, inside] and w.complete
    # a list_head whose prev lies past the end of readable memory
    end = k.base + len(k.mem) - 8
    k.write_u64(inside, end)
    k.write_u64(end, head)
    w = walk_list(k.target(), head)
    assert list(w) == [across, inside]
    assert w.corruption == f"node {end:#x} prev None does not point back to {inside:#x}"


def test_unreadable_next_is_unreadable_not_a_cycle():
    k = SynthKernel()
    head, *nodes = slots(k, 4)
    chain(k, head, nodes)
    k.write_u64(nodes[1], 0xFFFFFFFF00000000)
    w = walk_list(k.target(), head)
    assert list(w) == nodes[:2]
    assert w.corruption == f"unreadable list node {0xFFFFFFFF00000000:#x}"


def test_progress_is_reported_in_steps_and_totals_the_walk():
    k = SynthKernel(size=1 << 21)
    head, *nodes = slots(k, 3001, stride=16)
    chain(k, head, nodes)
    out = io.StringIO()
    prog = Progress("walking", total=3000, stream=out, delay=0, interval=0)
    w = walk_list(k.target(), head, progress=prog)
    assert w.run() == 3000 and w.complete
    assert prog.count == 3000
    # Progress writes when its count reaches a multiple of 1024
    assert [line.split(":")[1].split("/")[0].strip() for line in out.getvalue().splitlines()] \
        == ["1024", "2048"]


def test_read_bytes_default_and_drgn_agree_and_fail_alike():
    k = SynthKernel()
    addr = k.alloc(64)
    k.write(addr, bytes(range(64)))
    t = k.target()
    for a, n in [(addr, 64), (addr + 3, 17), (addr + 8, 8)]:
        want = bytes(range(a - addr, a - addr + n))
        assert t.read_bytes(a, n) == want
        assert Target.read_bytes(t, a, n) == want
    end = k.base + len(k.mem) - 8
    for reader in (t.read_bytes, lambda a, n: Target.read_bytes(t, a, n)):
        with pytest.raises(ReadError):
            reader(end, 16)


# ---------------------------------------------------------------- property

N_SLOTS = 12


def reference(words, head_i, limit):
    """The walk rules stated directly on slot indices (None = unreadable,
    -1 = NULL, -2 = misaligned): nodes visited and the reason's first word."""
    out = []
    prev = head_i
    node = words[head_i][0]
    if node in (-1, -2):
        return out, "NULL" if node == -1 else "misaligned"
    seen = set()
    while node != head_i:
        if node in seen:
            return out, "cycle"
        if len(out) >= limit:
            return out, "more"
        nxt, back = words[node]
        if back != prev:
            return out, "node"
        seen.add(node)
        out.append(node)
        if nxt in (-1, -2):
            return out, "NULL" if nxt == -1 else "misaligned"
        prev, node = node, nxt
    if words[head_i][1] != prev:
        return out, "list"
    return out, None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-2, N_SLOTS - 1), st.integers(-2, N_SLOTS - 1)),
                min_size=N_SLOTS, max_size=N_SLOTS),
       st.integers(1, N_SLOTS + 2))
def test_fast_walk_equals_set_walk_and_the_rules(words, limit):
    k = SynthKernel(size=1 << 16)
    base = k.alloc(N_SLOTS * 48, 4096)
    # slots 48 bytes apart: neighbours share a block, as struct pages do
    addr = [base + 8 + 48 * i for i in range(N_SLOTS)]

    def enc(v):
        return {-1: 0, -2: addr[0] + 4}.get(v, addr[v] if v >= 0 else 0)
    for i, (nxt, back) in enumerate(words):
        k.write_u64(addr[i], enc(nxt))
        k.write_u64(addr[i] + 8, enc(back))
    fast = walk_list(k.target(), addr[0], limit=limit)
    slow = walk_list(live(k), addr[0], limit=limit)
    got_fast, got_slow = list(fast), list(slow)
    assert got_fast == got_slow
    assert fast.corruption == slow.corruption and fast.broken_at == slow.broken_at
    assert fast.count == slow.count == len(got_fast)
    want_nodes, why = reference(words, 0, limit)
    assert got_fast == [addr[i] for i in want_nodes]
    if why is None:
        assert fast.complete
    else:
        assert fast.corruption.split()[0].rstrip(":") == why, (fast.corruption, why)


def test_a_walk_iterated_twice_names_the_same_break():
    k = SynthKernel()
    head, *nodes = slots(k, 6)
    chain(k, head, nodes)
    k.write_u64(nodes[3] + 8, nodes[0])
    for t in (k.target(), live(k)):
        w = walk_list(t, head)
        assert list(w) == nodes[:3]
        first = w.corruption
        assert list(w) == nodes[:3]
        assert w.corruption == first and "does not point back" in first
