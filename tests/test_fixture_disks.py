"""Scenarios may ask for empty disks (``# crashext: disks=64M,48M``): each a
sparse raw file in the build directory behind its own NVMe controller, so the
guest sees /dev/nvme0n1, /dev/nvme1n1, ... in that order."""
import os

import fixturelib  # loaded by conftest


def test_disks_are_sparse_files_behind_nvme_controllers(tmp_path):
    args = fixturelib.scenario_disks({"disks": "64M, 48M"}, tmp_path)
    imgs = [tmp_path / "disk0.img", tmp_path / "disk1.img"]
    assert [os.path.getsize(p) for p in imgs] == [64 << 20, 48 << 20]
    # sparse: nothing written yet
    assert all(os.stat(p).st_blocks == 0 for p in imgs)
    assert args == ["-drive", f"file={imgs[0]},if=none,format=raw,id=disk0",
                    "-device", "nvme,drive=disk0,serial=crashext0",
                    "-drive", f"file={imgs[1]},if=none,format=raw,id=disk1",
                    "-device", "nvme,drive=disk1,serial=crashext1"]


def test_no_disks_no_arguments(tmp_path):
    assert fixturelib.scenario_disks({}, tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_the_memcg_pins_scenario_asks_for_its_two_disks():
    opts = fixturelib.scenario_options(fixturelib.find_scenario("memcg-pins"))
    assert opts["disks"] == "64M,48M"
    assert opts["helpers"] == "memcg-pins/kpagescan,memcg-pins/pinhold"
