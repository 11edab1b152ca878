"""Shared pytest configuration.

Real-dump fixtures (tests/vmcore/, docs/fixtures.md): the session-scoped
factory ``vmcore(suite, scenario)`` builds a crash dump with
tests/vmcore/build-fixture, or reuses the one already built with the same
inputs, and returns a ``fixturelib.Fixture`` with ``.vmcore``, ``.vmlinux``,
``.truth_dir``, ``.serial_log``, ``.meta`` and ``.truth()`` (parsed ground
truth, see tests/vmcore/truth.py).

Tests that use it are marked ``@pytest.mark.vmcore``.  With
``CRASHEXT_NO_FIXTURES=1`` they are skipped; a failing build fails the test
(never a silent skip).  Dumps live in ``$CRASHEXT_FIXTURE_DIR/SUITE/SCENARIO``
(default ``~/.cache/crashext/fixtures``).
"""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

_VMCORE_DIR = Path(__file__).resolve().parent / "vmcore"


def _load(name):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, _VMCORE_DIR / (name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


truthmod = _load("truth")
fixturelib = _load("fixturelib")

def dying_removed(truth):
    """Paths of the cgroups a scenario removed while charged that the kernel
    still counts dying when the guest recorded its truth: all of them up to
    6.12 (and on v1), none on a kernel whose cgroup.stat says 0 (7.3 hands
    their pages to the parent and frees them; tests/test_fixtures_truth.py).
    Anything else is not a state these scenarios leave, and fails."""
    removed = [r["path"] for r in truth["removed_charged.tsv"]]
    if truth["cgroup_mode"] != "v2":
        return removed
    n = truth["cgroup_stat"]["/"]["nr_dying_descendants"]
    assert n in (0, len(removed)), (n, removed)
    return removed[:n]


NO_FIXTURES_REASON = ("CRASHEXT_NO_FIXTURES=1: real-dump fixtures "
                      "(tests/vmcore/build-fixture) disabled")


def fixtures_disabled():
    return os.environ.get("CRASHEXT_NO_FIXTURES", "") not in ("", "0")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "vmcore: needs a real dump built by tests/vmcore/build-fixture "
        "(skipped with CRASHEXT_NO_FIXTURES=1)")


def pytest_collection_modifyitems(config, items):
    if not fixtures_disabled():
        return
    skip = pytest.mark.skip(reason=NO_FIXTURES_REASON)
    for item in items:
        if "vmcore" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def vmcore():
    """Factory: vmcore(suite, scenario, **build_options) -> Fixture.

    suite: bookworm (6.1), trixie (6.12), trixie-backports (7.x) or
    bullseye (5.10);
    scenario: a name in tests/vmcore/scenarios/ (e.g. "memcg-churn");
    build_options: memory="1G", cpus=2, cmdline="..." (change the cache
    key, so they get their own directory)."""
    if fixtures_disabled():
        pytest.skip(NO_FIXTURES_REASON)
    built = {}

    def get(suite, scenario, **opts):
        key = (suite, scenario, tuple(sorted(opts.items())))
        if key not in built:
            out = fixturelib.default_fixture_dir(suite, scenario)
            if opts:
                out = out.with_name(out.name + "-" + "-".join(
                    "%s=%s" % kv for kv in sorted(opts.items()))
                    .replace("/", "_").replace(" ", "_"))
            try:
                built[key] = fixturelib.build_fixture(suite, scenario, out,
                                                      **opts)
            except (fixturelib.FixtureError, truthmod.TruthError) as e:
                pytest.fail("building fixture %s/%s failed: %s"
                            % (suite, scenario, e), pytrace=False)
        return built[key]

    return get


@pytest.fixture(params=["numpy", "plain"])
def page_decoder(request, monkeypatch):
    """Each decoder of memcgpins' page pass in turn: numpy's and plain
    Python's (crashext.kernel.pages without numpy)."""
    from crashext.kernel import pages
    if request.param == "plain":
        monkeypatch.setattr(pages, "_NP", [None])
    elif not pages.have_numpy():
        pytest.skip("numpy is not installed")
    return request.param
