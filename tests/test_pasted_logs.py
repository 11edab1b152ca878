"""The kernel logs users paste, as real excerpts (tests/data/logs, SOURCES.md):
manual OOM kills (SysRq-f), oopses of arm64, ppc64 and s390, lines quoted in
a mail, 2.6-era and 64 KiB-page show_mem blocks, user-space text given as a
kernel log, a SLUB report whose only release is on its CPU line, a
panic_on_warn WARNING.  Each verdict is held against what the log itself
prints: the numbers are read off the excerpt's text here, with the line
they come from quoted, not copied from triage's output.
"""

import os
import re
import subprocess
import sys

import pytest

from crashext.analysis.evidence import TriageInputs, triage
from crashext.sources import kmsg, logs
from crashext.sources.logs import load_log

_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "logs")
_NO_FIX = "; no known fix in the knowledge base"


def _path(name):
    return os.path.join(_DATA, name)


def _raw(name):
    """The excerpt as published: without its '# source:' line; a mail's "> "
    quote marks off."""
    with open(_path(name), encoding="utf-8") as f:
        return "".join(re.sub(r"^(?:> ?)+", "", ln) for ln in f if not ln.startswith("# source:"))


def _triage(name, entries=None):
    return triage(TriageInputs(log_lines=load_log(_path(name)), entries=entries))


def _mib(kb):
    """kB as the verdict writes them: whole MiB, else one decimal."""
    return f"{kb // 1024} MiB" if kb % 1024 == 0 else f"{kb / 1024:.1f} MiB"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "crashext", "triage", *args],
                          capture_output=True, text=True)


# -- manual OOM kills (SysRq-f) ---------------------------------------------------

SYSRQ_FULL = "oomanalyser-5.13-sysrq-f-meminfo.log"
SYSRQ_MAIL = "linuxmm-4.2-sysrq-f-manual-oom.log"


def test_a_whole_sysrq_f_report_is_a_manual_kill_not_an_internal_error():
    """The report that stopped triage with 'negative shift count': order=-1
    with the zone lines of its Mem-Info."""
    raw = _raw(SYSRQ_FULL)
    assert "invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=-1" in raw
    p = _cli("--log", _path(SYSRQ_FULL))
    assert p.returncode == 0, p.stderr
    assert "internal error" not in p.stderr
    assert p.stdout.startswith("VERDICT: known condition: Manual OOM kill (SysRq-f)")
    # "Out of memory: Killed process 651 (unattended-upgr) total-vm:108020kB, anon-rss:8380kB"
    pid, comm, anon = re.search(r"Killed process (\d+) \((\S+)\) total-vm:\d+kB, "
                                r"anon-rss:(\d+)kB", raw).groups()
    rep = _triage(SYSRQ_FULL, [])
    assert rep["verdict"]["headline"] == (f"OOM kill (global): {comm} pid {pid}, anon-rss "
                                          f"{_mib(int(anon))}; invoked manually (SysRq-f), "
                                          "not by an allocation")
    [oom] = rep["memory"]["oom_reports"]
    assert oom["order"] == -1 and oom["verdicts"] == [] and oom["conclusion"] is None
    assert "no allocation asked for memory" in oom["notes"][0]
    # the zones are still read: "Node 0 DMA32 free:1696528kB min:44700kB"
    zones = {z["zone"]: z for z in oom["zones"]}
    for zone in ("DMA", "DMA32"):
        free, mn = re.search(rf"Node 0 {zone} free:(\d+)kB min:(\d+)kB", raw).groups()
        total = re.search(rf"Node 0 {zone}: .* = (\d+)kB", raw).group(1)
        assert (zones[zone]["free_kb"], zones[zone]["min_kb"]) == (int(free), int(mn))
        assert zones[zone]["buddy_total_kb"] == int(total) and zones[zone]["buddy_total_ok"]
    # "524158 pages RAM" of the 4 KiB the buddy lines start with ("1*4kB")
    pages = int(re.search(r"^(\d+) pages RAM$", raw, re.M).group(1))
    assert rep["system"]["memory_bytes"] == pages * 4096


def test_a_log_of_global_then_manual_oom_kills_counts_the_manual_ones():
    raw = _raw(SYSRQ_MAIL)
    invoked = re.findall(r"(\S+) invoked oom-killer: gfp_mask=0x[0-9a-f]+, order=(-?\d+)", raw)
    manual = raw.count("SysRq : Manual OOM execution")
    assert manual == sum(order == "-1" for _, order in invoked) and manual < len(invoked)
    # the kills after a manual execution ("[ 96.919224] Killed process 4803 ...")
    after = [re.search(r"Killed process (\d+) \(([^)]+)\)", part)
             for part in raw.split("SysRq : Manual OOM execution")[1:]]
    killed = [m.groups() for m in after if m]
    assert len(set(killed)) == 1
    # the first kill: "Killed process 4802 (fool-sysrq-f) total-vm:2170956kB, anon-rss:1562884kB"
    pid, comm, anon = re.search(r"Killed process (\d+) \((\S+)\) total-vm:\d+kB, "
                                r"anon-rss:(\d+)kB", raw).groups()
    first_by, first_order = invoked[0]
    rep = _triage(SYSRQ_MAIL, [])
    assert rep["verdict"]["headline"] == (
        f"OOM kill (global): {comm} pid {pid}, anon-rss {_mib(int(anon))}; invoked by "
        f"{first_by} for order {first_order} (4 KiB); {manual} of the {len(invoked)} OOM "
        f"reports manual (SysRq-f), {len(killed)} of them killed pid {killed[0][0]} "
        f"({killed[0][1]})")
    with_kb = _triage(SYSRQ_MAIL)["verdict"]["headline"]
    assert with_kb.startswith("known condition: Manual OOM kill (SysRq-f)")


# -- oopses of other architectures -------------------------------------------------

def _hex(pattern, raw):
    return int(re.search(pattern, raw).group(1), 16)


def test_arm64_null_dereference_in_memcg_code():
    name = "lkml-5.8-arm64-memcg-swap-null.log"
    raw = _raw(name)
    # "Unable to handle kernel NULL pointer dereference at" / "virtual address 0000000000000188"
    addr = _hex(r"NULL pointer dereference at\s+virtual address ([0-9a-f]+)", raw)
    func = re.search(r"^\[[ .\d]+\] pc : (\w+)\+", raw, re.M).group(1)
    rep = _triage(name, [])
    assert rep["verdict"]["headline"] == (f"kernel NULL pointer dereference in {func} "
                                          f"(memory cgroups, mm/memcontrol.c); address "
                                          f"{addr:#x}{_NO_FIX}")
    # "CPU: 0 PID: 1 Comm: swapper/0 Not tainted 5.8.0-rc3+ #8"
    cpu, pid, task, rel = re.search(r"CPU: (\d+) PID: (\d+) Comm: (\S+) Not tainted (\S+) #",
                                    raw).groups()
    pan = rep["panic"]
    assert (pan["pid"], pan["comm"], rep["system"]["release"]) == (int(pid), task, rel)
    # "Call trace:" then one frame a line, the first the trapping function itself
    frames = re.findall(r"^\[[ .\d]+\]  (\w[\w.]*)\+0x", raw, re.M)
    assert [f["function"] for f in pan["frames"]] == frames and frames[0] == func


def test_ppc64_2628_paging_request_at_a_small_address_is_a_null_dereference():
    name = "linuxmm-2.6.28-ppc64-memcg-charge-oops.log"
    raw = _raw(name)
    # "Unable to handle kernel paging request for data at address 0x00000020": below
    # the page size, what later kernels print as a NULL pointer dereference
    addr = _hex(r"for data at address 0x([0-9a-f]+)", raw)
    assert addr < 4096
    # "NIP [c0000000001055e4] .mem_cgroup_charge_common+0x26c/0x330" (ELF v1 dot name)
    nip, func = re.search(r"^NIP \[([0-9a-f]+)\] \.(\w+)\+", raw, re.M).groups()
    rep = _triage(name, [])
    assert rep["verdict"]["headline"] == (f"kernel NULL pointer dereference in {func} "
                                          f"(memory cgroups, mm/memcontrol.c); address "
                                          f"{addr:#x}{_NO_FIX}")
    # "TASK = c0000000f6c56cc0[4610] 'crash' THREAD: ... CPU: 0", "REGS: ... (2.6.28-rc4)"
    pid, task = re.search(r"TASK = [0-9a-f]+\[(\d+)\] '(\w+)'", raw).groups()
    rel = re.search(r"^REGS: .*\((\S+)\)$", raw, re.M).group(1)
    pan = rep["panic"]
    assert (pan["pid"], pan["comm"], rep["system"]["release"]) == (int(pid), task, rel)
    assert pan["rip"]["function"] == func and pan["rip"]["pc"] == int(nip, 16)
    # the first frame is printed "(unreliable)"
    assert pan["frames"][0]["reliable"] is False and pan["frames"][1]["reliable"]


def test_ppc64_null_dereference_in_the_page_allocator_names_the_memcg_caller():
    name = "lkml-5.14-ppc64-memcg-pcpu-alloc-null.log"
    raw = _raw(name)
    # "BUG: Kernel NULL pointer dereference on read at 0x00001508"
    addr = _hex(r"NULL pointer dereference on read at 0x([0-9a-f]+)", raw)
    # "NIP [c0000000005277fc] prepare_alloc_pages.constprop.0+0x20c/0x280"
    func = re.search(r"NIP \[[0-9a-f]+\] (\w+)\.constprop", raw).group(1)
    frames = re.findall(r"\[[0-9a-f]+\] \[[0-9a-f]+\] (\w+)", raw)
    caller = next(f for f in frames if f.startswith("mem_cgroup_"))
    via = frames[frames.index(caller) - 1]
    rep = _triage(name, [])
    assert rep["verdict"]["headline"] == (
        f"kernel NULL pointer dereference in {func} (page allocator, mm/page_alloc.c), "
        f"called from {caller} (memory cgroups, mm/memcontrol.c) through {via}; "
        f"address {addr:#x}{_NO_FIX}")
    assert (func, caller, via) == ("prepare_alloc_pages", "mem_cgroup_alloc", "pcpu_alloc")
    # "Kernel panic - not syncing: Attempted to kill the idle task!" follows the oops:
    # the panic is the NULL dereference
    assert "Attempted to kill the idle task!" in raw
    assert rep["system"]["panic"].startswith("BUG: Kernel NULL pointer dereference")


def test_ppc64_oops_without_nip_finds_the_trapping_function_from_its_trace():
    name = "linuxmm-3.19-ppc64-memcg-init-slab-oops.log"
    raw = _raw(name)
    assert "NIP" not in raw
    # "Faulting instruction address: 0xc00000000089d5d4" lies in the function of
    # "[c00000003d32f920] [c00000000089d588] .__slab_alloc.isra.44+0x7c/0x6f4"
    fault = _hex(r"Faulting instruction address: 0x([0-9a-f]+)", raw)
    ip, func, off, size = re.search(r"\[[0-9a-f]+\] \[([0-9a-f]+)\] \.([\w.]+)\+0x([0-9a-f]+)"
                                    r"/0x([0-9a-f]+)", raw).groups()
    start = int(ip, 16) - int(off, 16)
    assert start <= fault < start + int(size, 16)
    addr = _hex(r"for data at address 0x([0-9a-f]+)", raw)
    assert addr >= 4096          # not called a NULL dereference: the log does not say so
    rep = _triage(name, [])
    assert rep["panic"]["rip"]["function"] == func
    assert rep["panic"]["rip"]["offset"] == fault - start
    assert rep["verdict"]["headline"] == (
        "kernel paging request fault in __slab_alloc (slab allocator, mm/slub.c or mm/slab.c), "
        "called from mem_cgroup_init (memory cgroups, mm/memcontrol.c) through "
        f"kmem_cache_alloc_node_trace; address {addr:#x}{_NO_FIX}")


def test_s390_addressing_exception():
    name = "linuxmm-4.12-s390-vmstat-addressing-exception.log"
    raw = _raw(name)
    # "addressing exception: 0005 ilc:3 [#1] SMP", after report_bug()'s "Kernel BUG at ..."
    what = re.search(r"^(\w[\w ]*): [0-9a-f]{4} ilc:\d", raw, re.M).group(1)
    # "Krnl PSW : 0404200180000000 00000000002b0362 (mod_node_page_state+0x62/0x158)"
    psw, func = re.search(r"Krnl PSW : [0-9a-f]+ ([0-9a-f]+) \((\w+)\+", raw).groups()
    first = re.search(r"^ \[<[0-9a-f]+>\] (\w+)\+", raw, re.M).group(1)
    rep = _triage(name, [])
    assert rep["verdict"]["headline"] == (f"s390 {what} in {func} (VM statistics, mm/vmstat.c), "
                                          f"called from {first}{_NO_FIX}")
    assert rep["panic"]["rip"]["pc"] == int(psw, 16)
    # "CPU: 0 PID: 0 Comm: swapper Not tainted 4.12.0-rc3-00153-gb6bc6724488a #16"
    rel = re.search(r"Not tainted (\S+) #", raw).group(1)
    assert rep["system"]["release"] == rel


def test_panic_on_warn_names_the_warning_location():
    name = "linuxmm-4.18-memcg-try-charge-panic-on-warn.log"
    raw = _raw(name)
    # "WARNING: CPU: 1 PID: 23767 at mm/memcontrol.c:1710 try_charge+0x734/0x1680"
    file, line, func = re.search(r"WARNING: CPU: \d+ PID: \d+ at (\S+):(\d+) (\w+)\+", raw).groups()
    assert "panic_on_warn set" in raw
    rep = _triage(name, [])
    assert rep["verdict"]["headline"] == (f"WARNING turned into a panic (panic_on_warn) at "
                                          f"{file}:{line} in {func} (memory cgroups){_NO_FIX}")
    # with the knowledge base the EVENT line says the same
    assert _triage(name)["verdict"]["diagnosis"]["event"] == \
        rep["verdict"]["headline"].split(_NO_FIX)[0]


# -- quoted and wrapped lines --------------------------------------------------------

def test_quoted_wrapped_vmalloc_failure_keeps_its_task_name():
    name = "linuxmm-4.20-quoted-vmalloc-ebtables.log"
    raw = _raw(name)
    # "> [  763.451796] syz-executor681: vmalloc: allocation failure, allocated" / "> 1027440640
    # of 1879052288 bytes, mode:0x6000c0(GFP_KERNEL)," / "> nodemask=(null)"
    comm, got, size, mode, names = re.search(
        r"\] (\S+): vmalloc: allocation failure, allocated\s+(\d+)\s+of\s+(\d+)\s+bytes,"
        r"\s+mode:0x([0-9a-f]+)\((\w+)\)", raw).groups()
    rep = _triage(name, [])
    [f] = rep["memory"]["allocation_failures"]
    assert (f["comm"], f["allocated"], f["size"], f["mode"]) == (comm, int(got), int(size),
                                                                 f"0x{mode}")
    assert f["time"] == float(re.search(r"\[\s*([\d.]+)\] " + comm, raw).group(1))
    assert rep["verdict"]["headline"].startswith(
        f"vmalloc failure: {comm} got {_mib(int(got) // 1024)} of {_mib(int(size) // 1024)} "
        f"before a page allocation failed, {names}")


@pytest.mark.parametrize("quote", ["> ", ">", "> > ", " ", "\t"])
def test_a_quoted_or_indented_log_reads_as_the_log(quote):
    """The RHEL7 idr-bug host's log with every line quoted or indented: the same
    records, the same lines."""
    with open(_path("rhel7-3.10.0-693.2.2-idr-bug.dmesg"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    plain = list(kmsg.extract(logs.normalize(lines)))
    quoted = list(kmsg.extract(logs.normalize([quote + ln for ln in lines])))
    assert [type(r).__name__ for r in quoted] == [type(r).__name__ for r in plain]
    assert [getattr(r, "header", getattr(r, "message", None)) for r in quoted] == \
        [getattr(r, "header", getattr(r, "message", None)) for r in plain]


def test_crlf_log_reads_as_the_log(tmp_path):
    src = _path("lkml-5.14-ppc64-memcg-pcpu-alloc-null.log")
    crlf = tmp_path / "crlf.log"
    crlf.write_bytes(open(src, "rb").read().replace(b"\n", b"\r\n"))
    a = triage(TriageInputs(log_path=src, entries=[]))["verdict"]["headline"]
    b = triage(TriageInputs(log_path=str(crlf), entries=[]))["verdict"]["headline"]
    assert a == b


# -- old and 64 KiB show_mem blocks ----------------------------------------------------

def test_26_oom_report_with_wrapped_buddy_lines():
    name = "lkml-2.6.16-oom-showmem.log"
    raw = _raw(name)
    p = _cli("--log", _path(name))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("VERDICT: known condition: Global OOM kill")
    rep = _triage(name, [])
    [oom] = rep["memory"]["oom_reports"]
    # "oom-killer: gfp_mask=0x201d2, order=0" (no task name in 2.6.16)
    mask, order = re.search(r"^oom-killer: gfp_mask=(0x[0-9a-f]+), order=(\d+)", raw, re.M).groups()
    assert (oom["comm"], oom["gfp"]["mask"], oom["order"]) == (None, mask, int(order))
    # "Out of Memory: Kill process 8041 (bash) score 83591 and children." chose bash;
    # "Out of memory: Killed process 8154 (vrsx)" killed its child
    pid, comm = re.search(r"Killed process (\d+) \((\w+)\)", raw).groups()
    assert (oom["killed"]["pid"], oom["killed"]["comm"]) == (int(pid), comm)
    assert rep["verdict"]["headline"] == (f"OOM kill (global): {comm} pid {pid}; invoked for "
                                          f"order {order} (4 KiB)")
    zones = {z["zone"]: z for z in oom["zones"]}
    # "DMA free:2072kB min:88kB ..." / "present:16384kB pages_scanned:13500 all_unreclaimable? yes"
    for zone in ("DMA", "DMA32", "Normal", "HighMem"):
        free, mn = re.search(rf"^{zone} free:(\d+)kB min:(\d+)kB", raw, re.M).groups()
        # (present:NkB is on the zone's line or the line the mail wrapped it onto)
        present = re.search(rf"^{zone} free:[^\n]*?\n?[^\n]*?present:(\d+)kB", raw, re.M)
        assert (zones[zone]["free_kb"], zones[zone]["min_kb"]) == (int(free), int(mn))
        assert zones[zone]["present_kb"] == int(present.group(1))
    # "DMA: 2*4kB 0*8kB ... 0*2048kB" / "0*4096kB = 2072kB": the total on the wrapped line
    for zone in ("DMA", "Normal"):
        line = re.search(rf"^{zone}: ((?:\d+\*\d+kB\s+)+)= (\d+)kB", raw, re.M)
        counts = [int(c) for c in re.findall(r"(\d+)\*\d+kB", line.group(1))]
        assert zones[zone]["free_blocks"] == counts and len(counts) == 11
        assert zones[zone]["buddy_total_kb"] == int(line.group(2))
        assert zones[zone]["buddy_total_ok"]
    # "DMA32: empty", "HighMem: empty": no free lists, and no problem said of them
    assert zones["DMA32"]["free_blocks"] is None and zones["HighMem"]["free_blocks"] is None
    assert oom["problems"] == []


def test_64k_pages_sysrq_m_snapshot():
    name = "bugzilla-213609-ppc64le-64k-sysrq-m.log"
    raw = _raw(name)
    rep = _triage(name)
    [sm] = rep["memory"]["show_mem"]
    [z] = sm["zones"]
    # "Node 0 Normal free:19204416kB min:180224kB low:225280kB" (wrapped over four lines)
    free, mn = re.search(r"Node 0 Normal free:(\d+)kB min:(\d+)kB", raw).groups()
    present = re.search(r"present:(\d+)kB managed", raw).group(1)
    assert (z["free_kb"], z["min_kb"], z["present_kb"]) == (int(free), int(mn), int(present))
    # "Node 0 Normal: 12805*64kB (UME) ... 1079*16384kB (UME) = 19204800kB" (three lines)
    terms = re.findall(r"(\d+)\*(\d+)kB", raw.split("Node 0 Normal:")[1].split("=")[0])
    assert z["free_blocks"] == [int(c) for c, _ in terms]
    assert z["block_kb"] == [int(s) for _, s in terms] and z["block_kb"][0] == 64
    assert z["buddy_total_kb"] == int(re.search(r"\) = (\d+)kB", raw).group(1))
    assert z["largest_free_order"] == len(terms) - 1
    # "524288 pages RAM" of 64 KiB
    pages = int(re.search(r"\] (\d+) pages RAM", raw).group(1))
    assert rep["system"]["memory_bytes"] == pages * 64 * 1024
    largest = int(terms[-1][1])
    assert rep["verdict"]["headline"] == (
        f"memory snapshot (SysRq-m), no event: {_mib(int(free))} free of "
        f"{_mib(pages * 64)} RAM ({pages} pages of 64 KiB); largest free block "
        f"{_mib(largest)} (order {len(terms) - 1}) in Node 0 Normal")


# -- user-space text, SLUB reports ------------------------------------------------------

def test_user_space_text_given_as_log_points_to_text():
    name = "moby-29638-docker-mkdir-enospc.text"
    err = re.search(r"mkdir /sys/fs/cgroup/\S+: no space left on device", _raw(name)).group(0)
    p = _cli("--log", _path(name))
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "no kernel log lines" in p.stderr and "--text FILE" in p.stderr
    assert err in p.stderr
    # and --text reads it
    p = _cli("--text", _path(name))
    assert p.returncode == 0 and "memcg-id-exhaustion" in p.stdout


def test_slub_report_gives_the_release_of_its_cpu_line():
    name = "moby-29879-memcg-cache-objects-remaining.log"
    raw = _raw(name)
    # "CPU: 5 PID: 68532 Comm: lvremove Tainted: GF   B       E  ------------   3.10.0-514.2.2.el7.x86_64 #1"
    rel = re.search(r"CPU: \d+ PID: \d+ Comm: \S+ Tainted: .*?(\d+\.\d+\.\d+\S*) #", raw).group(1)
    assert "Linux version" not in raw and "Kernel panic" not in raw
    rep = _triage(name)
    assert rep["system"]["release"] == rel
    assert rep["system"]["panic"] is None        # a report, not a crash
    v = rep["verdict"]
    assert v["matches"][0]["id"] == "memcg-kmem-cache-leak"
    assert "kernel release not known" not in v["headline"]
