"""Numbers as people read them: sizes, shapes, durations.

Pure functions with no heavy imports, shared by the engine, the command line
and the window (which shows them before PyTorch has finished loading).
"""

from __future__ import annotations

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
