"""Build every case, run every command on it, judge, and render the matrix."""

import concurrent.futures as cf
import os
from typing import Callable, Dict, List, Optional, Tuple

from .cases import CASES, Case, Env
from .harness import error
from .harness import (Outcome, judge, normalise, run_command,
                      run_in_crash, run_session_in_crash)

from ..jsoncmp import strip_place  # keys naming where the data was read differ inside crash

__all__ = ["Matrix", "render_markdown", "CRASH_COLUMNS"]

#: the commands the crash matrix runs: the two that walk kernel structures
#: (allocfail and triage read crash's own log and bt, slow and already covered
#: by tests/test_crash_pack.py on clean dumps)
CRASH_COLUMNS = ["memcgids", "frag"]



def _crash_opens_612() -> bool:
    """Whether crashext crash will use a crash that opens 6.12 dumps (8.0.4 or
    later: scripts/build-pykdump's 9.0.2+abcb45e); Debian bookworm's 8.0.2
    does not."""
    from crashext.crashenv import crash_builds, version_key
    builds = crash_builds()
    return bool(builds) and version_key(builds[0].version) >= (8, 0, 4)

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

    def one_in_crash(self, case: Case, column: str) -> Outcome:
        """The command inside Debian's crash with PyKdump (crashext crash ... -- CMD).

        The expectation is the CLI's: the same one-line error (in the crash
        transcript; the session goes on), or JSON that passes the same check
        against the clean dump's CLI JSON (place keys aside)."""
        import re
        core, vmlinux = self.build(case)
        exp = case.expectation(column)
        outfile = os.path.join(os.path.dirname(core), f"crash-{column}.json")
        if os.path.exists(outfile):
            os.unlink(outfile)
        r = run_in_crash(column, core, vmlinux, outfile, timeout=600)
        if r.hung:
            return Outcome("HANG", False, "crash session killed at the time limit", r.seconds)
        transcript = r.err
        if "Traceback" in transcript:
            return Outcome("TRACEBACK", False, transcript[-400:], r.seconds)
        if exp.kind == "error":
            # crash's redirection takes what the command writes, error line included:
            # the file holds that one line (no JSON), and the session went on
            lines = [ln for ln in r.out.strip().splitlines() if ln.strip()]
            ok = len(lines) == 1 and bool(re.search(exp.pattern, lines[0]))
            return Outcome("error", ok, lines[0] if ok else (r.out + transcript)[-400:], r.seconds)
        if not r.out.strip():
            return Outcome("no-output", False, transcript[-400:], r.seconds)
        clean = strip_place(self.clean(case.fixture, column))
        stripped = Run2(r, strip_place)
        return judge(exp, stripped, clean, core)

    def clean_in_crash(self, fx: Tuple[str, str], column: str):
        """The clean dump's output inside crash: the baseline for crash runs
        (crash's log and bt differ in precision and frames from drgn's)."""
        key = (fx, "crash:" + column)
        if key not in self._clean:
            core, vmlinux = self.env.fixture(fx)
            outdir = os.path.join(self.env.workdir, "clean-" + "-".join(fx))
            os.makedirs(outdir, exist_ok=True)
            runs = run_session_in_crash(CRASH_COLUMNS, core, vmlinux, outdir)
            for c, r in runs.items():
                assert r.out, f"clean {fx} {c} inside crash wrote nothing: {r.err[-300:]}"
                self._clean[(fx, "crash:" + c)] = normalise(r.json(), core)
        return self._clean[key]

    def crash_row(self, case: Case, columns: List[str] = None) -> Dict[str, Outcome]:
        """Every crash command of a case in one crash session, judged like the CLI.

        A dump that crashext refuses before starting crash (``crashext crash``
        checks the pair first) must give the CLI's one line; a dump crash
        itself cannot open counts as an expected error only where the CLI
        expects one (word ``crash-error``)."""
        import re
        columns = columns or CRASH_COLUMNS
        core, vmlinux = self.build(case)
        outdir = os.path.join(self.env.workdir, case.id)
        os.makedirs(outdir, exist_ok=True)
        runs = run_session_in_crash(columns, core, vmlinux, outdir)
        res: Dict[str, Outcome] = {}
        for col in columns:
            exp, r = case.crash_expect.get(col) or case.expectation(col), runs[col]
            if case.fixture[0] == "trixie" and not _crash_opens_612():
                # Debian bookworm's crash 8.0.2 cannot open a 6.12 dump at all
                # (the clean one neither): crashext says so in one line
                exp = error(r"no crash could open the dump")
            if r.hung:
                res[col] = Outcome("HANG", False, "crash session killed", r.seconds)
                continue
            if "Traceback" in r.err or "Traceback" in r.out:
                res[col] = Outcome("TRACEBACK", False, (r.out + r.err)[-400:], r.seconds)
                continue
            if not r.out:  # no file: the session did not get to run the command
                refused = [ln for ln in r.err.splitlines() if ln.startswith("crashext crash: ")]
                if (exp.kind == "error" and r.rc == 2 and len(refused) == 1
                        and re.search(r"no crash could open the dump|crash \S+ \(.*\) stopped", refused[0])
                        and (case.fixture[0] != "trixie" or _crash_opens_612())):
                    # crash itself could not open what the CLI also rejects: one line
                    res[col] = Outcome("crash-error", True, refused[0], r.seconds)
                elif exp.kind == "error" and r.rc == 2 and len(refused) == 1:
                    ok = bool(re.search(exp.pattern, refused[0]))
                    res[col] = Outcome("error", ok, refused[0], r.seconds)
                elif exp.kind == "error" and r.rc != 0:
                    res[col] = Outcome("crash-error", True, r.err.strip().splitlines()[-1:] and
                                       r.err.strip().splitlines()[-1], r.seconds)
                else:
                    res[col] = Outcome("no-output", False, r.err[-400:], r.seconds)
                continue
            if exp.kind == "error":
                lines = [ln for ln in r.out.strip().splitlines() if ln.strip()]
                ok = len(lines) == 1 and bool(re.search(exp.pattern, lines[0]))
                res[col] = Outcome("error", ok, lines[0] if ok else r.out[-400:], r.seconds)
                continue
            # crash's own read diagnostics ("memcgids: compressed kdump: uncompress
            # failed: -6", printed by crash's diskdump layer, not by crashext) go to
            # the same redirected stream as --json; drop exactly those lines
            # (crash prefixes them with the current command's name or "crash")
            # crashext's own warnings share that stream inside crash as well
            # (ctx.err is crash's output there): dropped and counted the same way
            prefixes = (f"{col}: ", "crash: ", "crashext: warning: ")
            crash_lines = [ln for ln in r.out.splitlines() if ln.startswith(prefixes)]
            if crash_lines:
                r.out = "\n".join(ln for ln in r.out.splitlines() if not ln.startswith(prefixes))
            clean = strip_place(self.clean_in_crash(case.fixture, col))
            res[col] = judge(exp, Run2(r, strip_place), clean, core)
            if crash_lines:
                res[col].detail = (f"{len(crash_lines)} message lines in the output, e.g. "
                                   f"{crash_lines[0]!r}; " + res[col].detail)
                res[col].word += "+crash-msgs"
        return res

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


class Run2:
    """A crash run whose JSON is compared without its place keys."""

    def __init__(self, run, fn):
        self.rc, self.err, self.seconds, self.hung = 0, "", run.seconds, False
        self.out = run.out
        self._fn = fn

    def json(self):
        import json
        return self._fn(json.loads(self.out))
