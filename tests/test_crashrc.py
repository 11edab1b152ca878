"""A user's ~/.crashrc and the crash + PyKdump builds: one pack per session.

docs/install.md has users append `crashext crash-init --crashrc` to
~/.crashrc: it loads the PyKdump built for the crash on PATH (Debian's
8.0.2) and crashext's commands into every crash session.  Here, with that
~/.crashrc in a temporary HOME:

- `crashext crash` loads exactly one PyKdump, the one built for the crash
  it runs (crash's --no_crashrc), in the crash the ~/.crashrc was written
  for and in a newer one alike;
- a crash the ~/.crashrc's PyKdump was not built for, run by hand, is told
  so in one line and goes on (scripts/build-pykdump's PyKdump declines to
  load; PyKdump itself would exit crash on another major version);
- the crash it was built for loads the pack from it.
"""

import os
import re
import subprocess
import sys

import pytest

import crashbuilds
from crashext.crashenv import builds_dir, crash_env, version_key

pytestmark = [pytest.mark.pykdump, pytest.mark.vmcore]

OLD = "8.0.2"                  # the crash on PATH in Debian bookworm
NEW = max(crashbuilds.SUITES, key=version_key)   # the newest crash tested


def user_env(home):
    """The environment of a user whose HOME is ``home``; the builds stay
    where scripts/build-pykdump put them."""
    env = dict(os.environ, HOME=str(home), CRASHEXT_BUILDS=builds_dir())
    env.pop("CRASHEXT_PYKDUMP", None)
    return env


@pytest.fixture
def home(tmp_path):
    """A HOME with the ~/.crashrc docs/install.md tells users to write."""
    crashbuilds.need(OLD)
    h = tmp_path / "home"
    h.mkdir()
    proc = subprocess.run([sys.executable, "-m", "crashext", "crash-init", "--crashrc"],
                          capture_output=True, text=True, env=user_env(h), timeout=120)
    assert proc.returncode == 0, proc.stderr
    (h / ".crashrc").write_text(proc.stdout)
    return h


def run_crashext_crash(home, fx, build, tmp_path):
    out = tmp_path / "m.json"
    proc = subprocess.run([sys.executable, "-m", "crashext", "crash", "--crash", build.crash,
                           str(fx.vmlinux), str(fx.vmcore), "--", f"memcgids --json > {out}"],
                          capture_output=True, text=True, env=user_env(home), timeout=900)
    return proc, out


@pytest.mark.parametrize("version", [OLD, NEW])
def test_crashext_crash_loads_one_pykdump_despite_the_crashrc(vmcore, home, tmp_path, version):
    """The ~/.crashrc names 8.0.2's PyKdump; `crashext crash` in 8.0.2 and
    in the newest crash loads one PyKdump (no duplicate command) and the
    pack answers."""
    build = crashbuilds.need(version)
    assert f"crash-{OLD}/mpykdump.so" in (home / ".crashrc").read_text()
    fx = vmcore("bookworm", "memcg-churn")
    proc, out = run_crashext_crash(home, fx, build, tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-2000:]
    assert "duplicate" not in text and "not loaded" not in text, text[-2000:]
    assert text.count("shared object loaded") == 1, text[-2000:]
    assert text.count("crashext: registered") == 1, text[-2000:]
    assert out.stat().st_size > 0


def crash_by_hand(home, build, fx, mpykdump):
    """`crash vmlinux vmcore` as the user types it, with their ~/.crashrc."""
    env = crash_env(mpykdump=mpykdump)
    env.update(HOME=str(home))
    return subprocess.run([build.crash, "-s", str(fx.vmlinux), str(fx.vmcore)], input="sys\nq\n",
                          capture_output=True, text=True, env=env, timeout=900)


def test_crashrc_pykdump_declines_a_crash_it_was_not_built_for(vmcore, home):
    """The newest crash run by hand with the ~/.crashrc of 8.0.2: one line
    says the PyKdump was not loaded and why, and the session goes on.  crash
    9.x loads an extension with dlopen(RTLD_NOW), so the 8.0.2 PyKdump is
    refused there before its own version guard runs: by a gdb 10 symbol
    that gdb 16 no longer has (crash's own one-line message)."""
    new = crashbuilds.need(NEW)
    old = crashbuilds.need(OLD)
    fx = vmcore("bookworm", "memcg-churn")
    proc = crash_by_hand(home, new, fx, old.mpykdump)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-2000:]
    said = [ln for ln in text.splitlines() if old.mpykdump in ln and "loaded" not in ln]
    assert len(said) == 1, text[-2000:]
    assert re.fullmatch(rf"extend: {re.escape(old.mpykdump)}: undefined symbol: \S+", said[0]), said
    assert "crashext: registered" not in text
    assert re.search(r'PANIC: ".*sysrq triggered crash"', text), text[-2000:]   # `sys` ran


def test_crashrc_loads_the_pack_in_its_own_crash(vmcore, home):
    old = crashbuilds.need(OLD)
    fx = vmcore("bookworm", "memcg-churn")
    proc = crash_by_hand(home, old, fx, old.mpykdump)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-2000:]
    assert text.count("crashext: registered") == 1, text[-2000:]
    assert "not loaded" not in text and "duplicate" not in text
