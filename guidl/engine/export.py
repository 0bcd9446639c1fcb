"""Exporting trained models to files that plain PyTorch, LibTorch or ONNX
Runtime load, and the guidl bundle that ``guidl predict`` and the app open.

Every export is checked before it is kept: the file is written under a
temporary name beside its destination, loaded back the way its users would
load it, and its outputs on a real batch are compared with the trained
model's; only a file that passes is renamed into place, so a failed export
leaves nothing behind. Weights that are not finite are refused before
anything is written. The destination must be a new or a regular file
(never a device, a pipe or a folder). Reading a bundle or weights never
unpickles code (JSON, safetensors); see ``bundle`` for a bundle's limits and
``python_source`` for how the Python export keeps text out of its code.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import spec
from ..formatting import first_line, quote, shorten
from ..registry import DATASETS
from ..spec import Project, atomic_path, replace_file
from .build import ModelReport, analyze, build
from .bundle import (
    BUNDLE_FORMAT, META, PROJECT, SAMPLES, WEIGHTS, BundleError, check_fields, member_info, read_bundle,
)
from .graph import INPUT_SLOT, layer_modules
from .python_source import (
    SourceError, layer_source, module_name_problem, python_source, training_source,
)
from .safetensors_io import save as safetensors_bytes
from .safetensors_io import save_file as save_safetensors

FORMATS = {
    "onnx": ".onnx",
    "pt2": ".pt2",
    "torchscript": ".pt",
    "safetensors": ".safetensors",
    "state_dict": ".pth",
    "python": ".py",
    "bundle": ".guidl",
}
FORMAT_TITLES = {"onnx": "ONNX", "pt2": "torch.export", "torchscript": "TorchScript",
                 "safetensors": "safetensors", "state_dict": "state_dict", "python": "Python source",
                 "bundle": "guidl bundle"}
#: What one export holds: the project's model (a GAN's generator: noise in,
#: images out), an autoencoder's encoder or decoder (cut at its code layer),
#: or a GAN's discriminator.
PARTS = ("model", "encoder", "decoder", "discriminator")
ONNX_TOLERANCE = 1e-4
TOLERANCE = 1e-6
#: torch.export and TorchScript run the traced graph: nn.MultiheadAttention
#: then takes its plain path, not the fused one an eval-mode model runs, and a
#: deep transformer (a ViT backbone: 12 blocks) ends about 1e-6 apart.
TRACED_TOLERANCE = 1e-5
#: How long the check of a Python export may run (a fresh interpreter importing torch).
PYTHON_CHECK_TIMEOUT_S = 300

__all__ = [
    "BUNDLE_FORMAT", "FORMATS", "FORMAT_TITLES", "PARTS", "ExportError", "ExportResult", "TrainedModel",
    "check_python_module", "default_filename", "export", "layer_source", "load_bundle",
    "load_trained", "python_source", "training_source", "write_bundle",
]


class ExportError(ValueError):
    """An export that cannot be made; the message names the layer and format."""


@dataclass
class TrainedModel:
    project: Project
    #: An ``nn.Sequential`` for a stack, a ``graph.GraphModel`` for a graph.
    module: nn.Module
    report: ModelReport
    input_shape: tuple[int, ...]
    input_dtype: str
    task: str | None = None
    class_names: list[str] | None = None
    normalization: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    trained: bool = True
    samples: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: Which network of the project this is (``PARTS``).
    part: str = "model"
    #: How the data's values were scaled, when this network's outputs are data
    #: (a generator's, a decoder's): ``generation.to_pixels`` turns them back.
    output_normalization: dict[str, Any] | None = None

    @property
    def preprocessing(self) -> dict[str, Any] | None:
        """A pretrained backbone's image preprocessing (``images.Preprocessing.
        to_dict()``) when the model was trained with one: ``guidl predict`` and
        the Python export resize, crop and normalise images with it."""
        return self.meta.get("preprocessing")

    @classmethod
    def from_trainer(cls, trainer, part: str = "model") -> "TrainedModel":
        """The network ``part`` a ``Trainer`` has trained, on the CPU, with its data's facts."""
        import copy

        project = trainer.project
        _check_part(project, part, f"this {project.task_type or 'classification'} project")
        data = trainer.data
        task = getattr(trainer, "task", None)
        whole = trainer.model if part != "discriminator" else task.discriminator
        # Weights in the standard layout, whatever the training used (channels-last).
        module = copy.deepcopy(whole).cpu().to(memory_format=torch.contiguous_format).eval()
        history = trainer.history[-1].to_dict() if trainer.history else None
        run = {"dataset": data.info.to_dict(),
               "normalization": data.normalization.to_dict() if data.normalization else None,
               "preprocessing": getattr(data, "preprocessing", None),
               "evaluation": None, "final": history}
        if part == "discriminator":
            shape, dtype = _input_shapes(project, run)["discriminator"]
            report = analyze(_typed(project.discriminator, dtype), shape)
        else:
            report = trainer.built.report
        split = data.evaluation_split[1]
        real = split.take(torch.arange(min(8, len(split)))).detach().cpu().clone()
        return _network_model(project, part, run, module, report, trained=bool(trainer.history),
                              real=real)

    def example_batch(self, size: int = 8) -> torch.Tensor:
        """A real batch (samples of the evaluated split) when known, else a
        seeded random one of the right shape."""
        if self.samples is not None and len(self.samples):
            return self.samples[:size]
        generator = torch.Generator().manual_seed(0)
        if self.input_dtype == "int64":
            return torch.randint(0, self._token_limit(), (size, *self.input_shape), generator=generator)
        return torch.randn(size, *self.input_shape, generator=generator)

    def _token_limit(self) -> int:
        """Token ids below this suit every layer that takes the input: the
        smallest vocabulary of the embeddings there (2 without one)."""
        limits = []
        for module, layer in zip(layer_modules(self.module), self.report.layers):
            if INPUT_SLOT in layer.inputs:
                embedding = next((m for m in module.modules() if isinstance(m, nn.Embedding)), None)
                if embedding is not None:
                    limits.append(embedding.num_embeddings)
        return min(limits, default=2)


@dataclass
class ExportResult:
    path: Path
    format: str
    max_difference: float | None
    notes: list[str] = field(default_factory=list)
    opset: int | None = None


# -- loading trained models -------------------------------------------------------------

#: Room a weights file may take beyond its tensors' bytes: the JSON header
#: (names, shapes, offsets, metadata) and alignment.
WEIGHTS_HEADER_ROOM = 2**20


def weights_size_limit(module: nn.Module) -> int:
    """The most bytes a safetensors file of ``module``'s weights may hold:
    its tensors' bytes plus a tenth and a MiB of header room."""
    need = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    return need + need // 10 + WEIGHTS_HEADER_ROOM


def _check_weight_names(path: Path, expected: dict[str, torch.Tensor], source: str) -> None:
    """``ExportError`` when the file's header names a tensor the model lacks,
    lacks one it has, or gives another shape; read from the header alone,
    before any tensor is loaded."""
    from safetensors import SafetensorError, safe_open

    mismatch = f"{source}: the weights do not match the project's model"
    try:
        with safe_open(str(path), framework="pt") as weights:
            found = {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise ExportError(f"{source}: the weights cannot be read ({first_line(error)}); the file is "
                          "damaged or not a safetensors file") from None
    unexpected = [name for name in found if name not in expected]
    if unexpected:
        raise ExportError(f"{mismatch}: it holds {quote(unexpected[0])}, which the model has not"
                          + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))
    missing = [name for name in expected if name not in found]
    if missing:
        raise ExportError(f"{mismatch}: {quote(missing[0])} is missing")
    for name, shape in found.items():
        if shape != tuple(expected[name].shape):
            raise ExportError(f"{mismatch}: {quote(name)} has shape {shape}, the model's is "
                              f"{tuple(expected[name].shape)}")


def _load_weights(module: nn.Module, data: bytes | Path, source: str) -> None:
    """Load ``data`` (a safetensors file, or its bytes from a bundle, whose
    size the bundle bounds) into ``module``. A file is read only when it is a
    regular one no larger than the model's weights allow, and only after its
    header names exactly the model's tensors with their shapes."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if isinstance(data, Path):
        limit = weights_size_limit(module)
        try:
            with spec.open_regular_file(data, limit, "the weights file of this model") as handle:
                _check_weight_names(data, module.state_dict(), source)
                data = handle.read(limit + 1)
        except spec.UnreadableFileError as error:
            raise ExportError(str(error)) from None
        except OSError as error:
            raise ExportError(f"{source}: cannot be read: {error.strerror or error}") from None
        if len(data) > limit:
            raise ExportError(f"{source}: grew while it was read; read it again when it is complete")
    try:
        state = load(data)
    except (SafetensorError, OSError, ValueError) as error:
        raise ExportError(f"{source}: the weights cannot be read ({first_line(error)}); the file is "
                          "damaged or not a safetensors file") from None
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        raise ExportError(f"{source}: the weights do not match the project's model: "
                          f"{first_line(error)}") from None


def load_trained(path: str | Path, *, samples: bool = True, part: str = "model") -> TrainedModel:
    """A run folder, a ``.guidl`` bundle, or a project file (untrained).
    ``samples=False`` skips loading a run's dataset for a few real samples
    (exports check with them; predicting needs none). ``part`` (``PARTS``):
    the network to load (a bundle holds only its model)."""
    if part not in PARTS:
        raise ExportError(f"unknown part {part!r}; the parts are {', '.join(PARTS)}")
    path = Path(path)
    if path.is_dir():
        return _load_run(path, samples=samples, part=part)
    if not path.exists():
        raise ExportError(f"{path}: no such run folder, bundle or project file")
    if not path.is_file():
        raise ExportError(f"{path} {_kind(path)}, not a run folder, bundle or project file")
    if path.suffix == ".guidl" or zipfile.is_zipfile(path):
        if part != "model":
            raise ExportError(f"{path}: a bundle holds one network; export the {part} from the run "
                              "folder it came from")
        return load_bundle(path)
    project = spec.load(path)
    return _load_network(project, part, None, None, samples=False)


def _build(project: Project, input_shape, input_dtype: str | None = None, model: spec.Model | None = None):
    """``model`` (the project's model by default) built for ``input_shape``
    (else what the project and its dataset say), seeded as training seeds it."""
    from .data import expected_input

    shape, dtype = expected_input(project)
    shape = tuple(input_shape) if input_shape is not None else shape
    if shape is None:
        raise ExportError("the model's input shape is unknown: give model.input_shape in the project")
    torch.manual_seed(project.training.seed)
    return build(_typed(project.model if model is None else model, input_dtype or dtype), shape)


def _typed(model: spec.Model, dtype: str) -> spec.Model:
    import copy

    model = copy.deepcopy(model)
    model.input_dtype = dtype
    return model


def _check_part(project: Project, part: str, source: str) -> None:
    """``ExportError`` when the project has no network ``part``."""
    task = project.task_type
    if part == "discriminator" and task != "gan":
        raise ExportError(f"{source} is a {task or 'classification'} run: only a GAN has a "
                          "discriminator")
    if part in ("encoder", "decoder"):
        if task != "reconstruction":
            raise ExportError(f"{source} is a {task or 'classification'} run: only an autoencoder "
                              f"(task reconstruction with a code layer) has an {part}")
        if project.task_params().get("code_layer") is None:
            raise ExportError(f"{source}: the autoencoder has no code layer, so it has no {part} of "
                              "its own; set task.params.code_layer to the id of its bottleneck layer "
                              "and train again")


def _sample_input(project: Project, run: dict | None) -> tuple[tuple[int, ...] | None, str, dict]:
    """The data's sample shape and dtype and the dataset's facts (from the
    run record, else the project and the dataset catalogue)."""
    from .data import expected_input

    dataset = dict((run or {}).get("dataset") or {})
    if run and (dataset.get("input_shape") or run.get("input_shape")):
        shape = tuple(dataset.get("input_shape") or run["input_shape"])
        return shape, run.get("input_dtype") or dataset.get("input_dtype") or "float32", dataset
    plain = project.copy()
    if project.task_type == "gan":
        plain.model.input_shape = None  # the generator's: the data's comes from the dataset
    shape, dtype = expected_input(plain)
    entry = DATASETS.get(project.data.dataset) if project.data.dataset in DATASETS else None
    if entry is not None:
        dataset.setdefault("num_classes", entry.info.get("num_classes"))
        dataset.setdefault("task", entry.info.get("task"))
    return shape, dtype, dataset


def _input_shapes(project: Project, run: dict | None) -> dict[str, tuple[tuple[int, ...], str]]:
    """Each network's input (shape, dtype)."""
    from types import SimpleNamespace

    from . import tasks

    shape, dtype, dataset = _sample_input(project, run)
    if project.task_type != "gan":
        return {"model": (shape, dtype)}
    if shape is None or (project.task_params().get("conditional") and not dataset.get("num_classes")):
        info = _dataset_info(project)
        shape, dataset = tuple(info.input_shape), info.to_dict()
    info = SimpleNamespace(input_shape=shape, num_classes=dataset.get("num_classes"),
                           task=dataset.get("task") or "classification")
    return {name: (value, "float32") for name, value in tasks.input_shapes(project, info).items()}


def _dataset_info(project: Project):
    """The dataset's facts, by loading it (offline)."""
    from .data import DatasetError, prepare

    project = _offline(project)
    try:
        return prepare(project).info
    except (DatasetError, OSError, ValueError) as error:
        raise ExportError(f"the data's sample shape and classes are needed and the dataset does not "
                          f"load: {first_line(error)}") from None


def _offline(project: Project) -> Project:
    project = project.copy()
    if "download" in DATASETS.get(project.data.dataset).param_names:
        project.data.params["download"] = False  # exporting never starts a download
    return project


def _load_run(folder: Path, samples: bool = True, part: str = "model") -> TrainedModel:
    from .runs import RunError, read_run

    source = folder / "project.guidl.json"
    if not source.is_file():
        raise ExportError(f"{folder}: not a run folder (no project.guidl.json)")
    project = spec.load(source)
    run: dict[str, Any] = {}
    if (folder / "run.json").exists():
        try:
            run = read_run(folder)
        except RunError as error:
            raise ExportError(str(error)) from None
        problem = check_fields(run, ("input_shape", "input_dtype", "normalization", "preprocessing",
                                     "dataset"))
        if problem:
            raise ExportError(f"{folder / 'run.json'}: {problem}")
    return _load_network(project, part, run, folder, samples)


def _load_network(project: Project, part: str, run: dict | None, folder: Path | None,
                  samples: bool) -> TrainedModel:
    """The network ``part`` of ``project``, with the weights of the run in
    ``folder`` (none: untrained, the seeded initial weights)."""
    _check_part(project, part, str(folder) if folder is not None else f"the {project.name!r} project")
    network = "discriminator" if part == "discriminator" else "model"
    shape, dtype = _input_shapes(project, run)[network]
    if shape is None and network == "model" and project.model.input_shape is None:
        raise ExportError("the model's input shape is unknown: give model.input_shape in the project")
    built = _build(project, shape, dtype, project.network(network))
    trained = False
    if folder is not None:
        weights = folder / ("discriminator.safetensors" if network == "discriminator" else "model.safetensors")
        trained = weights.exists()
        if trained:
            if not weights.is_file():
                raise ExportError(f"{weights} {_kind(weights)}, not a weights file")
            _load_weights(built.module, weights, str(weights))
    real = None
    if samples and not (project.task_type == "gan" and part == "model"):  # noise goes in
        real = _real_samples(project, _sample_input(project, run)[0])
    model = _network_model(project, part, run, built.module, built.report, trained, real)
    problem = _normalization_problem(model) or _preprocessing_problem(model)
    if problem:
        where = folder / "run.json" if folder is not None else project.name
        raise ExportError(f"{where}: not a valid run record: {problem}")
    return model


def _network_model(project: Project, part: str, run: dict | None, module: nn.Module,
                   report: ModelReport, trained: bool, real: torch.Tensor | None) -> TrainedModel:
    """The ``TrainedModel`` of ``part`` from its whole network (``module``,
    weights loaded): an encoder or decoder is cut out of the autoencoder with
    the weights renamed; ``real``: a few normalised data samples, or None."""
    from .generation import noise
    from .parts import SplitError, part_weights, split_at_code

    run = run or {}
    dataset = run.get("dataset") or {}
    task = project.task_type
    params = project.task_params()
    normalization = run.get("normalization")
    meta = {"run": {k: run.get(k) for k in ("versions", "seed", "device", "status")}} if run else {}
    if run.get("preprocessing") and part in ("model", "encoder") and task != "gan":
        # The images the network takes in: the preprocessing holds their normalization.
        meta["preprocessing"] = run["preprocessing"]
        normalization = None
    labels = task in (None, "text_generation")
    own = project
    samples = real
    input_normalization = normalization
    output_normalization = normalization if task in ("reconstruction", "gan") else None
    if part in ("encoder", "decoder"):
        code = params["code_layer"]
        try:
            halves = split_at_code(project.model, code, report)
        except SplitError as error:
            raise ExportError(f"the autoencoder cannot be cut at its code layer: {error}") from None
        half = halves.encoder if part == "encoder" else halves.decoder
        shape = report.input_shape if part == "encoder" else tuple(half.input_shape)
        built = _build(project, shape, report.input_dtype if part == "encoder" else "float32", half)
        built.module.load_state_dict(part_weights(module.state_dict(), project.model, code, part))
        if part == "decoder":
            if real is not None:
                encoder = _build(project, report.input_shape, report.input_dtype, halves.encoder).module
                encoder.load_state_dict(part_weights(module.state_dict(), project.model, code, "encoder"))
                with torch.no_grad():
                    samples = encoder.eval()(real)
            else:
                samples = code_samples(run.get("code_stats"), tuple(half.input_shape), 8)
            input_normalization = None
        else:
            output_normalization = None
        own = _part_project(project, half, part)
        module, report = built.module, built.report
    elif part == "discriminator":
        own = _part_project(project, project.discriminator, part)
        output_normalization = None
        classes = report.input_shape[0] - (real.shape[1] if real is not None else 0)
        if params.get("conditional"):
            input_normalization = None  # the class rides along as extra channels or values
            samples = None if real is None or classes < 1 else _conditioned(real, classes)
    elif task == "gan":
        classes = report.input_shape[0] - int(params["noise_dim"])
        samples, _ = noise(params, 8, classes or None, seed=0)
        input_normalization = None
    return TrainedModel(
        project=own, module=module.eval(), report=report,
        input_shape=tuple(report.input_shape), input_dtype=report.input_dtype,
        task=dataset.get("task") if labels else (task if part == "model" else None),
        class_names=dataset.get("class_names") if labels else None,
        normalization=input_normalization,
        metrics=run.get("evaluation") or run.get("final"),
        trained=trained, samples=samples, meta={**meta, **({"part": part} if part != "model" else {})},
        part=part, output_normalization=output_normalization)


def _conditioned(x: torch.Tensor, classes: int) -> torch.Tensor:
    """Real samples as a conditional discriminator takes them: each with a
    class (in turn) as extra one-hot channels (images) or values (vectors)."""
    one_hot = nn.functional.one_hot(torch.arange(len(x)) % classes, classes).to(x.dtype)
    if x.ndim > 2:
        one_hot = one_hot.view(*one_hot.shape, *([1] * (x.ndim - 2))).expand(-1, -1, *x.shape[2:])
    return torch.cat([x, one_hot], dim=1)


def _part_project(project: Project, model: spec.Model, part: str) -> Project:
    """A project of its own for one network of ``project`` (its bundle and
    Python export hold that network as their model)."""
    own = project.copy()
    own.name = f"{project.name} {part}"
    own.model = _typed(model, model.input_dtype)
    own.task = None
    own.discriminator = None
    own.training.discriminator_optimizer = None
    return own


def code_samples(code_stats: dict | None, shape: tuple[int, ...], n: int, seed: int = 0) -> torch.Tensor:
    """``n`` codes of ``shape`` drawn from a normal distribution with the
    training codes' mean and deviation per value (``run.json``'s
    ``code_stats``), or the standard normal without them."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, *shape, generator=generator)
    if not code_stats:
        return z
    size = math.prod(shape)
    mean = torch.tensor(code_stats["mean"], dtype=torch.float32)
    std = torch.tensor(code_stats["std"], dtype=torch.float32)
    if mean.numel() != size or std.numel() != size:
        raise ExportError(f"run.json's code_stats hold {mean.numel()} values for a code of {size}")
    return z * std.reshape(shape) + mean.reshape(shape)


def _normalization_problem(model: TrainedModel) -> str | None:
    """Why ``model``'s normalization (from meta.json or run.json, of checked
    types) cannot apply to its inputs, or None: one mean and std per channel
    or feature (the first input dimension), or one for all; none for token ids."""
    normalization = model.normalization
    if normalization is None:
        return None
    if model.input_dtype == "int64":
        return "normalization is given for a model that takes token ids (int64), which are never normalised"
    features = model.input_shape[0] if model.input_shape else 1
    for key in ("mean", "std"):
        count = len(normalization[key])
        if count not in (1, features):
            return (f"normalization has {count} {key} values for a model whose input "
                    f"{tuple(model.input_shape)} has {features} channels or features (1 or "
                    f"{features} were expected)")
    return None


def _preprocessing_problem(model: TrainedModel) -> str | None:
    """Why ``model``'s image preprocessing (of checked types) cannot make its
    inputs, or None: the crop must be the input's height and width, with a
    mean and std per channel (or one for all); it replaces the normalization."""
    preprocessing = model.preprocessing
    if preprocessing is None:
        return None
    shape = tuple(model.input_shape)
    crop = preprocessing["crop"]
    channels = len(preprocessing["mean"])
    if model.input_dtype != "float32" or len(shape) != 3 or shape[1:] != (crop, crop) \
            or channels not in (1, shape[0]):
        return (f"preprocessing makes {channels if channels > 1 else 'C'}x{crop}x{crop} images, "
                f"the model takes {model.input_dtype} inputs of {shape}")
    if model.normalization is not None:
        return "both normalization and preprocessing are given; a backbone's images take only preprocessing"
    return None


def _real_samples(project: Project, shape, count: int = 8) -> torch.Tensor | None:
    """A few normalised samples of the project's data, when it loads (offline)."""
    from .data import DatasetError, prepare

    project = _offline(project)
    if "cache" in DATASETS.get(project.data.dataset).param_names:
        # An image folder streamed: only the few samples are decoded, not every photo.
        project.data.params.update(cache="stream", workers=0)
    try:
        data = prepare(project)
    except (DatasetError, OSError, ValueError):
        return None
    split = data.evaluation_split[1]
    real = split.take(torch.arange(min(count, len(split))))
    if shape is None or tuple(real.shape[1:]) != tuple(shape):
        return None
    return real.clone()


# -- the bundle ------------------------------------------------------------------------------

#: Weights larger than this are stored, not deflated: deflate saves under a
#: tenth of trained float weights and takes seconds for a pretrained backbone's.
STORED_WEIGHTS_BYTES = 4 * 2**20


def _bundle_bytes(model: TrainedModel, handle) -> None:
    meta = {
        "format": BUNDLE_FORMAT, "version": 1,
        "name": model.project.name,
        "input_shape": list(model.input_shape), "input_dtype": model.input_dtype,
        "task": model.task, "class_names": model.class_names,
        "normalization": model.normalization, "metrics": model.metrics, "trained": model.trained,
        # A generator's or decoder's outputs are scaled pixels: how to turn them back.
        "output_normalization": model.output_normalization,
        "versions": _versions(), **model.meta,
    }
    weights = {k: v.detach().contiguous().cpu() for k, v in model.module.state_dict().items()}
    with zipfile.ZipFile(handle, "w") as archive:
        archive.writestr(*member_info(PROJECT, spec.dumps(model.project).encode("utf-8")))
        data = safetensors_bytes(weights)
        archive.writestr(*member_info(WEIGHTS, data, compress=len(data) <= STORED_WEIGHTS_BYTES))
        archive.writestr(*member_info(META, (json.dumps(meta, indent=2, allow_nan=False, default=str)
                                             + "\n").encode("utf-8")))
        if model.samples is not None:
            archive.writestr(*member_info(SAMPLES, safetensors_bytes({"x": model.samples.contiguous().cpu()})))


def write_bundle(model: TrainedModel, path: Path) -> None:
    """Write ``model`` as a bundle at ``path`` (atomically; not checked: see ``export``)."""
    with atomic_path(path) as tmp:
        _bundle_bytes(model, tmp)


def load_bundle(path: Path) -> TrainedModel:
    """The model in the bundle at ``path``; ``ExportError`` ("not a valid
    guidl bundle: ...") for a file that is not one."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    source = str(path)
    try:
        contents = read_bundle(path)
    except BundleError as error:
        raise ExportError(str(error)) from None
    meta = contents.meta
    project = spec.loads(contents.project_text, source=f"{source}:project.guidl.json")
    built = _build(project, meta.get("input_shape"), meta.get("input_dtype"))
    _load_weights(built.module, contents.weights, source)
    model = TrainedModel(project, built.module.eval(), built.report, tuple(built.report.input_shape),
                         built.report.input_dtype, meta.get("task"), meta.get("class_names"),
                         meta.get("normalization"), meta.get("metrics"), bool(meta.get("trained", True)),
                         meta={k: v for k, v in meta.items() if k in ("run", "part", "preprocessing")},
                         part=meta.get("part") if meta.get("part") in PARTS else "model",
                         output_normalization=meta.get("output_normalization"))
    problem = _normalization_problem(model) or _preprocessing_problem(model)
    if problem:
        raise ExportError(f"{source}: not a valid guidl bundle: {problem}")
    if contents.samples is not None:
        try:
            samples = load(contents.samples)["x"]
        except (SafetensorError, KeyError, ValueError):
            raise ExportError(f"{source}: not a valid guidl bundle: its samples are damaged") from None
        want = torch.int64 if model.input_dtype == "int64" else torch.float32
        if tuple(samples.shape[1:]) != model.input_shape or samples.dtype != want:
            raise ExportError(f"{source}: not a valid guidl bundle: its samples do not match the "
                              f"model's input {model.input_shape}")
        model.samples = samples
    return model


def _versions() -> dict[str, str]:
    from .callbacks import versions

    return versions()


# -- where an export may go --------------------------------------------------------------------

def _kind(path: Path) -> str:
    """What ``path`` is, when it is not a regular file ("a folder", ...)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "not readable"
    for test, text in ((stat.S_ISDIR, "is a folder"), (stat.S_ISFIFO, "is a named pipe (FIFO)"),
                       (stat.S_ISCHR, "is a character device"), (stat.S_ISBLK, "is a block device"),
                       (stat.S_ISSOCK, "is a socket")):
        if test(mode):
            return text
    return "is a special file"


def _destination(path: Path) -> Path:
    """The absolute file an export to ``path`` writes: through a symbolic
    link to its target; ``ExportError`` when that is anything but a new or
    a regular file, or its folder is missing."""
    real = Path(os.path.realpath(path))
    if not real.parent.is_dir():
        raise ExportError(f"{path.parent}: no such folder")
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return real
    except OSError as error:
        raise ExportError(f"{path}: cannot be written ({error.strerror})") from None
    if not stat.S_ISREG(mode):
        raise ExportError(f"{path} {_kind(real)}, not a regular file: an export is written only "
                          "to a new file or over a regular one; choose another path with -o")
    if not os.access(real.parent, os.W_OK):
        raise ExportError(f"{real.parent}: this folder cannot be written to")
    return real


def check_finite_weights(model: TrainedModel) -> None:
    """``ExportError`` naming the first tensor of ``model`` with a NaN or an infinity."""
    for name, tensor in model.module.state_dict().items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ExportError(f"the weights are not finite: {name} holds {bad} NaN or infinite "
                              f"value{'s' if bad != 1 else ''} of {tensor.numel()}; the training "
                              "diverged (try a lower learning rate, or gradient clipping) and "
                              "nothing was written")


# -- formats --------------------------------------------------------------------------------

def _compare(expected: torch.Tensor, got) -> float:
    """The largest difference between two outputs; a NaN or an infinity on
    one side only counts as an infinite difference."""
    got = torch.as_tensor(got).to(expected.dtype)
    if got.shape != expected.shape:
        raise ExportError(f"the exported model gives shape {tuple(got.shape)}, the original "
                          f"{tuple(expected.shape)}")
    if not expected.numel():
        return 0.0
    difference = (got - expected).abs()
    same = (got == expected) | (got.isnan() & expected.isnan())
    difference = torch.where(same, torch.zeros_like(difference), difference)
    return float(torch.nan_to_num(difference, nan=float("inf")).max())


def _onnx(model: TrainedModel, path: Path, x: torch.Tensor) -> tuple[float, int]:
    import onnx
    import onnxruntime

    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buffer = io.StringIO()
        from contextlib import redirect_stdout

        with redirect_stdout(buffer):  # the exporter narrates every step
            torch.onnx.export(model.module, (x,), str(path), dynamo=True, external_data=False,
                              dynamic_shapes=({0: batch},), input_names=["input"],
                              output_names=["output"])
        proto = onnx.load(str(path))
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        bigger = torch.cat([x, x[:1]])  # a batch size other than the traced one
        got = session.run(None, {"input": bigger.numpy()})[0]
        with torch.no_grad():
            difference = _compare(model.module(bigger), got)
    return difference, opset


def _pt2(model: TrainedModel, path: Path, x: torch.Tensor) -> tuple[float, None]:
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notes on its own modules (recurrent weights)
        program = torch.export.export(model.module, (x,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    loaded = torch.export.load(str(path)).module()
    with torch.no_grad():
        return _compare(model.module(x), loaded(x)), None


def _torchscript(model: TrainedModel, path: Path, x: torch.Tensor) -> tuple[float, None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
        traced = torch.jit.trace(model.module, (x,), check_trace=False)
        traced.save(str(path))
        loaded = torch.jit.load(str(path))
        bigger = torch.cat([x, x[:1]])
        with torch.no_grad():
            return _compare(model.module(bigger), loaded(bigger)), None


def _safetensors(model: TrainedModel, path: Path, x: torch.Tensor) -> tuple[float, None]:
    from safetensors.torch import load_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.module.state_dict().items()}
    save_safetensors(state, path, metadata={"format": "guidl-weights", "project": model.project.name})
    return _reloaded_difference(model, load_file(str(path)), x), None


def _state_dict(model: TrainedModel, path: Path, x: torch.Tensor) -> tuple[float, None]:
    state = {k: v.detach().cpu().clone() for k, v in model.module.state_dict().items()}
    torch.save(state, str(path))
    return _reloaded_difference(model, torch.load(str(path), weights_only=True), x), None


def _bundle(model: TrainedModel, path: Path, x: torch.Tensor) -> tuple[float, None]:
    _bundle_bytes(model, path)
    return _compare_models(model, load_bundle(path), x), None


def _reloaded_difference(model: TrainedModel, state: dict, x: torch.Tensor) -> float:
    import copy

    fresh = copy.deepcopy(model.module)
    fresh.load_state_dict(state)
    with torch.no_grad():
        return _compare(model.module(x), fresh.eval()(x))


#: Each single-file format: write ``model`` to a path, load it back, return
#: (largest difference on the batch, ONNX opset or None).
_WRITERS = {"onnx": _onnx, "pt2": _pt2, "torchscript": _torchscript, "safetensors": _safetensors,
            "state_dict": _state_dict, "bundle": _bundle}


def _accept(fmt: str, difference: float) -> None:
    limit = {"onnx": ONNX_TOLERANCE, "pt2": TRACED_TOLERANCE, "torchscript": TRACED_TOLERANCE}.get(fmt, TOLERANCE)
    if not difference <= limit:
        who = "ONNX Runtime's outputs differ from PyTorch's" if fmt == "onnx" else \
            f"the {FORMAT_TITLES[fmt]} file's outputs differ from the model's"
        raise ExportError(f"{who} by {difference:.3g} (more than {limit}); nothing was written")


def export(model: TrainedModel, fmt: str, path: str | Path, *, training_script: bool = False) -> ExportResult:
    """Write ``model`` as ``fmt`` to ``path`` and check it; ``ExportError``
    names the layer the format cannot express. A file that fails its check
    is never left at ``path``."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; the formats are {', '.join(FORMATS)}")
    if training_script and (model.part != "model"
                            or model.project.task_type in ("gan", "reconstruction")):
        what = (f"the {model.part}" if model.part != "model" else
                {"gan": "a GAN", "reconstruction": "an autoencoder"}[model.project.task_type])
        raise ExportError(f"the training script trains one network on inputs and their labels; "
                          f"{what} trains otherwise (guidl train does): export without "
                          "--training-script")
    path = Path(path)
    target = _destination(path)
    check_finite_weights(model)
    notes = []
    if not model.trained:
        notes.append("the model is untrained: its weights are the random initial ones")
    x = model.example_batch()
    model.module.eval()
    opset = None
    try:
        if fmt == "python":
            difference = _python(model, path, x, training_script)
            notes.append(f"weights written beside it: {path.with_suffix('.safetensors').name}")
            if training_script:
                notes.append(f"training script: {_train_script_path(path).name}")
        else:
            with atomic_path(target) as tmp:
                difference, opset = _WRITERS[fmt](model, tmp, x)
                _accept(fmt, difference)
    except ExportError:
        raise
    except OSError as error:
        where = error.filename or target
        raise ExportError(f"cannot write {where}: {error.strerror or error}") from None
    except Exception as error:  # noqa: BLE001 - find the layer the format cannot express
        raise ExportError(_explain_failure(model, fmt, error)) from None
    return ExportResult(path, fmt, difference, notes, opset)


def _compare_models(model: TrainedModel, other: TrainedModel, x: torch.Tensor) -> float:
    with torch.no_grad():
        return _compare(model.module(x), other.module(x))


_TERMINAL_COLOURS = re.compile(r"\x1b\[[0-9;]*m")
_NO_ONNX_FUNCTION = re.compile(r"No ONNX function found for <OpOverload\(op='([\w.]+)'")


def _failure_reason(error: BaseException) -> str:
    """What an exporter's error says, in one line: torch's ONNX exporter
    opens with generic advice (in terminal colours) and names the operator
    it cannot translate further down."""
    text = _TERMINAL_COLOURS.sub("", str(error))
    missing = _NO_ONNX_FUNCTION.search(text)
    if missing:
        return f"torch's ONNX exporter has no translation for {missing.group(1)}"
    return first_line(text) or type(error).__name__


def _explain_failure(model: TrainedModel, fmt: str, error: BaseException) -> str:
    """Export each layer alone, on the inputs it gets in the model, to find
    the first one the format cannot express (inside a block, the block's
    layer too)."""
    title = FORMAT_TITLES[fmt]
    cause = _failure_reason(error)
    if fmt in _LAYER_WRITERS:
        try:
            with torch.no_grad():
                found = _failing_layer(model.module, model.report, model.example_batch(2), fmt, model)
        except Exception:  # noqa: BLE001 - the model itself fails: say what the exporter said
            found = None
        if found is not None:
            where, reason = found
            return f"{where} cannot be expressed in {title}: {reason or cause}. The other formats may still work."
    return f"the model cannot be exported to {title}: {cause}"


#: The formats that trace the model, where one layer can be tried alone.
_LAYER_WRITERS = {"onnx": (_onnx, ".onnx"), "pt2": (_pt2, ".pt2"), "torchscript": (_torchscript, ".pt")}


def _layer_inputs(module: nn.Module, x: torch.Tensor) -> dict[int, tuple]:
    """The arguments each layer of ``module`` gets on ``x``, by index (a
    layer whose output does not reach the output is not run: none)."""
    captured: dict[int, tuple] = {}

    def record(index: int, _module: nn.Module, args: tuple, _output) -> None:
        captured.setdefault(index, args)  # a hook returning a value would replace the output

    handles = [layer.register_forward_hook(partial(record, index))
               for index, layer in enumerate(layer_modules(module))]
    try:
        module(x)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def _failing_layer(module: nn.Module, report: ModelReport, x: torch.Tensor, fmt: str,
                   model: TrainedModel) -> tuple[str, str] | None:
    """``("layer 2 'conv' (Conv2d)", reason)`` for the first layer of
    ``module`` that ``fmt`` cannot express alone, or None. Merges (plain
    additions, products and concatenations) are not tried."""
    inputs = _layer_inputs(module, x)
    for index, (layer, layer_report) in enumerate(zip(layer_modules(module), report.layers)):
        args = inputs.get(index)
        if args is None or len(args) != 1:
            continue
        reason = _single_layer_failure(layer, args[0], fmt, model)
        if reason is None:
            continue
        where = f"layer {index}" + (f" {quote(layer_report.id)}" if layer_report.id else "") + \
            f" ({layer_report.type})"
        repetitions = list(layer) if layer_report.blocks and len(layer_report.blocks) > 1 else [layer]
        value = args[0]
        for repetition, (block, nested) in enumerate(zip(repetitions, layer_report.blocks)):
            inner = _failing_layer(block, nested, value, fmt, model)
            if inner is not None:
                which = f", repetition {repetition + 1}," if len(layer_report.blocks) > 1 else ","
                return f"{where}{which} its {inner[0]}", inner[1]
            value = block(value)
        return where, reason
    return None


def _single_layer_failure(layer: nn.Module, x: torch.Tensor, fmt: str, model: TrainedModel) -> str | None:
    """Why ``fmt`` cannot express ``layer`` alone on ``x``, or None."""
    writer, suffix = _LAYER_WRITERS[fmt]
    try:
        with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            single = TrainedModel(model.project, nn.Sequential(layer).eval(), model.report,
                                  tuple(x.shape[1:]), "int64" if x.dtype == torch.int64 else "float32")
            single.samples = x
            writer(single, Path(folder) / f"layer{suffix}", x)
    except Exception as layer_error:  # noqa: BLE001 - this is the layer we are looking for
        return _failure_reason(layer_error)
    return None


# -- Python source -----------------------------------------------------------------------------

def _train_script_path(path: Path) -> Path:
    return path.with_name(path.stem + "_train.py")


def _python(model: TrainedModel, path: Path, x: torch.Tensor, training_script: bool) -> float:
    """Write the module, its weights and (with ``training_script``) the
    training script into a temporary folder beside ``path``, check them
    there, and only then move each into place."""
    if path.suffix != ".py":
        raise ExportError(f"{path.name}: Python source must be written to a .py file")
    problem = module_name_problem(path.stem)
    if problem:
        raise ExportError(f"{path.name}: {problem}")
    weights = path.with_suffix(".safetensors")
    files = {path.name: _destination(path), weights.name: _destination(weights)}
    if training_script:
        script = _train_script_path(path)
        files[script.name] = _destination(script)
    try:
        sources = {path.name: python_source(model, weights.name)}
        if training_script:
            sources[script.name] = training_source(model, path.stem)
    except SourceError as error:
        raise ExportError(f"the Python source cannot be written: {error}") from None
    for name, source in sources.items():
        try:
            compile(source, name, "exec", dont_inherit=True)  # compiling runs nothing
        except SyntaxError as error:
            raise ExportError(f"the generated {name} does not compile ({error.msg}, line "
                              f"{error.lineno}); this is a bug in guidl") from None
    staging = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=".tmp", dir=files[path.name].parent))
    try:
        _safetensors(model, staging / weights.name, x)
        for name, source in sources.items():
            (staging / name).write_text(source, encoding="utf-8")
        difference = check_python_module(staging / path.name, x, model)
        _accept("python", difference)
        # The weights first and the module last: a module is never beside older weights.
        order = [weights.name] + [n for n in sources if n != path.name] + [path.name]
        for name in order:
            replace_file(staging / name, files[name])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return difference


#: Run in a fresh interpreter, with the paths as arguments (never in the code):
#: imports the generated module by its absolute path, without guidl.
_CHECK = """\
import importlib.util, sys
sys.modules['guidl'] = None  # the module must not need guidl
import torch
module_path, name, inputs, outputs = sys.argv[1:5]
spec = importlib.util.spec_from_file_location(name, module_path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
x = torch.load(inputs, weights_only=True)
with torch.no_grad():
    torch.save(module.load()(x), outputs)
"""


def python_check_command(path: Path, inputs: Path, outputs: Path) -> list[str]:
    """The command that runs the generated module at ``path`` on ``inputs``:
    only options every Python guidl supports (3.10 and later) understands."""
    return [sys.executable, "-c", _CHECK, str(path), path.stem, str(inputs), str(outputs)]


def check_python_module(path: Path, x: torch.Tensor, model: TrainedModel) -> float:
    """Run the generated module in a fresh interpreter (without guidl) and
    compare its outputs with the model's."""
    path = Path(path).absolute()
    with tempfile.TemporaryDirectory() as folder:
        inputs = Path(folder) / "x.pt"
        outputs = Path(folder) / "y.pt"
        torch.save(x, inputs)
        try:
            # No -P (Python 3.11+) nor -I (it drops the user's site-packages, where torch
            # may be): the working folder that -c puts on sys.path is this empty one.
            result = subprocess.run(python_check_command(path, inputs, outputs), capture_output=True,
                                    text=True, cwd=folder, timeout=PYTHON_CHECK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ExportError(f"the generated {path.name} did not finish within "
                              f"{PYTHON_CHECK_TIMEOUT_S} s") from None
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            last = shorten(lines[-1]) if lines else ""  # the exception the module raised
            raise ExportError(f"the generated {path.name} does not run: {last}")
        with torch.no_grad():
            return _compare(model.module(x), torch.load(outputs, weights_only=True))


def default_filename(model: TrainedModel, fmt: str) -> str:
    """A file name from the project's name: ASCII letters, digits and
    underscores (a valid module name for the Python export)."""
    name = model.project.name.lower()
    stem = "".join(c if c.isascii() and c.isalnum() else "_" for c in name).strip("_") or "model"
    if stem[0].isdigit():
        stem = "model_" + stem
    if fmt == "python" and module_name_problem(stem):
        stem += "_model"
    return stem + FORMATS[fmt]
