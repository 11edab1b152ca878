"""``bundle``: a self-contained directory of crashext for crash + PyKdump.

PyKdump's embedded Python replaces ``sys.path`` with its own plus
``PYKDUMPPATH`` and has no pip, so a crash host without crashext installed
gets one directory holding everything: the crashext package (with its
knowledge base), tabulate, tomli when the target Python is older than 3.11,
and the epython command scripts at the top, where PyKdump's program search
(each PYKDUMPPATH entry + ``NAME.py``) finds them.  Naming that directory in
PYKDUMPPATH, after the Python stdlib a libpython-linked PyKdump needs, is
all the set-up there is.
"""

import datetime
import json
import os
import re
import shutil
import sys
import tempfile
from typing import Any, Dict, List, Optional, Tuple

from .. import __version__
from ..crashenv import epython_dir, linked_python_stdlib, pykdump_path
from ..errors import InputError

NAME = "bundle"
SUMMARY = "write a self-contained crashext directory for crash + PyKdump (no pip)"
DESCRIPTION = """\
Write DIR with crashext, tabulate (and tomli for Python < 3.11) copied as
plain modules from where they are installed here, the epython command
scripts, a crashrc snippet, env.sh and a README.  Copy DIR to the crash host
(same path, or edit crashrc and env.sh) and:

    . DIR/env.sh            # PYKDUMPPATH = PyKdump's stdlib + DIR
    crash -i DIR/crashrc vmlinux vmcore

--python names the Python of the target PyKdump (default: the libpython
the PyKdump build links, else this interpreter's)."""
TARGET = "none"
IN_CRASH = False

#: What the bundle's manifest is called; --force only replaces a directory holding one.
MANIFEST = "crashext-bundle.json"
#: The oldest Python crashext runs on (setup.py python_requires, crash's embedded 3.8).
MIN_PYTHON = (3, 8)
#: tomllib entered the stdlib in Python 3.11 (PEP 680); older ones read TOML with tomli.
TOMLLIB_SINCE = (3, 11)

_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.egg-info")


def add_arguments(parser) -> None:
    parser.add_argument("-o", "--output", metavar="DIR", required=True,
                        help="directory to write (must not exist, or be an earlier bundle with --force)")
    parser.add_argument("--python", metavar="X.Y",
                        help="Python version of the target PyKdump (default: detected, see above)")
    parser.add_argument("--mpykdump", metavar="PATH",
                        help="PyKdump's extension on the crash host, for crashrc "
                             "(default: $CRASHEXT_PYKDUMP, else the one scripts/setup built for the crash on PATH)")
    parser.add_argument("--force", action="store_true", help="replace an earlier bundle in DIR")


def _parse_version(text: str) -> Tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text)
    if not m:
        raise InputError(f"--python {text!r}: give a version like 3.11")
    return int(m.group(1)), int(m.group(2))


def linked_python_version(mpykdump: str) -> Optional[Tuple[int, int]]:
    """The X.Y of the libpython a PyKdump build links (None: self-contained or unreadable)."""
    try:
        with open(mpykdump, "rb") as f:
            head = f.read(1 << 22)
    except OSError:
        return None
    m = re.search(rb"libpython(\d+)\.(\d+)\.so", head)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _module_source(name: str) -> str:
    """The file (single module) or directory (package) ``import name`` loads."""
    try:
        mod = __import__(name)
    except ImportError:
        raise InputError(f"{name} is not installed for {sys.executable}: pip install {name}")
    path = os.path.abspath(mod.__file__)
    return os.path.dirname(path) if os.path.basename(path) == "__init__.py" else path


def _dist_info(name: str) -> Dict[str, Optional[str]]:
    try:
        from importlib import metadata
        meta = metadata.metadata(name)
        return {"version": meta.get("Version"), "requires_python": meta.get("Requires-Python")}
    except Exception:  # not installed as a distribution (e.g. a bare checkout)
        return {"version": None, "requires_python": None}


def _requires_python_excludes(spec: Optional[str], ver: Tuple[int, int]) -> bool:
    """True when a plain '>=X.Y' Requires-Python leaves ``ver`` out (other forms: not judged)."""
    if not spec:
        return False
    for part in spec.split(","):
        m = re.fullmatch(r"\s*>=\s*(\d+)\.(\d+)(?:\.\d+)?\s*", part)
        if m and ver < (int(m.group(1)), int(m.group(2))):
            return True
    return False


def _copy(src: str, dst_dir: str) -> None:
    dst = os.path.join(dst_dir, os.path.basename(src))
    if os.path.isdir(src):
        shutil.copytree(src, dst, ignore=_SKIP)
    else:
        shutil.copy2(src, dst)


def _check_output(path: str, force: bool) -> None:
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path):
        raise InputError(f"{path} exists and is not a directory")
    if not os.listdir(path):
        return
    if not os.path.isfile(os.path.join(path, MANIFEST)):
        raise InputError(f"{path} exists and is not an earlier crashext bundle; give a new directory")
    if not force:
        raise InputError(f"{path} holds an earlier bundle; add --force to replace it")


def _readme(out: str, target: Tuple[int, int], modules: Dict[str, Dict], stdlib: List[str],
            mpy: str) -> str:
    ver = "%d.%d" % target
    mods = "\n".join(f"  {name:10s} {info['version'] or '?'}" for name, info in modules.items())
    std = ":".join(stdlib) if stdlib else "(none: this PyKdump carries its own stdlib)"
    return f"""crashext {__version__} bundle for crash + PyKdump (Python {ver})
Made {datetime.date.today().isoformat()} by `crashext bundle`; nothing here needs pip.

Contents
{mods}
  *.py       the crash commands (crashext_init.py registers them; one script per command)
  crashrc    the crash commands that load PyKdump and register crashext
  env.sh     sets PYKDUMPPATH

Use (paths are absolute: if you move this directory, edit crashrc and env.sh)
  . {out}/env.sh
  crash -i {out}/crashrc VMLINUX VMCORE
or add the two lines of crashrc to ~/.crashrc and set PYKDUMPPATH in your shell.
Then `help memcgids` inside crash.

Why PYKDUMPPATH: PyKdump replaces its Python's sys.path with '.', its own zip
and PYKDUMPPATH, so a PyKdump linked against the system's libpython needs that
Python's stdlib named there, then this directory.  Stdlib for {mpy}:
  {std}
Start crash from a directory that has no other crashext in it ('.' comes first).
"""


def run(args, ctx) -> int:
    mpy = pykdump_path(args.mpykdump)
    target, how = _target_python(args, mpy)
    names, sources, modules = _modules(target, ctx)
    scripts_dir = epython_dir()
    scripts = sorted(f for f in os.listdir(scripts_dir) if f.endswith(".py"))

    out = os.path.abspath(args.output)
    _check_output(out, args.force)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    # write next to DIR, then move into place: a failure leaves no half bundle
    tmp = tempfile.mkdtemp(prefix=".crashext-bundle-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; the bundle is for other users too
    try:
        manifest = _write_bundle(tmp, out, names, sources, modules, scripts_dir, scripts, mpy,
                                 target, how)
        if os.path.isdir(out):
            shutil.rmtree(out)  # empty, or an earlier bundle with --force (checked above)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if args.json:
        from .. import render
        render.write_json(ctx.out, dict(manifest, output=out))
        return 0
    ctx.out.write(f"crashext bundle in {out} (Python %d.%d, {how})\n" % target)
    for name in names:
        ctx.out.write(f"  {name:9s} {modules[name]['version'] or '?':8s} from {sources[name]}\n")
    ctx.out.write(f"  scripts   {', '.join(scripts)}\n\n"
                  f"use:  . {out}/env.sh && crash -i {out}/crashrc VMLINUX VMCORE\n")
    if not os.path.isfile(mpy):
        ctx.warn(f"{mpy} does not exist here: crashrc names it; pass --mpykdump with its path on the crash host")
    return 0


def _target_python(args, mpy: str) -> Tuple[Tuple[int, int], str]:
    """The Python the bundle is for, and how that was decided."""
    if args.python:
        target = _parse_version(args.python)
        how = "--python"
    else:
        linked = linked_python_version(mpy)
        target = linked or sys.version_info[:2]
        how = f"linked by {mpy}" if linked else f"this Python ({sys.executable})"
    if target < MIN_PYTHON:
        raise InputError("crashext needs Python %d.%d or later; the target is %d.%d" % (MIN_PYTHON + target))
    return target, how


def _modules(target: Tuple[int, int], ctx) -> Tuple[List[str], Dict[str, str], Dict[str, Dict]]:
    """The modules the bundle copies, where each is copied from, and their
    distribution facts (a version that excludes the target Python is warned of)."""
    names = ["crashext", "tabulate"]
    if target < TOMLLIB_SINCE:
        try:
            __import__("tomli")
        except ImportError:
            raise InputError("Python %d.%d has no tomllib: crashext's knowledge base needs tomli there; "
                             "pip install tomli here and rerun" % target)
        names.append("tomli")
    sources = {name: _module_source(name) for name in names}
    modules = {name: _dist_info(name) for name in names}
    modules["crashext"]["version"] = __version__
    for name, info in modules.items():
        if _requires_python_excludes(info["requires_python"], target):
            ctx.warn(f"{name} {info['version']} requires Python {info['requires_python']}, "
                     "the target is %d.%d: install an older %s here and rerun" % (target + (name,)))
    return names, sources, modules


def _write_bundle(tmp: str, out: str, names: List[str], sources: Dict[str, str],
                  modules: Dict[str, Dict], scripts_dir: str, scripts: List[str], mpy: str,
                  target: Tuple[int, int], how: str) -> Dict[str, Any]:
    """The bundle's files in ``tmp`` (to become ``out``); its manifest."""
    for name in names:
        _copy(sources[name], tmp)
    for f in scripts:
        shutil.copy2(os.path.join(scripts_dir, f), os.path.join(tmp, f))
    stdlib = linked_python_stdlib(mpy)
    crashrc = [f"extend {mpy}", f"epython {os.path.join(out, 'crashext_init.py')}"]
    with open(os.path.join(tmp, "crashrc"), "w") as f:
        f.write("\n".join(crashrc) + "\n")
    with open(os.path.join(tmp, "env.sh"), "w") as f:
        f.write("# . this file in the shell that starts crash\n"
                "export PYKDUMPPATH=" + ":".join(stdlib + [out]) + "${PYKDUMPPATH:+:$PYKDUMPPATH}\n")
    with open(os.path.join(tmp, "README.txt"), "w") as f:
        f.write(_readme(out, target, modules, stdlib, mpy))
    manifest = {
        "crashext_version": __version__,
        "python": "%d.%d" % target,
        "python_from": how,
        "modules": {name: dict(modules[name], copied_from=sources[name]) for name in names},
        "scripts": scripts,
        "mpykdump": mpy,
        "pykdumppath": stdlib + [out],
        "crashrc": crashrc,
    }
    with open(os.path.join(tmp, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    return manifest
