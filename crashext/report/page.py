"""Fill the report template: the data of :mod:`.data`, the SVGs of :mod:`.plots`.

The page is one file with everything inline (CSS, SVG); it loads nothing
when opened.  Reference links of the knowledge base are plain ``<a>``
links, followed only when clicked.
"""

import datetime
from typing import Any, Dict, List, Optional

from .. import __version__, render
from ..errors import InputError
from ..presentation import MARKS, evidence_lines

__all__ = ["require", "render_page", "write_page", "MISSING_HINT"]

#: The one line ``report`` prints when its optional libraries are missing.
MISSING_HINT = ("the HTML report needs matplotlib and Jinja2: pip install 'crashext[report]' "
                "(or scripts/setup)")

#: Inside crash the libraries must load in PyKdump's embedded Python.
CRASH_HINT = ("the HTML report needs matplotlib and Jinja2 importable by PyKdump's Python "
              "(Debian's python3-matplotlib and python3-jinja2 on PYKDUMPPATH); or run "
              "`crashext report -c VMCORE -s VMLINUX -o FILE` outside crash")


def require(inside_crash: bool = False) -> None:
    """Raise :class:`InputError` with one line saying how to get the optional
    libraries unless both import."""
    missing = []
    for mod in ("matplotlib", "jinja2"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        hint = CRASH_HINT if inside_crash else MISSING_HINT
        raise InputError(f"{hint}; missing: {', '.join(missing)}")


def _fmt_bytes(v: Any) -> str:
    return render.human_bytes(v) if isinstance(v, (int, float)) else str(v)


def _figures(d: Dict[str, Any]) -> Dict[str, Any]:
    from . import plots
    figs: Dict[str, Any] = {"zones": {}, "memcg": None, "timeline": None}
    fr = d["frag"]
    if "error" not in fr:
        for z in fr["zones"]:
            key = f"{z['node']}:{z['zone']}"
            figs["zones"][key] = plots.zone_figure(z, fr["page_size"], fr["failed_order"], key)
    if "error" not in d["memcg"]:
        figs["memcg"] = plots.memcg_figure(d["memcg"])
    if "error" not in d["timeline"]:
        figs["timeline"] = plots.timeline_figure(d["timeline"])
    return figs


def render_page(d: Dict[str, Any], generated: Optional[str] = None) -> str:
    """The HTML page of an assembled report."""
    require()
    import jinja2
    env = jinja2.Environment(loader=jinja2.PackageLoader("crashext.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["bytes"] = _fmt_bytes
    evidence: Dict[str, List[str]] = {"panic": [], "memory": []}
    if d["triage"] is not None:
        evidence = evidence_lines(d["triage"])
    tpl = env.get_template("report.html.j2")
    return tpl.render(r=d, t=d["triage"], evidence=evidence, figs=_figures(d), mark=MARKS,
                      version=__version__,
                      generated=generated or datetime.datetime.now(datetime.timezone.utc)
                      .strftime("%Y-%m-%d %H:%M UTC"))


def write_page(d: Dict[str, Any], path: str) -> int:
    """Render and write the page; one clear line if the path is not writable."""
    html = render_page(d)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(html)
    except OSError as exc:
        raise InputError(f"cannot write the report to {path}: {exc.strerror or exc}") from exc
    return len(html.encode("utf-8"))
