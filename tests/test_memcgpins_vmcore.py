"""memcgpins on real dumps: what keeps each dying memcg alive, against the
kernel's own view recorded by the memcg-pins scenario (tests/vmcore).

Before removing each cgroup the guest recorded, while it was online, the
pages /proc/kpagecgroup gives its inode by kind (/proc/kpageflags: file,
shmem, anon, slab, other), memory.swap.current, and the files it wrote with
their inode numbers (truth/pins.tsv, truth/pins_files.tsv).  What the kernel
changed after the rmdir is what the rules table says: kernel pages charged
with __GFP_ACCOUNT ("other") are handed to the parent on 5.13+ and stay on
5.10; slab objects are handed over on 5.9+ (kpagecgroup shows no slab page
per cgroup there either); LRU pages stay (up to v7.0).  Nothing else
changes: the guest has no memory pressure after the removals, and syncs
before them, so no page is reclaimed or written back meanwhile.  The
cgroup that charged only slab objects, and the one cleaned before removal,
are freed: they are not in the dump at all.
"""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("drgn")

from crashext.analysis.memcgpins import memcg_pins  # noqa: E402
from crashext.analysis.memcgpins_rules import generation  # noqa: E402
from crashext.kernel import drgn_backend  # noqa: E402
from crashext.kernel import pages as pages_mod  # noqa: E402

from conftest import fixturelib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the rules' key on each suite's kernel (5.10, 6.1, 6.12, 7.x)
GENERATION = {"bullseye": "5.9", "bookworm": "5.13", "trixie": "5.13",
              "trixie-backports": "7.1"}
PINS = [(s, "memcg-pins") for s in GENERATION if s in fixturelib.SUITES]
PAGE = 4096


def _truth(fx, name):
    import truth as truthmod
    return truthmod.parse_tsv(fx.truth().raw(name))


def _open(fx):
    return drgn_backend.open_core(str(fx.vmcore), str(fx.vmlinux))


def _own(rows):
    """Each removed cgroup's own pages.  A row read after the cgroup's
    children were removed includes theirs: kpagecgroup reports a removed
    cgroup's pages under its nearest online ancestor (page_cgroup_ino()),
    and memory.swap.current is hierarchical.  So the rows of removed
    descendants are subtracted."""
    out = {}
    for r in rows:
        own = dict(r)
        for d in rows:
            if d["path"].startswith(r["path"] + "/"):
                for k in ("file", "shmem", "anon", "slab", "other", "swap_current"):
                    own[k] -= d[k]
        out[r["path"]] = own
    return out


def _expected(row, gen):
    """What should still be charged to a removed cgroup, from what the
    kernel showed just before its removal and the generation's rules."""
    return {
        "file": row["file"] if gen.pins["file"] else 0,
        "shmem": row["shmem"] if gen.pins["shmem"] else 0,
        "anon": row["anon"] if gen.pins["anon"] else 0,
        "kmem": row["other"] if gen.pins["kmem"] else 0,
        "slab": row["slab"] if gen.pins["slab"] else 0,
        "swap": row["swap_current"] // PAGE if gen.pins["swap"] else 0,
    }


def _dev(st_dev):
    """st_dev as user space sees it (new_encode_dev()) -> "major:minor"."""
    major = (st_dev & 0xFFF00) >> 8
    minor = (st_dev & 0xFF) | ((st_dev >> 12) & 0xFFF00)
    return f"{major}:{minor}"


@pytest.fixture(scope="module")
def reports(vmcore):
    got = {}

    def get(suite):
        if suite not in got:
            fx = vmcore(suite, "memcg-pins")
            got[suite] = (fx, memcg_pins(_open(fx), top=10))
        return got[suite]
    return get


@pytest.mark.vmcore
@pytest.mark.parametrize("suite,scenario", PINS)
def test_counts_per_dying_memcg_equal_the_kernels_view(reports, suite, scenario):
    fx, rep = reports(suite)
    key, gen = generation(_open(fx))
    assert key == GENERATION[suite]
    by_path = {p.memcg.path: p for p in rep.memcgs}
    rows = _truth(fx, "pins.tsv")
    own = _own(rows)
    expected = {path: _expected(r, gen) for path, r in own.items()}
    for path, exp in expected.items():
        kept_by_child = any(any(e.values()) for q, e in expected.items()
                            if q.startswith(path + "/"))
        if not any(exp.values()) and not kept_by_child:
            # nothing the rules keep: the memcg was freed (slab only; on
            # 7.1+ all but the swapped-out one), unless a writeback context
            # of its files is still being released (v5.14+ moves the inodes
            # to the parent's after the removal, in a work item)
            assert path not in by_path or by_path[path].held_by == ["writeback"], path
            continue
        p = by_path[path]
        assert p.memcg.state == "dying"
        assert p.memcg.cgroup_id == own[path]["ino"]
        got = {k: p.pages.get(k, 0) for k in ("file", "shmem", "anon", "kmem", "slab")}
        got["swap"] = p.swap
        assert got == exp, path
    removed = {r["path"] for r in rows}
    assert {p.memcg.path for p in rep.memcgs} <= removed
    # the cleaned cgroup is freed too
    assert not {r["path"] for r in _truth(fx, "removed_clean.tsv")} & set(by_path)
    # and the kernel counted as many dying descendants
    stat = fx.truth()["cgroup_stat"]
    assert rep.summary["dying"] == stat["/"]["nr_dying_descendants"] == len(rep.memcgs)


@pytest.mark.vmcore
@pytest.mark.parametrize("suite,scenario", PINS)
def test_every_reference_is_accounted_for(reports, suite, scenario):
    """The css reference count of each dying memcg (the kernel's, in atomic
    mode since the removal) equals what the counted pages, the swap id, the
    children and the writeback contexts hold: no leak here."""
    _fx, rep = reports(suite)
    for p in rep.memcgs:
        assert p.refs["total"] is not None, p.memcg.path
        assert p.refs["unexplained"] == 0, (p.memcg.path, p.refs)
        assert "refs" not in p.held_by
    by_path = {p.memcg.path: p for p in rep.memcgs}
    if "/pins/nest/a" in by_path:  # up to v7.0 its tmpfs pages keep it, and it its parent
        nest = by_path["/pins/nest"]
        assert nest.held_by == ["children"] and nest.children == 1
    # a dying memcg with swapped-out pages holds its id (one css reference)
    swap = by_path["/pins/swap"]
    assert swap.refs["swap_id"] == 1 and swap.held_by[0] in ("swap", "anon")


@pytest.mark.vmcore
@pytest.mark.parametrize("suite,scenario", PINS)
def test_files_are_named(reports, suite, scenario):
    fx, rep = reports(suite)
    by_path = {p.memcg.path: p for p in rep.memcgs}
    pins_files = generation(_open(fx))[1].pins["file"]
    for row in _truth(fx, "pins_files.tsv"):
        if row["cgroup"] not in by_path:
            continue  # the online keeper (see test_all), or freed
        if not pins_files:  # v7.1+: the files' pages went to the parent
            assert by_path[row["cgroup"]].files == []
            continue
        files = {f["path"]: f for f in by_path[row["cgroup"]].files}
        f = files[row["path"]]
        assert f["ino"] == row["ino"]
        assert f["dev"] == _dev(row["st_dev"])
        assert f["pages"] == row["pages"]
        assert f["fstype"] in ("ext4", "tmpfs")
    # the summary's files: the biggest first, the ext4 file on the NVMe disk
    # (on v7.1+ page cache no longer keeps a removed cgroup)
    if generation(_open(fx))[1].pins["file"]:
        top = rep.summary["top_files"][0]
        assert top["path"] == "/mnt/disk/ext4.bin" and top["pages"] == 512
        assert "page cache" in rep.summary["verdict"]
    else:
        assert not rep.summary["top_files"]


@pytest.mark.vmcore
@pytest.mark.parametrize("suite,scenario", PINS)
def test_all_counts_the_online_keeper(vmcore, suite, scenario):
    """--all: the online /pins/keeper, read last by the guest, and the 16
    pages it appended to the file the removed /pins/logw wrote first."""
    fx = vmcore(suite, scenario)
    rep = memcg_pins(_open(fx), all_memcgs=True, top=50)
    keeper = {p.memcg.path: p for p in rep.memcgs}["/pins/keeper"]
    row = _truth(fx, "pins_online.tsv")[0]
    assert keeper.memcg.state == "online"
    assert keeper.pages.get("file", 0) == row["file"]
    assert keeper.pages.get("shmem", 0) == row["shmem"]
    assert keeper.pages.get("anon", 0) == row["anon"]
    appended = [r for r in _truth(fx, "pins_files.tsv") if r["cgroup"] == "/pins/keeper"][0]
    log = [f for f in keeper.files if f["path"] == "/mnt/disk/shared.log"][0]
    assert log["pages"] == appended["pages"] == 16


@pytest.mark.vmcore
def test_without_numpy_the_same_answer(vmcore, monkeypatch):
    fx = vmcore("bookworm", "memcg-pins")
    with_np = memcg_pins(_open(fx)).to_json()
    monkeypatch.setattr(pages_mod, "_NP", [None])
    assert not pages_mod.have_numpy()
    without = memcg_pins(_open(fx)).to_json()
    assert without == with_np


@pytest.mark.vmcore
def test_command_json_and_table(vmcore):
    fx = vmcore("bullseye", "memcg-pins")
    env = dict(os.environ, PYTHONPATH=REPO)
    base = [sys.executable, "-m", "crashext", "memcgpins", "-c", str(fx.vmcore),
            "-s", str(fx.vmlinux)]
    js = subprocess.run(base + ["--json"], capture_output=True, text=True, env=env, timeout=600)
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    assert set(data) == {"summary", "cures", "memcgs"}
    assert set(data["memcgs"][0]) >= {"address", "path", "state", "pages", "swap", "refs",
                                       "files", "held_by", "verdict"}
    table = subprocess.run(base, capture_output=True, text=True, env=env, timeout=600)
    assert table.returncode == 0, table.stderr
    first = table.stdout.splitlines()[0]
    assert first.split(":", 1)[1].strip() == data["summary"]["verdict"]
    # 5.10 keeps kernel pages charged to a removed cgroup: the pipe's buffers
    pipe = [m for m in data["memcgs"] if m["path"] == "/pins/pipe"][0]
    assert pipe["held_by"][0] == "kmem" and "CURE KMEM" in table.stdout


@pytest.mark.slow
@pytest.mark.vmcore
def test_fifteen_thousand_dying_memcgs_each_held_by_its_tmpfs_file(vmcore):
    """memcg-many (5.10): each of 15,000 removed cgroups wrote one byte to
    /data/many/fN from inside /many/gN (tests/vmcore/guest/cgmany.c); the
    tmpfs page is all that holds it, and it accounts for its one reference."""
    fx = vmcore("bullseye", "memcg-many")
    summary = dict(line.split("=", 1) for line in
                   open(fx.truth_dir / "many_summary").read().split() if "=" in line)
    count = int(summary["count"])
    rep = memcg_pins(_open(fx), top=1)
    many = [p for p in rep.memcgs if p.memcg.path.startswith("/many/g")]
    assert len(many) == count
    for p in many:
        n = p.memcg.path[len("/many/g"):]
        assert p.pages == {"shmem": 1} and p.swap == 0, (p.memcg.path, p.pages)
        assert [f["path"] for f in p.files] == [f"/data/many/f{n}"], p.files
        assert p.held_by == ["shmem"] and p.refs["unexplained"] == 0, (p.memcg.path, p.refs)
    assert rep.summary["held_by"]["shmem"] >= count
    assert rep.summary["verdict"].startswith(f"{rep.summary['dying']:,} dying memcgs: ")
