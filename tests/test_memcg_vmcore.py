"""memcgids on real dumps (tests/vmcore fixtures, built on demand).

Every expectation comes from what the guest kernel itself reported just
before the dump (truth/: the cgroup tree with inode numbers, the paths
removed while charged, cgroup.stat) or from crash reading the same dump.
"""

import re
import shutil
import subprocess

import pytest

pytest.importorskip("drgn")

from crashext.analysis.memcg import memcg_report  # noqa: E402
from crashext.kernel import drgn_backend  # noqa: E402

CHURN = [("bookworm", "memcg-churn"), ("bullseye", "memcg-churn"), ("trixie", "memcg-churn"),
         ("trixie-backports", "memcg-churn")]


def _open(fx):
    return drgn_backend.open_core(str(fx.vmcore), str(fx.vmlinux))


def _expected_paths(truth):
    return ({r["path"] for r in truth["cgroup_tree.tsv"]}
            | {r["path"] for r in truth["removed_charged.tsv"]})


def _check_dying_against_cgroup_stat(truth, memcgs):
    """The dying memcgs are among those the guest removed, and under every
    live cgroup there are as many as its cgroup.stat nr_dying_descendants
    says: the kernel's own count per cgroup (6 at the root on 5.10-6.12,
    none on 7.3, see tests/test_fixtures_truth.py)."""
    dying = [m.path for m in memcgs if not m.online]
    removed = {r["path"] for r in truth["removed_charged.tsv"]} | \
        {r["path"] for r in truth["removed_clean.tsv"]}
    assert set(dying) <= removed
    for row in truth["cgroup_tree.tsv"]:
        under = [p for p in dying if row["path"] == "/" or p.startswith(row["path"] + "/")]
        assert len(under) == row["nr_dying_descendants"], row["path"]
    return set(dying)


def _nearest_online_ancestor(by_path, path):
    p = path
    while p != "/":
        p = p.rsplit("/", 1)[0] or "/"
        m = by_path.get(p)
        if m is not None and m.online:
            return m
    return by_path["/"]


@pytest.mark.vmcore
@pytest.mark.parametrize("suite,scenario", CHURN)
def test_churn_paths_states_and_ids_match_the_guest(vmcore, suite, scenario):
    fx = vmcore(suite, scenario)
    truth = fx.truth()
    r = memcg_report(_open(fx))
    by_path = {m.path: m for m in r.memcgs}
    assert len(by_path) == len(r.memcgs), "two memcgs with the same path"
    # the tree the guest saw online, plus the dying memcgs the kernel counts
    assert {m.path for m in r.memcgs if m.online} == {row["path"] for row in truth["cgroup_tree.tsv"]}
    dying = _check_dying_against_cgroup_stat(truth, r.memcgs)
    # the root's cgroup.stat counts the dying descendants
    assert r.summary["dying"] == truth["cgroup_stat"]["/"]["nr_dying_descendants"] == len(dying)
    # cgroup ids are the inode numbers user space saw
    for row in list(truth["cgroup_tree.tsv"]) + [row for row in truth["removed_charged.tsv"]
                                                if row["path"] in dying]:
        assert by_path[row["path"]].cgroup_id == row["ino"], row["path"]
    # usage: memory.current (bytes) of online memcgs, read a moment before the dump
    page = 4096
    for row in truth["cgroup_tree.tsv"]:
        if row["path"] != "/" and row["memory_current"] is not None:
            assert by_path[row["path"]].usage_pages * page == row["memory_current"], row["path"]
    assert r.summary["flagged"] == 0, [(m.path, m.anomalies) for m in r.memcgs if m.anomalies]
    assert r.summary["kmem_enabled"] is True


@pytest.mark.vmcore
@pytest.mark.parametrize("suite,scenario", CHURN)
def test_churn_kmemcg_ids_follow_the_kernel_rules(vmcore, suite, scenario):
    """Root -1; online memcgs own distinct ids; dying ones carry the id of their
    nearest online ancestor (memcg_offline_kmem reparents kmemcg_id over all
    descendants: mm/memcontrol.c v5.10 and v6.1)."""
    fx = vmcore(suite, scenario)
    r = memcg_report(_open(fx))
    by_path = {m.path: m for m in r.memcgs}
    assert by_path["/"].kmemcg_id == -1
    online = [m for m in r.memcgs if m.online and m.path != "/"]
    ids = [m.kmemcg_id for m in online]
    assert all(i >= 0 for i in ids) and len(set(ids)) == len(ids)
    for m in r.memcgs:
        if not m.online:
            assert m.kmemcg_id == _nearest_online_ancestor(by_path, m.path).kmemcg_id, m.path
    if suite != "bullseye":  # v6.1+: memcg_online_kmem uses the memcg id itself
        assert all(m.kmemcg_id == m.memcg_id for m in online)


def _crash_ids(fx, addrs):
    """crash's own reading of struct mem_cgroup.id,kmemcg_id at each address."""
    cmds = "".join(f"struct mem_cgroup.id,kmemcg_id {a:x}\n" for a in addrs) + "quit\n"
    p = subprocess.run(["crash", "-s", str(fx.vmlinux), str(fx.vmcore)], input=cmds,
                       text=True, capture_output=True, timeout=600)
    out = {}
    blocks = re.split(r"\n(?=\s*id = \{)", p.stdout)
    for a, blk in zip(addrs, [b for b in blocks if "kmemcg_id" in b]):
        mid = re.search(r"id = \{\s*id = (-?\d+)", blk)
        kid = re.search(r"kmemcg_id = (-?\d+)", blk)
        out[a] = (int(mid.group(1)) if mid else None, int(kid.group(1)) if kid else None)
    return out, p


@pytest.mark.vmcore
@pytest.mark.skipif(shutil.which("crash") is None, reason="crash not installed")
@pytest.mark.parametrize("suite", ["bookworm", "bullseye"])
def test_ids_equal_what_crash_prints(vmcore, suite):
    fx = vmcore(suite, "memcg-churn")
    r = memcg_report(_open(fx))
    addrs = [m.address for m in r.memcgs]
    got, p = _crash_ids(fx, addrs)
    assert len(got) == len(addrs), p.stderr[-2000:]
    for m in r.memcgs:
        assert got[m.address] == (m.memcg_id, m.kmemcg_id), m.path


@pytest.mark.vmcore
@pytest.mark.parametrize("suite", ["bookworm", "bullseye"])
def test_nokmem_every_id_is_minus_one_and_nothing_flagged(vmcore, suite):
    fx = vmcore(suite, "nokmem")
    r = memcg_report(_open(fx))
    assert r.memcgs and all(m.kmemcg_id == -1 for m in r.memcgs)
    assert r.summary["kmem_enabled"] is False
    assert "disabled" in r.summary["kmem_mode"]
    assert r.summary["flagged"] == 0
    assert {m.path for m in r.memcgs} == _expected_paths(fx.truth())


@pytest.mark.vmcore
@pytest.mark.parametrize("suite", ["bookworm", "bullseye"])
def test_cgroup_v1_tree(vmcore, suite):
    fx = vmcore(suite, "cgroup-v1")
    truth = fx.truth()
    r = memcg_report(_open(fx))
    by_path = {m.path: m for m in r.memcgs}
    assert set(by_path) == _expected_paths(truth)
    assert {p for p, m in by_path.items() if not m.online} == \
        {row["path"] for row in truth["removed_charged.tsv"]}
    for row in truth["cgroup_tree.tsv"]:
        assert by_path[row["path"]].cgroup_id == row["ino"], row["path"]
        if row["path"] != "/" and row["memory_current"] is not None:
            # memory.usage_in_bytes on v1
            assert by_path[row["path"]].usage_pages * 4096 == row["memory_current"], row["path"]
    assert r.summary["flagged"] == 0, [(m.path, m.anomalies) for m in r.memcgs if m.anomalies]


def _memcgids_json(fx, *extra):
    import contextlib
    import io
    import json
    from crashext import cli
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main(["memcgids", "-c", str(fx.vmcore), "-s", str(fx.vmlinux), "--json", *extra])
    assert rc == 0
    return json.loads(out.getvalue())


@pytest.mark.vmcore
@pytest.mark.parametrize("suite,scenario", CHURN + [("bookworm", "nokmem")])
def test_memcgids_streamed_from_a_temporary_file_equals_the_report(vmcore, suite, scenario):
    """The command keeps its rows in a temporary file, not in memory, and
    reads them back to write them: every row, its order and the summary
    equal the report kept in memory (itself checked against the guest
    above), with --dying and --flagged too; after the walk no row is left
    in memory."""
    import gc
    from crashext.analysis.memcg import Memcg, memcg_scan
    fx = vmcore(suite, scenario)
    want = memcg_report(_open(fx)).to_json()
    got = _memcgids_json(fx)
    assert got["summary"] == want["summary"]
    assert got["memcgs"] == want["memcgs"]
    dying = _memcgids_json(fx, "--dying")["memcgs"]
    assert dying == [m for m in want["memcgs"] if m["state"] == "dying"]
    assert len(dying) == fx.truth()["cgroup_stat"]["/"]["nr_dying_descendants"]
    flagged = _memcgids_json(fx, "--flagged")["memcgs"]
    assert flagged == [m for m in want["memcgs"] if m["anomalies"]]
    import io
    from crashext.progress import Progress
    prog = Progress("memcgids: memcgs read", stream=io.StringIO(), delay=0, interval=0)
    with memcg_scan(_open(fx), progress=prog, spool=True) as scan:
        gc.collect()
        assert sum(1 for o in gc.get_objects() if isinstance(o, Memcg)) == 0
        assert len(scan) == len(want["memcgs"])
        # "memcgs read" counts each memcg once (it counted them twice before)
        assert prog.count == len(want["memcgs"])
