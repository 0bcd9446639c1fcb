"""Exporting trained models to files that plain PyTorch, LibTorch or ONNX
Runtime load, and the guidl bundle that ``guidl predict`` and the app open.

Every export is checked after writing: the file is loaded back the way its
users would load it and its outputs on a real batch are compared with the
trained model's. Files are written atomically; reading a bundle or weights
never unpickles code (JSON, safetensors).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import spec
from ..registry import DATASETS, LAYERS, REQUIRED
from ..spec import Project, atomic_path
from .build import ModelReport, build

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
ONNX_TOLERANCE = 1e-4
TOLERANCE = 1e-6
BUNDLE_FORMAT = "guidl-bundle"
MAX_BUNDLE_MEMBER = 4 * 2**30


class ExportError(ValueError):
    """An export that cannot be made; the message names the layer and format."""


@dataclass
class TrainedModel:
    project: Project
    module: nn.Sequential
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

    @classmethod
    def from_trainer(cls, trainer) -> "TrainedModel":
        """The model a ``Trainer`` has trained, on the CPU, with its data's facts."""
        import copy

        # Weights in the standard layout, whatever the training used (channels-last).
        module = copy.deepcopy(trainer.model).cpu().to(memory_format=torch.contiguous_format).eval()
        data = trainer.data
        split = data.evaluation_split[1]
        history = trainer.history[-1].to_dict() if trainer.history else None
        return cls(trainer.project, module, trainer.built.report, tuple(data.info.input_shape),
                   data.info.input_dtype, data.info.task, data.info.class_names,
                   data.normalization.to_dict() if data.normalization else None, history,
                   trained=bool(trainer.history), samples=split.x[:8].detach().cpu().clone())

    def example_batch(self, size: int = 8) -> torch.Tensor:
        """A real batch (samples of the evaluated split) when known, else a
        seeded random one of the right shape."""
        if self.samples is not None and len(self.samples):
            return self.samples[:size]
        generator = torch.Generator().manual_seed(0)
        if self.input_dtype == "int64":
            first = self.module[0] if len(self.module) else None
            high = first.num_embeddings if isinstance(first, nn.Embedding) else 2
            return torch.randint(0, high, (size, *self.input_shape), generator=generator)
        return torch.randn(size, *self.input_shape, generator=generator)


@dataclass
class ExportResult:
    path: Path
    format: str
    max_difference: float | None
    notes: list[str] = field(default_factory=list)
    opset: int | None = None


# -- loading trained models -------------------------------------------------------------

def _load_weights(module: nn.Module, data: bytes | Path, source: str) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load, load_file

    try:
        state = load_file(str(data)) if isinstance(data, Path) else load(data)
    except (SafetensorError, OSError, ValueError) as error:
        raise ExportError(f"{source}: the weights cannot be read ({error}); the file is damaged "
                          "or not a safetensors file") from None
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        raise ExportError(f"{source}: the weights do not match the project's model: "
                          f"{str(error).splitlines()[0]}") from None


def load_trained(path: str | Path) -> TrainedModel:
    """A run folder, a ``.guidl`` bundle, or a project file (untrained)."""
    path = Path(path)
    if path.is_dir():
        return _load_run(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such run folder, bundle or project file")
    if path.suffix == ".guidl" or zipfile.is_zipfile(path):
        return load_bundle(path)
    project = spec.load(path)
    return _trained(project, _build(project, None), None, trained=False)


def _build(project: Project, input_shape, input_dtype: str | None = None):
    from .data import expected_input

    shape, dtype = expected_input(project)
    shape = tuple(input_shape) if input_shape is not None else shape
    if shape is None:
        raise ExportError("the model's input shape is unknown: give model.input_shape in the project")
    copy = project.copy()
    copy.model.input_dtype = input_dtype or dtype
    torch.manual_seed(project.training.seed)
    return build(copy, shape)


def _trained(project, built, run: dict | None, trained: bool = True) -> TrainedModel:
    module = built.module.eval()
    dataset = (run or {}).get("dataset") or {}
    return TrainedModel(
        project=project, module=module, report=built.report,
        input_shape=tuple(built.report.input_shape), input_dtype=built.report.input_dtype,
        task=dataset.get("task"), class_names=dataset.get("class_names"),
        normalization=(run or {}).get("normalization"),
        metrics=(run or {}).get("evaluation") or (run or {}).get("final"),
        trained=trained, meta={"run": {k: run.get(k) for k in ("versions", "seed", "device", "status")}}
        if run else {})


def _load_run(folder: Path) -> TrainedModel:
    source = folder / "project.guidl.json"
    if not source.is_file():
        raise ExportError(f"{folder}: not a run folder (no project.guidl.json)")
    project = spec.load(source)
    run: dict[str, Any] = {}
    if (folder / "run.json").is_file():
        try:
            run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ExportError(f"{folder / 'run.json'}: cannot be read ({error})") from None
    built = _build(project, run.get("input_shape"), run.get("input_dtype"))
    weights = folder / "model.safetensors"
    trained = weights.is_file()
    if trained:
        _load_weights(built.module, weights, str(weights))
    model = _trained(project, built, run, trained)
    model.samples = _real_samples(project, model)
    return model


def _real_samples(project: Project, model: TrainedModel, count: int = 8) -> torch.Tensor | None:
    """A few normalised samples of the project's data, when it loads (offline)."""
    from .data import DatasetError, prepare

    project = project.copy()
    if "download" in DATASETS.get(project.data.dataset).param_names:
        project.data.params["download"] = False  # exporting never starts a download
    try:
        data = prepare(project)
    except (DatasetError, OSError, ValueError):
        return None
    split = data.evaluation_split[1]
    if tuple(split.x.shape[1:]) != model.input_shape:
        return None
    return split.x[:count].clone()


# -- the bundle ------------------------------------------------------------------------------

def write_bundle(model: TrainedModel, path: Path) -> None:
    from safetensors.torch import save

    meta = {
        "format": BUNDLE_FORMAT, "version": 1,
        "name": model.project.name,
        "input_shape": list(model.input_shape), "input_dtype": model.input_dtype,
        "task": model.task, "class_names": model.class_names,
        "normalization": model.normalization, "metrics": model.metrics, "trained": model.trained,
        "versions": _versions(), **model.meta,
    }
    weights = {k: v.detach().contiguous().cpu() for k, v in model.module.state_dict().items()}
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("project.guidl.json", spec.dumps(model.project))
        archive.writestr("model.safetensors", save(weights))
        archive.writestr("meta.json", json.dumps(meta, indent=2, allow_nan=False, default=str) + "\n")
        if model.samples is not None:
            archive.writestr("samples.safetensors", save({"x": model.samples.contiguous().cpu()}))


def load_bundle(path: Path) -> TrainedModel:
    from safetensors import SafetensorError
    from safetensors.torch import load

    source = str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = {"project.guidl.json", "model.safetensors", "meta.json"} - names
            if missing:
                raise ExportError(f"{source}: not a guidl bundle (missing {', '.join(sorted(missing))})")
            for info in archive.infolist():
                if info.file_size > MAX_BUNDLE_MEMBER:
                    raise ExportError(f"{source}: {info.filename} is implausibly large")
            project_text = archive.read("project.guidl.json").decode("utf-8")
            meta = json.loads(archive.read("meta.json").decode("utf-8"))
            weights = archive.read("model.safetensors")
            samples = archive.read("samples.safetensors") if "samples.safetensors" in names else None
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as error:
        raise ExportError(f"{source}: not a readable guidl bundle ({error}): the file is damaged "
                          "or truncated") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"{source}: the bundle's metadata is damaged ({error})") from None
    except (OSError, KeyError) as error:
        raise ExportError(f"{source}: cannot be read ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise ExportError(f"{source}: not a guidl bundle")
    project = spec.loads(project_text, source=f"{source}:project.guidl.json")
    built = _build(project, meta.get("input_shape"), meta.get("input_dtype"))
    _load_weights(built.module, weights, source)
    model = TrainedModel(project, built.module.eval(), built.report, tuple(built.report.input_shape),
                         built.report.input_dtype, meta.get("task"), meta.get("class_names"),
                         meta.get("normalization"), meta.get("metrics"), bool(meta.get("trained", True)),
                         meta={k: v for k, v in meta.items() if k == "run"})
    if samples is not None:
        try:
            model.samples = load(samples)["x"]
        except (SafetensorError, KeyError):
            raise ExportError(f"{source}: the bundle's samples are damaged") from None
    return model


def _versions() -> dict[str, str]:
    from .callbacks import versions

    return versions()


# -- formats --------------------------------------------------------------------------------

def _compare(expected: torch.Tensor, got) -> float:
    got = torch.as_tensor(got).to(expected.dtype)
    if got.shape != expected.shape:
        raise ExportError(f"the exported model gives shape {tuple(got.shape)}, the original "
                          f"{tuple(expected.shape)}")
    return float((got - expected).abs().max()) if expected.numel() else 0.0


def _onnx(model: TrainedModel, path: Path, x: torch.Tensor) -> tuple[float, int]:
    import onnx
    import onnxruntime

    batch = torch.export.Dim("batch", min=1)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buffer = io.StringIO()
        from contextlib import redirect_stdout

        with redirect_stdout(buffer):  # the exporter narrates every step
            torch.onnx.export(model.module, (x,), str(tmp), dynamo=True, external_data=False,
                              dynamic_shapes=({0: batch},), input_names=["input"],
                              output_names=["output"])
        proto = onnx.load(str(tmp))
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        bigger = torch.cat([x, x[:1]])  # a batch size other than the traced one
        got = session.run(None, {"input": bigger.numpy()})[0]
        with torch.no_grad():
            difference = _compare(model.module(bigger), got)
        if difference > ONNX_TOLERANCE:
            raise ExportError(f"ONNX Runtime's outputs differ from PyTorch's by {difference:.3g} "
                              f"(more than {ONNX_TOLERANCE})")
    return difference, opset


def _pt2(model: TrainedModel, path: Path, x: torch.Tensor) -> float:
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model.module, (x,), dynamic_shapes=({0: batch},))
    with atomic_path(path) as tmp:
        torch.export.save(program, str(tmp))
        loaded = torch.export.load(str(tmp)).module()
        with torch.no_grad():
            return _compare(model.module(x), loaded(x))


def _torchscript(model: TrainedModel, path: Path, x: torch.Tensor) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
        traced = torch.jit.trace(model.module, (x,), check_trace=False)
        with atomic_path(path) as tmp:
            traced.save(str(tmp))
            loaded = torch.jit.load(str(tmp))
            bigger = torch.cat([x, x[:1]])
            with torch.no_grad():
                return _compare(model.module(bigger), loaded(bigger))


def _safetensors(model: TrainedModel, path: Path, x: torch.Tensor) -> float:
    from safetensors.torch import load_file, save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": "guidl-weights", "project": model.project.name})
        return _reloaded_difference(model, load_file(str(tmp)), x)


def _state_dict(model: TrainedModel, path: Path, x: torch.Tensor) -> float:
    state = {k: v.detach().cpu().clone() for k, v in model.module.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(state, str(tmp))
        return _reloaded_difference(model, torch.load(str(tmp), weights_only=True), x)


def _reloaded_difference(model: TrainedModel, state: dict, x: torch.Tensor) -> float:
    import copy

    fresh = copy.deepcopy(model.module)
    fresh.load_state_dict(state)
    with torch.no_grad():
        return _compare(model.module(x), fresh.eval()(x))


def export(model: TrainedModel, fmt: str, path: str | Path, *, training_script: bool = False) -> ExportResult:
    """Write ``model`` as ``fmt`` to ``path`` and check it; ``ExportError``
    names the layer the format cannot express."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; the formats are {', '.join(FORMATS)}")
    path = Path(path)
    if not path.parent.exists():
        raise ExportError(f"{path.parent}: no such folder")
    notes = []
    if not model.trained:
        notes.append("the model is untrained: its weights are the random initial ones")
    x = model.example_batch()
    model.module.eval()
    opset = None
    try:
        if fmt == "onnx":
            difference, opset = _onnx(model, path, x)
        elif fmt == "pt2":
            difference = _pt2(model, path, x)
        elif fmt == "torchscript":
            difference = _torchscript(model, path, x)
        elif fmt == "safetensors":
            difference = _safetensors(model, path, x)
        elif fmt == "state_dict":
            difference = _state_dict(model, path, x)
        elif fmt == "python":
            difference = _python(model, path, x, training_script)
            notes.append(f"weights written beside it: {path.with_suffix('.safetensors').name}")
            if training_script:
                notes.append(f"training script: {_train_script_path(path).name}")
        else:
            write_bundle(model, path)
            difference = _compare_models(model, load_bundle(path), x)
    except ExportError:
        raise
    except Exception as error:  # noqa: BLE001 - find the layer the format cannot express
        raise ExportError(_explain_failure(model, fmt, error)) from None
    if fmt != "onnx" and difference > TOLERANCE:
        raise ExportError(f"the {FORMAT_TITLES[fmt]} file's outputs differ from the model's by "
                          f"{difference:.3g}")
    return ExportResult(path, fmt, difference, notes, opset)


def _compare_models(model: TrainedModel, other: TrainedModel, x: torch.Tensor) -> float:
    with torch.no_grad():
        return _compare(model.module(x), other.module(x))


def _explain_failure(model: TrainedModel, fmt: str, error: BaseException) -> str:
    """Export each layer alone to find the first one the format cannot express."""
    title = FORMAT_TITLES[fmt]
    cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    x = model.example_batch(2)
    with torch.no_grad():
        for index, layer in enumerate(model.module):
            try:
                with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    single = TrainedModel(model.project, nn.Sequential(layer).eval(), model.report,
                                          tuple(x.shape[1:]), "int64" if x.dtype == torch.int64 else "float32")
                    single.samples = x
                    {"onnx": lambda: _onnx(single, Path(folder) / "l.onnx", x),
                     "pt2": lambda: _pt2(single, Path(folder) / "l.pt2", x),
                     "torchscript": lambda: _torchscript(single, Path(folder) / "l.pt", x)}.get(
                        fmt, lambda: None)()
            except Exception as layer_error:  # noqa: BLE001 - this is the layer we are looking for
                reason = str(layer_error).strip().splitlines()[0] if str(layer_error).strip() else ""
                return (f"layer {index} ({model.report.layers[index].type}) cannot be expressed in "
                        f"{title}: {reason or cause}. The other formats may still work.")
            x = layer(x)
    return f"the model cannot be exported to {title}: {cause}"


# -- Python source -----------------------------------------------------------------------------

def _recurrent_source() -> str:
    """guidl's own Recurrent wrapper, copied into the generated module so that
    the module and guidl can never disagree about it."""
    import inspect

    from . import modules

    return ('\n\nRECURRENT_CLASSES = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}\n\n\n'
            + inspect.getsource(modules.Recurrent))


def _literal(value: Any, kind: str) -> str:
    if isinstance(value, list) and kind in ("ints", "floats", "float_list"):
        return repr(tuple(value))
    return repr(value)


def layer_source(index: int, report: ModelReport) -> str:
    layer = report.layers[index]
    entry = LAYERS.get(layer.type)
    args = []
    for p in entry.params:
        if p.name not in layer.params:
            continue
        value = layer.params[p.name]
        if p.inferred is None and p.default is not REQUIRED and value == p.default:
            continue  # torch's default: leave it out, as a person would
        args.append(f"{p.name}={_literal(value, p.kind)}")
    if layer.type in ("RNN", "LSTM", "GRU"):
        return f"Recurrent({layer.type!r}, {', '.join(args)})"
    return f"nn.{layer.type}({', '.join(args)})"


def python_source(model: TrainedModel, weights_name: str) -> str:
    report = model.report
    layers = ",\n".join(f"            {layer_source(i, report)}" for i in range(len(report.layers)))
    recurrent = any(layer.type in ("RNN", "LSTM", "GRU") for layer in report.layers)
    normalization = model.normalization
    lines = [
        f'"""{model.project.name}: a standalone PyTorch model written by guidl.',
        "",
        "Needs only torch and safetensors. Usage:",
        "",
        f"    model = load()                  # reads {weights_name} beside this file",
        "    scores = model(preprocess(x))   # x: raw inputs shaped (batch, *INPUT_SHAPE)",
        '"""',
        "",
        "from pathlib import Path",
        "",
        "import torch",
        "from torch import nn",
        "",
        f"INPUT_SHAPE = {tuple(model.input_shape)!r}",
        f"INPUT_DTYPE = torch.{'int64' if model.input_dtype == 'int64' else 'float32'}",
        f"CLASS_NAMES = {model.class_names!r}",
        "# Preprocessing learned on the training data: (x * SCALE - MEAN) / STD per channel.",
        f"SCALE = {normalization['scale'] if normalization else None!r}",
        f"MEAN = {normalization['mean'] if normalization else None!r}",
        f"STD = {normalization['std'] if normalization else None!r}",
    ]
    source = "\n".join(lines) + "\n"
    if recurrent:
        source += _recurrent_source()
    source += f'''

class Model(nn.Sequential):
    def __init__(self):
        super().__init__(
{layers},
        )


def load(weights=Path(__file__).with_name({weights_name!r})):
    """The model with its trained weights, ready for inference."""
    from safetensors.torch import load_file

    model = Model()
    model.load_state_dict(load_file(str(weights)))
    return model.eval()


def preprocess(x):
    """Raw inputs (pixels 0..255 for images) to what the model was trained on."""
    x = torch.as_tensor(x)
    if MEAN is None:
        return x.to(INPUT_DTYPE)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean = torch.tensor(MEAN).view(shape)
    std = torch.tensor(STD).view(shape)
    return (x.to(torch.float32) * SCALE - mean) / std


if __name__ == "__main__":
    print(load())
'''
    return source


def _train_script_path(path: Path) -> Path:
    return path.with_name(path.stem + "_train.py")


def training_source(model: TrainedModel, module_name: str) -> str:
    training = model.project.training
    return f'''"""Trains the model of {module_name}.py on arrays in an .npz file (x, y).

A standalone script written by guidl: torch and numpy only. Usage:

    python {module_name}_train.py data.npz [epochs]
"""

import sys

import numpy as np
import torch
from torch import nn

from {module_name} import Model, preprocess

LOSS = nn.{training.loss.type}(**{training.loss.params!r})
OPTIMIZER = torch.optim.{training.optimizer.type}
OPTIMIZER_ARGS = {_tuple_lists(training.optimizer.params)!r}
EPOCHS = {training.epochs}
BATCH_SIZE = {model.project.data.batch_size}
SEED = {training.seed}


def main(path, epochs=EPOCHS):
    torch.manual_seed(SEED)
    with np.load(path, allow_pickle=False) as arrays:
        x, y = preprocess(arrays["x"]), torch.as_tensor(arrays["y"])
    model = Model()
    optimizer = OPTIMIZER(model.parameters(), **OPTIMIZER_ARGS)
    for epoch in range(epochs):
        model.train()
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

    save_file(model.state_dict(), "{module_name}_retrained.safetensors")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
'''


def _tuple_lists(params: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


def _python(model: TrainedModel, path: Path, x: torch.Tensor, training_script: bool) -> float:
    weights = path.with_suffix(".safetensors")
    if path.suffix != ".py":
        raise ExportError(f"{path.name}: Python source must be written to a .py file")
    if not path.stem.isidentifier():
        raise ExportError(f"{path.name}: a Python module's name must be a valid identifier "
                          "(letters, digits and underscores)")
    _safetensors(model, weights, x)
    source = python_source(model, weights.name)
    with atomic_path(path) as tmp:
        tmp.write_text(source, encoding="utf-8")
    if training_script:
        with atomic_path(_train_script_path(path)) as tmp:
            tmp.write_text(training_source(model, path.stem), encoding="utf-8")
    return check_python_module(path, x, model)


def check_python_module(path: Path, x: torch.Tensor, model: TrainedModel) -> float:
    """Run the generated module in a fresh interpreter (without guidl) and
    compare its outputs with the model's."""
    with tempfile.TemporaryDirectory() as folder:
        inputs = Path(folder) / "x.pt"
        outputs = Path(folder) / "y.pt"
        torch.save(x, inputs)
        code = (
            "import sys, torch\n"
            f"sys.path.insert(0, {str(path.parent)!r})\n"
            "sys.modules['guidl'] = None  # the module must not need guidl\n"
            f"import {path.stem} as m\n"
            f"x = torch.load({str(inputs)!r}, weights_only=True)\n"
            "with torch.no_grad():\n"
            f"    torch.save(m.load()(x), {str(outputs)!r})\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                cwd=folder, timeout=300)
        if result.returncode != 0:
            raise ExportError(f"the generated {path.name} does not run: "
                              f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ''}")
        with torch.no_grad():
            return _compare(model.module(x), torch.load(outputs, weights_only=True))


def default_filename(model: TrainedModel, fmt: str) -> str:
    stem = "".join(c if c.isalnum() else "_" for c in model.project.name.lower()).strip("_") or "model"
    if stem[0].isdigit():
        stem = "model_" + stem
    return stem + FORMATS[fmt]


