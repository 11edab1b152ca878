"""The list of knowledge-base entries as Markdown, generated from the TOML files.

``python3 -m crashext.kb.docs`` rewrites the part of docs/knowledge-base.md
between the two marker lines below; ``--check`` exits 1 when that part is
out of date (the test suite runs the check).
"""

import argparse
import os
import sys
from typing import List, Optional, Sequence

from . import Entry, load_kb

BEGIN = "<!-- BEGIN generated: python3 -m crashext.kb.docs -->"
END = "<!-- END generated -->"

_KIND = {"bug": "bug", "deliberate": "deliberate panic", "condition": "known condition"}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _signature(e: Entry) -> List[str]:
    sig = e.signature
    out = []
    if sig.panic:
        out.append("panic " + ", ".join(f"`{p}`" for p in sig.panic)
                   + (" (required)" if sig.panic_required else ""))
    if sig.rip_function:
        out.append("RIP in " + ", ".join(f"`{f}`" for f in sig.rip_function)
                   + (" (required)" if sig.rip_required else ""))
    for f in sig.frames_required:
        out.append(f"frame `{f}` (required)")
    if sig.frames_optional:
        out.append("frames " + ", ".join(f"`{f}`" for f in sig.frames_optional))
    for lp in sig.log:
        out.append(_log_label(lp) + lp.name + (" (required)" if lp.required else ""))
    for dp in sig.dump:
        out.append(f"dump: {dp.name} (`{dp.code}`)" + (" (required)" if dp.required else ""))
    return out


def _log_label(lp) -> str:
    """``log:`` (kernel log), ``text:`` (user-space text), ``not:`` (must be absent)."""
    if lp.absent:
        return "not: " if lp.source == "kernel" else "not in the text: "
    return "text: " if lp.source == "text" else "log: "


def _affected(e: Entry) -> str:
    parts = []
    for a in e.affected:
        rng = (f"from {a.since} " if a.since else "") + (f"before {a.before}" if a.before else "all")
        if (a.since or a.before) and a.status == "unconfirmed":
            rng += " (bound unconfirmed: kernels past it still match, with a caveat)"
        parts.append(f"{a.family}{' ' + a.dist if a.dist else ''}: {rng}")
    return "; ".join(parts) or "not limited to a kernel range"


def render(entries: Sequence[Entry], root: Optional[str] = None) -> str:
    """Markdown for ``entries``: a summary table, then one section each."""
    lines = [BEGIN, "",
             f"{len(entries)} entries.  Facts say **verified** (checked in a public source, "
             "how is given) or **unconfirmed** (not checked; never a guess).", "",
             "| id | kind | title | fixed in |", "|---|---|---|---|"]
    for e in entries:
        fixed = ", ".join(e.fixed_in) or "-"
        lines.append(f"| [`{e.id}`](#{e.id}) | {_KIND[e.kind]} | {_cell(e.title)} | {_cell(fixed)} |")
    lines.append("")
    for e in entries:
        src = os.path.relpath(e.source, root) if root else os.path.basename(e.source)
        lines += [f"### {e.id}", "", f"**{_cell(e.title)}** ({_KIND[e.kind]}; `{src}`)", "",
                  _cell(e.summary), "", "Matched on:", ""]
        lines += [f"- {s}" for s in _signature(e)]
        if e.precursor:
            lines += ["", f"AT RISK (precursor): {_cell(e.precursor.evidence)}; on:", ""]
            lines += ["- " + _log_label(lp) + lp.name
                      + (" (required)" if lp.required else "") for lp in e.precursor.log]
        lines += ["", f"Kernels: {_affected(e)}.", ""]
        if e.fixes:
            lines += ["Kernel changes (remedies):" if e.kind == "condition" else "Fixes:", ""]
            for f in e.fixes:
                rel = f", first release {f.first_release}" if f.first_release else ""
                how = f": {_cell(f.checked)}" if f.checked else ""
                lines.append(f"- {_cell(f.what)}{rel} — **{f.status}**{how}")
            lines.append("")
        if e.workarounds:
            lines += ["Workarounds:", ""] + [f"- {_cell(w)}" for w in e.workarounds] + [""]
        lines += ["Sources:", ""]
        for r in e.references:
            note = f" ({_cell(r.note)})" if r.note else ""
            lines.append(f"- [{_cell(r.title)}]({r.url}) — **{r.status}**{note}")
        lines.append("")
    lines.append(END)
    return "\n".join(lines) + "\n"


def splice(doc: str, generated: str) -> str:
    """``doc`` with the generated part replaced (appended if it has no markers)."""
    if BEGIN in doc and END in doc:
        head = doc[:doc.index(BEGIN)]
        tail = doc[doc.index(END) + len(END):].lstrip("\n")
        return head + generated + ("\n" + tail if tail else "")
    return doc.rstrip("\n") + "\n\n" + generated


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m crashext.kb.docs", description=__doc__.split("\n")[0])
    ap.add_argument("--doc", default=None, help="the Markdown file (default: docs/knowledge-base.md "
                    "of this checkout)")
    ap.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = ap.parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    doc_path = args.doc or os.path.join(root, "docs", "knowledge-base.md")
    with open(doc_path, encoding="utf-8") as f:
        doc = f.read()
    new = splice(doc, render(load_kb(), root))
    if args.check:
        if new != doc:
            print(f"{doc_path}: the entry list is out of date; run python3 -m crashext.kb.docs",
                  file=sys.stderr)
            return 1
        return 0
    with open(doc_path, "w", encoding="utf-8") as f:
        f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
