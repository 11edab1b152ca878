"""``--watch SECONDS``: sample a running system and print what changed.

The commands give :func:`watch` a ``sample()`` that returns a flat, ordered
``{metric: value}`` dict (e.g. ``"dying memcgs": 6`` or
``"Node 0 Normal highest free order": 9``).  The first sample is printed in
full, each later one as the metrics that changed since the previous one
(``old -> new (+delta)``), each line stamped with the local time.  With
``json=True`` every sample is one JSON object per line (JSON Lines:
``time``, ``sample``, ``values``, ``changes``).

``count`` bounds the number of samples (tests, cron); without it the loop
runs until Ctrl-C, which ends it cleanly with a last line saying how many
samples were taken.  A sample that fails with a CrashextError (a file that
vanished, memory that changed under a walk) is reported on one line and the
loop goes on; only the first sample's failure ends it.
"""

import json
import time
from typing import Any, Callable, Dict, Optional, TextIO

from .errors import CrashextError, InputError
from .render import plural

__all__ = ["watch", "check_interval", "add_arguments", "live_stamp", "stamp_line"]

Sample = Dict[str, Any]


def add_arguments(parser) -> None:
    """``--watch SECONDS`` and ``--count N``, as every command that watches takes them."""
    parser.add_argument("--watch", type=float, metavar="SECONDS",
                        help="live only: print the changes every SECONDS")
    parser.add_argument("--count", type=int, metavar="N",
                        help="with --watch: stop after N samples")


def check_interval(seconds: Optional[float], count: Optional[int]) -> None:
    """One-line errors for a bad ``--watch`` / ``--count``."""
    if seconds is not None and not seconds > 0:
        raise InputError(f"--watch {seconds}: the interval must be a positive number of seconds")
    if count is not None:
        if seconds is None:
            raise InputError("--count needs --watch SECONDS")
        if count < 1:
            raise InputError(f"--count {count}: must be at least 1")


def _stamp(now: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(now))


def _delta(old: Any, new: Any) -> str:
    if isinstance(old, (int, float)) and isinstance(new, (int, float)) \
            and not isinstance(old, bool) and not isinstance(new, bool):
        d = new - old
        return f" ({'+' if d > 0 else ''}{d})"
    return ""


def _show(v: Any) -> str:
    return "-" if v is None else str(v)


def watch(sample: Callable[[], Sample], seconds: float, out: TextIO,
          count: Optional[int] = None, header: str = "", json_lines: bool = False,
          err: Optional[TextIO] = None, clock: Callable[[], float] = time.time,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Sample every ``seconds`` and print the changes; returns the exit code."""
    prev: Optional[Sample] = None
    n = 0
    next_at = clock()
    try:
        while count is None or n < count:
            now = clock()
            try:
                cur = sample()
            except CrashextError as exc:
                if prev is None:
                    raise
                if err is not None:
                    err.write(f"crashext: {_stamp(now)} sample {n + 1} failed: {exc.one_line()}\n")
                    err.flush()
                cur = None
            n += 1
            if cur is not None:
                changes = {}
                if prev is not None:
                    for k, v in cur.items():
                        if prev.get(k) != v:
                            changes[k] = [prev.get(k), v]
                    for k in prev:
                        if k not in cur:
                            changes[k] = [prev[k], None]
                if json_lines:
                    out.write(json.dumps({
                        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
                        "sample": n, "values": cur, "changes": changes}, sort_keys=True) + "\n")
                elif prev is None:
                    out.write(f"{_stamp(now)} watching {header} every {seconds:g} s"
                              + (f", {count} samples" if count else ", Ctrl-C to stop") + "\n")
                    for k, v in cur.items():
                        out.write(f"{_stamp(now)}   {k}: {_show(v)}\n")
                elif not changes:
                    out.write(f"{_stamp(now)} no change\n")
                else:
                    for k, (a, b) in changes.items():
                        out.write(f"{_stamp(now)} {k}: {_show(a)} -> {_show(b)}{_delta(a, b)}\n")
                out.flush()
                prev = cur
            if count is not None and n >= count:
                break
            next_at += seconds
            delay = next_at - clock()
            if delay > 0:
                sleep(delay)
            else:  # a sample took longer than the interval: do not pile up
                next_at = clock()
    except KeyboardInterrupt:
        if not json_lines:
            out.write(f"{_stamp(clock())} stopped after {plural(n, 'sample')}\n")
            out.flush()
    return 0


def live_stamp(target) -> Dict[str, Any]:
    """Where and when a live kernel was read (for a report's ``live`` key)."""
    now = time.time()
    return {"source": target.source,
            "read_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now))}


def stamp_line(live: Dict[str, Any]) -> str:
    return f"{live['source']}, read at {live['read_at']} (values change while read)"
