"""Attach to a running QEMU guest over QMP (drgn ``set_qemu_qmp``) and read
its memcg tree and buddy free lists: they must equal what the guest itself
printed just before (tests/live/scenarios/live-churn.sh: the memcg-churn
tree, then /proc/buddyinfo read with shell builtins, then it idles in a
builtin read).  The harness also stops the VM's CPUs (QMP ``stop``) before
reading, so nothing moves while drgn walks.
"""

import json
import subprocess
import sys
import time

import pytest

from conftest import fixturelib, truthmod  # noqa: F401  (loads tests/vmcore modules)
from live import guest

pytestmark = pytest.mark.vmcore


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "crashext", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    kernel = fixturelib.get_kernel("bookworm")
    wd = tmp_path_factory.mktemp("live-qmp")
    initrd, sopts = guest.live_initramfs(kernel, "live-churn", wd / "initrd.gz")
    with guest.LiveGuest(wd, kernel, initrd=initrd, memory=sopts.get("memory", "512M")) as g:
        try:
            g.ready_after = g.wait_for("LIVE_READY", 600)
        except guest.GuestError as exc:
            pytest.fail(str(exc), pytrace=False)
        time.sleep(2)
        g.ctl.cmd("stop")
        yield g, kernel


def test_qmp_buddy_counts_equal_guest_buddyinfo(running):
    g, kernel = running
    truth = truthmod.parse_buddyinfo(g.blocks()["buddyinfo"])
    t0 = time.monotonic()
    p = _cli("frag", "--qemu", str(g.qmp_socket), "-s", str(kernel.vmlinux), "--json")
    secs = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    got = {(z["node"], z["zone"]): z["nr_free"] for z in data["zones"]}
    assert got == truth
    assert data["live"]["source"].startswith("QEMU guest via")
    print(f"frag over QMP: {secs:.2f} s (guest ready after {g.ready_after} s)")


def test_qmp_memcg_tree_equals_guest_cgroupfs(running):
    g, kernel = running
    blocks = g.blocks()
    tree = {ln.split("\t")[0]: int(ln.split("\t")[1])
            for ln in blocks["tree.tsv"].splitlines() if ln.strip()}
    removed = truthmod.parse_tsv(blocks["removed_charged.tsv"])
    num = truthmod.parse_proc_cgroups(blocks["proc_cgroups"])["memory"]["num_cgroups"]
    p = _cli("memcgids", "--qemu", str(g.qmp_socket), "-s", str(kernel.vmlinux), "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    online = {m["path"]: m["cgroup_id"] for m in data["memcgs"] if m["state"] == "online"}
    dying = {m["path"]: m["cgroup_id"] for m in data["memcgs"] if m["state"] == "dying"}
    # every visible cgroup (memory is enabled all the way down) is an online memcg, same inode
    assert online == tree
    # the dying ones are exactly those the scenario removed while charged
    assert dying == {r["path"]: r["ino"] for r in removed}
    # /proc/cgroups counts cgroups until they are freed: online + dying
    assert data["summary"]["total"] == num
    assert data["summary"]["walk_problem"] is None
    assert data["summary"]["live"]["source"].startswith("QEMU guest via")


def test_qmp_text_output_says_live_and_when(running):
    g, kernel = running
    p = _cli("memcgids", "--qemu", str(g.qmp_socket), "-s", str(kernel.vmlinux))
    assert p.returncode == 0, p.stderr
    first = p.stdout.splitlines()[0]
    assert first.strip().startswith("LIVE: QEMU guest via") and "read at 20" in first


def test_qmp_watch_on_the_running_guest(running):
    """The guest's CPUs run again while we watch: bounded, clean exit."""
    g, kernel = running
    g.ctl.cmd("cont")
    try:
        p = _cli("memcgids", "--qemu", str(g.qmp_socket), "-s", str(kernel.vmlinux),
                 "--watch", "0.5", "--count", "3", "--json")
        assert p.returncode == 0, p.stderr
        recs = [json.loads(ln) for ln in p.stdout.splitlines()]
        assert [r["sample"] for r in recs] == [1, 2, 3]
        assert recs[0]["values"]["dying"] == len(truthmod.parse_tsv(
            g.blocks()["removed_charged.tsv"]))
        p = _cli("frag", "--qemu", str(g.qmp_socket), "-s", str(kernel.vmlinux),
                 "--watch", "0.5", "--count", "2")
        assert p.returncode == 0, p.stderr
        assert "watching free lists of QEMU guest via" in p.stdout.splitlines()[0]
    finally:
        g.ctl.cmd("stop")


def test_qmp_bad_socket_one_line(tmp_path):
    p = _cli("frag", "--qemu", str(tmp_path / "nope.sock"), "-s", "/nonexistent/vmlinux")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "Traceback" not in p.stderr
