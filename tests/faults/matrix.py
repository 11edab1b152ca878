"""Build every case, run every command on it, judge, and render the matrix."""

import concurrent.futures as cf
import os
from typing import Callable, Dict, List, Optional, Tuple

from .cases import CASES, Case, Env
from .harness import COMMANDS, Outcome, judge, normalise, run_command

__all__ = ["Matrix", "render_markdown"]


class Matrix:
    def __init__(self, env: Env, jobs: int = 2) -> None:
        self.env = env
        self.jobs = jobs
        self._clean: Dict[Tuple[Tuple[str, str], str], object] = {}
        self._built: Dict[str, Tuple[str, str]] = {}

    def clean(self, fx: Tuple[str, str], column: str):
        key = (fx, column)
        if key not in self._clean:
            core, vmlinux = self.env.fixture(fx)
            r = run_command(column, core, vmlinux)
            assert r.rc == 0, f"clean {fx} {column} failed: {r.err}"
            self._clean[key] = normalise(r.json(), core)
        return self._clean[key]

    def build(self, case: Case) -> Tuple[str, str]:
        if case.id not in self._built:
            self._built[case.id] = case.build(self.env, case)
        return self._built[case.id]

    def one(self, case: Case, column: str) -> Outcome:
        core, vmlinux = self.build(case)
        exp = case.expectation(column)
        clean = self.clean(case.fixture, column) if exp.kind != "error" else None
        return judge(exp, run_command(column, core, vmlinux), clean, core)

    def run(self, cases: List[Case], columns: List[str],
            progress: Optional[Callable[[str], None]] = None) -> Dict[str, Dict[str, Outcome]]:
        out: Dict[str, Dict[str, Outcome]] = {}
        for case in cases:
            self.build(case)
            for col in columns:
                if case.expectation(col).kind != "error":
                    self.clean(case.fixture, col)
            with cf.ThreadPoolExecutor(self.jobs) as ex:
                res = dict(zip(columns, ex.map(lambda c: self.one(case, c), columns)))
            out[case.id] = res
            if progress:
                progress(case.id + " " + " ".join(
                    f"{c}={o.word}{'' if o.ok else '!'}" for c, o in res.items()))
        return out


def render_markdown(results: Dict[str, Dict[str, Outcome]], columns: List[str]) -> str:
    by_id = {c.id: c for c in CASES}
    lines = ["| case | fixture | what is broken | " + " | ".join(columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    for cid, res in results.items():
        c = by_id[cid]
        cells = []
        for col in columns:
            o = res[col]
            cells.append(("" if o.ok else "**FAIL** ") + o.word + (f" {o.seconds:.1f}s"))
        lines.append(f"| `{cid}` | {c.fixture[0]}/{c.fixture[1]} | {c.title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
