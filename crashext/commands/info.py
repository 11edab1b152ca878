"""``info``: the first thing crash's banner shows, for one kernel."""

from .. import render
from ..analysis.system import system_info

NAME = "info"
SUMMARY = "kernel release, machine, memory, uptime and panic message"
DESCRIPTION = """\
Show what kernel a dump (or the live kernel) is: release, version, machine,
page size, CPUs, memory the kernel manages, uptime and the panic message
from the kernel log.  The vmlinux is checked against the dump first; a
mismatch is an error naming both releases."""
TARGET = "required"
# crash shows all of this in its banner and `sys`; and `info` is gdb's command there
IN_CRASH = False


def add_arguments(parser) -> None:
    pass


def _uptime(secs) -> str:
    if secs is None:
        return "-"
    secs = int(secs)
    d, rem = divmod(secs, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return (f"{d} days, " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def run(args, ctx) -> int:
    info = system_info(ctx.target())
    if args.json:
        render.write_json(ctx.out, info)
        return 0
    rows = [
        ("SOURCE", info["source"]),
        ("RELEASE", info["release"]),
        ("VERSION", info["version"]),
        ("MACHINE", info["machine"]),
        ("NODENAME", info["nodename"]),
        ("CPUS", info["cpus"]),
        ("PAGE SIZE", info["page_size"]),
        ("MEMORY", render.human_bytes(info["memory_bytes"])),
        ("UPTIME", _uptime(info["uptime_seconds"])),
        ("PANIC", f'"{info["panic"]}"' if info["panic"] else "-"),
    ]
    ctx.out.write(render.kv_block(rows) + "\n")
    for key, why in info["errors"].items():
        ctx.warn(f"{key}: {why}")
    return 0
