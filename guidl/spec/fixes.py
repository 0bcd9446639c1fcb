"""Fixes that can be applied: a problem's proposed edit as data.

The engine finds a problem (a Linear of 128 outputs for two classes, a
residual whose shortcut has 16 channels where the main path has 32) and
proposes the edit that fixes it; the window applies it with one click as one
undo step. The edit is plain data here, so the engine proposes it without
knowing the window and the window applies it without knowing torch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .graph import fresh_id

if TYPE_CHECKING:  # pragma: no cover
    from .project import Layer, Project


@dataclass(frozen=True)
class SetParam:
    """Set (or, with ``value`` None and ``remove``, remove) one parameter of a layer."""

    index: int
    name: str
    value: Any = None
    remove: bool = False
    #: The block whose layer it is, or None for the model's own layers.
    block: str | None = None


@dataclass(frozen=True)
class InsertLayer:
    """Insert a layer in front of layer ``index``.

    Without ``input_item`` the new layer takes what layer ``index`` took and
    layer ``index`` takes the new one. With ``input_item`` (a merge's
    branch), only that input of layer ``index`` goes through the new layer:
    "insert Conv2d on the shortcut"."""

    index: int
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    input_item: int | None = None
    block: str | None = None

    def __hash__(self) -> int:  # params is a dict: hash what identifies the fix
        return hash((self.index, self.type, self.input_item, self.block))


Fix = SetParam | InsertLayer


def _layers(project: "Project", block: str | None) -> list["Layer"]:
    if block is None:
        return project.model.layers
    return project.model.blocks[block].layers


def apply_fix(project: "Project", fix: Fix) -> None:
    """Apply ``fix`` to ``project`` in place (``KeyError``/``IndexError`` when
    it no longer fits the project)."""
    from .project import Layer

    layers = _layers(project, fix.block)
    target = layers[fix.index]
    if isinstance(fix, SetParam):
        if fix.remove:
            target.params.pop(fix.name, None)
        else:
            target.params[fix.name] = copy.deepcopy(fix.value)
        return
    taken = {layer.id for layer in layers if layer.id}
    new = Layer(fix.type, copy.deepcopy(fix.params), fresh_id(taken, fix.type))
    index = fix.index
    if fix.input_item is not None:
        if target.inputs is None:
            raise IndexError("the layer has no inputs list")
        source = target.inputs[fix.input_item]
        new.inputs = [source]
        target.inputs = list(target.inputs)
        target.inputs[fix.input_item] = new.id
        layers.insert(index, new)
        return
    if target.inputs is not None:
        new.inputs = list(target.inputs)
        target.inputs = [new.id]
    layers.insert(index, new)
