"""Warnings before the panic (AT RISK) and the diagnosis when no entry matches.

The precursor log is the RHEL7 idr-bug host's own kernel log up to the line before the
BUG (``------------[ cut here ]``): the order-6 failure in
memcg_update_cache_size is there, the BUG is not.  Expected numbers are read
off the logs (order, task, caller, victim, anon-rss in kB / 1024).
"""

import os
import re

import pytest

from crashext.analysis.kbmatch import Evidence, evaluate_precursor
from crashext.analysis.evidence import TriageInputs, triage
from crashext.kb import load_kb
from crashext.sources.logs import load_log, normalize
from pending_logs import UNCLASSIFIED, UNREAD, params

_HERE = os.path.dirname(os.path.abspath(__file__))
_DATA = os.path.join(_HERE, "data", "logs")
SEED_LOG = os.path.join(_DATA, "rhel7-3.10.0-693.2.2-idr-bug.dmesg")
SEED = "rhel7-kmemcg-id-ida-bug"


def _log(name):
    return load_log(os.path.join(_DATA, name))


def _before_the_bug():
    raw = open(SEED_LOG).read().split("\n")
    cut = next(i for i, ln in enumerate(raw) if "------------[ cut here ]" in ln)
    assert any("kernel BUG at" in ln for ln in raw[cut:])      # the BUG is after the cut
    assert any("order:6" in ln for ln in raw[:cut])            # the failure before it
    return list(normalize(raw[:cut]))


@pytest.fixture(scope="module")
def precursor_report():
    return triage(TriageInputs(log_lines=_before_the_bug()))


def test_order6_failure_without_the_bug_gives_at_risk_not_the_panic_verdict(precursor_report):
    v = precursor_report["verdict"]
    # the panic is not claimed: the only match is the condition the failure
    # itself shows (its DMA32 zone held back by lowmem_reserve), and the
    # warning of the bug outranks it in the headline
    assert [(m["id"], m["kind"]) for m in v["matches"]] == [("lowmem-reserve-held", "condition")]
    assert v["headline"].startswith("AT RISK: ")
    assert not v["headline"].startswith("known bug")
    [risk] = v["at_risk"]
    assert risk["id"] == SEED
    assert "this log shows docker-runc: order-6 allocation failure" in v["headline"]
    # the same fix and workarounds as the bug itself
    assert risk["fixed_in"] == ["kernel-3.10.0-1048.el7 (unconfirmed)"]
    assert any("nokmem" in w for w in risk["workarounds"])
    st = {e["element"]: e["status"] for e in risk["precursor"]["elements"]}
    assert st["log: high-order allocation failure growing or creating per-memcg kmem caches"] == "matched"
    # __GFP_KMEMCG: mode 0x10c0d0 decoded with the 3.10 GFP table
    assert st["log: kmem accounting on: the failing request carries __GFP_KMEMCG"] == "matched"
    assert st["kernel release"] == "matched"     # 3.10.0-693.2.2.el7 < 3.10.0-1048.el7


def test_at_risk_cli_line(tmp_path):
    import subprocess
    import sys
    p = tmp_path / "pre.log"
    p.write_text("\n".join(open(SEED_LOG).read().split("\n")[:53]) + "\n")
    out = subprocess.run([sys.executable, "-m", "crashext", "triage", "--log", str(p)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    first = out.stdout.split("\n")[0]
    assert first.startswith("VERDICT: AT RISK: RHEL 7 kmem cgroup id left at -1")
    assert "AT RISK (the state that leads to a known bug" in out.stdout
    # the warning is listed before the condition the same failure shows
    assert out.stdout.index("AT RISK (the state") < out.stdout.index("[lowmem-reserve-held]")


def test_precursor_needs_an_affected_kernel(precursor_report):
    """The same real failure on another distribution is not AT RISK for
    this bug.  On 3.10.0-1160.el7, past kernel-3.10.0-1048.el7, the release
    believed to fix it but not confirmed, it is AT RISK and says so: an
    unconfirmed fixed release never excludes a kernel."""
    entry = next(e for e in load_kb() if e.id == SEED)
    fails = [dict(f, zones=zv.get("class")) for f, zv in
             zip(precursor_report["memory"]["allocation_failures"],
                 precursor_report["memory"]["zone_verdicts"])]
    for release, want, caveat in (("3.10.0-693.2.2.el7.x86_64", True, False),
                                  ("3.10.0-1160.el7.x86_64", True, True),
                                  ("5.10.0-28-amd64", False, False), (None, True, False)):
        ev = Evidence()
        ev.release, ev.log_hits, ev.allocfails = release, {}, fails
        pre = evaluate_precursor(entry, ev)
        assert pre["matched"] is want, release
        assert bool(pre["caveats"]) is caveat, release
        if caveat:
            assert "3.10.0-1048.el7 or newer, which is believed to contain the fix" in \
                pre["caveats"][0]


def test_costly_failures_elsewhere_are_not_at_risk():
    # order-4 (spdk) and order-8 (writeboost) failures: not through memcg cache paths
    for name in ("spdk-5.4-dmesg-T.log", "writeboost-3.18.log"):
        assert triage(TriageInputs(log_lines=_log(name)))["verdict"]["at_risk"] == []


# -- the diagnosis: what happened, when no entry names it ------------------------------

@pytest.mark.parametrize("name,want", [
    # lkml-5.2: "Memory cgroup out of memory: Killed process 23793 (leaker) ... anon-rss:506500kB"
    ("lkml-5.2-memcg-oom.log", "OOM kill (memcg /leaker): leaker pid 23793, anon-rss 494.6 MiB"),
    # "oom-kill:constraint=CONSTRAINT_CPUSET ... Out of memory: Killed process 13432 (mem_on_node1)"
    ("lkml-cpuset-oom.log", "OOM kill (global, CONSTRAINT_CPUSET): mem_on_node1 pid 13432"),
    # "Out of memory: Killed process 27368 (chromium) ... anon-rss:647056kB"
    ("lkml-5.8-global-oom.log", "OOM kill (global): chromium pid 27368, anon-rss 631.9 MiB"),
    # "CPU 0/KVM invoked oom-killer: ... order=0" and nothing after the header in the excerpt
    ("shakenfist-4.15-oom.log", "OOM killer invoked (scope not in the log) by CPU 0/KVM for order 0"),
    # "kworker/u16:3: page allocation failure: order:4" in nvme_validate_ns
    ("spdk-5.4-dmesg-T.log", "high-order allocation failure: order 4 (64 KiB) for kworker/u16:3 "
                             "in nvme_validate_ns"),
    # "BUG: unable to handle kernel NULL pointer dereference" + "RIP: 0010:test_clear_page_writeback"
    ("linuxmm-4.13-memcg-writeback-null.log", "kernel NULL pointer dereference in "
                                              "test_clear_page_writeback (page writeback, "
                                              "mm/page-writeback.c)"),
    # "WARNING: CPU: 2 PID: 3785 at mm/page_counter.c:56 page_counter_cancel"
    ("netdev-5.16-mptcp-page-counter-underflow.log", "kernel WARNING at mm/page_counter.c:56 "
                                                     "in page_counter_cancel "
                                                     "(memory cgroups (page counters))"),
    # "BUG: KASAN: use-after-free in ..." (the first header names an inlined helper)
    ("syzbot-4.20-memcg-uffd-fork-uaf.log", "use-after-free (KASAN); no known fix in the knowledge base"),
    # "allocated 3047424 of 3465216 bytes": 2976 KiB of 3384 KiB
    ("bugzilla-200651-xtables-vmalloc.log", "vmalloc failure: iptables-restor got 2.9 MiB of 3.3 MiB"),
    # "SLUB: Unable to allocate memory ... cache: skbuff_head_cache"
    ("linuxmm-skbuff-slub-atomic.log", "slab cache growth failure: SLUB could not allocate for "
                                       "skbuff_head_cache, gfp GFP_ATOMIC, 2 time(s)"),
])
def test_diagnosis_names_the_class_and_key_numbers(name, want):
    # with an empty knowledge base the diagnosis is the verdict line
    rep = triage(TriageInputs(log_lines=_log(name), entries=[]))
    assert rep["verdict"]["headline"].startswith(want), rep["verdict"]["headline"]
    assert rep["verdict"]["diagnosis"]["headline"] == rep["verdict"]["headline"]


def test_seed_failure_diagnosis_is_fragmentation():
    """The RHEL7 idr-bug log's zone lines: Normal free 473548 kB > min 55540 kB but no free block
    of order >= 6 (0*512kB 0*1024kB ...); DMA/DMA32 held by lowmem_reserve."""
    rep = triage(TriageInputs(log_lines=_before_the_bug(), entries=[]))
    h = rep["verdict"]["headline"]
    assert h.startswith("high-order allocation failure: order 6 (256 KiB) for docker-runc "
                        "in memcg_update_cache_size")
    assert "fragmentation" in h


#: the headline of every real log starts with one of these
_CLASSES = ("known bug: ", "known condition: ", "deliberate panic: ", "AT RISK: ",
            "OOM kill", "OOM killer invoked", "high-order allocation failure: ",
            "allocation failure: ", "vmalloc failure: ", "slab cache growth failure: ",
            "kernel WARNING", "kernel NULL pointer dereference", "kernel BUG",
            "kernel paging request fault", "s390 addressing exception",
            "WARNING turned into a panic", "use-after-free (KASAN)", "memory snapshot (",
            "no panic, OOM kill or allocation failure in the evidence")


@pytest.mark.parametrize("name", params(sorted(n for n in os.listdir(_DATA)
                                               if n.endswith((".log", ".dmesg"))),
                                        UNREAD, UNCLASSIFIED))
def test_every_corpus_log_gets_an_entry_or_a_diagnosis_class(name):
    for kb in (None, []):
        h = triage(TriageInputs(log_lines=_log(name), entries=kb))["verdict"]["headline"]
        assert h.startswith(_CLASSES), (name, h)


def test_bad_file_in_kb_dir_is_skipped_and_reported(tmp_path):
    import subprocess
    import sys
    good = tmp_path / "good.toml"
    good.write_text('''
[[entry]]
id = "user-oops"
title = "user entry"
kind = "bug"
summary = "s"
meaning = "m"
[entry.signature]
[[entry.signature.log]]
kind = "regex"
name = "leaker"
pattern = 'Killed process \\d+ \\(leaker\\)'
required = true
[[entry.references]]
title = "t"
url = "https://example.org/t"
status = "unconfirmed"
''')
    (tmp_path / "bad.toml").write_text(good.read_text().replace("user-oops", "bad-one")
                                       .replace("\\(leaker", "(leaker"))
    out = subprocess.run([sys.executable, "-m", "crashext", "triage", "--log",
                          os.path.join(_DATA, "lkml-5.2-memcg-oom.log"), "--kb", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "user entry" in out.stdout                   # the good file loaded and matched
    assert "bad.toml:" in out.stdout and "not a valid regex" in out.stdout


def test_panic_subsystem_comes_from_the_source_file_crash_names():
    """The RHEL7 idr-bug crash session: `dis -l` puts the RIP at .../lib/idr.c: 1157
    (sys PANIC: "kernel BUG at lib/idr.c:1157!"); in `bt` the frame after the
    exception RIP is __mem_cgroup_free."""
    text = open(os.path.join(_DATA, "rhel7-3.10.0-693.2.2-crash-session.txt")).read()
    assert "[exception RIP: ida_simple_remove+65]" in text
    assert re.search(r"\[exception RIP: ida_simple_remove\+65\][^#]*#\d+ \[[0-9a-f]+\] "
                     r"__mem_cgroup_free at", text)
    rep = triage(TriageInputs(crash_text=text, entries=[]))
    assert rep["verdict"]["headline"] == ("kernel BUG at lib/idr.c:1157 in ida_simple_remove "
                                          "(ID allocator), called from __mem_cgroup_free "
                                          "(memory cgroups, mm/memcontrol.c)"
                                          "; no known fix in the knowledge base")


@pytest.mark.parametrize("function,file,want", [
    ("mem_cgroup_css_free", None, "memory cgroups, mm/memcontrol.c"),
    ("page_counter_cancel", None, "memory cgroups (page counters), mm/page_counter.c"),
    ("foo", "/usr/src/debug/kernel-3.10.0/linux/mm/memcontrol.c", "memory cgroups, mm/memcontrol.c"),
    ("bar", "drivers/net/ethernet/mellanox/mlx4/en_rx.c", "driver net, drivers/net/ethernet/mellanox/mlx4/en_rx.c"),
    ("some_unknown_function", None, None),
])
def test_subsystem_of(function, file, want):
    from crashext.analysis.diagnosis import subsystem_of
    assert subsystem_of(function, file) == want
