"""Knowledge-base loader: shipped entries load, malformed files give one-line errors."""

import os
import subprocess
import sys

import pytest

from crashext.kb import KbError, compare_releases, load_file, load_kb, release_affected, split_release
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
'''


def write(tmp_path, text, name="e.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_shipped_kb_loads_and_has_the_seed_bug():
    entries = {e.id: e for e in load_kb()}
    seed = entries["rhel7-kmemcg-id-ida-bug"]
    # the seed write-up: fixed in kernel-3.10.0-1048.el7
    assert seed.fixed_in == ["kernel-3.10.0-1048.el7"]
    assert seed.affected[0].before == "3.10.0-1048.el7"
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
    (GOOD + "colour = 'red'\n", "entry[0].signature.colour: unknown field"),
    (GOOD + "[[entry.references]]\ntitle = 't'\nurl = 'ftp://x'\n", "entry[0].references[0].url"),
    (GOOD + "[[entry.affected]]\nfamily = 'rhel'\nbefore = '3.10.0-1048.el7'\n",
     "entry[0].affected[0].dist: missing"),
    (GOOD + "[[entry.affected]]\nfamily = 'rhel'\ndist = 'el7'\nbefore = 'soon'\n",
     "entry[0].affected[0].before: not a kernel release"),
    (GOOD.replace("panic = ['kernel BUG at foo\\.c']", ""), "entry[0].signature: has no elements"),
    ("[[entry]]\n", "id: missing"),
    ("x = 1\n", "x: unknown field"),
])
def test_malformed_files_one_line_error_naming_file_and_field(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(KbError) as ei:
        load_file(path)
    msg = ei.value.one_line()
    assert msg.startswith(path + ": ")
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
    rhel = [Affected(family="rhel", dist="el7", before="3.10.0-1048.el7")]
    assert release_affected("3.10.0-693.2.2.el7.x86_64", rhel)[0] == "matched"
    assert release_affected("3.10.0-1160.el7.x86_64", rhel)[0] == "unmatched"
    assert release_affected("6.1.0-18-cloud-amd64", rhel)[0] == "unmatched"
    assert release_affected(None, rhel)[0] == "unknown"
    up = [Affected(family="upstream", before="4.7")]
    assert release_affected("4.4.0-21-generic", up)[0] == "matched"
    assert release_affected("5.10.0-28-cloud-amd64", up)[0] == "unmatched"
    assert split_release("3.10.0-693.2.2.el7.x86_64") == ("3.10.0", "693.2.2.el7", "el7")
