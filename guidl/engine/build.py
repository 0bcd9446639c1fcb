"""Project -> ``nn.Module``, with shapes and parameter counts per layer.

``analyze`` walks the stack on the ``meta`` device: every layer is built and
run on a tensor that has a shape but no storage, so shape inference is instant
and allocates nothing even for a model far too big to train. Each problem is
reported on its layer with what the layer received, what it needs, and the fix
where there is an obvious one. ``build`` then constructs the real module.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import json
import math
import threading
import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..formatting import first_line, format_bytes, format_shape, quote, warning_text
from ..registry import LAYERS, OPTIMIZERS, Entry
from ..registry.backbones import BACKBONES
from ..registry.schema import UnknownNameError
from ..spec import Block, Component, Layer, Model, Problem, Project, ProjectError
from ..spec.fixes import Fix, InsertLayer, SetParam
from ..spec.graph import (
    INPUT_INDEX, MAX_BLOCK_DEPTH, MAX_EXPANDED_LAYERS, block_entry, block_size, default_values,
    is_chain, module_keys, reference, resolve_inputs, substitute,
)
from . import memory
from .memory import physical_memory_bytes
from .graph import GraphModel
from .modules import MERGE_CLASSES, OWN_LAYERS, Recurrent

BYTES_PER_PARAM = 4  # float32


def _backbone(name: str, weights: str = "none", output: str = "pooled",
              weights_file: str | None = None) -> nn.Module:
    from .backbones import Backbone
    return Backbone(name, weights=weights, output=output, weights_file=weights_file)


#: ``type`` -> constructor. Only names from the layer catalogue are here (a test
#: checks both agree), so a project file can never reach any other callable.
LAYER_FACTORIES: dict[str, Callable[..., nn.Module]] = {
    **{name: getattr(nn, name) for name in LAYERS.names()
       if name not in ("RNN", "LSTM", "GRU") and name not in MERGE_CLASSES and name not in OWN_LAYERS
       and name not in BACKBONES},
    "RNN": partial(Recurrent, "RNN"),
    "LSTM": partial(Recurrent, "LSTM"),
    "GRU": partial(Recurrent, "GRU"),
    **OWN_LAYERS,
    **MERGE_CLASSES,
    **{name: partial(_backbone, name, weights=BACKBONES[name]["default_weights"]) for name in BACKBONES},
}

#: How an inferred parameter follows from the shape of one input sample.
INFER: dict[str, Callable[[Sequence[int]], Any]] = {
    "channels": lambda shape: shape[0],
    "features": lambda shape: shape[-1],
    "time": lambda shape: shape[-2],
    "normalized_shape": lambda shape: [shape[-1]],
}

_TORCH_DTYPES = {"float32": torch.float32, "int64": torch.int64}


def available_memory_bytes(device: "str | torch.device" = "cpu") -> int:
    """Memory a training on ``device`` can still take: the GPU's free memory
    for CUDA, else ``memory.available_memory_bytes`` (what the system reports
    available, within the container's cgroup limit)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return memory.available_memory_bytes()


@dataclass
class TrainingMemory:
    """About how much memory training a model takes, part by part (bytes)."""

    weights: int
    gradients: int
    optimizer_state: int
    optimizer: str
    activations: int
    batch_size: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer_state + self.activations

    def __str__(self) -> str:
        parts = [f"weights {format_bytes(self.weights)}", f"gradients {format_bytes(self.gradients)}"]
        if self.optimizer_state:
            parts.append(f"{self.optimizer} state {format_bytes(self.optimizer_state)}")
        parts.append(f"activations {format_bytes(self.activations)} for a batch of {self.batch_size}")
        return f"training needs about {format_bytes(self.total)} ({', '.join(parts)})"


def training_memory(report: "ModelReport", optimizer: Component, batch_size: int,
                    trainable: int | None = None) -> TrainingMemory:
    """Weights, their gradients, the optimizer's state (copies of the weights:
    two for Adam, one for SGD with momentum...) and the outputs of every
    layer for one batch, which backpropagation keeps. ``trainable``: the
    parameters that train at the most (the report's, unless a fine-tune
    schedule unfreezes more later)."""
    entry = OPTIMIZERS.get(optimizer.type)
    params = entry.resolve(optimizer.params)
    copies = entry.info.get("state", 0) + sum(
        count for name, count in entry.info.get("state_if", {}).items() if params.get(name))
    # A given ``trainable`` is a schedule's: the layers it unfreezes keep their activations then.
    activations = report.activation_bytes(batch_size, all_trainable=trainable is not None)
    trainable = (report.trainable_params if trainable is None else trainable) * BYTES_PER_PARAM
    return TrainingMemory(weights=report.weight_bytes, gradients=trainable,
                          optimizer_state=copies * trainable, optimizer=entry.name,
                          activations=activations, batch_size=batch_size)


def check_training_memory(project: Project, report: "ModelReport", device: "str | torch.device | None" = None,
                          available: int | None = None) -> Problem | None:
    """A problem when training the model would take more memory than
    ``device`` has available (``available`` overrides what is measured).
    Without ``device``, the one the project's ``auto`` (or its available
    choice) trains on; ``guidl summary`` shows the problem as a warning and
    training refuses it."""
    if not report.ok:
        return None
    if device is None:
        name = project.training.device
        cuda = torch.cuda.is_available() and (name == "auto" or name.startswith("cuda"))
        device = name if cuda and name != "auto" else "cuda" if cuda else "cpu"
    # A fine-tune schedule unfreezes frozen layers later: counted as if all trained.
    needed = training_memory(report, project.training.optimizer, project.data.batch_size,
                             report.total_params if project.training.fine_tune is not None else None)
    device = torch.device(device)
    free = available_memory_bytes(device) if available is None else available
    if needed.total <= free:
        return None
    where = "on this machine" if device.type == "cpu" else f"on {device}"
    fixes = ["make the model smaller"]
    if needed.activations > needed.weights:
        fixes.insert(0, "lower data.batch_size")
    if needed.optimizer_state:
        fixes.append("use an optimizer that keeps less state (SGD without momentum keeps none)")
    return Problem("model", f"{needed}; {format_bytes(free)} is available {where}: "
                            + ", or ".join(fixes))


@dataclass
class LayerReport:
    """What guidl knows about one layer of the stack."""

    index: int
    type: str
    #: Every constructor argument, defaults and inferred sizes filled in.
    params: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    output_shape: tuple[int, ...] | None = None
    param_count: int = 0
    trainable_count: int = 0
    error: str | None = None
    fix: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: The edit that fixes ``error`` (a ``spec.fixes`` fix), when one applies with a click.
    fix_action: Fix | None = None
    #: The layer's id in the project, and its module's name in a built graph.
    id: str | None = None
    key: str = ""
    #: Indexes of the layers it takes (-1: the model's input) and of those taking it.
    inputs: list[int] = field(default_factory=list)
    consumers: list[int] = field(default_factory=list)
    #: The shape of each input (``input_shape`` is the first's).
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)
    output_dtype: str = "float32"
    #: For a block use: how many times it repeats, and the report of each repetition.
    repeat: int = 1
    blocks: list["ModelReport"] = field(default_factory=list)
    #: Bytes per sample that training keeps inside the layer besides its output
    #: (a pretrained backbone's inner activations; 0 for a plain layer).
    inner_activation_bytes: int = 0

    @property
    def label(self) -> str:
        """``Conv2d(32, 3)``: the type and its key parameters (``×2`` for a
        block repeated twice)."""
        if self.type in LAYERS:
            keys = list(LAYERS.get(self.type).info.get("key_params", []))
        else:  # a block: its first parameters
            keys = list(self.params)[:2]
        keys = [k for k in keys if self.params.get(k) is not None]
        text = self.type
        if keys:
            text += "(" + ", ".join(_short_value(self.params[k]) for k in keys) + ")"
        return text + (f" ×{self.repeat}" if self.repeat != 1 else "")

    @property
    def is_block(self) -> bool:
        return self.type not in LAYERS

    @property
    def message(self) -> str | None:
        if self.error is None:
            return None
        return self.error + (f"; fix: {self.fix}" if self.fix else "")


@dataclass
class ModelReport:
    input_shape: tuple[int, ...] | None
    input_dtype: str
    layers: list[LayerReport]
    #: A problem with the model as a whole (no input shape, too big...).
    model_errors: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.model_errors and all(layer.error is None for layer in self.layers)

    @property
    def total_params(self) -> int:
        return sum(layer.param_count for layer in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(layer.trainable_count for layer in self.layers)

    @property
    def frozen_params(self) -> int:
        """Parameters of frozen layers (they do not train)."""
        return self.total_params - self.trainable_params

    @property
    def output_shape(self) -> tuple[int, ...] | None:
        if not self.layers:
            return self.input_shape
        return self.layers[-1].output_shape

    @property
    def weight_bytes(self) -> int:
        return self.total_params * BYTES_PER_PARAM

    def activation_bytes(self, batch_size: int = 1, *, all_trainable: bool = False) -> int:
        """Bytes of the outputs of all layers for one forward pass, plus what
        a backbone keeps inside (what backpropagation keeps), a rough guide
        to training memory. A layer no gradient reaches (frozen, and only
        frozen or weightless layers before it) keeps nothing inside; one
        with a gradient is counted as if trainable, though backpropagating
        through a frozen layer keeps less. ``all_trainable``: count every
        layer as trainable (a fine-tune schedule unfreezes them later)."""
        total = 0 if self.input_shape is None else math.prod(self.input_shape) * 4
        gradient: list[bool] = []  # per layer: whether a gradient reaches it
        for layer in self.layers:
            into = all_trainable or any(gradient[i] for i in layer.inputs if 0 <= i < len(gradient))
            gradient.append(into or layer.trainable_count > 0)
            if layer.blocks:
                # A repetition's gradient flows back into the one before: counted as reached.
                reached = into or layer.trainable_count > 0
                total += sum(block.activation_bytes(all_trainable=reached) - (
                    0 if block.input_shape is None else math.prod(block.input_shape) * 4)
                    for block in layer.blocks)
            elif layer.output_shape is not None:
                total += math.prod(layer.output_shape) * 4
                if gradient[-1]:
                    total += layer.inner_activation_bytes
        return total * batch_size

    def all_layers(self):
        """Every layer, the layers inside block uses included (each repetition)."""
        for layer in self.layers:
            yield layer
            for block in layer.blocks:
                yield from block.all_layers()

    @property
    def is_graph(self) -> bool:
        """Whether the model builds as a graph (else an ``nn.Sequential``)."""
        return any(layer.is_block or layer.inputs != [layer.index - 1 if layer.index else -1]
                   or LAYERS.get(layer.type).info.get("merge") for layer in self.layers)

    def unused(self) -> list[LayerReport]:
        """Layers (not the last) whose output no layer takes."""
        return [layer for layer in self.layers[:-1] if not layer.consumers]

    def problems(self) -> list[Problem]:
        found = list(self.model_errors)
        for layer in self.layers:
            if layer.error is not None:
                # The id names the layer as the user wrote it (the index shifts with edits).
                name = f"{layer.id!r} ({layer.type})" if layer.id else layer.type
                found.append(Problem(f"model.layers[{layer.index}]", f"{name}: {layer.message}"))
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "input_dtype": self.input_dtype,
            "output_shape": None if self.output_shape is None else list(self.output_shape),
            "layers": [
                {
                    "index": layer.index,
                    "id": layer.id,
                    "type": layer.type,
                    "label": layer.label,
                    "inputs": [("input" if i < 0 else i) for i in layer.inputs],
                    "params": layer.params,
                    "output_shape": None if layer.output_shape is None else list(layer.output_shape),
                    "param_count": layer.param_count,
                    "error": layer.message,
                    "warnings": layer.warnings,
                }
                for layer in self.layers
            ],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.frozen_params,
            "frozen_params": self.frozen_params,
            "weight_bytes": self.weight_bytes,
            "problems": [str(p) for p in self.problems()],
        }


def _short_value(value: Any) -> str:
    if isinstance(value, list):
        return "x".join(str(v) for v in value) if all(isinstance(v, int) for v in value) else str(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _ranks_text(entry: Entry, ranks: Sequence[int]) -> str:
    images = (entry.category in ("Convolution", "Pooling", "Normalization")
              or entry.name.endswith(("1d", "2d", "3d")))  # Dropout1d: channels, not time
    names = {
        1: "(features,)",
        2: "(channels, length)" if images else "(time, features)",
        3: "(channels, height, width)",
        4: "(channels, depth, height, width)",
    }
    return " or ".join(names.get(r, f"{r} dimensions") for r in ranks)


def _shape_fix(index: int, entry: Entry, shape: tuple[int, ...], ranks: Sequence[int]) -> str | None:
    here = f"layer {index} ({entry.name})"
    rank = len(shape)
    if all(r < rank for r in ranks):
        if entry.name.endswith("1d") and rank == 3:
            return f"use {entry.name[:-2]}2d for (channels, height, width) inputs"
        if 1 in ranks:
            return f"insert Flatten before {here}"
        return None
    if all(r > rank for r in ranks):
        if 3 in ranks and rank == 1:
            side = math.isqrt(shape[0])
            if side * side == shape[0]:
                return (f"insert Unflatten(dim=1, unflattened_size=[1, {side}, {side}]) before {here}"
                        " to make an image of the vector")
            return f"insert Unflatten before {here} to shape the vector into (channels, height, width)"
        if 3 in ranks and rank == 2 and entry.name.endswith("2d"):
            return f"use {entry.name[:-2]}1d for (channels, length) inputs"
        if 4 in ranks and rank == 3 and entry.name.endswith("3d"):
            return (f"use {entry.name[:-2]}2d for (channels, height, width) inputs, or insert "
                    f"Unflatten before {here} to make a volume (channels, depth, height, width)")
        if entry.category == "Sequence" and rank == 1:
            return ("give the model sequences: set input_shape to (time, features), "
                    "or start with Embedding on token ids")
        if rank == 1:
            return f"insert Unflatten before {here} to add a dimension"
    return None


def _shape_fix_action(index: int, fix: str | None) -> Fix | None:
    """The fixes of ``_shape_fix`` that insert a layer, as an edit to apply."""
    if fix is None or not fix.startswith("insert "):
        return None
    if fix.startswith("insert Flatten before"):
        return InsertLayer(index, "Flatten")
    if fix.startswith("insert Unflatten(dim=1, unflattened_size=["):
        sizes = fix.split("[", 1)[1].split("]", 1)[0]
        return InsertLayer(index, "Unflatten", {"dim": 1, "unflattened_size": [int(v) for v in sizes.split(",")]})
    return None


def _kernel_problem(entry: Entry, params: dict[str, Any], shape: tuple[int, ...]) -> str | None:
    """A clear message when a window does not fit its input (torch's is terse)."""
    dims = entry.info.get("spatial")
    if not dims or entry.name.startswith("ConvTranspose") or len(shape) != dims + 1:
        return None

    def per_dim(name: str, default: int) -> list[int]:
        value = params.get(name, default)
        if value is None:
            value = params["kernel_size"]
        return list(value) if isinstance(value, list) else [value] * dims

    padding = params.get("padding", 0)
    if isinstance(padding, str):
        return None
    kernel = per_dim("kernel_size", 1)
    dilation = per_dim("dilation", 1)
    pads = per_dim("padding", 0)
    spatial = shape[1:]
    for k, d, p, size in zip(kernel, dilation, pads, spatial):
        reach = d * (k - 1) + 1
        if reach > size + 2 * p:
            kernel_text = "x".join(map(str, kernel)) if len(set(kernel)) > 1 else str(kernel[0])
            input_text = " x ".join(map(str, spatial))
            if d > 1:
                kernel_text += f" (dilated to {reach})"
            return (f"kernel_size {kernel_text} is larger than its input of {input_text}"
                    + (f" padded by {p}" if p else ""))
    return None


def _divisors(number: int) -> str:
    """``"1, 2, 3, 4, 6 or 12"``: the divisors of ``number`` (the first few of many)."""
    found = [str(d) for d in range(1, min(number, 10_000)) if number % d == 0]
    found = (found[:6] + ["..."] if len(found) > 7 else found) + [str(number)]
    return ", ".join(found[:-1]) + (" or " if len(found) > 1 else "") + found[-1]


def _size_problem(entry: Entry, params: dict[str, Any],
                  shape: tuple[int, ...]) -> tuple[str, str] | None:
    """``(problem, fix)`` for a size that must divide or match the input's,
    which torch reports tersely (an assertion, a message without the fix)."""
    heads = {"MultiheadAttention": ("embed_dim", "num_heads"),
             "TransformerEncoderLayer": ("d_model", "nhead")}.get(entry.name)
    if heads:
        size, count = params.get(heads[0]), params.get(heads[1])
        if isinstance(size, int) and isinstance(count, int) and count > 0 and size % count:
            return (f"{heads[0]} {size} (the features of its input) is not divisible by "
                    f"{heads[1]} {count}: each head takes an equal share of the features",
                    f"set {heads[1]} to a divisor of {size}: {_divisors(size)}")
    if entry.name == "PReLU":
        count = params.get("num_parameters")
        if isinstance(count, int) and count not in (1, shape[0]):
            return (f"num_parameters {count} must be 1 (one slope) or the input's channels "
                    f"({shape[0]}, one slope each)",
                    f"set num_parameters to {shape[0]} or 1")
    if entry.name == "PixelShuffle":
        factor = params.get("upscale_factor")
        if isinstance(factor, int) and factor > 0 and shape[0] % (factor * factor):
            return (f"its input's {shape[0]} channels are not a multiple of upscale_factor^2 = "
                    f"{factor * factor}: each output pixel block takes {factor * factor} channels",
                    f"give the layer before a multiple of {factor * factor} channels, e.g. "
                    f"Conv2d(out_channels={factor * factor * max(1, shape[0] // (factor * factor))})")
    if entry.name == "InstanceNorm2d" and math.prod(shape[1:]) == 1:
        return (f"normalises each channel of each image over its pixels, but its input "
                f"{format_shape(shape)} has a single pixel",
                "move it before the layer that shrinks the image to 1 x 1")
    return None


def _param_problem(entry: Entry, params: dict[str, Any],
                   shape: tuple[int, ...]) -> tuple[str, str] | None:
    """``(problem, fix)`` for parameters torch checks only in a real forward
    pass or with an assertion: the meta-device forward lets them through, so
    ``summary`` would accept a model that training rejects."""
    if entry.info.get("backbone"):
        from .backbones import input_problem
        return input_problem(entry.name, params, shape)
    found = _size_problem(entry, params, shape)
    if found:
        return found
    if entry.name == "Embedding":
        index, size = params.get("padding_idx"), params.get("num_embeddings")
        if isinstance(index, int) and isinstance(size, int) and not -size <= index < size:
            return (f"padding_idx must be in [-num_embeddings, num_embeddings) = [{-size}, {size}), "
                    f"got {index}", f"set padding_idx below {size} (num_embeddings) or remove it")
    if entry.name in ("Softmax", "LogSoftmax"):
        dim, rank = params.get("dim"), len(shape) + 1  # the batch counts
        if isinstance(dim, int) and not -rank <= dim < rank:
            return (f"dim {dim} is out of range for its input (batch, {', '.join(map(str, shape))}): "
                    f"dim must be in [{-rank}, {rank - 1}] (0 is the batch)",
                    "set dim to -1 (the last dimension)")
    if entry.name.startswith("ConvTranspose"):
        dims = entry.info.get("spatial") or 1

        def per_dim(name: str) -> list[int]:
            value = params.get(name, 1 if name != "output_padding" else 0)
            return list(value) if isinstance(value, (list, tuple)) else [value] * dims

        for extra, stride, dilation in zip(per_dim("output_padding"), per_dim("stride"),
                                           per_dim("dilation")):
            if extra >= stride and extra >= dilation:
                return (f"output_padding {extra} must be smaller than stride ({stride}) or "
                        f"dilation ({dilation})",
                        f"set output_padding to at most {max(stride, dilation) - 1}, or raise stride")
    return None


@contextlib.contextmanager
def _torch_warns_always():
    """torch's C++ warnings fire once per process unless told otherwise: a
    layer analysed again (each edit in the window) must keep its warning."""
    before = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    try:
        yield
    finally:
        torch.set_warn_always(before)


def _construct_kwargs(entry: Entry, params: dict[str, Any]) -> dict[str, Any]:
    """Arguments in the form torch wants (tuples where JSON has lists)."""
    kwargs = {}
    for p in entry.params:
        if p.name not in params:
            continue
        value = params[p.name]
        if isinstance(value, list) and p.kind in ("ints", "floats", "float_list"):
            value = tuple(value)
        kwargs[p.name] = value
    return kwargs


def analyze(model: Model, input_shape: Sequence[int] | None = None, *,
            memory_limit: int | None = None) -> ModelReport:
    """Shapes, parameter counts and problems of every layer; never raises for a
    bad model (each problem sits on its layer or in ``model_errors``)."""
    shape = tuple(input_shape) if input_shape is not None else (
        tuple(model.input_shape) if model.input_shape is not None else None)
    report = ModelReport(shape, model.input_dtype, [])
    budget = _Budget(physical_memory_bytes() if memory_limit is None else memory_limit)
    if shape is None:
        report.model_errors.append(Problem(
            "model.input_shape", "is not known before the data is loaded: give the shape of one "
                                 "sample without the batch, such as [1, 28, 28] (training finds it "
                                 "from the data)"))
    report.layers = _analyze_layers(model.layers, model.blocks, shape, model.input_dtype, budget)
    return report


@dataclass
class _Budget:
    """Memory the weights analysed so far take, against the machine's."""

    limit: int
    weight_bytes: int = 0
    #: Layers analysed so far (block repetitions unrolled), against MAX_EXPANDED_LAYERS.
    layers: int = 0
    block_sizes: dict[str, int] = field(default_factory=dict)


def _entry(blocks: dict[str, Block], type_: str) -> Entry:
    if type_ in blocks and type_ not in LAYERS:
        return block_entry(type_, blocks[type_])
    return LAYERS.get(type_)


def _source_name(source: int, layers: Sequence[Layer]) -> str:
    if source == INPUT_INDEX:
        return "the input"
    layer_id = layers[source].id
    return f"{layer_id!r}" if layer_id else f"layer {source} ({layers[source].type})"


def _analyze_layers(layers: Sequence[Layer], blocks: dict[str, Block], shape: tuple[int, ...] | None,
                    dtype: str, budget: _Budget, depth: int = 0) -> list[LayerReport]:
    """Reports of ``layers`` (the model's or a block's) fed ``shape``."""
    wiring = resolve_inputs(layers)
    keys = module_keys(layers)
    reports: list[LayerReport] = []
    for index, spec in enumerate(layers):
        layer = LayerReport(index, spec.type, input_shape=None, id=spec.id, key=keys[index],
                            inputs=list(wiring.inputs[index]), consumers=list(wiring.consumers[index]),
                            repeat=spec.repeat)
        reports.append(layer)
        budget.layers += 1
        try:
            entry = _entry(blocks, spec.type)
        except (KeyError, UnknownNameError) as error:
            layer.error = str(error)
            continue
        layer.params = entry.resolve(spec.params)
        problem = wiring.problem_of(index)
        if problem is not None:
            layer.error, layer.fix = problem.message, problem.fix
            continue
        shapes, dtypes = [], []
        for source in layer.inputs:
            if source == INPUT_INDEX:
                shapes.append(shape)
                dtypes.append(dtype)
            else:
                shapes.append(reports[source].output_shape)
                dtypes.append(reports[source].output_dtype)
        if not shapes or any(s is None for s in shapes):
            continue  # an earlier layer failed: nothing more can be said here
        layer.input_shape, layer.input_shapes = shapes[0], shapes
        if entry.info.get("block"):
            _analyze_block_use(entry, blocks[spec.type], spec, layer, shapes[0], dtypes[0], blocks,
                               budget, depth)
            layer.trainable_count = 0 if spec.frozen else layer.trainable_count
            continue
        key = _cache_key(index, entry, spec, layer, shapes, dtypes, layers, depth > 0)
        cached = _ANALYSED.get(key) if key is not None else None
        if cached is None:
            found = _substituted_problem(entry, spec) if depth else None
            module = None
            if found is not None:
                layer.error, layer.fix = found
            elif entry.info.get("merge"):
                module, out_shape, out_dtype = _analyze_merge(entry, layer, shapes, dtypes, layers)
            else:
                module, out_shape, out_dtype = _analyze_layer(index, entry, spec, layer, shapes[0], dtypes[0])
            if module is not None:
                layer.output_dtype = out_dtype
                layer.param_count = sum(p.numel() for p in module.parameters())
                layer.trainable_count = sum(p.numel() for p in module.parameters() if p.requires_grad)
            _remember(key, layer)
        else:
            _recall(key, cached, layer)
        if spec.frozen:  # after the cache, which holds what the layer has, frozen or not
            layer.trainable_count = 0
        if layer.error is None:
            _check_memory(layer, budget, layer.output_shape)
    for index in wiring.unused():
        if reports[index].error is None:
            reports[index].warnings.append(
                "its output is not used by any layer (only the last layer's output is the "
                "model's): connect it or delete it")
    return reports


def _substituted_problem(entry: Entry, spec: Layer) -> tuple[str, str | None] | None:
    """``(problem, fix)`` for a layer inside a block whose values, once the
    use's parameters are written in, do not fit the layer (a parameter the
    block lacks, a reference inside a list, a value of the wrong kind): no
    one checked those values before."""
    for key, value in spec.params.items():
        items = value if isinstance(value, list) else [value]
        left = next((item for item in items if reference(item) is not None), None)
        if left is None:
            continue
        if left is value:
            return (f"{key}: refers to {quote(left)}, but the block has no parameter "
                    f"{quote(left[1:])}", "declare the parameter in the block, or write a value")
        return (f"{key}: {quote(left)} inside a list: a reference to a block parameter must be the "
                f"whole value", f"write {key}: {quote(left)} or a list of numbers")
    problems = entry.check_params(spec.params)
    if problems:
        name, message = problems[0]
        return (f"{name}: {message}" if name else message), None
    return None


#: What analysing one layer found, by everything it depends on: editing one
#: layer of a big model analyses that layer (and those whose input changed)
#: again, not all of them. Bounded, least recently used first out.
_ANALYSED: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()
_ANALYSED_SIZE = 8192
_REMEMBERED = ("params", "output_shape", "output_dtype", "param_count", "trainable_count", "error",
               "fix", "fix_action", "warnings", "inner_activation_bytes")


def _cache_key(index: int, entry: Entry, spec: Layer, layer: LayerReport, shapes, dtypes,
               layers, in_block: bool) -> tuple | None:
    try:
        params = json.dumps(spec.params, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None
    # Messages name the layer's index and a merge's sources: they are part of the key.
    sources = tuple(_source_name(source, layers) for source in layer.inputs) \
        if entry.info.get("merge") else ()
    # A merge's fix names its shortcut by the inputs' order in the list (which
    # source is listed first), so the indexes are part of it too.
    # Inside a block the parameters are checked first (``_substituted_problem``).
    return (index, entry.name, params, tuple(shapes), tuple(dtypes), sources, tuple(layer.inputs),
            in_block)


#: The window analyses on its thread while a training thread of the same
#: process may analyse too: the cache's order changes under a lock.
_ANALYSED_LOCK = threading.Lock()


def _remember(key: tuple | None, layer: LayerReport) -> None:
    if key is None:
        return
    values = tuple(copy.deepcopy(getattr(layer, name)) for name in _REMEMBERED)
    with _ANALYSED_LOCK:
        _ANALYSED[key] = values
        if len(_ANALYSED) > _ANALYSED_SIZE:
            _ANALYSED.popitem(last=False)


def _recall(key: tuple, values: tuple, layer: LayerReport) -> None:
    with _ANALYSED_LOCK:
        if key in _ANALYSED:  # another thread may have pushed it out since it was read
            _ANALYSED.move_to_end(key)
    for name, value in zip(_REMEMBERED, values):
        setattr(layer, name, copy.deepcopy(value))


def _check_memory(layer: LayerReport, budget: _Budget, out_shape: tuple[int, ...] | None) -> None:
    budget.weight_bytes += layer.param_count * BYTES_PER_PARAM
    if budget.weight_bytes > budget.limit:
        layer.error = (f"the weights up to here need {format_bytes(budget.weight_bytes)} "
                       f"({layer.param_count:,} parameters in this layer alone), more than "
                       f"this machine's {format_bytes(budget.limit)} of memory")
        layer.fix = "make this layer smaller"
        layer.output_shape = None
    elif out_shape is not None and math.prod(out_shape) * 4 > budget.limit:
        layer.error = (f"one sample's output {format_shape(out_shape)} needs "
                       f"{format_bytes(math.prod(out_shape) * 4)}, more than this machine's "
                       f"{format_bytes(budget.limit)} of memory")
        layer.fix = "make this layer's output smaller"
        layer.output_shape = None


def _analyze_block_use(entry: Entry, block: Block, spec: Layer, layer: LayerReport,
                       shape: tuple[int, ...], dtype: str, blocks: dict[str, Block], budget: _Budget,
                       depth: int) -> None:
    """A block use: the block's layers with the use's parameters, once per repetition."""
    problems = entry.check_params(spec.params)
    if problems:
        name, message = problems[0]
        layer.error = f"{name}: {message}" if name else message
        return
    if depth >= MAX_BLOCK_DEPTH:
        layer.error = f"blocks are nested more than {MAX_BLOCK_DEPTH} deep"
        return
    # Checked before unrolling anything: a block repeated inside a repeated
    # block multiplies, and analysing it all would keep the window waiting.
    size = block_size(blocks, spec.type, budget.block_sizes)
    if budget.layers + spec.repeat * size > MAX_EXPANDED_LAYERS:
        room = (MAX_EXPANDED_LAYERS - budget.layers) // max(size, 1)
        unrolled = f"more than {MAX_EXPANDED_LAYERS:,}" if size > MAX_EXPANDED_LAYERS else f"{size:,}"
        layer.error = (f"unrolls to {unrolled} layers per repetition"
                       + (f" × {spec.repeat:,} repetitions" if spec.repeat != 1 else "")
                       + f", and a model may hold at most {MAX_EXPANDED_LAYERS:,} layers with "
                         "its blocks unrolled")
        layer.fix = (f"set repeat to at most {room:,}" if 1 <= room < spec.repeat else
                     f"lower the repeat of the blocks inside {spec.type}, or make it smaller")
        return
    values = {**default_values(entry.params), **spec.params}
    layer.params = values
    out_shape, out_dtype = shape, dtype
    for repetition in range(spec.repeat):
        body = [Layer(inner.type, substitute(inner.params, values), inner.id, inner.inputs, inner.repeat,
                      frozen=inner.frozen, lr_multiplier=inner.lr_multiplier)
                for inner in block.layers]
        nested = ModelReport(out_shape, out_dtype, _analyze_layers(body, blocks, out_shape, out_dtype,
                                                                   budget, depth + 1))
        layer.blocks.append(nested)
        bad = next((inner for inner in nested.layers if inner.error is not None), None)
        if bad is not None or not nested.layers:
            where = f" (repetition {repetition + 1} of {spec.repeat})" if spec.repeat > 1 else ""
            if bad is None:
                layer.error = f"the block {spec.type} has no layers"
                return
            name = f" {bad.id!r}" if bad.id else ""
            layer.error = f"in {spec.type}{where}, layer {bad.index}{name} ({bad.type}): {bad.error}"
            layer.fix = bad.fix
            action = bad.fix_action
            # A fix inside the block edits its definition (every use follows).
            if action is not None and action.block is None and not _refers(block, action):
                if isinstance(action, InsertLayer):
                    action = dataclasses.replace(action, params=_as_references(action.params, values))
                layer.fix_action = dataclasses.replace(action, block=spec.type)
                # Said, because it is not only this use that changes.
                layer.fix = f"{bad.fix}, in the block {spec.type} (every use of it changes)"
            return
        if repetition == 0:
            for inner in nested.layers:
                layer.warnings += [f"in {spec.type}, layer {inner.index} ({inner.type}): {w}"
                                   for w in inner.warnings]
        out_shape, out_dtype = nested.output_shape, nested.layers[-1].output_dtype
    layer.param_count = sum(nested.total_params for nested in layer.blocks)
    layer.trainable_count = sum(nested.trainable_params for nested in layer.blocks)
    layer.output_shape, layer.output_dtype = out_shape, out_dtype


def _as_references(params: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A layer inserted in a block serves every use: a value equal to one of
    this use's block parameters becomes a reference to it (``out_channels:
    "$channels"``), so the other uses get their own sizes."""
    out = {}
    for key, value in params.items():
        same = [name for name, given in values.items()
                if type(given) is type(value) and given == value]
        alike = [name for name in same if name in key or key in name]
        chosen = alike[0] if alike else same[0] if len(same) == 1 else None
        out[key] = f"${chosen}" if chosen is not None else value
    return out


def _refers(block: Block, action: Fix) -> bool:
    """Whether a fix would overwrite a block parameter reference (``"$channels"``):
    then the fix belongs to the use's parameters, not the definition."""
    if isinstance(action, SetParam):
        value = block.layers[action.index].params.get(action.name)
        return isinstance(value, str) and value.startswith("$")
    return False


def _analyze_merge(entry: Entry, layer: LayerReport, shapes: list[tuple[int, ...]],
                   dtypes: list[str], layers: Sequence[Layer]):
    """``(module, output shape, dtype)`` of Add, Multiply or Concat, or Nones
    with the problem on ``layer`` (which shapes, and the fix)."""
    if "int64" in dtypes:
        layer.error = "receives integer token ids but merges real numbers"
        layer.fix = "insert Embedding on the branch that carries token ids"
        return None, None, "float32"
    described = [f"{format_shape(s)} from {_source_name(src, layers)}" for s, src in zip(shapes, layer.inputs)]
    if entry.info["merge"] == "concat":
        out_shape = _concat_shape(layer, shapes, described)
    else:
        out_shape = _elementwise_shape(entry, layer, shapes, described, layers)
    if out_shape is None:
        return None, None, "float32"
    with torch.device("meta"):
        module = LAYER_FACTORIES[entry.name](**_construct_kwargs(entry, layer.params))
    layer.output_shape = out_shape
    return module, out_shape, "float32"


def _elementwise_shape(entry: Entry, layer: LayerReport, shapes, described, layers):
    if all(s == shapes[0] for s in shapes):
        return shapes[0]
    try:
        out = tuple(torch.broadcast_shapes(*shapes))
    except RuntimeError:
        out = None
    if out is not None and len({len(s) for s in shapes}) == 1:
        # torch broadcasts these (a (32, 1, 1) scale over (32, 14, 14)): allowed, and said.
        layer.warnings.append(f"broadcasts its inputs ({'; '.join(described)}) to {format_shape(out)}")
        return out
    layer.error = f"needs inputs of one shape, but gets {' and '.join(described)}"
    _shortcut_fix(layer, shapes, layers)
    return None


def _shortcut_fix(layer: LayerReport, shapes, layers) -> None:
    """For a residual whose shortcut changes channels or size: a 1x1
    convolution (or a Linear) on the shortcut, the input listed earliest."""
    main = max(range(len(shapes)), key=lambda i: layer.inputs[i])
    target = shapes[main]
    short = next(i for i in sorted(range(len(shapes)), key=lambda i: layer.inputs[i]) if shapes[i] != target)
    source = shapes[short]
    where = f"on the shortcut (input {short + 1}, from {_source_name(layer.inputs[short], layers)})"
    if len(source) != len(target):
        layer.fix = "make both branches give the same shape (the same number of dimensions)"
        return
    if len(target) == 1:
        params: dict[str, Any] = {"out_features": target[0]}
        type_ = "Linear"
    elif len(target) in (2, 3):
        strides = [a // b if b and a % b == 0 else None for a, b in zip(source[1:], target[1:])]
        if any(s is None for s in strides) or len(set(strides)) != 1:
            layer.fix = (f"make both branches the same size: {format_shape(source)} cannot reach "
                         f"{format_shape(target)} with one stride")
            return
        type_ = "Conv2d" if len(target) == 3 else "Conv1d"
        params = {"out_channels": target[0], "kernel_size": 1}
        if strides[0] != 1:
            params["stride"] = strides[0]
    else:
        layer.fix = "make both branches give the same shape"
        return
    args = ", ".join(f"{k}={v}" for k, v in params.items())
    layer.fix = f"insert {type_}({args}) {where}"
    layer.fix_action = InsertLayer(layer.index, type_, params, input_item=short)


def _concat_shape(layer: LayerReport, shapes, described):
    dim = layer.params.get("dim", 1)
    rank = len(shapes[0]) + 1  # the batch counts, as in torch.cat
    batched = f"(batch, {', '.join(map(str, shapes[0]))})"
    if len({len(s) for s in shapes}) != 1:
        layer.error = f"joins inputs with different numbers of dimensions: {' and '.join(described)}"
        layer.fix = "give both branches the same number of dimensions (Flatten both, or neither)"
        return None
    if not -rank <= dim < rank:
        layer.error = (f"dim {dim} does not exist for inputs {batched}: dim must be in "
                       f"[{-rank}, {rank - 1}] (0 is the batch)")
        layer.fix = "set dim to 1 (channels or features)"
        layer.fix_action = SetParam(layer.index, "dim", 1)
        return None
    axis = dim % rank
    if axis == 0:
        layer.error = "joins along dim 0, the batch: samples would be mixed"
        layer.fix = "set dim to 1 (channels or features)"
        layer.fix_action = SetParam(layer.index, "dim", 1)
        return None
    others = {tuple(d for i, d in enumerate(s) if i != axis - 1) for s in shapes}
    if len(others) != 1:
        layer.error = (f"joins along dim {dim}, so every other dimension must agree, but gets "
                       f"{' and '.join(described)}")
        layer.fix = ("make the other dimensions equal (the same strides and pooling on every "
                     "branch, or padding='same')")
        return None
    out = list(shapes[0])
    out[axis - 1] = sum(s[axis - 1] for s in shapes)
    return tuple(out)


def _analyze_layer(index: int, entry: Entry, spec: Layer, layer: LayerReport,
                   shape: tuple[int, ...], dtype: str):
    """Check one layer on ``shape``; returns ``(meta module, output shape, dtype)``
    with ``None`` for the first two when the layer does not fit."""
    here = f"layer {index} ({entry.name})"
    wants = entry.info.get("input", "float")
    if wants == "index" and dtype != "int64":
        layer.error = f"needs integer token ids but receives {dtype} values {format_shape(shape)}"
        layer.fix = ("put Embedding first and set the model's input_dtype to 'int64'" if index
                     else "set the model's input_dtype to 'int64' (token ids)")
        return None, None, dtype
    if wants == "float" and dtype == "int64":
        layer.error = f"receives integer token ids {format_shape(shape)} but needs real numbers"
        layer.fix = f"insert Embedding before {here}"
        return None, None, dtype
    ranks = entry.info.get("input_ranks")
    if ranks is not None and len(shape) not in ranks:
        layer.error = f"receives {format_shape(shape)} but needs {_ranks_text(entry, ranks)}"
        layer.fix = _shape_fix(index, entry, shape, ranks)
        layer.fix_action = _shape_fix_action(index, layer.fix)
        return None, None, dtype
    for p in entry.params:
        if p.inferred is None:
            continue
        value = INFER[p.inferred](shape)
        given = spec.params.get(p.name)
        if given is not None and given != value:
            layer.error = (f"{p.name} is {given} in the project, but the layer before gives "
                           f"{value} ({format_shape(shape)})")
            layer.fix = f"remove {p.name} so guidl infers it"
            layer.fix_action = SetParam(index, p.name, remove=True)
            return None, None, dtype
        layer.params[p.name] = value
    # Keep the inferred sizes first, as torch's signatures have them.
    layer.params = {p.name: layer.params[p.name] for p in entry.params if p.name in layer.params}
    problem = _kernel_problem(entry, layer.params, shape)
    if problem:
        layer.error = problem
        layer.fix = "make kernel_size smaller, add padding, or remove a pooling layer before it"
        return None, None, dtype
    found = _param_problem(entry, layer.params, shape)
    if found:
        layer.error, layer.fix = found
        return None, None, dtype
    kwargs = _construct_kwargs(entry, layer.params)
    torch_dtype = _TORCH_DTYPES[dtype]
    with warnings.catch_warnings(record=True) as caught, _torch_warns_always():
        warnings.simplefilter("always")
        try:
            with torch.device("meta"):
                module = LAYER_FACTORIES[entry.name](**kwargs)
        except (ValueError, TypeError, RuntimeError, OverflowError, AssertionError) as error:
            layer.error = f"cannot be built with these parameters: {first_line(error)}"
            return None, None, dtype
        try:
            with torch.no_grad():
                sample = torch.empty((2, *shape), dtype=torch_dtype, device="meta")
                out = module.eval()(sample)
        except (ValueError, TypeError, RuntimeError, IndexError, NotImplementedError,
                AssertionError) as error:
            layer.error = f"cannot take input {format_shape(shape)}: {first_line(error)}"
            return None, None, dtype
    layer.warnings = sorted({warning_text(w.message, w.category) for w in caught})
    out_shape = tuple(out.shape[1:])
    if out.shape[0] != 2:
        layer.error = f"changes the batch dimension (output {format_shape(tuple(out.shape))})"
        layer.fix = "layers must keep the batch first; use start_dim=1 / dim >= 1"
        return None, None, dtype
    if any(d == 0 for d in out_shape):
        layer.error = f"gives an empty output {format_shape(out_shape)} from input {format_shape(shape)}"
        layer.fix = "make kernel_size or stride smaller, or add padding"
        return None, None, dtype
    layer.output_shape = out_shape
    if entry.info.get("backbone"):
        from .activations import saved_activation_bytes
        layer.inner_activation_bytes = saved_activation_bytes(module, shape, torch_dtype)
    out_dtype = "int64" if out.dtype == torch.int64 else "float32"
    return module, out_shape, out_dtype


def needs_two_per_batch(report: ModelReport) -> LayerReport | None:
    """The first layer that, training, normalises over the batch with one
    value per channel (or group) in each sample: BatchNorm on features or on
    1x1 images, GroupNorm with one value per group. torch refuses a batch of
    one sample there (the shape analysis runs in evaluation mode and cannot
    see it)."""
    for layer in report.all_layers():
        shape = layer.input_shape
        if shape is None or layer.error is not None:
            continue
        if layer.type in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d"):
            per_sample = math.prod(shape[1:])
        elif layer.type == "GroupNorm":
            per_sample = shape[0] // layer.params["num_groups"] * math.prod(shape[1:])
        elif layer.type in BACKBONES:
            from .backbones import batch_norm_values
            per_sample = batch_norm_values(layer.type, shape)
        else:
            continue
        if per_sample == 1:
            return layer
    return None


@dataclass
class BuiltModel:
    #: An ``nn.Sequential`` for a stack, a ``GraphModel`` for a graph.
    module: nn.Module
    report: ModelReport


def build(project: Project | Model, input_shape: Sequence[int] | None = None, *,
          device: str | torch.device = "cpu", memory_limit: int | None = None,
          report: ModelReport | None = None) -> BuiltModel:
    """The model on ``device`` plus its report: an ``nn.Sequential`` for a
    stack (as always), a ``GraphModel`` when layers branch, merge or use blocks.

    Raises ``ProjectError`` listing every layer problem when the model cannot
    be built; nothing is allocated before the whole model has been checked on
    the meta device.
    """
    model = project.model if isinstance(project, Project) else project
    if report is None:  # else the caller analysed this model already
        report = analyze(model, input_shape, memory_limit=memory_limit)
    if not report.ok:
        raise ProjectError(report.problems())
    # Whatever torch warns about here was already recorded on the layers.
    with torch.device(device), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if is_chain(model):
            return BuiltModel(nn.Sequential(*(_module(layer) for layer in report.layers)), report)
        return BuiltModel(_graph(report.layers), report)


def _module(layer: LayerReport) -> nn.Module:
    if layer.blocks:
        graphs = [_graph(nested.layers) for nested in layer.blocks]
        return graphs[0] if len(graphs) == 1 else nn.Sequential(*graphs)
    entry = LAYERS.get(layer.type)
    return LAYER_FACTORIES[entry.name](**_construct_kwargs(entry, layer.params))


def _graph(layers: Sequence[LayerReport]) -> GraphModel:
    return GraphModel([(layer.key, _module(layer)) for layer in layers],
                      [layer.inputs for layer in layers])
