"""Where things are for a crash session with the crashext pack loaded.

Finds PyKdump's extension, the ``epython/`` scripts and the directories the
embedded Python needs on ``PYKDUMPPATH`` (PyKdump replaces ``sys.path`` with
its own plus that variable, so crashext and tabulate must be named there).
"""

import json
import os
import re
import subprocess
import sys
from typing import Dict, List, NamedTuple, Optional

from .errors import TargetError

__all__ = ["LEGACY_PYKDUMP", "CrashBuild", "builds_dir", "crash_builds", "crash_version", "version_key",
           "pykdump_path", "epython_dir", "pykdumppath_dirs", "crash_env", "init_lines",
           "crash_binary"]

#: Where earlier docs said to install a hand-built PyKdump (for the crash on
#: PATH); still used when it exists and nothing was built by scripts/setup.
LEGACY_PYKDUMP = "/opt/pykdump/mpykdump.so"


class CrashBuild(NamedTuple):
    """A crash binary and the PyKdump built for its version."""
    version: str        #: crash's version, e.g. "8.0.2" or "9.0.2+abcb45e"
    crash: str          #: the crash binary
    mpykdump: str       #: PyKdump's extension built against that crash
    origin: str         #: "built" (scripts/build-pykdump), "system" (crash on PATH), "env"


def builds_dir() -> str:
    """Where scripts/build-pykdump installs crash-VERSION/{crash,mpykdump.so}
    (``$CRASHEXT_BUILDS`` overrides: the container image keeps them in /opt/pykdump)."""
    if os.environ.get("CRASHEXT_BUILDS"):
        return os.environ["CRASHEXT_BUILDS"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "crashext", "pykdump")


_VERSIONS: Dict[str, Optional[str]] = {}


def crash_version(binary: str) -> Optional[str]:
    """crash's own version (``crash --version``), or None if it does not run."""
    if binary not in _VERSIONS:
        try:
            out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        m = re.search(r"^crash (\d+\.\d+\.\d+\S*)", out, re.M)
        _VERSIONS[binary] = m.group(1) if m else None
    return _VERSIONS[binary]


def version_key(version: str):
    """crash's version as a sortable tuple: "8.0.6" -> (8, 0, 6, 0).

    A build after a release, named "9.0.2+abcb45e" by scripts/build-pykdump
    (crash itself says "9.0.2++"), sorts after that release and before the
    next one: (9, 0, 2, 1).
    """
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?(.*)", version)
    if not m:
        return (0, 0, 0, 0)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0),
            1 if m.group(4).startswith("+") else 0)


def _system_crash() -> Optional[str]:
    try:
        return crash_binary()
    except TargetError:
        return None


def crash_builds(crash: Optional[str] = None, mpykdump: Optional[str] = None) -> List[CrashBuild]:
    """The crash + PyKdump pairs that can run the pack, newest crash first.

    An explicit PyKdump (``mpykdump`` or ``$CRASHEXT_PYKDUMP``) pairs with
    ``crash`` or the crash on PATH, and is the only pair.  Otherwise the
    builds of scripts/build-pykdump: each version's PyKdump with the crash on
    PATH when that is the same version (Debian's 8.0.2 on bookworm), else
    with the crash built beside it.  ``crash`` given alone keeps the pair of
    its version.  Last, a PyKdump at LEGACY_PYKDUMP with the crash on PATH.
    """
    explicit = mpykdump or os.environ.get("CRASHEXT_PYKDUMP")
    system = _system_crash()
    if explicit:
        binary = crash or system
        if binary is None:
            return []
        return [CrashBuild(crash_version(binary) or "unknown", binary, explicit, "env")]
    out: List[CrashBuild] = []
    root = builds_dir()
    try:
        names = os.listdir(root)
    except OSError:
        names = []
    sys_ver = crash_version(system) if system else None
    for name in names:
        d = os.path.join(root, name)
        try:
            with open(os.path.join(d, "build.json")) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            continue
        ver = meta.get("crash_version")
        so = os.path.join(d, "mpykdump.so")
        if not ver or not os.path.isfile(so):
            continue
        if crash:
            if crash_version(crash) == ver:
                out.append(CrashBuild(ver, crash, so, "built"))
            continue
        if system and sys_ver == ver:
            out.append(CrashBuild(ver, system, so, "system"))
        elif os.path.isfile(os.path.join(d, "crash")):
            out.append(CrashBuild(ver, os.path.join(d, "crash"), so, "built"))
    out.sort(key=lambda b: version_key(b.version), reverse=True)
    if not out and os.path.isfile(LEGACY_PYKDUMP):
        binary = crash or system
        if binary:
            out.append(CrashBuild(crash_version(binary) or "unknown", binary, LEGACY_PYKDUMP, "system"))
    return out


def pykdump_path(explicit: Optional[str] = None) -> str:
    """The PyKdump to name for the crash on PATH (crash-init, bundle).

    ``explicit`` or ``$CRASHEXT_PYKDUMP`` first; then the build for the
    crash on PATH's version; then the newest build; else LEGACY_PYKDUMP
    (which may not exist: callers say so).
    """
    if explicit or os.environ.get("CRASHEXT_PYKDUMP"):
        return explicit or os.environ["CRASHEXT_PYKDUMP"]
    builds = crash_builds()
    system = _system_crash()
    for b in builds:
        if b.crash == system:
            return b.mpykdump
    return builds[0].mpykdump if builds else LEGACY_PYKDUMP


def epython_dir() -> str:
    """The directory of the scripts crash runs (repo checkout or installed copy)."""
    pkg = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        os.path.join(os.path.dirname(pkg), "epython"),                 # source checkout
        os.path.join(sys.prefix, "share", "crashext", "epython"),      # pip install
        os.path.join(pkg, "epython"),                                  # bundle
    ]
    for c in candidates:
        if os.path.isfile(os.path.join(c, "crashext_init.py")):
            return c
    raise TargetError("cannot find crashext's epython/ scripts; reinstall crashext or use `crashext bundle`")


def _module_parent(name: str) -> Optional[str]:
    try:
        mod = __import__(name)
    except ImportError:
        return None
    path = os.path.abspath(mod.__file__)
    if os.path.basename(path) == "__init__.py":
        path = os.path.dirname(path)
    return os.path.dirname(path)


def linked_python_stdlib(mpykdump: str) -> List[str]:
    """The stdlib directories of the libpython a PyKdump build links against.

    A self-contained mpykdump.so carries its stdlib in its zip and links no
    libpython; one built against the system's libpython3.X needs that
    Python's ``/usr/lib/python3.X`` and ``lib-dynload`` on PYKDUMPPATH,
    because PyKdump replaces ``sys.path``.
    """
    try:
        with open(mpykdump, "rb") as f:
            head = f.read(1 << 22)
    except OSError:
        return []
    m = re.search(rb"libpython(3\.\d+)\.so", head)
    if not m:
        return []
    ver = m.group(1).decode()
    out = []
    for base in (f"/usr/lib/python{ver}", f"/usr/local/lib/python{ver}"):
        if os.path.isdir(base):
            out += [base] + [d for d in [os.path.join(base, "lib-dynload")] if os.path.isdir(d)]
            break
    return out


def pykdumppath_dirs(extra: Optional[List[str]] = None, mpykdump: Optional[str] = None) -> List[str]:
    """Directories for PYKDUMPPATH: the linked Python's stdlib (if any),
    the scripts, crashext, tabulate, then extras (and CRASHEXT_PYKDUMP_STDLIB)."""
    dirs = linked_python_stdlib(pykdump_path(mpykdump))
    dirs += [epython_dir(), _module_parent("crashext"), _module_parent("tabulate")]
    stdlib = os.environ.get("CRASHEXT_PYKDUMP_STDLIB", "")
    dirs += [d for d in stdlib.split(":") if d]
    dirs += extra or []
    out: List[str] = []
    for d in dirs:
        if d and d not in out:
            out.append(d)
    return out


def crash_env(extra: Optional[List[str]] = None, mpykdump: Optional[str] = None) -> Dict[str, str]:
    env = dict(os.environ)
    old = env.get("PYKDUMPPATH")
    dirs = pykdumppath_dirs(extra, mpykdump)
    env["PYKDUMPPATH"] = ":".join(dirs + ([old] if old else []))
    return env


def init_lines(mpykdump: str) -> List[str]:
    """The crash commands that load the pack (for ~/.crashrc or ``-i``)."""
    return [f"extend {mpykdump}",
            f"epython {os.path.join(epython_dir(), 'crashext_init.py')}"]


def crash_binary() -> str:
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) + ["/usr/bin"]:
        p = os.path.join(d, "crash")
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise TargetError("the crash utility is not installed (Debian/Ubuntu: apt-get install crash)")


