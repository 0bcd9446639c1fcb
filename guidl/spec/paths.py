"""JSON paths into a project document: ``model.layers[4].params.out_features``.

The same paths the validator prints in its messages name a setting for a
sweep, a row of the runs' settings table and a line of a diff between two
projects. Plain dicts and lists only (a project's ``to_dict()`` or a file read
as JSON); no torch, no Qt.

A path is a key, then ``.key`` or ``[index]`` steps. A key that is not a
plain word (a block named ``"my block"``) is written as a JSON string in
brackets: ``model.blocks["my block"].layers[0]``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

from ..formatting import quote, shorten
from ..registry import (AUGMENT, DATASETS, EARLY_STOPPING, FINE_TUNE, LAYERS, LOSSES, OPTIMIZERS, REQUIRED,
                        SCHEDULERS, TASKS, Catalogue, Entry)

class PathError(ValueError):
    """A path that does not parse or does not lead to a value; the message
    names the path and what is wrong. ``path`` is the path as written."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.reason = message
        super().__init__(f"{path}: {message}" if path else message)


class _Missing:
    """The value on the side of a change where the key or item is absent."""

    _instance: "_Missing | None" = None

    def __new__(cls) -> "_Missing":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING = _Missing()

#: Keys that say where things are drawn or which file format holds them, not
#: what is trained: a diff of two projects leaves them out. ``*`` is any one
#: key, ``[*]`` any index, ``**`` any number of steps.
LAYOUT_KEYS: tuple[str, ...] = ("name", "format", "version", "**.layers[*].position")

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*|\*\*?")
_INDEX = re.compile(r"\[(\d{1,9}|\*)\]")
#: Longer paths are not a project's: refuse before walking them.
_MAX_PATH = 2000


def parse_path(text: str) -> list[str | int]:
    """``"model.layers[4].params.out_features"`` -> ``["model", "layers", 4,
    "params", "out_features"]``; PathError when it does not parse."""
    if not isinstance(text, str):
        raise PathError("", f"a path must be text such as 'training.optimizer.params.lr', got {quote(text)}")
    shown = shorten(text, 120)
    if len(text) > _MAX_PATH:
        raise PathError(shown, f"is {len(text):,} characters long; a path is at most {_MAX_PATH:,}")
    source = text.strip()
    if not source:
        raise PathError("", "the path is empty: name a setting such as 'training.optimizer.params.lr'")
    parts: list[str | int] = []
    pos = 0
    while pos < len(source):
        if source[pos] == "[":
            index = _INDEX.match(source, pos)
            if index:
                token = index.group(1)
                parts.append("[*]" if token == "*" else int(token))
                pos = index.end()
            elif source.startswith('["', pos):
                key, pos = _quoted_key(source, pos, shown)
                parts.append(key)
            else:
                raise PathError(shown, f"expected an index such as [0] at character {pos + 1}, "
                                       f"got {quote(source[pos:pos + 12])}")
        else:
            if parts:
                if source[pos] != ".":
                    raise PathError(shown, f"expected '.' or '[' at character {pos + 1}, "
                                           f"got {quote(source[pos])}")
                pos += 1
            word = _WORD.match(source, pos)
            if not word:
                got = source[pos:pos + 12]
                raise PathError(shown, f"expected a key at character {pos + 1}, "
                                       + (f"got {quote(got)}" if got else "got the end of the path"))
            parts.append(word.group(0))
            pos = word.end()
    return parts


def _quoted_key(source: str, pos: int, shown: str) -> tuple[str, int]:
    """A ``["any key"]`` step: the key as a JSON string."""
    decoder = json.JSONDecoder()
    try:
        key, end = decoder.raw_decode(source, pos + 1)
    except json.JSONDecodeError:
        raise PathError(shown, f"the quoted key at character {pos + 1} is not a JSON string") from None
    if not isinstance(key, str) or end >= len(source) or source[end] != "]":
        raise PathError(shown, f"the quoted key at character {pos + 1} must end with '\"]'")
    return key, end + 1


def format_path(parts: Sequence[str | int]) -> str:
    """The text of a path from its parts (the inverse of ``parse_path``)."""
    out = ""
    for part in parts:
        if isinstance(part, bool):
            raise TypeError(f"a path part must be a key or an index, got {part!r}")
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[*]":
            out += "[*]"
        elif _WORD.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += "[" + json.dumps(part, ensure_ascii=False) + "]"
    return out


def _parts(path: str | Sequence[str | int]) -> tuple[list[str | int], str]:
    if isinstance(path, str):
        return parse_path(path), path.strip()
    parts = list(path)
    return parts, format_path(parts)


def _owner_of_layers(parts: Sequence[str | int]) -> str:
    """``the model`` / ``the discriminator`` / ``block 'Res'`` for a layers list."""
    if list(parts) == ["model"]:
        return "the model"
    if list(parts) == ["discriminator"]:
        return "the discriminator"
    if len(parts) >= 2 and parts[-2] == "blocks":
        return f"block {quote(parts[-1])}"
    return format_path(parts) or "the document"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _step(node: Any, part: str | int, done: list[str | int], shown: str) -> Any:
    """``node[part]`` or a PathError that says why not."""
    where = format_path(done) or "the project"
    if isinstance(part, int):
        if not isinstance(node, list):
            raise PathError(shown, f"{where} is {_kind(node)}, not a list: [{part}] does not apply")
        if part >= len(node):
            if done and done[-1] == "layers":
                count = f"{len(node)} layer" + ("" if len(node) == 1 else "s")
                raise PathError(shown, f"{_owner_of_layers(done[:-1])} has {count}"
                                       + (f" (indexes 0 to {len(node) - 1})" if node else ""))
            raise PathError(shown, f"{where} holds {len(node)} item" + ("" if len(node) == 1 else "s")
                                   + f"; there is no [{part}]")
        return node[part]
    if not isinstance(node, dict):
        raise PathError(shown, f"{where} is {_kind(node)}, not an object: it has no key {quote(part)}")
    if part not in node:
        keys = ", ".join(map(str, list(node)[:12])) + (", ..." if len(node) > 12 else "")
        raise PathError(shown, f"{where} has no key {quote(part)}"
                               + (f" (its keys: {keys})" if node else " (it is empty)"))
    return node[part]


def get_path(doc: Any, path: str | Sequence[str | int]) -> Any:
    """The value at ``path``; PathError when something on the way is absent."""
    parts, shown = _parts(path)
    node = doc
    for i, part in enumerate(parts):
        node = _step(node, part, parts[:i], shown)
    return node


#: Objects in which a key may be added (each key is checked against a schema
#: when the project is read, so a typo is refused rather than kept as an
#: unknown key): parameters, and the optional settings of data and training.
_CREATABLE_IN = ("params", "augment", "early_stopping", "fine_tune")
_OPTIONAL_KEYS = {
    ("data",): ("augment", "balance"),
    ("training",): ("scheduler", "early_stopping", "grad_clip", "precision", "channels_last", "compile",
                    "discriminator_optimizer", "fine_tune"),
}


def set_path(doc: Any, path: str | Sequence[str | int], value: Any) -> None:
    """Set the value at ``path`` in place. The parent must exist; a missing
    last key is created only where a schema checks it (inside ``params`` and
    the optional settings objects, or an optional key of ``data`` and
    ``training``), so a mistyped path is refused here rather than written."""
    parts, shown = _parts(path)
    if not parts:
        raise PathError("", "the path is empty: name a setting such as 'training.optimizer.params.lr'")
    if "[*]" in parts or "*" in parts or "**" in parts:
        raise PathError(shown, "a path with wildcards names no single value to set")
    parent = doc
    for i, part in enumerate(parts[:-1]):
        parent = _step(parent, part, parts[:i], shown)
    last = parts[-1]
    if isinstance(last, int):
        _step(parent, last, parts[:-1], shown)  # raises when out of range
        parent[last] = value
        return
    if not isinstance(parent, dict):
        _step(parent, last, parts[:-1], shown)  # raises: not an object
    if last not in parent:
        creatable = (len(parts) >= 2 and parts[-2] in _CREATABLE_IN
                     or last in _OPTIONAL_KEYS.get(tuple(parts[:-1]), ()))
        if not creatable:
            _step(parent, last, parts[:-1], shown)  # raises: no such key
    parent[last] = value


def _is_scalar_list(value: list) -> bool:
    return not any(isinstance(item, dict) for item in value)


def flatten(doc: Any, prefix: Sequence[str | int] = ()) -> dict[str, Any]:
    """Every leaf by its path, in document order: objects and lists holding
    objects (layers) descend; a list of scalars (``input_shape``,
    ``kernel_size: [3, 3]``) is one leaf; an empty object has no leaves."""
    out: dict[str, Any] = {}
    for parts, value in _leaves(doc, list(prefix)):
        out[format_path(parts)] = value
    return out


def _leaves(node: Any, parts: list[str | int]) -> Iterator[tuple[list[str | int], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, parts + [key])
    elif isinstance(node, list) and not _is_scalar_list(node):
        for index, value in enumerate(node):
            yield from _leaves(value, parts + [index])
    else:
        yield parts, node


@dataclass(frozen=True)
class Change:
    """One path whose value differs; ``MISSING`` on the side that lacks it.
    A component's parameter left out on one side holds the catalogue's
    default there, flagged by ``before_default`` / ``after_default`` (the
    value it trained with, shown as ``0.001 (default)``)."""

    path: str
    before: Any
    after: Any
    before_default: bool = False
    after_default: bool = False

    def __str__(self) -> str:
        return format_change(self)


def _compile(patterns: Iterable[str]) -> list[list[str | int]]:
    return [parse_path(p) for p in patterns]


def _matches(pattern: Sequence[str | int], parts: Sequence[str | int]) -> bool:
    """Whether ``parts`` is the path ``pattern`` names (``*``: one key,
    ``[*]``: one index, ``**``: any steps)."""
    if not pattern:
        return not parts
    head = pattern[0]
    if head == "**":
        return any(_matches(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    if not parts:
        return False
    part = parts[0]
    if head == "[*]":
        ok = isinstance(part, int)
    elif head == "*":
        ok = isinstance(part, str)
    else:
        ok = head == part and isinstance(head, int) == isinstance(part, int)
    return ok and _matches(pattern[1:], parts[1:])


def diff(a: Any, b: Any, ignore: Iterable[str] = LAYOUT_KEYS) -> list[Change]:
    """What differs from ``a`` to ``b``, path by path, in document order (a's
    keys first, then those only b has). Lists of objects (layers) compare
    index by index; a list of scalars is one value. Paths matching ``ignore``
    (by default node positions, the name and the file's format and version)
    are left out. A parameter of a component of the same type on both sides
    (a layer, the loss, an optimizer, the scheduler, the task, the dataset,
    augment, early stopping, fine-tuning) left out on one side counts as its
    catalogue default there: ``lr`` absent from Adam's params is ``0.001``."""
    changes: list[Change] = []
    _diff(a, b, [], _compile(ignore), changes, roots=(a, b))
    return changes


def _same(a: Any, b: Any) -> bool:
    # 1 and 1.0 are the same setting; True and 1 are not.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) in (int, float) and type(b) in (int, float) and a == b or (
        type(a) is type(b) and a == b)


#: Where a component's parameters are, as path patterns, and the catalogue
#: its ``type`` (the dataset: its ``dataset``) is looked up in; or the one
#: entry whose parameters the object holds itself.
_COMPONENT_PARAMS: tuple[tuple[list[str | int], "Catalogue | Entry", str], ...] = tuple(
    (parse_path(pattern), where, key) for pattern, where, key in (
        ("**.layers[*].params", LAYERS, "type"),
        ("training.loss.params", LOSSES, "type"),
        ("training.optimizer.params", OPTIMIZERS, "type"),
        ("training.discriminator_optimizer.params", OPTIMIZERS, "type"),
        ("training.scheduler.params", SCHEDULERS, "type"),
        ("task.params", TASKS, "type"),
        ("data.params", DATASETS, "dataset"),
        ("data.augment", AUGMENT, ""),
        ("training.early_stopping", EARLY_STOPPING, ""),
        ("training.fine_tune", FINE_TUNE, ""),
    ))


def component_catalogue(parts: Sequence[str | int]) -> tuple["Catalogue | Entry", str] | None:
    """Where the parameters object at ``parts`` (``model.layers[0].params``,
    ``training.optimizer.params``, ``data.params``, ``data.augment`` ...)
    gets its schema: ``(catalogue, key)`` -- the owner's ``key`` field names
    the entry (``type``; the dataset: ``dataset``) -- or ``(entry, "")`` for
    an object whose parameters are the one entry's own. None elsewhere."""
    parts = list(parts)
    for pattern, where, key in _COMPONENT_PARAMS:
        if _matches(pattern, parts):
            return where, key
    return None


def component_entry(doc: Any, parts: Sequence[str | int]) -> "Entry | None":
    """The catalogue entry that owns the parameter at ``parts``
    (``...params.NAME``, ``data.augment.NAME`` ...) in ``doc``: the entry
    its component's ``type`` (``dataset``) names. None when ``parts`` is no
    component's parameter, the type is unknown, or names a block (a block's
    parameters are declared in the document, under ``blocks``)."""
    parts = list(parts)
    if len(parts) < 2 or not isinstance(parts[-1], str):
        return None
    found = component_catalogue(parts[:-1])
    if found is None:
        return None
    where, key = found
    if isinstance(where, Entry):
        return where
    owner_parts = parts[:-2] if parts[-2] == "params" else parts[:-1]
    try:
        owner = get_path(doc, owner_parts)
    except PathError:
        return None
    name = owner.get(key) if isinstance(owner, dict) else None
    return where.get(name) if isinstance(name, str) and name in where else None


def _defaults(parts: list[str | int], owners: tuple[Any, Any], roots: tuple[Any, Any]) -> dict[str, Any] | None:
    """The catalogue defaults of the parameters object at ``parts`` when both
    sides' components are of one known type (``owners``: the objects holding
    it; ``roots``: the two documents, for a block's declaration), else None:
    a type that changed shows its parameters as written. Parameters guidl
    infers from the layer before have no default here."""
    found = component_catalogue(parts)
    if found is None:
        return None
    where, key = found
    if isinstance(where, Entry):
        entry = where
    else:
        first, second = (o.get(key) if isinstance(o, dict) else None for o in owners)
        if not isinstance(first, str) or first != second:
            return None
        if first not in where:
            return _block_defaults(parts, first, roots) if where is LAYERS else None
        entry = where.get(first)
    return {p.name: p.default for p in entry.params if p.default is not REQUIRED and p.inferred is None}


def _block_defaults(parts: list[str | int], name: str, roots: tuple[Any, Any]) -> dict[str, Any] | None:
    """A block instance's parameter defaults, as the block ``name`` declares
    them on both sides (a default the two declarations disagree on is left
    out: the values as written are then compared)."""
    declared = []
    for root in roots:
        found = None
        for depth in range(len(parts) - 3, -1, -1):  # the nearest object above the layers with blocks
            try:
                node = get_path(root, parts[:depth]) if depth else root
            except PathError:
                continue
            blocks = node.get("blocks") if isinstance(node, dict) else None
            if isinstance(blocks, dict) and isinstance(blocks.get(name), dict):
                found = blocks[name].get("params")
                break
        if not isinstance(found, list):
            return None
        declared.append({p["name"]: p["default"] for p in found
                         if isinstance(p, dict) and isinstance(p.get("name"), str) and "default" in p})
    first, second = declared
    return {k: v for k, v in first.items() if k in second and _same(v, second[k])}


def _diff(a: Any, b: Any, parts: list[str | int], ignore: list[list[str | int]],
          out: list[Change], owners: tuple[Any, Any] = (None, None),
          roots: tuple[Any, Any] = (None, None)) -> None:
    if parts and any(_matches(p, parts) for p in ignore):
        return
    # An absent "params" is the same as an empty one: descend into the other side.
    if parts and parts[-1] == "params":
        if a is MISSING and isinstance(b, dict):
            a = {}
        elif b is MISSING and isinstance(a, dict):
            b = {}
    if isinstance(a, dict) and isinstance(b, dict):
        defaults = _defaults(parts, owners, roots) if parts and parts[-1] in ("params", "augment", "early_stopping",
                                                                       "fine_tune") else None
        for key in list(a) + [k for k in b if k not in a]:
            before, after = a.get(key, MISSING), b.get(key, MISSING)
            if defaults and key in defaults and (before is MISSING) != (after is MISSING):
                if not any(_matches(p, parts + [key]) for p in ignore):
                    _default_change(parts + [key], before, after, defaults[key], out)
                continue
            _diff(before, after, parts + [key], ignore, out, (a, b), roots)
        return
    if (isinstance(a, list) and isinstance(b, list)
            and not (_is_scalar_list(a) and _is_scalar_list(b))):
        for index in range(max(len(a), len(b))):
            _diff(a[index] if index < len(a) else MISSING, b[index] if index < len(b) else MISSING,
                  parts + [index], ignore, out, (a, b), roots)
        return
    if not _same(a, b):
        out.append(Change(format_path(parts), _strip(a, parts, ignore), _strip(b, parts, ignore)))


def _default_change(parts: list[str | int], before: Any, after: Any, default: Any, out: list[Change]) -> None:
    """A parameter written on one side only: the other side trains with the
    default, so it differs only when the written value is not the default."""
    missing_before = before is MISSING
    before, after = (default, after) if missing_before else (before, default)
    if not _same(before, after):
        out.append(Change(format_path(parts), before, after, before_default=missing_before,
                          after_default=not missing_before))


def _strip(value: Any, parts: list[str | int], ignore: list[list[str | int]]) -> Any:
    """``value`` without the ignored keys inside it (a whole added layer is
    shown without its canvas position)."""
    if isinstance(value, dict):
        return {k: _strip(v, parts + [k], ignore) for k, v in value.items()
                if not any(_matches(p, parts + [k]) for p in ignore)}
    if isinstance(value, list) and not _is_scalar_list(value):
        return [_strip(v, parts + [i], ignore) for i, v in enumerate(value)]
    return value


def format_value(value: Any, limit: int = 80) -> str:
    """A value as a short line: ``0.001``, ``"Adam"``, ``[1, 28, 28]``,
    ``true``, ``null``, ``(absent)``; a component such as a layer or a
    scheduler as ``StepLR(step_size=10)``."""
    return shorten(_format(value), limit)


def _format(value: Any) -> str:
    if value is MISSING:
        return "(absent)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        # A tuned value (lr 0.16973076127852832) reads as 6 significant digits
        # (0.169731), as a table would print it; one that already has at most
        # 6 stays as written (0.001, 1.0, 1e-05). JSON outputs keep it exact.
        short = format(value, ".6g")
        return repr(value) if float(short) == value else short
    if isinstance(value, int):
        return quote(value)
    if isinstance(value, str):  # cut to fit format_value's line, quotes and all (its cut would count these)
        return json.dumps(value if len(value) <= 78 else value[:76] + "…", ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format(v) for v in value) + "]"
    if isinstance(value, dict):
        type_ = value.get("type")
        params = value.get("params", {})
        if isinstance(type_, str) and isinstance(params, dict) and set(value) - {"type", "params"} <= {
                "id", "inputs", "position"}:
            return type_ + "(" + ", ".join(f"{k}={_format(v)}" for k, v in params.items()) + ")"
        return "{" + ", ".join(f"{k}: {_format(v)}" for k, v in value.items()) + "}"
    return shorten(repr(value), 80)


def format_change(change: Change) -> str:
    """``training.optimizer.params.lr 0.001 -> 0.01``; a side left at the
    catalogue default reads ``0.001 (default)``."""
    return f"{change.path} {format_side(change, 'before')} -> {format_side(change, 'after')}"


def format_side(change: Change, side: str, limit: int = 80) -> str:
    """One side (``"before"`` or ``"after"``) of a change as ``format_value``
    shows it, with `` (default)`` when that side left it at the default."""
    text = format_value(getattr(change, side), limit)
    return text + " (default)" if getattr(change, f"{side}_default") else text
