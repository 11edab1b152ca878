"""gfp_to_alloc_flags() per kernel generation, against the kernel.

The rules (mm/page_alloc.c) and the releases that carry them come from the
commits named in crashext/analysis/allocflags.py; the stable sublevels from
the stable review series that applied them (6.1.116-rc1 and 5.15.171 for
the v6.3 series, Nov 2024; 6.12.54, 6.1.157, 5.15.195 and 6.17.4 for
6a204d4b14c9, Oct 2025).
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from crashext import gfp
from crashext.analysis import allocflags
from crashext.analysis import zonecheck
from crashext.sources.kmsg import AllocFailure, extract
from crashext.sources import logs

LOGS = Path(__file__).resolve().parent / "data" / "logs"
ROOT = Path(__file__).resolve().parent.parent


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "crashext", *args], capture_output=True,
                          text=True, timeout=600, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("release,version,gen", [
    ("6.1.115", None, "4.4"),          # before the backport
    ("6.1.116", None, "6.3"),          # 6.1.116: eb2e2b425c69, ab3508854353, 1ebbb21811b7
    ("6.1.156", None, "6.3"),
    ("6.1.157", None, "6.18"),         # 6.1.157: 6a204d4b14c9
    ("5.15.170", None, "4.4"),
    ("5.15.171", None, "6.3"),
    ("5.15.195", None, "6.18"),
    ("6.2.16", None, "4.4"),           # 6.2.y never got the series
    ("6.3.0", None, "6.3"),
    ("6.12.53", None, "6.3"),
    ("6.12.54", None, "6.18"),
    ("6.17.4", None, "6.18"),
    ("6.18.1", None, "6.18"),
    ("4.3.6", None, "3.10"),
    ("4.4.0-210-generic", None, "4.4"),
    ("3.10.0-693.2.2.el7.x86_64", None, "3.10"),
    # Debian's release hides the sublevel; its version string names it
    ("6.1.0-57-cloud-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)", "6.18"),
    ("6.1.0-27-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01)", "4.4"),
])
def test_generation_of_release(release, version, gen):
    got = allocflags.generation(release, version)
    assert got.name == gen and got.assumed is None
    assert got.rule == {"3.10": "3.10", "4.4": "4.4", "6.3": "6.3", "6.18": "6.3"}[gen]


def test_unknown_sublevel_is_said():
    """A Debian/Ubuntu ".0-ABI" release on a branch with backports: the
    branch's own generation, and the answer says it is a guess."""
    g = allocflags.generation("6.1.0-57-cloud-amd64")
    assert g.name == "4.4" and "6.1.116+" in g.assumed and "6.1.157" in g.assumed
    g = allocflags.generation("5.15.0-124-generic", "#134-Ubuntu SMP Fri Sep 27 20:20:17 UTC 2024")
    assert g.name == "4.4" and g.assumed
    assert allocflags.generation("5.10.0-32-cloud-amd64").assumed is None  # no backport on 5.10
    g = allocflags.generation("5.14.0-427.el9.x86_64")     # RHEL 9: backports not checked
    assert g.name == "4.4" and "unconfirmed" in g.assumed
    assert allocflags.generation("3.10.0-693.2.2.el7.x86_64").assumed is None
    with pytest.raises(ValueError):
        allocflags.generation("garbage")


def _mask(table, *names):
    comp = dict(table.names)
    m = 0
    for n in names:
        m |= comp[n] if n in comp else table.bit(n)
    return m


# (request, order) -> the bits mm/page_alloc.c gives it, per generation:
#   3.10: ALLOC_HIGH = __GFP_HIGH; ALLOC_HARDER = !(__GFP_WAIT|__GFP_NO_KSWAPD) && !__GFP_NOMEMALLOC
#   4.4:  ALLOC_HARDER = __GFP_ATOMIC && !__GFP_NOMEMALLOC
#   6.3:  ALLOC_NON_BLOCK = !__GFP_DIRECT_RECLAIM && !__GFP_NOMEMALLOC, HIGHATOMIC if order > 0
#   6.18: HIGHATOMIC only with ALLOC_MIN_RESERVE too ("high atomic reserves being added
#         for high-order GFP_NOWAIT allocations" is what 6a204d4b14c9 stopped)
_CASES = [
    # table, generation, request, order, expected names
    ("3.10", "3.10", ("GFP_KERNEL",), 6, []),
    ("3.10", "3.10", ("GFP_ATOMIC",), 2, ["ALLOC_HIGH", "ALLOC_HARDER"]),
    ("3.10", "3.10", ("GFP_ATOMIC", "__GFP_NOMEMALLOC"), 2, ["ALLOC_HIGH"]),
    ("3.10", "3.10", ("GFP_NOWAIT",), 0, ["ALLOC_HARDER"]),
    ("5.10", "4.4", ("GFP_KERNEL",), 3, []),
    ("5.10", "4.4", ("GFP_ATOMIC",), 3, ["ALLOC_HIGH", "ALLOC_HARDER"]),
    ("5.10", "4.4", ("GFP_NOWAIT",), 3, []),            # no __GFP_ATOMIC: no rights
    ("5.10", "4.4", ("GFP_ATOMIC", "__GFP_NOMEMALLOC"), 3, ["ALLOC_HIGH"]),
    ("5.10", "4.4", ("GFP_HIGHUSER_MOVABLE",), 0, ["ALLOC_CMA"]),
    ("5.10", "4.4", ("GFP_KERNEL", "__GFP_RECLAIMABLE", "__GFP_MOVABLE"), 0, []),
    ("6.1", "6.3", ("GFP_ATOMIC",), 0, ["ALLOC_MIN_RESERVE", "ALLOC_NON_BLOCK"]),
    ("6.1", "6.3", ("GFP_ATOMIC",), 3,
     ["ALLOC_MIN_RESERVE", "ALLOC_NON_BLOCK", "ALLOC_HIGHATOMIC"]),
    ("6.1", "6.3", ("GFP_NOWAIT",), 3, ["ALLOC_NON_BLOCK", "ALLOC_HIGHATOMIC"]),
    ("6.1", "6.3", ("GFP_ATOMIC", "__GFP_NOMEMALLOC"), 3, ["ALLOC_MIN_RESERVE"]),
    ("6.1", "6.18", ("GFP_NOWAIT",), 3, ["ALLOC_NON_BLOCK"]),
    ("6.12", "6.18", ("GFP_ATOMIC",), 3,
     ["ALLOC_MIN_RESERVE", "ALLOC_NON_BLOCK", "ALLOC_HIGHATOMIC"]),
    ("6.12", "6.18", ("GFP_NOWAIT",), 3, ["ALLOC_NON_BLOCK"]),
    ("6.12", "6.18", ("GFP_KERNEL",), 3, []),
    ("6.12", "6.3", ("GFP_KERNEL", "__GFP_NORETRY"), 1, []),
]


@pytest.mark.parametrize("table,gen,request_,order,names", _CASES)
def test_alloc_flags_per_generation(table, gen, request_, order, names):
    t = gfp.table_by_key(table)
    got = allocflags.alloc_flags(_mask(t, *request_), order, t, gen)
    assert got.names(gen) == names


def _zone_line(text, zone):
    m = re.search(rf"{zone} free:(\d+)kB boost:(\d+)kB min:(\d+)kB .*?"
                  r"reserved_highatomic:(\d+)KB", text)
    return {k: int(v) // 4 for k, v in zip(("free", "boost", "min", "reserved"), m.groups())}


def test_printed_highatomic_reserve_is_subtracted_without_reserve_rights():
    """lkp's 6.7 log prints ``reserved_highatomic:4096KB`` for Normal: a
    GFP_KERNEL request has no ALLOC_RESERVES right, so __zone_watermark_ok
    subtracts it; a GFP_ATOMIC one of the same order has (ALLOC_MIN_RESERVE,
    ALLOC_NON_BLOCK, ALLOC_HIGHATOMIC) and is also given min/2 then a quarter
    of the rest below min."""
    text = (LOGS / "lkp-6.7-noretry-order1.log").read_text()
    normal = _zone_line(text, "Normal")
    assert normal["reserved"] == 1024
    rec = next(r for r in extract(logs.normalize(text.splitlines()))
               if isinstance(r, AllocFailure))
    table, _ = gfp.table_for_release(rec.release)

    def check(mode):
        rule, verdicts, _notes, flags = zonecheck.explain_request(
            mode, rec.order, rec.zones, rec.buddy, table, rec.release, with_flags=True)
        return rule, {v.zone: v.verdict for v in verdicts}, flags

    rule, v, flags = check(rec.mode)      # as logged: GFP_KERNEL|__GFP_NORETRY, order 1
    assert rule == "6.3" and flags["names"] == [] and flags["generation"] == "6.3"
    n = v["Normal"]["numbers"]
    assert n["highatomic"] == normal["reserved"]
    assert n["free_after"] == normal["free"] - 1 - normal["reserved"]
    assert n["min"] == normal["min"]   # min_wmark_pages() as printed includes the boost
    rule, v, flags = check(dict(table.names)["GFP_ATOMIC"])
    assert flags["names"] == ["ALLOC_MIN_RESERVE", "ALLOC_NON_BLOCK", "ALLOC_HIGHATOMIC"]
    n = v["Normal"]["numbers"]
    assert n["free_after"] == normal["free"] - 1
    half = normal["min"] - normal["min"] // 2
    assert n["min"] == half - half // 4


def test_allocfail_json_names_the_flags():
    p = _cli("allocfail", "--json", str(LOGS / "lkp-6.7-noretry-order1.log"))
    assert p.returncode == 0, p.stderr
    f = json.loads(p.stdout)["failures"][0]
    assert f["alloc_flags"] == {"generation": "6.3", "names": [], "assumed": None}
    p = _cli("allocfail", "--json", "--kernel-version", "6.1.0-57-cloud-amd64",
             str(LOGS / "lkp-6.7-noretry-order1.log"))
    f = json.loads(p.stdout)["failures"][0]
    assert f["alloc_flags"]["assumed"] and f["watermark_rule"] == "4.4"
    assert any("sublevel" in e for e in f["explanation"])


@pytest.mark.vmcore
@pytest.mark.parametrize("suite,gen", [("bullseye", "4.4"), ("bookworm", "6.18"),
                                       ("trixie", "6.18")])
def test_fixture_kernels(vmcore, suite, gen):
    """The fixtures' Debian kernels (5.10.223, 6.1.192, 6.12.118 by their
    ``uname -a``): the dump's ``uname -v`` names the sublevel, so frag on the
    dump and on the guest's own /proc text take the same, backported rule."""
    fx = vmcore(suite, "fragmented")
    uname = fx.truth()["uname_a"]
    release, version = uname.split()[2], " ".join(uname.split()[3:])
    assert allocflags.generation(release, version).name == gen
    from crashext.analysis import buddy_read
    from crashext.sources import procfs
    text = buddy_read.from_proc(procfs.ProcDir(str(fx.truth_dir)))
    assert text.release == release and text.rule == allocflags.WATERMARK_RULE[gen]
    p = _cli("frag", "--json", "-c", str(fx.vmcore), "-s", str(fx.vmlinux))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["rule"] == allocflags.WATERMARK_RULE[gen]


def test_verdict_changes_with_the_generation_on_real_zones():
    """The zones the 6.3.9 kernel printed with its order-9 failure
    (lkml-6.3-vmalloc-order9-highatomic.log): Normal's only free order-9 block
    is the "1*2048kB (H)" one.  A high-order non-blocking request without
    __GFP_HIGH (GFP_NOWAIT) gets ALLOC_HIGHATOMIC from v6.3 (and 6.1.116,
    5.15.171) and may take that block; since 6a204d4b14c9 (6.12.54, 6.1.157,
    5.15.195, v6.18) it does not, and fails in every zone.  GFP_ATOMIC, with
    __GFP_HIGH, keeps the right in both."""
    text = (LOGS / "lkml-6.3-vmalloc-order9-highatomic.log").read_text()
    rec = next(r for r in extract(logs.normalize(text.splitlines()))
               if isinstance(r, AllocFailure))
    assert rec.release == "6.3.9-gentoo-e350" and rec.order == 9
    table = gfp.table_by_key("6.12")

    def normal(mode, release):
        rule, verdicts, _n, flags = zonecheck.explain_request(
            mode, 9, rec.zones, rec.buddy, table, release, with_flags=True)
        return rule, {v.zone: v.verdict for v in verdicts}["Normal"], flags

    nowait = dict(table.names)["GFP_NOWAIT"]
    assert not nowait & table.bit("__GFP_HIGH") and not nowait & table.bit("__GFP_DIRECT_RECLAIM")
    rule, v, flags = normal(nowait, rec.release)            # the kernel of the log
    assert (rule, flags["generation"]) == ("6.3", "6.3") and "ALLOC_HIGHATOMIC" in flags["names"]
    assert v["ok"] and v["numbers"]["found"] == {"order": 9, "migratetype": "MIGRATE_HIGHATOMIC"}
    for later in ("6.12.54", "6.1.157", "6.18.0"):
        rule, v, flags = normal(nowait, later)
        assert (rule, flags["generation"]) == ("6.3", "6.18")
        assert flags["names"] == ["ALLOC_NON_BLOCK"] and not v["ok"]
        assert "only on MIGRATE_HIGHATOMIC" in v["reason"]
    atomic = dict(table.names)["GFP_ATOMIC"]
    for release in (rec.release, "6.12.54"):
        assert normal(atomic, release)[1]["ok"]
    # the logged request itself (GFP_KERNEL|__GFP_HIGHMEM|__GFP_ZERO) fails in both
    for release in (rec.release, "6.12.54"):
        assert not normal(rec.mode, release)[1]["ok"]
