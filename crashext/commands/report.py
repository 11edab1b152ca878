"""``report``: one self-contained HTML page -- verdict, fragmentation,
memcgs and the log's timeline with pictures -- for a ticket."""

from ..errors import InputError
from ..report import write_report

NAME = "report"
SUMMARY = "one self-contained HTML page: verdict, fragmentation, memcgs, log timeline"
DESCRIPTION = """\
Write an HTML page that a browser shows offline (everything inline, no
network request): the triage verdict first, then free memory by order per
zone (split by migrate type where known) with the unusable index and
whether an order-N request passes each zone's watermark, the memory
cgroups (online, dying, flagged, kmem ids against capacity), the kernel
log's allocation failures, OOM kills, warnings and panic on one time axis,
and the system facts with where each was read.

Sources, combined as triage combines them: -c VMCORE -s VMLINUX, -k,
--qemu SOCKET, --log FILE (dmesg, vmcore-dmesg.txt), --proc DIR (buddyinfo,
zoneinfo, pagetypeinfo text for the fragmentation section).  A section
its sources cannot give says why in place of its picture.

Needs matplotlib and Jinja2: pip install 'crashext[report]' (scripts/setup
installs them)."""
TARGET = "optional"


def add_arguments(parser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", required=True,
                        help="the HTML file to write")
    parser.add_argument("--log", metavar="FILE", help="kernel log text (dmesg, vmcore-dmesg.txt)")
    parser.add_argument("--proc", metavar="DIR",
                        help="/proc-like text for the fragmentation section (buddyinfo, zoneinfo)")
    parser.add_argument("--release", metavar="RELEASE",
                        help="kernel release of --proc text (picks the watermark rule)")
    parser.add_argument("--kb", metavar="DIR", action="append", default=[],
                        help="extra knowledge-base directory of .toml entries (repeatable)")


def run(args, ctx) -> int:
    if args.json:
        raise InputError("report writes HTML; for JSON use triage --json, frag --json, memcgids --json")
    return write_report(ctx, args.output, log=args.log, proc=args.proc, release=args.release,
                        kb=args.kb)
