"""Progress reports on stderr for walks that take more than a second."""

import sys
import time
from typing import Optional, TextIO

__all__ = ["Progress"]


class Progress:
    """Count work done and report it on stderr once it has run for ``delay`` s.

    Quiet for short walks; on a terminal the line is rewritten in place,
    elsewhere a line is written at most every ``interval`` seconds.
    """

    def __init__(self, label: str, total: Optional[int] = None,
                 stream: Optional[TextIO] = None, delay: float = 1.0,
                 interval: float = 2.0, enabled: bool = True) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.delay = delay
        self.interval = interval
        self.enabled = enabled
        self.count = 0
        self._start = time.monotonic()
        self._last = 0.0
        self._shown = False
        try:
            self._tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self._tty = False

    def step(self, n: int = 1) -> None:
        self.count += n
        if not self.enabled or self.count & 0x3FF:
            return
        now = time.monotonic()
        if now - self._start < self.delay:
            return
        if now - self._last < (0.2 if self._tty else self.interval):
            return
        self._last = now
        self._write(now)

    def _write(self, now: float, final: bool = False) -> None:
        total = f"/{self.total}" if self.total else ""
        text = f"{self.label}: {self.count}{total} ({now - self._start:.1f}s)"
        if self._tty:
            self.stream.write("\r" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown:
            self._write(time.monotonic(), final=True)
