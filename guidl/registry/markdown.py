"""README tables generated from the catalogues.

``python -m guidl.registry.markdown README.md`` rewrites the blocks between
``<!-- registry:NAME -->`` and ``<!-- /registry:NAME -->``; a test checks that
README is up to date, so README and registry cannot disagree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from . import CATALOGUES
from .schema import REQUIRED, Entry, Param

_BLOCK = re.compile(r"(<!-- registry:(\w+) -->\n)(.*?)(<!-- /registry:\2 -->)", re.S)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _param(p: Param) -> str:
    if p.inferred is not None:
        return f"_{p.name}_ (inferred)"
    if p.default is REQUIRED:
        return f"**{p.name}**"
    return f"{p.name}={_value(p.default)}"


def _row(entry: Entry, with_category: bool) -> str:
    params = ", ".join(_param(p) for p in entry.params) or "-"
    cells = [f"`{entry.name}`"] + ([entry.category] if with_category else []) + [params, entry.help]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def table(family: str) -> str:
    catalogue = CATALOGUES[family]
    with_category = family == "layer"
    header = ["Name"] + (["Category"] if with_category else []) + ["Parameters", "What it does"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [_row(entry, with_category) for entry in catalogue]
    return "\n".join(lines) + "\n"


def update(text: str) -> str:
    """``text`` with every registry block regenerated."""
    return _BLOCK.sub(lambda m: m.group(1) + table(m.group(2)) + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "README.md")
    text = path.read_text(encoding="utf-8")
    new = update(text)
    if new != text:
        path.write_text(new, encoding="utf-8")
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
