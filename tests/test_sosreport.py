"""Sosreports read in place: real ones made by Debian's ``sosreport``
package on this machine, and sosreport-shaped trees made of a fixture guest's
truth files; then broken, hostile and incomplete ones.

What is asserted comes from the report's own files (read here with the tar
module and plain splitting, not with crashext), from this machine's kernel
(``os.uname``), and from what the fixture guest recorded (truth/).
"""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from crashext.errors import InputError
from crashext.sources import sosreport

DATA = Path(__file__).resolve().parent / "data" / "logs"


def _cli(*args, cwd=None, timeout=300):
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = here + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "crashext", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env)


def _one_line_error(p, expect=None):
    assert p.returncode == 2, (p.returncode, p.stdout[-500:], p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    if expect:
        assert expect in lines[0], lines[0]


# -- a real sosreport of this machine ------------------------------------------------

@pytest.fixture(scope="session")
def real_sos(tmp_path_factory):
    """``sos report --batch`` with the kernel, memory, cgroups and logs plugins,
    run on this machine once per session (about 3 s)."""
    exe = shutil.which("sos")
    if exe is None:
        msg = "Debian's sosreport is not installed (scripts/setup installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    out = tmp_path_factory.mktemp("sos")
    p = subprocess.run([exe, "report", "--batch", "--tmp-dir", str(out), "-o",
                        "kernel,memory,cgroups,logs"], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    archives = sorted(out.glob("sosreport-*.tar.*"))
    archives = [a for a in archives if not a.name.endswith((".md5", ".sha256"))]
    assert len(archives) == 1, list(out.iterdir())
    archive = archives[0]
    # the same report unpacked by tar, for the directory form (the test unpacks; crashext never)
    unpacked = out / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(unpacked)], check=True)
    (top,) = list(unpacked.iterdir())
    return {"archive": archive, "dir": top}


def _member(archive, rel):
    """A member's text, by this test's own tar read."""
    with tarfile.open(archive) as tar:
        for m in tar:
            if m.name.split("/", 1)[-1] == rel and m.isreg():
                return tar.extractfile(m).read().decode()
    return None


def _buddyinfo(text):
    out = {}
    for ln in text.splitlines():
        w = ln.replace(",", " ").split()
        if w:
            out[f"{w[1]}:{w[3]}"] = [int(x) for x in w[4:]]
    return out


@pytest.mark.parametrize("form", ["archive", "dir"])
def test_triage_real_sosreport(real_sos, form, tmp_path):
    path = str(real_sos[form])
    archive = real_sos["archive"]
    work = tmp_path / "cwd"
    work.mkdir()
    args = [path] if form == "archive" else ["--sos", path]
    p = _cli("triage", *args, "--json", cwd=str(work))
    assert p.returncode == 0, p.stderr
    assert list(work.iterdir()) == []   # nothing written where it ran
    rep = json.loads(p.stdout)
    sec = rep["sosreport"]
    # the release of the kernel that made the report: this machine's
    assert sec["release"] == os.uname().release == rep["system"]["release"]
    # when it was taken: sos's own manifest
    manifest = json.loads(_member(archive, "sos_reports/manifest.json"))
    assert sec["taken"]["start"] == manifest["start_time"]
    assert sec["taken"]["end"] == manifest["end_time"]
    # the free lists at collection: proc/buddyinfo of the report
    buddy = _buddyinfo(_member(archive, "proc/buddyinfo"))
    got = {f"{z['node']}:{z['zone']}": z["nr_free"] for z in sec["frag"]["zones"]}
    assert got == buddy
    # reclaim counters: proc/vmstat of the report
    vm = dict(ln.split() for ln in _member(archive, "proc/vmstat").splitlines())
    assert sec["reclaim"]["counters"]["compact_stall"] == int(vm["compact_stall"])
    assert sec["reclaim"]["counters"]["oom_kill"] == int(vm["oom_kill"])
    # the cgroups: /proc/cgroups of the report
    pc = {ln.split()[0]: int(ln.split()[2]) for ln in _member(archive, "proc/cgroups")
          .splitlines() if ln and not ln.startswith("#")}
    assert sec["cgroups"]["num_cgroups"] == pc["memory"]
    # /proc/meminfo and the largest slab cache, from the report's files
    mi = {ln.split(":")[0]: int(ln.split()[1]) for ln in _member(archive, "proc/meminfo")
          .splitlines() if ln.strip()}
    assert sec["meminfo"]["MemTotal"] == mi["MemTotal"]
    assert sec["meminfo"]["MemAvailable"] == mi["MemAvailable"]
    slab = _member(archive, "proc/slabinfo").splitlines()[2:]
    sizes = sorted(((int(ln.split()[2]) * int(ln.split()[3]), ln.split()[0]) for ln in slab),
                   key=lambda x: (-x[0], x[1]))
    assert [(c["bytes"], c["name"]) for c in sec["slab_top"]] == sizes[:5]
    # parts the report lacks are named (this machine has no kern.log/messages)
    for rel in ("var/log/kern.log", "var/log/messages"):
        present = _member(archive, rel) is not None
        assert (rel in sec["missing"]) == (not present)
    assert sec["log_files"] == ["sos_commands/kernel/dmesg"]
    text = _cli("triage", *args).stdout
    assert "SNAPSHOT taken " + manifest["start_time"] in text
    assert "missing from the report:" in text and "READ AT" not in text


def test_memcgids_and_frag_sos_real(real_sos):
    archive = real_sos["archive"]
    p = _cli("memcgids", "--sos", str(archive), "--json")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)["summary"]
    with tarfile.open(archive) as tar:
        names = [m.name.split("/", 1)[1] for m in tar if m.isdir() and "/" in m.name]
    root = "sys/fs/cgroup/memory" if s["hierarchy"] == "v1" else "sys/fs/cgroup"
    dirs = [n for n in names if n == root or n.startswith(root + "/")]
    assert s["visible"] == len(dirs)
    assert s["snapshot"]["start"] and s["live"] is False
    text = _cli("memcgids", "--sos", str(archive)).stdout
    assert "SNAPSHOT:" in text and "READ AT" not in text and "not read now" in text
    p = _cli("frag", "--sos", str(real_sos["dir"]), "--json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    buddy = _buddyinfo((real_sos["dir"] / "proc" / "buddyinfo").read_text())
    assert {f"{z['node']}:{z['zone']}": z["nr_free"] for z in res["zones"]} == buddy
    assert res["snapshot"]["how"].startswith("sos_reports/manifest.json")
    p = _cli("allocfail", "--sos", str(archive))
    assert p.returncode == 0 and "sos_commands/kernel/dmesg" in p.stdout
    # the lines counted are the lines of the report's kernel log, as for a
    # log file given by path (not the kernel lines left after normalising)
    dmesg = (real_sos["dir"] / "sos_commands" / "kernel" / "dmesg").read_text()
    assert f"({len(dmesg.splitlines())} lines)" in p.stdout.splitlines()[0], p.stdout


def _proc_cgroups_memory(text):
    """num_cgroups of the memory line of /proc/cgroups text, by plain splitting."""
    return next(int(ln.split()[2]) for ln in text.splitlines() if ln.split()[:1] == ["memory"])


def _without_cgroup_tree(real_sos, form, tmp_path):
    """A copy of the real report with its sys/fs/cgroup removed (sos collects
    the tree only in some versions; /proc/cgroups stays)."""
    if form == "dir":
        copy = tmp_path / "sos"
        shutil.copytree(real_sos["dir"], copy, symlinks=True)
        assert (copy / "sys" / "fs" / "cgroup").is_dir()
        shutil.rmtree(copy / "sys" / "fs" / "cgroup")
        return copy
    copy = tmp_path / "sos-nocgroup.tar.xz"
    dropped = 0
    with tarfile.open(real_sos["archive"]) as src, tarfile.open(copy, "w:xz") as dst:
        for m in src:
            if m.name.split("/", 1)[-1].startswith("sys/fs/cgroup"):
                dropped += 1
                continue
            dst.addfile(m, src.extractfile(m) if m.isreg() else None)
    assert dropped
    return copy


@pytest.mark.parametrize("form", ["archive", "dir"])
def test_memcgids_sos_without_the_cgroup_tree(real_sos, form, tmp_path):
    """memcgids --sos on a real report without sys/fs/cgroup: the memory
    controller's count from its proc/cgroups, and that per-cgroup detail is
    missing, instead of an error."""
    num = _proc_cgroups_memory(_member(real_sos["archive"], "proc/cgroups"))
    path = str(_without_cgroup_tree(real_sos, form, tmp_path))
    p = _cli("memcgids", "--sos", path, "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    s = data["summary"]
    assert s["num_cgroups"] == num and data["cgroups"] == []
    assert s["visible"] is None and s["dying"] is None
    assert any("per-cgroup detail is missing" in e for e in s["errors"])
    p = _cli("memcgids", "--sos", path)
    assert p.returncode == 0, p.stderr
    first = p.stdout.splitlines()[0]
    assert "per-cgroup detail is missing" in first and f"num_cgroups {num} of the 65535" in first
    # and triage's sosreport section says the same
    sec = json.loads(_cli("triage", "--sos", path, "--json").stdout)["sosreport"]
    assert sec["cgroups"]["num_cgroups"] == num and "cgroups" not in sec["errors"]


def test_exporter_proc_alone_reads_proc_cgroups(real_sos):
    """exporter --proc DIR without --sys: /proc/cgroups (which its help says
    it reads) gives the memcg ids in use."""
    from exporterlib import _key, parse_text, require_client
    require_client()
    proc = real_sos["dir"] / "proc"
    num = _proc_cgroups_memory((proc / "cgroups").read_text())
    p = _cli("exporter", "--once", "--proc", str(proc))
    assert p.returncode == 0, p.stderr
    got = parse_text(p.stdout)
    assert got[_key("crashext_memcg_ids_used")] == num
    assert got[_key("crashext_exporter_source_up", source="cgroups")] == 1


def test_allocfail_sos_counts_the_log_lines_read(real_sos, tmp_path):
    """A report whose kernel log is a syslog whose rsyslog wrote a Mem-Info
    block as one line with #012 separators (a real excerpt in place of its
    dmesg): the count is of the lines read, the same as for the file given
    by path, not of the lines normalising splits them into."""
    import shutil
    copy = tmp_path / "sos"
    shutil.copytree(real_sos["dir"], copy, symlinks=True)
    log = Path(__file__).parent / "data" / "logs" / "mounts3-meminfo-012.log"
    (copy / "sos_commands" / "kernel" / "dmesg").write_bytes(log.read_bytes())
    n = len(log.read_text(errors="replace").splitlines())
    by_sos = _cli("allocfail", "--sos", str(copy)).stdout.splitlines()[0]
    by_path = _cli("allocfail", str(log)).stdout.splitlines()[0]
    assert by_sos.endswith(f"({n} lines)") and by_path.endswith(f"({n} lines)"), (by_sos, by_path)


def test_saved_sys_copy_is_a_snapshot(real_sos):
    """memcgids --sys on a saved cgroupfs copy says when it was saved, not "read now"."""
    root = real_sos["dir"] / "sys" / "fs" / "cgroup"
    p = _cli("memcgids", "--sys", str(root), "--proc", str(real_sos["dir"] / "proc"))
    assert p.returncode == 0, p.stderr
    assert "SNAPSHOT:" in p.stdout and "READ AT" not in p.stdout
    data = json.loads(_cli("memcgids", "--sys", str(root), "--proc",
                           str(real_sos["dir"] / "proc"), "--json").stdout)
    # inode numbers of a copy are not cgroup ids
    assert all(c["ino"] is None for c in data["cgroups"])
    # when it was saved: the newest of the files read (v1 usage files, v2 ones)
    names = {"memory.usage_in_bytes", "memory.kmem.usage_in_bytes", "memory.current",
             "cgroup.stat", "cgroup.events", "cgroup.controllers"}
    top = data["summary"]["root"]
    newest = max(os.stat(os.path.join(d, n)).st_mtime for d, _dirs, files in os.walk(top)
                 for n in files if n in names)
    import time
    assert data["summary"]["snapshot"]["end"] == time.strftime(
        "%Y-%m-%d %H:%M:%S UTC", time.gmtime(newest))
    # frag --proc on the saved proc/: a snapshot too, dated by its files
    proc = real_sos["dir"] / "proc"
    res = json.loads(_cli("frag", "--proc", str(proc), "--json").stdout)
    newest = max(os.stat(proc / n).st_mtime for n in ("buddyinfo", "zoneinfo", "pagetypeinfo",
                                                      "vmstat") if (proc / n).exists())
    assert res["live"] is None and res["snapshot"]["end"] == time.strftime(
        "%Y-%m-%d %H:%M:%S UTC", time.gmtime(newest))
    assert "SNAPSHOT:" in _cli("frag", "--proc", str(proc)).stdout


# -- a sosreport-shaped tree of a fixture guest's truth -----------------------------

def sos_tree(fx, dest):
    """A sosreport laid out from the guest's truth files: proc/, the kernel
    log (truth/dmesg, recorded by the guest) and uname."""
    from test_live_cgroupfs import materialize
    truth = fx.truth()
    top = dest / "sosreport-guest-2026-01-01-abcdef"
    (top / "proc").mkdir(parents=True)
    for name, rel in (("buddyinfo", "buddyinfo"), ("zoneinfo", "zoneinfo"),
                      ("pagetypeinfo", "pagetypeinfo"), ("vmstat", "vmstat"),
                      ("meminfo", "meminfo"), ("proc_cgroups", "cgroups")):
        (top / "proc" / rel).write_text(truth.raw(name))
    k = top / "sos_commands" / "kernel"
    k.mkdir(parents=True)
    (k / "uname_-a").write_text(truth.raw("uname_a"))
    (k / "dmesg").write_text(truth.raw("dmesg"))
    (top / "sos_logs").mkdir()
    cg = materialize(truth, dest / "cgsrc")
    shutil.copytree(cg[0], top / "sys" / "fs" / "cgroup")
    return top


def _pack(top, dest, mode):
    ext = {"w:xz": ".tar.xz", "w:gz": ".tar.gz"}[mode]
    path = dest / (top.name + ext)
    with tarfile.open(path, mode) as tar:
        tar.add(top, arcname=top.name)
    return path


@pytest.mark.vmcore
@pytest.mark.parametrize("form", ["dir", "w:xz", "w:gz"])
def test_triage_fixture_shaped_sosreport(vmcore, tmp_path, form):
    fx = vmcore("bookworm", "oom-showmem")
    truth = fx.truth()
    top = sos_tree(fx, tmp_path)
    path = top if form == "dir" else _pack(top, tmp_path, form)
    p = _cli("triage", str(path), "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    sec = rep["sosreport"]
    assert sec["release"] == truth["uname_r"]
    # no manifest: the time comes from the files, and says so
    assert "modification times" in sec["taken"]["how"]
    assert {f"{z['node']}:{z['zone']}": z["nr_free"] for z in sec["frag"]["zones"]} == \
        {f"{k[0]}:{k[1]}": v for k, v in truth["buddyinfo"].items()}
    zi = truth["zoneinfo"]
    for z in sec["frag"]["zones"]:
        assert z["min"] == zi[(z["node"], z["zone"])]["min"]
    assert sec["reclaim"]["counters"]["oom_kill"] == truth["vmstat"]["oom_kill"] == 2
    assert sec["cgroups"]["num_cgroups"] == truth["proc_cgroups"]["memory"]["num_cgroups"]
    assert sec["cgroups"]["visible"] == len(truth["cgroup_tree.tsv"])
    missing = set(sec["missing"])
    assert {"proc/slabinfo", "var/log/kern.log", "var/log/messages"} <= missing
    assert "proc/buddyinfo" not in missing
    mem = rep["memory"]
    assert [o["scope"] for o in mem["oom_reports"]] == ["memcg", "global"]
    assert [v["kind"] for v in mem["show_mem"]] == ["sysrq", "sysrq"]
    assert len(mem["mem_info_timeline"]) == 3
    text = _cli("triage", str(path)).stdout
    assert "invoked the OOM killer (memcg)" in text and "largest free order at each" in text


# -- broken, hostile and incomplete input ------------------------------------------

def test_truncated_archive_partial_or_one_line(real_sos, tmp_path):
    data = real_sos["archive"].read_bytes()
    # cut near the end: what was read before the cut is used, and the cut is said
    cut = tmp_path / "end-cut.tar.xz"
    cut.write_bytes(data[:len(data) - 2048])
    p = _cli("triage", str(cut), "--json")
    assert p.returncode == 0, p.stderr
    sec = json.loads(p.stdout)["sosreport"]
    assert any("truncated" in x for x in sec["problems"])
    assert sec["frag"]["zones"]           # proc/ came before the cut
    assert "truncated" in _cli("triage", str(cut)).stdout
    # cut before any sosreport part: one line saying so
    early = tmp_path / "early-cut.tar.xz"
    early.write_bytes(data[:len(data) // 20])
    _one_line_error(_cli("triage", str(early)), "truncated")


def test_corrupt_middle_partial_or_one_line(real_sos, tmp_path):
    data = bytearray(real_sos["archive"].read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4096] = os.urandom(4096)
    bad = tmp_path / "bad.tar.xz"
    bad.write_bytes(bytes(data))
    p = _cli("triage", str(bad))
    assert "Traceback" not in p.stderr
    if p.returncode == 0:
        assert "damaged or truncated" in p.stdout
    else:
        _one_line_error(p)


def test_garbage_and_non_sosreport(tmp_path):
    junk = tmp_path / "sosreport-x.tar.xz"
    junk.write_bytes(os.urandom(5000))
    _one_line_error(_cli("triage", "--sos", str(junk)), "not a readable tar archive")
    _one_line_error(_cli("triage", str(junk)), "not a sosreport directory or tar archive")
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        tar.add(DATA / "SOURCES.md", arcname="docs/SOURCES.md")
    _one_line_error(_cli("frag", "--sos", str(other)), "not a sosreport")
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    _one_line_error(_cli("memcgids", "--sos", str(empty)))
    _one_line_error(_cli("triage", str(tmp_path / "nope")), "no such file")
    _one_line_error(_cli("triage", str(DATA / "SOURCES.md")), "not a sosreport")


def _add(tar, name, data=b"", kind=tarfile.REGTYPE, link=""):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = link
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def test_escaping_members_are_ignored_and_nothing_is_written(tmp_path):
    arc = tmp_path / "sosreport-evil.tar.gz"
    with tarfile.open(arc, "w:gz") as tar:
        _add(tar, "sosreport-evil/sos_commands/kernel/uname_-a",
             b"Linux evil 6.1.0-57-cloud-amd64 #1 SMP x86_64 GNU/Linux\n")
        _add(tar, "sosreport-evil/../../escaped", b"x")
        _add(tar, "/tmp/absolute-escape", b"x")
        _add(tar, "sosreport-evil/proc/buddyinfo", kind=tarfile.SYMTYPE,
             link="../../../../etc/hostname")
        _add(tar, "sosreport-evil/proc/zoneinfo", kind=tarfile.SYMTYPE, link="/etc/hostname")
    before = set(os.listdir(tmp_path))
    s = sosreport.SosReport(str(arc))
    assert s.release() == "6.1.0-57-cloud-amd64"
    assert s.read("proc/buddyinfo") is None and s.read("proc/zoneinfo") is None
    assert sum("outside the report" in p for p in s.problems) == 4
    assert "proc/buddyinfo" in s.missing()
    work = tmp_path / "cwd"
    work.mkdir()
    p = _cli("triage", str(arc), cwd=str(work))
    assert p.returncode == 0, p.stderr
    assert "outside the report" in p.stdout
    assert list(work.iterdir()) == [] and set(os.listdir(tmp_path)) == before | {"cwd"}
    assert not (tmp_path.parent / "escaped").exists() and not Path("/tmp/absolute-escape").exists()
    # a directory report whose link points outside it
    d = tmp_path / "sosreport-dir"
    (d / "sos_commands" / "kernel").mkdir(parents=True)
    (d / "proc").mkdir()
    (d / "proc" / "buddyinfo").symlink_to("/etc/hostname")
    s = sosreport.SosReport(str(d))
    assert s.read("proc/buddyinfo") is None
    assert any("outside the report" in p for p in s.problems)


def test_huge_member_and_empty_and_binary_files(tmp_path):
    top = tmp_path / "sosreport-h"
    (top / "proc").mkdir(parents=True)
    (top / "sos_logs").mkdir()
    (top / "proc" / "zoneinfo").write_text("Node 0, zone Normal\n" * 200)
    (top / "proc" / "buddyinfo").write_text("")
    (top / "proc" / "vmstat").write_bytes(b"\x00\x01garbage" * 10)
    arc = _pack(top, tmp_path, "w:xz")
    for path in (top, arc):
        s = sosreport.SosReport(str(path), member_limit=1000)
        assert s.read("proc/zoneinfo") is None
        assert any("proc/zoneinfo" in p and "1000" in p for p in s.problems)
        assert "proc/buddyinfo (empty)" in s.missing()
        assert s.read("proc/vmstat") is None
        assert any("binary" in p for p in s.problems)
    # the commands: frag cannot work without buddyinfo (one line); triage goes on
    _one_line_error(_cli("frag", "--sos", str(arc)), "no buddyinfo")
    p = _cli("triage", str(arc), "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert "no buddyinfo" in rep["sosreport"]["errors"]["frag"]
    assert "no kernel log" in rep["errors"]["log"]


def test_rotated_logs_are_read_oldest_first(tmp_path):
    import gzip
    top = tmp_path / "sosreport-r"
    (top / "sos_commands" / "kernel").mkdir(parents=True)
    (top / "var" / "log").mkdir(parents=True)
    seed = (DATA / "rhel7-3.10.0-693.2.2-idr-bug.dmesg").read_text().splitlines()
    half = len(seed) // 2
    (top / "var" / "log" / "kern.log.2.gz").write_bytes(
        gzip.compress(("\n".join(seed[:half]) + "\n").encode()))
    (top / "var" / "log" / "kern.log.1").write_text("\n".join(seed[half:]) + "\n")
    (top / "var" / "log" / "kern.log").write_text("")
    (top / "var" / "log" / "messages").write_text("\n".join(seed) + "\n")
    (top / "sos_commands" / "kernel" / "dmesg").write_text("\n".join(seed[-5:]) + "\n")
    arc = _pack(top, tmp_path, "w:gz")
    for path in (top, arc):
        s = sosreport.SosReport(str(path))
        files, notes = s.kernel_log_sources()
        assert files == ["var/log/kern.log.2.gz", "var/log/kern.log.1", "var/log/kern.log"]
        assert any("messages" in n for n in notes) and any("dmesg" in n for n in notes)
        assert list(s.log_lines()) == seed
    # the RHEL7 idr-bug verdict through the report is the one from the log itself
    direct = json.loads(_cli("triage", "--log", str(DATA / "rhel7-3.10.0-693.2.2-idr-bug.dmesg"),
                             "--json").stdout)
    via = json.loads(_cli("triage", str(arc), "--json").stdout)
    assert via["verdict"]["headline"] == direct["verdict"]["headline"]
    assert [m["id"] for m in via["verdict"]["matches"]] == \
        [m["id"] for m in direct["verdict"]["matches"]]


def test_journal_when_there_is_no_syslog(tmp_path):
    """Without var/log files the journal sos saved is the log: the last boot,
    then this one (file names as sos 4.x's add_journal() makes them)."""
    top = tmp_path / "sosreport-j"
    (top / "sos_commands" / "kernel").mkdir(parents=True)
    (top / "sos_commands" / "logs").mkdir(parents=True)
    seed = (DATA / "rhel7-3.10.0-693.2.2-idr-bug.dmesg").read_text().splitlines()
    logs_dir = top / "sos_commands" / "logs"
    (logs_dir / "journalctl_--no-pager_--catalog_--boot_-1").write_text(
        "\n".join(seed[:40]) + "\n")
    (logs_dir / "journalctl_--no-pager_--catalog_--boot").write_text("\n".join(seed[40:]) + "\n")
    (logs_dir / "journalctl_--disk-usage").write_text("Archived and active journals take up 8M\n")
    (top / "sos_commands" / "kernel" / "dmesg").write_text("\n".join(seed[-3:]) + "\n")
    s = sosreport.SosReport(str(top))
    files, notes = s.kernel_log_sources()
    assert files == ["sos_commands/logs/journalctl_--no-pager_--catalog_--boot_-1",
                     "sos_commands/logs/journalctl_--no-pager_--catalog_--boot"]
    assert any("dmesg: not read" in n for n in notes)
    assert list(s.log_lines()) == seed
    (logs_dir / "journalctl_--no-pager").write_text("\n".join(seed) + "\n")
    assert sosreport.SosReport(str(top)).kernel_log_sources()[0] == [
        "sos_commands/logs/journalctl_--no-pager"]


def test_api_errors_are_input_errors(tmp_path):
    with pytest.raises(InputError):
        sosreport.SosReport(str(tmp_path / "missing"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="not a sosreport directory"):
        sosreport.SosReport(str(tmp_path / "plain"))
