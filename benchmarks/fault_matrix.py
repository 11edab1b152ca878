#!/usr/bin/env python3
"""Run the whole fault matrix (tests/faults/cases.py) and print it.

    python3 benchmarks/fault_matrix.py [--only CASE ...] [--jobs 2] [--docs]

Needs the real-dump fixtures (tests/vmcore/build-all; bookworm, bullseye
and trixie memcg-churn).  Prints one line per case as it goes, then the
matrix as a Markdown table; with --docs also rewrites the generated part of
docs/broken-dumps.md (between the MATRIX markers).  Exits 1 if any cell is
not what its case expects.
"""
import argparse
import os
import re
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "vmcore"))
import fixturelib  # noqa: E402
from tests.faults.cases import CASES, Env  # noqa: E402
from tests.faults.harness import COMMANDS, TIMEOUT  # noqa: E402
from tests.faults.matrix import CRASH_COLUMNS, Matrix, render_markdown  # noqa: E402

DOC = os.path.join(REPO, "docs", "broken-dumps.md")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--docs", action="store_true", help="rewrite the matrix in docs/broken-dumps.md")
    ap.add_argument("--crash", action="store_true",
                    help="run memcgids and frag inside crash (PyKdump) instead of the CLI matrix")
    a = ap.parse_args()
    cases = [c for c in CASES if not a.only or c.id in a.only]
    cols = list(COMMANDS)

    built = {}

    def fixture_dir(fx):
        # the same reuse-or-rebuild rule as the pytest fixtures (tests/conftest.py)
        if fx not in built:
            built[fx] = str(fixturelib.build_fixture(fx[0], fx[1], fixturelib.default_fixture_dir(*fx)).vmcore.parent)
        return built[fx]

    with tempfile.TemporaryDirectory(prefix="crashext-faults-") as work:
        m = Matrix(Env(fixture_dir, work), jobs=a.jobs)
        t0 = time.monotonic()
        if a.crash:
            cols = list(CRASH_COLUMNS)
            res = {}
            for case in cases:
                res[case.id] = m.crash_row(case, cols)
                print(case.id + " " + " ".join(f"{c}={o.word}{'' if o.ok else '!'}"
                                               for c, o in res[case.id].items()),
                      file=sys.stderr, flush=True)
        else:
            res = m.run(cases, cols, progress=lambda s: print(s, file=sys.stderr, flush=True))
        took = time.monotonic() - t0
    table = render_markdown(res, cols)
    bad = [(cid, col, o) for cid, r in res.items() for col, o in r.items() if not o.ok]
    where = ("inside crash 8.0.2 + PyKdump, one crash session per case, 900 s limit"
             if a.crash else f"CLI, 2 at a time, {TIMEOUT} s limit each")
    summary = (f"{len(res)} cases x {len(cols)} commands = {len(res) * len(cols)} runs in "
               f"{took:.0f} s ({where}); "
               f"{len(bad)} not as expected; slowest run "
               f"{max(o.seconds for r in res.values() for o in r.values()):.1f} s")
    print(table)
    print()
    print(summary)
    for cid, col, o in bad:
        print(f"FAIL {cid} {col}: {o.word}: {o.detail}")
    if a.docs and not a.only:
        text = open(DOC).read()
        tag = "CRASH" if a.crash else "MATRIX"
        block = f"<!-- {tag} START -->\n{table}\n\n{summary}\n<!-- {tag} END -->"
        text = re.sub(rf"<!-- {tag} START -->.*<!-- {tag} END -->", lambda _: block, text, flags=re.S)
        with open(DOC, "w") as f:
            f.write(text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
