"""``crash``: start the real crash utility with the crashext pack loaded."""

import contextlib
import os
import subprocess
import tempfile
from typing import Iterator, List, Optional, Tuple

from ..crashenv import CrashBuild, builds_dir, crash_builds, crash_env, init_lines
from ..errors import TargetError
from ..kernel import dumpfile

NAME = "crash"
SUMMARY = "start crash on a dump with the crashext commands loaded"
DESCRIPTION = """\
Start Red Hat's crash on VMLINUX and VMCORE with PyKdump and the crashext
commands loaded.  With commands after `--`, run them non-interactively and
exit (each one is a crash command line, e.g. 'memcgids --dying'):

    crashext crash vmlinux vmcore
    crashext crash vmlinux vmcore -- 'memcgids' 'frag --order 6'

The crash used is the newest that can open the dump, of those with a
PyKdump built for them (scripts/setup builds crash 9.0.2+abcb45e beside
Debian's 8.0.2); it says which on stderr.  --crash PATH picks one.  crash
runs with --no_crashrc: the session loads exactly one PyKdump, the one built
for that crash, whatever ~/.crashrc loads.

usage: crashext crash [--crash PATH] [--mpykdump PATH] [--timeout S] VMLINUX VMCORE [-- CMD ...]"""
TARGET = "none"
IN_CRASH = False
#: everything after `--` is crash command lines, not options (crashext.cli)
TRAILING = "commands"

#: What the pack prints once it is loaded (epython/crashext_init.py)
LOADED = "crashext: registered"


def add_arguments(parser) -> None:
    parser.add_argument("vmlinux")
    parser.add_argument("vmcore")
    # the command lines after `--` are taken by crashext.cli before
    # argparse sees them (see TRAILING), so options may stand anywhere
    parser.set_defaults(commands=[])
    parser.add_argument("--crash", metavar="PATH", dest="crash_binary",
                        help="the crash binary to use (default: the newest built one that opens the dump)")
    parser.add_argument("--mpykdump", metavar="PATH",
                        help="PyKdump's extension (default: $CRASHEXT_PYKDUMP, else the one "
                             "scripts/setup built for the crash used)")
    parser.add_argument("--timeout", type=int, default=1800,
                        help="seconds before a non-interactive run is stopped (default 1800)")


def build_argv(build: CrashBuild, args, init_file: str):
    # --no_crashrc: the session loads exactly one PyKdump, the one built for
    # this crash, from the init file; a ~/.crashrc that loads the pack (as
    # `crash-init --crashrc` writes it) would load a second one
    return [build.crash, "-s", "--no_crashrc", "-i", init_file, args.vmlinux, args.vmcore]


def _candidates(args) -> List[CrashBuild]:
    if args.crash_binary and not os.path.isfile(args.crash_binary):
        raise TargetError(f"--crash {args.crash_binary}: no such file")
    if args.mpykdump and not os.path.isfile(args.mpykdump):
        raise TargetError(f"PyKdump extension {args.mpykdump} not found: build it "
                          "(scripts/build-pykdump) or drop --mpykdump")
    builds = crash_builds(args.crash_binary, args.mpykdump)
    if not builds:
        if args.crash_binary:
            raise TargetError(f"no PyKdump built for {args.crash_binary}: build one "
                              "(scripts/build-pykdump) or pass --mpykdump")
        raise TargetError(f"no PyKdump found (looked in {builds_dir()} and $CRASHEXT_PYKDUMP): "
                          "run scripts/setup (it builds crash and PyKdump) or pass --mpykdump")
    missing = [b for b in builds if not os.path.isfile(b.mpykdump)]
    if missing:
        raise TargetError(f"PyKdump extension {missing[0].mpykdump} not found: build or install "
                          "PyKdump (scripts/build-pykdump, docs/crash.md) or pass --mpykdump")
    return builds


def _refusal(proc_out: str, returncode: int) -> str:
    last = next((ln.strip() for ln in reversed(proc_out.splitlines()) if ln.strip()), "")
    return (f"exit {returncode}: {last}" if last
            else f"exit {returncode} without a message (too old for the dump's kernel?)")


@contextlib.contextmanager
def _init_file(build: CrashBuild) -> Iterator[str]:
    """crash's -i file loading the pack with this build's PyKdump."""
    with tempfile.NamedTemporaryFile("w", suffix=".crashinit", delete=False) as f:
        f.write("\n".join(init_lines(build.mpykdump)) + "\n")
    try:
        yield f.name
    finally:
        os.unlink(f.name)


def _run_one(build: CrashBuild, args, script: str, timeout: int) -> Tuple[int, str]:
    with _init_file(build) as init:
        try:
            proc = subprocess.run(build_argv(build, args, init), input=script,
                                  env=crash_env(mpykdump=build.mpykdump), text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise TargetError(f"crash {build.version} did not finish within {timeout} s") from exc
    return proc.returncode, proc.stdout


def _opened(rc: int, out: str) -> bool:
    # the pack announces itself once crash has opened the dump and run the
    # init file; a crash that cannot open the dump exits before that
    return LOADED in out or rc == 0


def run(args, ctx) -> int:
    builds = _candidates(args)
    # crash says nothing and exits 1 on a truncated dump: say it first
    for warning in dumpfile.check_pair(args.vmcore, args.vmlinux).warnings:
        ctx.warn(warning)
    tried: List[str] = []
    chosen: Optional[CrashBuild] = None
    result: Optional[Tuple[int, str]] = None
    for i, build in enumerate(builds):
        if args.commands:
            rc, out = _run_one(build, args, "\n".join(args.commands + ["q"]) + "\n", args.timeout)
        elif len(builds) > 1 and i < len(builds) - 1:
            # interactive: try the dump with this crash first, so a crash that
            # cannot open it is passed over instead of ending the session
            rc, out = _run_one(build, args, "q\n", min(args.timeout, 600))
        else:
            rc, out = 0, ""
        if _opened(rc, out) or (not args.commands and i == len(builds) - 1):
            chosen, result = build, (rc, out)
            break
        tried.append(f"crash {build.version} ({build.crash}): {_refusal(out, rc)}")
    if chosen is None:
        raise TargetError("no crash could open the dump: " + "; ".join(tried))
    ctx.err.write(f"crashext: using crash {chosen.version} ({chosen.crash}) with PyKdump "
                  f"{chosen.mpykdump}" + (f"; passed over {'; '.join(tried)}" if tried else "") + "\n")
    ctx.err.flush()
    if not args.commands:
        with _init_file(chosen) as init:
            return subprocess.call(build_argv(chosen, args, init), env=crash_env(mpykdump=chosen.mpykdump))
    rc, out = result
    ctx.out.write(out)
    if rc != 0:
        raise TargetError(f"crash {chosen.version} ({chosen.crash}) stopped: {_refusal(out, rc)}")
    return rc
