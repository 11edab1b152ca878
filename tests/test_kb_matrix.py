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
- and so on for each file.

Logs that only show the start of an OOM report (the excerpt ends before the
kill line) match no entry: triage gives the diagnosis class instead.
"""

import os

import pytest

from crashext.analysis.triage import triage
from crashext.kb import load_kb
from crashext.sources.logs import load_log

_HERE = os.path.dirname(os.path.abspath(__file__))
_DATA = os.path.join(_HERE, "data", "logs")
SEED_LOG = "rhel7-3.10.0-693.2.2-idr-bug.dmesg"

#: log -> the entries its content shows (empty: no entry, a diagnosis)
EXPECTED = {
    SEED_LOG: {"rhel7-kmemcg-id-ida-bug"},
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
    # OOM reports cut before the kill line, and a Mem-Info dump without an event
    "db1000n-5.4-uek-oom.log": set(),
    "mounts3-5.15-oom-syslog.log": set(),
    "relate-6.16-oom-dmesg-T.log": set(),
    "shakenfist-4.15-oom.log": set(),
    "mounts3-meminfo-012.log": set(),
}

#: entries whose evidence only a dump gives, and where it is tested
DUMP_ONLY = {
    # the sysrq fixture dumps (tests/test_triage_vmcore.py, tests/test_triage_crash.py)
    "sysrq-triggered-crash": "tests/test_triage_vmcore.py",
    # the memcg-many fixture dump, 15,000 dying memcgs (slow)
    "dying-memcg-accumulation": "tests/test_kb_dump.py",
    # no kernel log line exists for it (mkdir fails in user space); no fixture
    # dump with ~65535 memcgs is built: it has no positive real-evidence test
    "memcg-id-exhaustion": None,
}


def _reports():
    out = {}
    for name in EXPECTED:
        path = os.path.join(_DATA, name)
        if not os.path.exists(path):
            path = os.path.join("/work/shared/corpus", name)
        out[name] = triage(log_lines=load_log(path))
    return out


@pytest.fixture(scope="module")
def reports():
    return _reports()


def test_every_log_file_is_in_the_matrix():
    names = {n for n in os.listdir(_DATA) if n.endswith((".log", ".dmesg"))}
    assert names == set(EXPECTED)


def test_every_entry_has_real_evidence_or_says_why_not():
    ids = {e.id for e in load_kb()}
    shown = set().union(*EXPECTED.values())
    assert shown | set(DUMP_ONLY) == ids, "an entry without a log showing it (or a stale id here)"
    assert not shown & set(DUMP_ONLY)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_log_matches_exactly_its_entries(reports, name):
    got = {m["id"] for m in reports[name]["verdict"]["matches"]}
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
    # the seed's order-6 failure grows the memcg cache array: not a generic costly failure
    assert "required element unmatched" in why(SEED_LOG, "costly-order-failure")
    # a cpuset-constrained OOM is not a global one, and not a memory-policy one
    assert "not constrained by a cpuset" in why("lkml-cpuset-oom.log", "oom-global")
    assert "CONSTRAINT_MEMORY_POLICY" in why("lkml-cpuset-oom.log", "oom-mempolicy-constrained")
    # an order-2 OOM is the high-order entry, not the global one
    assert "not a high-order request" in why("linuxmm-4.5-order2-oom-fragmented.log", "oom-global")
    # MPTCP's underflow vs the others
    assert "not MPTCP" in why("netdev-5.16-mptcp-page-counter-underflow.log", "page-counter-underflow")
