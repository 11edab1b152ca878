"""crashext exporter reading a running QEMU guest's kernel through drgn
(``--qemu SOCK -s VMLINUX``), scraped by a real Prometheus server.

The guest (tests/live/scenarios/live-churn.sh) builds the memcg-churn tree,
prints what its own cgroupfs, /proc/cgroups and /proc/buddyinfo say and the
cgroups it removed while they were still charged (those are the dying
memcgs), then idles; its CPUs are stopped (QMP ``stop``) so nothing moves.
What Prometheus stores must equal what the guest printed.
"""

import collections
import os
import posixpath
import time
from pathlib import Path

import pytest

from conftest import fixturelib, truthmod  # noqa: F401  (loads tests/vmcore modules)
from exporterlib import (Prometheus, exporter_cmd, free_port, require, require_client, start,
                         stop, wait_http)
from live import guest

pytestmark = pytest.mark.vmcore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    if os.environ.get("CRASHEXT_NO_FIXTURES", "") not in ("", "0"):
        pytest.skip("CRASHEXT_NO_FIXTURES=1")
    require_client()
    require("prometheus")
    kernel = fixturelib.get_kernel("bookworm")
    wd = tmp_path_factory.mktemp("exporter-qmp")
    initrd, sopts = guest.live_initramfs(kernel, "live-churn", wd / "initrd.gz")
    with guest.LiveGuest(wd, kernel, initrd=initrd, memory=sopts.get("memory", "512M")) as g:
        try:
            g.wait_for("LIVE_READY", 600)
        except guest.GuestError as exc:
            pytest.fail(str(exc), pytrace=False)
        time.sleep(2)
        g.ctl.cmd("stop")
        port = free_port()
        exp = start(exporter_cmd(port, "--qemu", str(g.qmp_socket), "-s", str(kernel.vmlinux),
                                 "--kernel-interval", "5"),
                    wd / "exporter.log", env=dict(os.environ, PYTHONPATH=str(ROOT)))
        prom = None
        try:
            wait_http(f"http://127.0.0.1:{port}/metrics", exp, timeout=300)
            prom = Prometheus(wd, {"guest": port})
            prom.wait('crashext_memcg_cgroups{job="guest"}', timeout=120)
            yield g, prom
        finally:
            if prom is not None:
                prom.stop()
            stop(exp)


def test_dying_and_online_memcgs_equal_the_guest(scraped):
    g, prom = scraped
    blocks = g.blocks()
    tree = [ln.split("\t")[0] for ln in blocks["tree.tsv"].splitlines() if ln.strip()]
    removed = [r["path"] for r in truthmod.parse_tsv(blocks["removed_charged.tsv"])]
    assert removed
    state = {r["metric"]["state"]: float(r["value"][1])
             for r in prom.query('crashext_memcg_cgroups{job="guest"}')}
    # every visible cgroup is an online memcg; the dying are those removed while charged
    assert state == {"online": len(tree), "dying": len(removed)}
    dying_by_parent = collections.Counter(posixpath.dirname(p) for p in removed)
    got = {r["metric"]["parent"]: float(r["value"][1])
           for r in prom.query('crashext_memcg_parent_cgroups{job="guest",state="dying"}')}
    assert got == dict(dying_by_parent)
    # no memcg the kernel should never have
    anomalies = prom.query('crashext_memcg_anomalies{job="guest"} > 0')
    assert anomalies == []
    up = prom.query('crashext_exporter_source_up{job="guest",source="kernel"}')
    assert float(up[0]["value"][1]) == 1


def test_free_blocks_equal_the_guest_buddyinfo(scraped):
    g, prom = scraped
    truth = truthmod.parse_buddyinfo(g.blocks()["buddyinfo"])
    got = {}
    for r in prom.query('crashext_buddy_free_blocks{job="guest"}'):
        m = r["metric"]
        got.setdefault((int(m["node"]), m["zone"]), {})[int(m["order"])] = float(r["value"][1])
    assert {k: [v[o] for o in sorted(v)] for k, v in got.items()} == truth


def test_kernel_read_in_the_background(scraped):
    """Scrapes never wait for drgn: the kernel is re-read every --kernel-interval."""
    _g, prom = scraped
    q = 'crashext_exporter_kernel_read_timestamp_seconds{job="guest"}'
    first = float(prom.query(q)[0]["value"][1])
    later = prom.wait(q, pred=lambda r: r and float(r[0]["value"][1]) > first, timeout=60)
    assert float(later[0]["value"][1]) > first
    d = prom.query('max_over_time(crashext_exporter_scrape_duration_seconds{job="guest"}[1m])')
    assert float(d[0]["value"][1]) < 0.5
    r = prom.query('crashext_exporter_kernel_read_duration_seconds{job="guest"}')
    print(f"kernel read through QMP: {float(r[0]['value'][1]):.2f} s; "
          f"slowest scrape meanwhile {float(d[0]['value'][1]) * 1000:.0f} ms")
