"""The watermark emulation against what kernels decided.

The RHEL7 idr-bug case: a RHEL7 3.10.0-693.2.2 node logged "page allocation failure:
order:6, mode:0x10c0d0" (a kmalloc from memcg_update_cache_size, GFP_KERNEL,
no ALLOC_HIGH/ALLOC_HARDER) and then its Mem-Info.  The kernel *failed* that
allocation, so every zone of the zonelist must fail the emulated check at
the min watermark the slowpath uses (3.10 gfp_to_alloc_flags: ALLOC_WMARK_MIN).
"""

import re

import pytest
from hypothesis import given, settings, strategies as st

from crashext.analysis.watermark import (RULES, ZoneState, held_back_by_reserve, mark_pages,
                                         rule_for_release, watermark_ok)
from sharedcorpus import corpus_file

SEED_LOG = "rhel7-3.10.0-693.2.2-idr-bug.dmesg"
ORDERS_310 = 11  # MAX_ORDER 11 on x86_64 3.10: the buddy line lists 4kB .. 4096kB

_ZONE = re.compile(r"Node (\d+) (\w+) free:(\d+)kB min:(\d+)kB low:(\d+)kB high:(\d+)kB"
                   r".*present:(\d+)kB managed:(\d+)kB")
_BUDDY = re.compile(r"Node (\d+) (\w+): (.*) = (\d+)kB")


def _seed_zones():
    """Zones of the RHEL7 idr-bug log, in pages (4 kB), built only from logged numbers."""
    with open(corpus_file(SEED_LOG)) as f:
        lines = [re.sub(r"^\[[ \d.]+\] ", "", ln.rstrip("\n")) for ln in f]
    zones, order = {}, []
    for i, ln in enumerate(lines):
        m = _ZONE.search(ln)
        if m:
            node, name = int(m.group(1)), m.group(2)
            kb = [int(m.group(k)) for k in range(3, 9)]
            reserve = [int(x) for x in lines[i + 1].split(":", 1)[1].split()]
            zones[name] = dict(node=node, name=name, free_pages=kb[0] // 4, min=kb[1] // 4,
                               low=kb[2] // 4, high=kb[3] // 4, present=kb[4] // 4,
                               managed=kb[5] // 4, lowmem_reserve=reserve)
            order.append(name)
            continue
        m = _BUDDY.search(ln)
        if m and m.group(2) in zones:
            counts = [int(x) for x in re.findall(r"(\d+)\*\d+kB", m.group(3))]
            zones[m.group(2)]["nr_free"] = counts
            zones[m.group(2)]["buddy_kb"] = int(m.group(4))
    out = {}
    for idx, name in enumerate(order):
        z = zones[name]
        buddy_kb = z.pop("buddy_kb")
        out[name] = (ZoneState(index=idx, **z), buddy_kb)
    return out


def test_seed_log_parsed_as_logged():
    zones = _seed_zones()
    assert list(zones) == ["DMA", "DMA32", "Normal"]
    normal, buddy_kb = zones["Normal"]
    assert len(normal.nr_free) == ORDERS_310
    # the buddy line's own total: sum of blocks * size
    assert sum(n * 4 << o for o, n in enumerate(normal.nr_free)) == buddy_kb == 473928
    assert normal.min == 55540 // 4 and normal.lowmem_reserve == [0, 0, 0, 0]


def test_rule_for_release():
    assert rule_for_release("3.10.0-693.2.2.el7.x86_64") == "3.10"
    assert rule_for_release("4.3.0") == "3.10"
    assert rule_for_release("4.4.0-210-generic") == "4.4"
    assert rule_for_release("4.18.0-553.el8_10.x86_64") == "4.4"
    assert rule_for_release("5.10.0-30-amd64") == "4.4"
    assert rule_for_release("6.1.0-56-cloud-amd64") == "4.4"
    assert rule_for_release("6.3.0") == "6.3"
    assert rule_for_release("6.12.9+deb13-amd64") == "6.3"
    with pytest.raises(ValueError):
        rule_for_release("garbage")


@pytest.mark.parametrize("mark", ["low", "min"])
def test_seed_order6_fails_every_zone(mark):
    """GFP_KERNEL on x86_64 3.10: highest zone ZONE_NORMAL (index 2) is the classzone."""
    zones = _seed_zones()
    rule = rule_for_release("3.10.0-693.2.2.el7.x86_64")
    for name, (z, _) in zones.items():
        v = watermark_ok(z, 6, mark, classzone_idx=2, rule=rule)
        assert not v.ok, (name, v)


def test_seed_normal_fails_at_order6_with_the_kernels_numbers():
    """Hand computation of 3.10's loop on the logged Normal zone, min mark.

    free 473548kB = 118387 pages; minus (1<<6)-1 = 118324 > 13885 + 0.
    Subtracting each lower order's free pages (nr_free[o] << o):
    8454, 13404, 21808, 30816, 31360, 12448 -> 118324 - 118290 = 34 pages left
    in blocks of order >= 6, and min >> 6 = 13885 >> 6 = 216: 34 <= 216.
    """
    z, _ = _seed_zones()["Normal"]
    v = watermark_ok(z, 6, "min", 2, "3.10")
    assert (v.ok, v.check, v.failed_order) == (False, "order", 6)
    assert v.numbers["steps"][-1] == {"order": 6, "free": 34, "min": 216}
    # orders the loop passed: at order 5, 34 + 12448 = 12482 > 13885 >> 5 = 433
    assert v.numbers["steps"][-2] == {"order": 5, "free": 12482, "min": 433}


def test_seed_dma32_fails_the_reserve():
    """DMA32: 64312kB = 16078 pages - 63 = 16015 <= min 2994 + lowmem_reserve[2] 13054."""
    z, _ = _seed_zones()["DMA32"]
    v = watermark_ok(z, 6, "min", 2, "3.10")
    assert (v.ok, v.check, v.failed_order) == (False, "watermark", 0)
    assert (v.numbers["free_after"], v.numbers["min"], v.numbers["reserve"]) == (16015, 2994, 13054)


def test_seed_dma32_held_back_by_its_reserve_alone():
    """The reserve alone failed DMA32: the same 3.10 check with a reserve of 0 passes.

    Hand computation on the logged numbers: 16015 > 2994 + 0; then each lower
    order's free pages from the DMA32 buddy line (1501*4kB 498*8kB 271*16kB
    265*32kB 154*64kB 93*128kB -> 1501, 996, 1084, 2120, 2464, 2976 pages)
    leave 16015 - 11141 = 4874 pages in blocks of order >= 6 > 2994 >> 6 = 46.
    """
    z, _ = _seed_zones()["DMA32"]
    v = watermark_ok(z, 6, "min", 2, "3.10")
    held, bare = held_back_by_reserve(z, v, 6, "min", 2, "3.10")
    assert held and bare.ok and bare.numbers["reserve"] == 0
    assert bare.numbers["steps"][-1] == {"order": 6, "free": 4874, "min": 46}
    # the DMA zone too (3914 > 16 + 0; 3914 - 73 = 3841 pages in blocks of order >= 6)
    z, _ = _seed_zones()["DMA"]
    held, bare = held_back_by_reserve(z, watermark_ok(z, 6, "min", 2, "3.10"), 6, "min", 2, "3.10")
    assert held and bare.numbers["steps"][-1] == {"order": 6, "free": 3841, "min": 0}


def test_seed_normal_is_not_held_back():
    """Normal failed at order 6 with a reserve of 0 already: not the reserve's doing."""
    z, _ = _seed_zones()["Normal"]
    v = watermark_ok(z, 6, "min", 2, "3.10")
    assert held_back_by_reserve(z, v, 6, "min", 2, "3.10") == (False, None)


def test_reserve_held_boundary_is_the_kernels_less_or_equal():
    """__zone_watermark_ok fails on free <= min + reserve: DMA32's 16015 free
    pages after the order's 63 fail with a reserve of 16015 - 2994 = 13021
    and pass with 13020 (the logged 13054 is 33 pages past the edge)."""
    from dataclasses import replace
    z, _ = _seed_zones()["DMA32"]
    for reserve, fails in ((13021, True), (13020, False)):
        zr = replace(z, lowmem_reserve=[0, 0, reserve, reserve])
        v = watermark_ok(zr, 6, "min", 2, "3.10")
        assert (not v.ok) == fails
        held, _ = held_back_by_reserve(zr, v, 6, "min", 2, "3.10")
        assert held == fails


@pytest.mark.parametrize("rule,check", [("3.10", "order"), ("4.4", "no_block"),
                                        ("6.3", "no_block")])
def test_reserve_and_fragmentation_is_not_held_back(rule, check):
    """A zone over its reserve that also has no block of the order: without
    the reserve it still fails at that order, so the reserve did not decide."""
    z = _zone(1000, 100, [1000] + [0] * 10, reserve=950)
    v = watermark_ok(z, 2, "min", 2, rule)
    assert (v.ok, v.check) == (False, "watermark")
    held, bare = held_back_by_reserve(z, v, 2, "min", 2, rule)
    assert not held and bare.check == check and bare.failed_order in (1, 2)


@pytest.mark.parametrize("mark", ["min", "low", "high"])
def test_reason_names_the_mark_compared(mark):
    """The RHEL7 idr-bug log's logged zones checked at each watermark: the reason names
    that mark and the value the log printed for it (kB / 4), not "min"."""
    zones = _seed_zones()
    z, _ = zones["Normal"]
    logged = {"min": 55540, "low": 69424, "high": 83308}[mark] // 4  # Normal's zone line
    assert getattr(z, mark) == logged
    v = watermark_ok(z, 6, mark, 2, "3.10")
    assert not v.ok and v.numbers["mark_name"] == mark
    assert v.reason.endswith(f"<= {mark} >> 6 = {logged >> 6}")
    others = {"min", "low", "high"} - {mark}
    assert not any(f"{o} " in v.reason for o in others)
    dma32, _ = zones["DMA32"]
    for rule in ("3.10", "4.4", "6.3"):
        v = watermark_ok(dma32, 6, mark, 2, rule)
        assert v.check == "watermark"
        assert f"<= {mark} {getattr(dma32, mark)} + lowmem_reserve[2] 13054" in v.reason
    v = watermark_ok(z, 0, mark, 2, "4.4")
    assert v.ok and f"> {mark} {getattr(z, mark)} + reserve 0" in v.reason
    v = watermark_ok(z, 0, 5000, 2, "4.4")   # a number of pages: "mark"
    assert v.ok and "> mark 5000 + reserve 0" in v.reason


def test_seed_order6_would_pass_on_newer_kernels():
    """Three order-6 blocks (3*256kB, all (M)) were free: v4.4+ would not have failed.

    Built only from the buddy line: 4.4's rule finds an order-6 block on a
    usable list (MOVABLE, the buddy line's (M)).
    """
    z, _ = _seed_zones()["Normal"]
    z.free_by_mt = {"MIGRATE_MOVABLE": [0] * 6 + [3] + [0] * 4}
    v = watermark_ok(z, 6, "min", 2, "4.4")
    assert v.ok and v.numbers["found"] == {"order": 6, "migratetype": "MIGRATE_MOVABLE"}
    # the order-0 check alone passes too
    assert watermark_ok(z, 0, "min", 2, "4.4").ok


def _zone(free, mn, nr_free, reserve=0, boost=0, by_mt=None, highatomic=0, cma=0):
    return ZoneState(node=0, name="Normal", free_pages=free, min=mn, low=mn * 5 // 4,
                     high=mn * 3 // 2, lowmem_reserve=[0, 0, reserve, 0], nr_free=nr_free,
                     free_by_mt=by_mt, watermark_boost=boost, highatomic=highatomic,
                     free_cma=cma)


def test_boost_added_to_named_marks():
    z = _zone(1000, 100, [0] * 11, boost=50)
    assert mark_pages(z, "min") == 150 and mark_pages(z, 7) == 7


def test_highatomic_reserve_blocks_ordinary_requests():
    nr = [0] * 11
    nr[3] = 1
    by = {"MIGRATE_HIGHATOMIC": list(nr), "MIGRATE_MOVABLE": [0] * 11}
    z = _zone(1000, 100, nr, by_mt=by, highatomic=512)
    # 1000 - 7 - 512 = 481 > 100: order-0 check passes, but the only block is highatomic
    v = watermark_ok(z, 3, "min", 2, "4.4")
    assert (v.ok, v.check, v.failed_order) == (False, "no_block", 3)
    assert watermark_ok(z, 3, "min", 2, "4.4", harder=True).ok
    assert not watermark_ok(z, 3, "min", 2, "6.3", harder=True).ok  # NON_BLOCK alone: no
    assert watermark_ok(z, 3, "min", 2, "6.3", highatomic=True).ok


def test_cma_only_counts_with_alloc_cma():
    z = _zone(300, 100, [300] + [0] * 10, cma=250)
    assert not watermark_ok(z, 0, "min", 2, "3.10").ok          # 300 - 250 <= 100
    assert watermark_ok(z, 0, "min", 2, "3.10", cma=True).ok
    assert not watermark_ok(z, 0, "min", 2, "4.4").ok


def test_bad_arguments_are_value_errors():
    z = _zone(1000, 100, [0] * 11)
    with pytest.raises(ValueError):
        watermark_ok(z, 11, "min", 2, "3.10")
    with pytest.raises(ValueError):
        watermark_ok(z, 1, "lowest", 2, "3.10")
    with pytest.raises(ValueError):
        watermark_ok(z, 1, "min", 9, "3.10")
    with pytest.raises(ValueError):
        watermark_ok(z, 1, "min", 2, "2.6")


_nr = st.lists(st.integers(0, 5000), min_size=11, max_size=11)


@settings(max_examples=300, deadline=None)
@given(nr=_nr, extra=st.integers(0, 10000), mn=st.integers(0, 40000),
       order=st.integers(1, 10), reserve=st.integers(0, 5000))
def test_310_monotone_in_order_and_mark(nr, extra, mn, order, reserve):
    """Passing order n implies passing n-1; passing a mark implies passing a lower one."""
    free = sum(n << o for o, n in enumerate(nr)) + extra
    z = _zone(free, mn, nr, reserve=reserve)
    if watermark_ok(z, order, "min", 2, "3.10").ok:
        assert watermark_ok(z, order - 1, "min", 2, "3.10").ok
        assert watermark_ok(z, order, max(mn - 1, 0), 2, "3.10").ok


@settings(max_examples=300, deadline=None)
@given(nr=_nr, extra=st.integers(0, 10000), mn=st.integers(0, 40000),
       order=st.integers(0, 10))
def test_310_pass_means_enough_pages_in_big_blocks(nr, extra, mn, order):
    """A 3.10 pass needs, at every k <= order, more than (min >> k) pages in
    blocks of order >= k (beyond the 2^order - 1 the request itself discounts)."""
    free = sum(n << o for o, n in enumerate(nr)) + extra
    z = _zone(free, mn, nr)
    v = watermark_ok(z, order, "min", 2, "3.10")
    big_enough = all(
        extra + sum(n << o for o, n in enumerate(nr) if o >= k) - ((1 << order) - 1) > (mn >> k)
        for k in range(0, order + 1))
    assert v.ok == big_enough


@settings(max_examples=200, deadline=None)
@given(nr=_nr, mn=st.integers(0, 40000), order=st.integers(1, 10))
def test_new_rules_pass_iff_block_exists_above_watermark(nr, mn, order):
    free = sum(n << o for o, n in enumerate(nr))
    by = {"MIGRATE_MOVABLE": list(nr)}
    z = _zone(free, mn, nr, by_mt=by)
    for rule in ("4.4", "6.3"):
        v = watermark_ok(z, order, "min", 2, rule)
        expect = free - ((1 << order) - 1) > mn and any(nr[order:])
        assert v.ok == expect and v.certain
    assert set(RULES) == {"3.10", "4.4", "6.3"}
