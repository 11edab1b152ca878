"""The drgn front end: crashext's kernel-reading commands inside drgn.

drgn loads this module as the ``crashext`` plugin: the entry point
``crashext = crashext.drgn_plugin`` in the group ``drgn.plugins`` (installed
with crashext), or by hand ``DRGN_PLUGINS=crashext=crashext.drgn_plugin``.
Importing it registers ``memcgids``, ``frag``, ``allocfail`` and ``triage``
(the commands the crash pack registers, :func:`crashext.crash_pack.crash_commands`)
as drgn commands: ``%memcgids`` in drgn's shell, ``run_command(prog,
"memcgids --json")`` in a script or ``drgn -e``.  Each is also reachable as
``crashext NAME``, and, once drgn's crash-compatible namespace is loaded, as
``%crash NAME`` with its text under ``%crash help NAME``.

The command modules stay the one definition: options, help text and output
are the CLI's, without the target flags (``-c``, ``-s``, ``-k``, ``--qemu``),
because the kernel is the session's ``prog``.  Errors follow drgn's
conventions: a bad option is drgn's usage error, a crashext error one line
(:class:`drgn.commands.CommandError`), never a traceback unless ``--debug``.

A name someone else registered first (drgn itself or another plugin) is
never replaced; if drgn registers one of these names after us, drgn's wins
and ours stays reachable as ``crashext NAME``.

The command framework as used here (``%`` commands in drgn's shell,
``parse_shell_command``, the ``parse`` step of a command) came with drgn 0.1.0
(its release highlights; 0.0.33 has an earlier, unexposed form); with an
older drgn, or none, the plugin registers nothing and says so in one debug
line (``drgn --log-level debug``).
"""

import argparse
import logging
import sys
import textwrap
import traceback
from typing import Any, List, Optional, Sequence

from .commands import Context, load
from .crash_pack import crash_commands
from .errors import CrashextError, TargetError

__all__ = ["PREFIX", "REGISTERED", "CrashextCommand", "PrefixCommand", "register",
           "session_target", "drgn_prog_set"]

logger = logging.getLogger("drgn.plugins.crashext")

#: the command that reaches every crashext command: ``crashext memcgids --json``
PREFIX = "crashext"

#: "drgn:NAME" (default namespace) or "crash:NAME" for every command registered, in order
REGISTERED: List[str] = []

try:
    from drgn import ProgramFlags
    from drgn.commands import (DEFAULT_COMMAND_NAMESPACE, CommandArgumentError, CommandError,
                               parse_shell_command)
    _MISSING: Optional[str] = None
except ImportError as _exc:  # no drgn, or one older than its command framework (0.1.0)
    try:
        import drgn as _drgn
        _MISSING = (f"drgn {getattr(_drgn, '__version__', '?')} has no command framework "
                    f"(drgn.commands, drgn >= 0.1.0): {_exc}")
    except ImportError:
        _MISSING = f"drgn is not installed: {_exc}"
    CommandArgumentError = CommandError = Exception  # type: ignore[misc,assignment]


class _HelpShown(Exception):
    """``-h``/``--help`` printed the help: nothing more to run."""


class _HelpAction(argparse.Action):
    # argparse's own help action ends in parser.exit(), which drgn's shell
    # would print as an empty error line: print and stop instead
    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help=None):  # noqa: A002 - argparse's parameter name
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0,
                         help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write(parser.format_help())
        raise _HelpShown()


class _Parser(argparse.ArgumentParser):
    """argparse whose exits raise drgn's CommandArgumentError, as drgn's own
    command parsers do: drgn prints the usage and the one-line error."""

    def exit(self, status: int = 0, message: Optional[str] = None):  # type: ignore[override]
        raise CommandArgumentError((message or "").rstrip("\n"))


def build_parser(name: str, prog: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser of command ``name`` in drgn: the CLI's options without the target flags."""
    mod = load(name)
    p = _Parser(prog=prog or name, description=mod.DESCRIPTION, add_help=False,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-h", "--help", action=_HelpAction, help="show this help message")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    mod.add_arguments(p)
    return p


def _usage_line(parser: argparse.ArgumentParser) -> str:
    usage = " ".join(parser.format_usage().split())
    return usage[len("usage: "):] if usage.startswith("usage: ") else usage


def _help_body(parser: argparse.ArgumentParser, indent: str) -> str:
    """The help without its usage paragraph (drgn's help prints the usage itself)."""
    usage, text = parser.format_usage(), parser.format_help()
    if text.startswith(usage):
        text = text[len(usage):].lstrip("\n")
    return textwrap.indent(text, indent).rstrip()


def _is_kernel(prog: Any) -> bool:
    return bool(prog.flags & ProgramFlags.IS_LINUX_KERNEL)


def session_target(prog: Any) -> Any:
    """The drgn session's program as a crashext Target."""
    from .kernel import dumpfile
    from .kernel.drgn_backend import DrgnTarget
    if not _is_kernel(prog):
        raise TargetError("this drgn session is not debugging a Linux kernel")
    try:
        main = prog.main_module()
    except LookupError:
        main = None
    if main is None or main.debug_file_path is None:
        raise TargetError("this drgn session has no debug info for the kernel: start drgn with "
                          "-s VMLINUX, the debug vmlinux of this kernel")
    live = bool(prog.flags & ProgramFlags.IS_LIVE)
    warnings: List[str] = []
    if not live:
        path = prog.core_dump_path
        source = f"vmcore {path}"  # as the CLI names it: the path as given
        try:  # what the CLI checks before opening: a truncated or incomplete dump
            warnings = dumpfile.read_dump_info(path).warnings
        except CrashextError:
            pass  # drgn opened it; its own reads will say what is missing
    elif prog.flags & ProgramFlags.IS_LOCAL:
        source = "live kernel"
    else:
        source = "QEMU guest"  # drgn --qemu: the socket path is not kept by drgn
    return DrgnTarget(prog, source, live=live, warnings=warnings)


def run(prog: Any, name: str, argv: Sequence[str], invoked_as: Optional[str] = None) -> None:
    """Run crashext command ``name`` with ``argv`` on drgn's ``prog``.

    Output goes to the current ``sys.stdout`` (drgn has set up redirection
    and pipes by now); errors are raised as drgn's command errors."""
    shown = invoked_as or name
    parser = build_parser(name, shown)
    try:
        args = parser.parse_args(list(argv))
    except _HelpShown:
        return None
    # the session's kernel is implicit, as inside crash: --sys reads cgroupfs
    # next to it rather than being refused as a second target
    ctx = Context(out=sys.stdout, err=sys.stderr, target_factory=lambda: session_target(prog),
                  inside_crash=True)
    try:
        load(name).run(args, ctx)
    except CrashextError as exc:
        raise CommandError(f"{shown}: {exc.one_line()}") from None
    except (BrokenPipeError, KeyboardInterrupt):
        raise  # drgn handles both: a closed pipe is not an error, ^C returns to the prompt
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        text = " ".join(str(exc).split()) or "no message"
        raise CommandError(f"{shown}: internal error: {type(exc).__name__}: {text} "
                           "(rerun with --debug for the traceback, and please report it)") from None
    finally:
        try:
            sys.stdout.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass
    return None


class CrashextCommand:
    """One crashext command as a drgn command (the ``drgn.commands.Command`` protocol)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def description(self) -> str:
        return load(self.name).SUMMARY

    def format_usage(self) -> str:
        return _usage_line(build_parser(self.name))

    def format_help(self, *, indent: str = "") -> str:
        return _help_body(build_parser(self.name), indent)

    def enabled(self, prog: Any) -> bool:
        return _is_kernel(prog)

    def parse(self, source: str):
        return parse_shell_command(source)

    def run(self, prog: Any, name: str, args: Sequence[str], **kwargs: Any) -> None:
        return run(prog, self.name, args, invoked_as=name)


class PrefixCommand:
    """``crashext NAME [OPTIONS]``: every crashext command under one name."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)

    def description(self) -> str:
        return "run a crashext command: " + ", ".join(self.names)

    def format_usage(self) -> str:
        return f"{PREFIX} {{{','.join(self.names)}}} [OPTIONS]"

    def format_help(self, *, indent: str = "") -> str:
        width = max(len(n) for n in self.names)
        lines = ["Run crashext's command NAME on this kernel, with the options of the",
                 f"`crashext NAME` command line (`{PREFIX} NAME --help` shows them).", "",
                 "commands:"]
        lines += [f"  {n.ljust(width)}  {load(n).SUMMARY}" for n in self.names]
        return textwrap.indent("\n".join(lines), indent)

    def enabled(self, prog: Any) -> bool:
        return _is_kernel(prog)

    def parse(self, source: str):
        return parse_shell_command(source)

    def run(self, prog: Any, name: str, args: Sequence[str], **kwargs: Any) -> None:
        if not args or args[0] in ("-h", "--help"):
            sys.stdout.write(f"usage: {self.format_usage()}\n\n{self.format_help()}\n")
            return None
        if args[0] not in self.names:
            raise CommandArgumentError(f"{name}: unknown command {args[0]!r} "
                                       f"(choose from {', '.join(self.names)})")
        return run(prog, args[0], args[1:], invoked_as=f"{name} {args[0]}")


def _taken(namespace: Any, name: str) -> bool:
    # CommandNamespace has no public "is this name registered" that does not
    # need a program (lookup() also asks the command whether it is enabled)
    commands = getattr(namespace, "_commands", None)
    return isinstance(commands, dict) and name in commands and \
        not isinstance(commands[name], (CrashextCommand, PrefixCommand))


def _register_in(namespace: Any, where: str, names: Sequence[str],
                 with_prefix: bool = False) -> List[str]:
    done = []
    for name in list(names) + ([PREFIX] if with_prefix else []):
        key = f"{where}:{name}"
        if key in REGISTERED:
            continue
        if _taken(namespace, name):
            logger.debug("crashext: %s already has a command %r; ours is `%s %s`",
                         where, name, PREFIX, name)
            continue
        namespace.register(name, PrefixCommand(names) if name == PREFIX and with_prefix
                           else CrashextCommand(name))
        REGISTERED.append(key)
        done.append(name)
    return done


def register() -> List[str]:
    """Register the commands in drgn's default namespace; the names registered.

    Called when drgn imports this plugin; idempotent."""
    if _MISSING is not None:
        return []
    names = crash_commands()
    return _register_in(DEFAULT_COMMAND_NAMESPACE, "drgn", names, with_prefix=True)


def _crash_namespace() -> Any:
    """drgn's crash-compatible namespace if drgn's crash commands are loaded.

    Only looked up among modules already imported: importing it here would
    load the commands a user disabled (DRGN_DISABLE_PLUGINS=crash_commands).
    Its home has moved (drgn.commands.crash in 0.0.33,
    drgn.commands._crash.common in 0.1.0 to 0.3.0), so every loaded
    drgn.commands module is asked for it."""
    for mod_name, mod in sorted(sys.modules.items()):
        if mod_name.startswith("drgn.commands."):
            ns = getattr(mod, "CRASH_COMMAND_NAMESPACE", None)
            if ns is not None:
                return ns
    return None


def drgn_prog_set(prog: Any) -> None:
    """drgn's plugin hook, called once the program is set (every plugin is
    loaded by then): add the commands to the crash-compatible namespace."""
    if _MISSING is not None:
        return
    ns = _crash_namespace()
    if ns is not None:
        _register_in(ns, "crash", crash_commands())


if _MISSING is not None:
    logger.debug("crashext: drgn commands not registered: %s", _MISSING)
else:
    register()
