"""A real browser for the report tests: Debian's chromium, headless.

:func:`load` opens an HTML file the way a person's browser would and
returns what it saw: the DOM after the page loaded (``--dump-dom``), the
console messages chromium logged, every URL it requested (from its net
log), and a screenshot.  :func:`parse` turns the DOM text into a small tree
to read tables and figures from.

chromium is installed by scripts/setup.  Without it the tests skip, except
in CI (CI=true), where a missing browser is a failure.
"""

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from typing import Dict, List, Optional

import pytest

__all__ = ["chromium", "load", "parse", "Node"]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--hide-scrollbars", "--disable-features=Translate,MediaRouter,OptimizationHints,NetworkTimeServiceQuerying",
         "--enable-logging=stderr", "--v=0"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        msg = "chromium is not installed (scripts/setup installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return path


def _run(args: List[str], tmp: str, name: str) -> subprocess.CompletedProcess:
    prof = os.path.join(tmp, f"profile-{name}")  # a fresh profile for every run
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={prof}", *args],
                          capture_output=True, text=True, timeout=180)


def load(html_path: str, tmp: str, width: int = 1300, height: int = 4000) -> Dict[str, object]:
    """Open ``html_path`` in headless chromium twice (DOM + net log, then a
    screenshot) and return ``dom``, ``console`` (lines), ``requests`` (URLs
    other than the page itself) and ``screenshot`` (a PNG path)."""
    url = "file://" + os.path.abspath(html_path)
    netlog = os.path.join(tmp, "net.json")
    p = _run([f"--log-net-log={netlog}", "--net-log-capture-mode=Everything",
              "--dump-dom", url], tmp, "dom")
    assert p.returncode == 0, p.stderr[-2000:]
    console = [ln for ln in p.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    shot = os.path.join(tmp, os.path.basename(html_path) + ".png")
    q = _run([f"--screenshot={shot}", f"--window-size={width},{height}", url], tmp, "shot")
    assert q.returncode == 0 and os.path.isfile(shot), q.stderr[-2000:]
    console += [ln for ln in q.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    return {"dom": p.stdout, "console": console, "requests": _requests(netlog, url),
            "screenshot": shot}


def _requests(netlog: str, page_url: str) -> List[str]:
    """The URLs the page made chromium's network stack fetch.

    Every request job of the net log has an initiator: the page's origin
    (``null`` for a file:// page) for what the page asked for, ``not an
    origin`` for the browser's own background traffic (time queries,
    component updates), which is not the page's doing and is left out."""
    with open(netlog, encoding="utf-8") as f:
        text = f.read().rstrip()
    # chromium may leave the file without its closing brackets when it exits
    try:
        log = json.loads(text)
    except ValueError:
        log = json.loads(text.rstrip(",") + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = set()
    for ev in log.get("events", []):
        p = ev.get("params") or {}
        if ev.get("type") != start or not p.get("url") or p["url"] == page_url:
            continue
        if p.get("initiator") == "not an origin":
            continue
        urls.add(p["url"])
    return sorted(urls)


class Node:
    __slots__ = ("tag", "attrs", "children", "parent", "text")

    def __init__(self, tag: str, attrs: Dict[str, Optional[str]], parent: Optional["Node"]):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: List["Node"] = []
        self.text: List[str] = []

    def all_text(self) -> str:
        out = list(self.text)
        for c in self.children:
            out.append(c.all_text())
        return " ".join(x for x in out if x).strip()

    def iter(self, tag: Optional[str] = None, cls: Optional[str] = None, **attrs):
        """Descendants with this tag, this class among their classes, these attributes."""
        for c in self.children:
            if ((tag is None or c.tag == tag)
                    and (cls is None or cls in (c.attrs.get("class") or "").split())
                    and all(c.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())):
                yield c
            yield from c.iter(tag, cls, **attrs)

    def find(self, tag: Optional[str] = None, cls: Optional[str] = None,
             **attrs) -> Optional["Node"]:
        return next(self.iter(tag, cls, **attrs), None)


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(n)
        if tag not in _VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, dict(attrs), self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        if data.strip():
            self.cur.text.append(data.strip())


def parse(dom: str) -> Node:
    b = _Builder()
    b.feed(dom)
    b.close()
    return b.root
