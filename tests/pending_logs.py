"""Real logs of tests/data/logs whose shapes the log parsers do not read yet.

Each name maps to what its shape needs.  Tests that run over every log mark
these ``xfail(strict=True)``: when a parser learns the shape the test passes,
strict xfail turns that pass into a failure, and the name is removed here.
What an engineer reads in each log is in tests/data/logs/SOURCES.md.
"""

from typing import Dict, Iterable, List

import pytest

__all__ = ["UNREAD", "UNCLASSIFIED", "params"]

#: not taken for a kernel log at all (triage stops with "no kernel log lines")
UNREAD: Dict[str, str] = {}

#: read, but the headline does not name the event's class
UNCLASSIFIED: Dict[str, str] = {}


def params(names: Iterable[str], *pending: Dict[str, str]) -> List:
    """``names`` as test parameters, those in any of the ``pending`` maps
    marked xfail(strict=True) with the map's reason."""
    out = []
    for n in names:
        why = next((p[n] for p in pending if n in p), None)
        out.append(n if why is None else
                   pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=why)))
    return out
