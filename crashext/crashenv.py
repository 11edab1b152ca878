"""Where things are for a crash session with the crashext pack loaded.

Finds PyKdump's extension, the ``epython/`` scripts and the directories the
embedded Python needs on ``PYKDUMPPATH`` (PyKdump replaces ``sys.path`` with
its own plus that variable, so crashext and tabulate must be named there).
"""

import os
import re
import sys
from typing import Dict, List, Optional

from .errors import TargetError

__all__ = ["DEFAULT_PYKDUMP", "pykdump_path", "epython_dir", "pykdumppath_dirs",
           "crash_env", "init_lines", "crash_binary"]

#: Where the project's docs say to install PyKdump; CRASHEXT_PYKDUMP overrides.
DEFAULT_PYKDUMP = "/opt/pykdump/mpykdump.so"


def pykdump_path(explicit: Optional[str] = None) -> str:
    return explicit or os.environ.get("CRASHEXT_PYKDUMP") or DEFAULT_PYKDUMP


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


