"""Icons, the application icon and the desktop entry, installed as
``guidl.resources``. Read them with ``path(name)``; nothing here imports Qt."""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path


def path(name: str) -> Path:
    """The file ``name`` (``"guidl.svg"``, ``"icons/layer.svg"``) on disk."""
    resource = files(__name__).joinpath(name)
    if not resource.is_file():
        raise FileNotFoundError(f"guidl resource {name!r} is not installed")
    with as_file(resource) as real:
        return Path(real)
