"""Smoke tests of the real-dump fixtures with independent readers:
Debian's crash(8) (8.0.2 in bookworm reads 5.10 fully and 6.1 well enough
for `sys`; it cannot read 6.12) and drgn."""

import re
import shutil
import subprocess

import pytest


def _serial_panic(fx):
    text = fx.serial_log.read_bytes().decode("utf-8", "replace")
    m = re.search(r"\] (Kernel panic - not syncing: [^\r\n]*)", text)
    assert m, "no panic line on the serial console"
    return m.group(1).strip()


@pytest.mark.vmcore
@pytest.mark.parametrize("suite", ["bookworm", "bullseye"])
def test_crash_sys_panic_string(vmcore, suite):
    if shutil.which("crash") is None:
        pytest.skip("crash(8) is not installed (apt-get install crash)")
    fx = vmcore(suite, "memcg-churn")
    p = subprocess.run(["crash", "-s", str(fx.vmlinux), str(fx.vmcore)],
                       input="sys\nq\n", stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600)
    m = re.search(r'^\s*PANIC: "(.*)"\s*$', p.stdout, re.M)
    assert m, "crash printed no PANIC line:\n" + p.stdout[-2000:]
    assert m.group(1) == _serial_panic(fx)
    assert m.group(1).endswith(fx.truth()["panic_string"])
    assert re.search(r"^\s*RELEASE: %s\s*$" % re.escape(
        fx.meta["kernel_release"]), p.stdout, re.M)


@pytest.mark.vmcore
@pytest.mark.parametrize("suite,scenario", [
    ("bookworm", "memcg-churn"), ("bullseye", "memcg-churn"),
    ("trixie", "memcg-churn"), ("bookworm", "fragmented"),
    ("trixie-backports", "memcg-churn"), ("trixie-backports", "fragmented"),
])
def test_drgn_buddy_free_lists_match_truth(vmcore, suite, scenario):
    """/proc/buddyinfo is read last, right before the panic, with shell
    builtins only: the free-list counts in the dump must equal it."""
    drgn = pytest.importorskip("drgn")
    fx = vmcore(suite, scenario)
    prog = drgn.Program()
    prog.set_core_dump(str(fx.vmcore))
    prog.load_debug_info([str(fx.vmlinux)])
    assert prog["init_uts_ns"].name.release.string_().decode() == \
        fx.meta["kernel_release"]
    # CONFIG_NUMA=y in Debian's cloud kernels: node_data[0]
    pgdat = prog["node_data"][0]
    got = {}
    for zone in pgdat.node_zones:
        if not zone.present_pages:
            continue
        name = zone.name.string_().decode()
        got[(0, name)] = [int(zone.free_area[o].nr_free)
                          for o in range(len(zone.free_area))]
    assert got == fx.truth()["buddyinfo"]
