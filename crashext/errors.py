"""The exception types crashext raises.

Everything a user can cause (a missing file, a dump that does not match its
vmlinux, a page the dump does not contain) is a :class:`CrashextError`; the
front ends print its message as one line and never a traceback.
"""

__all__ = [
    "CrashextError",
    "TargetError",
    "ReadError",
    "MissingSymbolError",
    "InputError",
]


class CrashextError(Exception):
    """An error with a message meant for the user, printed as one line."""

    def one_line(self) -> str:
        text = " ".join(str(self).split())
        return text or self.__class__.__name__


class TargetError(CrashextError):
    """The dump, vmlinux or live kernel cannot be opened or do not match."""


class ReadError(CrashextError):
    """Kernel memory could not be read (filtered or truncated dump, bad pointer)."""

    def __init__(self, message: str, address: "int | None" = None) -> None:
        super().__init__(message)
        self.address = address


class MissingSymbolError(CrashextError):
    """A symbol, type, member or enumerator this analysis needs is absent."""


class InputError(CrashextError):
    """Text input (a log, a /proc snapshot) cannot be used."""
