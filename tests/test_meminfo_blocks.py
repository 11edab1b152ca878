"""Every Mem-Info block analysed alike: OOM-kill reports (memcg and
global) and SysRq-m dumps, checked against the numbers the kernel printed.

Sources:
- the fixture scenario ``oom-showmem`` (tests/vmcore/scenarios/oom-showmem.sh):
  a Debian 6.1 guest that ran SysRq-m, a memcg OOM in /oom (memory.max 32M),
  a global OOM and SysRq-m again, and saved its whole kernel log as
  truth/dmesg before the dump was taken; the dump holds the same log;
- the RHEL7 idr-bug log (tests/data/logs, project corpus) for an allocation
  failure's Mem-Info block;
- the real public OOM excerpts in tests/data/logs (SOURCES.md names where each
  was published) for OOM headers without a Mem-Info block.

The expected numbers are read from the log text here, with regexes of this
file, independently of crashext's parser.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from crashext.analysis import vmstat
from crashext.sources import kmsg, logs

DATA = Path(__file__).resolve().parent / "data" / "logs"


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "crashext", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def oomfx(vmcore):
    return vmcore("bookworm", "oom-showmem")


# -- what the log printed, read by this test --------------------------------------

_TS = re.compile(r"^\[\s*(\d+\.\d+)\]\s?")
_ZONE = re.compile(r"Node (\d+) (DMA32|DMA|Normal) free:(\d+)kB.*? min:(\d+)kB")
_BUDDY = re.compile(r"Node (\d+) (DMA32|DMA|Normal): (.*) = (\d+)kB\s*$")


def printed_blocks(text):
    """Each Mem-Info block of a dmesg text: its trigger line and, per zone, the
    zone line's free/min and the buddy line's counts per order and total."""
    blocks = []
    cur = None
    trigger = None
    for raw in text.splitlines():
        line = _TS.sub("", raw)
        if "invoked oom-killer" in line or "sysrq: Show Memory" in line:
            trigger = line
        if line.startswith("Mem-Info:"):
            cur = {"trigger": trigger, "zones": {}}
            blocks.append(cur)
            continue
        if cur is None:
            continue
        m = _ZONE.search(line)
        if m and "lowmem" not in line:
            cur["zones"].setdefault((int(m.group(1)), m.group(2)), {}).update(
                free_kb=int(m.group(3)), min_kb=int(m.group(4)))
        m = _BUDDY.search(line)
        if m:
            counts = [int(t.split("*")[0]) for t in m.group(3).split() if "*" in t]
            cur["zones"].setdefault((int(m.group(1)), m.group(2)), {}).update(
                counts=counts, total_kb=int(m.group(4)))
    return blocks


def _largest(counts):
    return max(o for o, n in enumerate(counts) if n)


@pytest.mark.vmcore
def test_oom_and_sysrq_blocks_as_printed(oomfx):
    dmesg = oomfx.truth_dir / "dmesg"
    text = dmesg.read_text()
    printed = printed_blocks(text)
    # the scenario's order: SysRq-m, global OOM, SysRq-m (the memcg OOM prints no Mem-Info)
    kinds = ["oom" if "oom-killer" in b["trigger"] else "sysrq" for b in printed]
    assert kinds == ["sysrq", "oom", "sysrq"]
    p = _cli("allocfail", "--json", str(dmesg))
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    views = data["show_mem"]
    ooms = data["oom_analysis"]
    assert [v["kind"] for v in views] == ["sysrq", "sysrq"]
    got = [views[0], next(o for o in ooms if o["zones"]), views[1]]
    for block, view in zip(printed, got):
        zones = {(z["node"], z["zone"]): z for z in view["zones"]}
        assert set(zones) == set(block["zones"])
        for key, want in block["zones"].items():
            z = zones[key]
            assert z["free_kb"] == want["free_kb"] and z["min_kb"] == want["min_kb"]
            assert z["free_blocks"][:len(want["counts"])] == want["counts"]
            assert z["buddy_total_kb"] == want["total_kb"]
            assert z["largest_free_order"] == _largest(want["counts"])
            # the printed total is the sum of the blocks (the kernel adds them up)
            assert z["buddy_total_ok"] is True


@pytest.mark.vmcore
def test_oom_reports_header_memcg_kill_and_tasks(oomfx):
    text = (oomfx.truth_dir / "dmesg").read_text()
    heads = re.findall(r"(\S+) invoked oom-killer: gfp_mask=(0x[0-9a-f]+)\(([^)]*)\), "
                       r"order=(\d+), oom_score_adj=(-?\d+)", text)
    kills = re.findall(r"Killed process (\d+) \((\S+)\) total-vm:(\d+)kB, anon-rss:(\d+)kB", text)
    usage = re.search(r"memory: usage (\d+)kB, limit (\d+)kB, failcnt (\d+)", text)
    rows = re.findall(r"^\[\s*[\d.]+\] \[\s*(\d+)\]\s+\d+\s+\d+\s+(\d+)\s+(\d+)\s+.*\s(\S+)$",
                      text, re.M)
    assert len(heads) == 2 and len(kills) == 2 and usage and len(rows) == 2
    data = json.loads(_cli("allocfail", "--json", str(oomfx.truth_dir / "dmesg")).stdout)
    ooms = data["oom_analysis"]
    assert [o["scope"] for o in ooms] == ["memcg", "global"]
    for o, h, k, row in zip(ooms, heads, kills, rows):
        assert o["comm"] == h[0] and o["gfp"]["mask"] == h[1]
        assert "|".join(o["gfp"]["printed"]) == h[2]
        # the names from crashext's own 6.1 table are the kernel's (order aside)
        assert set(o["gfp"]["names"]) == set(h[2].split("|"))
        assert o["order"] == int(h[3]) and o["oom_score_adj"] == int(h[4])
        assert o["killed"]["pid"] == int(k[0]) and o["killed"]["comm"] == k[1]
        assert o["killed"]["kb"]["total-vm"] == int(k[2])
        assert o["killed"]["kb"]["anon-rss"] == int(k[3])
        t = o["largest_tasks"][0]
        assert (t["pid"], t["total_vm_pages"], t["rss_pages"], t["name"]) == \
            (int(row[0]), int(row[1]), int(row[2]), row[3])
        assert o["constraint"]["pid"] == k[0]
    memcg = ooms[0]["memcg"]
    c = memcg["counters"]["memory"]
    assert (c["usage_kb"], c["limit_kb"], c["failcnt"]) == tuple(int(x) for x in usage.groups())
    # the scenario set memory.max to 32M on /oom
    assert c["limit_kb"] == 32 * 1024 and memcg["path"] == "/oom" and memcg["at_limit"]
    assert ooms[0]["constraint"]["constraint"] == "CONSTRAINT_MEMCG"
    # the global OOM: the kernel's own check failed in every zone; re-run on its numbers,
    # every zone is below min (+ lowmem_reserve) for its order-0 request
    g = ooms[1]
    assert g["verdicts"] and all(not v["verdict"]["ok"] for v in g["verdicts"])
    assert all(v["verdict"]["check"] == "watermark" for v in g["verdicts"])
    assert g["conclusion"].startswith("out of memory")


@pytest.mark.vmcore
def test_dump_log_gives_the_same_blocks(oomfx):
    """The dump's own kernel log (read by drgn) carries the same OOM and SysRq-m blocks.

    The dump knows its kernel (release and ``uname -v``) before the first
    block; the text's first SysRq-m block comes before any line naming the
    release, so the text is given the kernel the guest's ``uname -a`` names."""
    p = _cli("allocfail", "--json", "-c", str(oomfx.vmcore), "-s", str(oomfx.vmlinux))
    assert p.returncode == 0, p.stderr
    dump = json.loads(p.stdout)
    uname = (oomfx.truth_dir / "uname_a").read_text().split()
    text = json.loads(_cli("allocfail", "--json", "--kernel-version", " ".join(uname[2:-2]),
                           str(oomfx.truth_dir / "dmesg")).stdout)
    strip = ("lines", "problems", "partial", "header", "when", "stamp", "time", "release")

    def norm(views):
        return [{k: v for k, v in x.items() if k not in strip} for x in views]
    assert norm(dump["show_mem"]) == norm(text["show_mem"])
    assert norm(dump["oom_analysis"]) == norm(text["oom_analysis"])


@pytest.mark.vmcore
def test_frag_log_timeline(oomfx):
    dmesg = oomfx.truth_dir / "dmesg"
    printed = printed_blocks(dmesg.read_text())
    p = _cli("frag", "--log", str(dmesg), "--json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert [b["kind"] for b in res["blocks"]] == ["sysrq", "oom-global", "sysrq"]
    for key in printed[0]["zones"]:
        series = res["zones"][f"{key[0]}:{key[1]}"]
        assert [s["largest_free_order"] for s in series] == \
            [_largest(b["zones"][key]["counts"]) for b in printed]
        assert [s["free_kb"] for s in series] == [b["zones"][key]["free_kb"] for b in printed]
    text = _cli("frag", "--log", str(dmesg)).stdout
    assert text.startswith("3 Mem-Info blocks")
    assert "Node 0, zone DMA32" in text


def test_frag_log_on_the_seed_allocation_failure():
    path = DATA / "rhel7-3.10.0-693.2.2-idr-bug.dmesg"
    printed = printed_blocks(path.read_text())
    assert len(printed) == 1
    res = json.loads(_cli("frag", "--log", str(path), "--json").stdout)
    assert [b["kind"] for b in res["blocks"]] == ["allocfail"]
    for key, want in printed[0]["zones"].items():
        z = res["zones"][f"{key[0]}:{key[1]}"][0]
        assert z["largest_free_order"] == _largest(want["counts"])
        assert z["buddy_total_kb"] == want["total_kb"]


@pytest.mark.parametrize("name,scope", [
    ("db1000n-5.4-uek-oom.log", "unknown"), ("relate-6.16-oom-dmesg-T.log", "unknown"),
    ("systemd-6.17-oom-journal.log", "unknown"), ("shakenfist-4.15-oom.log", "unknown"),
])
def test_real_oom_excerpts_header(name, scope):
    """Published OOM excerpts cut before the kill: the header is decoded, the
    scope is not guessed, and the missing parts are said."""
    path = DATA / name
    text = path.read_text()
    m = re.search(r"invoked oom-killer: gfp_mask=(0x[0-9a-f]+)(?:\(([^)]*)\))?.*?order=(\d+), "
                  r"oom_score_adj=(-?\d+)", text)
    data = json.loads(_cli("allocfail", "--json", str(path)).stdout)
    o = data["oom_analysis"][0]
    assert o["gfp"]["mask"] == m.group(1) and o["order"] == int(m.group(3))
    assert o["oom_score_adj"] == int(m.group(4))
    if m.group(2):
        assert set(o["gfp"]["names"]) == set(m.group(2).split("|"))
    assert o["scope"] == scope
    assert o["killed"] is None and "no 'Killed process' line" in o["problems"]
    assert o["notes"] and "cannot be re-run" in o["notes"][0]


@pytest.mark.vmcore
@pytest.mark.parametrize("header", ["SysRq : Show Memory", "sysrq: SysRq : Show Memory"])
def test_older_sysrq_headers(oomfx, header):
    """The trigger line of older kernels opens the same record (the body is the
    guest's own, only the header line is rewritten)."""
    text = (oomfx.truth_dir / "dmesg").read_text().replace("sysrq: Show Memory", header)
    recs = [r for r in kmsg.extract(logs.normalize(text.splitlines()))
            if isinstance(r, kmsg.ShowMem)]
    assert [r.trigger for r in recs] == ["sysrq", "sysrq"]
    assert all(not r.partial and len(r.buddy) == 2 for r in recs)


def test_sysrq_block_cut_short_is_partial():
    """A SysRq-m block that stops after the zone lines (no buddy lines) is
    marked partial with what is missing, not dropped or guessed."""
    text = (DATA / "mounts3-meminfo-012.log").read_text()
    lines = ["[    5.0] sysrq: Show Memory"] + [
        "[    5.1] " + ln.split("kernel: ", 1)[1] for ln in text.splitlines()
        if "kernel: " in ln]
    recs = [r for r in kmsg.extract(logs.normalize(lines)) if isinstance(r, kmsg.ShowMem)]
    assert len(recs) == 1 and recs[0].trigger == "sysrq"
    assert recs[0].partial and any("no buddy line" in p for p in recs[0].problems)


def test_show_mem_printed_one_piece_a_line_is_joined():
    """A 4.19 kernel logged each pr_cont piece of show_mem as a line of its
    own (lowmem_reserve[]: then one value a line; "DMA:" then "1*4kB",
    "(U)", ... "= 15900kB").  The pieces make the lines the kernel meant:
    the values and totals below are the ones printed in the log."""
    text = (DATA / "lkml-4.19-vmalloc-fork-stack.log").read_text()
    rec, = [r for r in kmsg.extract(logs.normalize(text.splitlines()))
            if isinstance(r, kmsg.AllocFailure)]
    assert [(z.zone, z.lowmem_reserve) for z in rec.zones] == [
        ("DMA", [0, 3030, 15777, 15777]), ("DMA32", [0, 0, 12746, 12746]),
        ("Normal", [0, 0, 0, 0])]
    assert [(b.zone, b.total_kb, b.total_ok) for b in rec.buddy] == [
        ("DMA", 15900, True), ("DMA32", 1115072, True), ("Normal", 111980, True)]
    # DMA: 1*4kB (U) 1*8kB (U) 1*16kB (U) 0*32kB 2*64kB (U) 1*128kB (U) 1*256kB (U)
    #      0*512kB 1*1024kB (U) 1*2048kB (M) 3*4096kB (M) = 15900kB
    assert rec.buddy[0].counts == [1, 1, 1, 0, 2, 1, 1, 0, 1, 1, 3]
    assert rec.buddy[0].line == 53 and not rec.problems   # the "DMA:" head


def test_a_buddy_line_in_pieces_cut_short_is_a_problem_not_a_guess():
    lines = ["[ 1.0] swapper/0: page allocation failure: order:2, mode:0x20",
             "[ 1.0] Mem-Info:",
             "[ 1.0] Normal free:100kB min:10kB low:12kB high:14kB present:400kB managed:400kB",
             "[ 1.0] lowmem_reserve[]:", "[ 1.0]  0", "[ 1.0]  0",
             "[ 1.0] Normal:", "[ 1.0] 1*4kB", "[ 1.0] (U)", "[ 1.0] 2*8kB",
             "[ 1.0] 5 total pagecache pages"]
    rec, = [r for r in kmsg.extract(logs.normalize(lines)) if isinstance(r, kmsg.AllocFailure)]
    assert rec.zones[0].lowmem_reserve == [0, 0]
    assert [(b.zone, b.counts, b.total_kb, b.total_ok) for b in rec.buddy] == [
        ("Normal", [1, 2], None, None)]


@pytest.mark.vmcore
def test_vmstat_from_dump_equals_the_guest_vmstat(oomfx):
    from crashext.kernel import drgn_backend
    t = drgn_backend.open_core(str(oomfx.vmcore), str(oomfx.vmlinux))
    dump = vmstat.from_target(t)
    truth = oomfx.truth()["vmstat"]
    for name in ("compact_stall", "compact_fail", "compact_success",
                 "oom_kill", "allocstall_movable", "allocstall_normal"):
        assert dump[name] == truth[name], name
    # kcompactd and kswapd run on their own: between the guest's read of
    # /proc/vmstat and the panic they may wake again (seen: compact_daemon_wake
    # 1 read, 2 in the dump on one build), and event counters only grow
    for name in ("compact_daemon_wake", "pageoutrun"):
        assert dump[name] >= truth[name], name
    # the scenario killed twice
    assert dump["oom_kill"] == 2
    s = vmstat.summary(dump, "dump")
    assert s["counters"]["oom_kill"] == 2
    assert s["counters"]["allocstall"] == sum(v for k, v in truth.items()
                                              if k.startswith("allocstall_"))


# -- the buddy line's split: the one-regex definition and the fast parts agree --

_BUDDY_ONE_REGEX = re.compile(
    r"^\s*(?:Node (?P<node>\d+) )?(?P<zone>DMA32|DMA|Normal|HighMem|Movable|Device): "
    r"(?P<body>(?:\d+\*\d+kB.*?)?)\s*(?:= (?P<total>\d+)kB)?\s*$")


def _one_regex(text):
    m = _BUDDY_ONE_REGEX.match(text)
    return None if m is None else (m.group("node"), m.group("zone"), m.group("body"),
                                   m.group("total"))


_PIECES = ["Node 0 ", "DMA32", "DMA", "Normal", ": ", " ", "= ", "12", "*", "4kB", "kB",
           "(UEM)", "=", "\t", "x", "0*8kB ", "= 5kB", "  ", "\u00a0", "\x1c", "\u0663",
           "\r", "= 1kB\r", "= 1kB ", "1*4kB= 2kB"]


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(["", "Node 0 Normal: ", "DMA: ", "  Node 1 DMA32: ", "Normal: 3*4kB"]),
       st.lists(st.sampled_from(_PIECES), max_size=14))
def test_buddy_parts_equal_the_one_regex_on_any_text(head, pieces):
    """meminfo splits a buddy line without the one regex's slow lazy body;
    on any text (whitespace of every kind, truncated terms, stray '=') it
    finds the same node, zone, body and total, or the same no-match."""
    from crashext.sources.showmem import buddy_parts
    text = head + "".join(pieces)
    assert buddy_parts(text) == _one_regex(text)


def test_buddy_parts_equal_the_one_regex_on_every_real_line():
    from crashext.sources.showmem import buddy_parts
    logs_dir = Path(__file__).parent / "data" / "logs"
    n = 0
    for p in sorted(logs_dir.iterdir()):
        for ln in logs.log_lines(str(p)):
            assert buddy_parts(ln.text) == _one_regex(ln.text), (p.name, ln.lineno)
            n += _one_regex(ln.text) is not None
    assert n >= 8   # the 8 real buddy lines of these logs were among them
