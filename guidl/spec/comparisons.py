"""The fair races the tutorials describe: the same model trained with each
optimizer, or with each classic activation.

A variant is the whole project with only the optimizer (or only the hidden
activations) changed: the same seed, so the same initial weights, the same
data order and the same validation split. ``engine.sweep`` trains the
variants as a grid over their labels and the window overlays their curves.

No torch, no Qt.
"""

from __future__ import annotations

import copy
from typing import Any, Iterator

from ..registry import LAYERS, OPTIMIZERS
from .errors import ProjectError
from .project import Project
from .sweep import SweepConfig, default_metric

#: The optimizers the tutorials compare, each at torch's defaults: only the
#: project's learning rate and weight decay are carried over, so no setting
#: of one optimizer (Adam's betas, SGD's momentum) leaks into another.
OPTIMIZER_RACE: list[tuple[str, dict]] = [
    ("SGD", {"type": "SGD", "params": {}}),
    ("SGD with momentum", {"type": "SGD", "params": {"momentum": 0.9}}),
    ("Adagrad", {"type": "Adagrad", "params": {}}),
    ("RMSprop", {"type": "RMSprop", "params": {}}),
    ("Adam", {"type": "Adam", "params": {}}),
]
#: The settings every raced optimizer keeps from the project's.
SHARED_OPTIMIZER_PARAMS = ("lr", "weight_decay")

#: The classic activations, each without parameters.
ACTIVATION_RACE = ("Sigmoid", "Tanh", "ReLU")
#: Activations that turn scores into probabilities: never hidden activations.
_PROBABILITIES = ("Softmax", "LogSoftmax")
#: Layers that only reshape, pool, drop or activate: an activation followed by
#: nothing else is the model's output range (an autoencoder's Sigmoid, a
#: generator's Tanh), not a hidden activation.
_PASSIVE_CATEGORIES = ("Activation", "Reshape", "Pooling")
_PASSIVE_LAYERS = ("Dropout", "Dropout1d", "Dropout2d", "Identity")
#: What a replaced activation keeps: its place in the graph and on the canvas.
_KEPT_KEYS = ("id", "inputs", "position")

KINDS = ("optimizers", "activations")


def _valid(doc: dict, label: str) -> dict:
    try:
        Project.from_dict(doc)
    except ProjectError as error:
        raise ValueError(f"the {label!r} variant is not a valid project: {error}") from None
    return doc


def optimizer_variants(project: Project) -> dict[str, dict]:
    """Label -> the whole project dict with ``training.optimizer`` replaced
    by each of ``OPTIMIZER_RACE``, at the project's learning rate (and weight
    decay). Everything else, the seed included, is the project's."""
    current = project.training.optimizer
    resolved = OPTIMIZERS.get(current.type).resolve(current.params) if current.type in OPTIMIZERS \
        else dict(current.params)
    variants: dict[str, dict] = {}
    for label, optimizer in OPTIMIZER_RACE:
        entry = OPTIMIZERS.get(optimizer["type"])
        # The rate always (the new optimizer's default would change it); the
        # weight decay when the project has one (an unset 0 stays unset).
        params = {key: copy.deepcopy(resolved[key]) for key in SHARED_OPTIMIZER_PARAMS
                  if key in resolved and key in entry.param_names and (key == "lr" or resolved[key])}
        params.update(copy.deepcopy(optimizer["params"]))
        doc = project.to_dict()
        doc["training"]["optimizer"] = {"type": optimizer["type"], "params": params}
        variants[label] = _valid(doc, label)
    return variants


def _networks(doc: dict) -> Iterator[tuple[str, dict]]:
    for name in ("model", "discriminator"):
        if isinstance(doc.get(name), dict):
            yield name, doc[name]


def _is_activation(layer: dict) -> bool:
    type_ = layer.get("type")
    return (isinstance(type_, str) and type_ in LAYERS and LAYERS.get(type_).category == "Activation"
            and type_ not in _PROBABILITIES)


def _is_passive(layer: dict) -> bool:
    type_ = layer.get("type")
    if not isinstance(type_, str) or type_ not in LAYERS:
        return False  # a block, or a layer the catalogue does not know: it computes
    return type_ in _PASSIVE_LAYERS or LAYERS.get(type_).category in _PASSIVE_CATEGORIES


def hidden_activations(project: Project | dict) -> list[tuple]:
    """The paths (as parts) of the layers the activation race replaces: every
    activation of the catalogue in each network and in its blocks, except
    Softmax / LogSoftmax and a network's output activation (one with only
    reshaping, pooling, dropout or other activations after it)."""
    doc = project.to_dict() if isinstance(project, Project) else project
    found: list[tuple] = []
    for name, network in _networks(doc):
        layers = network.get("layers") or []
        for index, layer in enumerate(layers):
            if not isinstance(layer, dict) or not _is_activation(layer):
                continue
            if all(isinstance(later, dict) and _is_passive(later) for later in layers[index + 1:]):
                continue  # the output's range, not a hidden activation
            found.append((name, "layers", index))
        # A block's activations feed the layers after the block: all hidden.
        for block_name, block in (network.get("blocks") or {}).items():
            for index, layer in enumerate(block.get("layers") or []):
                if isinstance(layer, dict) and _is_activation(layer):
                    found.append((name, "blocks", block_name, "layers", index))
    return found


def activation_variants(project: Project) -> dict[str, dict]:
    """Label -> the whole project dict with every hidden activation (see
    ``hidden_activations``) replaced by Sigmoid, Tanh or ReLU without
    parameters. ValueError when the model has none to replace."""
    doc = project.to_dict()
    places = hidden_activations(doc)
    if not places:
        raise ValueError("the model has no hidden activation to compare (Softmax, LogSoftmax and the "
                         "output's activation are kept): add ReLU between its layers first")
    variants: dict[str, dict] = {}
    for label in ACTIVATION_RACE:
        variant = copy.deepcopy(doc)
        for parts in places:
            holder: Any = variant
            for part in parts[:-1]:
                holder = holder[part]
            old = holder[parts[-1]]
            holder[parts[-1]] = {"type": label, **{k: copy.deepcopy(old[k]) for k in _KEPT_KEYS if k in old}}
        variants[label] = _valid(variant, label)
    return variants


def comparison_config(project: Project, kind: str) -> SweepConfig:
    """A sweep that trains each variant once, as a grid over their labels,
    without pruning (a race is run to the end), on the project's main figure."""
    if kind == "optimizers":
        variants = optimizer_variants(project)
    elif kind == "activations":
        variants = activation_variants(project)
    else:
        raise ValueError(f"unknown comparison {kind!r}: use {' or '.join(KINDS)}")
    return SweepConfig(params=[], strategy="grid", trials=len(variants), metric=default_metric(project),
                       pruner=False, variants=variants, compare=kind)
