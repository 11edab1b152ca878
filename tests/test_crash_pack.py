"""The crashext pack inside a real crash session (Debian's crash + PyKdump).

Needs PyKdump's extension, built outside this repository (docs/crash.md):
its path comes from CRASHEXT_PYKDUMP (default /opt/pykdump/mpykdump.so) and
these tests skip, saying so, when it is absent.  Each command's JSON from
inside crash, written through crash's own redirection, must equal the
standalone drgn JSON for the same dump: same rows, same numbers.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from crashext.crashenv import pykdump_path
from jsoncmp import strip_place

MPYKDUMP = pykdump_path()
needs_pykdump = pytest.mark.skipif(
    not os.path.isfile(MPYKDUMP),
    reason=f"PyKdump not available: {MPYKDUMP} missing (set CRASHEXT_PYKDUMP to a built mpykdump.so)")
needs_crash = pytest.mark.skipif(shutil.which("crash") is None, reason="Debian's crash is not installed")

pytestmark = [pytest.mark.pykdump, needs_pykdump, needs_crash]

def crash_run(fx, *commands, timeout=900):
    proc = subprocess.run(
        [sys.executable, "-m", "crashext", "crash", str(fx.vmlinux), str(fx.vmcore), "--", *commands],
        capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def standalone_json(fx, *args):
    proc = subprocess.run([sys.executable, "-m", "crashext", *args, "--json",
                           "-c", str(fx.vmcore), "-s", str(fx.vmlinux)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.vmcore
@pytest.mark.parametrize("suite", ["bullseye", "bookworm"])
def test_commands_inside_crash_equal_standalone(vmcore, suite, tmp_path):
    fx = vmcore(suite, "memcg-churn")
    outs = {name: tmp_path / f"{name}.json" for name in ("memcgids", "frag")}
    _, transcript = crash_run(
        fx, f"memcgids --json > {outs['memcgids']}", f"frag --json > {outs['frag']}")
    assert "crashext: registered" in transcript, transcript[-2000:]
    for name, path in outs.items():
        assert path.exists() and path.stat().st_size > 0, f"{name} wrote nothing:\n{transcript[-2000:]}"
        inside = json.loads(path.read_text())
        assert strip_place(inside) == strip_place(standalone_json(fx, name)), name


@pytest.mark.vmcore
def test_help_pipes_and_errors_inside_crash(vmcore, tmp_path):
    fx = vmcore("bookworm", "memcg-churn")
    truth_dying = fx.truth()["removed_charged.tsv"]  # cgroups removed while charged
    rc, out = crash_run(
        fx,
        "help memcgids",
        "memcgids --dying | grep -c ' dying '",
        "memcgids --no-such-option",
        "frag --order 99",
        "sys | grep PANIC",
    )
    # help shows our text under crash's NAME/SYNOPSIS/DESCRIPTION layout
    assert "memcgids - " in out and "kmemcg-id-unassigned" in out
    # a pipe inside crash sees our rows: one per dying memcg the guest left
    lines = out.splitlines()
    i = lines.index(next(l for l in lines if l.strip().isdigit()))
    assert int(lines[i].strip()) == len(truth_dying)
    # bad options print one line and return to the prompt; the session goes on
    assert "unrecognized arguments: --no-such-option" in out
    assert "Traceback" not in out
    assert "out of range" in out  # frag --order 99: one line, the session went on
    assert re.search(r'PANIC: ".*sysrq triggered crash"', out)
