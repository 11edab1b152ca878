"""Python packaging: ``python -m build`` makes an sdist and a wheel (the wheel
built from the sdist, so a file missing from the sdist fails here) that
install into a fresh venv with only PyPI to fetch dependencies from, and the
installed command works: --version, frag on this machine's /proc, allocfail
on the RHEL7 idr-bug log, crash-init finding the epython scripts and the
knowledge base loading from the installed package.

The build runs on a copy of the repository's files (tracked or new, not
ignored), so stale build/ or *.egg-info directories cannot leak in.  pip's
configuration (local wheel directories, constraints) is switched off;
PIP_CERT and the like stay, so a proxy's CA still works.  Needs
``pip install build`` and network access to PyPI; about 30 s (docs/install.md).
"""

import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile

import pytest

import crashext

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = os.path.join(REPO, "tests", "data", "logs", "rhel7-3.10.0-693.2.2-idr-bug.dmesg")

try:
    import build  # noqa: F401
    HAVE_BUILD = True
except ImportError:
    HAVE_BUILD = False


def _pypi_only_env():
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("PIP_") and k not in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT"):
            del env[k]
    env["PIP_CONFIG_FILE"] = os.devnull  # no pip.conf: no local wheel dirs or constraints
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.pop("PYTHONPATH", None)
    return env


def _run(argv, **kw):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f"{argv}: rc {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _source_files():
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p and os.path.isfile(os.path.join(REPO, p))]


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    if not HAVE_BUILD:
        pytest.skip("the `build` package is not installed (pip install build)")
    src = tmp_path_factory.mktemp("src")
    for rel in _source_files():
        dst = src / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(open(os.path.join(REPO, rel), "rb").read())
        os.chmod(dst, os.stat(os.path.join(REPO, rel)).st_mode & 0o777)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(src)], env=_pypi_only_env())
    wheels = list(out.glob("*.whl"))
    sdists = list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, os.listdir(out)
    return wheels[0], sdists[0]


@pytest.fixture(scope="module")
def venv(dists, tmp_path_factory):
    wheel, _ = dists
    d = tmp_path_factory.mktemp("venv") / "v"
    _run([sys.executable, "-m", "venv", str(d)])
    _run([str(d / "bin" / "pip"), "install", str(wheel)], env=_pypi_only_env())
    return d


def _crashext(venv, *args, cwd=None):
    env = _pypi_only_env()
    return subprocess.run([str(venv / "bin" / "crashext"), *args], capture_output=True,
                          text=True, timeout=300, env=env, cwd=cwd)


def test_dist_names_carry_the_package_version(dists):
    wheel, sdist = dists
    assert wheel.name.startswith(f"crashext-{crashext.__version__}-")
    assert sdist.name == f"crashext-{crashext.__version__}.tar.gz"


def test_wheel_and_sdist_contents(dists):
    wheel, sdist = dists
    kb = sorted(f for f in os.listdir(os.path.join(REPO, "crashext", "kb")) if f.endswith(".toml"))
    scripts = sorted(f for f in os.listdir(os.path.join(REPO, "epython")) if f.endswith(".py"))
    assert kb and scripts
    names = zipfile.ZipFile(wheel).namelist()
    for f in kb:
        assert f"crashext/kb/{f}" in names
    data = f"crashext-{crashext.__version__}.data/data/share/crashext/epython/"
    assert sorted(n[len(data):] for n in names if n.startswith(data)) == scripts
    # every module of the package is in the wheel
    pkg = {os.path.relpath(os.path.join(d, f), REPO)
           for d, _, fs in os.walk(os.path.join(REPO, "crashext")) for f in fs if f.endswith(".py")}
    assert pkg <= set(names)
    top = f"crashext-{crashext.__version__}/"
    snames = {n[len(top):] for n in tarfile.open(sdist).getnames() if n.startswith(top)}
    assert {"setup.py", "pyproject.toml", "README.md"} <= snames
    assert {f"epython/{f}" for f in scripts} <= snames
    assert {f"crashext/kb/{f}" for f in kb} <= snames


def test_version(venv):
    proc = _crashext(venv, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"crashext {crashext.__version__}"


def test_frag_on_proc(venv, tmp_path):
    """Zones and node of this machine's /proc/buddyinfo, each once."""
    proc = _crashext(venv, "frag", "--proc", "/proc", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    with open("/proc/buddyinfo") as f:
        want = sorted(re.match(r"Node (\d+), zone\s+(\S+)", l).groups() for l in f if l.strip())
    text = json.dumps(data)
    for node, zone in want:
        assert f'"{zone}"' in text, (zone, text[:2000])


def test_allocfail_on_seed_log(venv, tmp_path):
    """The RHEL7 idr-bug host's log: docker-runc's order-6 failure (the line is in the log)."""
    with open(SEED, errors="replace") as f:
        assert "docker-runc: page allocation failure: order:6" in f.read()
    proc = _crashext(venv, "allocfail", "--json", SEED, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    fails = json.loads(proc.stdout)["failures"]
    assert any(f.get("comm") == "docker-runc" and f.get("order") == 6 for f in fails), fails[:1]
    plain = _crashext(venv, "allocfail", SEED, cwd=tmp_path)
    assert plain.returncode == 0 and "docker-runc" in plain.stdout


def test_crash_init_finds_installed_scripts(venv, tmp_path):
    proc = _crashext(venv, "crash-init", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    epy = str(venv / "share" / "crashext" / "epython")
    assert data["crashrc"][1] == f"epython {epy}/crashext_init.py"
    assert epy in data["pykdumppath"]
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import crashext, os; print(os.path.dirname(os.path.dirname(crashext.__file__)))"],
                          capture_output=True, text=True, cwd=tmp_path,
                          env=_pypi_only_env()).stdout.strip()
    assert site.startswith(str(venv)) and site in data["pykdumppath"]


def test_knowledge_base_ships(venv, tmp_path):
    code = "import crashext.kb as kb; print(','.join(sorted(e.id for e in kb.load_kb())))"
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True,
                          text=True, cwd=tmp_path, env=_pypi_only_env())
    assert proc.returncode == 0, proc.stderr
    ids = set()
    kb_dir = os.path.join(REPO, "crashext", "kb")
    for f in os.listdir(kb_dir):
        if f.endswith(".toml"):
            with open(os.path.join(kb_dir, f)) as fh:
                ids |= set(re.findall(r'^id = "([^"]+)"', fh.read(), re.M))
    assert ids and set(proc.stdout.strip().split(",")) == ids


def test_report_without_its_extra(dists, venv, tmp_path):
    """The wheel carries the report's template and crash script; installed without
    the [report] extra (no matplotlib, no Jinja2), `report` says in one line how to
    get them and the other commands work."""
    import zipfile
    wheel, _ = dists
    names = zipfile.ZipFile(str(wheel)).namelist()
    assert "crashext/report/templates/report.html.j2" in names
    assert any(n.endswith("share/crashext/epython/report.py") for n in names)
    out = tmp_path / "r.html"
    proc = _crashext(venv, "report", "--log", SEED, "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "pip install 'crashext[report]'" in proc.stderr and not out.exists()
    assert _crashext(venv, "triage", "--log", SEED, cwd=tmp_path).returncode == 0
