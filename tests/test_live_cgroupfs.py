"""memcgids --sys: what cgroupfs alone tells, checked against the kernel's own files.

Two sources of truth: this machine's live /proc and /sys (counted here
independently of crashext), and the fixtures' truth/ directories, where the
guest recorded its cgroup tree, every cgroup.stat, /proc/cgroups and -- the
independent part -- which cgroups the scenario removed while still charged
(truth/removed_charged.tsv): those are the memcgs that must be dying.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import dying_removed
from crashext.errors import InputError
from crashext.sources import cgroupfs

SYS = "/sys/fs/cgroup"


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "crashext", *args], capture_output=True,
                          text=True, timeout=timeout)


# -- this machine ---------------------------------------------------------------

def _host_memory_root():
    try:
        return cgroupfs.find_memory_root(SYS)
    except InputError as exc:
        pytest.skip(f"this machine has no memory cgroup file system: {exc}")


def _proc_cgroups_memory():
    with open("/proc/cgroups") as f:
        for ln in f:
            p = ln.split()
            if p and p[0] == "memory":
                return int(p[2])
    return None


def test_sys_on_this_machine():
    found = _host_memory_root()
    rep = cgroupfs.read_cgroupfs(SYS)
    s = rep.summary
    assert s["root"] == found["root"] and s["hierarchy"] == found["hierarchy"]
    # the directories, counted here with os.walk
    dirs = sum(1 for _ in os.walk(found["root"]))
    assert s["visible"] == dirs == len(rep.cgroups)
    assert rep.cgroups[0].path == "/" and rep.cgroups[0].ino == os.stat(found["root"]).st_ino
    # every path maps to a real directory with that inode number
    for c in rep.cgroups:
        full = found["root"] if c.path == "/" else found["root"] + c.path
        assert os.stat(full).st_ino == c.ino
    num = _proc_cgroups_memory()
    assert s["num_cgroups"] == num
    assert s["id_limit"] == 65535
    if found["hierarchy"] == "v1" and num is not None:
        assert s["dying"] == max(0, num - dirs)
    else:
        with open(os.path.join(found["root"], "cgroup.stat")) as f:
            stat = dict(ln.split() for ln in f if ln.strip())
        assert s["dying"] == int(stat["nr_dying_descendants"])
    assert s["errors"] == []


def test_sys_cli_on_this_machine():
    _host_memory_root()
    p = _cli("memcgids", "--sys", SYS)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].lstrip().startswith("CGROUPFS:")
    assert "READ AT:" in p.stdout and "Traceback" not in p.stderr
    pj = _cli("memcgids", "--sys", SYS, "--json")
    data = json.loads(pj.stdout)
    assert data["summary"]["visible"] == len(data["cgroups"])


@pytest.mark.parametrize("path,expect", [
    ("/nonexistent/cgroup", "no such directory"),
    ("/etc/hostname", "not a directory"),
    ("/etc", "not a cgroup file system"),
])
def test_sys_bad_directory_one_line(path, expect):
    if not os.path.exists("/etc/hostname") and "hostname" in path:
        pytest.skip("no /etc/hostname")
    p = _cli("memcgids", "--sys", path)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], p.stderr
    assert "Traceback" not in p.stderr


def test_sys_and_a_kernel_conflict():
    p = _cli("memcgids", "--sys", SYS, "-k")
    assert p.returncode == 2 and "not both" in p.stderr


# -- a cgroupfs copy built from a fixture's truth ---------------------------------

def materialize(truth, dest):
    """A directory laid out like the guest's cgroupfs, from truth/ files:
    the tree (cgroup_tree.tsv), each cgroup.stat (v2), usage files, and
    proc/cgroups."""
    mode = truth["cgroup_mode"]
    root = dest / "cgroup"
    stats = truth["cgroup_stat"]
    for row in truth["cgroup_tree.tsv"]:
        d = root if row["path"] == "/" else root / row["path"].lstrip("/")
        d.mkdir(parents=True, exist_ok=True)
        if mode == "v2":
            if row["path"] == "/":
                (d / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
            if row["memory_current"] is not None:
                (d / "memory.current").write_text("%d\n" % row["memory_current"])
            if row["path"] in stats:
                (d / "cgroup.stat").write_text("".join(
                    "%s %d\n" % kv for kv in stats[row["path"]].items()))
        else:
            (d / "memory.usage_in_bytes").write_text("%d\n" % row["memory_current"])
            if row["kmem_usage"] is not None:
                (d / "memory.kmem.usage_in_bytes").write_text("%d\n" % row["kmem_usage"])
    proc = dest / "proc"
    (proc / "sys/kernel").mkdir(parents=True)
    (proc / "cgroups").write_text(truth.raw("proc_cgroups"))
    (proc / "sys/kernel/osrelease").write_text(truth["uname_r"] + "\n")
    return root, proc


def nearest_visible(path, visible):
    while path not in visible:
        path = path.rsplit("/", 1)[0] or "/"
    return path


@pytest.mark.vmcore
@pytest.mark.parametrize("suite,scenario", [
    ("bookworm", "memcg-churn"), ("bullseye", "memcg-churn"), ("trixie", "memcg-churn"),
    ("bookworm", "cgroup-v1"), ("trixie-backports", "memcg-churn"),
])
def test_sys_on_fixture_truth(vmcore, tmp_path, suite, scenario):
    fx = vmcore(suite, scenario)
    truth = fx.truth()
    root, proc = materialize(truth, tmp_path)
    rep = cgroupfs.read_cgroupfs(str(root), proc=str(proc))
    s = rep.summary
    tree = truth["cgroup_tree.tsv"]
    # what the scenario removed while charged and the kernel still counts dying
    removed = dying_removed(truth)
    mem = truth["proc_cgroups"].get("memory")
    assert s["hierarchy"] == truth["cgroup_mode"]
    assert sorted(c.path for c in rep.cgroups) == sorted(r["path"] for r in tree)
    assert s["release"] == truth["uname_r"]
    assert s["dying"] == len(removed)
    if mem is not None:
        assert s["num_cgroups"] == mem["num_cgroups"]
        assert s["num_cgroups_source"] == "/proc/cgroups memory num_cgroups"
        # and /proc/cgroups counts the dying ones too (nr_cgrps drops at free)
        assert mem["num_cgroups"] == s["visible"] + len(removed)
    else:
        # 7.3 (no CONFIG_MEMCG_V1) leaves memory out of /proc/cgroups; every
        # controller it lists on the v2 hierarchy (hierarchy 0) counts the
        # same cgroups, and so does visible + dying
        v2 = {c["num_cgroups"] for c in truth["proc_cgroups"].values() if c["hierarchy"] == 0}
        assert v2 == {s["num_cgroups"]} == {s["visible"] + len(removed)}
        assert s["num_cgroups_source"].startswith("memcgs (visible + dying")
    by_path = {c.path: c for c in rep.cgroups}
    for row in tree:
        c = by_path[row["path"]]
        assert c.memory_current == row["memory_current"]
        if truth["cgroup_mode"] == "v1":
            assert c.kmem_usage == row["kmem_usage"]
    if truth["cgroup_mode"] == "v2":
        visible = set(by_path)
        expect = {}
        for p in removed:
            anc = nearest_visible(p, visible)
            expect[anc] = expect.get(anc, 0) + 1
        got = {p: c.dying_here for p, c in by_path.items() if c.dying_here}
        assert got == expect
        for row in tree:
            assert by_path[row["path"]].nr_dying_descendants == row["nr_dying_descendants"]


@pytest.mark.vmcore
def test_sys_unreadable_files_one_line_each(vmcore, tmp_path):
    truth = vmcore("bookworm", "memcg-churn").truth()
    root, proc = materialize(truth, tmp_path)
    # a file that cannot be read as text (a directory in its place), and no /proc/cgroups
    (root / "kubepods" / "memory.current").unlink()
    (root / "kubepods" / "memory.current").mkdir()
    (proc / "cgroups").unlink()
    p = _cli("memcgids", "--sys", str(root), "--proc", str(proc))
    assert p.returncode == 0, p.stderr
    warn = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(warn) == 2, p.stderr
    assert any("kubepods: memory.current:" in w for w in warn)
    assert any("cgroups: no such file" in w for w in warn)
    # what could be read is still there: the dying count comes from cgroup.stat
    assert "%d dying" % len(truth["removed_charged.tsv"]) in p.stdout
    # garbage in /proc/cgroups: one line, exit 2
    (proc / "cgroups").write_text("#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory x y\n")
    p = _cli("memcgids", "--sys", str(root), "--proc", str(proc))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "line 2" in p.stderr


def test_vanishing_directory_is_counted_not_an_error(tmp_path, monkeypatch):
    root = tmp_path / "cg"
    (root / "a" / "b").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("memory\n")
    real = cgroupfs.read_dir

    def racing(r, rel, hierarchy, **kw):
        if rel == "/a":  # removed between listing its parent and reading it
            import shutil
            shutil.rmtree(root / "a")
        return real(r, rel, hierarchy, **kw)

    monkeypatch.setattr(cgroupfs, "read_dir", racing)
    rep = cgroupfs.read_cgroupfs(str(root), proc=None)
    assert [c.path for c in rep.cgroups] == ["/"]
    assert rep.summary["vanished"] == 1
