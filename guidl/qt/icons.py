"""Icons from ``guidl.resources`` (our own SVGs)."""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtGui import QIcon

from ..resources import path


@lru_cache(maxsize=None)
def icon(name: str) -> QIcon:
    """``icon("train")`` is ``resources/icons/train.svg``; ``icon("guidl")`` the app icon."""
    file = "guidl.svg" if name == "guidl" else f"icons/{name}.svg"
    try:
        return QIcon(str(path(file)))
    except FileNotFoundError:
        return QIcon()


def category_icon(category: str) -> QIcon:
    return icon(f"layer-{category.lower()}")
