"""Python source for a trained model: a module that needs only torch and
safetensors (and torchvision for a backbone or image preprocessing), and an
optional standalone training script that trains it further from its exported
weights, with the run's frozen layers, learning-rate multipliers and class
balancing (the tables ``FROZEN``, ``LR_MULTIPLIERS``, ``BALANCE``; parameter
names from the built model, as literals).

The source is made from text that may come from anyone (a project, a bundle
or a run folder someone sent): its name, class names, parameters, file
names. None of it is ever pasted into the code as text:

- a value enters only through ``literal``: the ``repr`` of a plain value
  (str, int, finite float, bool, None, and lists, tuples and dicts of
  those), checked to read back as the same value with ``ast.literal_eval``.
  ``repr`` escapes quotes, backslashes, line breaks, NUL and every
  non-printable character, so a literal can never end early;
- a name that becomes code (a layer, loss or optimizer type, a parameter
  name, the module's own name) must be a plain identifier found in guidl's
  catalogues (``identifier``, ``module_name_problem``); a graph's layer
  names (ids), block names and block parameter names, which the project
  file's checks already limit to identifiers, are checked again here
  (``_layer_key``, ``_block_name``);
- docstrings and comments hold no user text at all (the project's name is
  the constant ``NAME``), save a block's parameter values, as literals.

A pretrained backbone (``resnet18``, ...) is guidl's ``Backbone`` class,
copied in as the own layers are without its download: the trained weights
come from the safetensors file beside the module; its name, weights and
output must be the backbone catalogue's. The module then
needs torchvision too, and says so; its ``preprocess()`` resizes, crops and
normalises images as the backbone's weights expect (constants written as
literals).

A stack is written as ``class Model(nn.Sequential)``, as it is built. A
graph is ``class Model(nn.Module)`` with a ``forward()`` of one line per
layer, named after the layers' ids, and one class per configuration of each
block (its layers' inferred sizes differ between uses); the modules keep the
built model's names, so the weights load by the same keys.

The export then compiles the source and runs it in a separate interpreter
to check it (``export.check_python_module``).
"""

from __future__ import annotations

import ast
import builtins
import inspect
import keyword
import math
import sys
from typing import TYPE_CHECKING, Any

from ..registry import LAYERS, LOSSES, OPTIMIZERS, REQUIRED
from ..registry.backbones import BACKBONES, OUTPUTS

if TYPE_CHECKING:
    from torch import nn

    from ..registry import Catalogue
    from .build import ModelReport
    from .export import TrainedModel

#: Modules the generated files import: a module of the same name would hide them.
_IMPORTED = {"torch", "torchvision", "safetensors", "numpy"}
_MAX_DEPTH = 16


class SourceError(ValueError):
    """A value that cannot be written into Python source safely."""


def _plain(value: Any, tuples: bool, depth: int = 0) -> Any:
    """``value`` as plain Python data, or ``SourceError``."""
    if depth > _MAX_DEPTH:
        raise SourceError("a value nested too deeply")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SourceError(f"a number that is not finite ({value})")
        return value
    if isinstance(value, (list, tuple)):
        items = [_plain(v, tuples, depth + 1) for v in value]
        return tuple(items) if tuples or isinstance(value, tuple) else items
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise SourceError("an object whose keys are not all strings")
        return {k: _plain(v, tuples, depth + 1) for k, v in value.items()}
    raise SourceError(f"a value of type {type(value).__name__}")


def literal(value: Any, *, tuples: bool = False) -> str:
    """A Python literal for ``value`` (lists as tuples with ``tuples``) that
    evaluates to exactly that value and can hold no code."""
    plain = _plain(value, tuples)
    text = repr(plain)
    try:
        same = ast.literal_eval(text) == plain
    except (ValueError, SyntaxError, RecursionError, MemoryError):
        same = False
    if not same or "\n" in text or "\r" in text:
        raise SourceError(f"a value that does not read back as written: {text[:60]}")
    return text


def identifier(name: Any, catalogue: "Catalogue") -> str:
    """``name`` when it is a plain identifier in ``catalogue``, else ``SourceError``."""
    if not (isinstance(name, str) and name.isascii() and name.isidentifier()
            and not keyword.iskeyword(name) and name in catalogue):
        raise SourceError(f"{str(name)[:40]!r} is not a known {catalogue.family}")
    return name


def module_name_problem(stem: str) -> str | None:
    """Why ``stem`` cannot name the generated module, or None."""
    if not stem.isidentifier() or keyword.iskeyword(stem):
        return ("a Python module's name must be a valid identifier (letters, digits and "
                "underscores, not starting with a digit, not a keyword)")
    if stem in _IMPORTED or stem in sys.stdlib_module_names:
        return f"a module named {stem!r} would hide the module of that name; choose another name"
    return None


def layer_source(index: int, report: "ModelReport") -> str:
    layer = report.layers[index]
    entry = LAYERS.get(identifier(layer.type, LAYERS))
    if layer.type in BACKBONES:
        return _backbone_source(layer.type, layer.params)
    args = []
    for p in entry.params:
        if p.name not in layer.params:
            continue
        value = layer.params[p.name]
        if p.inferred is None and p.default is not REQUIRED and value == p.default:
            continue  # torch's default: leave it out, as a person would
        tuples = isinstance(value, list) and p.kind in ("ints", "floats", "float_list")
        if not p.name.isidentifier():
            raise SourceError(f"{layer.type}: parameter {p.name!r} is not an identifier")
        args.append(f"{p.name}={literal(value, tuples=tuples)}")
    if layer.type in ("RNN", "LSTM", "GRU"):
        return f"Recurrent({literal(layer.type)}, {', '.join(args)})"
    if layer.type in _OWN_CLASSES:
        return f"{_OWN_CLASSES[layer.type]}({', '.join(args)})"
    from .modules import FIXED_ARGUMENTS

    args += [f"{name}={literal(value)}" for name, value in FIXED_ARGUMENTS.get(layer.type, {}).items()]
    return f"nn.{layer.type}({', '.join(args)})"


def _backbone_source(name: str, params: dict) -> str:
    """A backbone as built for training, its name, weights and output each
    one of the catalogue's. The weights name only shapes the network (a ViT
    trained at 384 pixels has positions for that size): the module's copy of
    the class downloads nothing, and the trained weights load from the file."""
    weights = params.get("weights", BACKBONES.get(name, {}).get("default_weights"))
    output = params.get("output", "pooled")
    if name not in BACKBONES or output not in OUTPUTS or (
            weights != "none" and weights not in BACKBONES[name]["weights"]):
        raise SourceError(f"{str(name)[:40]!r} with weights {str(weights)[:30]!r} and output "
                          f"{str(output)[:20]!r} is not a known backbone")
    return f"Backbone({literal(name)}, {literal(weights)}, {literal(output)})"


def _uses_backbone(types: set[str]) -> bool:
    return any(t in BACKBONES for t in types)


def _backbone_class_source() -> str:
    """guidl's Backbone (torchvision's model without its head), copied into
    the generated module as the own layers are, less its weights download
    (the module loads its trained weights); it imports nothing of guidl."""
    from .backbones import backbone_source

    return "\n\n" + backbone_source()




#: Catalogue layers written as guidl's own class (its source goes into the module).
_OWN_CLASSES = {"MultiheadAttention": "SelfAttention", "PositionalEmbedding": "PositionalEmbedding"}


def _own_classes_source(types: set[str]) -> str:
    """guidl's own classes that the layers of ``types`` are, copied into the
    generated module as ``_recurrent_source`` copies Recurrent."""
    from . import modules

    names = sorted({_OWN_CLASSES[t] for t in types if t in _OWN_CLASSES})
    return "".join("\n\n" + inspect.getsource(getattr(modules, name)) for name in names)


def _recurrent_source() -> str:
    """guidl's own Recurrent wrapper, copied into the generated module so that
    the module and guidl can never disagree about it."""
    from . import modules

    return ('\n\nRECURRENT_CLASSES = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}\n\n\n'
            + inspect.getsource(modules.Recurrent))


def text_vocabulary(model: "TrainedModel") -> str | None:
    """The characters of a text dataset's token ids (id i is the i-th), or None."""
    if model.project.data.dataset != "text":
        return None
    from .data import VOCAB

    return VOCAB


def _class_names(model: "TrainedModel", vocab: str | None) -> list[str] | None:
    names = model.class_names
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SourceError("the class names are not a list of strings")
    if vocab is not None and len(names) == len(vocab):
        return list(vocab)  # the characters themselves, not their printable escapes
    return names


_TEXT_HELPERS = '''

def encode(text):
    """Text to token ids (a 1-D int64 tensor); characters outside VOCAB
    become the id of a space, as in training."""
    return torch.tensor([_IDS.get(c, UNKNOWN_ID) for c in text], dtype=torch.int64)


def decode(ids):
    """Token ids (a list or tensor, e.g. ``scores.argmax(-1)``) back to text."""
    return "".join(VOCAB[int(i)] for i in torch.as_tensor(ids).flatten())


def predict_next(model, text):
    """The most likely character after ``text`` (its last INPUT_SHAPE[0]
    characters go in)."""
    x = encode(text[-INPUT_SHAPE[0]:]).unsqueeze(0)
    with torch.no_grad():
        return decode(model(x).argmax(-1))
'''


def python_source(model: "TrainedModel", weights_name: str) -> str:
    from .graph import is_graph

    report = model.report
    types = {layer.type for layer in report.all_layers()}
    if is_graph(model.module):
        writer = _GraphWriter(set(model.project.model.blocks))
        model_class = writer.module_source(report, "Model")
        model_class = "".join(writer.classes) + "\n\n" + model_class
    else:
        layers = ",\n".join(f"            {layer_source(i, report)}" for i in range(len(report.layers)))
        model_class = f"""

class Model(nn.Sequential):
    def __init__(self):
        super().__init__(
{layers},
        )
"""
    recurrent = any(t in ("RNN", "LSTM", "GRU") for t in types)
    normalization = model.normalization
    if normalization is not None and not isinstance(normalization, dict):
        raise SourceError("the normalization is not an object")
    vocab = text_vocabulary(model)
    output = getattr(model, "output_normalization", None)
    if output is not None and not isinstance(output, dict):
        raise SourceError("the output normalization is not an object")
    preprocessing = model.preprocessing
    if preprocessing is not None:
        from .bundle import preprocessing_problem

        problem = preprocessing_problem(preprocessing)
        if problem:
            raise SourceError(f"the preprocessing {problem}")
    backbone = _uses_backbone(types)
    usage = ["    model = load()                  # reads the weights beside this file",
             "    scores = model(preprocess(x))   # x: raw inputs shaped (batch, *INPUT_SHAPE)"]
    if preprocessing is not None:
        usage = ["    model = load()                  # reads the weights beside this file",
                 "    x = preprocess(read_image(path))  # any size: resized, cropped, normalised",
                 "    scores = model(x)               # x may also be a batch (batch, 3, H, W) of uint8"]
    if output is not None:
        usage += ["    pixels = postprocess(model(preprocess(x)))  # outputs back to raw values "
                  "(0..255 for images)"]
    if vocab is not None:
        usage += ["    ids = encode(text)              # text to token ids; decode(ids) back",
                  "    predict_next(model, text)       # the most likely next character"]
    lines = [
        '"""A standalone PyTorch model written by guidl (its project: NAME).',
        "",
        ("Needs torch, torchvision and safetensors (pip install torch torchvision safetensors). "
         "Usage:" if backbone or preprocessing is not None else "Needs only torch and safetensors. Usage:"),
        "",
        *usage,
        '"""',
        "",
        *(["import math", "from functools import partial"] if backbone else []),
        "from pathlib import Path",
        "",
        "import torch",
        *(["import torch.nn.functional as F"] if backbone else []),
        *(["import torchvision"] if backbone or preprocessing is not None else []),
        "from torch import nn",
        "",
        f"NAME = {literal(model.project.name)}",
        f"INPUT_SHAPE = {literal(tuple(int(d) for d in model.input_shape))}",
        f"INPUT_DTYPE = torch.{'int64' if model.input_dtype == 'int64' else 'float32'}",
        f"CLASS_NAMES = {literal(_class_names(model, vocab))}",
    ]
    if preprocessing is not None:
        lines += [
            "# The backbone's preprocessing (torchvision's weights metadata): the shorter side",
            "# resized to RESIZE, the centre cropped to CROP x CROP, pixels scaled to 0..1 (SCALE),",
            "# then (x - MEAN) / STD per channel.",
            f"RESIZE = {literal(int(preprocessing['resize']))}",
            f"CROP = {literal(int(preprocessing['crop']))}",
            f"INTERPOLATION = {literal(str(preprocessing['interpolation']))}",
            f"MEAN = {literal([float(v) for v in preprocessing['mean']])}",
            f"STD = {literal([float(v) for v in preprocessing['std']])}",
            f"SCALE = {literal(1 / 255)}",
        ]
    else:
        lines += [
            "# Preprocessing learned on the training data: (x * SCALE - MEAN) / STD per channel.",
            f"SCALE = {literal(normalization.get('scale') if normalization else None)}",
            f"MEAN = {literal(normalization.get('mean') if normalization else None)}",
            f"STD = {literal(normalization.get('std') if normalization else None)}",
        ]
    if output is not None:
        lines += [
            "# How the outputs (a generator's or decoder's) are scaled: postprocess() undoes it.",
            f"OUTPUT_SCALE = {literal(output.get('scale'))}",
            f"OUTPUT_MEAN = {literal(output.get('mean'))}",
            f"OUTPUT_STD = {literal(output.get('std'))}",
        ]
    if vocab is not None:
        lines += [
            "# Token id i is the character VOCAB[i].",
            f"VOCAB = {literal(vocab)}",
            "_IDS = {c: i for i, c in enumerate(VOCAB)}",
            f"UNKNOWN_ID = {literal(vocab.index(' ') if ' ' in vocab else 0)}",
        ]
    source = "\n".join(lines) + "\n"
    if vocab is not None:
        source += _TEXT_HELPERS
    if recurrent:
        source += _recurrent_source()
    source += _own_classes_source(types)
    if backbone:
        source += _backbone_class_source()
    source += model_class
    source += f'''

def load(weights=Path(__file__).with_name({literal(weights_name)})):
    """The model with its trained weights, ready for inference."""
    from safetensors.torch import load_file

    model = Model()
    model.load_state_dict(load_file(str(weights)))
    return model.eval()
'''
    source += _IMAGE_PREPROCESS if preprocessing is not None else '''

def preprocess(x):
    """Raw inputs (pixels 0..255 for images) to what the model was trained on."""
    x = torch.as_tensor(x)
    if MEAN is None:
        return x.to(INPUT_DTYPE)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean = torch.tensor(MEAN).view(shape)
    std = torch.tensor(STD).view(shape)
    return (x.to(torch.float32) * SCALE - mean) / std
'''
    if output is not None:
        source += _POSTPROCESS
    source += '''

if __name__ == "__main__":
    print(load())
'''
    return source


_IMAGE_PREPROCESS = '''

def read_image(path):
    """An image file as uint8 pixels (3, H, W), in colour, decoded as guidl
    decodes its training images (torchvision; PIL for BMP, TIFF, ...)."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        return decode_image(str(path), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError):
        from PIL import Image

        with Image.open(path) as image:
            pixels = torch.frombuffer(bytearray(image.convert("RGB").tobytes()), dtype=torch.uint8)
            return pixels.view(image.height, image.width, 3).permute(2, 0, 1).contiguous()


def _center_crop(x, size):
    height, width = x.shape[-2:]
    if height < size or width < size:
        from torchvision.transforms.v2 import functional as TF

        return TF.center_crop(x, [size, size])
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return x[..., top:top + size, left:left + size]


def preprocess(x):
    """Images as uint8 pixels, (3, H, W) or (batch, 3, H, W) of any size, to
    what the model takes, (batch, 3, CROP, CROP), exactly as in training."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    x = torch.as_tensor(x)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    height, width = x.shape[-2:]
    scale = RESIZE / min(height, width)
    size = [max(RESIZE, int(height * scale)), max(RESIZE, int(width * scale))]
    if [height, width] != size:
        x = TF.resize(x, size, interpolation=InterpolationMode(INTERPOLATION), antialias=True)
    x = _center_crop(_center_crop(x, RESIZE), CROP)
    shape = (1, -1, 1, 1)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(shape)
    std = torch.tensor(STD, dtype=torch.float32).view(shape)
    return (x.to(torch.float32) * SCALE - mean) / std
'''


_POSTPROCESS = '''

def postprocess(y):
    """Outputs back to raw values: pixels 0..255 for images."""
    shape = (1, -1) + (1,) * (y.dim() - 2)
    mean = torch.tensor(OUTPUT_MEAN).view(shape)
    std = torch.tensor(OUTPUT_STD).view(shape)
    return (y * std + mean) / OUTPUT_SCALE
'''


# -- graphs -----------------------------------------------------------------------------------

#: Names the generated forward() uses itself: a layer of that name gets another variable.
_FORWARD_NAMES = ("x", "self", "torch")
#: Names the generated module defines or imports at its top level (and
#: Python's builtins): a block's class never takes one of them.
_MODULE_NAMES = {"Path", "torch", "nn", "Model", "load", "preprocess", "postprocess", "encode", "decode",
                 "torchvision", "Backbone", "read_image", "math", "partial", "F", "RESIZE", "CROP", "INTERPOLATION",
                 "OUTPUT_SCALE", "OUTPUT_MEAN", "OUTPUT_STD",
                 "predict_next", "Recurrent", "RECURRENT_CLASSES", "NAME", "INPUT_SHAPE",
                 "INPUT_DTYPE", "CLASS_NAMES", "SCALE", "MEAN", "STD", "VOCAB", "UNKNOWN_ID"}
_MERGE_OPERATORS = {"Add": " + ", "Multiply": " * "}


def _plain_identifier(name: Any, what: str) -> str:
    """``name`` when it is a plain ASCII identifier (not a keyword, not
    starting with an underscore), else ``SourceError``."""
    if not (isinstance(name, str) and name.isascii() and name.isidentifier()
            and not keyword.iskeyword(name) and not name.startswith("_")):
        raise SourceError(f"{what} {str(name)[:40]!r} is not a plain identifier")
    return name


def _layer_key(key: Any) -> str:
    """A layer's module name in a graph, checked again here: a plain
    identifier that no attribute of ``nn.Module`` has."""
    from ..spec.graph import RESERVED_IDS

    key = _plain_identifier(key, "the layer name")
    if key in RESERVED_IDS:
        raise SourceError(f"the layer name {key!r} is a name PyTorch modules use")
    return key


def _block_name(name: Any) -> str:
    from ..spec.graph import block_name_problem

    name = _plain_identifier(name, "the block name")
    if block_name_problem(name) is not None:
        raise SourceError(f"the block name {name!r} cannot name a class")
    return name


class _GraphWriter:
    """The classes of a graph model: one per distinct configuration of each
    block (its layers' sizes differ between uses), written before the
    classes that use them."""

    def __init__(self, block_names: set[str]):
        self.classes: list[str] = []
        self._known: dict[tuple[str, str, str], str] = {}
        self._reserved = _MODULE_NAMES | set(_OWN_CLASSES.values()) | set(dir(builtins))
        self._block_names = block_names

    def module_source(self, report: "ModelReport", class_name: str, comment: str | None = None) -> str:
        return self._class_source(class_name, comment, self._body_source(report))

    @staticmethod
    def _class_source(class_name: str, comment: str | None, body: str) -> str:
        head = f"class {class_name}(nn.Module):\n"
        if comment is not None:
            head += f"    # {comment}\n\n"
        return head + body

    def _body_source(self, report: "ModelReport") -> str:
        init, forward = self._body(report)
        return ("    def __init__(self):\n        super().__init__()\n"
                + "".join(f"        {line}\n" for line in init)
                + "\n    def forward(self, x):\n" + "".join(f"        {line}\n" for line in forward))

    def _block_class(self, layer: "LayerReport", nested: "ModelReport") -> str:
        """The class of one repetition of a block use (a new one for a
        configuration not written yet: ``ResidualBlock``, ``ResidualBlock_2``...)."""
        name = _block_name(layer.type)
        params = ", ".join(f"{_plain_identifier(key, 'the block parameter')}={literal(value)}"
                           for key, value in layer.params.items())
        comment = f"{name}({params}) on inputs of shape {literal(tuple(nested.input_shape or ()))}"
        body = self._body_source(nested)
        known = self._known.get((name, comment, body))
        if known is not None:
            return known
        taken = set(self._known.values()) | self._reserved
        class_name, number = name, 1
        while class_name in taken or (number > 1 and class_name in self._block_names):
            number += 1
            class_name = f"{name}_{number}"
        self._known[(name, comment, body)] = class_name
        self.classes.append("\n\n" + self._class_source(class_name, comment, body))
        return class_name

    def _body(self, report: "ModelReport") -> tuple[list[str], list[str]]:
        from .graph import forward_plan

        layers = report.layers
        keys = [_layer_key(layer.key) for layer in layers]
        if len(set(keys)) != len(keys):
            raise SourceError("two layers have the same name")
        variables, taken = {}, set(keys) | set(_FORWARD_NAMES)
        for key in keys:
            variable = key
            if key in _FORWARD_NAMES:
                while variable in taken:
                    variable += "_"
                taken.add(variable)
            variables[key] = variable
        steps = {index for index, *_ in forward_plan(keys, [layer.inputs for layer in layers])}
        init, forward = [], []
        for index, (layer, key) in enumerate(zip(layers, keys)):
            names = ["x" if source < 0 else variables[keys[source]] for source in layer.inputs]
            if layer.type in _MERGE_OPERATORS:
                step = _MERGE_OPERATORS[layer.type].join(names)
            elif layer.type == "Concat":
                step = f"torch.cat(({', '.join(names)}), dim={literal(int(layer.params['dim']))})"
            else:
                if layer.blocks:
                    classes = [f"{self._block_class(layer, nested)}()" for nested in layer.blocks]
                    module = classes[0] if len(classes) == 1 else f"nn.Sequential({', '.join(classes)})"
                else:
                    module = layer_source(index, report)
                unused = "" if index in steps else "  # not called: see forward()"
                init.append(f"self.{key} = {module}{unused}")
                if len(names) != 1:
                    raise SourceError(f"the layer {key!r} takes {len(names)} inputs")
                step = f"self.{key}({names[0]})"
            if index in steps:
                forward.append(f"{variables[key]} = {step}")
            elif layer.type in _MERGE_OPERATORS or layer.type == "Concat":
                forward.append(f"# {key}: not computed, its output does not reach the output")
            else:
                forward.append(f"# {key}: not called, its output does not reach the output "
                               "(it is built all the same: its weights are in the file)")
        forward.append(f"return {variables[keys[-1]]}")
        return init, forward


def _uniform_prefixes(module: nn.Module, value_of, default) -> dict[str, Any]:
    """``{name: value}`` for the largest submodules (by their names in the
    state dict) whose parameters all have the same value other than
    ``default``, and for single parameters where they differ."""
    found: dict[str, Any] = {}

    def visit(name: str, part: nn.Module) -> None:
        values = {value_of(parameter) for parameter in part.parameters()}
        if len(values) == 1:
            value = values.pop()
            if value != default:
                found[name] = value
            return
        for own, parameter in part.named_parameters(recurse=False):
            if value_of(parameter) != default:
                found[f"{name}.{own}" if name else own] = value_of(parameter)
        for child, sub in part.named_children():
            visit(f"{name}.{child}" if name else child, sub)

    visit("", module)
    return found


def _training_settings(model: "TrainedModel") -> tuple[list[str], dict[str, float], list[str]]:
    """The parameters that stay frozen and the learning-rate multipliers, as
    guidl's trainer left them at the end of the run: a fine-tune schedule's
    unfrozen parts train at ``lr_factor`` times their rate (its head epochs
    are over), the parts it never unfroze stay frozen."""
    from .freezing import FineTune, Freezing

    project = model.project
    try:
        freezing = Freezing(model.module, project.model)
        schedule = FineTune(freezing, project, epochs=project.training.epochs)
    except ValueError as error:
        raise SourceError(f"the frozen layers cannot be placed: {error}") from None
    unfrozen = set()
    if schedule.active and schedule.head_epochs < schedule.epochs:
        unfrozen = {id(p) for unit in schedule.to_unfreeze for p in unit.parameters}

    def frozen(parameter: nn.Parameter) -> bool:
        return bool(freezing.frozen.get(id(parameter))) and id(parameter) not in unfrozen

    def scale(parameter: nn.Parameter) -> float:
        factor = schedule.lr_factor if id(parameter) in unfrozen else 1.0
        return float(freezing.scale.get(id(parameter), 1.0)) * factor

    def kept_statistics(parameter: nn.Parameter) -> bool:
        return bool(freezing.frozen.get(id(parameter)))

    return (sorted(_uniform_prefixes(model.module, frozen, False)),
            dict(sorted(_uniform_prefixes(model.module, scale, 1.0).items())),
            sorted(_uniform_prefixes(model.module, kept_statistics, False)))


def _balance(model: "TrainedModel", loss: str) -> str:
    """``data.balance`` as the trainer applied it: classification only, class
    weights only in a loss that takes them."""
    balance = model.project.data.balance
    if balance not in ("class_weights", "sampler") or model.task != "classification":
        return "none"
    if balance == "class_weights" and loss not in ("CrossEntropyLoss", "NLLLoss"):
        return "none"
    return balance


def training_source(model: "TrainedModel", module_name: str) -> str:
    problem = module_name_problem(module_name)
    if problem:
        raise SourceError(f"{module_name!r}: {problem}")
    training = model.project.training
    loss = identifier(training.loss.type, LOSSES)
    optimizer = identifier(training.optimizer.type, OPTIMIZERS)
    if not isinstance(training.loss.params, dict) or not isinstance(training.optimizer.params, dict):
        raise SourceError("the loss's or optimizer's parameters are not an object")
    base_lr = OPTIMIZERS.get(optimizer).resolve(training.optimizer.params).get("lr")
    if isinstance(base_lr, bool) or not isinstance(base_lr, (int, float)):
        raise SourceError("the optimizer's learning rate is not a number")
    frozen, multipliers, statistics = _training_settings(model)
    types = {layer.type for layer in model.report.all_layers()}
    needs = ("torch, torchvision, safetensors and numpy"
             if _uses_backbone(types) or model.preprocessing is not None else "torch, safetensors and numpy")
    return f'''"""Trains the model of the module beside this script further on arrays in
an .npz file (x, y), starting from its exported weights (the module's load()).
As at the end of guidl's run: parameters under FROZEN stay frozen, BatchNorm
under KEPT_STATISTICS keeps its running statistics, those under LR_MULTIPLIERS learn
at the optimizer's rate times their number, and BALANCE evens out unequal
classes. A plain loop: no scheduler, early stopping or gradient clipping.
A standalone script written by guidl: needs {needs}, not guidl.

Usage: python THIS_SCRIPT.py data.npz [epochs]
"""

import sys

import numpy as np
import torch
from torch import nn

from {module_name} import CLASS_NAMES, load, preprocess

LOSS = nn.{loss}(**{literal(training.loss.params)})
OPTIMIZER = torch.optim.{optimizer}
OPTIMIZER_ARGS = {literal(training.optimizer.params, tuples=True)}
BASE_LR = {literal(float(base_lr))}
EPOCHS = {literal(int(training.epochs))}
BATCH_SIZE = {literal(int(model.project.data.batch_size))}
SEED = {literal(int(training.seed))}
RETRAINED = {literal(module_name + "_retrained.safetensors")}
# Parameters under these names (the weights file's keys) do not train.
FROZEN = {literal(frozen)}
# BatchNorm under these names keeps its running statistics (eval mode): the
# frozen parts, and those a fine-tune schedule unfroze.
KEPT_STATISTICS = {literal(statistics)}
# Parameters under these names learn at BASE_LR times the number.
LR_MULTIPLIERS = {literal(multipliers)}
# "class_weights": the loss weighs each class by n / (classes * count);
# "sampler": each epoch draws samples (with replacement) class-balanced.
BALANCE = {literal(_balance(model, loss))}


def _under(name, prefixes):
    return any(not prefix or name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def make_optimizer(model):
    """Freeze FROZEN; one parameter group per learning rate for the rest."""
    groups = {{}}
    for name, parameter in model.named_parameters():
        if _under(name, FROZEN):
            parameter.requires_grad_(False)
            continue
        scale = next((m for prefix, m in LR_MULTIPLIERS.items() if _under(name, [prefix])), 1.0)
        groups.setdefault(scale, []).append(parameter)
    if not groups:
        raise SystemExit("every parameter is frozen: nothing would train")
    return OPTIMIZER([{{"params": params, "lr": BASE_LR * scale}} for scale, params in groups.items()],
                     **OPTIMIZER_ARGS)


def train_mode(model):
    model.train()
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and _under(name, KEPT_STATISTICS):
            module.eval()


def main(path, epochs=EPOCHS):
    torch.manual_seed(SEED)
    with np.load(path, allow_pickle=False) as arrays:
        x, y = preprocess(arrays["x"]), torch.as_tensor(arrays["y"])
    model = load()
    optimizer = make_optimizer(model)
    if BALANCE != "none":
        counts = torch.bincount(y, minlength=len(CLASS_NAMES or ())).clamp(min=1).to(torch.float32)
        if BALANCE == "class_weights":
            LOSS.weight = len(y) / (len(counts) * counts)
    for epoch in range(epochs):
        train_mode(model)
        if BALANCE == "sampler":
            order = torch.multinomial((1 / counts)[y], len(x), replacement=True)
        else:
            order = torch.randperm(len(x))
        total = 0.0
        for start in range(0, len(x), BATCH_SIZE):
            index = order[start:start + BATCH_SIZE]
            optimizer.zero_grad()
            loss = LOSS(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        print(f"epoch {{epoch + 1}}/{{epochs}}  loss {{total / len(x):.4f}}")
    from safetensors.torch import save_file

    save_file(model.state_dict(), RETRAINED)


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
'''
