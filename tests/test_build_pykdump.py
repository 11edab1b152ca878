"""scripts/build-pykdump: pinned sources, one-line failures, the cache.

The builds themselves are made by scripts/setup; the pack tests
(test_crash_pack.py) run in them.  Here: what a user sees when a source is
not the pinned one, and that a second run reuses the build.
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import crashbuilds
from crashext.crashenv import version_key

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "build-pykdump"
#: the pinned sources, where scripts/build-pykdump takes them from
SHARED = Path(os.environ.get("CRASHEXT_SOURCES") or REPO.parent / "shared" / "third_party")


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
    pinned = script_module("crash_sources").PINNED  # the script's own table
    for name, digest in pinned.items():
        if name in listed:
            assert listed[name] == digest, name
    # every source archive listed is pinned, but Debian's crash 9.0.2 itself:
    # crash master after it (crash-abcb45e) is built, with the gdb 16.3 and
    # the patch of Debian's package
    unused = {"crash_9.0.2+~16.3.orig.tar.gz"}
    assert {n for n in listed if n.endswith((".tar.gz", ".tar.xz"))} - unused <= set(pinned)


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
        # a build whose recipe changed since would be built again here, for
        # a quarter of an hour: say so instead (CI's setup has just built it)
        check = run("--check", "--crash", version)
        crashbuilds.require(check.returncode == 0,
                            f"crash {version}'s build is not up to date: {check.stderr.strip()}")
        meta = Path(b.mpykdump).parent / "build.json"
        before = (meta.read_text(), os.stat(b.mpykdump).st_mtime_ns)
        p = run("--crash", version)
        assert p.returncode == 0, p.stderr
        assert f"crash {version} and its PyKdump are up to date" in p.stderr
        assert (meta.read_text(), os.stat(b.mpykdump).st_mtime_ns) == before
        assert json.loads(meta.read_text())["crash_version"] == version


def test_check_builds_nothing_and_says_what_it_would_build(tmp_path):
    """--check on an empty cache: exit 3, one line a version naming it, and
    nothing written (no log, no work tree, no build)."""
    builds = tmp_path / "builds"
    p = run("--check", env={"CRASHEXT_BUILDS": str(builds)})
    assert p.returncode == 3, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in p.stderr
    for line, version in zip(lines, ("8.0.2", "9.0.2+abcb45e")):
        assert line.startswith(f"build-pykdump: crash {version}: not built in {builds}"), line
    assert not builds.exists()


def test_debian_crash_8_0_2_is_paired_not_compiled():
    """Where /usr/bin/crash is Debian's package of crash 8.0.2 (bookworm),
    the 8.0.2 build is PyKdump alone: its crash is Debian's binary, and
    build.json names the package dpkg reports and that binary's checksum
    (an upgraded package changes the key, and the next run builds again)."""
    b = crashbuilds.need("8.0.2")
    system = Path("/usr/bin/crash")
    pkg = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "crash"], capture_output=True, text=True)
    said = subprocess.run([str(system), "--version"], capture_output=True, text=True) \
        if system.is_file() else None
    crashbuilds.require(pkg.returncode == 0 and said is not None
                        and re.search(r"^crash 8\.0\.2\s", said.stdout, re.M) is not None,
                        "/usr/bin/crash is not Debian's crash 8.0.2 (scripts/setup installs it)")
    d = Path(b.mpykdump).parent
    meta = json.loads((d / "build.json").read_text())
    assert (d / "crash").resolve() == system.resolve()
    assert meta["crash"] == f"Debian's /usr/bin/crash {pkg.stdout} (package crash, not built here)"
    assert meta["crash_sha256"] == hashlib.sha256(system.read_bytes()).hexdigest()
    assert meta["crash_tree"] == "configured and header-generated only, not compiled"


def script_module(name):
    """A module of scripts/ (build-pykdump's parts), imported."""
    import importlib
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(SCRIPT.parent))


def pykdump_patches():
    return script_module("pykdump_patches")


def unpacked(tmp_path, name, members=None):
    tarball = SHARED / name
    crashbuilds.require(tarball.is_file(), f"{tarball} is not here")
    with tarfile.open(tarball) as t:
        t.extractall(tmp_path, members=[m for m in t.getmembers()
                                        if members is None or m.name.lstrip("./") in members])
    return tmp_path


def test_pykdump_edits_fit_the_pinned_pykdump(tmp_path):
    """Each edit of scripts/pykdump_patches.py matches the pinned PyKdump as
    often as it says; on sources already edited they do not, and the
    build would stop with one line instead of patching twice."""
    pp = pykdump_patches()
    ext = unpacked(tmp_path, "pykdump-bc2526c.tar.gz") / "pykdump-bc2526c" / "Extension"
    edits = pp.PYTHON311 + pp.ONE_BUILD + pp.GDB16
    pp.apply_edits(ext, edits)
    with pytest.raises(pp.PatchError, match=r"^epython\.c: .*: 0 matches of"):
        pp.apply_edits(ext, edits)


def test_gdb16_port_uses_only_what_gdb_16_3_defines(tmp_path):
    """After the gdb 16 edits, every gdb accessor macro gdbspec10.C still
    uses (outside comments) is one gdb 16.3's gdbtypes.h defines or the
    file defines itself, and no gdb 10 free function the port replaced is
    left.  (The build compiles it against gdb 16.3: this names the macro.)"""
    pp = pykdump_patches()
    ext = unpacked(tmp_path, "pykdump-bc2526c.tar.gz") / "pykdump-bc2526c" / "Extension"
    pp.apply_edits(ext, pp.GDB16)
    header = "gdb-16.3/gdb/gdbtypes.h"
    gdb = unpacked(tmp_path / "gdb", "crash_9.0.2+~16.3.orig-gdb.tar.gz", {header}) / header
    defined = set(re.findall(r"^#define (TYPE_\w+)", gdb.read_text(), re.M))
    code = (ext / "gdbspec10.C").read_text()
    defined |= set(re.findall(r"^#define (TYPE_\w+)", code, re.M))
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", code, flags=re.S)
    used = set(re.findall(r"\b(TYPE_[A-Z_]+)\s*\(", code))
    assert used and used <= defined, sorted(used - defined)
    assert not re.search(r"(?<![>.])\b(evaluate_type|value_type)\s*\(|\bSTRUCT_DOMAIN\b|sym->type\b(?! \()", code)



def test_a_prebuilt_copy_is_installed_only_with_the_same_inputs(tmp_path):
    """--prebuilt DIR (how scripts/build-image hands this machine's build to
    the image's build stage): a build there with another key is not taken,
    and the build goes on from the sources (here an empty directory: it
    stops, nothing installed); with the key this build would have, it is
    installed as it is, file for file."""
    version = max(crashbuilds.SUITES, key=version_key)
    pre = tmp_path / "pre" / f"crash-{version}"
    pre.mkdir(parents=True)
    for f in ("crash", "mpykdump.so"):
        (pre / f).write_bytes(f"{f} of another machine\n".encode())
    (pre / "build.json").write_text(json.dumps({"crash_version": version, "key": "0" * 16}))
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run("--crash", version, "--prebuilt", str(pre.parent), "--sources", str(empty),
            env={"CRASHEXT_BUILDS": str(tmp_path / "other")})
    assert p.returncode == 1
    m = re.search(rf"crash {re.escape(version)}: the build in {re.escape(str(pre))} has other "
                  r"inputs \(key 0{16}, this build's ([0-9a-f]{16})\); building", p.stderr)
    assert m, p.stderr
    assert not (tmp_path / "other" / pre.name).exists()

    (pre / "build.json").write_text(json.dumps({"crash_version": version, "key": m.group(1)}))
    p = run("--crash", version, "--prebuilt", str(pre.parent), "--sources", str(empty),
            env={"CRASHEXT_BUILDS": str(tmp_path / "builds")})
    assert p.returncode == 0, p.stderr
    assert f"crash {version} and its PyKdump taken from {pre}" in p.stderr
    got = tmp_path / "builds" / pre.name
    assert sorted(os.listdir(got)) == ["build.json", "crash", "mpykdump.so"]
    for f in ("crash", "mpykdump.so", "build.json"):
        assert (got / f).read_bytes() == (pre / f).read_bytes()
