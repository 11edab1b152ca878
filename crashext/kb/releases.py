"""Kernel releases as the knowledge base compares them: upstream versions,
RHEL-style ``VER-REL.elN`` packages (rpm's version comparison), and whether
a release falls in an entry's affected ranges."""

import re
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

__all__ = ["Affected", "split_release", "compare_releases", "release_affected", "release_check"]


@dataclass
class Affected:
    """One ``[[affected]]`` range of a knowledge-base entry."""

    family: str                 # "rhel" | "upstream"
    dist: Optional[str] = None  # rhel: the dist tag, e.g. "el7"
    since: Optional[str] = None  # first affected release (inclusive)
    before: Optional[str] = None  # first fixed release (exclusive bound)
    note: str = ""
    # STATUSES: were since/before checked?  An unconfirmed bound never
    # excludes a release (release_check says so instead)
    status: str = "unconfirmed"


_ARCH = re.compile(r"\.(x86_64|aarch64|ppc64le|ppc64|s390x|i686|noarch)$")
_RHEL = re.compile(r"^(?P<ver>\d+(?:\.\d+)*)-(?P<rel>[0-9][0-9A-Za-z._~+]*?)$")


def split_release(release: str) -> Optional[Tuple[str, str, Optional[str]]]:
    """``(version, release, dist)`` of a kernel release string, or None.

    ``3.10.0-693.2.2.el7.x86_64`` -> ``("3.10.0", "693.2.2.el7", "el7")``;
    ``6.1.0-18-cloud-amd64`` -> ``("6.1.0", "18-cloud-amd64", None)``;
    ``5.10`` -> ``("5.10", "", None)``.  A leading ``kernel-`` is dropped.
    """
    s = release.strip()
    if s.startswith("kernel-"):
        s = s[len("kernel-"):]
    s = _ARCH.sub("", s)
    m = re.match(r"^(\d+(?:\.\d+)*)(?:-(\S+))?$", s)
    if not m:
        return None
    ver, rel = m.group(1), m.group(2) or ""
    dist = None
    d = re.search(r"\.(el\d+)(?:[._]|$)", rel)
    if d:
        dist = d.group(1)
    return ver, rel, dist


def _rpmvercmp(a: str, b: str) -> int:
    """rpm's segment comparison: digits numerically, letters by code point,
    a digit segment newer than a letter segment, more segments newer."""
    sa = re.findall(r"\d+|[A-Za-z]+", a)
    sb = re.findall(r"\d+|[A-Za-z]+", b)
    for x, y in zip(sa, sb):
        xd, yd = x.isdigit(), y.isdigit()
        if xd and yd:
            xi, yi = int(x), int(y)
            if xi != yi:
                return -1 if xi < yi else 1
        elif xd != yd:
            return 1 if xd else -1
        elif x != y:
            return -1 if x < y else 1
    if len(sa) != len(sb):
        return -1 if len(sa) < len(sb) else 1
    return 0


def compare_releases(a: str, b: str) -> int:
    """-1, 0 or 1 as kernel release ``a`` is older than, equal to or newer than ``b``.

    Version first (``3.10.0``), then the release part (``693.2.2.el7``)
    segment by segment as rpm compares them; a missing release part sorts
    first.  Raises ValueError for a string that is not a kernel release.
    """
    pa, pb = split_release(a), split_release(b)
    if pa is None or pb is None:
        raise ValueError(f"not a kernel release: {a if pa is None else b!r}")
    c = _rpmvercmp(pa[0], pb[0])
    if c:
        return c
    if not pa[1] or not pb[1]:
        return (pa[1] > "") - (pb[1] > "")
    return _rpmvercmp(pa[1], pb[1])


def release_affected(release: Optional[str], ranges: Sequence[Affected]) -> Tuple[str, str]:
    """Whether ``release`` falls in one of ``ranges``: (status, why); see
    :func:`release_check`, which also says when a match rests on a bound
    that was not confirmed."""
    status, why, _caveat = release_check(release, ranges)
    return status, why


def _outside(release: str, version: str, r: Affected) -> Optional[Tuple[str, str]]:
    """Which bound of range ``r`` puts ``release`` outside it ("since" or
    "before") and why, or None when it is inside."""
    lo, hi = r.since, r.before
    if r.family == "rhel":
        if lo and compare_releases(release, lo) < 0:
            return "since", f"older than {lo}"
        if hi and compare_releases(release, hi) >= 0:
            return "before", f"{hi} or newer (fixed)"
        return None
    # upstream: compare base versions only
    if lo and _rpmvercmp(version, split_release(lo)[0]) < 0:
        return "since", f"base version older than {lo}"
    if hi and _rpmvercmp(version, split_release(hi)[0]) >= 0:
        return "before", f"base version {hi} or newer (fixed upstream)"
    return None


def _caveat(release: str, r: Affected, bound: str) -> str:
    """What a match past an unconfirmed ``bound`` of ``r`` means to the engineer."""
    if bound == "before":
        return (f"{release} is {r.before} or newer, which is believed to contain the fix "
                f"(unconfirmed): check for a regression or a different cause")
    return (f"{release} is older than {r.since}, the first release believed to be affected "
            f"(unconfirmed): check whether this kernel has the bug at all")


def release_check(release: Optional[str], ranges: Sequence[Affected]
                  ) -> Tuple[str, str, Optional[str]]:
    """Whether ``release`` falls in one of ``ranges``: (status, why, caveat).

    status is ``"matched"`` (in a range), ``"unmatched"`` (in none) or
    ``"unknown"`` (no release known, or no ranges to check).  RHEL ranges
    apply only to releases with the same dist tag; upstream ranges compare
    the base version only, so a distribution kernel that backported the fix
    still "matches" (the why says so).

    A bound that was not confirmed (the range's ``status`` is
    ``"unconfirmed"``) never excludes a release: the release then matches,
    and ``caveat`` says that it is past a bound believed to hold (a release
    believed to contain the fix: check for a regression or a different
    cause).  Otherwise caveat is None.
    """
    if not ranges:
        return "unknown", "the entry names no affected kernels", None
    if not release:
        return "unknown", "kernel release not known", None
    parts = split_release(release)
    if parts is None:
        return "unknown", f"cannot read kernel release {release!r}", None
    version, _rel, dist = parts
    reasons = []
    caveat = None
    for r in ranges:
        if r.family == "rhel" and dist != r.dist:
            reasons.append(f"not a {r.dist} kernel")
            continue
        outside = _outside(release, version, r)
        if outside is not None:
            if r.status == "unconfirmed" and caveat is None:
                caveat = _caveat(release, r, outside[0])
            reasons.append(outside[1])
            continue
        span = ((f"from {r.since} " if r.since else "")
                + (f"before {r.before}" if r.before else "(no fixed release known)"))
        if r.family == "rhel":
            return "matched", f"{release} is in {r.dist} range {span}", None
        note = "; distribution kernels may carry the fix as a backport" if parts[1] else ""
        return "matched", f"base version {version} is in upstream range {span}{note}", None
    if caveat is not None:
        return "matched", caveat, caveat
    return "unmatched", f"{release}: " + "; ".join(reasons), None
