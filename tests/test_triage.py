"""triage on the RHEL7 idr-bug log and crash transcript: what they say.

The log (rhel7-3.10.0-693.2.2-idr-bug.dmesg, in tests/data/logs and the
shared corpus) and the crash session (…-crash-session.txt) are the real ones
of the CentOS 7 node whose crash crashext exists for; the expected values
below are read off them, not off our own output.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from crashext.analysis import panic
from crashext.analysis.evidence import TriageInputs, triage
from crashext.sources import crashlog
from crashext.sources.logs import load_log
from pending_logs import UNREAD, params
from sharedcorpus import corpus_file

_HERE = os.path.dirname(os.path.abspath(__file__))


def _corpus(name):
    """The project's copy in tests/data/logs, else the shared corpus."""
    p = os.path.join(_HERE, "data", "logs", name)
    return p if os.path.exists(p) else corpus_file(name)


LOG = "rhel7-3.10.0-693.2.2-idr-bug.dmesg"
CRASH = "rhel7-3.10.0-693.2.2-crash-session.txt"
SEED = "rhel7-kmemcg-id-ida-bug"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "crashext", "triage"] + list(args),
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def log_report():
    return triage(TriageInputs(log_lines=load_log(_corpus(LOG))))


def test_log_names_the_seed_bug_first(log_report):
    v = log_report["verdict"]
    assert v["matches"] and v["matches"][0]["id"] == SEED
    # besides the bug, only the condition of its failure's DMA32 zone (held back
    # by lowmem_reserve, tests/test_kb_matrix.py) fits this log
    assert [m["id"] for m in v["matches"]] == [SEED, "lowmem-reserve-held"]
    top = v["matches"][0]
    assert top["fixed_in"] == ["kernel-3.10.0-1048.el7 (unconfirmed)"]
    assert any("cgroup.memory=nokmem" in w for w in top["workarounds"])
    st = {e["element"]: e["status"] for e in top["elements"]}
    assert st["panic string"] == "matched"
    assert st["exception RIP function"] == "matched"
    assert st["frame __mem_cgroup_free"] == "matched"
    # no dump: the memcg predicate cannot be checked and must not count
    assert st["dump: a memcg with kmem active but kmemcg_id -1"] == "unknown"
    assert top["checked_weight"] < top["total_weight"]


def test_log_failing_allocation_and_order6_verdict(log_report):
    mem = log_report["memory"]
    # "[66249123.178811] docker-runc: page allocation failure: order:6, mode:0x10c0d0"
    (f,) = mem["allocation_failures"]
    assert (f["comm"], f["pid"], f["cpu"], f["order"], f["mode"]) == \
        ("docker-runc", 20628, 3, 6, "0x10c0d0")
    assert "memcg_update_cache_size" in [x["function"] for x in f["frames"]]
    (zv,) = mem["zone_verdicts"]
    assert zv["rule"] == "3.10"
    zones = {z["zone"]: z for z in zv["zones"]}
    assert set(zones) == {"DMA", "DMA32", "Normal"}  # mode has no zone bits: up to Normal
    n = zones["Normal"]
    # Normal free:473548kB min:55540kB; buddy: nothing above 3*256kB (order 6)
    assert not n["ok"] and n["failed_order"] == 6 and n["largest_free_order"] == 6
    assert (n["free_kb"], n["min_kb"]) == (473548, 55540)
    # lower zones are above min but under min + lowmem_reserve[Normal]
    assert zones["DMA32"]["reserved"] and zones["DMA"]["reserved"]
    assert zv["fragmentation"] is True


def test_log_system_and_panic(log_report):
    s, p = log_report["system"], log_report["panic"]
    assert s["release"] == "3.10.0-693.2.2.el7.x86_64"
    assert s["panic"] == "kernel BUG at lib/idr.c:1157!"
    assert s["memory_bytes"] == 4194174 * 4096           # "4194174 pages RAM"
    # the log's release names the architecture; "Hardware name:" the machine model
    assert s["machine"] == "x86_64"
    assert s["hardware"].startswith("Alibaba Cloud Alibaba Cloud ECS, BIOS rel-1.7.5")
    assert (p["pid"], p["comm"], p["cpu"]) == (18614, "kworker/3:94", 3)
    assert p["rip"]["function"] == "ida_simple_remove"
    assert (p["rip"]["offset"], p["rip"]["size"]) == (0x41, 0x50)
    assert [f["function"] for f in p["frames"]][:2] == ["__mem_cgroup_free", "free_work"]


def test_crash_session_parsed():
    with open(_corpus(CRASH)) as f:
        s = crashlog.parse_crash_session(f.read())
    assert s["sys"]["RELEASE"] == "3.10.0-693.2.2.el7.x86_64"
    assert len(s["bt"]["frames"]) == 14                 # #0 .. #13
    p = panic.panic_from_crash_session(s)
    assert p["panic"] == "kernel BUG at lib/idr.c:1157!"
    assert (p["pid"], p["comm"], p["cpu"], p["task"]) == (18614, "kworker/3:94", 3, 0xffff88015cb20fd0)
    # "[exception RIP: ida_simple_remove+65]" + "dis -l": lib/idr.c: 1157
    assert p["rip"] == {"function": "ida_simple_remove", "offset": 65, "pc": 0xffffffff81324031,
                        "size": None, "file": "lib/idr.c", "line": 1157}
    names = [f["function"] for f in p["frames"]]
    # the exception frame sits between invalid_op (#7) and __mem_cgroup_free (#8)
    i = names.index("ida_simple_remove")
    assert names[i - 1] == "invalid_op" and names[i + 1] == "__mem_cgroup_free"


def test_crash_log_adds_panic_string_and_bt():
    rep = triage(TriageInputs(log_lines=load_log(_corpus(LOG)),
                              crash_text=open(_corpus(CRASH)).read()))
    assert rep["verdict"]["matches"][0]["id"] == SEED
    p = rep["panic"]
    assert p["source"] == "crash-log" and p["panic"] == "kernel BUG at lib/idr.c:1157!"
    assert p["rip"]["file"] == "lib/idr.c" and p["rip"]["line"] == 1157
    assert "machine_kexec" in [f["function"] for f in p["frames"]]
    assert rep["system"]["panic_time"] == "Sat Aug 15 09:45:43 2020"   # crash sys DATE
    assert rep["system"]["crash_warning"].startswith("kernel version inconsistency")


def test_crash_log_alone_leaves_log_elements_unknown():
    rep = triage(TriageInputs(crash_text=open(_corpus(CRASH)).read()))
    top = rep["verdict"]["matches"][0]
    assert top["id"] == SEED
    st = {e["element"]: e["status"] for e in top["elements"]}
    assert st["log: high-order allocation failure growing the memcg cache array"] == "unknown"
    sysrq = next(r for r in rep["verdict"]["not_matched"] if r["id"] == "sysrq-triggered-crash")
    assert sysrq["score"] == 0.0


def test_cli_human_json_markdown():
    log = _corpus(LOG)
    p = run_cli("--log", log)
    assert p.returncode == 0, p.stderr
    first = p.stdout.splitlines()[0]
    assert first.startswith("VERDICT: known bug:") and "ida_simple_remove" in first
    assert "kernel-3.10.0-1048.el7" in p.stdout and "order 6" in p.stdout
    j = run_cli("--log", log, "--json")
    data = json.loads(j.stdout)
    assert data["verdict"]["matches"][0]["id"] == SEED
    m = run_cli("--log", log, "--crash-log", _corpus(CRASH), "--markdown")
    assert m.returncode == 0
    assert m.stdout.startswith("## Kernel crash triage")
    assert re.search(r"\*\*Fixed in:\*\* kernel-3\.10\.0-1048\.el7 \(unconfirmed\)", m.stdout)


@pytest.mark.parametrize("make,needle", [
    (lambda d: str(d / "missing.log"), "no such file"),
    (lambda d: (d / "e.log").write_text("") and str(d / "e.log") or str(d / "e.log"), "empty file"),
    (lambda d: (d / "b.log").write_bytes(b"\x7fELF\0\0\0") and str(d / "b.log"), "binary data"),
    (lambda d: (d / "t.log").write_text("hello\nworld\n") and str(d / "t.log"), "no kernel log lines"),
    (lambda d: str(d), "is a directory"),
])
def test_bad_log_is_one_line_exit_2(tmp_path, make, needle):
    p = run_cli("--log", make(tmp_path))
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and needle in p.stderr and "Traceback" not in p.stderr


def test_bad_crash_log_and_nothing_given(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("just some text\n")
    p = run_cli("--crash-log", str(f))
    assert p.returncode == 2 and "crash session transcript" in p.stderr
    p = run_cli()
    assert p.returncode == 2 and "nothing to triage" in p.stderr


# -- logs that are not the RHEL7 idr-bug log: other real logs, mutilated ones ---------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from crashext.sources import logs  # noqa: E402

_DATA = os.path.join(_HERE, "data", "logs")


@pytest.mark.parametrize("name", params(sorted(n for n in os.listdir(_DATA) if n.endswith(".log")),
                                         UNREAD))
def test_every_real_log_gives_a_report(name):
    """Each public log in tests/data/logs: a report, no crash; the RHEL7 idr bug is
    matched by none of them (none has its panic string)."""
    rep = triage(TriageInputs(log_lines=load_log(os.path.join(_DATA, name))))
    assert SEED not in [m["id"] for m in rep["verdict"]["matches"]]
    # (a mail's "> " quote marks off; a line it wrapped is matched across the break)
    raw = "".join(re.sub(r"^(?:> ?)+", "", ln)
                  for ln in open(os.path.join(_DATA, name), errors="replace")
                  if not ln.startswith("# source:"))
    # records of the shared log analysis: page allocation failures, the
    # whole-request vmalloc failures ("allocation failure: N bytes") and, with
    # the task name first (v4.10+), the part-way ones ("allocated X of Y bytes")
    n_fail = raw.count("page allocation failure") + raw.count("vmalloc error") + \
        len(re.findall(r"\S: vmalloc: allocation failure: \d+ bytes", raw)) + \
        len(re.findall(r"\S: vmalloc: allocation failure, allocated\s+\d+\s+of\s+\d+\s+bytes", raw))
    assert len(rep["memory"]["allocation_failures"]) == n_fail


def test_vmalloc_failure_has_no_order():
    # mm/vmalloc.c (v5.x) warn_alloc(gfp, NULL, "vmalloc: allocation failure: %lu bytes", ...)
    lines = list(logs.normalize([
        "[    1.000000] insmod: vmalloc: allocation failure: 4096 bytes, "
        "mode:0xcc0(GFP_KERNEL), nodemask=(null)",
        "[    1.000001] CPU: 0 PID: 5 Comm: insmod Not tainted 5.10.0-30-amd64 #1 Debian"]))
    rep = triage(TriageInputs(log_lines=lines))
    (f,) = rep["memory"]["allocation_failures"]
    assert (f["kind"], f["size"], f["order"], f["pid"]) == ("vmalloc", 4096, None, 5)
    seed = next(r for r in rep["verdict"]["not_matched"] if r["id"] == SEED)
    st_ = {e["element"]: e["status"] for e in seed["elements"]}
    assert st_["log: high-order allocation failure growing the memcg cache array"] == "unmatched"


_SEED_LINES = None


def _seed_lines():
    global _SEED_LINES
    if _SEED_LINES is None:
        _SEED_LINES = open(_corpus(LOG), errors="replace").read().splitlines()
    return _SEED_LINES


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_mutilated_seed_log_never_breaks_triage(data):
    """Lines dropped, cut short or duplicated (what rate limiting, ring-buffer
    wrap and copy-paste do to real logs): always a report, never an exception."""
    src = _seed_lines()
    out = []
    for ln in src:
        op = data.draw(st.sampled_from(["keep", "keep", "keep", "drop", "cut", "twice"]))
        if op == "drop":
            continue
        if op == "cut":
            ln = ln[:data.draw(st.integers(0, len(ln)))]
        out.append(ln)
        if op == "twice":
            out.append(ln)
    rep = triage(TriageInputs(log_lines=list(logs.normalize(out))))
    assert rep["verdict"]["headline"]
    for m in rep["verdict"]["matches"]:
        assert m["score"] <= 1.0


_PATTERNS = [r"sysrq\s*:\s*trigger", r"^BUG", r"node -?\d+$", r"(?i)slub: unable"]
_WORDS = st.sampled_from(["sysrq", ":", " ", "trigger", "BUG", "node", "-1", "7", "SLUB: Unable",
                          "x", "\t"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_WORDS, max_size=6).map("".join), max_size=40),
       st.integers(1, 7))
def test_log_scan_hits_are_the_first_matching_line(texts, block):
    """LogScan searches blocks of lines at once; its hit for each regex must be
    what searching line by line gives: the first line that matches by itself."""
    from crashext.analysis.log_evidence import LogScan
    scan = LogScan(_PATTERNS)
    scan.BLOCK = block
    lines = [logs.LogLine(None, t, i, None, True) for i, t in enumerate(texts, 1)]
    assert list(scan.watch(lines)) == lines
    for p in _PATTERNS:
        assert scan.hits[p] == next((t for t in texts if re.search(p, t)), None), p


def test_failures_beyond_the_kept_ones_still_count(monkeypatch):
    """With no failure kept in full, the group's last failure (the RHEL7 idr-bug log's one
    order-6 failure) is still the evidence the RHEL7 idr-bug entry matches on."""
    from crashext.analysis import log_evidence
    monkeypatch.setattr(log_evidence, "KEEP_FAILURES", 0)
    rep = triage(TriageInputs(log_lines=load_log(_corpus(LOG))))
    assert rep["memory"]["allocation_failures"] == [] and rep["memory"]["failures_not_kept"] == 1
    top = rep["verdict"]["matches"][0]
    st = {e["element"]: e["status"] for e in top["elements"]}
    assert top["id"] == SEED
    assert st["log: high-order allocation failure growing the memcg cache array"] == "matched"
