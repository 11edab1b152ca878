"""Every knowledge-base entry against every real log: each entry is matched by
the public log excerpts that show its problem and by no other log.

The expected entry of each log below is what the log itself shows (read off
the excerpt and its source thread, named in tests/data/logs/SOURCES.md), not
what triage printed:

- a NULL dereference with RIP test_clear_page_writeback -> memcg-writeback-null-deref;
- "Memory cgroup out of memory" / CONSTRAINT_MEMCG -> oom-memcg-limit;
- "Out of memory: Kill..." with CONSTRAINT_NONE and an order-0 request -> oom-global;
- CONSTRAINT_CPUSET / CONSTRAINT_MEMORY_POLICY -> the constrained OOM entries;
- "invoked oom-killer: ... order=2" -> oom-high-order-fragmented;
- the RHEL7 idr-bug log's order-6 failure: every zone fails, DMA32 only because of
  lowmem_reserve (recomputed below from its zone and buddy lines) ->
  lowmem-reserve-held as well as the RHEL7 idr bug (which stays first);
- SLUB "Objects remaining in kmalloc-256(0:<container>)" -> memcg-kmem-cache-leak,
  "Objects remaining in tfw_cli_conn_cache" (a global cache) -> nothing;
- and so on for each file.

Logs that only show the start of an OOM report (the excerpt ends before the
kill line) match no entry: triage gives the diagnosis class instead.

The ``.text`` files are user-space text (kubelet events, runc errors, a shell
session, /proc/cgroups), given to triage as ``texts`` (``--text FILE``): a
memory cgroup mkdir refused with "cannot allocate memory" ->
memcg-mkdir-enomem; refused with "no space left on device", or /proc/cgroups
showing the memory hierarchy at 64734 or 65535 cgroups -> memcg-id-exhaustion;
a /proc/cgroups with 1 memory cgroup -> nothing.
"""

import os
import re

import pytest

from crashext.analysis.kbmatch import allocfail_ok, held_back_zones
from crashext.analysis.evidence import TriageInputs, triage
from crashext.kb import LogPattern, load_kb
from crashext.sources.logs import load_log
from pending_logs import UNREAD, params
from sharedcorpus import corpus_file

_HERE = os.path.dirname(os.path.abspath(__file__))
_DATA = os.path.join(_HERE, "data", "logs")
SEED_LOG = "rhel7-3.10.0-693.2.2-idr-bug.dmesg"

#: log -> the entries its content shows (empty: no entry, a diagnosis)
EXPECTED = {
    # the RHEL7 idr bug, and its order-6 failure's DMA32 zone held back by lowmem_reserve
    SEED_LOG: {"rhel7-kmemcg-id-ida-bug", "lowmem-reserve-held"},
    "runc-1725-slub-memcg.log": {"rhel7-kmem-accounting-slub"},
    "moby-27576-slub-el7-syslog.log": {"rhel7-kmem-accounting-slub"},
    "linuxmm-4.13-memcg-writeback-null.log": {"memcg-writeback-null-deref"},
    "netdev-5.16-mptcp-page-counter-underflow.log": {"mptcp-page-counter-underflow"},
    "bpf-5.19-sockmap-page-counter-underflow.log": {"page-counter-underflow"},
    "syzbot-4.20-memcg-uffd-fork-uaf.log": {"memcg-uffd-fork-uaf"},
    "lkml-5.2-memcg-oom.log": {"oom-memcg-limit"},
    "lkml-5.8-global-oom.log": {"oom-global"},
    "lkml-cpuset-oom.log": {"oom-cpuset-constrained"},
    "lkml-mempolicy-oom.log": {"oom-mempolicy-constrained"},
    "linuxmm-4.5-order2-oom-fragmented.log": {"oom-high-order-fragmented"},
    "systemd-6.17-oom-journal.log": {"oom-no-killable-process"},
    "linuxmm-3.4-mlx4-atomic-order2.log": {"gfp-atomic-high-order"},
    "coreos-4.9-gfp-atomic.log": {"gfp-atomic-order0"},
    "cortx-rhel7-interleaved.log": {"gfp-atomic-order0"},
    "rpi-4.12-memalloc.log": {"gfp-atomic-order0"},
    "xtensa-6.8-atomic.log": {"gfp-atomic-order0"},
    "spdk-5.4-dmesg-T.log": {"costly-order-failure"},
    "writeboost-3.18.log": {"costly-order-failure"},
    "lkp-6.7-noretry-order1.log": {"gfp-noretry-failure"},
    "linuxmm-skbuff-slub-atomic.log": {"slab-growth-failure-atomic"},
    "moby-29879-memcg-cache-objects-remaining.log": {"memcg-kmem-cache-leak"},
    "bootc-arm-oldformat.log": {"vmalloc-zero-size"},
    # the area's order-0 page allocation failed with the caller's __GFP_NORETRY: both
    # the specific bug and the general condition (the specific one ranks first)
    "bugzilla-200651-xtables-vmalloc.log": {"xtables-vmalloc-noretry", "gfp-noretry-failure"},
    # huge vmalloc (page order 9) of a 6.3 kernel: costly order, not atomic nor NORETRY
    "lkml-6.3-vmalloc-order9-highatomic.log": {"costly-order-failure"},
    # vmalloc areas that failed part-way at order 0, no entry for them: a diagnosis
    "linuxmm-4.10-vmalloc-xfs-greedy.log": set(),
    "lkml-4.19-vmalloc-fork-stack.log": set(),
    # no vmalloc address space for a BPF JIT image (no page allocation failed)
    "syzbot-5.19-vmalloc-vm-struct.log": set(),
    # user-space text: the failures the kernel does not print
    "k8s-96701-mkdir-enomem-rhel79.text": {"memcg-mkdir-enomem"},
    "nomad-6538-docker-mkdir-enomem.text": {"memcg-mkdir-enomem"},
    "k8s-61937-proc-cgroups-65535.text": {"memcg-id-exhaustion"},
    "k8s-handbook-313-mkdir-enospc.text": {"memcg-id-exhaustion"},
    "dailywork-58-proc-cgroups-64734.text": {"memcg-id-exhaustion"},
    "leviathan-99-proc-cgroups.text": set(),
    # OOM reports cut before the kill line, and a Mem-Info dump without an event
    "db1000n-5.4-uek-oom.log": set(),
    "mounts3-5.15-oom-syslog.log": set(),
    "relate-6.16-oom-dmesg-T.log": set(),
    "shakenfist-4.15-oom.log": set(),
    "mounts3-meminfo-012.log": set(),
    # SLUB "Objects remaining" in a global cache (a module's own leak on rmmod)
    "tempesta-953-slub-objects-remaining.log": set(),
    # oopses in or near memory cgroup code on other architectures: no entry
    # for them, a diagnosis (arm64 in mem_cgroup_get_nr_swap_pages, ppc64 in
    # mem_cgroup_charge_common, ppc64 in the page and slab allocators called
    # by mem_cgroup_alloc / mem_cgroup_init, s390 in mod_node_page_state)
    "lkml-5.8-arm64-memcg-swap-null.log": set(),
    "linuxmm-2.6.28-ppc64-memcg-charge-oops.log": set(),
    "lkml-5.14-ppc64-memcg-pcpu-alloc-null.log": set(),
    "linuxmm-3.19-ppc64-memcg-init-slab-oops.log": set(),
    "linuxmm-4.12-s390-vmstat-addressing-exception.log": set(),
    # two global OOM kills (order=0), then manual ones (SysRq-f, order=-1) that
    # kill the same process again: a log about manual kills, not memory running out
    "linuxmm-4.2-sysrq-f-manual-oom.log": {"oom-manual-sysrq"},
    # one SysRq-f OOM report with its Mem-Info ("order=-1", "moom_callback")
    "oomanalyser-5.13-sysrq-f-meminfo.log": {"oom-manual-sysrq"},
    # a vmalloc failure quoted with "> " in a reply: GFP_KERNEL, no NORETRY
    "linuxmm-4.20-quoted-vmalloc-ebtables.log": set(),
    # a 2.6.16 global OOM kill ("Out of memory: Killed process 8154 (vrsx)")
    "lkml-2.6.16-oom-showmem.log": {"oom-global"},
    # SysRq-m on 64 KiB pages: a memory snapshot, no event
    "bugzilla-213609-ppc64le-64k-sysrq-m.log": set(),
    # two memcg OOM kills, then the WARNING in try_charge panics (panic_on_warn)
    "linuxmm-4.18-memcg-try-charge-panic-on-warn.log": {"oom-memcg-limit"},
    # dockerd: mkdir in the memory hierarchy, no space left on device
    "moby-29638-docker-mkdir-enospc.text": {"memcg-id-exhaustion"},
}

#: entries whose evidence only a dump gives, and where it is tested
DUMP_ONLY = {
    # the sysrq fixture dumps (tests/test_triage_vmcore.py, tests/test_triage_crash.py)
    "sysrq-triggered-crash": "tests/test_triage_vmcore.py",
    # the memcg-many fixture dump, 15,000 dying memcgs (slow)
    "dying-memcg-accumulation": "tests/test_kb_dump.py",
}


def _report(name):
    path = os.path.join(_DATA, name)
    if not os.path.exists(path):
        path = corpus_file(name)
    if name.endswith(".text"):
        with open(path, encoding="utf-8") as f:
            return triage(TriageInputs(texts=f.read().splitlines()))
    return triage(TriageInputs(log_lines=load_log(path)))


def _reports():
    """Every log's report but those the parsers cannot read yet (pending_logs)."""
    return {name: _report(name) for name in EXPECTED if name not in UNREAD}


@pytest.fixture(scope="module")
def reports():
    return _reports()


def test_every_log_file_is_in_the_matrix():
    names = {n for n in os.listdir(_DATA) if n.endswith((".log", ".dmesg", ".text"))}
    assert names == set(EXPECTED)


def test_every_entry_has_real_evidence_or_says_why_not():
    ids = {e.id for e in load_kb()}
    shown = set().union(*EXPECTED.values())
    assert shown | set(DUMP_ONLY) == ids, "an entry without a log showing it (or a stale id here)"
    assert not shown & set(DUMP_ONLY)


@pytest.mark.parametrize("name", params(sorted(EXPECTED), UNREAD))
def test_log_matches_exactly_its_entries(reports, name):
    rep = reports[name] if name in reports else _report(name)
    got = {m["id"] for m in rep["verdict"]["matches"]}
    assert got == EXPECTED[name]


@pytest.mark.parametrize("entry", sorted(set().union(*EXPECTED.values())))
def test_entry_matches_no_other_log(reports, entry):
    """The near misses: every log that does not show the entry (same family
    included: per-memcg vs global SLUB caches, mptcp vs other underflows,
    cpuset vs memory-policy vs global OOMs) must leave it unmatched, with a
    reason."""
    for name, rep in reports.items():
        if entry in EXPECTED[name]:
            continue
        res = next(r for r in rep["verdict"]["not_matched"] if r["id"] == entry)
        assert res["why_not"], (entry, name)


def test_seed_log_still_names_the_seed_bug_first(reports):
    v = reports[SEED_LOG]["verdict"]
    assert v["headline"].startswith("known bug: ") and "ida_simple_remove" in v["headline"]
    assert v["matches"][0]["id"] == "rhel7-kmemcg-id-ida-bug"
    # the precursor is not reported on top of the bug it leads to
    assert v["at_risk"] == []


def test_the_same_family_is_told_apart_by_what_the_log_says(reports):
    """Near misses named: the reason an entry of the same family did not match."""
    def why(log, entry):
        return next(r for r in reports[log]["verdict"]["not_matched"] if r["id"] == entry)["why_not"]
    # global skbuff_head_cache vs a per-memcg copy (name(id:cgroup))
    assert "per-memcg copy" in why("linuxmm-skbuff-slub-atomic.log", "rhel7-kmem-accounting-slub")
    assert "not a per-memcg copy" in why("runc-1725-slub-memcg.log", "slab-growth-failure-atomic")
    # the RHEL7 idr-bug log's order-6 failure grows the memcg cache array: not a generic costly failure
    assert "required element unmatched" in why(SEED_LOG, "costly-order-failure")
    # a cpuset-constrained OOM is not a global one, and not a memory-policy one
    assert "not constrained by a cpuset" in why("lkml-cpuset-oom.log", "oom-global")
    assert "CONSTRAINT_MEMORY_POLICY" in why("lkml-cpuset-oom.log", "oom-mempolicy-constrained")
    # an order-2 OOM is the high-order entry, not the global one
    assert "not a high-order request" in why("linuxmm-4.5-order2-oom-fragmented.log", "oom-global")
    # MPTCP's underflow vs the others
    assert "not MPTCP" in why("netdev-5.16-mptcp-page-counter-underflow.log", "page-counter-underflow")


def test_slub_objects_remaining_in_a_global_cache_is_no_memcg_leak(reports):
    """The near miss of memcg-kmem-cache-leak: the same SLUB report for a
    module's own cache (tempesta#953, no name(id:cgroup)) leaves the entry
    unmatched; the per-memcg one (moby#29879) matches on that line."""
    def element(log):
        res = next(r for r in reports[log]["verdict"]["matches"] + reports[log]["verdict"]["not_matched"]
                   if r["id"] == "memcg-kmem-cache-leak")
        return next(e for e in res["elements"] if e["element"].startswith("log: SLUB found"))
    with open(os.path.join(_DATA, "tempesta-953-slub-objects-remaining.log")) as f:
        assert "Objects remaining in tfw_cli_conn_cache on __kmem_cache_shutdown()" in f.read()
    assert element("tempesta-953-slub-objects-remaining.log")["status"] == "unmatched"
    hit = element("moby-29879-memcg-cache-objects-remaining.log")
    assert hit["status"] == "matched" and "Objects remaining in kmalloc-256(0:354604ddeb" in hit["detail"]


# -- lowmem-reserve-held: recomputed from the logs' own zone and buddy lines ----

_ZLINE = re.compile(r"(?:Node \d+ )?(\w+) free:(\d+)kB .*?min:(\d+)kB .*managed:(\d+)kB")
_BLINE = re.compile(r"(?:Node \d+ )?(\w+): ((?:\d+\*\d+kB (?:\(\w+\) )?)+)= \d+kB")


def _mem_info(name):
    """zone -> free, min, managed (pages), lowmem_reserve[] and free blocks per
    order, read with plain regexes from the log text (4 kB pages)."""
    with open(os.path.join(_DATA, name)) as f:
        lines = [re.sub(r"^\[[^\]]*\](?:\[[^\]]*\])? ?", "", ln.rstrip("\n")) for ln in f]
    zones = {}
    for i, ln in enumerate(lines):
        m = _ZLINE.match(ln)
        if m and lines[i + 1].startswith("lowmem_reserve[]:"):
            zones[m.group(1)] = {"free": int(m.group(2)) // 4, "min": int(m.group(3)) // 4,
                                 "managed": int(m.group(4)) // 4,
                                 "reserve": [int(x) for x in lines[i + 1].split(":")[1].split()]}
            continue
        m = _BLINE.match(ln)
        if m and m.group(1) in zones:
            zones[m.group(1)]["blocks"] = [int(x) for x in re.findall(r"(\d+)\*\d+kB", m.group(2))]
    return zones


def _passes_310(free, mn, reserve, blocks, order):
    """mm/page_alloc.c v3.10 __zone_watermark_ok() (ALLOC_WMARK_MIN, no other flags)."""
    free -= (1 << order) - 1
    if free <= mn + reserve:
        return False
    for o in range(order):
        free -= blocks[o] << o
        mn >>= 1
        if free <= mn:
            return False
    return True


def _passes_44(free, mn, reserve, blocks, order):
    """v4.4+ (no flags, nothing high-atomic or CMA): the order-0 test, then a free block."""
    free -= (1 << order) - 1
    return free > mn + reserve and (order == 0 or any(blocks[order:]))


def _entry(rep, eid="lowmem-reserve-held"):
    v = rep["verdict"]
    return next(r for r in v["matches"] + v["not_matched"] if r["id"] == eid)


def test_seed_dma32_is_held_back_by_lowmem_reserve(reports):
    """The RHEL7 idr-bug log: "order:6, mode:0x10c0d0" (GFP_KERNEL: class zone Normal,
    index 2).  DMA32 free:64312kB min:11976kB, lowmem_reserve[]: 0 0 13054:
    it fails with the reserve and passes without it; Normal fails at order 6
    either way (its reserve is 0), so every zone failed."""
    z = _mem_info(SEED_LOG)
    assert z["Normal"]["reserve"] == [0, 0, 0, 0]      # Normal is index 2, its own entry 0
    d32 = z["DMA32"]
    assert not _passes_310(d32["free"], d32["min"], d32["reserve"][2], d32["blocks"], 6)
    assert _passes_310(d32["free"], d32["min"], 0, d32["blocks"], 6)
    n = z["Normal"]
    assert not _passes_310(n["free"], n["min"], 0, n["blocks"], 6)
    # the reserve is the default ratio's: Normal's managed pages / 256
    # (sysctl_lowmem_reserve_ratio[ZONE_DMA32] = 256, Documentation/sysctl/vm.txt)
    assert d32["reserve"][2] == n["managed"] // 256
    rep = reports[SEED_LOG]
    (zv,) = rep["memory"]["zone_verdicts"]
    rows = {r["zone"]: r for r in zv["zones"]}
    assert rows["DMA32"]["reserved"] and not rows["Normal"]["reserved"]
    assert rows["Normal"]["failed_order_without_reserve"] == 6
    res = _entry(rep)
    assert res["matched"] and res["kind"] == "condition"
    assert "DMA32" in res["elements"][0]["detail"]
    # an additional match: the RHEL7 idr-bug log's own bug stays first and names the headline
    ids = [m["id"] for m in rep["verdict"]["matches"]]
    assert ids == ["rhel7-kmemcg-id-ida-bug", "lowmem-reserve-held"]
    assert rep["verdict"]["headline"].startswith("known bug: RHEL 7 kmem cgroup id")


def test_held_back_zone_beside_a_passing_zone_is_no_match(reports):
    """lkp 6.7 "order:1, mode:0x10cc0(GFP_KERNEL|__GFP_NORETRY)": DMA32
    (free:46624kB min:3064kB, lowmem_reserve[2] 10961) is held back by its
    reserve, but Normal passes the min watermark as printed, so the reserve
    did not decide the failure."""
    z = _mem_info("lkp-6.7-noretry-order1.log")
    d32, n = z["DMA32"], z["Normal"]
    assert not _passes_44(d32["free"], d32["min"], d32["reserve"][2], d32["blocks"], 1)
    assert _passes_44(d32["free"], d32["min"], 0, d32["blocks"], 1)
    assert _passes_44(n["free"], n["min"], 0, n["blocks"], 1)
    rep = reports["lkp-6.7-noretry-order1.log"]
    (zv,) = rep["memory"]["zone_verdicts"]
    assert "DMA32" in zv["held_back"] and zv["class"] == "transient"
    res = _entry(rep)
    assert not res["matched"] and "none with a zone other than DMA held back" in \
        res["elements"][0]["detail"]


def test_only_the_dma_zone_held_back_does_not_count(reports):
    """linux-mm 4.5 order-2 OOM: its Mem-Info holds back only DMA (free:6884kB
    min:44kB, lowmem_reserve[1] 1714 for the DMA32-class request: fails with
    it, passes without), and DMA32 has no block of order >= 2 (4513*4kB
    15*8kB 0*16kB ...): fragmentation.  The DMA zone alone is held back by
    design, so the entry's rule gives no zone; and the log has no
    allocation failure, so the entry stays unmatched."""
    name = "linuxmm-4.5-order2-oom-fragmented.log"
    z = _mem_info(name)
    dma, d32 = z["DMA"], z["DMA32"]
    assert not _passes_44(dma["free"], dma["min"], dma["reserve"][1], dma["blocks"], 2)
    assert _passes_44(dma["free"], dma["min"], 0, dma["blocks"], 2)
    assert not _passes_44(d32["free"], d32["min"], 0, d32["blocks"], 2)
    rep = reports[name]
    (oom,) = rep["memory"]["oom_reports"]
    held = [v["zone"] for v in oom["verdicts"] if v["verdict"]["lowmem_reserve_held"]]
    assert held == ["DMA"]
    as_failure = {"order": 2, "frames": [], "flags": "", "held_back": held,
                  "zones": "fragmentation"}
    assert held_back_zones(as_failure) == []
    lp = LogPattern(kind="allocfail", name="n", zones_held_back=True)
    assert not allocfail_ok(lp, as_failure)
    assert allocfail_ok(LogPattern(kind="allocfail", name="n", zones_held_back=False), as_failure)
    assert not _entry(rep)["matched"]


# -- a required element the log cannot give, a fixed release nobody confirmed ---

def test_no_release_in_the_log_is_not_a_full_match(reports):
    """opencontainers/runc#1725: the SLUB failure of a per-memcg cache, and no
    line of the excerpt names the kernel (the reporter said 3.10.0-693.17.1
    in prose).  The RHEL 7 entry still matches on what the log shows, but its
    required kernel release is unknown: the score is 3 of 3 + 1 (the
    release's weight), and the headline says what would confirm it."""
    name = "runc-1725-slub-memcg.log"
    with open(os.path.join(_DATA, name)) as f:
        body = [ln for ln in f if not ln.startswith("# source:")]
    assert not any(re.search(r"Linux version|\b3\.10\.0-\d|\.el7", ln) for ln in body)
    assert any("cache: ip6_dst_cache(0:18479a49f76b" in ln for ln in body)
    rep = reports[name]
    assert rep["system"]["release"] is None
    top = rep["verdict"]["matches"][0]
    assert top["id"] == "rhel7-kmem-accounting-slub"
    assert (top["matched_weight"], top["checked_weight"], top["unconfirmed_weight"]) == (3, 3, 1)
    assert top["score"] == 0.75
    assert [u["element"] for u in top["unconfirmed"]] == ["kernel release"]
    h = rep["verdict"]["headline"]
    assert h.startswith("known bug: RHEL 7 kmem accounting")
    assert h.endswith(" -- if the kernel is a RHEL 7 kernel (el7) before 3.10.0-1075.el7 "
                      "(unconfirmed): kernel release not known")
    # the RHEL7 idr-bug log prints its release: a full match, nothing to confirm
    seed = reports[SEED_LOG]["verdict"]
    assert seed["matches"][0]["score"] == 1.0 and seed["matches"][0]["unconfirmed"] == []
    assert " -- " not in seed["headline"]


def test_the_seed_bug_past_its_unconfirmed_fixed_release_still_matches(tmp_path):
    """The RHEL7 idr-bug log with its release rewritten to 3.10.0-1062.el7 (a
    mutation of the real log, standing for the same BUG on a newer RHEL 7.7
    kernel): kernel-3.10.0-1048.el7, the fixed release the incident write-up
    names, is not confirmed, so the kernel is not excluded; the headline says
    it is believed to contain the fix."""
    with open(os.path.join(_DATA, SEED_LOG)) as f:
        text = f.read()
    assert text.count("3.10.0-693.2.2.el7") == 2     # the two CPU: lines
    path = tmp_path / "rhel7-3.10.0-1062-idr-bug.dmesg"
    path.write_text(text.replace("3.10.0-693.2.2.el7", "3.10.0-1062.el7"))
    rep = triage(TriageInputs(log_lines=load_log(str(path))))
    assert rep["system"]["release"] == "3.10.0-1062.el7.x86_64"
    top = rep["verdict"]["matches"][0]
    assert top["id"] == "rhel7-kmemcg-id-ida-bug"
    rel = next(e for e in top["elements"] if e["element"] == "kernel release")
    assert rel["status"] == "matched"
    assert rep["verdict"]["headline"].endswith(
        " -- but 3.10.0-1062.el7.x86_64 is 3.10.0-1048.el7 or newer, which is believed to "
        "contain the fix (unconfirmed): check for a regression or a different cause")
