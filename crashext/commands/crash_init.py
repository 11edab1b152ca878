"""``crash-init``: print what loads the crashext pack into crash."""

import os

from ..crashenv import crash_builds, init_lines, pykdump_path, pykdumppath_dirs

NAME = "crash-init"
SUMMARY = "print the lines that load crashext into a crash session"
DESCRIPTION = """\
Print the environment and ~/.crashrc lines that load crashext into crash
through PyKdump.  PyKdump replaces its Python's sys.path with its own plus
PYKDUMPPATH, so the directories of crashext, tabulate and the epython/
command scripts must be named there.  Use in a shell:

    eval "$(crashext crash-init --export)"
    crashext crash-init --crashrc >> ~/.crashrc"""
TARGET = "none"
IN_CRASH = False


def add_arguments(parser) -> None:
    parser.add_argument("--mpykdump", metavar="PATH",
                        help="PyKdump's extension (default: $CRASHEXT_PYKDUMP, else the one scripts/setup built for the crash on PATH)")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--export", action="store_true", help="print only the export line")
    g.add_argument("--crashrc", action="store_true", help="print only the crash commands")


def run(args, ctx) -> int:
    mpy = pykdump_path(args.mpykdump)
    dirs = pykdumppath_dirs(mpykdump=mpy)
    # the crash binary this PyKdump was built for (a PyKdump loads only in
    # the crash version it was built against)
    crash = next((b.crash for b in crash_builds() if b.mpykdump == mpy), None)
    export = "export PYKDUMPPATH=" + ":".join(dirs) + '${PYKDUMPPATH:+:$PYKDUMPPATH}'
    lines = init_lines(mpy)
    if args.json:
        from .. import render
        render.write_json(ctx.out, {"mpykdump": mpy, "pykdumppath": dirs, "crashrc": lines,
                                    "mpykdump_exists": os.path.isfile(mpy), "crash": crash})
        return 0
    if args.export:
        ctx.out.write(export + "\n")
    elif args.crashrc:
        ctx.out.write("\n".join(lines) + "\n")
    else:
        ctx.out.write("# in the shell that starts crash:\n" + export + "\n\n")
        ctx.out.write("# in ~/.crashrc (or type them at the crash prompt):\n" + "\n".join(lines) + "\n")
        if crash:
            ctx.out.write(f"\n# the crash this PyKdump was built for:\n# {crash}\n")
        if not os.path.isfile(mpy):
            ctx.warn(f"{mpy} does not exist: build or install PyKdump, or pass --mpykdump")
    return 0
