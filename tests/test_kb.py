"""Knowledge-base loader: shipped entries load, malformed files give one-line errors."""

import os
import subprocess
import sys

import pytest

from crashext.kb import (KbError, compare_releases, load_file, load_kb, release_affected,
                         release_check, split_release)
from crashext.kb import Affected

GOOD = '''
[[entry]]
id = "x-bug"
title = "X"
kind = "bug"
summary = "s"
meaning = "m"
[entry.signature]
panic = ['kernel BUG at foo\\.c']
[[entry.references]]
title = "t"
url = "https://example.org/x"
status = "verified"
'''


def write(tmp_path, text, name="e.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_shipped_kb_loads_and_has_the_seed_bug():
    entries = {e.id: e for e in load_kb()}
    seed = entries["rhel7-kmemcg-id-ida-bug"]
    # the incident write-up's fixed release, not confirmed in a public source:
    # a bound that does not exclude later kernels
    assert seed.fixed_in == ["kernel-3.10.0-1048.el7 (unconfirmed)"]
    assert seed.affected[0].before == "3.10.0-1048.el7"
    assert seed.affected[0].status == "unconfirmed"
    assert any("cgroup.memory=nokmem" in w for w in seed.workarounds)
    assert entries["sysrq-triggered-crash"].kind == "deliberate"
    for e in entries.values():
        for r in e.references:
            assert r.url.startswith("https://")


def test_user_dir_adds_entries(tmp_path):
    write(tmp_path, GOOD)
    ids = [e.id for e in load_kb([str(tmp_path)])]
    assert "x-bug" in ids and "rhel7-kmemcg-id-ida-bug" in ids


@pytest.mark.parametrize("text,where", [
    ("[[entry]]\nid = 'a'\n", "entry[0].kind: missing"),
    ("not toml [", "not valid TOML"),
    (GOOD.replace('kind = "bug"', 'kind = "oops"'), "entry[0].kind: must be one of"),
    (GOOD.replace("foo\\.c", "foo("), "entry[0].signature.panic[0]: not a valid regex"),
    (GOOD.replace('[[entry.references]]', "colour = 'red'\n[[entry.references]]"),
     "entry[0].signature.colour: unknown field"),
    (GOOD + "[[entry.references]]\ntitle = 't'\nurl = 'ftp://x'\nstatus = 'verified'\n",
     "entry[0].references[1].url"),
    (GOOD.replace('status = "verified"', 'status = "probably"'),
     "entry[0].references[0].status: must be one of verified, unconfirmed"),
    (GOOD.replace('status = "verified"', ''), "entry[0].references[0].status: missing"),
    (GOOD[:GOOD.index("[[entry.references]]")], "entry[0].references: missing"),
    (GOOD + "[[entry.affected]]\nfamily = 'rhel'\nbefore = '3.10.0-1048.el7'\n",
     "entry[0].affected[0].dist: missing"),
    (GOOD + "[[entry.affected]]\nfamily = 'rhel'\ndist = 'el7'\nbefore = 'soon'\n",
     "entry[0].affected[0].before: not a kernel release"),
    (GOOD + "[[entry.affected]]\nfamily = 'rhel'\ndist = 'el7'\nbefore = '3.10.0-1048.el7'\n",
     "entry[0].affected[0].status: missing: a range with since/before says whether"),
    (GOOD + "[[entry.affected]]\nfamily = 'upstream'\nbefore = '4.7'\nstatus = 'maybe'\n",
     "entry[0].affected[0].status: must be one of verified, unconfirmed"),
    (GOOD.replace("panic = ['kernel BUG at foo\\.c']", ""), "entry[0].signature: has no elements"),
    ("[[entry]]\n", "id: missing"),
    ("x = 1\n", "x: unknown field"),
])
def test_malformed_files_one_line_error_naming_file_and_field(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(KbError) as ei:
        load_file(path)
    msg = ei.value.one_line()
    assert msg.startswith(path + ":")
    assert where in msg
    assert "\n" not in str(ei.value).strip()


def test_duplicate_id_names_both_files(tmp_path):
    write(tmp_path, GOOD, "a.toml")
    write(tmp_path, GOOD, "b.toml")
    with pytest.raises(KbError, match=r"b\.toml: id: 'x-bug' is already defined in .*a\.toml"):
        load_kb([str(tmp_path)], builtin=False)


def test_not_utf8_and_not_a_dir(tmp_path):
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(KbError, match="not UTF-8"):
        load_file(str(p))
    with pytest.raises(KbError, match="not a directory"):
        load_kb([str(tmp_path / "nope")])


def test_cli_bad_kb_is_one_line_exit_2(tmp_path):
    write(tmp_path, "nonsense = [")
    log = tmp_path / "k.log"
    log.write_text("[    1.000000] hello\n")
    p = subprocess.run([sys.executable, "-m", "crashext", "triage", "--log", str(log),
                        "--kb", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "not valid TOML" in p.stderr


# rpm ordering of RHEL kernel releases (rpmvercmp: numeric segments numerically)
@pytest.mark.parametrize("a,b,want", [
    ("3.10.0-693.2.2.el7.x86_64", "3.10.0-1048.el7", -1),
    ("3.10.0-1048.el7", "3.10.0-1048.el7.x86_64", 0),
    ("3.10.0-1062.4.1.el7", "3.10.0-1048.el7", 1),
    ("3.10.0-957.el7", "3.10.0-957.1.3.el7", -1),
    ("4.4", "4.7", -1),
    ("4.10", "4.7", 1),
    ("kernel-3.10.0-1160.el7", "3.10.0-1048.el7", 1),
])
def test_compare_releases(a, b, want):
    assert compare_releases(a, b) == want


def test_release_affected_rhel_and_upstream():
    rhel = [Affected(family="rhel", dist="el7", before="3.10.0-1048.el7", status="verified")]
    assert release_affected("3.10.0-693.2.2.el7.x86_64", rhel)[0] == "matched"
    assert release_affected("3.10.0-1160.el7.x86_64", rhel)[0] == "unmatched"
    assert release_affected("6.1.0-18-cloud-amd64", rhel)[0] == "unmatched"
    assert release_affected(None, rhel)[0] == "unknown"
    up = [Affected(family="upstream", before="4.7", status="verified")]
    assert release_affected("4.4.0-21-generic", up)[0] == "matched"
    assert release_affected("5.10.0-28-cloud-amd64", up)[0] == "unmatched"
    assert split_release("3.10.0-693.2.2.el7.x86_64") == ("3.10.0", "693.2.2.el7", "el7")


def test_an_unconfirmed_bound_never_excludes_a_kernel():
    """A fixed release nobody confirmed: a kernel past it still matches, and
    the caveat says it is believed to carry the fix; a kernel of another
    distribution is still outside (the dist tag is not a bound)."""
    rhel = [Affected(family="rhel", dist="el7", before="3.10.0-1048.el7", status="unconfirmed")]
    status, why, caveat = release_check("3.10.0-1062.el7.x86_64", rhel)
    assert status == "matched" and caveat == why
    assert caveat == ("3.10.0-1062.el7.x86_64 is 3.10.0-1048.el7 or newer, which is believed "
                      "to contain the fix (unconfirmed): check for a regression or a different "
                      "cause")
    assert release_check("3.10.0-693.2.2.el7", rhel) == (
        "matched", "3.10.0-693.2.2.el7 is in el7 range before 3.10.0-1048.el7", None)
    assert release_check("6.1.0-18-cloud-amd64", rhel)[:2] == (
        "unmatched", "6.1.0-18-cloud-amd64: not a el7 kernel")
    up = [Affected(family="upstream", since="4.1", before="4.7", status="unconfirmed")]
    assert "older than 4.1, the first release believed to be affected" in \
        release_check("3.18.0", up)[2]
    assert release_check("5.10.0-28-cloud-amd64", up)[0] == "matched"


# -- line numbers, one bad file among good ones, new fields -------------------

def test_error_names_the_line_of_the_field(tmp_path):
    # the second entry's bad regex is on line 20 of this text (counted below)
    text = GOOD + GOOD.replace('id = "x-bug"', 'id = "y-bug"').replace("foo\\.c", "foo(")
    path = write(tmp_path, text)
    line = next(i for i, ln in enumerate(text.split("\n"), 1) if "foo(" in ln)
    with pytest.raises(KbError) as ei:
        load_file(path)
    assert ei.value.one_line().startswith(f"{path}:{line}: entry[1].signature.panic[0]: not a valid regex")


def test_one_bad_file_does_not_stop_the_others(tmp_path):
    write(tmp_path, GOOD, "good.toml")
    bad = write(tmp_path, GOOD.replace('id = "x-bug"', 'id = "z-bug"').replace("foo\\.c", "foo("),
                "bad.toml")
    problems = []
    ids = [e.id for e in load_kb([str(tmp_path)], builtin=False, problems=problems)]
    assert ids == ["x-bug"]
    assert len(problems) == 1 and bad in problems[0] and "not a valid regex" in problems[0]
    # without a list to report into, the bad file is an error as before
    with pytest.raises(KbError, match="not a valid regex"):
        load_kb([str(tmp_path)], builtin=False)


def test_a_directory_of_only_bad_files_is_an_error(tmp_path):
    write(tmp_path, "nonsense = [", "bad.toml")
    with pytest.raises(KbError, match="not valid TOML"):
        load_kb([str(tmp_path)], builtin=False, problems=[])


@pytest.mark.parametrize("extra,where", [
    ("[entry.precursor]\nevidence = 'e'\n", "entry[0].precursor: has no log elements"),
    ("[entry.precursor]\n[[entry.precursor.log]]\nkind = 'allocfail'\nname = 'n'\n",
     "entry[0].precursor.evidence: missing"),
    ("[entry.precursor]\nevidence = 'e'\n[[entry.precursor.log]]\nkind = 'regex'\nname = 'n'\n"
     "pattern = 'x'\nmin_order = 3\n", "entry[0].precursor.log[0].min_order: only for kind"),
    ("[entry.precursor]\nevidence = 'e'\n[[entry.precursor.log]]\nkind = 'allocfail'\nname = 'n'\n"
     "zones = 'fragmented'\n", "entry[0].precursor.log[0].zones: must be one of"),
    ("[entry.precursor]\nevidence = 'e'\n[[entry.precursor.log]]\nkind = 'allocfail'\nname = 'n'\n"
     "min_order = 4\nmax_order = 3\n", "entry[0].precursor.log[0].max_order: below min_order 4"),
    ("[entry.precursor]\nevidence = 'e'\n[[entry.precursor.log]]\nkind = 'regex'\nname = 'n'\n"
     "pattern = 'x'\nabsent = true\n", "needs at least one log element that is not absent"),
    ("[[entry.fixes]]\nwhat = 'c'\nstatus = 'maybe'\n", "entry[0].fixes[0].status: must be one of"),
])
def test_precursor_and_fix_fields_are_checked(tmp_path, extra, where):
    path = write(tmp_path, GOOD + extra)
    with pytest.raises(KbError) as ei:
        load_file(path)
    assert where in ei.value.one_line()


ALLOC_HELD = GOOD.replace("panic = ['kernel BUG at foo\\.c']", """
[[entry.signature.log]]
kind = "allocfail"
name = "held back"
zones_held_back = VALUE""")


@pytest.mark.parametrize("value,why", [
    ('"yes"', "entry[0].signature.log[0].zones_held_back: must be true or false"),
    ("1", "entry[0].signature.log[0].zones_held_back: must be true or false"),
])
def test_zones_held_back_wrong_type_names_file_and_line(tmp_path, value, why):
    text = ALLOC_HELD.replace("VALUE", value)
    assert "zones_held_back" in text and "panic" not in text
    path = write(tmp_path, text)
    line = next(i for i, ln in enumerate(text.split("\n"), 1) if ln.startswith("zones_held_back"))
    with pytest.raises(KbError) as ei:
        load_file(path)
    assert ei.value.one_line() == f"{path}:{line}: {why}"


def test_zones_held_back_only_for_allocfail_and_read_as_a_bool(tmp_path):
    regex = ALLOC_HELD.replace('kind = "allocfail"', "kind = 'regex'\npattern = 'x'").replace(
        "VALUE", "true")
    with pytest.raises(KbError, match=r"zones_held_back: only for kind = \"allocfail\""):
        load_file(write(tmp_path, regex))
    for value, want in (("true", True), ("false", False)):
        (e,) = load_file(write(tmp_path, ALLOC_HELD.replace("VALUE", value), f"{value}.toml"))
        assert e.signature.log[0].zones_held_back is want
    # left out: no condition on held-back zones
    (e,) = load_file(write(tmp_path, ALLOC_HELD.replace("zones_held_back = VALUE", ""),
                           "none.toml"))
    assert e.signature.log[0].zones_held_back is None


def test_every_shipped_fact_carries_its_verification_status():
    entries = load_kb()
    assert len(entries) >= 20
    for e in entries:
        assert e.references, e.id
        for r in e.references:
            assert r.status in ("verified", "unconfirmed"), (e.id, r.title)
        for f in e.fixes:
            assert f.status in ("verified", "unconfirmed"), (e.id, f.what)
            # an unconfirmed fact says why in the entry's data
            if f.status == "unconfirmed":
                assert f.checked, (e.id, f.what)
        # a fixed release named in fixed_in is backed by a fix record
        for rel in e.fixed_in:
            assert any((f.first_release and f.first_release in rel) or f.what.split()[0] in rel
                       for f in e.fixes), (e.id, rel)


def test_docs_list_every_entry_and_are_up_to_date():
    """docs/knowledge-base.md's entry list is generated from the TOML files
    (python3 -m crashext.kb.docs); a stale list fails here."""
    from crashext.kb import docs
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "docs", "knowledge-base.md")
    text = open(path, encoding="utf-8").read()
    for e in load_kb():
        assert f"### {e.id}\n" in text
    assert docs.main(["--check", "--doc", path]) == 0
