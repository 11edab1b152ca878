"""vmalloc failures in real kernel logs, one per format mm/vmalloc.c printed.

- v4.10 .. (at least) v4.19, __vmalloc_area_node(): ``warn_alloc(gfp_mask,
  NULL, "vmalloc: allocation failure, allocated %ld of %ld bytes", ...)``,
  the area filled one order-0 page at a time (``alloc_page()``), ``of`` is
  ``area->size`` (with its guard page): linuxmm-4.10-vmalloc-xfs-greedy.log,
  lkml-4.19-vmalloc-fork-stack.log, bugzilla-200651-xtables-vmalloc.log.
- later kernels: ``"vmalloc error: size %lu, page order %u, failed to
  allocate pages"`` (huge vmalloc; the printed size is ``area->nr_pages *
  PAGE_SIZE``, what was allocated, kept as ``allocated``; the size asked for
  is not printed): lkml-6.3-vmalloc-order9-highatomic.log.

Every expected value below is read in the log line it names.
"""

import json
import subprocess
import sys
from pathlib import Path

from crashext.analysis import allocreport
from crashext.sources import logs
from crashext.sources.kmsg import AllocFailure, extract

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "tests" / "data" / "logs"


def _records(name):
    text = (LOGS / name).read_text()
    return [r for r in extract(logs.normalize(text.splitlines())) if isinstance(r, AllocFailure)]


def _json(*args):
    p = subprocess.run([sys.executable, "-m", "crashext", "allocfail", "--json", *args],
                       capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_partial_area_4_10_xfs():
    """"fsstress: vmalloc: allocation failure, allocated 12288 of 20480 bytes,
    mode:0x14080c2(GFP_KERNEL|__GFP_HIGHMEM|__GFP_ZERO)"; "CPU: 1 PID: 23460
    Comm: fsstress ... 4.10.0-master-45554b2+"; the first frame past the
    allocator (vzalloc and __vmalloc_node_range) is kmem_zalloc_greedy [xfs]."""
    (r,) = _records("linuxmm-4.10-vmalloc-xfs-greedy.log")
    assert (r.kind, r.comm, r.order, r.size, r.allocated) == ("vmalloc", "fsstress", 0, 20480,
                                                              12288)
    assert (r.mode, r.mode_names) == (0x14080c2, ["GFP_KERNEL", "__GFP_HIGHMEM", "__GFP_ZERO"])
    assert (r.pid, r.cpu, r.release, r.nodemask) == (23460, 1, "4.10.0-master-45554b2+", "(null)")
    assert r.trace[-1].func == "entry_SYSCALL64_slow_path" and not r.partial
    rep = allocreport.analyze(logs.normalize((LOGS / "linuxmm-4.10-vmalloc-xfs-greedy.log")
                                             .read_text().splitlines()), "t")
    (v,) = rep.failures
    assert v.caller == "kmem_zalloc_greedy" and v.names_agree
    assert v.alloc_flags == {"generation": "4.4", "names": [], "assumed": None}
    assert v.zone_verdicts == [] and "no zone lines" in v.explanation[0]


def test_partial_area_4_19_fork_stack():
    """"emerge: vmalloc: allocation failure, allocated 8192 of 20480 bytes,
    mode:0x7080c0(GFP_KERNEL_ACCOUNT|__GFP_ZERO)" from copy_process (a fork's
    stack), then the Mem-Info block, whose lowmem_reserve and buddy lines
    the kernel logged one pr_cont piece a line: joined back, the zones are
    checked.  Normal: free 112996kB = 28249 pages > min 54544kB = 13636;
    DMA32: 278768 > 3242 + lowmem_reserve[2] 12746; DMA: 3975 <= 16 + 15777,
    and > 16 alone, so held back by its reserve."""
    (r,) = _records("lkml-4.19-vmalloc-fork-stack.log")
    assert (r.comm, r.order, r.size, r.allocated, r.mode) == ("emerge", 0, 20480, 8192, 0x7080c0)
    assert (r.pid, r.release) == (16742, "4.19.69")
    assert [z.zone for z in r.zones] == ["DMA", "DMA32", "Normal"]
    assert r.zones[2].kb("free") == 112996 and r.zones[2].kb("min") == 54544
    assert not r.partial and [b.total_kb for b in r.buddy] == [15900, 1115072, 111980]
    data = _json(str(LOGS / "lkml-4.19-vmalloc-fork-stack.log"))
    (f,) = data["failures"]
    assert (f["kind"], f["size"], f["allocated"], f["caller"]) == ("vmalloc", 20480, 8192,
                                                                   "copy_process")
    v = {x["zone"]: x["verdict"] for x in f["verdicts"]}
    assert (v["Normal"]["ok"], v["DMA32"]["ok"], v["DMA"]["ok"]) == (True, True, False)
    assert v["DMA"]["lowmem_reserve_held"] is True
    assert data["show_mem"] == []   # the Mem-Info block belongs to the failure now


def test_partial_area_without_trace_4_14():
    """bugzilla 200651 quotes the header line alone."""
    (r,) = _records("bugzilla-200651-xtables-vmalloc.log")
    assert (r.comm, r.size, r.allocated, r.order) == ("iptables-restor", 3465216, 3047424, 0)
    assert r.mode_names == ["GFP_KERNEL", "__GFP_NORETRY"]
    assert r.partial and "no call trace" in r.problems


def test_huge_vmalloc_error_6_3():
    """"qemu:deb12-virt: vmalloc error: size 0, page order 9, failed to
    allocate pages, mode:0xdc2(GFP_KERNEL|__GFP_HIGHMEM|__GFP_ZERO)" and a
    second one from btrfs' zstd workspace: order 9, each with its Mem-Info.
    The kernel failed both: every zone fails the emulated check too; Normal's
    only free order-9 block is the 1*2048kB (H) one, on the high-atomic list a
    blocking GFP_KERNEL request may not use, and its reserved_highatomic:2048KB
    is subtracted (GFP_KERNEL has no ALLOC_RESERVES right)."""
    recs = _records("lkml-6.3-vmalloc-order9-highatomic.log")
    assert [(r.comm, r.order, r.kind) for r in recs] == [("qemu:deb12-virt", 9, "vmalloc"),
                                                         ("kworker/u16:5", 9, "vmalloc")]
    # "size 0" is area->nr_pages * PAGE_SIZE: nothing was allocated yet; the
    # size asked for is not printed
    assert [(r.size, r.allocated) for r in recs] == [(None, 0), (None, 0)]
    data = _json(str(LOGS / "lkml-6.3-vmalloc-order9-highatomic.log"))
    callers = [f["caller"] for f in data["failures"]]
    assert callers == ["amdgpu_bo_create", "zstd_alloc_workspace"]
    for f in data["failures"]:
        assert f["watermark_rule"] == "6.3" and f["alloc_flags"]["names"] == []
        v = {x["zone"]: x["verdict"] for x in f["verdicts"]}
        assert set(v) == {"DMA", "DMA32", "Normal"} and not any(x["ok"] for x in v.values())
        n = v["Normal"]
        assert n["check"] == "no_block" and n["failed_order"] == 9
        assert "only on MIGRATE_HIGHATOMIC" in n["reason"]
        assert n["numbers"]["highatomic"] == 2048 // 4
    normal_free_kb = 4608608   # "Normal free:4608608kB" of the first record
    n = {x["zone"]: x["verdict"] for x in data["failures"][0]["verdicts"]}["Normal"]
    assert n["numbers"]["free_after"] == normal_free_kb // 4 - 511 - 512


def test_vm_struct_allocation_failed_5_19():
    """"dhcpcd: vmalloc error: size 4096, vm_struct allocation failed,
    mode:0xcc0(GFP_KERNEL)": __vmalloc_node_range() found no vmalloc address
    range (__get_vm_area_node() failed), so no page allocation failed: no
    order, the size is the request, and no watermark check applies although
    the Mem-Info block (one DMA32 zone on riscv64) is read."""
    (r,) = _records("syzbot-5.19-vmalloc-vm-struct.log")
    assert (r.kind, r.comm, r.size, r.order, r.allocated) == ("vmalloc", "dhcpcd", 4096, None, None)
    assert (r.pid, r.release) == (1949, "5.19.0-rc1-syzkaller-00004-gc1f6eff304e4")
    assert [z.zone for z in r.zones] == ["DMA32"] and r.buddy[0].total_kb == 1153504
    data = _json(str(LOGS / "syzbot-5.19-vmalloc-vm-struct.log"))
    (f,) = data["failures"]
    assert f["caller"] == "bpf_jit_alloc_exec" and f["verdicts"] == []
    assert f["explanation"][0].startswith("no allocation order printed")
