"""Numbers as people read them: sizes, shapes, durations.

Pure functions with no heavy imports, shared by the engine, the command line
and the window (which shows them before PyTorch has finished loading).
"""

from __future__ import annotations

import re
from typing import Sequence


def format_bytes(count: float) -> str:
    """``2.65 MB``: binary multiples, as Keras and most memory figures use."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1024 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.2f} {unit}"
        count /= 1024
    raise AssertionError  # pragma: no cover


def format_shape(shape: Sequence[int] | None) -> str:
    if shape is None:
        return "?"
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


#: How many characters of a user's value a message quotes: a 30 MB string in a
#: project file must not come back as a 30 MB error line.
QUOTE_LIMIT = 200


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for a message, cut after about ``limit`` characters with
    the full length said: ``'aaaa'… (31,457,280 characters)``."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}… ({len(value):,} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        # repr() of a huge integer is slow, and refused past 4,300 digits.
        digits = int(value.bit_length() * 0.30103) + 1
        return str(value) if digits < limit else f"an integer of about {digits:,} digits"
    return shorten(repr(value), limit)


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` as it is, or its first ``limit`` characters and how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def ellipsize(text: str, limit: int) -> str:
    """``text`` as it is, or cut to ``limit`` characters in all, the last an
    ellipsis (a table cell, an axis label: a fixed width)."""
    return text if len(text) <= limit else text[:max(limit - 1, 0)] + "\u2026"


_TORCH_SOURCE = re.compile(r"\s*\(Triggered internally at [^)]*\)\.?")
_PACKAGE = re.compile(r"[\\/](?:site|dist)-packages[\\/]([A-Za-z_][A-Za-z0-9_]*)")


def warning_text(message: object, category: type | None = None, filename: str | None = None) -> str:
    """A warning as one short line without source paths: ``warning from
    torch: Using a target size ...``. torch appends where in its C++ sources
    it was raised; Python's own format adds the file and line; neither helps
    a person."""
    lines = str(message).strip().splitlines()
    text = _TORCH_SOURCE.sub("", lines[0] if lines else "").strip()
    if not text:
        text = category.__name__ if category is not None else "a warning"
    found = _PACKAGE.search(filename or "")
    source = found.group(1) if found else None
    return shorten(f"warning from {source}: {text}" if source else text)


def first_line(error: BaseException | str, limit: int = QUOTE_LIMIT) -> str:
    """The first line of an error's message, shortened (its type's name when
    it says nothing): what a message quotes of a library's error, whose text
    may carry a user's value of any length."""
    lines = str(error).strip().splitlines()
    if lines:
        return shorten(lines[0].strip(), limit)
    return type(error).__name__ if isinstance(error, BaseException) else ""


#: Characters that steer a terminal or the text's direction instead of showing: escapes
#: and other C0/C1 controls, line and paragraph separators, surrogates, bidi controls.
_UNSHOWN_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069")


def printable(text: str) -> str:
    """``text`` safe to print as one line on a terminal: each control
    character written as a Python literal writes it (``\\x1b``, ``\\n``,
    ``\\u202e``). What a runs folder or a study's storage holds may come from
    someone else: an escape in it must not clear the screen, recolour it or
    reorder the line."""
    import unicodedata

    return "".join(char.encode("unicode_escape", "backslashreplace").decode("ascii")
                   if unicodedata.category(char) in _UNSHOWN_CATEGORIES or char in _BIDI_CONTROLS
                   else char for char in text)
