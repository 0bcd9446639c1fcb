"""The project file as dataclasses, and their validation.

``Project.from_dict`` reads a (migrated) JSON document, checking every value
against the registry's schemas, and reports *every* problem at once with its
JSON path (``model.layers[3].params.kernel_size: must be a positive integer,
got -2``). Keys guidl does not know are kept in ``extra`` and written back, so
a file round-trips losslessly.
"""

from __future__ import annotations

import copy
import difflib
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..registry import (
    AUGMENT, DATASETS, EARLY_STOPPING, FINE_TUNE, LAYERS, LOSSES, OPTIMIZERS, PRECISIONS, SCHEDULERS, TASKS,
    Catalogue, Entry, UnknownNameError,
)
from ..formatting import quote, shorten
from ..registry.layers import MAX_SIZE
from .errors import Problem, ProjectError
from .graph import (
    block_cycle, block_entry, block_name_problem, block_params, default_values, id_problem,
    reference, resolve_inputs, substitute, uses_graph_features, MAX_REPEAT, MAX_BLOCK_DEPTH,
    deepest_nesting, MAX_BLOCKS,
)

FORMAT = "guidl-project"
#: 2: graphs (``inputs``, merge layers, blocks, node positions). A project
#: without them is still written as version 1.
#: 3: tasks (``task``, a GAN's ``discriminator`` and
#: ``training.discriminator_optimizer``). A project without them is written
#: as version 2 or 1, so older guidl still opens it.
#: 4: transfer learning (pretrained backbone layers, ``frozen`` and
#: ``lr_multiplier`` on layers, ``training.fine_tune``, ``data.balance``) and
#: the image pipeline's keys below.
CURRENT_VERSION = 4
GRAPH_VERSION = 2
TASK_VERSION = 3
PRETRAINED_VERSION = 4
#: Dataset parameters and augmentation keys new in version 4: older guidl
#: refuses any of them as a parameter it does not take, even at its default.
PRETRAINED_DATASET_PARAMS = {"image_folder": ("cache", "memory_budget_mb", "workers")}
PRETRAINED_AUGMENT_KEYS = ("random_resized_crop", "crop_scale", "color_jitter")
#: The largest ``lr_multiplier``: beyond it a layer's rate is a typo.
MAX_LR_MULTIPLIER = 1000.0
#: ``data.balance``: how unequal class counts are evened out.
BALANCES = ("none", "class_weights", "sampler")

#: More layers than this is not a model a person stacks in a window.
MAX_LAYERS = 10_000
MAX_RANK = 8
INPUT_DTYPES = ("float32", "int64")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")
_DATASET = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: Largest finite float: a JSON integer beyond it cannot become a float for torch.
_FLOAT_MAX = sys.float_info.max


@dataclass
class Layer:
    """One layer of the model: a ``torch.nn`` class name (or a block's name)
    and its arguments, with the graph's wiring when it has one."""

    type: str
    params: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    #: Ids of the layers whose outputs it takes (``"input"``: the model's
    #: input); None: the layer listed before it.
    inputs: list[str] | None = None
    #: For a block: how many times it is applied in sequence.
    repeat: int = 1
    #: Where the canvas shows the node ([x, y]); layout only.
    position: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Its parameters do not train (BatchNorm inside it keeps its statistics).
    frozen: bool = False
    #: Its parameters learn at the optimizer's rate times this.
    lr_multiplier: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        out["type"] = self.type
        if self.params:
            out["params"] = copy.deepcopy(self.params)
        if self.frozen:
            out["frozen"] = True
        if self.lr_multiplier != 1:
            out["lr_multiplier"] = self.lr_multiplier
        if self.inputs is not None:
            out["inputs"] = list(self.inputs)
        if self.repeat != 1:
            out["repeat"] = self.repeat
        if self.position is not None:
            out["position"] = list(self.position)
        out.update(copy.deepcopy(self.extra))
        return out


@dataclass
class Block:
    """A named sub-graph defined once and used as a layer many times: its
    parameters (``Param`` configs, each with a default) and its layers, whose
    parameters may say ``"$name"`` for a block parameter."""

    params: list[dict[str, Any]] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
    help: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.help:
            out["help"] = self.help
        out["params"] = copy.deepcopy(self.params)
        out["layers"] = [layer.to_dict() for layer in self.layers]
        out.update(copy.deepcopy(self.extra))
        return out


@dataclass
class Model:
    layers: list[Layer] = field(default_factory=list)
    input_shape: list[int] | None = None
    input_dtype: str = "float32"
    #: Block definitions by name (layers use them by ``type``).
    blocks: dict[str, Block] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.input_shape is not None:
            out["input_shape"] = list(self.input_shape)
        if self.input_dtype != "float32":
            out["input_dtype"] = self.input_dtype
        if self.blocks:
            out["blocks"] = {name: block.to_dict() for name, block in self.blocks.items()}
        out["layers"] = [layer.to_dict() for layer in self.layers]
        out.update(copy.deepcopy(self.extra))
        return out


@dataclass
class Component:
    """A loss, optimizer or scheduler: a torch class name and its arguments."""

    type: str
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "params": copy.deepcopy(self.params), **copy.deepcopy(self.extra)}


@dataclass
class Data:
    dataset: str = "mnist_sample"
    params: dict[str, Any] = field(default_factory=dict)
    val_fraction: float = 0.1
    batch_size: int = 128
    #: Image augmentation of training batches (``AUGMENT``'s parameters), or None.
    augment: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: One of ``BALANCES``: class weights in the loss, or a class-balanced order.
    balance: str = "none"

    def to_dict(self) -> dict[str, Any]:
        out = {
            "dataset": self.dataset,
            "params": copy.deepcopy(self.params),
            "val_fraction": self.val_fraction,
            "batch_size": self.batch_size,
        }
        if self.augment is not None:
            out["augment"] = copy.deepcopy(self.augment)
        if self.balance != "none":
            out["balance"] = self.balance
        out.update(copy.deepcopy(self.extra))
        return out


@dataclass
class Training:
    loss: Component = field(default_factory=lambda: Component("CrossEntropyLoss"))
    optimizer: Component = field(default_factory=lambda: Component("Adam", {"lr": 0.001}))
    scheduler: Component | None = None
    epochs: int = 5
    device: str = "auto"
    seed: int = 0
    #: ``EARLY_STOPPING``'s parameters, or None for no early stopping.
    early_stopping: dict[str, Any] | None = None
    #: Largest gradient norm (clipped above it), or None.
    grad_clip: float | None = None
    #: One of ``PRECISIONS``; 16-bit formats apply on CUDA only.
    precision: str = "fp32"
    #: Store images and convolution weights channels-last (NHWC): faster
    #: convolutions on GPUs with 16-bit precision.
    channels_last: bool = False
    #: Train through ``torch.compile`` (compiled on the first batches).
    compile: bool = False
    #: A GAN's discriminator's optimizer (``optimizer`` is the generator's);
    #: None: ``DEFAULT_DISCRIMINATOR_OPTIMIZER``.
    discriminator_optimizer: Component | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``FINE_TUNE``'s parameters (train the head, then unfreeze), or None.
    fine_tune: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "loss": self.loss.to_dict(),
            "optimizer": self.optimizer.to_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.to_dict(),
            "epochs": self.epochs,
            "device": self.device,
            "seed": self.seed,
        }
        # Optional keys are written only when used, so a plain project keeps
        # exactly the shape of the documented format.
        if self.early_stopping is not None:
            out["early_stopping"] = copy.deepcopy(self.early_stopping)
        if self.grad_clip is not None:
            out["grad_clip"] = self.grad_clip
        if self.precision != "fp32":
            out["precision"] = self.precision
        if self.channels_last:
            out["channels_last"] = True
        if self.compile:
            out["compile"] = True
        if self.discriminator_optimizer is not None:
            out["discriminator_optimizer"] = self.discriminator_optimizer.to_dict()
        if self.fine_tune is not None:
            out["fine_tune"] = copy.deepcopy(self.fine_tune)
        out.update(copy.deepcopy(self.extra))
        return out


@dataclass
class Project:
    name: str = "Untitled"
    model: Model = field(default_factory=Model)
    data: Data = field(default_factory=Data)
    training: Training = field(default_factory=Training)
    version: int = CURRENT_VERSION
    #: What the model learns (``TASKS``); None: the dataset's labels
    #: (classification or regression, as the dataset says).
    task: Component | None = None
    #: A GAN's second network (``model`` is the generator).
    discriminator: Model | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def task_type(self) -> str | None:
        return self.task.type if self.task is not None else None

    def task_params(self) -> dict[str, Any]:
        """The task's parameters with their defaults filled in ({} without a task)."""
        if self.task is None or self.task.type not in TASKS:
            return {}
        return TASKS.get(self.task.type).resolve(self.task.params)

    def network(self, name: str) -> Model:
        """``"model"`` or ``"discriminator"`` (KeyError when the project has none)."""
        if name == "model":
            return self.model
        if name == "discriminator" and self.discriminator is not None:
            return self.discriminator
        raise KeyError(name)

    def networks(self) -> dict[str, Model]:
        """The project's networks by name: ``model``, and a GAN's ``discriminator``."""
        found = {"model": self.model}
        if self.discriminator is not None:
            found["discriminator"] = self.discriminator
        return found

    def file_version(self) -> int:
        """The oldest version that holds everything this project uses: a plain
        stack is written as version 1, the file older guidl reads."""
        if CURRENT_VERSION > PRETRAINED_VERSION:
            return CURRENT_VERSION  # a later format that every project needs
        if self.uses_transfer_learning():
            return PRETRAINED_VERSION
        # A discriminator's optimizer left from a GAN is kept but does not
        # make the file need version 3 (older guidl keeps it as an unknown key).
        if self.task is not None or self.discriminator is not None:
            return TASK_VERSION
        if any(uses_graph_features(model) for model in self.networks().values()):
            return GRAPH_VERSION
        return 1

    def uses_transfer_learning(self) -> bool:
        """Whether the project needs version 4: a pretrained backbone, a frozen
        layer, an ``lr_multiplier``, a fine-tune schedule, class balancing, or
        one of the image pipeline's new dataset parameters or augment keys."""
        if self.training.fine_tune is not None or self.data.balance != "none":
            return True
        if any(key in self.data.params for key in PRETRAINED_DATASET_PARAMS.get(self.data.dataset, ())):
            return True
        if any(key in (self.data.augment or {}) for key in PRETRAINED_AUGMENT_KEYS):
            return True
        for model in self.networks().values():
            layers = list(model.layers)
            for block in model.blocks.values():
                layers += block.layers
            for layer in layers:
                if layer.frozen or layer.lr_multiplier != 1:
                    return True
                if layer.type in LAYERS and LAYERS.get(layer.type).info.get("backbone"):
                    return True
        return False

    def to_dict(self) -> dict[str, Any]:
        out = {
            "format": FORMAT,
            "version": self.file_version(),
            "name": self.name,
        }
        if self.task is not None:
            out["task"] = self.task.to_dict()
        out["model"] = self.model.to_dict()
        if self.discriminator is not None:
            out["discriminator"] = self.discriminator.to_dict()
        out["data"] = self.data.to_dict()
        out["training"] = self.training.to_dict()
        out.update(copy.deepcopy(self.extra))
        return out

    @classmethod
    def from_dict(cls, doc: Any, *, source: str | None = None) -> "Project":
        """Read a document of the current version; raise ``ProjectError``
        listing every problem found."""
        reader = _Reader()
        project = reader.project(doc)
        if reader.problems or project is None:
            raise ProjectError(reader.problems, source=source)
        return project

    def problems(self) -> list[Problem]:
        """What is wrong with this project as it stands (empty when valid)."""
        reader = _Reader()
        reader.project(self.to_dict())
        return reader.problems

    def copy(self) -> "Project":
        return copy.deepcopy(self)


# -- reading ---------------------------------------------------------------------

def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = shorten(key)  # a key is the user's text too
    return f"{path}.{key}" if path else key


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


class _Reader:
    """Walks a JSON document, building dataclasses and collecting problems."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def obj(self, value: Any, path: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.add(path, f"must be an object, got {_kind_of(value)}")
        return None

    def extras(self, doc: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in doc.items() if k not in known}

    def int_(self, doc, key, path, default, minimum=None, maximum=None) -> int:
        value = doc.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(_join(path, key), f"must be an integer, got {_kind_of(value)}")
            return default
        if minimum is not None and value < minimum or maximum is not None and value > maximum:
            bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            self.add(_join(path, key), f"must be an integer {bounds}, got {value}")
            return default
        return value

    # -- sections ----------------------------------------------------------

    def project(self, doc: Any) -> Project | None:
        if not isinstance(doc, dict):
            self.add("", "a project file must hold a JSON object "
                         f"({{\"format\": \"{FORMAT}\", ...}}), got {_kind_of(doc)}")
            return None
        if doc.get("format") != FORMAT:
            self.add("format", f"must be {FORMAT!r}, got {quote(doc.get('format'))}: is this a guidl project file?")
        version = doc.get("version")
        if version not in range(1, CURRENT_VERSION + 1) or isinstance(version, bool):
            self.add("version", f"must be 1 to {CURRENT_VERSION}, got {quote(version)}")
        name = doc.get("name", "Untitled")
        if not isinstance(name, str):
            self.add("name", f"must be a string, got {_kind_of(name)}")
            name = "Untitled"
        for key in ("model", "data", "training"):
            if key not in doc:
                self.add(key, "is missing")
        model = self.model(doc.get("model", {}), "model")
        data = self.data(doc.get("data", {}), "data")
        training = self.training(doc.get("training", {}), "training")
        task = None
        if doc.get("task") is not None:
            task = self.component(doc["task"], "task", TASKS)
        discriminator = None
        if doc.get("discriminator") is not None:
            discriminator = self.model(doc["discriminator"], "discriminator")
        extra = self.extras(doc, ("format", "version", "name", "model", "data", "training", "task",
                                  "discriminator"))
        project = Project(name, model, data, training, CURRENT_VERSION, task, discriminator, extra)
        self.task_fit(project, doc)
        return project

    def task_fit(self, project: Project, doc: Mapping[str, Any]) -> None:
        """What the file alone says about a task that does not fit: a loss the
        task cannot learn with, a missing discriminator, a code layer that
        does not exist. (Shapes need the dataset: ``engine.task_checks``.)"""
        task = project.task
        if task is None:
            return
        entry = TASKS.get(task.type)
        params = project.task_params()
        loss = project.training.loss.type
        fitting = entry.info["losses"]
        if loss not in fitting:
            self.add("training.loss.type", f"{loss} does not fit task {task.type!r}: use "
                     + " or ".join(fitting[:4]) + ("" if len(fitting) <= 4 else ", ..."))
        if task.type == "reconstruction":
            code = params.get("code_layer")
            if code is not None:
                layers = project.model.layers
                ids = [layer.id for layer in layers]
                if code not in ids:
                    known = ", ".join(quote(i) for i in ids if i) or "none: give the code layer an id"
                    self.add("task.params.code_layer",
                             f"names no layer of the model: {quote(code)} (layer ids: {known})")
                elif ids.index(code) == len(layers) - 1:
                    self.add("task.params.code_layer",
                             f"{quote(code)} is the model's last layer: the code must come before the "
                             "decoder; name the bottleneck layer")
        elif task.type == "gan":
            if project.discriminator is None:
                self.add("discriminator", "is missing: a GAN needs a discriminator network that "
                                          "scores each sample real or generated (one value per "
                                          "sample)")
            if project.training.scheduler is not None:
                self.add("training.scheduler", "is not supported for GANs (two optimizers): set it "
                                               "to null")
            if project.training.early_stopping is not None:
                self.add("training.early_stopping", "watches a validation loss, which a GAN does not "
                                                    "have: set it to null")
        elif task.type == "text_generation":
            if project.data.dataset != "text":
                self.add("data.dataset", f"is {quote(project.data.dataset)}, but text generation "
                                         "learns from text: use the 'text' dataset")

    def model(self, value: Any, path: str) -> Model:
        doc = self.obj(value, path)
        if doc is None:
            return Model()
        input_shape = doc.get("input_shape")
        if input_shape is not None:
            input_shape = self.shape(input_shape, _join(path, "input_shape"))
        dtype = doc.get("input_dtype", "float32")
        if dtype not in INPUT_DTYPES:
            self.add(_join(path, "input_dtype"),
                     f"must be one of {', '.join(map(repr, INPUT_DTYPES))}, got {quote(dtype)}")
            dtype = "float32"
        blocks = self.blocks(doc.get("blocks"), _join(path, "blocks"))
        layers = self.layer_list(doc.get("layers"), _join(path, "layers"), blocks)
        extra = self.extras(doc, ("input_shape", "input_dtype", "layers", "blocks"))
        return Model(layers, input_shape, dtype, blocks, extra)

    def layer_list(self, raw_layers: Any, path: str, blocks: dict[str, Block],
                   references: dict[str, Any] | None = None) -> list[Layer]:
        """The layers of the model or of a block (``references``: the block's
        parameters with their defaults), with their wiring checked."""
        layers: list[Layer] = []
        if not isinstance(raw_layers, list):
            self.add(path, f"must be a list of layers, got {_kind_of(raw_layers)}")
            return layers
        if len(raw_layers) > MAX_LAYERS:
            self.add(path, f"has {len(raw_layers):,} layers; at most {MAX_LAYERS:,} are supported")
            return layers
        paths: list[str] = []
        for index, raw in enumerate(raw_layers):
            layer = self.layer(raw, _join(path, index), blocks, references)
            if layer is not None:
                layers.append(layer)
                paths.append(_join(path, index))
        if len(layers) == len(raw_layers):  # else indexes would not match the file
            for problem in resolve_inputs(layers).problems:
                where = _join(paths[problem.index], problem.key) if problem.key else paths[problem.index]
                if problem.item is not None:
                    where = _join(where, problem.item)
                self.add(where, problem.message + (f"; fix: {problem.fix}" if problem.fix else ""))
        return layers

    def blocks(self, value: Any, path: str) -> dict[str, Block]:
        if value is None:
            return {}
        doc = self.obj(value, path)
        if doc is None:
            return {}
        if len(doc) > MAX_BLOCKS:
            self.add(path, f"has {len(doc):,} blocks; at most {MAX_BLOCKS:,} are supported")
            return {}
        # Names first: a block's layers may use any block, defined before or after.
        names = {}
        for name in doc:
            problem = block_name_problem(name)
            if problem:
                self.add(_join(path, name), problem)
            else:
                names[name] = None
        blocks: dict[str, Block] = {name: Block() for name in names}
        for name in names:
            block = self.block(doc[name], _join(path, name), blocks)
            if block is not None:
                blocks[name] = block
            else:
                del blocks[name]
        for name in list(blocks):
            cycle = block_cycle(blocks, name)
            if cycle:
                self.add(_join(path, name), "uses itself: " + " -> ".join(cycle)
                         + "; a block cannot contain itself")
                continue
            chain = deepest_nesting(blocks, name)
            if len(chain) > MAX_BLOCK_DEPTH:
                self.add(_join(path, name), f"nests blocks more than {MAX_BLOCK_DEPTH} deep ("
                         + " -> ".join(chain[:4]) + " -> … -> " + chain[-1]
                         + f"); use at most {MAX_BLOCK_DEPTH} levels of blocks inside blocks")
                break  # the blocks inside it are the same chain
        return blocks

    def block(self, value: Any, path: str, blocks: dict[str, Block]) -> Block | None:
        doc = self.obj(value, path)
        if doc is None:
            return None
        help_ = doc.get("help", "")
        if not isinstance(help_, str):
            self.add(_join(path, "help"), f"must be a string, got {_kind_of(help_)}")
            help_ = ""
        raw_params = doc.get("params", [])
        params: list[dict[str, Any]] = []
        if not isinstance(raw_params, list):
            self.add(_join(path, "params"), f"must be a list of parameters, got {_kind_of(raw_params)}")
            raw_params = []
        seen: set[str] = set()
        for index, config in enumerate(raw_params):
            where = _join(_join(path, "params"), index)
            checked = self.block_param(config, where)
            if checked is None:
                continue
            if checked["name"] in seen:
                self.add(_join(where, "name"), f"{quote(checked['name'])} is declared twice")
                continue
            seen.add(checked["name"])
            params.append(checked)
        block = Block(params, [], help_, self.extras(doc, ("params", "layers", "help")))
        references = default_values(block_params(block))
        block.layers = self.layer_list(doc.get("layers"), _join(path, "layers"), blocks, references)
        if isinstance(doc.get("layers"), list) and not doc["layers"]:
            self.add(_join(path, "layers"), "must hold at least one layer")
        return block

    def block_param(self, config: Any, path: str) -> dict[str, Any] | None:
        doc = self.obj(config, path)
        if doc is None:
            return None
        name = doc.get("name")
        if not isinstance(name, str) or not name.isidentifier() or not name.isascii() \
                or not name[0].isalpha():
            self.add(_join(path, "name"), f"must be a parameter name (a letter, then letters, digits, "
                                          f"underscores), "
                                          f"got {_short(name)}")
            return None
        from ..registry import Param
        from ..registry.schema import KINDS

        if doc.get("kind") not in KINDS:
            self.add(_join(path, "kind"), f"must be one of {', '.join(map(repr, KINDS))}, "
                                          f"got {_short(doc.get('kind'))}")
            return None
        if "default" not in doc:
            self.add(_join(path, "default"), "is missing: every block parameter needs a default")
            return None
        allowed = ("name", "kind", "default", "help", "minimum", "maximum", "exclusive_minimum",
                   "exclusive_maximum", "choices", "nullable", "arity", "suggested", "keywords")
        unknown = [key for key in doc if key not in allowed]
        if unknown:
            self.add(_join(path, unknown[0]), f"is not a field of a block parameter; "
                                              f"it takes {', '.join(allowed)}")
            return None
        try:
            param = Param.from_config(doc)
        except (TypeError, ValueError) as error:
            self.add(path, f"is not a valid parameter: {error}")
            return None
        problem = param.check(param.default)
        if problem:
            self.add(_join(path, "default"), problem)
            return None
        return copy.deepcopy(dict(doc))

    def shape(self, value: Any, path: str) -> list[int] | None:
        if (not isinstance(value, list) or not 1 <= len(value) <= MAX_RANK
                or any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_SIZE
                       for v in value)):
            self.add(path, f"must be a list of 1 to {MAX_RANK} positive integers "
                           f"(the shape of one sample, without the batch), got {_short(value)}")
            return None
        return list(value)

    def layer(self, value: Any, path: str, blocks: dict[str, Block],
              references: dict[str, Any] | None = None) -> Layer | None:
        doc = self.obj(value, path)
        if doc is None:
            return None
        type_ = doc.get("type")
        params = self.params(doc, path)
        entry = None
        if isinstance(type_, str) and type_ in blocks and type_ not in LAYERS:
            entry = block_entry(type_, blocks[type_])
        else:
            entry = self.lookup(LAYERS, type_, path, blocks=blocks)
        if entry is not None and params is not None:
            checked = params
            if references is not None:
                for key, value in params.items():
                    nested = next((item for item in value if reference(item) is not None), None) \
                        if isinstance(value, list) else None
                    if nested is not None:
                        self.add(_join(_join(path, "params"), key),
                                 f"holds {quote(nested)} inside a list: a reference to a block "
                                 f"parameter must be the whole value: write {quote(nested)} for all of "
                                 f"{key}, or numbers in the list")
                    name = reference(value)
                    if name is not None and name not in references:
                        declared = ", ".join(references) or "none"
                        self.add(_join(_join(path, "params"), key),
                                 f"refers to {quote('$' + name)}, but the block has no parameter "
                                 f"{quote(name)} (its parameters: {declared})")
                checked = substitute(params, references)
                checked = {k: v for k, v in checked.items() if reference(v) is None}
                # A reference inside a list is reported above; the rest of the list is checked.
                checked = {k: [references.get(reference(item), item) for item in v]
                           if isinstance(v, list) else v for k, v in checked.items()}
            self.check_params(entry, checked, path)
        layer_id = doc.get("id")
        inputs = doc.get("inputs")
        repeat = self.int_(doc, "repeat", path, 1, 1, MAX_REPEAT)
        if repeat != 1 and entry is not None and not entry.info.get("block"):
            self.add(_join(path, "repeat"), f"only a block can repeat; {entry.name} is a layer "
                                            "(duplicate it instead)")
            repeat = 1
        position = doc.get("position")
        if position is not None and (
                not isinstance(position, list) or len(position) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) or abs(v) > 1e7
                       for v in position)):
            self.add(_join(path, "position"), f"must be [x, y], two numbers, got {_short(position)}")
            position = None
        frozen = doc.get("frozen", False)
        if not isinstance(frozen, bool):
            self.add(_join(path, "frozen"), f"must be true or false, got {_short(frozen)}")
            frozen = False
        lr_multiplier = doc.get("lr_multiplier", 1.0)
        if (isinstance(lr_multiplier, bool) or not isinstance(lr_multiplier, (int, float))
                or not 0 < lr_multiplier <= MAX_LR_MULTIPLIER):
            self.add(_join(path, "lr_multiplier"),
                     f"must be a number > 0 and <= {MAX_LR_MULTIPLIER:g} (this layer's learning rate "
                     f"is the optimizer's times it; 1: the same), got {_short(lr_multiplier)}"
                     + ("; to stop a layer learning, set \"frozen\": true instead"
                        if _is_number(lr_multiplier) and lr_multiplier == 0 else ""))
            lr_multiplier = 1.0
        if entry is None or params is None:
            return None
        extra = self.extras(doc, ("type", "params", "id", "inputs", "repeat", "position", "frozen",
                                  "lr_multiplier"))
        return Layer(entry.name, params, layer_id, copy.deepcopy(inputs), repeat,
                     None if position is None else [float(v) for v in position], extra,
                     frozen, float(lr_multiplier) if lr_multiplier != 1 else 1.0)

    def params(self, doc: Mapping[str, Any], path: str) -> dict[str, Any] | None:
        params = doc.get("params", {})
        if params is None:
            return {}
        return copy.deepcopy(self.obj(params, _join(path, "params")))

    def lookup(self, catalogue: Catalogue, type_: Any, path: str, key: str = "type",
               blocks: Mapping[str, Block] | None = None):
        where = _join(path, key)
        if not isinstance(type_, str):
            if type_ is None:
                self.add(where, f"is missing: name a {catalogue.family} (for example {catalogue.names()[0]!r})")
            else:
                self.add(where, f"must be a {catalogue.family} name, got {_kind_of(type_)}")
            return None
        try:
            return catalogue.get(type_)
        except UnknownNameError as error:
            if blocks and error.suggestion is None:
                close = difflib.get_close_matches(type_[:100], list(blocks), n=1, cutoff=0.6)
                if close:
                    error.suggestion = close[0]
            self.add(where, str(error) + (f" (nor a block: the project's blocks are "
                                          f"{', '.join(map(repr, blocks))})" if blocks else ""))
            return None

    def check_params(self, entry, params: Mapping[str, Any], path: str) -> None:
        for name, message in entry.check_params(params):
            self.add(_join(_join(path, "params"), name), message)

    def component(self, value: Any, path: str, catalogue: Catalogue) -> Component | None:
        doc = self.obj(value, path)
        if doc is None:
            return None
        params = self.params(doc, path)
        entry = self.lookup(catalogue, doc.get("type"), path)
        if entry is None or params is None:
            return None
        self.check_params(entry, params, path)
        return Component(entry.name, params, self.extras(doc, ("type", "params")))

    def data(self, value: Any, path: str) -> Data:
        doc = self.obj(value, path)
        if doc is None:
            return Data()
        dataset = doc.get("dataset")
        params = self.params(doc, path) or {}
        if not isinstance(dataset, str) or not _DATASET.match(dataset):
            self.add(_join(path, "dataset"),
                     f"must be a dataset name in lower case (such as 'mnist_sample'), got {_short(dataset)}")
            dataset = Data.dataset
        else:
            entry = self.lookup(DATASETS, dataset, path, key="dataset")
            if entry is not None:
                self.check_params(entry, params, path)
        augment = self.options(doc, "augment", path, AUGMENT)
        val_fraction = doc.get("val_fraction", Data.val_fraction)
        if (isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float))
                or not 0 <= val_fraction < 1):
            self.add(_join(path, "val_fraction"),
                     f"must be a number from 0 up to (not including) 1, got {_short(val_fraction)}")
            val_fraction = Data.val_fraction
        batch_size = self.int_(doc, "batch_size", path, Data.batch_size, 1, 1 << 20)
        balance = doc.get("balance", "none")
        if balance is None:
            balance = "none"
        if balance not in BALANCES:
            self.add(_join(path, "balance"),
                     f"must be one of {', '.join(map(repr, BALANCES))} ('class_weights': rarer classes "
                     f"weigh more in the loss; 'sampler': batches drawn class-balanced), "
                     f"got {_short(balance)}")
            balance = "none"
        extra = self.extras(doc, ("dataset", "params", "val_fraction", "batch_size", "augment",
                                  "balance"))
        return Data(dataset, params, val_fraction, batch_size, augment, extra, balance)

    def training(self, value: Any, path: str) -> Training:
        doc = self.obj(value, path)
        if doc is None:
            return Training()
        defaults = Training()
        loss = self.component(doc.get("loss", defaults.loss.to_dict()), _join(path, "loss"), LOSSES)
        optimizer = self.component(doc.get("optimizer", defaults.optimizer.to_dict()),
                                   _join(path, "optimizer"), OPTIMIZERS)
        scheduler = doc.get("scheduler")
        if scheduler is not None:
            scheduler = self.component(scheduler, _join(path, "scheduler"), SCHEDULERS)
        epochs = self.int_(doc, "epochs", path, defaults.epochs, 1, 1_000_000)
        device = doc.get("device", "auto")
        if not isinstance(device, str) or not _DEVICE.match(device):
            self.add(_join(path, "device"),
                     f"must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {_short(device)}")
            device = "auto"
        seed = self.int_(doc, "seed", path, 0, 0, 2**63 - 1)
        early_stopping = self.options(doc, "early_stopping", path, EARLY_STOPPING)
        grad_clip = doc.get("grad_clip")
        if grad_clip is not None and (isinstance(grad_clip, bool) or not isinstance(grad_clip, (int, float))
                                      or not 0 < grad_clip <= _FLOAT_MAX):
            self.add(_join(path, "grad_clip"),
                     f"must be a number > 0 (the largest gradient norm) or null, got {_short(grad_clip)}")
            grad_clip = None
        precision = doc.get("precision", "fp32")
        if precision not in PRECISIONS:
            self.add(_join(path, "precision"),
                     f"must be one of {', '.join(map(repr, PRECISIONS))}, got {_short(precision)}")
            precision = "fp32"
        switches = {}
        for key in ("channels_last", "compile"):
            switches[key] = doc.get(key, False)
            if not isinstance(switches[key], bool):
                self.add(_join(path, key), f"must be true or false, got {_short(switches[key])}")
                switches[key] = False
        discriminator_optimizer = doc.get("discriminator_optimizer")
        if discriminator_optimizer is not None:
            discriminator_optimizer = self.component(
                discriminator_optimizer, _join(path, "discriminator_optimizer"), OPTIMIZERS)
        fine_tune = self.options(doc, "fine_tune", path, FINE_TUNE)
        extra = self.extras(doc, ("loss", "optimizer", "scheduler", "epochs", "device", "seed",
                                  "early_stopping", "grad_clip", "precision", "channels_last", "compile",
                                  "discriminator_optimizer", "fine_tune"))
        return Training(loss or defaults.loss, optimizer or defaults.optimizer, scheduler,
                        epochs, device, seed, early_stopping, grad_clip, precision,
                        switches["channels_last"], switches["compile"], discriminator_optimizer, extra,
                        fine_tune)

    def options(self, doc: Mapping[str, Any], key: str, path: str, entry: Entry) -> dict[str, Any] | None:
        """An optional object of settings checked against ``entry``'s schema."""
        value = doc.get(key)
        if value is None:
            return None
        value = self.obj(value, _join(path, key))
        if value is None:
            return None
        for name, message in entry.check_params(value):
            self.add(_join(_join(path, key), name), message)
        return copy.deepcopy(value)


def _short(value: Any) -> str:
    return quote(value, 60)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
