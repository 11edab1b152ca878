"""The literal text any match of a regular expression must contain.

A line that holds none of a pattern's required literals cannot match it, so
a byte scan can skip such lines without decoding them
(:func:`crashext.sources.logscan.gated_kernel_log` does, for the knowledge
base's log regexes).  Found from Python's own parse of the pattern: a run of
literal characters in the pattern's top-level sequence, a group's
requirement, or one requirement per branch of an alternation (any one of
them then suffices).  Where a pattern has no such literal, None: the caller
must look at every line.

The literals are searched in raw bytes, the pattern runs on the decoded
line, so only characters that are the same in both are used:

- no U+FFFD (a decoding of bad bytes), no tab (rsyslog writes ``#011``,
  which the normaliser turns into a tab), no newline;
- under ``re.IGNORECASE`` only ASCII, matched ASCII-caselessly, and not
  ``i``, ``k`` or ``s``: Python's Unicode case folding matches them with
  ``İ``/``ı``, ``K`` (Kelvin) and ``ſ``, which an ASCII-caseless byte
  search would miss.
"""

from typing import List, Optional, Tuple

try:  # Python 3.11+
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _p  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python < 3.11 (inside older crash builds)
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

__all__ = ["required_literals"]

#: Literals shorter than this are too common to be worth a search.
MIN_LEN = 3

_REPEATS = tuple(getattr(_c, name) for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
                 if hasattr(_c, name))
_ATOMIC = getattr(_c, "ATOMIC_GROUP", None)


def _allowed(ch: str, caseless: bool) -> bool:
    if ch in "\t\n\r\ufffd":
        return False
    if caseless:
        return ord(ch) < 128 and ch.lower() not in "iks"
    return True


Lit = Tuple[str, bool]   # a literal, and whether it came from a caseless part


def _best(cands: List[List[Lit]]) -> Optional[List[Lit]]:
    """The requirement whose shortest literal is longest (None if none qualifies)."""
    good = [c for c in cands if c and min(len(x) for x, _ in c) >= MIN_LEN]
    if not good:
        return None
    return max(good, key=lambda c: (min(len(x) for x, _ in c), -len(c)))


def _seq(items, caseless: bool) -> Optional[List[Lit]]:
    cands: List[List[Lit]] = []
    run = ""
    for op, av in items:
        if op is _c.LITERAL and _allowed(chr(av), caseless):
            run += chr(av)
            continue
        if run:
            cands.append([(run, caseless)])
            run = ""
        if op is _c.SUBPATTERN:
            add_flags = av[1] if len(av) > 3 else 0
            sub = _seq(av[-1], caseless or bool(add_flags & _c.SRE_FLAG_IGNORECASE))
            if sub:
                cands.append(sub)
        elif op is _c.BRANCH:
            alts = [_seq(b, caseless) for b in av[1]]
            if alts and all(alts):
                cands.append([x for a in alts for x in a])  # type: ignore[union-attr]
        elif op in _REPEATS and av[0] >= 1:
            sub = _seq(av[2], caseless)
            if sub:
                cands.append(sub)
        elif _ATOMIC is not None and op is _ATOMIC:
            sub = _seq(av, caseless)
            if sub:
                cands.append(sub)
        # anything else (classes, any, anchors, lookarounds, references)
        # requires no fixed text
    if run:
        cands.append([(run, caseless)])
    return _best(cands)


def required_literals(pattern: str) -> Optional[Tuple[Tuple[str, ...], bool]]:
    """(literals, caseless): every match of ``pattern`` contains at least one
    of ``literals`` (ASCII-caselessly if ``caseless``); None when no literal
    of :data:`MIN_LEN` characters is required, or the pattern does not parse."""
    try:
        tree = _p.parse(pattern)
    except Exception:  # re.error, or a parser of another Python version
        return None
    state = getattr(tree, "state", None) or getattr(tree, "pattern", None)
    flags = getattr(state, "flags", 0)
    caseless = bool(flags & _c.SRE_FLAG_IGNORECASE)
    got = _seq(list(tree), caseless)
    if got is None:
        return None
    # one literal from a caseless part (a local (?i:...)) makes the search
    # caseless for all of them: for the others that finds more lines, never fewer
    return tuple(dict.fromkeys(x for x, _ in got)), any(c for _, c in got)
