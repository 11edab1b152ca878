"""crashext exporter without servers: its text against the kernel's own files,
the kernel log followed through rotation and truncation, bad input.

The end-to-end tests with a real Prometheus server, node_exporter and
promtool are in test_exporter_prometheus.py.
"""

import collections
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exporterlib import (_key, compare, expected_from_truth, expected_watermark_ok, parse_text,
                         require_client, saved_tree)

require_client()

from crashext.exporter import logwatch  # noqa: E402
from crashext.sources import kmsg  # noqa: E402

LOGS = Path(__file__).resolve().parent / "data" / "logs"


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "crashext", "exporter", *args],
                          capture_output=True, text=True, timeout=timeout)


def _once(*args):
    p = _cli("--once", *args)
    assert p.returncode == 0, p.stderr
    return parse_text(p.stdout), p


# -- saved trees: every number is the guest's own --------------------------------------

@pytest.mark.vmcore
@pytest.mark.parametrize("suite,scenario", [
    ("bookworm", "memcg-churn"), ("bookworm", "fragmented"), ("bullseye", "memcg-churn"),
    ("trixie", "memcg-churn"), ("bookworm", "cgroup-v1"), ("trixie-backports", "memcg-churn"),
    ("trixie-backports", "fragmented"),
])
def test_saved_tree_equals_guest_files(vmcore, tmp_path, suite, scenario):
    truth = vmcore(suite, scenario).truth()
    root, proc = saved_tree(truth, tmp_path)
    got, p = _once("--proc", str(proc), "--sys", str(root))
    compare(got, expected_from_truth(truth))
    assert p.stderr == ""
    for src in ("cgroupfs", "buddy", "vmstat"):
        assert got[_key("crashext_exporter_source_up", source=src)] == 1
        assert got[_key("crashext_exporter_scrape_errors_total", source=src)] == 0
    info = [k for k in got if k[0] == "crashext_kernel_info"]
    assert dict(info[0][1])["release"] == truth["uname_r"]


@pytest.mark.vmcore
@pytest.mark.parametrize("suite,scenario", [
    ("bookworm", "memcg-churn"), ("bookworm", "fragmented"), ("bullseye", "memcg-churn"),
    ("trixie", "memcg-churn"), ("trixie-backports", "memcg-churn"), ("trixie-backports", "fragmented"),
])
def test_watermark_verdicts_follow_the_kernel_rule(vmcore, tmp_path, suite, scenario):
    """5.10, 6.1, 6.12 and 7.3: the verdict per GFP class and order, recomputed here
    from zoneinfo and pagetypeinfo by __zone_watermark_ok()."""
    truth = vmcore(suite, scenario).truth()
    root, proc = saved_tree(truth, tmp_path)
    got, _ = _once("--proc", str(proc), "--sys", str(root))
    exp = expected_watermark_ok(truth)
    assert {k: got[_key("crashext_watermark_ok", gfp=k[0], order=k[1])] for k in exp} == exp
    if scenario == "fragmented":
        assert 0 in exp.values()  # the scenario fragments memory: some order must fail


# -- the kernel log ----------------------------------------------------------------------

_ALLOC = re.compile(r"(\S+): page allocation failure[.:] order:(\d+)")
# one kill is one "Killed process" line; kernels before 5.x announce it first
# with "Out of memory: Kill process ... or sacrifice child" (not a second kill)
_KILLED = re.compile(r"Killed process \d+ \(([^)]*)\)")
# the OOM header: "<task> invoked oom-killer: gfp_mask=...", 2.6.16's without the task
_OOM = re.compile(r"oom-killer: gfp_mask=")

LOG_FILES = sorted(p.name for p in LOGS.glob("*.log")) + ["rhel7-3.10.0-693.2.2-idr-bug.dmesg"]


def _raw_counts(text):
    alloc = collections.Counter((m.group(2), m.group(1)) for m in _ALLOC.finditer(text))
    # a kill counts as part of its OOM report: a "Killed process" line with no
    # "invoked oom-killer" header before it (a quoted tail of a report, as in
    # some public excerpts here) is not an OOM report the exporter saw
    first_oom = _OOM.search(text)
    kills = collections.Counter(m.group(1) for m in _KILLED.finditer(text)
                                if first_oom and m.start() > first_oom.start())
    return alloc, kills, len(_OOM.findall(text))


def _watch_counts(path):
    counts = logwatch.LogCounts()
    logwatch.LogWatcher(logwatch.FileSource(str(path), counts), counts).read_once()
    return counts.snapshot()


@pytest.mark.parametrize("name", LOG_FILES)
def test_log_counts_equal_the_log(name):
    text = (LOGS / name).read_text(errors="replace")
    alloc, kills, ooms = _raw_counts(text)
    snap = _watch_counts(LOGS / name)
    page = collections.Counter()
    for (kind, order, comm), n in snap["alloc"].items():
        if kind == "page":
            page[(order, comm)] += n
    assert page == alloc
    assert sum(snap["oom_invoked"].values()) == ooms
    got_kills = collections.Counter()
    for (comm, _scope), n in snap["oom_killed"].items():
        got_kills[comm] += n
    assert got_kills == kills


def _follow(path, counts):
    w = logwatch.LogWatcher(logwatch.FileSource(str(path), counts), counts,
                            poll_seconds=0.05, flush_seconds=0.2)
    w.start()
    return w


def _until(pred, timeout=20):
    import time
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _orders(counts):
    c = collections.Counter()
    for (kind, order, _comm), n in counts.snapshot()["alloc"].items():
        c[order] += n
    return c


def test_log_followed_through_append_rotation_and_truncation(tmp_path):
    seed = (LOGS / "rhel7-3.10.0-693.2.2-idr-bug.dmesg").read_text(errors="replace")
    wb = (LOGS / "writeboost-3.18.log").read_text(errors="replace")
    co = (LOGS / "coreos-4.9-gfp-atomic.log").read_text(errors="replace")
    want_seed = collections.Counter(m.group(2) for m in _ALLOC.finditer(seed))
    want_wb = collections.Counter(m.group(2) for m in _ALLOC.finditer(wb))
    want_co = collections.Counter(m.group(2) for m in _ALLOC.finditer(co))
    assert want_seed and want_wb and want_co
    log = tmp_path / "kern.log"
    log.write_text(seed)
    counts = logwatch.LogCounts()
    w = _follow(log, counts)
    try:
        # the last failure of the file is counted although no line follows it
        assert _until(lambda: _orders(counts) == want_seed), _orders(counts)
        with open(log, "a") as f:  # appended, in two writes cut mid-line
            f.write(wb[:len(wb) // 2])
            f.flush()
            f.write(wb[len(wb) // 2:])
        assert _until(lambda: _orders(counts) == want_seed + want_wb), _orders(counts)
        os.rename(log, tmp_path / "kern.log.1")  # logrotate: a new file under the name
        log.write_text(co)
        assert _until(lambda: _orders(counts) == want_seed + want_wb + want_co)
        assert counts.snapshot()["events"]["rotated"] == 1
        log.write_text("")  # copytruncate
        assert _until(lambda: counts.snapshot()["events"]["truncated"] == 1)
        log.write_text(wb)
        assert _until(lambda: _orders(counts) == want_seed + want_wb + want_wb + want_co)
        assert w.problem is None
    finally:
        w.stop()


def test_log_missing_then_created(tmp_path):
    log = tmp_path / "later.log"
    counts = logwatch.LogCounts()
    w = _follow(log, counts)
    try:
        assert _until(lambda: w.problem is not None and "no such file" in w.problem)
        shutil.copy(LOGS / "writeboost-3.18.log", log)
        want = collections.Counter(m.group(2) for m in _ALLOC.finditer(log.read_text()))
        assert _until(lambda: _orders(counts) == want)
        assert w.problem is None
    finally:
        w.stop()


def test_kmsg_record_format():
    # Documentation/ABI/testing/dev-kmsg: "prio,seq,usec,flags;text\n" + " KEY=value" lines
    ln = logwatch.parse_kmsg_record(
        b"4,1234,5678901234,-;docker-runc: page allocation failure: order:6, mode:0x10c0d0\n"
        b" SUBSYSTEM=cpu\n", 1)
    assert ln.ts == 5678.901234 and ln.text.startswith("docker-runc: page allocation failure")
    recs = list(kmsg.extract([ln]))
    assert recs[0].order == 6 and recs[0].comm == "docker-runc"
    assert logwatch.parse_kmsg_record(b"6,1,2,-;tab\\x09here\n", 1).text == "tab\there"
    # user space writes to /dev/kmsg too (facility 1): not a kernel message
    assert logwatch.parse_kmsg_record(b"14,5,6,-;systemd[1]: started\n", 1) is None
    assert logwatch.parse_kmsg_record(b"garbage", 1) is None


def test_this_hosts_kmsg_is_read():
    if not os.access("/dev/kmsg", os.R_OK):
        pytest.skip("/dev/kmsg is not readable here")
    counts = logwatch.LogCounts()
    src = logwatch.KmsgSource(counts)
    lines = src.poll()
    src.close()
    assert src.problem is None
    # every record of the ring buffer is there: compare with dmesg's own count
    p = subprocess.run(["dmesg", "--kernel", "--raw"], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("dmesg cannot read the ring buffer here")
    n = len([ln for ln in p.stdout.splitlines() if ln.startswith("<")])
    assert abs(len(lines) - n) <= 5  # new messages may arrive between the two reads


def test_process_labels_are_bounded():
    counts = logwatch.LogCounts(top=5)
    for i in range(50):
        counts.add(kmsg.AllocFailure(kind="page", comm=f"proc{i}", order=i % 11, mode=0,
                                     mode_names=None))
    snap = counts.snapshot()
    comms = {k[2] for k in snap["alloc"]}
    assert comms == {f"proc{i}" for i in range(5)} | {logwatch.OTHER}
    assert sum(snap["alloc"].values()) == 50  # nothing is dropped, only grouped


# -- cardinality at 20,000 memcgs -----------------------------------------------------------

def test_memcg_labels_bounded_on_a_wide_tree(tmp_path):
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("memory\n")
    (root / "cgroup.stat").write_text("nr_descendants 400\nnr_dying_descendants 300\n")
    for i in range(200):
        d = root / f"p{i}"
        (d / "c").mkdir(parents=True)
        (d / "cgroup.stat").write_text(f"nr_descendants 1\nnr_dying_descendants {i % 3}\n")
        (d / "c" / "cgroup.stat").write_text("nr_descendants 0\nnr_dying_descendants 0\n")
    got, _ = _once("--sys", str(root), "--top", "7", "--no-log")
    parents = {dict(k[1])["parent"] for k in got if k[0] == "crashext_memcg_parent_cgroups"}
    assert len(parents) == 8 and "_other" in parents
    # the sums over parents are the whole tree's: nothing lost in "_other"
    online = sum(v for k, v in got.items() if k[0] == "crashext_memcg_parent_cgroups"
                 and dict(k[1])["state"] == "online")
    dying = sum(v for k, v in got.items() if k[0] == "crashext_memcg_parent_cgroups"
                and dict(k[1])["state"] == "dying")
    assert online == 400 and dying == 300
    assert got[_key("crashext_memcg_cgroups", state="dying")] == 300
    # the parents kept are those with the most dying memcgs: the root (300 dying in
    # all, 199 of them under its children) and children with 2 each
    assert got[_key("crashext_memcg_parent_cgroups", parent="/", state="dying")] == 101
    kept = parents - {"_other", "/"}
    assert len(kept) == 6 and all(int(p[2:]) % 3 == 2 for p in kept), kept


# -- bad input: the scrape answers with what it could read ------------------------------------

@pytest.mark.vmcore
def test_missing_and_malformed_files_count_errors(vmcore, tmp_path):
    truth = vmcore("bookworm", "memcg-churn").truth()
    root, proc = saved_tree(truth, tmp_path)
    exp = expected_from_truth(truth)
    (proc / "zoneinfo").unlink()
    with open(proc / "buddyinfo", "a") as f:
        f.write("Node 0, zone   Normal  garbage\n")
    (proc / "vmstat").unlink()
    (root / "kubepods" / "memory.current").unlink()
    os.symlink("memory.current", root / "kubepods" / "memory.current")  # ELOOP: unreadable
    got, p = _once("--proc", str(proc), "--sys", str(root))
    assert got[_key("crashext_exporter_source_up", source="buddy")] == 0
    assert got[_key("crashext_exporter_source_up", source="vmstat")] == 0
    assert got[_key("crashext_exporter_source_up", source="cgroupfs")] == 1
    for src in ("buddy", "vmstat", "cgroupfs"):
        assert got[_key("crashext_exporter_scrape_errors_total", source=src)] == 1
    # the memcg numbers are still the guest's
    compare(got, {k: v for k, v in exp.items() if k[0].startswith("crashext_memcg_")})
    assert not [k for k in got if k[0] == "crashext_buddy_free_blocks"]
    warn = p.stderr.strip().splitlines()
    assert len(warn) == 3 and all(w.startswith("crashext: warning: ") for w in warn), warn
    bad_line = len(truth["buddyinfo"]) + 1
    assert any(f"buddyinfo: line {bad_line} is not in the expected format" in w for w in warn)
    assert any("kubepods: memory.current:" in w for w in warn)
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("args,expect", [
    (["--proc", "/nonexistent"], "not a directory"),
    (["--listen", "127.0.0.1:99999"], "port 1..65535"),
    (["--once", "--textfile", "/tmp/x.prom"], "choose one of"),
    (["--interval", "5", "--once"], "--interval goes with --textfile"),
    (["--top", "0", "--once"], "--top 0"),
    (["-c", "/etc/hostname", "-s", "/etc/hostname", "--once"], "a vmcore does not change"),
    (["--log", "x", "--no-log", "--once"], "contradict"),
    (["--cgroupfs-interval", "-1", "--once"], "must be 0 or more"),
])
def test_bad_options_one_line(args, expect):
    p = _cli(*args)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], p.stderr


def test_port_in_use_one_line():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        p = _cli("--listen", f"127.0.0.1:{port}", "--proc", "/proc", "--no-log", timeout=60)
    assert p.returncode == 2 and "cannot listen" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_textfile_written_atomically(tmp_path):
    out = tmp_path / "crashext.prom"
    p = _cli("--textfile", str(out), "--proc", "/proc", "--sys", "/sys/fs/cgroup", "--no-log")
    assert p.returncode == 0, p.stderr
    got = parse_text(out.read_text())
    assert got[_key("crashext_memcg_ids_limit")] == 65535
    assert [x.name for x in tmp_path.iterdir()] == ["crashext.prom"]  # no temp file left
    p = _cli("--textfile", str(tmp_path / "nodir" / "x.prom"), "--proc", "/proc", "--no-log")
    assert p.returncode == 2 and "cannot write" in p.stderr


def test_not_a_crash_command():
    from crashext.crash_pack import crash_commands
    from crashext.commands import COMMAND_NAMES
    assert "exporter" in COMMAND_NAMES and "exporter" not in crash_commands()


def test_deploy_examples_use_real_options():
    """The DaemonSet's and the systemd unit's command lines are ones the exporter takes,
    and the DaemonSet mounts every path it names."""
    import shlex

    import yaml

    from crashext.cli import build_parser
    root = Path(__file__).resolve().parent.parent / "deploy"
    ds = yaml.safe_load((root / "daemonset.yaml").read_text())
    pod = ds["spec"]["template"]
    c = pod["spec"]["containers"][0]
    args = build_parser().parse_args(c["args"])
    assert args.command == "exporter"
    port = c["ports"][0]["containerPort"]
    assert args.listen == f":{port}" and pod["metadata"]["annotations"]["prometheus.io/port"] \
        == str(port)
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {args.proc, args.sys, args.log} <= mounts
    unit = (root / "crashext-exporter.service").read_text()
    line = next(ln for ln in unit.splitlines() if ln.startswith("ExecStart="))
    argv = shlex.split(line[len("ExecStart="):])
    assert argv[0].endswith("/crashext")
    assert build_parser().parse_args(argv[1:]).command == "exporter"


def test_http_server_with_background_cgroupfs_walk(tmp_path):
    """Served over HTTP; with --cgroupfs-interval the walk runs in the background
    and a cgroup created meanwhile shows up within an interval or two."""
    import time

    from exporterlib import exporter_cmd, free_port, http_get, start, stop, wait_http
    root = tmp_path / "cg"
    (root / "a").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("memory\n")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    p = start(exporter_cmd(port, "--sys", str(root), "--no-log", "--cgroupfs-interval", "0.3"),
              tmp_path / "exporter.log", env=env)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_http(url, p)
        online = _key("crashext_memcg_cgroups", state="online")
        assert parse_text(http_get(url))[online] == 2  # / and /a
        (root / "a" / "b").mkdir()
        t0 = time.monotonic()
        while parse_text(http_get(url))[online] != 3:
            assert time.monotonic() - t0 < 10, "the new cgroup never showed up"
            time.sleep(0.1)
    finally:
        stop(p)
    assert p.returncode == 0  # SIGTERM ends it cleanly
    assert "serving http://127.0.0.1:%d/metrics" % port in (tmp_path / "exporter.log").read_text()


@pytest.mark.parametrize("release", ["5.10.0-30-amd64", "6.12.9-amd64"])
def test_gfp_atomic_may_take_a_highatomic_block(release):
    """A zone whose only order-3 block sits on the HighAtomic list: GFP_ATOMIC
    may take it (ALLOC_HARDER before v6.3; ALLOC_HIGHATOMIC, which v6.3+
    gfp_to_alloc_flags() gives non-blocking requests of order > 0), GFP_KERNEL
    may not (mm/page_alloc.c __zone_watermark_ok)."""
    from crashext.analysis import buddy
    from crashext.analysis.watermark import ZoneState, rule_for_release
    from crashext.exporter import families
    nr = [5000, 100, 10, 1] + [0] * 7
    by_mt = {"MIGRATE_UNMOVABLE": [2000, 50, 10, 0] + [0] * 7,
             "MIGRATE_MOVABLE": [3000, 50, 0, 0] + [0] * 7,
             "MIGRATE_RECLAIMABLE": [0] * 11,
             "MIGRATE_HIGHATOMIC": [0, 0, 0, 1] + [0] * 7}
    st = ZoneState(node=0, name="Normal", free_pages=5248, min=1000, low=1250, high=1500,
                   lowmem_reserve=[0, 0, 0, 0], nr_free=nr, free_by_mt=by_mt, index=2)
    rep = buddy.FragReport(source="test", release=release, rule=rule_for_release(release),
                           orders=11, page_size=4096, migratetypes=list(by_mt),
                           zones=[buddy.ZoneInfo(state=st)], zone_types=[])
    fams = {f.name: f for f in families.frag_families(rep)}
    got = {(s.labels["gfp"], s.labels["order"]): s.value
           for s in fams["crashext_watermark_ok"].samples}
    assert got[("GFP_KERNEL", "3")] == 0 and got[("GFP_ATOMIC", "3")] == 1
    assert got[("GFP_KERNEL", "2")] == 1 and got[("GFP_KERNEL", "4")] == 0


def test_unreadable_log_is_down_not_quiet(tmp_path):
    """A log that cannot be read gives no failure counts at all (zeros would
    claim a quiet log), a source down and one warning."""
    got, p = _once("--proc", "/proc", "--log", str(tmp_path / "missing.log"))
    assert got[_key("crashext_exporter_source_up", source="log")] == 0
    assert got[_key("crashext_exporter_scrape_errors_total", source="log")] == 1
    assert not [k for k in got if k[0] == "crashext_allocation_failures_total"]
    assert not [k for k in got if k[0] == "crashext_log_lines_total"]
    assert "missing.log: no such file" in p.stderr
    gz = tmp_path / "kern.log.gz"
    import gzip
    with gzip.open(gz, "wt") as f:
        f.write((LOGS / "writeboost-3.18.log").read_text())
    got, p = _once("--proc", "/proc", "--log", str(gz))
    assert got[_key("crashext_exporter_source_up", source="log")] == 0
    assert "compressed" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_without_prometheus_client_one_line():
    code = ("import sys; sys.modules['prometheus_client'] = None; from crashext.cli import main; "
            "sys.exit(main(['exporter', '--once', '--proc', '/proc', '--no-log']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'crashext[exporter]'" in lines[0], p.stderr


def test_textfile_rewritten_every_interval(tmp_path):
    import time

    from exporterlib import start, stop
    out = tmp_path / "crashext.prom"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    p = start([sys.executable, "-m", "crashext", "exporter", "--textfile", str(out),
               "--interval", "0.2", "--proc", "/proc", "--no-log"], tmp_path / "log", env=env)
    try:
        scrapes = _key("crashext_exporter_scrapes_total")
        t0 = time.monotonic()
        while not (out.exists() and parse_text(out.read_text()).get(scrapes, 0) >= 3):
            assert time.monotonic() - t0 < 20, "the file was not rewritten"
            time.sleep(0.1)
    finally:
        stop(p)
    assert p.returncode == 0
    assert sorted(x.name for x in tmp_path.iterdir()) == ["crashext.prom", "log"]
