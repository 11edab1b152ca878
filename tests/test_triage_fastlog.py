"""triage --log FILE reads a log the fast way (logscan.gated_kernel_log):
only lines that can hold a record or match a knowledge-base regex are
decoded.  Everything here compares it with the plain reading of every line
(``triage(TriageInputs(log_lines=logs.kernel_log(path)))``), which is what
the report is defined by, on real logs and on random ones built to hit the
edges."""

import glob
import io
import os
import random
import re

import pytest
from hypothesis import given, settings, strategies as st

from crashext import render
from crashext.analysis import allocreport
from crashext.analysis.evidence import TriageInputs, triage
from crashext.analysis.log_evidence import LogScan
from crashext.errors import InputError
from crashext.sources import logs, logscan
from crashext.sources.literals import required_literals
from sharedcorpus import corpus_files, corpus_params, need_corpus

DATA = os.path.join(os.path.dirname(__file__), "data", "logs")
SEED = os.path.join(DATA, "rhel7-3.10.0-693.2.2-idr-bug.dmesg")
TEST_LOGS = sorted(glob.glob(os.path.join(DATA, "*")))
#: the test logs, then the shared corpus (one parameter that skips, or fails
#: under CI=true, when it is missing)
REAL = TEST_LOGS + corpus_params()


def _json(rep) -> str:
    out = io.StringIO()
    render.write_json(out, rep)
    return out.getvalue()


def _both(path):
    def run(fast):
        try:
            return _json(triage(TriageInputs(log_path=path)) if fast
                         else triage(TriageInputs(log_lines=logs.kernel_log(path))))
        except InputError as exc:
            return f"InputError: {exc}"
    return run(False), run(True)


def _engines():
    out = ["re"]
    try:
        logscan.literal_finder((("x", False),), "hyperscan")
        out.append("hyperscan")
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
    return out


@pytest.mark.parametrize("path", REAL, ids=os.path.basename)
def test_fast_triage_equals_reading_every_line_on_real_logs(path):
    slow, fast = _both(need_corpus(path) if path is None else path)
    assert fast == slow


def _scan_parts(path, engine):
    """The log-side evidence triage takes from a gated read with ``engine``."""
    from crashext.analysis.log_evidence import BANNER
    from crashext import kb
    from crashext.analysis import diagnosis
    pats = sorted({lp.pattern for e in kb.load_kb()
                   for lp in e.signature.log + (e.precursor.log if e.precursor else [])
                   if lp.kind == "regex" and lp.source == "kernel"} | set(diagnosis.SCAN_PATTERNS))
    scan = LogScan(pats)
    gate, facts = logs.Gate(), logscan.ScanFacts()
    lines = logscan.gated_kernel_log(path, gate, pats + [BANNER.pattern], facts, engine)
    assert lines is not None      # every pattern of the knowledge base has a literal
    rep = allocreport.analyze(scan.watch(lines), "t", None, None, 1000, gate)
    rep.lines = None   # input lines here, normalised lines (rsyslog splits) when ungated
    return scan.hits, facts.last_ts, scan.banner_release, _json(rep)


@pytest.mark.parametrize("engine", _engines())
def test_both_literal_engines_find_the_same_lines(engine):
    """The Hyperscan and the re searches of the literals give the same
    regex hits, last timestamp, banner and records as reading every line."""
    for path in TEST_LOGS + corpus_files():
        try:
            hits, last_ts, banner, rep_json = _scan_parts(path, engine)
        except InputError as exc:   # not a kernel log (SOURCES.md, user-space text)
            with pytest.raises(InputError) as slow:
                list(logs.kernel_log(path))
            assert str(slow.value) == str(exc)
            continue
        scan = LogScan(hits.keys())
        rep = allocreport.analyze(scan.watch(logs.kernel_log(path)), "t", None, None, 1000)
        rep.lines = None
        assert hits == scan.hits, path
        assert last_ts == scan.last_ts and banner == scan.banner_release, path
        assert rep_json == _json(rep), path


# -- random logs that hit the edges ----------------------------------------------

_SEED_LINES = open(SEED, encoding="utf-8").read().splitlines()
_NOISE = [
    "[ 100.5] eth0: link up", "[ 101.0] Out of memory: Kill process 4242 (java) score 900",
    "[ 101.1] Killed process 4242 (java) total-vm:100kB, anon-rss:50kB, file-rss:0kB",
    "[ 102.0] Memory cgroup out of memory: Killed process 77 (x) total-vm:1kB, anon-rss:2kB",
    "Dec  2 10:00:00 host kubelet[12]: Out of memory: Kill process 1 (nope)",
    "Dec  2 10:00:01 host kernel: SLUB: Unable to allocate memory on node -1 (gfp=0x8020)",
    "Dec  2 10:00:02 host kernel: stamp only, no seconds",
    "Dec  2 10:00:03 host kernel: [ 200.25] syslog with seconds",
    "[Mon Apr 20 15:08:07 2020] dmesg -T line",
    "[ 103.0] Linux version 4.18.0-999.el8.x86_64 (mockbuild@x) #1 SMP",
    "[ 104.0] sysrq: Trigger a crash", "[ 104.5] SysRq : TRIGGER A CRASH",
    "[ 105.0] page_counter underflow: -42 nr_pages=1",
    "[ 105.5] rsyslog#012Out of memory: Kill process 9 (esc)#011tab",
    "no stamp continuation line", "", "[ 106.0] caf\u00e9 \u017fysrq: trigger a cra\u017fh",
    "[ 107.0] kernel BUG at mm/slub.c:1234!", "[ 107.1] invalid opcode: 0000 [#1] SMP",
    # RHEL-style syslog: programs with [pid], kernel lines without seconds
    "Dec  2 10:00:04 host systemd[1]: Started Session 5 of user root.",
    "Dec  2 10:00:05 host kernel: docker0: port 1(veth1) entered [forwarding] state",
    # seconds in other scripts' digits and spaces, which the normaliser also reads
    "[\u00a0\u0661\u0662.\u0663] arabic-indic digits", "[ 1.5]x [2.5] two brackets",
    "Dec  2 10:00:06 host kernel: [\u0968.\u0969] devanagari digits",
]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_fast_triage_equals_reading_every_line_on_random_logs(tmp_path_factory, data):
    rnd = random.Random(data.draw(st.integers(0, 2**32)))
    out = []
    for _ in range(rnd.randint(0, 3)):
        out.extend(rnd.choice(_NOISE) for _ in range(rnd.randint(0, 400)))
        if rnd.random() < 0.6:
            out.extend(_SEED_LINES[: rnd.randint(0, len(_SEED_LINES))])
    out.extend(rnd.choice(_NOISE) for _ in range(rnd.randint(0, 50)))
    end = rnd.choice(["\n", "", "\r\n"])
    p = tmp_path_factory.mktemp("fast") / "log.txt"
    p.write_bytes(end.join(out).encode() + end.encode())
    slow, fast = _both(str(p))
    assert fast == slow


def test_last_timestamp_comes_from_lines_that_were_skipped():
    """A log whose last stamped line sits among lines no record or regex
    needs (followed by stamp-only syslog lines): uptime is still its stamp."""
    import tempfile
    text = "\n".join(_SEED_LINES + ["[ 99999.125] quiet line"]
                     + ["Dec  2 10:00:02 host kernel: stamp only"] * 3000) + "\n"
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
        f.write(text)
    try:
        rep = triage(TriageInputs(log_path=f.name))
        # 99999.125 s after boot, as the report writes an uptime
        assert rep["system"]["uptime"] == "1 days, 03:46:39"
        assert rep["system"]["sources"]["uptime"] == "log (last timestamp)"
        assert _json(rep) == _json(triage(TriageInputs(log_lines=logs.kernel_log(f.name))))
    finally:
        os.unlink(f.name)


def test_bad_files_give_the_same_one_line_errors(tmp_path):
    garbage = tmp_path / "g.txt"
    garbage.write_text("hello\nworld\n")
    empty = tmp_path / "e.txt"
    empty.write_text("")
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"\x7fELF\0\0\0")
    for p in (garbage, empty, binary, tmp_path / "missing"):
        slow, fast = _both(str(p))
        assert fast.startswith("InputError: ") and "\n" not in fast, fast
        assert fast == slow


# -- the literals ------------------------------------------------------------------

_PIECES = ["abc", "Kill", "sysrq", "(?:x|yz)", "\\d+", "[a-z]*", "(?i:kIlL)", "Out of",
           "(?P<n>memory)", ".*?", "\\s*", "?", "+", "(?:Oops|BUG)", "\u00e9t\u00e9", "^", "\\b",
           "(?:foo)?", "x{2,3}", "[^)]*", " process ", "(?>(?i:oUt of))"]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=6), st.booleans(),
       st.text(alphabet="abcKkiIsS\u017f\u212a\u0130 ()-0123456789xyzOfuBGlmeroyptsc\u00e9\u00c9",
               max_size=40))
def test_a_line_matching_a_pattern_holds_one_of_its_literals(pieces, caseless, line):
    pattern = ("(?i)" if caseless else "") + "".join(pieces)
    try:
        rx = re.compile(pattern)
    except re.error:
        return
    got = required_literals(pattern)
    if got is None:
        return
    lits, ci = got
    for probe in (line, line + pattern.replace("\\", "")):
        if rx.search(probe):
            raw = probe.encode()
            assert any((re.search(re.escape(x.encode()), raw, re.I) if ci else x.encode() in raw)
                       for x in lits), (pattern, probe, lits)


def test_knowledge_base_patterns_all_have_literals():
    """Every kernel-log regex of the shipped knowledge base has a literal to
    search for; otherwise triage --log would fall back to every line."""
    from crashext import kb
    for e in kb.load_kb():
        for lp in e.signature.log + (e.precursor.log if e.precursor else []):
            if lp.kind == "regex" and lp.source == "kernel":
                assert required_literals(lp.pattern) is not None, (e.id, lp.pattern)
