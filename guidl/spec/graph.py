"""The wiring of a model: which layer takes which outputs, and blocks.

A model is a flat list of layers in topological order, as Keras's functional
models are. A layer takes the outputs named by its ``inputs`` (ids of layers
listed before it, or ``"input"``), else the output of the layer listed before
it. This module resolves that wiring to indexes and says, for each layer,
what is wrong with it; it knows nothing of shapes (the engine checks those).

No torch and no Qt here: the file format's checks load in milliseconds.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..formatting import quote
from ..registry import LAYERS, REQUIRED, Entry, Param

if TYPE_CHECKING:  # pragma: no cover
    from .project import Block, Layer, Model

#: The name of the model's (or a block's) input in ``inputs``.
INPUT = "input"
#: Index that stands for the input in resolved wiring.
INPUT_INDEX = -1
MAX_REPEAT = 1000
MAX_BLOCK_DEPTH = 16
#: Block definitions one project may hold (the checks walk them recursively).
MAX_BLOCKS = 256
#: Layers a model may hold once every block use is unrolled (each repetition
#: of each block, blocks inside blocks included): analysing that many takes
#: about a second, and a block repeated inside a repeated block cannot make
#: the window wait for minutes.
MAX_EXPANDED_LAYERS = 20_000

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_BLOCK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_REFERENCE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]{0,63})$")

#: Names every PyTorch module already uses as attributes: a layer's id names
#: its module in the built model (and in the Python export), so these cannot
#: be ids. A test checks this covers ``dir(nn.Sequential())``.
RESERVED_IDS = frozenset({
    "T_destination", "add_module", "append", "apply", "bfloat16", "buffers", "call_super_init",
    "children", "clear", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extend",
    "extra_repr", "float", "forward", "get_buffer", "get_extra_state", "get_parameter",
    "get_submodule", "half", "insert", "ipu", "items", "keys", "load_state_dict", "modules", "mtia",
    "named_buffers", "named_children", "named_modules", "named_parameters", "parameters", "pop",
    "register_backward_hook", "register_buffer", "register_forward_hook",
    "register_forward_pre_hook", "register_full_backward_hook", "register_full_backward_pre_hook",
    "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook", "register_module",
    "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook",
    "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to",
    "to_empty", "train", "training", "type", "update", "values", "xpu", "zero_grad",
    # guidl's own attributes of a graph module
    "plan", "output_key", "keys_in_order", "inputs",
})


def id_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a layer's id, or None."""
    if not isinstance(value, str):
        return f"must be a string, got {quote(value, 40)}"
    if not _ID.match(value):
        return (f"must start with a letter and hold only letters, digits and underscores "
                f"(at most 64), got {quote(value, 40)}")
    if value == INPUT:
        return f"{INPUT!r} names the model's input; choose another id"
    if keyword.iskeyword(value) or value in RESERVED_IDS:
        return f"{value!r} is a name Python or PyTorch modules use; choose another (e.g. {value + '_1'!r})"
    return None


def block_name_problem(value: Any) -> str | None:
    """Why ``value`` cannot name a block, or None."""
    if not isinstance(value, str) or not _BLOCK_NAME.match(value):
        return (f"a block's name must start with a letter and hold only letters, digits and "
                f"underscores (at most 64), got {quote(value, 40)}")
    if value in LAYERS:
        return f"{value!r} is a layer type of the catalogue; name the block otherwise (e.g. {value + 'Block'!r})"
    if keyword.iskeyword(value):
        return f"{value!r} is a Python keyword; choose another name"
    return None


def reference(value: Any) -> str | None:
    """The block parameter ``value`` refers to (``"$channels"`` -> ``"channels"``), or None."""
    if isinstance(value, str):
        match = _REFERENCE.match(value)
        if match:
            return match.group(1)
    return None


def substitute(params: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with every ``"$name"`` replaced by ``values[name]`` (left as
    it is when ``values`` lacks the name)."""
    out = {}
    for key, value in params.items():
        name = reference(value)
        out[key] = values[name] if name is not None and name in values else value
    return out


def block_params(block: "Block") -> tuple[Param, ...]:
    """The block's parameters as schema objects (those that cannot be read are
    left out; the reader reports them)."""
    out = []
    for config in block.params:
        try:
            param = Param.from_config(config)
        except (TypeError, ValueError, KeyError):
            continue
        out.append(param)
    return tuple(out)


def block_entry(name: str, block: "Block") -> Entry:
    """A block as a catalogue entry: forms, checks and labels treat a block
    use as any layer."""
    params = block_params(block)
    key = [p.name for p in params][:2]
    return Entry(name, "Blocks", block.help or f"The block {name} ({len(block.layers)} layers).",
                 params, {"input_ranks": None, "input": "any", "key_params": key, "block": True})


def entry_for(model: "Model", type_: str) -> Entry:
    """The catalogue entry of a layer type, or the entry of the model's block
    of that name; ``UnknownNameError`` for neither."""
    if type_ in model.blocks and type_ not in LAYERS:
        return block_entry(type_, model.blocks[type_])
    return LAYERS.get(type_)


def is_merge(type_: str) -> bool:
    return type_ in LAYERS and bool(LAYERS.get(type_).info.get("merge"))


@dataclass
class WiringProblem:
    index: int
    #: ``"id"`` or ``"inputs"`` (with ``item`` the position in the list) or ``""``.
    key: str
    message: str
    fix: str | None = None
    item: int | None = None


@dataclass
class Wiring:
    """Resolved wiring of one list of layers."""

    #: ``inputs[i]``: the indexes layer ``i`` takes (``INPUT_INDEX`` for the input).
    inputs: list[list[int]] = field(default_factory=list)
    #: ``consumers[i]``: the layers that take layer ``i``'s output.
    consumers: list[list[int]] = field(default_factory=list)
    problems: list[WiringProblem] = field(default_factory=list)
    ids: dict[str, int] = field(default_factory=dict)

    def problem_of(self, index: int) -> WiringProblem | None:
        return next((p for p in self.problems if p.index == index), None)

    def unused(self) -> list[int]:
        """Layers (not the last) whose output no layer takes."""
        last = len(self.inputs) - 1
        return [i for i, users in enumerate(self.consumers) if not users and i != last]


def resolve_inputs(layers: Sequence["Layer"]) -> Wiring:
    """The wiring of ``layers`` and what is wrong with it, layer by layer."""
    wiring = Wiring()
    ids: dict[str, int] = {}
    for index, layer in enumerate(layers):
        wired: list[int] = []
        layer_id = layer.id
        if layer_id is not None:
            problem = id_problem(layer_id)
            if problem:
                wiring.problems.append(WiringProblem(index, "id", problem))
            elif layer_id in ids:
                wiring.problems.append(WiringProblem(
                    index, "id", f"{quote(layer_id)} is already the id of layer {ids[layer_id]}; "
                                 "ids must be unique", f"rename it (e.g. {layer_id + '_2'!r})"))
        inputs = layer.inputs
        if inputs is None:
            wired = [index - 1 if index else INPUT_INDEX]
        elif not isinstance(inputs, list) or not all(isinstance(name, str) for name in inputs):
            wiring.problems.append(WiringProblem(
                index, "inputs", f"must be a list of layer ids (strings), got {quote(inputs, 60)}",
                "write the ids as strings, such as [\"conv1\", \"input\"]"))
        else:
            for item, name in enumerate(inputs):
                if name == INPUT:
                    wired.append(INPUT_INDEX)
                elif name == layer_id:
                    wiring.problems.append(WiringProblem(
                        index, "inputs", f"layer {index} names itself ({quote(name)}) as its input",
                        "name a layer listed before it", item))
                elif name in ids:
                    wired.append(ids[name])
                elif any(later.id == name for later in layers[index + 1:]):
                    later = next(i for i in range(index + 1, len(layers)) if layers[i].id == name)
                    wiring.problems.append(WiringProblem(
                        index, "inputs", f"{quote(name)} is layer {later}, listed after layer {index}: "
                                         "a layer may only take layers listed before it",
                        f"move layer {later} before layer {index}", item))
                else:
                    known = ", ".join(repr(k) for k in [INPUT, *ids][:8])
                    wiring.problems.append(WiringProblem(
                        index, "inputs", f"unknown id {quote(name)}; the layers before it are {known}",
                        None, item))
            if len(set(wired)) != len(wired):
                wiring.problems.append(WiringProblem(
                    index, "inputs", "names the same layer twice", "remove the repeated id"))
        if layer_id is not None and id_problem(layer_id) is None and layer_id not in ids:
            ids[layer_id] = index
        if wiring.problem_of(index) is None and layer.type in LAYERS:
            merge = is_merge(layer.type)
            count = len(wired)
            if merge and count < 2:
                wiring.problems.append(WiringProblem(
                    index, "inputs", f"{layer.type} merges two or more inputs but has {count}",
                    "list the layers to merge in inputs, e.g. [\"conv2\", \"input\"]"))
            elif not merge and count != 1:
                wiring.problems.append(WiringProblem(
                    index, "inputs", f"{layer.type} takes one input but has {count}",
                    "merge them first with Add or Concat" if count > 1 else "name one layer in inputs"))
        elif wiring.problem_of(index) is None and len(wired) != 1:
            wiring.problems.append(WiringProblem(
                index, "inputs", f"a block takes one input but has {len(wired)}",
                "merge them first with Add or Concat" if wired else "name one layer in inputs"))
        wiring.inputs.append(wired)
    wiring.ids = ids
    wiring.consumers = [[] for _ in layers]
    for index, wired in enumerate(wiring.inputs):
        for source in wired:
            if source >= 0:
                wiring.consumers[source].append(index)
    return wiring


def is_chain(model: "Model") -> bool:
    """True when every layer takes the one before it, no layer is a merge and
    no block is used: the model builds as an ``nn.Sequential``, exactly as
    before graphs existed."""
    if model.blocks and any(layer.type in model.blocks for layer in model.layers):
        return False
    wiring = resolve_inputs(model.layers)
    return all(wired == [index - 1 if index else INPUT_INDEX]
               for index, wired in enumerate(wiring.inputs)) and not any(
        is_merge(layer.type) for layer in model.layers)


def uses_graph_features(model: "Model") -> bool:
    """Whether the model needs format version 2 (blocks, inputs, merges, positions)."""
    return bool(model.blocks) or any(
        layer.inputs is not None or layer.position is not None or layer.repeat != 1
        or is_merge(layer.type) for layer in model.layers)


def _snake(type_: str) -> str:
    """``BatchNorm2d`` -> ``batch_norm2d``, ``ReLU`` -> ``relu``, ``LeakyReLU``
    -> ``leaky_relu``: a word starts where a capital begins a lower-case run."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", type_).lower()


def fresh_id(taken: Iterable[str], type_: str) -> str:
    """A new id for a layer of ``type_`` not in ``taken``: ``conv2d_1``,
    ``conv2d_2``... (Keras names layers the same way)."""
    taken = set(taken)
    base = _snake(type_) if _ID.match(_snake(type_)) else "layer"
    number = 1
    while f"{base}_{number}" in taken:
        number += 1
    return f"{base}_{number}"


def module_keys(layers: Sequence["Layer"]) -> list[str]:
    """The name of each layer's module in a built graph: its id, else
    ``<type>_<index>`` (made unique against the ids), so ``state_dict`` keys
    are the same on every build of the same file."""
    taken = {layer.id for layer in layers if layer.id}
    keys = []
    for index, layer in enumerate(layers):
        if layer.id and id_problem(layer.id) is None:
            keys.append(layer.id)
            continue
        key = f"{_snake(layer.type) if _ID.match(_snake(layer.type) or '') else 'layer'}_{index}"
        while key in taken:
            key += "_"
        taken.add(key)
        keys.append(key)
    return keys


def block_uses(model: "Model", block: str) -> list[int]:
    """Indexes of the model's layers that use the block ``block``."""
    return [i for i, layer in enumerate(model.layers) if layer.type == block]


def block_cycle(blocks: Mapping[str, "Block"], name: str) -> list[str] | None:
    """A chain of block names that leads from ``name`` back to itself, or None."""
    # Each block is explored once: whether ``name`` can be reached from it does
    # not depend on the way there (walking every path is exponential when
    # blocks use the next block several times).
    explored: set[str] = set()

    def visit(current: str, path: list[str]) -> list[str] | None:
        explored.add(current)
        for layer in blocks[current].layers:
            if layer.type in blocks:
                if layer.type == name:
                    return path + [name]
                if layer.type not in explored:
                    found = visit(layer.type, path + [layer.type])
                    if found:
                        return found
        return None

    return visit(name, [name]) if name in blocks else None


def block_size(blocks: Mapping[str, "Block"], name: str,
               sizes: dict[str, int] | None = None) -> int:
    """How many layers one application of the block ``name`` unrolls to (its
    layers, and for each block use inside it, ``repeat`` times that block's
    size), at most ``MAX_EXPANDED_LAYERS + 1``; ``sizes`` remembers blocks
    already counted. A block that contains itself counts once (it is refused
    elsewhere)."""
    sizes = {} if sizes is None else sizes
    limit = MAX_EXPANDED_LAYERS + 1

    def count(current: str, path: tuple[str, ...]) -> int:
        if current in sizes:
            return sizes[current]
        total = 0
        for layer in blocks[current].layers:
            total += 1
            if layer.type in blocks and layer.type not in LAYERS and layer.type not in path:
                repeat = layer.repeat if isinstance(layer.repeat, int) and layer.repeat > 0 else 1
                total += repeat * count(layer.type, path + (layer.type,))
            if total >= limit:
                total = limit
                break
        sizes[current] = total
        return total

    return count(name, (name,)) if name in blocks else 0


def deepest_nesting(blocks: Mapping[str, "Block"], name: str) -> list[str]:
    """The longest chain of blocks inside blocks from ``name`` (``[name]`` for
    a block that uses none), cut after ``MAX_BLOCK_DEPTH + 1`` names; a cycle
    ends the chain (it is refused elsewhere)."""
    longest: dict[str, list[str]] = {}

    def visit(current: str, path: tuple[str, ...]) -> list[str]:
        if current in longest:
            return longest[current]
        best: list[str] = []
        for layer in blocks[current].layers:
            if layer.type in blocks and layer.type not in LAYERS and layer.type not in path:
                chain = visit(layer.type, path + (layer.type,))
                if len(chain) > len(best):
                    best = chain
        longest[current] = [current, *best][:MAX_BLOCK_DEPTH + 1]
        return longest[current]

    return visit(name, (name,)) if name in blocks else []


def default_values(params: Iterable[Param]) -> dict[str, Any]:
    return {p.name: p.default for p in params if p.default is not REQUIRED}
