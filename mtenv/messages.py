"""Error messages about values that may come from anyone: a scenario file, a trace, a command
line, a plug-in. Every layer words them alike, in one short line.

* :func:`excerpt`: a bad value, quoted in at most :data:`MAX_EXCERPT_CHARS` characters;
* :func:`listed`: a list of names, bounded;
* :func:`unknown_name`: a name that is not among the known ones, with the closest suggested.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable

MAX_EXCERPT_CHARS = 40
"""Longest excerpt of a bad value quoted in an error message."""

_MATCHED_CHARS = 100
"""Only this much of an unknown name is compared with the known ones (difflib's time grows
with the product of the lengths)."""


def excerpt(value: object) -> str:
    """``repr(value)`` for an error message: at most :data:`MAX_EXCERPT_CHARS` characters on one
    line, built with :mod:`reprlib` so that a huge or deeply nested value costs no more to show
    than a small one."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"  # repr of a huge int is slow, or fails
    text = _REPR.repr(value)
    if len(text) > MAX_EXCERPT_CHARS:
        text = text[: MAX_EXCERPT_CHARS - 3] + "..."
    return text


def listed(names: list[str]) -> str:
    """Names for a one-line message, at most twelve: a long one is cut like :func:`excerpt`, and
    one with a control character (a line break would split the message) is quoted and escaped."""
    shown = [n if isinstance(n, str) and n.isprintable() else repr(n) for n in names[:12]]
    return ", ".join(excerpt(n)[1:-1] if len(n) > MAX_EXCERPT_CHARS else n for n in shown) + (
        ", ..." if len(names) > 12 else ""
    )


def unknown_name(what: str, value: object, known: Iterable[str]) -> str:
    """``unknown model 'x' (known: a, b); did you mean 'a'?``, the value quoted by
    :func:`excerpt` and up to three close known names suggested."""
    known = list(known)
    text = value[:_MATCHED_CHARS] if isinstance(value, str) else excerpt(value)
    close = difflib.get_close_matches(text, known, n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"unknown {what} {excerpt(value)} (known: {', '.join(known)}){hint}"


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = MAX_EXCERPT_CHARS
_REPR.maxlong = MAX_EXCERPT_CHARS
_REPR.maxother = MAX_EXCERPT_CHARS
for _attr in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset"):
    setattr(_REPR, _attr, 6)
