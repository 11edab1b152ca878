"""The exporter's kernel-memory metrics (``-k`` on a host, ``--qemu`` on a
guest: drgn reads the kernel in the background) computed from the real
dumps of every fixture kernel, 5.10 through 7.3, and compared with what the
guest itself said just before the dump (tests/vmcore truth).  The reading
code is the one ``-k`` runs (collector.KernelCache with another target);
only the target is a dump instead of /proc/kcore.
"""

import collections
import posixpath

import pytest

from conftest import dying_removed
from exporterlib import _key, parse_text, require_client

pytestmark = pytest.mark.vmcore

SUITES = ["bullseye", "bookworm", "trixie", "trixie-backports"]


def _scrape(fx, pins=True):
    require_client()
    pytest.importorskip("drgn")
    from prometheus_client import CollectorRegistry, generate_latest
    from crashext.exporter.collector import Collector, KernelCache
    from crashext.kernel import drgn_backend
    cache = KernelCache(lambda: drgn_backend.open_core(str(fx.vmcore), str(fx.vmlinux)),
                        interval=3600, frag=True, pins=pins)
    cache.refresh()
    data, error, _at, _secs = cache.get()
    assert error is None and data is not None, error
    reg = CollectorRegistry()
    reg.register(Collector(kernel=cache))
    return parse_text(generate_latest(reg).decode())


@pytest.mark.parametrize("suite", SUITES)
def test_kernel_metrics_equal_the_guest(vmcore, suite):
    fx = vmcore(suite, "memcg-churn")
    truth = fx.truth()
    got = _scrape(fx)
    assert got[_key("crashext_exporter_source_up", source="kernel")] == 1
    tree = truth["cgroup_tree.tsv"]
    dying = truth["cgroup_stat"]["/"]["nr_dying_descendants"]   # 6 up to 6.12, 0 on 7.3
    assert got[_key("crashext_memcg_cgroups", state="online")] == len(tree)
    assert got[_key("crashext_memcg_cgroups", state="dying")] == dying
    # from the kernel a dying memcg counts under its real parent (dying or not):
    # the memcgs removed while charged, where the kernel counts them dying
    here = collections.Counter(posixpath.dirname(p) for p in dying_removed(truth))
    shown = {dict(k[1])["parent"]: v for k, v in got.items()
             if k[0] == "crashext_memcg_parent_cgroups" and dict(k[1])["state"] == "dying"}
    assert shown == dict(here)
    online = collections.Counter(posixpath.dirname(r["path"]) for r in tree if r["path"] != "/")
    shown = {dict(k[1])["parent"]: v for k, v in got.items()
             if k[0] == "crashext_memcg_parent_cgroups" and dict(k[1])["state"] == "online"}
    assert shown == dict(online)
    assert not [k for k, v in got.items() if k[0] == "crashext_memcg_anomalies" and v]
    # the free lists, exactly as the guest's last /proc/buddyinfo
    blocks = {}
    for k, v in got.items():
        if k[0] == "crashext_buddy_free_blocks":
            lab = dict(k[1])
            blocks.setdefault((int(lab["node"]), lab["zone"]), {})[int(lab["order"])] = v
    assert {z: [c[o] for o in sorted(c)] for z, c in blocks.items()} == truth["buddyinfo"]
    info = [k for k in got if k[0] == "crashext_kernel_info"]
    assert dict(info[0][1])["release"] == truth["uname_r"]


def test_no_memcgpins_leaves_out_only_its_families(vmcore):
    """--no-memcgpins: the pins families are gone, no problem is reported
    for them, and every other series is the one the full read gives."""
    fx = vmcore("bookworm", "memcg-churn")
    full, bare = _scrape(fx), _scrape(fx, pins=False)
    pins = {"crashext_memcg_dying_pinned_bytes", "crashext_memcg_dying_held_cgroups"}
    assert {k[0] for k in full} & pins == pins
    assert not {k[0] for k in bare} & pins
    moving = {"crashext_exporter_kernel_read_timestamp_seconds",
              "crashext_exporter_kernel_read_duration_seconds",
              "crashext_exporter_scrape_duration_seconds"}
    assert {k: v for k, v in bare.items() if k[0] not in moving} == \
        {k: v for k, v in full.items() if k[0] not in pins | moving}
    assert bare[_key("crashext_exporter_source_up", source="kernel")] == 1
