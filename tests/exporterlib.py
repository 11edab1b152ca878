"""Helpers of the exporter tests: saved trees from fixture truth, what the
kernel's own files say each metric must be, and real servers on 127.0.0.1.

``expected_from_truth`` reads only the guest's own files (tests/vmcore/
truth.py parsers), never crashext, so a metric that disagrees with the
kernel fails the test.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from conftest import dying_removed
from test_live_cgroupfs import materialize, nearest_visible

PAGE = 4096
PROC_FILES = ("buddyinfo", "zoneinfo", "pagetypeinfo", "vmstat", "extfrag_index",
              "unusable_index")


def require(binary):
    """The path of a program the test needs; a skip, or in CI a failure, without it."""
    path = shutil.which(binary)
    if path is None:
        msg = f"{binary} is not installed (scripts/setup installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return path


def require_client():
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        msg = "prometheus-client is not installed (pip install -e '.[exporter]')"
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)


def saved_tree(truth, dest):
    """(cgroup root, proc dir) laid out like the guest's, from its truth/ files."""
    root, proc = materialize(truth, dest)
    for name in PROC_FILES:
        shutil.copy(truth.dir / name, proc / name)
    return root, proc


def _key(name, **labels):
    return (name, tuple(sorted((k, str(v)) for k, v in labels.items())))


def expected_from_truth(truth):
    """{(metric name, sorted label pairs): value} that the guest's own files say."""
    exp = {}
    buddy = truth["buddyinfo"]
    for (node, zone), counts in buddy.items():
        for o, n in enumerate(counts):
            exp[_key("crashext_buddy_free_blocks", node=node, zone=zone, order=o)] = n
    for name, metric in (("extfrag_index", "crashext_buddy_extfrag_index"),
                         ("unusable_index", "crashext_buddy_unusable_index")):
        for (node, zone), vals in truth[name].items():
            for o, v in enumerate(vals):
                exp[_key(metric, node=node, zone=zone, order=o)] = v
    for (node, zone, mtype), counts in truth["pagetypeinfo"]["free"].items():
        for o, n in enumerate(counts):
            exp[_key("crashext_buddy_migratetype_free_blocks", node=node, zone=zone, order=o,
                     migratetype=mtype.lower())] = n
    for (node, zone), z in truth["zoneinfo"].items():
        if (node, zone) not in buddy:
            continue
        exp[_key("crashext_zone_free_bytes", node=node, zone=zone)] = z["nr_free_pages"] * PAGE
        exp[_key("crashext_zone_managed_bytes", node=node, zone=zone)] = z["managed"] * PAGE
        for mark in ("min", "low", "high"):
            exp[_key("crashext_zone_watermark_bytes", node=node, zone=zone, mark=mark)] = \
                z[mark] * PAGE
    for k, v in truth["vmstat"].items():
        if k.startswith("compact_"):
            exp[_key("crashext_compaction_total", vmstat=k)] = v
    tree = truth["cgroup_tree.tsv"]
    removed = dying_removed(truth)
    exp[_key("crashext_memcg_cgroups", state="online")] = len(tree)
    mem = truth["proc_cgroups"].get("memory")
    # 7.3 leaves memory out of /proc/cgroups: the v2 hierarchy's count
    # (hierarchy 0) of any controller it lists is the same nr_cgrps
    v2 = {c["num_cgroups"] for c in truth["proc_cgroups"].values() if c["hierarchy"] == 0}
    assert mem or len(v2) == 1, truth["proc_cgroups"]
    exp[_key("crashext_memcg_ids_used")] = mem["num_cgroups"] if mem else min(v2)
    exp[_key("crashext_memcg_ids_limit")] = 65535
    if truth["cgroup_mode"] == "v2":
        exp[_key("crashext_memcg_cgroups", state="dying")] = len(removed)
        visible = {r["path"] for r in tree}
        dying = {}
        for p in removed:
            anc = nearest_visible(p, visible)
            dying[anc] = dying.get(anc, 0) + 1
        for parent, n in dying.items():
            exp[_key("crashext_memcg_parent_cgroups", parent=parent, state="dying")] = n
    online = {}
    for r in tree:
        if r["path"] != "/":
            parent = r["path"].rsplit("/", 1)[0] or "/"
            online[parent] = online.get(parent, 0) + 1
    for parent, n in online.items():
        exp[_key("crashext_memcg_parent_cgroups", parent=parent, state="online")] = n
    return exp


def expected_watermark_ok(truth):
    """{(gfp, order): 0/1} by __zone_watermark_ok() (mm/page_alloc.c, read in
    v6.1 and v6.12) on the guest's zoneinfo and pagetypeinfo: GFP_KERNEL has
    no ALLOC_* rights; GFP_ATOMIC takes min/2 off (ALLOC_HIGH, v6.3+
    ALLOC_MIN_RESERVE), then a quarter more (ALLOC_HARDER, v6.3+
    ALLOC_NON_BLOCK) and may use the HighAtomic lists (ALLOC_HARDER; v6.3+
    ALLOC_HIGHATOMIC, given to it for order > 0).  Unaccepted memory
    (nr_unaccepted, v6.5+) is not free to use.  The free high-atomic reserve
    is not in zoneinfo; it is taken as 0 (as crashext does from text)."""
    zi = truth["zoneinfo"]
    buddy = truth["buddyinfo"]
    free_lists = truth["pagetypeinfo"]["free"]
    names = [z for (_n, z) in zi]  # zoneinfo lists a node's zones in zone_type order
    populated = [z for (_n, z) in buddy]
    cz = names.index("Normal") if "Normal" in names else max(names.index(z) for z in populated)
    orders = len(next(iter(buddy.values())))
    out = {}
    for gfp in ("GFP_KERNEL", "GFP_ATOMIC"):
        for order in range(min(orders, 11)):
            ok = False
            for (node, zone), z in zi.items():
                if (node, zone) not in buddy or names.index(zone) > cz or not z["min"]:
                    continue
                mn = z["min"] + z.get("boost", 0)
                free = (z["nr_free_pages"] - ((1 << order) - 1) - z.get("nr_free_cma", 0)
                        - z.get("nr_unaccepted", 0))
                lists = ["Unmovable", "Movable", "Reclaimable"]
                if gfp == "GFP_ATOMIC":
                    mn -= mn // 2
                    mn -= mn // 4
                    lists.append("HighAtomic")
                if free <= mn + z["protection"][cz]:
                    continue
                if order == 0 or any(free_lists.get((node, zone, t), [0] * orders)[o] > 0
                                     for t in lists for o in range(order, orders)):
                    ok = True
            out[(gfp, order)] = 1 if ok else 0
    return out


def compare(got, expected, rel=1e-9):
    """Every expected series is there with the expected value."""
    missing = [k for k in expected if k not in got]
    assert not missing, f"series missing: {missing[:5]} (of {len(missing)})"
    wrong = [(k, got[k], v) for k, v in expected.items()
             if abs(got[k] - v) > rel * max(1.0, abs(v))]
    assert not wrong, f"{len(wrong)} series differ, e.g. {wrong[:5]}"


def parse_text(text, drop=("job", "instance")):
    """{(name, labels): value} of the Prometheus text format."""
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = {k: v for k, v in s.labels.items() if k not in drop}
            out[_key(s.name, **labels)] = s.value
    return out


# -- processes ----------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode("utf-8")


def wait_http(url, proc, timeout=60):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        try:
            http_get(url, timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def start(cmd, log_path, **kw):
    log = open(log_path, "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, **kw)


def stop(proc, timeout=10):
    """End one process we started (by its own handle)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def exporter_cmd(port, *args):
    return [sys.executable, "-m", "crashext", "exporter", "--listen", f"127.0.0.1:{port}", *args]


class Prometheus:
    """Debian's prometheus on 127.0.0.1 with a temporary config and storage."""

    def __init__(self, workdir, jobs, interval="1s"):
        self.port = free_port()
        cfg = workdir / "prometheus.yml"
        lines = ["global:", f"  scrape_interval: {interval}", f"  scrape_timeout: {interval}",
                 "scrape_configs:"]
        for job, port in jobs.items():
            lines += [f"  - job_name: {job}", "    static_configs:",
                      f"      - targets: ['127.0.0.1:{port}']"]
        cfg.write_text("\n".join(lines) + "\n")
        self.proc = start([require("prometheus"), f"--config.file={cfg}",
                           f"--storage.tsdb.path={workdir / 'tsdb'}",
                           f"--web.listen-address=127.0.0.1:{self.port}"],
                          workdir / "prometheus.log")
        wait_http(f"http://127.0.0.1:{self.port}/-/ready", self.proc)

    def query(self, q):
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": q}))
        data = json.loads(http_get(url))
        assert data["status"] == "success", data
        return data["data"]["result"]

    def series(self, job, drop=("job", "instance")):
        """{(name, labels): value} of every crashext_ series of the job, as stored."""
        out = {}
        for r in self.query(f'{{__name__=~"crashext_.*",job="{job}"}}'):
            labels = {k: v for k, v in r["metric"].items() if k not in drop and k != "__name__"}
            out[_key(r["metric"]["__name__"], **labels)] = float(r["value"][1])
        return out

    def wait(self, q, pred=lambda res: bool(res), timeout=60):
        t0 = time.monotonic()
        res = None
        while time.monotonic() - t0 < timeout:
            res = self.query(q)
            if pred(res):
                return res
            time.sleep(0.5)
        raise AssertionError(f"{q}: not as expected after {timeout} s: {res}")

    def stop(self):
        stop(self.proc)
