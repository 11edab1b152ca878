"""The package's imports run one way, down the layers of docs/architecture.md,
and no function grows past a screen.

Every ``import`` of crashext's own modules is read from the source with
:mod:`ast` -- at module level, inside functions and under ``if
TYPE_CHECKING`` alike, since each is a dependency -- and checked against
:data:`LAYERS`: a module may import its own layer and the layers below it,
never one above, and the imports within the package form no circle.  The
command modules are imported by nobody: the registry
(``crashext/commands/__init__.py``) loads them by name.  There is no list of
exceptions.
"""

import ast
import os
from typing import Dict, List, Set

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "crashext")

#: The layers, lowest first: (name, modules or packages in it).  A package
#: name covers its modules (the top package ``crashext`` only itself).
#: docs/architecture.md shows the same table.
LAYERS = [
    ("base", ["crashext", "crashext.errors", "crashext.progress", "crashext.spool",
              "crashext.units"]),
    ("sources", ["crashext.sources"]),
    ("kernel", ["crashext.kernel", "crashext.gfp"]),
    ("knowledge base", ["crashext.kb"]),
    ("analysis", ["crashext.analysis"]),
    ("rendering", ["crashext.render", "crashext.presentation", "crashext.kb.docs"]),
    ("front ends", ["crashext.report", "crashext.exporter", "crashext.watch",
                    "crashext.crashenv"]),
    ("commands", ["crashext.commands"]),
    ("homes", ["crashext.cli", "crashext.__main__", "crashext.crash_pack",
               "crashext.drgn_plugin"]),
]

def _modules() -> Dict[str, str]:
    out = {}
    for d, _dirs, files in os.walk(PACKAGE):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(d, f)
            rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
            if rel.endswith(".__init__"):
                rel = rel[:-len(".__init__")]
            out[rel] = path
    return out


#: No function of crashext is longer than this many lines, counted from its
#: ``def`` line to its last line: decorators left out; its docstring,
#: comments, blank lines and nested functions counted.
MAX_FUNCTION_LINES = 80

MODULES = _modules()


def layer_of(mod: str) -> int:
    """The index in LAYERS of the most specific entry that covers ``mod``."""
    best, best_len = None, -1
    for i, (_name, entries) in enumerate(LAYERS):
        for e in entries:
            covers = mod == e or (e != "crashext" and mod.startswith(e + "."))
            if covers and len(e) > best_len:
                best, best_len = i, len(e)
    if best is None:
        raise AssertionError(f"{mod}: in no layer of tests/test_layers.py LAYERS")
    return best


def imports_of(mod: str) -> Set[str]:
    """The crashext modules ``mod`` imports (``from P import name`` counts as
    module ``P.name`` where that is a module, else as ``P``)."""
    path = MODULES[mod]
    is_pkg = path.endswith("__init__.py")
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    out: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "crashext" or a.name.startswith("crashext."):
                    out.add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if not (name == "crashext" or name.startswith("crashext.")):
                continue
            for a in node.names:
                full = f"{name}.{a.name}"
                out.add(full if full in MODULES else name)
    out.discard(mod)
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)


def test_no_import_goes_up():
    bad = []
    for m, deps in sorted(GRAPH.items()):
        for d in sorted(deps):
            if d not in MODULES:
                bad.append(f"{m} imports {d}, which does not exist")
            elif layer_of(d) > layer_of(m):
                bad.append(f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} "
                           f"({LAYERS[layer_of(d)][0]})")
    assert not bad, "\n".join(bad)


def _cycles() -> List[List[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in GRAPH:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    assert _cycles() == []


def test_command_modules_are_imported_by_nobody():
    commands = {m for m in MODULES if m.startswith("crashext.commands.")}
    bad = [f"{m} imports {d}" for m, deps in sorted(GRAPH.items()) for d in sorted(deps)
           if d in commands]
    assert not bad, "\n".join(bad)


def _functions():
    for mod, path in sorted(MODULES.items()):
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield mod, node


def test_no_function_is_longer_than_a_screen():
    long = [f"{mod}.{node.name} (line {node.lineno}): {node.end_lineno - node.lineno + 1} lines"
            for mod, node in _functions()
            if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "\n".join(long)


# -- the checks themselves, on made-up graphs ---------------------------------------


def test_the_checks_see_a_circle_and_an_upward_import(monkeypatch):
    fake = {"crashext.sources.a": {"crashext.analysis.b"},
            "crashext.analysis.b": {"crashext.sources.a"}}
    monkeypatch.setattr(__import__(__name__), "GRAPH", fake)
    assert _cycles() == [["crashext.analysis.b", "crashext.sources.a"]]
    assert layer_of("crashext.analysis.b") > layer_of("crashext.sources.a")
    assert layer_of("crashext.kb.docs") > layer_of("crashext.analysis.b")
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("crashext.not_placed")


@pytest.mark.parametrize("mod", ["crashext.kernel.target", "crashext.analysis.memcg"])
def test_imports_are_read_from_the_source(mod):
    # kernel/target.py imports errors; analysis/memcg.py reads a kernel through target
    assert "crashext.errors" in GRAPH[mod]
