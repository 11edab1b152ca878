"""The ``crashext`` command line: one subcommand per analysis."""

import argparse
import os
import sys
import traceback
from typing import List, Optional

from . import __version__
from .commands import (COMMAND_NAMES, Context, add_target_arguments, all_commands,
                       drgn_target_factory, load)
from .errors import CrashextError

__all__ = ["main", "build_parser"]


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser of every command, or of command ``only`` alone: a run of one
    command imports that command's module, not every analysis (a tenth of a
    second of start-up with all of them)."""
    parser = argparse.ArgumentParser(
        prog="crashext",
        description="Find out why a Linux kernel crashed, or is about to: memory cgroups, "
                    "buddy allocator fragmentation and the kernel log, from a vmcore, a live "
                    "kernel or saved text.")
    parser.add_argument("--version", action="version", version=f"crashext {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of tables")
    common.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in _one_command(only) or all_commands():
        p = sub.add_parser(mod.NAME, parents=[common], help=mod.SUMMARY,
                           description=mod.DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if mod.TARGET != "none":
            add_target_arguments(p)
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def _one_command(name: Optional[str]) -> List:
    """[the module of command ``name``] when ``name`` is a command whose module
    has that name and loads; else [] (the full parser is built)."""
    if name not in COMMAND_NAMES:
        return []
    try:
        mod = load(name)
    except ImportError:
        return []
    return [mod] if getattr(mod, "NAME", None) == name else []


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    trailing: Optional[List[str]] = None
    if argv and "--" in argv:
        mod_name = argv[0]
        cmd = next((m for m in all_commands() if m.NAME == mod_name), None)
        if cmd is not None and getattr(cmd, "TRAILING", None):
            cut = argv.index("--")
            argv, trailing = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    mod = args._module
    if trailing is not None:
        setattr(args, mod.TRAILING, trailing)
    try:
        ctx = Context(target_factory=drgn_target_factory(args))
        rc = mod.run(args, ctx)
        sys.stdout.flush()
        return rc or 0
    except CrashextError as exc:
        sys.stderr.write(f"crashext {mod.NAME}: {exc.one_line()}\n")
        return 2
    except BrokenPipeError:
        # `crashext memcgids | head`: the reader left; not an error
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("crashext: interrupted\n")
        return 130
    except Exception as exc:  # never a traceback for the user
        if getattr(args, "debug", False):
            traceback.print_exc()
        text = " ".join(str(exc).split()) or "no message"
        sys.stderr.write(f"crashext {mod.NAME}: internal error: {type(exc).__name__}: {text} "
                         "(rerun with --debug for the traceback, and please report it)\n")
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
