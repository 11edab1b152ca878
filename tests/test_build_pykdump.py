"""scripts/build-pykdump: pinned sources, one-line failures, the cache.

The builds themselves are made by scripts/setup; the pack tests
(test_crash_pack.py) run in them.  Here: what a user sees when a source is
not the pinned one, and that a second run reuses the build.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import crashbuilds

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "build-pykdump"
SHARED = REPO.parent / "shared" / "third_party"


def run(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=e, timeout=600)


def test_pins_equal_the_shared_checksums():
    """The checksums the script pins are the ones shared/third_party/SHA256SUMS lists."""
    sums = SHARED / "SHA256SUMS"
    crashbuilds.require(sums.is_file(), f"{sums} is not here")
    listed = dict(reversed(ln.split()) for ln in sums.read_text().splitlines() if ln.strip())
    ns = {}
    exec(compile(SCRIPT.read_text(), str(SCRIPT), "exec"), ns)  # the script's own PINNED table
    for name, digest in ns["PINNED"].items():
        if name in listed:
            assert listed[name] == digest, name
    assert {n for n in listed if n.endswith((".tar.gz", ".tar.xz"))} <= set(ns["PINNED"])


def test_a_source_that_is_not_the_pinned_one_is_refused_in_one_line(tmp_path):
    src = tmp_path / "sources"
    src.mkdir()
    (src / "crash-8.0.6.tar.gz").write_bytes(b"not crash\n")
    p = run("--crash", "8.0.6", "--sources", str(src),
            env={"CRASHEXT_BUILDS": str(tmp_path / "builds")})
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert "Traceback" not in p.stderr
    assert len(lines) == 1, p.stderr
    log = tmp_path / "builds" / "logs" / "crash-8.0.6.log"
    assert "not the pinned source" in lines[0] and f"log: {log}" in lines[0], lines[0]
    assert log.is_file()
    assert not (tmp_path / "builds" / "crash-8.0.6").exists()   # nothing installed


def test_second_run_reuses_the_build():
    """Unchanged sources and recipe: the installed build is kept as it is."""
    for version in crashbuilds.SUITES:
        b = crashbuilds.need(version)
        meta = Path(b.mpykdump).parent / "build.json"
        before = (meta.read_text(), os.stat(b.mpykdump).st_mtime_ns)
        p = run("--crash", version)
        assert p.returncode == 0, p.stderr
        assert f"crash {version} and its PyKdump are up to date" in p.stderr
        assert (meta.read_text(), os.stat(b.mpykdump).st_mtime_ns) == before
        assert json.loads(meta.read_text())["crash_version"] == version
