"""crashext's commands inside drgn (crashext/drgn_plugin.py, docs/drgn.md).

drgn runs as its users run it, in a subprocess on the real fixture dumps:
``drgn -c vmcore -s vmlinux -e '... run_command(prog, ...)'``, and its
interactive shell on a pseudo-terminal (the ``drgn_session`` that
scripts/gen-drgn-transcript uses for the docs).  The plugin is loaded the
way drgn loads plugins: ``DRGN_PLUGINS=crashext=crashext.drgn_plugin`` for
this checkout, and the ``drgn.plugins`` entry point of crashext installed
into a venv.  What a command prints in drgn must equal what the standalone
CLI prints for the same dump (the CLI's numbers are checked against the
guest's own view in test_memcg_vmcore.py, test_frag_vmcore.py and
test_triage_vmcore.py); the anchors here come from the guest's truth files.
"""

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import dying_removed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = os.path.join(REPO, "tests", "data", "logs", "rhel7-3.10.0-693.2.2-idr-bug.dmesg")
COMMANDS = ["memcgids", "frag", "allocfail", "triage"]
IN_CI = os.environ.get("CI", "") == "true"

#: a real drgn release from before the command framework (drgn.commands has
#: no parse_shell_command and the shell no % commands until 0.1.0)
OLD_DRGN = "0.0.33"


def _load_transcript_script():
    path = os.path.join(REPO, "scripts", "gen-drgn-transcript")
    loader = importlib.machinery.SourceFileLoader("gen_drgn_transcript", path)
    spec = importlib.util.spec_from_loader("gen_drgn_transcript", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


transcript = _load_transcript_script()


def _cli_json(fx, name):
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-m", "crashext", name, "--json",
                           "-c", str(fx.vmcore), "-s", str(fx.vmlinux)],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _drgn_e(fx, code, env=None, python=sys.executable, log_level="warning", target=None):
    """``drgn -c vmcore -s vmlinux -e CODE`` (or ``target`` instead of
    ``-c vmcore -s vmlinux``); the finished process."""
    target = target or ["-c", str(fx.vmcore), "-s", str(fx.vmlinux)]
    return subprocess.run([python, "-m", "drgn", "--log-level", log_level, *target, "-e", code],
                          capture_output=True, text=True, timeout=900,
                          env=env if env is not None else transcript.plugin_env())


def _dying_truth(fx):
    return set(dying_removed(fx.truth()))


def _help_parts(help_text):
    """(description lines, options) of an argparse help: each option with its
    help joined into one whitespace-normalised line."""
    text, opts = [], []
    opt_indent = 1 << 30
    if help_text.startswith("usage:"):  # the usage paragraph
        help_text = help_text.split("\n\n", 1)[1]
    for line in help_text.splitlines():
        stripped = line.strip()
        # argument group titles: options, and the CLI's target flags
        if not stripped or stripped == "options:" or stripped.startswith("target ("):
            continue
        indent = len(line) - len(line.lstrip())
        if opts and indent > opt_indent:  # an option's help, wrapped
            opts[-1] += " " + " ".join(stripped.split())
        elif stripped.startswith("-") and indent:
            opts.append(" ".join(stripped.split()))
            opt_indent = indent
        else:
            text.append(stripped)
            opt_indent = 1 << 30
    return text, opts


def _cli_help(name):
    proc = subprocess.run([sys.executable, "-m", "crashext", name, "--help"], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.vmcore
@pytest.mark.parametrize("suite", ["bullseye", "bookworm", "trixie-backports"])
def test_drgn_commands_print_the_cli_json(vmcore, suite, tmp_path):
    """The four commands run by drgn's run_command (redirected to files by
    drgn) give the CLI's JSON for the same dump, key for key."""
    fx = vmcore(suite, "memcg-churn")
    code = "from drgn.commands import run_command\n" + "".join(
        f"run_command(prog, {f'{name} --json > {tmp_path / name}.json'!r})\n" for name in COMMANDS)
    proc = _drgn_e(fx, code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    got = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in COMMANDS}
    for name in COMMANDS:
        assert got[name] == _cli_json(fx, name), name
    # and what the guest saw before it panicked
    truth = fx.truth()
    assert {m["path"] for m in got["memcgids"]["memcgs"] if m["state"] == "dying"} == _dying_truth(fx)
    assert got["frag"]["release"] == truth["uname_r"]
    assert got["triage"]["system"]["panic"] == truth["panic_string"]


@pytest.mark.vmcore
def test_interactive_shell(vmcore, tmp_path):
    """drgn's own shell on a terminal: % commands, pipes, drgn's help and
    usage errors, and the session going on after errors."""
    fx = vmcore("bookworm", "memcg-churn")
    # MAX_ORDER of this kernel, as /proc/buddyinfo showed it: one column per order
    orders = {len(counts) for counts in fx.truth()["buddyinfo"].values()}
    assert len(orders) == 1
    orders = orders.pop()
    out_json = {name: tmp_path / f"{name}.json" for name in ("frag", "memcgids")}
    typed = ["%memcgids --no-such-option",
             "%crash help memcgids",
             "%memcgids --help",
             "%memcgids --dying | grep -c ' dying '",
             "%frag --order 99",
             f"%crashext frag --json > {out_json['frag']}",
             f"%crash memcgids --json > {out_json['memcgids']}",
             "%crashext nosuchcommand",
             "6 * 7"]
    _banner, results = transcript.drgn_session(str(fx.vmcore), str(fx.vmlinux), typed)
    out = dict(results)
    for line, text in results:
        assert "Traceback" not in text, (line, text)

    # a bad option: drgn's usage error (the usage, then one error line)
    bad = out["%memcgids --no-such-option"].splitlines()
    assert bad[0].startswith("usage: memcgids ")
    assert bad[-1] == "drgn: memcgids: error: unrecognized arguments: --no-such-option"

    # drgn's help (crash mode's `help`, and --help) shows the CLI's help text:
    # `crashext memcgids --help` but its usage line, -h (which does not exit
    # drgn) and the target flags, which drgn does not take (the session is
    # the kernel); options compared with their help joined into one line, as
    # the column they wrap at differs
    cli_text, cli_opts = _help_parts(_cli_help("memcgids"))
    cli_opts = [o for o in cli_opts if not o.startswith(("-h, --help", "-c ", "-s ", "-k,", "--qemu"))]
    assert cli_text and len(cli_opts) > 4
    for shown in (out["%crash help memcgids"], out["%memcgids --help"]):
        text, opts = _help_parts(shown)
        assert not [ln for ln in cli_text if ln not in text]
        assert not [o for o in cli_opts if o not in opts]
    assert out["%crash help memcgids"].startswith("NAME\n  memcgids - ")

    # a pipe in drgn sees our rows: one per memcg the guest removed while charged
    assert int(out["%memcgids --dying | grep -c ' dying '"].strip()) == len(_dying_truth(fx))

    # a crashext error: one line from drgn, naming the orders this kernel has
    err = out["%frag --order 99"].strip().splitlines()
    assert len(err) == 1 and err[0].startswith("drgn: error: frag: --order 99 out of range"), err
    assert f"0..{orders - 1}" in err[0]

    # the crashext prefix, drgn's crash mode and drgn's redirection: the CLI's JSON
    for name, path in out_json.items():
        assert json.loads(path.read_text()) == _cli_json(fx, name), name
    unknown = out["%crashext nosuchcommand"].strip().splitlines()
    assert len(unknown) == 1 and unknown[0].startswith("drgn: crashext: ") \
        and "nosuchcommand" in unknown[0], unknown
    # the session went on after every error
    assert out["6 * 7"].strip() == "42"


def _source_copy(dst):
    """The repository's files (tracked or new, not ignored) under ``dst``: a
    build there cannot leave build/ or *.egg-info in the checkout."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, check=True).stdout
    for rel in out.decode().split("\0"):
        src = os.path.join(REPO, rel)
        if rel and os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
            with open(src, "rb") as f, open(os.path.join(dst, rel), "wb") as g:
                g.write(f.read())
    return dst


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "DRGN_PLUGINS", "DRGN_DISABLE_PLUGINS")}
    env.update(extra)
    return env


@pytest.mark.vmcore
def test_installed_entry_point(vmcore, tmp_path):
    """Installing crashext is all it takes: drgn finds the plugin through the
    drgn.plugins entry point of crashext's metadata, with no DRGN_PLUGINS.

    The metadata is what setuptools writes from setup.py for any install
    (``setup.py egg_info``, on a copy of this checkout), found on the path
    before this machine's own crashext install; no network needed."""
    fx = vmcore("bookworm", "memcg-churn")
    src = _source_copy(str(tmp_path / "src"))
    meta = subprocess.run([sys.executable, "setup.py", "-q", "egg_info"], cwd=src,
                          capture_output=True, text=True, timeout=300, env=_clean_env())
    assert meta.returncode == 0, meta.stderr[-2000:]
    env = _clean_env(PYTHONPATH=src)
    where = subprocess.run([sys.executable, "-c", "import crashext.drgn_plugin as p; print(p.__file__)"],
                           capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert where.stdout.startswith(src), where.stdout + where.stderr

    code = "from drgn.commands import run_command; run_command(prog, 'frag --json')"
    proc = _drgn_e(fx, code, env=env, log_level="debug")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "loaded entry point 'crashext = crashext.drgn_plugin'" in proc.stderr
    assert json.loads(proc.stdout) == _cli_json(fx, "frag")

    # drgn's switch for plugins turns it off: the command is then not there
    off = _drgn_e(fx, code, env=dict(env, DRGN_DISABLE_PLUGINS="crashext"))
    assert off.returncode != 0 and "CommandNotFoundError: frag: command not found" in off.stderr


def _plugin_log_lines(stderr):
    return [ln for ln in stderr.splitlines() if "drgn.plugins.crashext" in ln]


def test_without_drgn_cli_works_and_plugin_is_skipped():
    """No drgn at all (its import fails, as when it is not installed): the
    plugin registers nothing, in one debug line, and the CLI reads text."""
    code = (
        "import sys, logging, json\n"
        "sys.modules['drgn'] = None  # what Python does for a module that is not there\n"
        "logging.basicConfig(level=logging.DEBUG, format='%(name)s: %(message)s')\n"
        "import crashext.drgn_plugin as p\n"
        "assert p.REGISTERED == [], p.REGISTERED\n"
        "from crashext.cli import main\n"
        f"sys.exit(main(['allocfail', '--json', {SEED!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = _plugin_log_lines(proc.stderr)
    assert len(lines) == 1 and "drgn is not installed" in lines[0], proc.stderr
    # the RHEL7 idr-bug host's log has docker-runc's order-6 failure (the line is in the log)
    with open(SEED, errors="replace") as f:
        assert "docker-runc: page allocation failure: order:6" in f.read()
    fails = json.loads(proc.stdout)["failures"]
    assert any(f.get("comm") == "docker-runc" and f.get("order") == 6 for f in fails)


@pytest.fixture(scope="module")
def old_drgn():
    """drgn OLD_DRGN from PyPI, in crashext's cache (installed once)."""
    cache = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    target = os.path.join(cache, "crashext", "drgn", OLD_DRGN)
    if not os.path.isfile(os.path.join(target, "drgn", "__init__.py")):
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                               "--target", target, f"drgn=={OLD_DRGN}"],
                              capture_output=True, text=True, timeout=600,
                              env=_clean_env(PIP_CONFIG_FILE=os.devnull))
        if proc.returncode != 0:
            why = f"cannot install drgn {OLD_DRGN} from PyPI: {proc.stderr.strip()[-500:]}"
            if IN_CI:
                pytest.fail(why)
            pytest.skip(why)
    return target


@pytest.mark.vmcore
def test_drgn_too_old_cli_works_and_plugin_is_skipped(vmcore, old_drgn):
    """A real drgn from before the command framework loads the plugin
    (DRGN_PLUGINS, as it does any plugin) and gets one debug line and no
    commands; crashext's CLI on that drgn gives the same JSON as on ours."""
    fx = vmcore("bookworm", "memcg-churn")
    env = transcript.plugin_env({"PYTHONPATH": os.pathsep.join([old_drgn, REPO])})
    code = ("import drgn, crashext.drgn_plugin as p\n"
            "print(drgn.__version__, drgn.__file__)\nprint(p.REGISTERED)\n")
    proc = _drgn_e(fx, code, env=env, log_level="debug")
    assert proc.returncode == 0, proc.stderr[-3000:]
    version, path = proc.stdout.splitlines()[0].split()
    assert version == OLD_DRGN and path.startswith(old_drgn)
    assert proc.stdout.splitlines()[1] == "[]"
    assert "loaded 'crashext=crashext.drgn_plugin'" in proc.stderr
    lines = _plugin_log_lines(proc.stderr)
    assert len(lines) == 1 and f"drgn {OLD_DRGN} has no command framework" in lines[0], proc.stderr

    cli = subprocess.run([sys.executable, "-m", "crashext", "memcgids", "--json",
                          "-c", str(fx.vmcore), "-s", str(fx.vmlinux)],
                         capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join([old_drgn, REPO])))
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == _cli_json(fx, "memcgids")


@pytest.mark.vmcore
def test_session_without_debug_info(vmcore):
    """drgn opened the dump but loaded no debug info: each command says so in
    one drgn error, no traceback."""
    fx = vmcore("bookworm", "memcg-churn")
    code = ("from drgn.commands import run_command\n"
            "for name in %r:\n"
            "    run_command(prog, name, onerror=lambda e: print(type(e).__name__, e))\n" % COMMANDS)
    proc = _drgn_e(fx, code, target=["-c", str(fx.vmcore), "--no-default-symbols"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert [ln.split(":")[0] for ln in lines] == [f"CommandError {name}" for name in COMMANDS]
    assert all("no debug info" in ln for ln in lines) and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def qemu_guest(tmp_path_factory):
    """A running bookworm guest after the live-churn scenario, its CPUs
    stopped (QMP stop) so that drgn and the CLI read the same memory."""
    from conftest import fixturelib
    from live import guest
    kernel = fixturelib.get_kernel("bookworm")
    wd = tmp_path_factory.mktemp("drgn-qmp")
    initrd, sopts = guest.live_initramfs(kernel, "live-churn", wd / "initrd.gz")
    with guest.LiveGuest(wd, kernel, initrd=initrd, memory=sopts.get("memory", "512M")) as g:
        try:
            g.wait_for("LIVE_READY", 600)
        except guest.GuestError as exc:
            pytest.fail(str(exc), pytrace=False)
        g.ctl.cmd("stop")
        yield g, kernel


@pytest.mark.vmcore
def test_qemu_guest_session(qemu_guest, tmp_path):
    """`drgn --qemu SOCKET -s VMLINUX`: the commands read the running guest;
    the memcgs are the ones the guest listed, and the JSON is the CLI's
    `--qemu` JSON but for where and when it was read."""
    from conftest import truthmod
    from jsoncmp import PLACE_KEYS, strip_place
    g, kernel = qemu_guest
    target = ["--qemu", str(g.qmp_socket), "-s", str(kernel.vmlinux)]
    code = "from drgn.commands import run_command\n" + "".join(
        f"run_command(prog, {f'{name} --json > {tmp_path / name}.json'!r})\n"
        for name in ("memcgids", "frag"))
    code += f"run_command(prog, 'memcgids --watch 0.2 --count 2 --json > {tmp_path / 'watch'}')\n"
    proc = _drgn_e(None, code, target=target)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in ("memcgids", "frag")}

    blocks = g.blocks()
    tree = {ln.split("\t")[0]: int(ln.split("\t")[1])
            for ln in blocks["tree.tsv"].splitlines() if ln.strip()}
    removed = truthmod.parse_tsv(blocks["removed_charged.tsv"])
    memcgs = got["memcgids"]["memcgs"]
    assert {m["path"]: m["cgroup_id"] for m in memcgs if m["state"] == "online"} == tree
    assert {m["path"]: m["cgroup_id"] for m in memcgs if m["state"] == "dying"} == \
        {r["path"]: r["ino"] for r in removed}
    assert got["memcgids"]["summary"]["live"]["source"] == "QEMU guest"
    assert {(z["node"], z["zone"]): z["nr_free"] for z in got["frag"]["zones"]} == \
        truthmod.parse_buddyinfo(blocks["buddyinfo"])

    # --watch on a live session: bounded by --count, one JSON line a sample
    recs = [json.loads(ln) for ln in (tmp_path / "watch").read_text().splitlines()]
    assert [r["sample"] for r in recs] == [1, 2]
    assert all(r["values"]["dying"] == len(removed) for r in recs)

    for name in ("memcgids", "frag"):
        cli = subprocess.run([sys.executable, "-m", "crashext", name, "--json", *target],
                             capture_output=True, text=True, timeout=900,
                             env=dict(os.environ, PYTHONPATH=REPO))
        assert cli.returncode == 0, cli.stderr
        # `live` says where and when: the time differs, and drgn does not
        # keep the socket path the CLI names
        keys = PLACE_KEYS | {"live"}
        assert strip_place(got[name], keys) == strip_place(json.loads(cli.stdout), keys), name
