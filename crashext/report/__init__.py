"""The HTML report: one self-contained page with the verdict and pictures.

:mod:`.data` assembles what the page shows from the analyses (plain data);
:mod:`.plots` draws it with matplotlib's SVG backend; :mod:`.page` fills the
Jinja2 template (``templates/report.html.j2``).  matplotlib and Jinja2 are
the optional extra ``crashext[report]``: without them the rest of crashext
works and :func:`require` says how to get them.
"""

import os

from ..errors import InputError

__all__ = ["write_report"]


def write_report(ctx, output: str, log=None, proc=None, release=None, kb=None,
                 crash_log=None) -> int:
    """Assemble and write the page; prints one line saying where it went.

    ``ctx`` is the command's :class:`crashext.commands.Context` (the dump is
    opened only once the output and the sources are known to be usable)."""
    from . import page
    page.require(ctx.inside_crash)  # before any work: one line if matplotlib/Jinja2 are missing
    from . import data
    parent = os.path.dirname(os.path.abspath(output))
    if os.path.isdir(output) or not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        # before the work, not after it: a typo in -o should not cost a dump's analysis
        why = ("is a directory" if os.path.isdir(output) else
               "no such directory" if not os.path.isdir(parent) else "directory not writable")
        raise InputError(f"cannot write the report to {output}: {why}")
    if not ctx.has_target and not log and not proc and not crash_log:
        raise InputError("nothing to report on: give -c VMCORE -s VMLINUX, -k, --qemu SOCKET, "
                         "--log FILE or --proc DIR")
    target = ctx.target() if ctx.has_target else None
    d = data.assemble(target=target, log_path=log, proc_dir=proc, release=release,
                      kb_dirs=kb or [], crash_log=crash_log, err=ctx.err)
    size = page.write_page(d, output)
    ctx.err.write(f"report: wrote {output} ({size // 1024} KiB)\n")
    return 0
