"""The crash + PyKdump builds the pack tests run in (scripts/build-pykdump).

``need(version)`` returns the CrashBuild for that crash version.  When it is
missing the test skips, saying how to build it; with ``CI=true`` it fails
instead, since CI's machine runs scripts/setup, which builds them.
"""
import os
import sys
from typing import List

import pytest

from crashext.crashenv import CrashBuild, builds_dir, crash_builds

#: crash versions the pack is tested in (the ones scripts/setup builds), and
#: the fixture suites each opens: Debian bookworm's crash 8.0.2 opens 5.10
#: and 6.1 dumps (6.1 without ps's PID hash) and no 6.12 or 7.x one; crash
#: master after 9.0.2 (gdb 16.3) opens all four.
SUITES = {"8.0.2": ("bullseye", "bookworm"),
          "9.0.2+abcb45e": ("bullseye", "bookworm", "trixie", "trixie-backports")}

#: (version, suite) pairs for parametrize
PAIRS = [(v, s) for v, suites in SUITES.items() for s in suites]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(ok: bool, reason: str) -> None:
    """Skip with ``reason`` unless ok; in CI a missing part is a failure."""
    if ok:
        return
    if in_ci():
        pytest.fail("CI=true and a required part is missing: " + reason, pytrace=False)
    pytest.skip(reason)


def suite(vmcore, name: str, scenario: str):
    """The fixture ``vmcore(name, scenario)`` where the fixture builder
    knows the suite; skips otherwise, and fails under CI=true."""
    known = sys.modules["fixturelib"].SUITES
    require(name in known, f"the fixture builder has no suite {name} (it has {', '.join(known)})")
    return vmcore(name, scenario)


def available() -> List[CrashBuild]:
    return crash_builds()


def need(version: str) -> CrashBuild:
    builds = {b.version: b for b in crash_builds()}
    b = builds.get(version)
    require(b is not None and os.path.isfile(b.mpykdump) and os.path.isfile(b.crash),
            f"no crash {version} with PyKdump (built: {sorted(builds) or 'none'} in "
            f"{builds_dir()}; run scripts/build-pykdump or scripts/setup)")
    return b


def newest() -> CrashBuild:
    builds = crash_builds()
    require(bool(builds), f"no crash with PyKdump in {builds_dir()} "
                          "(run scripts/build-pykdump or scripts/setup)")
    return builds[0]
