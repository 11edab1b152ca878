"""The crashext commands, registered in one place.

Each command is a module here with:

- ``NAME``, ``SUMMARY`` (one line), ``DESCRIPTION`` (help text);
- ``TARGET``: ``"required"`` (needs a kernel), ``"optional"`` (works on text
  too) or ``"none"``;
- ``add_arguments(parser)`` for its own options;
- ``run(args, ctx) -> int`` that calls the analysis and renders its result.

The standalone CLI (:mod:`crashext.cli`) and the crash extension pack
(``epython/``) both build their parsers from these modules, so options and
help text are the same in both homes.
"""

import argparse
import importlib
import sys
from types import ModuleType
from typing import Callable, List, Optional, TextIO

from ..errors import TargetError
from ..kernel.target import Target

__all__ = ["COMMAND_NAMES", "load", "all_commands", "Context", "add_target_arguments"]

#: Every command module, in the order ``crashext --help`` lists them.
COMMAND_NAMES = ["info", "memcgids", "memcgpins", "frag", "allocfail", "triage", "report",
                 "crash_session", "crash_init", "bundle", "exporter"]


def load(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{name}")


def all_commands() -> List[ModuleType]:
    out = []
    for name in COMMAND_NAMES:
        try:
            out.append(load(name))
        except ImportError:  # a command still being written is left out
            continue
    return out


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """drgn-style target flags, shared by every command that reads a kernel."""
    g = parser.add_argument_group("target (standalone only; inside crash the session's dump is used)")
    g.add_argument("-c", "--core", metavar="VMCORE", help="read this vmcore")
    g.add_argument("-s", "--symbols", metavar="VMLINUX",
                   help="the debug vmlinux of the dump's (or live) kernel")
    g.add_argument("-k", "--kernel", action="store_true",
                   help="read the running kernel (root, /proc/kcore, debug info)")
    g.add_argument("--qemu", metavar="QMP_SOCKET",
                   help="read a running QEMU guest through its QMP socket (with -s)")


class Context:
    """What a command's ``run`` gets besides its arguments.

    ``target()`` opens the kernel lazily, so a command that also works on
    text (``--proc``, a log file) opens nothing when it does not need to.
    """

    def __init__(self, out: Optional[TextIO] = None, err: Optional[TextIO] = None,
                 target_factory: Optional[Callable[[], Target]] = None,
                 inside_crash: bool = False) -> None:
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self._factory = target_factory
        self._target: Optional[Target] = None
        self.inside_crash = inside_crash

    @property
    def has_target(self) -> bool:
        return self._factory is not None

    def target(self) -> Target:
        if self._target is None:
            if self._factory is None:
                raise TargetError("no kernel to read: give -c VMCORE -s VMLINUX, -k, or --qemu SOCKET")
            self._target = self._factory()
            for w in getattr(self._target, "warnings", []):
                self.warn(w)
        return self._target

    def warn(self, message: str) -> None:
        self.err.write(f"crashext: warning: {message}\n")
        self.err.flush()


def drgn_target_factory(args: argparse.Namespace) -> Optional[Callable[[], Target]]:
    """A factory for the target the standalone flags name, or None."""
    core = getattr(args, "core", None)
    kernel = getattr(args, "kernel", False)
    qemu = getattr(args, "qemu", None)
    symbols = getattr(args, "symbols", None)
    chosen = sum(bool(x) for x in (core, kernel, qemu))
    if chosen > 1:
        raise TargetError("choose one of -c VMCORE, -k and --qemu")
    if not chosen:
        if symbols:
            raise TargetError("-s VMLINUX needs a kernel to go with it: -c VMCORE, -k or --qemu")
        return None

    def factory() -> Target:
        from ..kernel import drgn_backend
        if core:
            return drgn_backend.open_core(core, symbols)
        if qemu:
            return drgn_backend.open_qmp(qemu, symbols)
        return drgn_backend.open_live(symbols)

    return factory
