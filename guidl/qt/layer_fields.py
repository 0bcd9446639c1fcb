"""The id and inputs fields of a layer's properties, shared by the Model
tab's form and the block editor's: each checks what is typed against the
list of layers it edits (the model's, or one block's) and applies it only
when it is valid and done. With them, how the layer trains: frozen, and
its learning-rate multiplier."""

from __future__ import annotations

import copy
from typing import Callable, Sequence

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QCheckBox

from ..spec.edits import layer_option_problem
from ..spec.graph import id_problem, resolve_inputs
from .param_form import TextField

INPUTS_TIP = ("The ids of the layers it takes, separated by commas (\"input\": the model's input); "
              "empty: the layer above it. A merge (Add, Multiply, Concat) takes two or more.")
ID_TIP = ("The layer's name in the graph: other layers name it in their inputs, and the built "
          "model's module is called so. Optional.")


FROZEN_TIP = ("Its parameters do not train (BatchNorm inside it keeps its running statistics). "
              "A fine-tune schedule (Train tab) can unfreeze it after the head has trained.")
LR_MULTIPLIER_TIP = ("Its parameters learn at the optimizer's learning rate times this "
                     "(discriminative learning rates: e.g. 0.1 for a pretrained backbone). "
                     "Empty: 1. To stop it learning, freeze it instead.")


def parse_lr_multiplier(text: str) -> tuple[object, str | None]:
    """The learning-rate multiplier typed (empty: 1), or why it is refused."""
    text = text.strip()
    if not text:
        return 1.0, None
    try:
        value = float(text)
    except ValueError:
        return None, "a number, such as 0.1 (empty: 1)"
    problem = layer_option_problem("lr_multiplier", value)
    if problem and value == 0:
        problem += "; to stop the layer learning, freeze it"
    return (None, problem) if problem else (value, None)


def parse_id(layers: Sequence, index: int, text: str) -> tuple[object, str | None]:
    """The id typed for layer ``index`` of ``layers`` (None: none), or why it is refused."""
    value = text.strip()
    if not 0 <= index < len(layers):
        return None, None
    old = layers[index].id
    if not value:
        users = [i for i, layer in enumerate(layers) if old and layer.inputs and old in layer.inputs]
        if users:
            return None, f"layer {users[0]} names it in its inputs: it needs an id"
        return None, None
    problem = id_problem(value)
    if problem:
        return None, f"the id {problem}"
    other = next((i for i, layer in enumerate(layers) if i != index and layer.id == value), None)
    if other is not None:
        return None, f"{value!r} is already the id of layer {other}"
    return value, None


def parse_inputs(layers: Sequence, index: int, text: str) -> tuple[object, str | None]:
    """The ids typed as layer ``index``'s inputs (None: the layer above it), or why they are refused."""
    if not 0 <= index < len(layers):
        return None, None
    ids = [name.strip() for name in text.replace(";", ",").split(",")]
    if not any(ids):
        ids = None
    elif not all(ids):
        return None, "an empty id between two commas"
    trial = list(layers)
    trial[index] = copy.copy(layers[index])
    trial[index].inputs = ids
    problem = resolve_inputs(trial).problem_of(index)
    if problem is not None:
        return None, problem.message + (f"; {problem.fix}" if problem.fix else "")
    return ids, None


class WiringFields:
    """``id_field`` and ``inputs_field`` (``TextField``s) for the selected layer
    of a list: ``layers()`` gives the list, ``index()`` the selected layer;
    ``rename(index, id)`` and ``set_inputs(index, ids)`` apply a valid value.
    ``key`` prefixes the fields' keys among the document's field problems."""

    def __init__(self, document, key: str, layers: Callable[[], Sequence], index: Callable[[], int],
                 rename: Callable[[int, object], None], set_inputs: Callable[[int, object], None],
                 set_option: Callable[[int, str, object], None] | None = None):
        self.layers, self.index = layers, index
        self.id_field = TextField(document, f"{key} · id", lambda text: parse_id(layers(), index(), text),
                                  lambda value: rename(index(), value))
        self.id_field.edit.setToolTip(ID_TIP)
        self.id_field.edit.setPlaceholderText("none")
        self.inputs_field = TextField(document, f"{key} · inputs",
                                      lambda text: parse_inputs(layers(), index(), text),
                                      lambda ids: set_inputs(index(), ids))
        self.inputs_field.edit.setToolTip(INPUTS_TIP)
        self.inputs_field.edit.setPlaceholderText("the layer above it")
        #: How the layer trains (``set_option(index, key, value)`` applies it; None: not shown).
        self.frozen = QCheckBox("its parameters do not train")
        self.frozen.setToolTip(FROZEN_TIP)
        self.lr_field = TextField(document, f"{key} · lr_multiplier", parse_lr_multiplier,
                                  lambda value: set_option and set_option(index(), "lr_multiplier", value))
        self.lr_field.edit.setToolTip(LR_MULTIPLIER_TIP)
        self.lr_field.edit.setPlaceholderText("1 (the optimizer's rate)")
        if set_option is not None:
            self.frozen.toggled.connect(lambda on: set_option(index(), "frozen", on))

    def show(self, layer) -> None:
        self.id_field.show(layer.id or "")
        self.inputs_field.show(", ".join(layer.inputs) if layer.inputs is not None else "")
        with QSignalBlocker(self.frozen):
            self.frozen.setChecked(layer.frozen)
        self.lr_field.show("" if layer.lr_multiplier == 1 else f"{layer.lr_multiplier:g}")

    def fields(self) -> tuple:
        """The text fields (their keys are the document's field problems)."""
        return self.id_field, self.inputs_field, self.lr_field

    def discard(self, document) -> None:
        """Another layer: what was typed for the last one is dropped."""
        for field in self.fields():
            field.discard()
            document.set_field_problem(field.key, None)
