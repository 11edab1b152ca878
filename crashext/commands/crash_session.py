"""``crash``: start the real crash utility with the crashext pack loaded."""

import os
import subprocess
import tempfile

from ..crashenv import crash_binary, crash_env, init_lines, pykdump_path
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

usage: crashext crash [--mpykdump PATH] [--timeout S] VMLINUX VMCORE [-- CMD ...]"""
TARGET = "none"
IN_CRASH = False
#: everything after `--` is crash command lines, not options (crashext.cli)
TRAILING = "commands"


def add_arguments(parser) -> None:
    parser.add_argument("vmlinux")
    parser.add_argument("vmcore")
    # the command lines after `--` are taken by crashext.cli before
    # argparse sees them (see TRAILING), so options may stand anywhere
    parser.set_defaults(commands=[])
    parser.add_argument("--mpykdump", metavar="PATH",
                        help="PyKdump's extension (default: $CRASHEXT_PYKDUMP or /opt/pykdump/mpykdump.so)")
    parser.add_argument("--timeout", type=int, default=1800,
                        help="seconds before a non-interactive run is stopped (default 1800)")


def build_argv(args, init_file: str):
    return [crash_binary(), "-s", "-i", init_file, args.vmlinux, args.vmcore]


def run(args, ctx) -> int:
    mpy = pykdump_path(args.mpykdump)
    if not os.path.isfile(mpy):
        raise TargetError(f"PyKdump extension {mpy} not found: build or install PyKdump "
                          "(see docs/crash.md) or pass --mpykdump")
    # crash says nothing and exits 1 on a truncated dump: say it first
    for warning in dumpfile.check_pair(args.vmcore, args.vmlinux).warnings:
        ctx.warn(warning)
    with tempfile.NamedTemporaryFile("w", suffix=".crashinit", delete=False) as f:
        f.write("\n".join(init_lines(mpy)) + "\n")
        init = f.name
    try:
        argv = build_argv(args, init)
        env = crash_env(mpykdump=mpy)
        if not args.commands:
            return subprocess.call(argv, env=env)
        script = "\n".join(args.commands + ["q"]) + "\n"
        try:
            proc = subprocess.run(argv, input=script, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=args.timeout)
        except subprocess.TimeoutExpired as exc:
            raise TargetError(f"crash did not finish within {args.timeout} s") from exc
        ctx.out.write(proc.stdout)
        if proc.returncode != 0:
            # crash can stop without a word (e.g. crash 8.0.2 on a 6.12 dump):
            # say so in one line instead of returning a bare status
            last = next((ln.strip() for ln in reversed(proc.stdout.splitlines()) if ln.strip()), "")
            raise TargetError(f"crash exited with status {proc.returncode}"
                              + (f": {last}" if last else " without a message "
                                 "(is this crash too old for the dump's kernel?)"))
        return proc.returncode
    finally:
        os.unlink(init)
