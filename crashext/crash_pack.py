"""The crash front end: crashext commands inside a crash session (PyKdump).

``epython/crashext_init.py`` calls :func:`register_all` once after
``extend mpykdump.so``; from then on each command is a crash command whose
program is ``epython/<name>.py``, a two-line script calling
:func:`run_command`.  Options and help text come from the same command
modules as the standalone CLI; output goes to crash's stdout, so pipes and
redirection (``memcgids | grep dying``, ``frag > /tmp/f``) work.
"""

import argparse
import os
import sys
import traceback
from typing import Dict, List, Optional

from .commands import COMMAND_NAMES, Context, load
from .errors import CrashextError

__all__ = ["crash_commands", "register_all", "run_command", "help_text", "build_parser",
           "IMPORT_ERRORS"]

#: command name -> why its module could not be imported (filled by
#: crash_commands; epython/crashext_init.py prints each one)
IMPORT_ERRORS: Dict[str, str] = {}


class _Exit(Exception):
    """argparse wanted to exit (--help, bad option): inside crash we just return."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def exit(self, status: int = 0, message: Optional[str] = None) -> None:  # type: ignore[override]
        if message:
            sys.stdout.write(message)
        raise _Exit(status)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stdout.write(f"{self.prog}: {message}\n")
        raise _Exit(2)


def crash_commands() -> List[str]:
    """Names of the commands that make sense inside crash (those that read a kernel)."""
    out = []
    for name in COMMAND_NAMES:
        try:
            mod = load(name)
        except ImportError as exc:
            # e.g. a PyKdump whose Python lacks part of the stdlib, or no
            # tabulate on PYKDUMPPATH: say which module and why
            missing = getattr(exc, "name", None)
            IMPORT_ERRORS[name] = (f"cannot import {missing}: {exc}" if missing and missing not in str(exc)
                                   else str(exc))
            continue
        if getattr(mod, "IN_CRASH", mod.TARGET != "none"):
            if mod.NAME != name:
                raise ValueError(f"command module {name} must be named like its command")
            out.append(name)
    return out


def build_parser(name: str) -> argparse.ArgumentParser:
    mod = load(name)
    p = _Parser(prog=name, description=mod.DESCRIPTION,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    # not --debug: PyKdump's API takes "--debug N" out of every command's argv
    p.add_argument("--traceback", action="store_true", help="show tracebacks of internal errors")
    mod.add_arguments(p)
    # crash's own diagnostics (e.g. "compressed kdump: uncompress failed" on a
    # damaged page) go to the same stream as `> FILE`; --output writes the
    # file from Python, so it holds this command's output and nothing else
    if "--output" not in p._option_string_actions:   # report has its own -o/--output
        p.add_argument("--output", metavar="FILE", dest="pack_output",
                       help="write the output to FILE, and only it (crash's and crashext's "
                            "warnings stay on the screen); not written when the command fails")
    return p


def help_text(name: str) -> str:
    """The text crash's ``help NAME`` shows under DESCRIPTION: what the
    command does and its options (crash prints NAME and SYNOPSIS itself)."""
    text = build_parser(name).format_help()
    # argparse starts with its usage paragraph; crash's SYNOPSIS says that
    return text.split("\n\n", 1)[1] if text.startswith("usage:") and "\n\n" in text else text


def _synopsis(name: str) -> str:
    """The SYNOPSIS line without the name: crash prints ``NAME SYNOPSIS``."""
    usage = " ".join(build_parser(name).format_usage().split())
    prefix = f"usage: {name}"
    return usage[len(prefix):].strip() if usage.startswith(prefix) else usage


def register_all() -> List[str]:
    """Register every crashext command with crash (``register_epython_prog``)."""
    import crash  # provided by PyKdump inside crash
    done = []
    for name in crash_commands():
        mod = load(name)
        if crash.register_epython_prog(name, mod.SUMMARY, _synopsis(name), help_text(name)):
            done.append(name)
    return done


def _args_after_name(name: str, argv: List[str]) -> List[str]:
    """sys.argv as PyKdump passes it may carry a wrapper name and the script path first."""
    for i, a in enumerate(argv):
        base = os.path.basename(a)
        if base in (name, name + ".py"):
            return argv[i + 1:]
    return argv[1:]


class _OutputFile:
    """--output FILE: written beside FILE, renamed over it on success."""

    def __init__(self, path: str) -> None:
        from .errors import InputError
        self.path = path
        self.tmp = f"{path}.crashext-{os.getpid()}.tmp"
        try:
            self.file = open(self.tmp, "w", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"--output {path}: {exc.strerror}") from exc

    def commit(self, ok: bool) -> None:
        self.file.close()
        if ok:
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)


def run_command(name: str, argv: Optional[List[str]] = None) -> int:
    """Run command ``name`` inside crash; never raises, never exits crash."""
    out = sys.stdout
    args_list = _args_after_name(name, list(sys.argv if argv is None else argv))
    try:
        parser = build_parser(name)
        args = parser.parse_args(args_list)
    except _Exit as e:
        out.flush()
        return e.status
    except Exception as exc:  # a broken command definition: one line, never a traceback
        out.write(f"{name}: internal error: {type(exc).__name__}: {' '.join(str(exc).split())}\n")
        out.flush()
        return 3
    dest = None
    try:
        from .kernel.pykdump_backend import open_session
        if getattr(args, "pack_output", None):
            dest = _OutputFile(args.pack_output)
        ctx = Context(out=dest.file if dest else out, err=out, target_factory=open_session,
                      inside_crash=True)
        rc = load(name).run(args, ctx) or 0
        if dest:
            dest.commit(True)  # the command ran to its end (its status may say "found")
            dest = None
    except CrashextError as exc:
        out.write(f"{name}: {exc.one_line()}\n")
        rc = 2
    except BrokenPipeError:
        rc = 0
    except KeyboardInterrupt:
        out.write(f"{name}: interrupted\n")
        rc = 130
    except Exception as exc:  # never take the crash session down
        if getattr(args, "traceback", False):
            traceback.print_exc(file=out)
        text = " ".join(str(exc).split()) or "no message"
        out.write(f"{name}: internal error: {type(exc).__name__}: {text} "
                  "(rerun with --traceback for the traceback)\n")
        rc = 3
    if dest:
        dest.commit(False)
    try:
        out.flush()  # crash in batch mode loses unflushed Python output
    except (BrokenPipeError, OSError):
        pass
    return rc
