"""frag: index arithmetic (mm/vmstat.c), text front end and the command."""

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from crashext.analysis import buddy, buddy_read
from crashext.sources import procfs

# The RHEL7 idr-bug host's logged buddy line (RHEL7 3.10, Node 0 Normal), blocks per order 0..10
SEED_NORMAL = [8454, 6702, 5452, 3852, 1960, 389, 3, 0, 0, 0, 0]


def test_indices_by_hand_on_the_seed_zone():
    # fill_contig_page_info: free_pages = sum(n << o) = 118482 (473928 kB / 4)
    assert buddy.contig_page_info(SEED_NORMAL, 6) == (118482, 26812, 3)
    # unusable_free_index(6) = (118482 - (3 << 6)) * 1000 / 118482 = 998 (truncated)
    assert buddy.unusable_index(SEED_NORMAL, 6) == 998
    # an order-6 block is free: __fragmentation_index returns -1000
    assert buddy.fragmentation_index(SEED_NORMAL, 6) == -1000
    # order 7: no suitable block; 1000 - (1000 + 118482*1000/128) / 26812
    #        = 1000 - (1000 + 925640) / 26812 = 1000 - 34 = 966
    assert buddy.fragmentation_index(SEED_NORMAL, 7) == 966
    assert buddy.unusable_index(SEED_NORMAL, 7) == 1000
    assert buddy.format_index(-1000) == "-1.000" and buddy.format_index(966) == "0.966"
    assert buddy.unusable_index([0] * 11, 3) == 1000 and buddy.fragmentation_index([0] * 11, 3) == 0


@settings(max_examples=300, deadline=None)
@given(nr=st.lists(st.integers(0, 10 ** 6), min_size=11, max_size=11), order=st.integers(0, 10))
def test_index_properties(nr, order):
    u = buddy.unusable_index(nr, order)
    e = buddy.fragmentation_index(nr, order)
    assert 0 <= u <= 1000
    if order:
        assert u >= buddy.unusable_index(nr, order - 1)   # bigger requests: more unusable
    # extfrag is -1000 exactly when a block of the order or larger is free
    assert (e == -1000) == any(nr[order:])
    if e != -1000:
        assert 0 <= e <= 1000


def _write_proc(tmp_path, buddyinfo, zoneinfo=None, extra=None):
    (tmp_path / "buddyinfo").write_text(buddyinfo)
    if zoneinfo:
        (tmp_path / "zoneinfo").write_text(zoneinfo)
    for k, v in (extra or {}).items():
        (tmp_path / k).write_text(v)
    return str(tmp_path)


SEED_ZONEINFO = (
    "Node 0, zone   Normal\n  pages free     118387\n        min      13885\n"
    "        low      17356\n        high     20827\n        spanned  3407872\n"
    "        present  3407872\n        managed  3341897\n"
    "        protection: (0, 0, 0, 0)\n")


def test_from_proc_310_text_gives_the_kernels_verdict(tmp_path):
    """The RHEL7 idr-bug log's Normal zone as text: rule 3.10 (from the release), order 6 fails at min."""
    buddyinfo = "Node 0, zone   Normal " + " ".join(map(str, SEED_NORMAL)) + "\n"
    d = _write_proc(tmp_path, buddyinfo, SEED_ZONEINFO, {"uname_r": "3.10.0-693.2.2.el7.x86_64\n"})
    rep = buddy_read.from_proc(procfs.ProcDir(d))
    assert rep.rule == "3.10" and rep.orders == 11
    v = buddy.verdicts(rep, [6], buddy.classzone_index(rep, "Normal"))
    (zone_v,) = v.values()
    assert not zone_v[6]["min"].ok and zone_v[6]["min"].failed_order == 6


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "crashext", "frag"] + list(args),
                          capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_cli_seed_text(tmp_path):
    buddyinfo = "Node 0, zone   Normal " + " ".join(map(str, SEED_NORMAL)) + "\n"
    d = _write_proc(tmp_path, buddyinfo, SEED_ZONEINFO)
    r = _cli("--proc", d, "--release", "3.10.0-693.2.2.el7.x86_64", "--order", "6")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("FAIL: order-6 (256 KiB)") and "min >> 6 = 216" in first
    r = _cli("--proc", d, "--release", "3.10.0-693", "--json")
    data = json.loads(r.stdout)
    (z,) = data["zones"]
    assert z["nr_free"] == SEED_NORMAL and z["free_pages"] == 118387
    assert data["verdict"]["first_failing_order"] == 6  # order 5 passes, 6 fails
    assert z["extfrag_index"][7] == 966


@pytest.mark.parametrize("args,msg", [
    (["--proc", "/nonexistent-dir"], "not a directory"),
    (["--proc", "/proc", "--order", "99"], "out of range"),
    (["--proc", "/proc", "--alloc-flags", "bogus"], "unknown --alloc-flags"),
    ([], "nothing to read"),
])
def test_cli_bad_input_is_one_line(args, msg):
    r = _cli(*args)
    assert r.returncode == 2 and msg in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_cli_garbage_file_is_one_line(tmp_path):
    d = _write_proc(tmp_path, "Node 0, zone Normal 1 2 3\nthis is not buddyinfo\n")
    r = _cli("--proc", d, "--release", "6.1.0")
    assert r.returncode == 2 and "line 2" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(not os.path.exists("/proc/buddyinfo"), reason="no /proc here")
def test_cli_live_proc():
    r = _cli("--proc", "/proc", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["release"] == os.uname().release
    zones = {(z["node"], z["zone"]) for z in data["zones"]}
    with open("/proc/buddyinfo") as f:
        assert zones == set(procfs.parse_buddyinfo(f.read()))
    r = _cli("--proc", "/proc")
    assert r.returncode == 0 and r.stdout.split(":")[0] in ("PASS", "FAIL")
