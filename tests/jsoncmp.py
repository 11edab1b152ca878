"""Comparing one command's JSON from two homes (standalone, inside crash, in
the container): everything must be equal except the keys that name where
the data was read."""

from typing import AbstractSet, Any

#: keys that name where the data was read; they differ by design between homes
PLACE_KEYS = frozenset({"source", "backend", "generated"})


def strip_place(obj: Any, keys: AbstractSet[str] = PLACE_KEYS) -> Any:
    """``obj`` without the ``keys`` at any depth."""
    if isinstance(obj, dict):
        return {k: strip_place(v, keys) for k, v in obj.items() if k not in keys}
    if isinstance(obj, list):
        return [strip_place(v, keys) for v in obj]
    return obj
