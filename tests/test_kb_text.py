"""User-space text as triage evidence (``source = "text"`` elements, ``--text FILE``,
a sosreport's proc/cgroups): failures the kernel does not print.

The lines asserted are those of the public excerpts in tests/data/logs/*.text
(their sources are in SOURCES.md): what kubelet, runc and a shell printed
when mkdir in the memory cgroup hierarchy failed, and /proc/cgroups.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crashext.analysis.evidence import TriageInputs, triage
from crashext.kb import KbError, load_file
from crashext.sources.logs import load_log

DATA = Path(__file__).resolve().parent / "data" / "logs"
ROOT = str(Path(__file__).resolve().parent.parent)


def _lines(name):
    return (DATA / name).read_text(encoding="utf-8").splitlines()


def _line_with(name, needle):
    """The one line of an excerpt that holds ``needle`` (what the input says)."""
    hits = [ln for ln in _lines(name) if needle in ln]
    assert len(hits) == 1, hits
    return hits[0]


def _result(rep, entry):
    v = rep["verdict"]
    return next(r for r in v["matches"] + v["not_matched"] if r["id"] == entry)


def _element(res, prefix):
    return next(e for e in res["elements"] if e["element"].startswith(prefix))


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "crashext", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_kubelet_enomem_line_is_the_evidence():
    name = "k8s-96701-mkdir-enomem-rhel79.text"
    rep = triage(TriageInputs(texts=_lines(name)))
    res = _result(rep, "memcg-mkdir-enomem")
    assert res["matched"] and rep["verdict"]["matches"][0]["id"] == "memcg-mkdir-enomem"
    el = _element(res, "text: mkdir in the memory hierarchy failed with cannot allocate memory")
    kubelet = _line_with(name, ": cannot allocate memory")
    # a long event line is shown around the match
    assert el["status"] == "matched" and el["detail"].startswith("...")
    assert el["detail"].strip(".") in kubelet
    assert "mkdir /sys/fs/cgroup/memory/kubepods/besteffort/podbfeaeabc" in el["detail"]
    # the same failure as ENOSPC is the id space, not this entry
    assert not _result(rep, "memcg-id-exhaustion")["matched"]


def test_enospc_and_proc_cgroups_are_the_id_space():
    name = "k8s-61937-proc-cgroups-65535.text"
    rep = triage(TriageInputs(texts=_lines(name)))
    res = _result(rep, "memcg-id-exhaustion")
    assert res["matched"]
    mkdir = _element(res, "text: mkdir in the memory hierarchy failed with No space left")
    assert mkdir["status"] == "matched"
    assert mkdir["detail"] == _line_with(name, "No space left on device").strip()[:160]
    cg = _element(res, "text: /proc/cgroups")
    # the first /proc/cgroups line of the session: 65535 memory cgroups
    assert cg["status"] == "matched" and cg["detail"].split() == ["memory", "11", "65535", "1"]
    # no dump was given: the dump predicates are unknown, not failed
    assert all(e["status"] == "unknown" for e in res["elements"] if e["group"] == "dump")
    assert not _result(rep, "memcg-mkdir-enomem")["matched"]


def test_proc_cgroups_count_near_miss():
    """A real /proc/cgroups with 1 memory cgroup (and 83 device cgroups) is no
    id exhaustion; 64734 memory cgroups is."""
    low = triage(TriageInputs(texts=_lines("leviathan-99-proc-cgroups.text")))
    el = _element(_result(low, "memcg-id-exhaustion"), "text: /proc/cgroups")
    assert el["status"] == "unmatched"
    assert low["verdict"]["matches"] == []
    high = triage(TriageInputs(texts=_lines("dailywork-58-proc-cgroups-64734.text")))
    el = _element(_result(high, "memcg-id-exhaustion"), "text: /proc/cgroups")
    assert el["status"] == "matched" and el["detail"].split()[:3] == ["memory", "4", "64734"]


def test_text_and_kernel_log_are_searched_separately():
    """A text element is unknown without text (not unmatched), and a kernel-log
    element never looks at user-space text: the SLUB lines of runc#1725 given
    as text do not make the SLUB entry match."""
    rep = triage(TriageInputs(log_lines=load_log(str(DATA / "runc-1725-slub-memcg.log"))))
    el = _element(_result(rep, "memcg-mkdir-enomem"), "text: ")
    assert el["status"] == "unknown" and "--text" in el["detail"]
    as_text = triage(TriageInputs(texts=_lines("runc-1725-slub-memcg.log")))
    slub = _result(as_text, "rhel7-kmem-accounting-slub")
    assert not slub["matched"]
    assert all(e["status"] == "unknown" for e in slub["elements"] if e["group"] == "log")


def test_kernel_log_and_text_together():
    """The RHEL7 idr-bug log with the kubelet's ENOMEM: the RHEL7 idr-bug log's BUG stays first, the
    user-space face of the same cache-array growth failure matches too."""
    rep = triage(TriageInputs(
        log_lines=load_log(str(DATA / "rhel7-3.10.0-693.2.2-idr-bug.dmesg")),
        texts=_lines("k8s-96701-mkdir-enomem-rhel79.text")))
    ids = [m["id"] for m in rep["verdict"]["matches"]]
    assert ids[0] == "rhel7-kmemcg-id-ida-bug" and "memcg-mkdir-enomem" in ids
    assert "user-space text" in rep["sources"]


@pytest.mark.parametrize("field,where", [
    ("source = 'elsewhere'", "entry[0].signature.log[0].source: must be one of kernel, text"),
    ("source = 7", "entry[0].signature.log[0].source: must be a non-empty string"),
])
def test_bad_source_field_is_one_line(tmp_path, field, where):
    text = GOOD_TEXT_ENTRY.replace("source = 'text'", field)
    p = tmp_path / "t.toml"
    p.write_text(text)
    with pytest.raises(KbError) as ei:
        load_file(str(p))
    line = next(i for i, ln in enumerate(text.split("\n"), 1) if ln.startswith("source ="))
    assert ei.value.one_line().startswith(f"{p}:{line}: {where}")


def test_source_only_for_regex_elements(tmp_path):
    text = GOOD_TEXT_ENTRY.replace("kind = 'regex'", "kind = 'allocfail'").replace(
        "pattern = 'x'\n", "")
    p = tmp_path / "t.toml"
    p.write_text(text)
    with pytest.raises(KbError, match=r"log\[0\]\.source: only for kind = \"regex\""):
        load_file(str(p))
    ok = tmp_path / "ok.toml"
    ok.write_text(GOOD_TEXT_ENTRY)
    assert load_file(str(ok))[0].signature.log[0].source == "text"


GOOD_TEXT_ENTRY = """
[[entry]]
id = "t"
title = "T"
kind = "bug"
summary = "s"
meaning = "m"
[entry.signature]
[[entry.signature.log]]
kind = 'regex'
name = 'n'
source = 'text'
pattern = 'x'
[[entry.references]]
title = "t"
url = "https://example.org/t"
status = "verified"
"""


# -- the command -----------------------------------------------------------------

def test_cli_text_file(tmp_path):
    p = _cli("triage", "--text", str(DATA / "nomad-6538-docker-mkdir-enomem.text"), "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["verdict"]["matches"][0]["id"] == "memcg-mkdir-enomem"
    el = _element(rep["verdict"]["matches"][0], "text: ")
    assert "mkdir /sys/fs/cgroup/memory/docker/4fcdcf0af1d3" in el["detail"]
    # repeatable: two files, both read
    p = _cli("triage", "--text", str(DATA / "k8s-handbook-313-mkdir-enospc.text"),
             "--text", str(DATA / "dailywork-58-proc-cgroups-64734.text"), "--json")
    res = _result(json.loads(p.stdout), "memcg-id-exhaustion")
    assert [e["status"] for e in res["elements"] if e["element"].startswith("text: ")] == \
        ["matched", "matched"]


def test_cli_bad_text_file_is_one_line(tmp_path):
    for path, why in ((tmp_path / "nope.txt", "no such file"),
                      (tmp_path / "empty.txt", "empty file, not a text file"),
                      (tmp_path / "bin.txt", "binary data, not a text file")):
        if path.name == "empty.txt":
            path.write_text("")
        elif path.name == "bin.txt":
            path.write_bytes(b"\x00\x01\x02" * 100)
        p = _cli("triage", "--text", str(path))
        assert p.returncode == 2 and p.stderr.count("\n") == 1, (p.returncode, p.stderr)
        assert why in p.stderr and "Traceback" not in p.stderr


def test_cli_text_with_html_is_refused(tmp_path):
    p = _cli("triage", "--text", str(DATA / "nomad-6538-docker-mkdir-enomem.text"),
             "--html", str(tmp_path / "r.html"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--html" in p.stderr
    assert not (tmp_path / "r.html").exists()


def test_sosreport_proc_cgroups_is_text(tmp_path):
    """A sosreport's proc/cgroups (here the 64734 of dailywork#58) and the
    kubelet lines of its var/log/messages are user-space text."""
    top = tmp_path / "sosreport-c"
    (top / "sos_commands" / "kernel").mkdir(parents=True)
    (top / "proc").mkdir(parents=True)
    (top / "var" / "log").mkdir(parents=True)
    cg = [ln for ln in _lines("dailywork-58-proc-cgroups-64734.text")
          if ln.startswith(("#subsys_name", "cpu", "memory", "devices", "freezer", "net_",
                            "blkio", "perf_event", "hugetlb", "pids"))]
    (top / "proc" / "cgroups").write_text("\n".join(cg) + "\n")
    seed = (DATA / "rhel7-3.10.0-693.2.2-idr-bug.dmesg").read_text()
    (top / "var" / "log" / "messages").write_text(seed)
    p = _cli("triage", str(top), "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    res = _result(rep, "memcg-id-exhaustion")
    assert res["matched"], res["why_not"]
    assert _element(res, "text: /proc/cgroups")["detail"].split()[:3] == ["memory", "4", "64734"]
    # the kernel log of the report is still the kernel log: the RHEL7 idr-bug log's BUG first
    assert rep["verdict"]["matches"][0]["id"] == "rhel7-kmemcg-id-ida-bug"


def test_cli_kb_dir_with_one_bad_file_loads_the_others(tmp_path):
    """Bad input is one clear line: the bad file is named with its line, the
    good one is used, triage goes on."""
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "good.toml").write_text(GOOD_TEXT_ENTRY.replace("pattern = 'x'", "pattern = 'podbfeaeabc'"))
    bad_text = GOOD_TEXT_ENTRY.replace('id = "t"', 'id = "u"').replace("pattern = 'x'",
                                                                      "pattern = 'x('")
    (kb / "bad.toml").write_text(bad_text)
    line = next(i for i, ln in enumerate(bad_text.split("\n"), 1) if "x(" in ln)
    p = _cli("triage", "--kb", str(kb), "--text", str(DATA / "k8s-96701-mkdir-enomem-rhel79.text"),
             "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert f"{kb / 'bad.toml'}:{line}: entry[0].signature.log[0].pattern[0]: not a valid regex" \
        in rep["errors"]["kb"]
    assert "t" in [m["id"] for m in rep["verdict"]["matches"]]
