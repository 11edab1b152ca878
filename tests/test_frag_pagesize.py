"""The page size of /proc text (frag --proc / --sos): counts there are pages.

It is taken from the text when the text says it (meminfo's MemTotal over
zoneinfo's managed pages), from this system for a live /proc, from
--page-size, else assumed 4 KiB -- and then said to be assumed.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crashext.analysis import buddy_read
from crashext.sources import procfs

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "crashext", "frag", *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.vmcore
@pytest.mark.parametrize("suite", ["bullseye", "bookworm", "trixie", "trixie-backports"])
def test_text_page_size_is_the_dumps(vmcore, suite):
    """The guest's meminfo and zoneinfo (truth/, written just before the dump)
    give the page size the dump's VMCOREINFO says (PAGESIZE, read by drgn)."""
    from crashext.kernel import drgn_backend
    fx = vmcore(suite, "fragmented")
    t = drgn_backend.open_core(str(fx.vmcore), str(fx.vmlinux))
    rep = buddy_read.from_proc(procfs.ProcDir(str(fx.truth_dir)))
    assert rep.page_size == t.page_size
    assert rep.page_size_source == "meminfo MemTotal / zoneinfo managed pages"


@pytest.mark.vmcore
def test_without_meminfo_the_assumption_is_said(vmcore, tmp_path):
    fx = vmcore("bookworm", "fragmented")
    d = tmp_path / "proc"
    d.mkdir()
    for name in ("buddyinfo", "zoneinfo", "pagetypeinfo", "uname_r"):
        shutil.copy(fx.truth_dir / name, d / name)
    rep = buddy_read.from_proc(procfs.ProcDir(str(d)))
    assert rep.page_size == 4096 and rep.page_size_source.startswith("assumed 4 KiB")
    p = _cli("--proc", str(d))
    assert p.returncode == 0, p.stderr
    assert "PAGE SIZE: 4 KiB, assumed 4 KiB: the text does not say" in p.stdout
    p = _cli("--proc", str(d), "--json")
    data = json.loads(p.stdout)
    assert data["page_size"] == 4096 and data["page_size_source"].startswith("assumed")
    # given: every byte figure follows it; the page counts do not change
    p = _cli("--proc", str(d), "--json", "--page-size", "65536")
    big = json.loads(p.stdout)
    assert big["page_size"] == 65536 and big["page_size_source"] == "given (--page-size)"
    assert [z["nr_free"] for z in big["zones"]] == [z["nr_free"] for z in data["zones"]]
    assert "PAGE SIZE" not in _cli("--proc", str(d), "--page-size", "4096").stdout
    # with the guest's meminfo beside it, the text says it: no assumption
    shutil.copy(fx.truth_dir / "meminfo", d / "meminfo")
    p = _cli("--proc", str(d), "--json")
    assert json.loads(p.stdout)["page_size_source"] == "meminfo MemTotal / zoneinfo managed pages"


def test_bad_page_size_is_one_line(tmp_path):
    p = _cli("--proc", "/proc", "--page-size", "5000")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "--page-size 5000: not a page size" in p.stderr


@pytest.mark.skipif(not os.path.exists("/proc/buddyinfo"), reason="no /proc here")
def test_live_proc_is_this_systems():
    rep = buddy_read.from_proc(procfs.ProcDir("/proc"))
    assert rep.page_size == os.sysconf("SC_PAGE_SIZE")
    assert rep.page_size_source == "this system (sysconf PAGE_SIZE)"


@pytest.mark.vmcore
def test_rule_note_when_the_sublevel_is_unknown(vmcore, tmp_path):
    """bookworm's /proc text with its uname_r only ("6.1.0-57-cloud-amd64"):
    the 6.1 branch got the v6.3 rules at 6.1.116, so without the sublevel the
    rule is a guess and says so; with uname_a ("Debian 6.1.192-3") it is not."""
    fx = vmcore("bookworm", "fragmented")
    d = tmp_path / "proc"
    d.mkdir()
    for name in ("buddyinfo", "zoneinfo", "pagetypeinfo", "meminfo", "uname_r"):
        shutil.copy(fx.truth_dir / name, d / name)
    data = json.loads(_cli("--proc", str(d), "--json").stdout)
    assert data["rule"] == "4.4" and "6.1.116+" in data["rule_note"]
    p = _cli("--proc", str(d), "--alloc-flags", "high,harder", "--order", "3")
    assert p.returncode == 0 and "RULE: stable sublevel of 6.1.0-57-cloud-amd64 unknown" in p.stdout
    shutil.copy(fx.truth_dir / "uname_a", d / "uname_a")
    data = json.loads(_cli("--proc", str(d), "--json").stdout)
    assert data["rule"] == "6.3" and data["rule_note"] is None
