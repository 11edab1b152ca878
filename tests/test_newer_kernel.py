"""A kernel newer than any this tool knows (allocflags.NEWEST_KNOWN, the
newest kernel whose dumps the tests read): the commands still run, take the
newest rules, and say once which they assumed.

The inputs are real: a kernel log from the corpus in tests/data/logs (two
allocation failures, so a note per failure would show twice) and the
/proc files the 7.x fixture guest saved; only the release they are said to
come from is newer than 7.3.
"""

import json
import os
import subprocess
import sys

import pytest

from crashext.analysis import allocflags as afl

LOG = os.path.join(os.path.dirname(__file__), "data", "logs",
                   "lkml-6.3-vmalloc-order9-highatomic.log")
NEWER = "%d.%d.0-1-amd64" % (afl.NEWEST_KNOWN[0], afl.NEWEST_KNOWN[1] + 1)
KNOWN = "%d.%d.4" % afl.NEWEST_KNOWN


def run(*argv):
    p = subprocess.run([sys.executable, "-m", "crashext", *argv], capture_output=True,
                       text=True, timeout=600)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def test_newest_known_is_the_newest_fixture_kernel():
    import fixturelib  # loaded by conftest
    newest = max(tuple(int(x) for x in v.split(".")) for v in fixturelib.SUITES.values())
    assert newest == afl.NEWEST_KNOWN


def test_generation_says_so_only_past_the_newest_known():
    known = afl.generation(KNOWN)
    newer = afl.generation(NEWER)
    assert known.assumed is None and not known.newer
    assert newer.newer and NEWER in newer.assumed
    # the newest rules: what the newest known kernel gets
    assert (newer.name, newer.rule) == (known.name, known.rule)


def test_allocfail_runs_and_says_the_assumed_rule_once():
    new = run("allocfail", LOG, "--kernel-version", NEWER)
    old = run("allocfail", LOG, "--kernel-version", KNOWN)
    assert new.returncode == old.returncode == 0
    rules = [ln for ln in new.stdout.splitlines() if ln.startswith("RULE:")]
    assert len(rules) == 1 and NEWER in rules[0], new.stdout
    assert "generation 6.18" in rules[0] and "watermark rule 6.3" in rules[0]
    assert not [ln for ln in old.stdout.splitlines() if ln.startswith("RULE:")]
    # the same verdicts as under the newest known kernel's rules
    table = lambda out: [ln for ln in out.splitlines() if ln[:1] == " " or ln.startswith("COUNT")]
    assert table(new.stdout) == table(old.stdout) and len(table(new.stdout)) == 3
    js_new = json.loads(run("allocfail", LOG, "--kernel-version", NEWER, "--json").stdout)
    js_old = json.loads(run("allocfail", LOG, "--kernel-version", KNOWN, "--json").stdout)
    verdicts = lambda js: [f["verdicts"] for f in js["failures"]]
    assert verdicts(js_new) == verdicts(js_old)


@pytest.mark.vmcore
def test_frag_on_saved_proc_files_says_the_assumed_rule_once(vmcore):
    fx = vmcore("trixie-backports", "memcg-churn")
    truth = str(fx.truth_dir)
    new = run("frag", "--proc", truth, "--release", NEWER)
    old = run("frag", "--proc", truth, "--release", fx.meta["kernel_release"])
    assert new.returncode == old.returncode == 0, new.stderr
    rules = [ln for ln in new.stdout.splitlines() if ln.startswith("RULE:")]
    assert len(rules) == 1 and NEWER in rules[0], new.stdout
    assert not [ln for ln in old.stdout.splitlines() if ln.startswith("RULE:")]
    js_new = json.loads(run("frag", "--proc", truth, "--release", NEWER, "--json").stdout)
    js_old = json.loads(run("frag", "--proc", truth, "--release", fx.meta["kernel_release"],
                            "--json").stdout)
    assert js_new["zones"] == js_old["zones"] and js_new["verdict"] == js_old["verdict"]
    assert js_new["rule"] == js_old["rule"]
