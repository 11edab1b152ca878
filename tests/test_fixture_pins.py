"""Fixture kernels are pinned per suite (tests/vmcore/fixturelib.PINNED_KERNELS)."""
import fixturelib  # loaded by conftest


CANDS = [("6.1.200-1", "img-a", "dbg-a"), ("6.1.192-3", "img-b", "dbg-b"), ("6.1.176-1", "img-c", "dbg-c")]


def test_pinned_version_is_tried_first(monkeypatch):
    monkeypatch.setitem(fixturelib.PINNED_KERNELS, "bookworm", "6.1.192-3")
    assert [c[0] for c in fixturelib.pin_first("bookworm", CANDS)] == ["6.1.192-3", "6.1.200-1", "6.1.176-1"]


def test_gone_pin_falls_back_to_newest_with_one_line(monkeypatch, capsys):
    monkeypatch.setitem(fixturelib.PINNED_KERNELS, "bookworm", "6.1.100-1")
    assert fixturelib.pin_first("bookworm", CANDS) == CANDS
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln]
    assert len(err) == 1 and "6.1.100-1 is gone" in err[0] and "using 6.1.200-1" in err[0]


def test_every_ci_suite_is_pinned():
    assert {s for s, _ in fixturelib.TEST_SET} <= set(fixturelib.PINNED_KERNELS)


def test_build_all_builds_every_dump_the_tests_name():
    """build-all builds fixturelib.TEST_SET before pytest starts; a test that
    names a dump outside it would build that dump itself, in the middle of
    the run.  Every ("SUITE", "SCENARIO") pair written in a test file is in
    TEST_SET but the benchmarks' scale dump (its tests skip without it)."""
    import re
    from pathlib import Path
    here = Path(__file__).resolve().parent
    scenarios = {p.stem for p in (here / "vmcore" / "scenarios").glob("*.sh")}
    # (a pair after "!= (" is one a test leaves out)
    pair = re.compile(r'(?<!!= \()"(%s)",\s*"([a-z0-9-]+)"' % "|".join(
        re.escape(s) for s in fixturelib.PINNED_KERNELS))
    named = set()
    for f in here.glob("test_*.py"):
        named |= {m.groups() for m in pair.finditer(f.read_text())
                  if m.group(2) in scenarios}
    assert ("bookworm", "memcg-churn") in named and ("bullseye", "memcg-many") in named
    assert named - {("bookworm", "scale")} <= set(fixturelib.TEST_SET), \
        sorted(named - set(fixturelib.TEST_SET))


class _FakeApt:
    """apt-cache's answers for the packages of one kernel: ``{pkg: depends}``
    (every package at version ``ver``)."""

    suite = "fake"

    def __init__(self, ver, packages):
        self.ver, self.packages = ver, packages

    def versions(self, pkg):
        return [self.ver] if pkg in self.packages else []

    def depends(self, pkg, version):
        return self.packages[pkg]


def test_split_image_packages_of_7x_are_resolved():
    # trixie-backports 7.3.4-1~bpo13+1 as `apt-cache show` gave it: the
    # concrete image package is empty and depends on the binary, modules
    # and base packages; there is no ...-unsigned image package
    abi = "7.3.4+deb13-cloud-amd64"
    apt = _FakeApt("7.3.4-1~bpo13+1", {
        "linux-image-cloud-amd64": ["linux-base-cloud-amd64", "linux-image-" + abi,
                                    "linux-modules-cloud-amd64"],
        "linux-image-cloud-amd64-dbg": ["linux-base-cloud-amd64", "linux-image-%s-dbg" % abi],
        "linux-image-" + abi: ["dracut", "linux-base-" + abi, "linux-binary-" + abi,
                               "linux-modules-" + abi],
        "linux-image-%s-dbg" % abi: ["linux-base-" + abi],
        "linux-binary-" + abi: ["linux-base-" + abi],
        "linux-modules-" + abi: ["kmod", "linux-base-" + abi],
        "linux-base-" + abi: [],
    })
    assert fixturelib.kernel_candidates(apt) == [(
        "7.3.4-1~bpo13+1", "linux-binary-" + abi, "linux-image-%s-dbg" % abi,
        ["linux-base-" + abi, "linux-modules-" + abi])]


def test_unsigned_image_package_is_still_one_package():
    abi = "6.1.0-57-cloud-amd64"
    apt = _FakeApt("6.1.192-3", {
        "linux-image-cloud-amd64": ["linux-image-" + abi],
        "linux-image-cloud-amd64-dbg": ["linux-image-%s-dbg" % abi],
        "linux-image-" + abi: ["kmod"],
        "linux-image-%s-unsigned" % abi: ["kmod"],
        "linux-image-%s-dbg" % abi: [],
    })
    assert fixturelib.kernel_candidates(apt) == [
        ("6.1.192-3", "linux-image-%s-unsigned" % abi, "linux-image-%s-dbg" % abi)]


def test_backports_has_no_security_suite(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(fixturelib, "machine_mirrors",
                        lambda: ("http://mirror/debian", "http://mirror/debian-security"))
    lines = fixturelib.Apt("trixie-backports").sources.read_text().splitlines()
    assert [ln.split()[-2:] for ln in lines] == [["trixie-backports", "main"]]
    lines = fixturelib.Apt("trixie").sources.read_text().splitlines()
    assert [ln.split()[-2] for ln in lines] == ["trixie", "trixie-security"]
