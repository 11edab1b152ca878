"""allocfail on the RHEL7 idr-bug incident and the public logs: what the log says, and
the watermark verdict the kernel's own rule gives on the logged numbers."""

import glob
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from crashext import cli
from crashext.analysis import allocreport
from crashext.sources import logs

DATA = os.path.join(os.path.dirname(__file__), "data", "logs")
SEED = os.path.join(DATA, "rhel7-3.10.0-693.2.2-idr-bug.dmesg")


@pytest.fixture(scope="module")
def seed():
    return allocreport.analyze(logs.log_lines(SEED), "seed")


def test_seed_one_failure_as_logged(seed):
    assert len(seed.failures) == 1 and len(seed.groups) == 1
    f = seed.failures[0]
    r = f.record
    # "docker-runc: page allocation failure: order:6, mode:0x10c0d0" and
    # "CPU: 3 PID: 20628 Comm: docker-runc ... 3.10.0-693.2.2.el7.x86_64 #1"
    assert (r.comm, r.pid, r.cpu, r.order, r.mode) == ("docker-runc", 20628, 3, 6, 0x10c0d0)
    assert r.release == "3.10.0-693.2.2.el7.x86_64"
    assert not r.partial and not r.problems
    assert f.gfp_table == "3.10"
    assert f.decoded == ["GFP_KERNEL", "__GFP_COMP", "__GFP_ZERO", "__GFP_KMEMCG"]
    assert f.caller == "memcg_update_cache_size"
    assert "memcg kmem cache array resize" in f.caller_why
    assert [fr.func for fr in r.trace][8:11] == [
        "memcg_update_cache_size", "memcg_update_all_caches", "memcg_update_cache_sizes"]


def test_seed_zones_and_buddy_lines(seed):
    r = seed.failures[0].record
    z = {x.zone: x for x in r.zones}
    assert list(z) == ["DMA", "DMA32", "Normal"]
    # "Node 0 Normal free:473548kB min:55540kB low:69424kB high:83308kB ...
    #  present:13631488kB managed:13367588kB", then "lowmem_reserve[]: 0 0 0 0"
    assert [z["Normal"].kb(k) for k in ("free", "min", "low", "high", "present", "managed")] == \
        [473548, 55540, 69424, 83308, 13631488, 13367588]
    assert z["DMA"].lowmem_reserve == [0, 2814, 15869, 15869]
    assert z["DMA32"].lowmem_reserve == [0, 0, 13054, 13054]
    assert z["Normal"].lowmem_reserve == [0, 0, 0, 0]
    assert [(b.zone, b.total_kb, b.total_ok) for b in r.buddy] == [
        ("DMA", 15908, True), ("DMA32", 64532, True), ("Normal", 473928, True)]
    assert r.meminfo.counters["free"] == 138442        # "free:138442 free_pcp:0"


def test_seed_verdicts(seed):
    f = seed.failures[0]
    assert f.watermark_rule == "3.10"
    v = {x.zone: x for x in f.zone_verdicts}
    assert list(v) == ["Normal", "DMA32", "DMA"]   # zonelist order for GFP_KERNEL
    # Normal: 473548kB/4 = 118387 free, min 55540kB/4 = 13885, reserve[2] = 0.
    # __zone_watermark_ok (3.10): free -= 2^6-1 -> 118324 > 13885; then per order
    # o=0..5 subtract nr_free[o]<<o and halve min:
    #   118324-8454=109870 (min 6942), -13404=96466 (3471), -21808=74658 (1735),
    #   -30816=43842 (867), -31360=12482 (433), -12448=34 (216): 34 <= 216 -> fail.
    n = v["Normal"]
    assert (n.free_pages, n.min, n.classzone_idx, n.reserve) == (118387, 13885, 2, 0)
    assert n.verdict["ok"] is False and n.verdict["failed_order"] == 6
    assert n.verdict["check"] == "order"
    assert n.verdict["numbers"]["steps"][-1] == {"order": 6, "free": 34, "min": 216}
    # DMA32: 64312kB/4 = 16078, min 11976kB/4 = 2994, lowmem_reserve[2] = 13054:
    # 16078 - 63 = 16015 <= 2994 + 13054 = 16048 -> fails before any order is looked at.
    d = v["DMA32"]
    assert (d.free_pages, d.min, d.reserve) == (16078, 2994, 13054)
    assert d.verdict["check"] == "watermark" and d.verdict["failed_order"] == 0
    dm = v["DMA"]
    assert (dm.free_pages, dm.min, dm.reserve) == (3977, 16, 15869)
    assert dm.verdict["ok"] is False
    assert f.explanation[0].startswith("every zone the request could use fails")


def test_seed_oops_header(seed):
    h, = seed.oops
    assert h.message == "kernel BUG at lib/idr.c:1157!" and h.rip_func == "ida_simple_remove"


def _run(argv, stdin=None):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, "-m", "crashext", "allocfail"] + argv,
                          capture_output=True, text=True, input=stdin, env=env, timeout=120)


def test_cli_table_and_verbose():
    p = _run([SEED, "-v"])
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.splitlines()[0].startswith("1 allocation failure")
    assert "GFP_KERNEL|__GFP_COMP|__GFP_ZERO|__GFP_KMEMCG" in out
    assert "FAIL at order 6" in out and "total verified" in out
    # the WHY column: Normal short of order-6 blocks; DMA32 and DMA fail only
    # on their reserve: DMA32 16015 free after the order's pages against min
    # 2994 (+ 13054 reserved), with blocks up to order 9; DMA 3914 against 16
    # (+ 15869), blocks up to order 10: with a reserve of 0 both pass at order 6
    row = next(line for line in out.splitlines() if line.lstrip().startswith("1  docker-runc"))
    assert row.endswith("Normal: no order-6 room; DMA32: held back by lowmem_reserve; "
                        "DMA: held back by lowmem_reserve"), row


def test_cli_summary_lists_the_bug_header():
    p = _run([SEED])
    assert p.returncode == 0, p.stderr
    assert "1 oops/BUG/panic header" in p.stdout.splitlines()[0]
    assert "BUG: kernel BUG at lib/idr.c:1157! at ida_simple_remove+0x41/0x50" in p.stdout


def test_cli_json_and_stdin():
    p = _run(["-", "--json"], stdin=open(SEED).read())
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["source"] == "stdin" and d["failures"][0]["mode"] == "0x10c0d0"
    assert d["failures"][0]["verdicts"][0]["verdict"]["failed_order"] == 6
    assert d["oops"][0]["message"] == "kernel BUG at lib/idr.c:1157!"


def test_cli_kernel_version_override():
    # the same mask under the 5.x layout is a different request: 0x10c0d0 has
    # __GFP_HARDWALL (0x100000), __GFP_NOWARN (0x2000) ... -- the override is honoured
    p = _run([SEED, "--json", "--kernel-version", "5.10.0"])
    d = json.loads(p.stdout)
    assert d["failures"][0]["gfp"]["table"] == "5.10"
    assert "GFP_KERNEL" not in d["failures"][0]["gfp"]["names"]


def test_cli_garbage_and_missing(tmp_path):
    g = tmp_path / "garbage"
    g.write_bytes(os.urandom(4096) + b"\nfoo: page allocation failure: order:\n\x00\xff")
    p = _run([str(g)])
    assert p.returncode == 0 and "no allocation failures found" in p.stdout
    assert "Traceback" not in p.stderr
    p = _run([str(tmp_path / "missing.log")])
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "Traceback" not in p.stderr
    p = _run([])
    assert p.returncode == 2 and "give a log FILE" in p.stderr


def test_every_test_log_runs():
    for path in glob.glob(os.path.join(DATA, "*")):
        rc = cli.main(["allocfail", "--json", path])
        assert rc == 0, path


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000))
def test_cli_never_internal_error_on_bytes(tmp_path_factory, blob):
    p = tmp_path_factory.mktemp("b") / "blob.log"
    p.write_bytes(blob)
    assert cli.main(["allocfail", str(p)]) in (0, 2)   # 2: a broken compressed stream, one line


@pytest.mark.vmcore
@pytest.mark.parametrize("suite,scenario", [("bullseye", "memcg-churn"), ("bookworm", "memcg-churn"),
                                            ("trixie", "memcg-churn"), ("bookworm", "fragmented"),
                                            ("trixie-backports", "memcg-churn"),
                                            ("trixie-backports", "fragmented")])
def test_fixture_serial_logs_have_no_failures(vmcore, suite, scenario):
    d = vmcore(suite, scenario).dir
    rep = allocreport.analyze_file(str(d / "serial.log"), "serial", keep=0)
    # a sysrq-c crash in a healthy guest: the console shows no allocation failure
    assert rep.failures == []
    assert any(o.kind in ("panic", "oops", "pagefault", "bug") for o in rep.oops)


@pytest.mark.vmcore
@pytest.mark.parametrize("suite", ["bookworm", "trixie-backports"])
def test_dump_log_through_target(vmcore, suite):
    fx = vmcore(suite, "memcg-churn")
    p = _run(["-c", str(fx.vmcore), "-s", str(fx.vmlinux), "--json"])
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["failures"] == []
    assert d["source"].startswith("kernel log of vmcore")
    # the dump's kernel log holds the panic the serial console showed
    serial = fx.serial_log.read_text(errors="replace")
    assert "Kernel panic - not syncing: sysrq triggered crash" in serial
    assert [o["message"] for o in d["oops"] if o["kind"] == "panic"] == \
        ["Kernel panic - not syncing: sysrq triggered crash"]
    assert {o["release"] for o in d["oops"]} == {fx.truth()["uname_r"]}
