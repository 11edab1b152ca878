"""Units as crashext writes them in text: ``1.5 KiB``, ``4 MiB``."""

from typing import Optional

__all__ = ["human_bytes"]

_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]


def human_bytes(n: Optional[float]) -> str:
    """``1536`` -> ``1.5 KiB``; whole numbers of a unit print without decimals."""
    if n is None:
        return "-"
    n = float(n)
    i = 0
    while abs(n) >= 1024 and i < len(_UNITS) - 1:
        n /= 1024
        i += 1
    if n == int(n):
        return f"{int(n)} {_UNITS[i]}"
    return f"{n:.1f} {_UNITS[i]}"
