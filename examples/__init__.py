"""The example projects, installed as ``guidl.examples`` so that File > New
from Example works in any install."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

DEFAULT = "mnist_cnn"


def example_path(name: str) -> Path:
    resource = files(__name__).joinpath(f"{name}.guidl.json")
    if not resource.is_file():
        raise FileNotFoundError(f"no example {name!r}")
    return Path(str(resource))


def examples() -> list[tuple[str, str]]:
    """``(name, title)`` of every example, the default first."""
    found = []
    for resource in files(__name__).iterdir():
        if resource.name.endswith(".guidl.json"):
            name = resource.name[: -len(".guidl.json")]
            title = json.loads(resource.read_text(encoding="utf-8")).get("name", name)
            found.append((name, title))
    return sorted(found, key=lambda item: (item[0] != DEFAULT, item[1]))
