"""The /proc text parsers, on this machine's real files and on the kernel's
documented line formats (mm/vmstat.c)."""

import os

import pytest

from crashext.errors import InputError
from crashext.sources import procfs

LIVE = "/proc/buddyinfo"


def _read(name):
    with open(os.path.join("/proc", name)) as f:
        return f.read()


@pytest.mark.skipif(not os.path.exists(LIVE), reason="no /proc/buddyinfo here")
def test_live_files_parse_consistently():
    buddy = procfs.parse_buddyinfo(_read("buddyinfo"))
    zones = procfs.parse_zoneinfo(_read("zoneinfo"))
    orders = {len(v) for v in buddy.values()}
    assert len(orders) == 1
    for key in buddy:
        z = zones[key]  # every zone buddyinfo lists is in zoneinfo
        # include/linux/mmzone.h: managed <= present <= spanned; buddyinfo lists populated zones
        assert 0 < z["present"] <= z["spanned"] and z["managed"] <= z["present"]
        assert z["min"] <= z["low"] <= z["high"]
        assert len(z["protection"]) == len(zones) // len({k[0] for k in zones})
    try:
        text = _read("pagetypeinfo")  # root only since v5.6
    except PermissionError:
        pytest.skip("pagetypeinfo not readable")
    pt = procfs.parse_pagetypeinfo(text)
    assert set(pt["free"]) == set(buddy)
    assert all(t.startswith("MIGRATE_") for t in pt["types"])
    assert "MIGRATE_MOVABLE" in pt["types"] and "MIGRATE_UNMOVABLE" in pt["types"]
    # pageblocks counted per type add up to the zone's pageblocks (spanned / per block, at most)
    for key, blocks in pt["blocks"].items():
        assert sum(blocks.values()) * pt["pages_per_block"] <= zones[key]["spanned"] + \
            pt["pages_per_block"]


def test_buddyinfo_format_and_errors():
    text = ("Node 0, zone      DMA      1      0      0\n"
            "Node 1, zone   Normal   8454   6702      3\n")
    assert procfs.parse_buddyinfo(text) == {(0, "DMA"): [1, 0, 0], (1, "Normal"): [8454, 6702, 3]}
    with pytest.raises(InputError, match="line 2"):
        procfs.parse_buddyinfo("Node 0, zone DMA 1 2\nNode 0, zone Normal x 2\n")
    with pytest.raises(InputError, match="empty"):
        procfs.parse_buddyinfo("\n")
    with pytest.raises(InputError, match="different numbers of orders"):
        procfs.parse_buddyinfo("Node 0, zone DMA 1 2\nNode 0, zone Normal 1 2 3\n")


def test_pagetypeinfo_capped_counts_and_old_names():
    # v5.6+ prints ">100000" once a count reaches 100000 (mm/vmstat.c pagetypeinfo_showfree_print)
    text = ("Page block order: 9\nPages per block:  512\n\n"
            "Free pages count per migrate type at order       0      1\n"
            "Node    0, zone   Normal, type    Unmovable    960 >100000\n"
            "Node    0, zone   Normal, type      Reserve      0      1\n\n"
            "Number of blocks type     Unmovable      Reserve\n"
            "Node 0, zone   Normal          139            2\n")
    pt = procfs.parse_pagetypeinfo(text)
    assert pt["pageblock_order"] == 9 and pt["pages_per_block"] == 512
    assert pt["free"][(0, "Normal")]["MIGRATE_UNMOVABLE"] == [960, 100000]
    assert pt["capped"] == [(0, "Normal", "MIGRATE_UNMOVABLE", 1)]
    assert pt["types"] == ["MIGRATE_UNMOVABLE", "MIGRATE_RESERVE"]
    assert pt["blocks"][(0, "Normal")] == {"MIGRATE_UNMOVABLE": 139, "MIGRATE_RESERVE": 2}
    with pytest.raises(InputError):
        procfs.parse_pagetypeinfo("hello\n")


def test_frag_index_thousandths():
    text = ("Node 0, zone      DMA -1.000 -1.000 0.066 \n"
            "Node 0, zone   Normal 0.000 0.024 1.000 \n")
    assert procfs.parse_frag_index(text) == {(0, "DMA"): [-1000, -1000, 66],
                                             (0, "Normal"): [0, 24, 1000]}
    with pytest.raises(InputError):
        procfs.parse_frag_index("Node 0, zone DMA 0.5\n")


def test_zoneinfo_310_shape():
    # 3.10's zoneinfo_show_print: "pages free", min/low/high/scanned/spanned/present/managed,
    # vm_stat items, "protection: (..)", then "pagesets" with per-cpu lines.
    text = ("Node 0, zone   Normal\n  pages free     118387\n        min      13885\n"
            "        low      17356\n        high     20827\n        scanned  0\n"
            "        spanned  3407872\n        present  3407872\n        managed  3341897\n"
            "    nr_free_pages 118387\n    nr_free_cma  0\n"
            "        protection: (0, 0, 0, 0)\n  pagesets\n    cpu: 0\n"
            "              count: 31\n              high:  186\n"
            "  all_unreclaimable: 0\n  start_pfn:         1048576\n")
    z = procfs.parse_zoneinfo(text)[(0, "Normal")]
    assert (z["free"], z["min"], z["low"], z["high"], z["managed"]) == \
        (118387, 13885, 17356, 20827, 3341897)
    assert z["protection"] == [0, 0, 0, 0]
    assert z["high"] == 20827  # the per-cpu "high: 186" does not overwrite it


def test_procdir_errors(tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        procfs.ProcDir(str(tmp_path / "nope"))
    d = procfs.ProcDir(str(tmp_path))
    assert d.read("buddyinfo") is None and d.release() is None
    (tmp_path / "uname_r").write_text("6.1.0-56-cloud-amd64\n")
    assert d.release() == "6.1.0-56-cloud-amd64"
