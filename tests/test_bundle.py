"""``crashext bundle``: a directory PyKdump can use through PYKDUMPPATH alone.

The layout tests check the bundle against the sources it copies from (the
installed crashext, tabulate and epython scripts), that it imports with no
site-packages at all, and that bad requests are one line.  The crash test
loads the bundle in Debian's crash with PyKdump (CRASHEXT_PYKDUMP, skipped
when absent) on the 6.1 memcg-churn dump, with PYKDUMPPATH = the stdlib of
the libpython PyKdump links + the bundle and nothing else, started from an
empty directory (PyKdump puts '.' first on sys.path), and checks the rows
of ``memcgids`` against the cgroup tree the guest recorded before the dump.
"""

import json
import os
import subprocess
import sys

import pytest

import crashext
import tabulate
from crashext.crashenv import epython_dir, linked_python_stdlib, pykdump_path

MPYKDUMP = pykdump_path()


def bundle(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "crashext", "bundle", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def _tree(root, skip=("__pycache__",)):
    out = set()
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x not in skip]
        out |= {os.path.relpath(os.path.join(d, f), root) for f in files if not f.endswith(".pyc")}
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "crashext-bundle"
    proc = bundle("-o", str(out), "--python", "3.11", "--mpykdump", "/opt/x/mpykdump.so")
    assert proc.returncode == 0, proc.stderr
    return out


def test_layout_equals_sources(made):
    pkg = os.path.dirname(crashext.__file__)
    assert _tree(made / "crashext") == _tree(pkg)
    assert {p for p in _tree(made / "crashext") if p.startswith("kb/") and p.endswith(".toml")} \
        == {"kb/" + f for f in os.listdir(os.path.join(pkg, "kb")) if f.endswith(".toml")}
    tab = os.path.dirname(tabulate.__file__) if tabulate.__file__.endswith("__init__.py") else None
    if tab:
        assert _tree(made / "tabulate") == _tree(tab)
    else:
        assert (made / "tabulate.py").read_bytes() == open(tabulate.__file__, "rb").read()
    # every epython script at the top, byte for byte: PyKdump finds a program as PATHDIR/NAME.py
    scripts = sorted(f for f in os.listdir(epython_dir()) if f.endswith(".py"))
    assert "crashext_init.py" in scripts
    for f in scripts:
        assert (made / f).read_bytes() == open(os.path.join(epython_dir(), f), "rb").read()
    assert not list(made.rglob("__pycache__"))
    # Python 3.11 has tomllib: no tomli copied
    assert not (made / "tomli").exists()


def test_crashrc_env_and_manifest(made):
    assert (made / "crashrc").read_text().splitlines() == [
        "extend /opt/x/mpykdump.so", f"epython {made}/crashext_init.py"]
    man = json.loads((made / "crashext-bundle.json").read_text())
    assert man["crashext_version"] == crashext.__version__
    assert man["python"] == "3.11"
    assert set(man["modules"]) == {"crashext", "tabulate"}
    # PYKDUMPPATH: the bundle directory is the only non-stdlib entry
    assert man["pykdumppath"][-1] == str(made)
    env = (made / "env.sh").read_text()
    assert f"export PYKDUMPPATH={':'.join(man['pykdumppath'])}$" in env.replace("${PYKDUMPPATH:+:$PYKDUMPPATH}", "$")


def test_imports_with_no_site_packages(made, tmp_path):
    """-I -S: no site-packages, no PYTHONPATH, no cwd; only the bundle is added."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); sys.argv = sys.argv[:1];"
            "import crashext, tabulate, crashext.kb as kb, crashext.crash_pack as cp;"
            "from crashext.cli import main;"
            "print(crashext.__file__); print(tabulate.__file__);"
            "print(','.join(sorted(e.id for e in kb.load_kb())));"
            "print(','.join(cp.crash_commands()))")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(made)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(str(made) + "/crashext/")
    assert lines[1].startswith(str(made) + "/tabulate")
    assert "memcgids" in lines[3].split(",")
    # the knowledge base loads from the bundle: one entry per shipped TOML file's id
    import re
    kb_dir = os.path.join(os.path.dirname(crashext.__file__), "kb")
    ids = set()
    for f in os.listdir(kb_dir):
        if f.endswith(".toml"):
            with open(os.path.join(kb_dir, f)) as fh:
                ids |= set(re.findall(r'^id = "([^"]+)"', fh.read(), re.M))
    assert set(lines[2].split(",")) == ids and ids


def test_allocfail_from_bundle_reads_the_seed_log(made, tmp_path):
    """The RHEL7 idr-bug log through the bundle alone: the order-6 failure of docker-runc."""
    seed = os.path.join(os.path.dirname(__file__), "data", "logs", "rhel7-3.10.0-693.2.2-idr-bug.dmesg")
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "from crashext.cli import main; sys.exit(main(['allocfail', '--json', sys.argv[2]]))")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(made), seed],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    # the log line: "docker-runc: page allocation failure: order:6, mode:0x10c0d0"
    with open(seed, errors="replace") as f:
        assert "docker-runc: page allocation failure: order:6" in f.read()
    assert '"docker-runc"' in text and '"order": 6' in text


def test_refuses_to_overwrite(tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    proc = bundle("-o", str(other), "--force")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"crashext bundle: {other} exists and is not an earlier crashext bundle; give a new directory"
    assert (other / "notes.txt").read_text() == "keep"
    out = tmp_path / "b"
    assert bundle("-o", str(out)).returncode == 0
    again = bundle("-o", str(out))
    assert again.returncode == 2 and "add --force" in again.stderr
    assert bundle("-o", str(out), "--force").returncode == 0
    # nothing left next to it from the temporary copy
    assert sorted(os.listdir(tmp_path)) == ["b", "mine"]


@pytest.mark.parametrize("args,message", [
    (["--python", "three"], "--python 'three': give a version like 3.11"),
    (["--python", "3.6"], "crashext needs Python 3.8 or later; the target is 3.6"),
])
def test_bad_python_is_one_line(tmp_path, args, message):
    proc = bundle("-o", str(tmp_path / "b"), *args)
    assert proc.returncode == 2
    assert proc.stderr == f"crashext bundle: {message}\n"
    assert not (tmp_path / "b").exists()


def test_old_python_needs_tomli(tmp_path):
    try:
        import tomli  # noqa: F401
    except ImportError:
        proc = bundle("-o", str(tmp_path / "b"), "--python", "3.8")
        assert proc.returncode == 2
        assert "Python 3.8 has no tomllib" in proc.stderr and "pip install tomli" in proc.stderr
        assert proc.stderr.count("\n") == 1
    else:
        proc = bundle("-o", str(tmp_path / "b"), "--python", "3.8")
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "b" / "tomli").is_dir()


# ---- inside Debian's crash with PyKdump

def _parse_memcgids(text):
    """Rows of the memcgids table: address, state, cgroup id and path."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[0].startswith("ffff") and parts[1] in ("online", "dying"):
            path = next(p for p in parts if p.startswith("/"))
            rows.append({"state": parts[1], "cgroup_id": int(parts[2]), "path": path})
    return rows


@pytest.mark.pykdump
@pytest.mark.vmcore
def test_bundle_inside_crash(vmcore, tmp_path):
    import crashbuilds
    build = crashbuilds.newest()
    fx = vmcore("bookworm", "memcg-churn")
    out = tmp_path / "bundle"
    proc = bundle("-o", str(out), "--mpykdump", build.mpykdump)
    assert proc.returncode == 0, proc.stderr
    work = tmp_path / "cwd"  # crash's cwd: '.' is first on PyKdump's sys.path
    work.mkdir()
    (work / "where.py").write_text("import crashext, tabulate\nprint('FROM', crashext.__file__, tabulate.__file__, flush=True)\n")  # PyKdump drops unflushed output in batch mode
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TERM": "dumb",
           "PYKDUMPPATH": ":".join(linked_python_stdlib(build.mpykdump) + [str(out)])}
    script = f"epython {work}/where.py\nmemcgids\nq\n"
    run = subprocess.run([build.crash, "-s", "-i", str(out / "crashrc"), str(fx.vmlinux), str(fx.vmcore)],
                         input=script, capture_output=True, text=True, env=env, cwd=work, timeout=900)
    text = run.stdout + run.stderr
    assert "crashext: registered" in text, text[-3000:]
    assert f"FROM {out}/crashext/__init__.py {out}/tabulate" in text
    assert "Traceback" not in text
    rows = _parse_memcgids(text)
    truth = fx.truth()
    online = {r["path"]: int(r["ino"]) for r in truth["cgroup_tree.tsv"]}
    dying = {r["path"]: int(r["ino"]) for r in truth["removed_charged.tsv"]}
    assert {r["path"]: r["cgroup_id"] for r in rows if r["state"] == "online"} == online
    assert {r["path"]: r["cgroup_id"] for r in rows if r["state"] == "dying"} == dying
