"""crashext exporter scraped by a real Prometheus server (Debian's prometheus),
through node_exporter's textfile collector, and its alert rules by promtool.

One Prometheus on 127.0.0.1 (temporary config and storage, a free port,
stopped at the end) scrapes every second:

- ``churn``: the exporter on the bookworm memcg-churn guest's saved /proc
  and cgroupfs, following a kernel log file;
- ``fragmented``: the exporter on the bookworm fragmented guest's files;
- ``textfile``: node_exporter's textfile collector serving what
  ``crashext exporter --textfile`` wrote from the bullseye memcg-churn guest;
- ``host``: the exporter on this machine's /proc, /sys/fs/cgroup, /dev/kmsg;
- ``broken``: the exporter on a saved tree whose files are broken while it runs.

What Prometheus stored is compared with the guests' own files
(exporterlib.expected_from_truth), the log's raw text and this machine's /proc.
"""

import collections
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import fixturelib, truthmod  # noqa: F401  (loads tests/vmcore modules)
from exporterlib import (Prometheus, _key, compare, exporter_cmd, expected_from_truth,
                         expected_watermark_ok, free_port, require, require_client,
                         saved_tree, start, stop, wait_http)

ROOT = Path(__file__).resolve().parent.parent
LOGS = Path(__file__).resolve().parent / "data" / "logs"
_ALLOC = re.compile(r"(\S+): page allocation failure[.:] order:(\d+)")


def _fixture_truth(suite, scenario):
    """The truth of an already built fixture (the vmcore factory builds it if needed)."""
    out = fixturelib.default_fixture_dir(suite, scenario)
    try:
        fx = fixturelib.build_fixture(suite, scenario, out)
    except (fixturelib.FixtureError, truthmod.TruthError) as e:
        pytest.fail(f"building fixture {suite}/{scenario} failed: {e}", pytrace=False)
    return fx.truth()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if os.environ.get("CRASHEXT_NO_FIXTURES", "") not in ("", "0"):
        pytest.skip("CRASHEXT_NO_FIXTURES=1")
    require_client()
    require("prometheus")
    node_exporter = require("prometheus-node-exporter")
    wd = tmp_path_factory.mktemp("prom")
    procs = []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    s = {"truth": {}, "dirs": {}, "wd": wd}
    jobs = {}
    try:
        for job, suite, scenario in (("churn", "bookworm", "memcg-churn"),
                                     ("fragmented", "bookworm", "fragmented"),
                                     ("broken", "bookworm", "memcg-churn")):
            truth = _fixture_truth(suite, scenario)
            root, proc = saved_tree(truth, wd / job)
            s["truth"][job], s["dirs"][job] = truth, (root, proc)
            args = ["--proc", str(proc), "--sys", str(root)]
            if job == "churn":
                log = wd / "kern.log"
                shutil.copy(LOGS / "rhel7-3.10.0-693.2.2-idr-bug.dmesg", log)
                s["log"] = log
                args += ["--log", str(log)]
            port = free_port()
            p = start(exporter_cmd(port, *args), wd / f"{job}.log", env=env)
            procs.append(p)
            wait_http(f"http://127.0.0.1:{port}/metrics", p)
            jobs[job] = port
        # this machine
        port = free_port()
        p = start(exporter_cmd(port), wd / "host.log", env=env)
        procs.append(p)
        wait_http(f"http://127.0.0.1:{port}/metrics", p)
        jobs["host"] = port
        # node_exporter's textfile collector, fed by crashext exporter --textfile
        truth = _fixture_truth("bullseye", "memcg-churn")
        root, proc = saved_tree(truth, wd / "textfile")
        s["truth"]["textfile"] = truth
        tdir = wd / "textfile-dir"
        tdir.mkdir()
        r = subprocess.run([sys.executable, "-m", "crashext", "exporter", "--textfile",
                            str(tdir / "crashext.prom"), "--proc", str(proc), "--sys", str(root)],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        port = free_port()
        p = start([node_exporter, "--collector.disable-defaults", "--collector.textfile",
                   f"--collector.textfile.directory={tdir}",
                   f"--web.listen-address=127.0.0.1:{port}"], wd / "node_exporter.log")
        procs.append(p)
        wait_http(f"http://127.0.0.1:{port}/metrics", p)
        jobs["textfile"] = port
        s["ports"] = jobs
        prom = Prometheus(wd, jobs)
        procs.append(prom.proc)
        s["prom"] = prom
        # every target scraped at least twice
        prom.wait("count(up == 1)", timeout=90,
                  pred=lambda r: bool(r) and float(r[0]["value"][1]) == len(jobs))
        for job in jobs:
            prom.wait(f'count_over_time(up{{job="{job}"}}[1m]) >= 2', timeout=60)
        yield s
    finally:
        for p in reversed(procs):
            stop(p)


@pytest.mark.vmcore
@pytest.mark.parametrize("job", ["churn", "fragmented", "textfile"])
def test_stored_series_equal_the_guest_files(stack, job):
    prom = stack["prom"]
    truth = stack["truth"][job]
    got = prom.series(job)
    compare(got, expected_from_truth(truth))
    if job != "textfile":
        exp = expected_watermark_ok(truth)
        assert {k: got[_key("crashext_watermark_ok", gfp=k[0], order=k[1])] for k in exp} == exp
        assert got[_key("crashext_exporter_scrape_errors_total", source="buddy")] == 0
    else:  # node_exporter read the file without complaint
        r = prom.query('node_textfile_scrape_error{job="textfile"}')
        assert [float(x["value"][1]) for x in r] == [0.0]


@pytest.mark.vmcore
def test_alloc_failures_followed_in_the_log(stack):
    """The RHEL7 idr-bug log first; then a failure appended; then the log rotated."""
    prom = stack["prom"]
    log = stack["log"]

    def want(*names):
        c = collections.Counter()
        for n in names:
            for m in _ALLOC.finditer((LOGS / n).read_text(errors="replace")):
                c[(m.group(2), m.group(1))] += 1
        return c

    def stored():
        c = collections.Counter()
        for r in prom.query('crashext_allocation_failures_total{job="churn",kind="page"}'):
            c[(r["metric"]["order"], r["metric"]["comm"])] += int(float(r["value"][1]))
        return c

    seed = "rhel7-3.10.0-693.2.2-idr-bug.dmesg"
    exp = want(seed)
    assert ("6", "docker-runc") in exp  # the RHEL7 idr-bug log's order-6 failure
    prom.wait("1", pred=lambda _r: stored() == exp, timeout=30)
    with open(log, "a") as f:
        f.write((LOGS / "writeboost-3.18.log").read_text(errors="replace"))
    exp = want(seed, "writeboost-3.18.log")
    prom.wait("1", pred=lambda _r: stored() == exp, timeout=30)
    os.rename(log, str(log) + ".1")
    shutil.copy(LOGS / "coreos-4.9-gfp-atomic.log", log)
    exp = want(seed, "writeboost-3.18.log", "coreos-4.9-gfp-atomic.log")
    prom.wait("1", pred=lambda _r: stored() == exp, timeout=30)
    r = prom.query('crashext_log_reopens_total{job="churn",reason="rotated"}')
    assert float(r[0]["value"][1]) == 1
    # and the alert rule's expression sees the order-6 and order-8 failures
    hits = prom.query('crashext_allocation_failures_total{job="churn",kind="page",'
                      'order=~"[4-9]|[1-9][0-9]"} > 0')
    assert {(h["metric"]["order"], h["metric"]["comm"]) for h in hits} == \
        {k for k in exp if int(k[0]) >= 4}


def _proc_cgroups_memory():
    with open("/proc/cgroups") as f:
        for ln in f:
            p = ln.split()
            if p and p[0] == "memory":
                return int(p[2])
    return None


def _vmstat():
    out = {}
    with open("/proc/vmstat") as f:
        for ln in f:
            k, v = ln.split()
            out[k] = int(v)
    return out


def test_this_host(stack):
    """Prometheus' stored values of this machine lie between what /proc said
    just before and just after the query (counters), or equal it (stable ones)."""
    prom = stack["prom"]
    before = _vmstat()
    num_before = _proc_cgroups_memory()
    r = {x["metric"]["vmstat"]: float(x["value"][1])
         for x in prom.query('crashext_compaction_total{job="host"}')}
    after = _vmstat()
    num_after = _proc_cgroups_memory()
    compact = {k for k in before if k.startswith("compact_")}
    assert set(r) == compact
    # the stored sample is up to one scrape (1 s) older than the query
    for k in compact:
        assert before[k] - 10000 <= r[k] <= after[k], k
    ids = prom.query('crashext_memcg_ids_used{job="host"}')
    if num_before == num_after:
        assert float(ids[0]["value"][1]) == num_before
    zones = {(x["metric"]["node"], x["metric"]["zone"])
             for x in prom.query('crashext_buddy_free_blocks{job="host",order="0"}')}
    with open("/proc/buddyinfo") as f:
        want = {(ln.split()[1].rstrip(","), ln.split()[3]) for ln in f if ln.strip()}
    assert zones == want
    up = {x["metric"]["source"]: float(x["value"][1])
          for x in prom.query('crashext_exporter_source_up{job="host"}')}
    assert set(up) == {"cgroupfs", "buddy", "vmstat", "log"}
    assert up["cgroupfs"] == up["buddy"] == up["vmstat"] == 1
    d = prom.query('crashext_exporter_scrape_duration_seconds{job="host"}')
    assert 0 < float(d[0]["value"][1]) < 10


@pytest.mark.vmcore
def test_broken_files_keep_the_scrape_answering(stack):
    prom = stack["prom"]
    root, proc = stack["dirs"]["broken"]
    truth = stack["truth"]["broken"]
    (proc / "buddyinfo").write_text("Node 0, zone DMA32 not numbers\n")
    shutil.rmtree(root / "kubepods" / "pod5")  # a cgroup removed from the tree
    prom.wait('crashext_exporter_source_up{job="broken",source="buddy"} == 0', timeout=30)
    prom.wait('increase(crashext_exporter_scrape_errors_total{job="broken",source="buddy"}[1m]) > 0')
    # Prometheus still reaches it, and what is still readable is still there
    assert float(prom.query('up{job="broken"}')[0]["value"][1]) == 1
    online = len(truth["cgroup_tree.tsv"]) - 3  # pod5 and its two containers are gone
    prom.wait(f'crashext_memcg_cgroups{{job="broken",state="online"}} == {online}')
    assert not prom.query('crashext_buddy_free_blocks{job="broken"}')
    # fixed again: back
    shutil.copy(truth.dir / "buddyinfo", proc / "buddyinfo")
    prom.wait('crashext_exporter_source_up{job="broken",source="buddy"} == 1', timeout=30)
    prom.wait('count(crashext_buddy_free_blocks{job="broken"}) > 0', timeout=30)


def test_alert_rules_check_and_unit_tests():
    promtool = require("promtool")
    deploy = ROOT / "deploy"
    p = subprocess.run([promtool, "check", "rules", str(deploy / "alerts.yml")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS: 6 rules found" in p.stdout + p.stderr
    p = subprocess.run([promtool, "test", "rules", str(deploy / "alerts_test.yml")],
                       capture_output=True, text=True, timeout=120, cwd=str(deploy))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout + p.stderr


def test_metric_names_pass_promtool_lint(tmp_path):
    """promtool's metrics linter on the exporter's own text (naming conventions)."""
    promtool = require("promtool")
    require_client()
    out = subprocess.run([sys.executable, "-m", "crashext", "exporter", "--once", "--no-log"],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    p = subprocess.run([promtool, "check", "metrics"], input=out.stdout, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
