"""The crashext pack inside a real crash session, in every crash built for it.

scripts/setup builds crash 9.0.2+abcb45e (crash master after 9.0.2, with gdb
16.3) and a PyKdump for it and for Debian's crash 8.0.2
(scripts/build-pykdump); tests/crashbuilds.py finds them, skips saying how
to build them when absent, and fails under CI=true.  Each command's JSON
from inside crash, written through crash's own redirection, must equal the
standalone drgn JSON for the same dump: same rows, same numbers.  8.0.2 runs
on the 5.10 and 6.1 dumps (it cannot open 6.12 or 7.x ones), 9.0.2+abcb45e on
the 5.10, 6.1, 6.12 and 7.x ones.
"""

import json
import re
import subprocess
import sys

import pytest

import crashbuilds
from crashext.crashenv import version_key
from jsoncmp import strip_place

pytestmark = [pytest.mark.pykdump]


def crash_run(fx, *commands, timeout=900, build=None):
    """``crashext crash`` on a fixture; ``build`` picks the crash (default: crashext's choice)."""
    if build is None:
        build = crashbuilds.newest()
    proc = subprocess.run(
        [sys.executable, "-m", "crashext", "crash", "--crash", build.crash, "--mpykdump", build.mpykdump,
         str(fx.vmlinux), str(fx.vmcore), "--", *commands],
        capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def standalone_json(fx, *args):
    proc = subprocess.run([sys.executable, "-m", "crashext", *args, "--json",
                           "-c", str(fx.vmcore), "-s", str(fx.vmlinux)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


#: every kernel-reading command of the pack, as run inside crash and standalone
COMMANDS = {"memcgids": ["memcgids"], "frag": ["frag", "--migratetypes"],
            "allocfail": ["allocfail"]}


@pytest.mark.vmcore
@pytest.mark.parametrize("version,suite", crashbuilds.PAIRS)
def test_commands_inside_crash_equal_standalone(vmcore, version, suite, tmp_path):
    build = crashbuilds.need(version)
    fx = crashbuilds.suite(vmcore, suite, "memcg-churn")
    outs = {name: tmp_path / f"{name}.json" for name in COMMANDS}
    rc, transcript = crash_run(
        fx, *(f"{' '.join(argv)} --json > {outs[name]}" for name, argv in COMMANDS.items()),
        build=build)
    assert "crashext: registered" in transcript, transcript[-2000:]
    assert f"using crash {version} " in transcript, transcript[-2000:]
    assert "Traceback" not in transcript
    for name, path in outs.items():
        assert path.exists() and path.stat().st_size > 0, f"{name} wrote nothing:\n{transcript[-2000:]}"
        inside = json.loads(path.read_text())
        assert strip_place(inside) == strip_place(standalone_json(fx, *COMMANDS[name])), name


@pytest.mark.vmcore
@pytest.mark.parametrize("suite", ["bookworm", "trixie", "trixie-backports"])
def test_crash_picks_the_newest_that_opens_the_dump(vmcore, suite, tmp_path):
    """Without --crash, the newest crash built opens the dump (6.1, which
    every build opens; 6.12 and 7.x, which the older ones do not); the
    choice is said on stderr."""
    newest = crashbuilds.newest()
    assert newest.version == max(crashbuilds.SUITES, key=version_key)
    fx = crashbuilds.suite(vmcore, suite, "memcg-churn")
    out = tmp_path / "m.json"
    proc = subprocess.run([sys.executable, "-m", "crashext", "crash", str(fx.vmlinux), str(fx.vmcore),
                           "--", f"memcgids --json > {out}"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"crashext: using crash {newest.version} ({newest.crash})" in proc.stderr, proc.stderr
    assert "passed over" not in proc.stderr
    assert strip_place(json.loads(out.read_text())) == strip_place(standalone_json(fx, "memcgids"))


@pytest.mark.vmcore
def test_dump_no_crash_can_open_names_each(vmcore, tmp_path):
    """A dump no built crash opens gives one line naming each crash tried."""
    build = crashbuilds.need("8.0.2")
    fx = vmcore("trixie", "memcg-churn")  # crash 8.0.2 cannot open 6.12 dumps
    proc = subprocess.run([sys.executable, "-m", "crashext", "crash", "--crash", build.crash,
                           "--mpykdump", build.mpykdump, str(fx.vmlinux), str(fx.vmcore), "--", "memcgids"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "no crash could open the dump" in lines[0] and "crash 8.0.2 (" in lines[0], lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.vmcore
@pytest.mark.parametrize("version", sorted(crashbuilds.SUITES))
def test_help_pipes_and_errors_inside_crash(vmcore, tmp_path, version):
    build = crashbuilds.need(version)
    fx = vmcore("bookworm", "memcg-churn")
    truth_dying = fx.truth()["removed_charged.tsv"]  # cgroups removed while charged
    rc, out = crash_run(
        fx,
        "help memcgids",
        "memcgids --dying | grep -c ' dying '",
        "memcgids --no-such-option",
        "frag --order 99",
        "sys | grep PANIC",
        build=build,
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


@pytest.mark.vmcore
def test_init_names_the_module_it_cannot_import(vmcore, tmp_path):
    """A PYKDUMPPATH without tabulate: the init script says which module
    failed to import and why, for each command, not "registered nothing"."""
    import os
    from crashext.crashenv import crash_env, init_lines
    import tabulate
    build = crashbuilds.newest()
    fx = vmcore("bookworm", "memcg-churn")
    env = crash_env(mpykdump=build.mpykdump)
    tab_dir = os.path.dirname(os.path.abspath(tabulate.__file__))
    if os.path.basename(tabulate.__file__) == "__init__.py":
        tab_dir = os.path.dirname(tab_dir)
    env["PYKDUMPPATH"] = ":".join(d for d in env["PYKDUMPPATH"].split(":") if d != tab_dir)
    init = tmp_path / "init"
    init.write_text("\n".join(init_lines(build.mpykdump)) + "\n")
    proc = subprocess.run([build.crash, "-s", "-i", str(init), str(fx.vmlinux), str(fx.vmcore)],
                          input="q\n", capture_output=True, text=True, env=env, timeout=900)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    lines = [ln for ln in out.splitlines() if ln.startswith("crashext: ")]
    assert any(re.search(r"^crashext: memcgids not registered: .*tabulate", ln) for ln in lines), out[-2000:]
    registered = [ln for ln in lines if ln.startswith("crashext: registered")]
    assert len(registered) == 1 and "memcgids" not in registered[0], lines


@pytest.mark.vmcore
def test_report_inside_crash_writes_the_page(vmcore, tmp_path):
    """`report -o FILE` inside crash: PyKdump's Python imports matplotlib and
    Jinja2 from PYKDUMPPATH and writes the page for the session's dump, with
    what the guest recorded (its release and panic string) and its pictures."""
    import html
    fx = vmcore("bookworm", "memcg-churn")
    page = tmp_path / "r.html"
    rc, out = crash_run(fx, f"report -o {page}")
    assert "Traceback" not in out
    assert page.is_file(), out[-2000:]
    text = html.unescape(page.read_text())
    assert (fx.truth_dir / "uname_r").read_text().strip() in text
    assert (fx.truth_dir / "panic_string").read_text().strip() in text
    assert text.count("<svg") >= 3 and "http://" not in text.replace("http://www.w3.org", "")


@pytest.mark.vmcore
@pytest.mark.parametrize("dump,kernel", [("trixie-backports", "trixie"), ("trixie", "trixie-backports")])
def test_wrong_vmlinux_is_one_line_naming_both_build_ids(vmcore, dump, kernel):
    """A 7.x dump with the 6.12 vmlinux, and a 6.12 dump with the 7.x one:
    `crashext crash` says so in one line with both build ids (the dump's
    from its VMCOREINFO, the vmlinux's from its note) before any crash runs."""
    crashbuilds.newest()
    fx = crashbuilds.suite(vmcore, dump, "memcg-churn")
    other = crashbuilds.suite(vmcore, kernel, "memcg-churn")
    proc = subprocess.run([sys.executable, "-m", "crashext", "crash", str(other.vmlinux), str(fx.vmcore),
                           "--", "memcgids"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    ids = re.findall(r"build-id ([0-9a-f]{12})", lines[0])
    assert lines[0].startswith("crashext crash: vmlinux does not match the dump: "), lines[0]
    assert re.search(rf"vmlinux is {re.escape(other.meta['kernel_release'])} .*"
                     rf"dump is {re.escape(fx.meta['kernel_release'])} ", lines[0]), lines[0]
    # the build ids binutils reads from each vmlinux's note: the dump's is
    # its own kernel's
    assert ids == [note_build_id(other.vmlinux)[:12], note_build_id(fx.vmlinux)[:12]], lines[0]


def note_build_id(vmlinux):
    out = subprocess.run(["readelf", "-n", str(vmlinux)], capture_output=True, text=True, check=True).stdout
    return re.search(r"Build ID: ([0-9a-f]+)", out).group(1)
