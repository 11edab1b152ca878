"""Run crashext commands on broken inputs and judge the outcome.

Every run is a subprocess with a time limit: a hang is a failed case, never
a stuck test suite.  Outputs are JSON (``--json``) so that a partial result
can be compared field by field with the same command's output on the clean
dump; the vmcore's path is the only thing normalised away.
"""

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

__all__ = ["COMMANDS", "CRASH_COMMANDS", "Run", "run_command", "run_in_crash", "run_session_in_crash", "normalise",
           "Outcome", "Expect", "judge"]

#: matrix column -> crashext arguments (before -c/-s)
COMMANDS: Dict[str, List[str]] = {
    "info": ["info", "--json"],
    "memcgids": ["memcgids", "--json"],
    "frag": ["frag", "--migratetypes", "--json"],
    "allocfail": ["allocfail", "--json"],
    "triage": ["triage", "--json"],
}

#: the columns that are crash commands too (``info`` is not: crash's banner and ``sys`` show it)
CRASH_COMMANDS = ["memcgids", "frag", "allocfail", "triage"]

#: seconds one command may take on a broken 512 MiB dump before it counts as a hang
#: (a clean run takes about 2 s)
TIMEOUT = 120

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Run:
    rc: Optional[int]          # None: killed at the time limit
    out: str
    err: str
    seconds: float

    @property
    def hung(self) -> bool:
        return self.rc is None

    def json(self) -> Any:
        return json.loads(self.out)


def run_command(column: str, vmcore: str, vmlinux: str, timeout: int = TIMEOUT) -> Run:
    argv = [sys.executable, "-m", "crashext", *COMMANDS[column], "-c", vmcore, "-s", vmlinux]
    return _run(argv, timeout)


def run_in_crash(column: str, vmcore: str, vmlinux: str, outfile: str,
                 timeout: int = TIMEOUT) -> Run:
    """The same command inside Debian's crash with PyKdump; JSON goes to ``outfile``."""
    line = " ".join(COMMANDS[column]) + f" > {outfile}"
    argv = [sys.executable, "-m", "crashext", "crash", "--timeout", str(timeout),
            vmlinux, vmcore, "--", line]
    r = _run(argv, timeout + 30)
    if not r.hung and os.path.exists(outfile):
        with open(outfile, encoding="utf-8", errors="replace") as f:
            r.out, r.err = f.read(), r.out + r.err
    return r


def run_session_in_crash(columns: List[str], vmcore: str, vmlinux: str, outdir: str,
                         timeout: int = 900) -> Dict[str, Run]:
    """Several commands in one crash session (crash starts once); each one's
    output goes to OUTDIR/crash-COLUMN.json through crash's redirection.
    A column whose file is missing gets the session's stdout+stderr as err."""
    files = {c: os.path.join(outdir, f"crash-{c}.json") for c in columns}
    for f in files.values():
        if os.path.exists(f):
            os.unlink(f)
    lines = [" ".join(COMMANDS[c]) + f" > {files[c]}" for c in columns]
    argv = [sys.executable, "-m", "crashext", "crash", "--timeout", str(timeout),
            vmlinux, vmcore, "--", *lines]
    r = _run(argv, timeout + 30)
    out = {}
    for c in columns:
        if not r.hung and os.path.exists(files[c]):
            with open(files[c], encoding="utf-8", errors="replace") as f:
                out[c] = Run(r.rc, f.read(), r.out + r.err, r.seconds)
        else:
            out[c] = Run(r.rc, "", r.out + r.err, r.seconds)
    return out


def _run(argv: List[str], timeout: int) -> Run:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           env=env, cwd=REPO, errors="replace")
    except subprocess.TimeoutExpired as exc:
        def s(x):
            return x.decode("utf-8", "replace") if isinstance(x, bytes) else (x or "")
        return Run(None, s(exc.stdout), s(exc.stderr), time.monotonic() - t0)
    return Run(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


def normalise(obj: Any, vmcore: str) -> Any:
    """``obj`` with the vmcore's path replaced by ``VMCORE`` in every string."""
    if isinstance(obj, dict):
        return {k: normalise(v, vmcore) for k, v in obj.items()}
    if isinstance(obj, list):
        return [normalise(v, vmcore) for v in obj]
    if isinstance(obj, str):
        return obj.replace(vmcore, "VMCORE")
    return obj


# ---------------------------------------------------------------- expectations

@dataclass
class Outcome:
    """What happened, in one word for the matrix, and whether it was expected."""

    word: str          # "error", "same", "partial", "HANG", "TRACEBACK", "internal", ...
    ok: bool
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Expect:
    """The outcome a case expects from one command.

    kind:
      ``error``  exit 2, nothing on stdout, exactly one line on stderr matching ``pattern``;
      ``same``   exit 0 and JSON equal to the clean dump's;
      ``check``  exit 0 and ``check(clean_json, json)`` raises no AssertionError
                 (it compares the unbroken part exactly and looks for the mark on
                 the broken object).
    """

    kind: str
    pattern: str = ""
    check: Optional[Callable[[Any, Any], None]] = None
    why: str = ""

    def word(self) -> str:
        return {"error": "error", "same": "same", "check": "partial"}[self.kind]


def error(pattern: str, why: str = "") -> Expect:
    return Expect("error", pattern=pattern, why=why)


def same(why: str = "") -> Expect:
    return Expect("same", why=why)


def check(fn: Callable[[Any, Any], None], why: str = "") -> Expect:
    return Expect("check", check=fn, why=why)


def judge(exp: Expect, run: Run, clean: Any, vmcore: str) -> Outcome:
    """Compare a run with its expectation."""
    if run.hung:
        return Outcome("HANG", False, f"killed after {run.seconds:.0f} s", run.seconds)
    if "Traceback" in run.err or "Traceback" in run.out:
        return Outcome("TRACEBACK", False, run.err.strip().splitlines()[-1:][0] if run.err.strip() else "",
                       run.seconds)
    if run.rc == 3 or "internal error" in run.err:
        return Outcome("internal", False, run.err.strip(), run.seconds)
    if exp.kind == "error":
        # warnings found while opening (e.g. "truncated vmcore") may come first;
        # the error itself is the one last line
        lines = [ln for ln in run.err.strip().splitlines() if not ln.startswith("crashext: warning: ")]
        if run.rc != 2:
            return Outcome(f"rc={run.rc}", False, f"expected exit 2; stderr {run.err.strip()[:300]!r}",
                           run.seconds)
        if run.out.strip():
            return Outcome("error+out", False, "exit 2 but something on stdout", run.seconds)
        if len(lines) != 1:
            return Outcome("error", False, f"{len(lines)} lines on stderr: {run.err[:300]!r}", run.seconds)
        if not re.search(exp.pattern, lines[0]):
            return Outcome("error", False, f"message {lines[0]!r} does not match {exp.pattern!r}",
                           run.seconds)
        return Outcome("error", True, lines[0], run.seconds)
    if run.rc != 0:
        return Outcome("error" if run.rc == 2 else f"rc={run.rc}", False,
                       f"expected a result; exit {run.rc}: {run.err.strip()[:300]}", run.seconds)
    try:
        got = normalise(run.json(), vmcore)
    except ValueError as exc:
        return Outcome("bad-json", False, str(exc), run.seconds)
    if exp.kind == "same":
        if got != clean:
            return Outcome("differs", False, first_difference(clean, got), run.seconds)
        return Outcome("same", True, "", run.seconds)
    try:
        exp.check(clean, got)
    except AssertionError as exc:
        return Outcome("partial", False, str(exc)[:500] or "check failed", run.seconds)
    return Outcome("partial", True, "", run.seconds)


def first_difference(a: Any, b: Any, path: str = "") -> str:
    """Where two JSON values first differ, as ``path: a != b``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}: only in {'clean' if k in a else 'broken'}"
            if a[k] != b[k]:
                return first_difference(a[k], b[k], f"{path}.{k}")
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items in clean, {len(b)} in broken"
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{path}[{i}]")
    return f"{path}: {str(a)[:120]} != {str(b)[:120]}"
