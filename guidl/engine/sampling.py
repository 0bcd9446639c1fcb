"""What ``guidl generate`` makes from a run folder: images from a GAN's
generator or from an autoencoder's decoder (codes drawn like the training
codes), or text from a next-character model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import spec
from ..registry import TASKS
from .export import ExportError, TrainedModel, code_samples, load_trained

#: Samples one call makes at most (a grid of 4096 8x8 digits is already 500x500 pixels).
MAX_SAMPLES = 4096


class GenerateError(ValueError):
    """The run cannot generate what was asked; the message says why."""


@dataclass
class Samples:
    #: 8-bit images (N, H, W) or (N, H, W, 3); for data that are not images,
    #: float values (N, ...) in the data's own units.
    values: np.ndarray
    #: The class each sample was asked for (a conditional GAN), else None.
    labels: list[str] | None
    #: "generator" or "decoder".
    source: str


def kind_of(folder: Path) -> str:
    """``images`` (a GAN), ``decoder`` (an autoencoder with a code layer) or
    ``text`` (a text generation run, or any run on the text dataset);
    ``GenerateError`` for a run that generates nothing."""
    project = _project(folder)
    task = project.task_type
    if task == "gan":
        return "images"
    if task == "reconstruction":
        if project.task_params().get("code_layer") is not None:
            return "decoder"
        raise GenerateError(f"{folder} is an autoencoder without a code layer: generate needs its "
                            "decoder; set task.params.code_layer to the bottleneck layer's id and "
                            "train again")
    if task == "text_generation" or project.data.dataset == "text":
        return "text"
    what = task or _dataset_task(folder)
    raise GenerateError(f"{folder} is a{'n' if what[0] in 'aeiou' else ''} {what} run: generate "
                        "needs a gan, an autoencoder with a code layer, or a text model")


def _project(folder: Path) -> spec.Project:
    source = Path(folder) / "project.guidl.json"
    if not Path(folder).is_dir():
        raise GenerateError(f"{folder}: not a run folder (generate takes the folder guidl train wrote)")
    if not source.is_file():
        raise GenerateError(f"{folder}: not a run folder (no project.guidl.json)")
    return spec.load(source)


def _dataset_task(folder: Path) -> str:
    from .runs import RunError, read_run

    try:
        run = read_run(folder)
    except (RunError, OSError):
        return "classification"
    task = (run.get("dataset") or {}).get("task")
    return task if isinstance(task, str) else "classification"


def _trained(folder: Path, part: str) -> TrainedModel:
    try:
        model = load_trained(folder, samples=False, part=part)
    except ExportError as error:
        raise GenerateError(str(error)) from None
    if not model.trained:
        raise GenerateError(f"{folder}: no trained weights (model.safetensors): the run ended before "
                            "its first epoch did")
    return model


def _run_record(folder: Path) -> dict:
    from .runs import RunError, read_run

    try:
        return read_run(folder)
    except RunError as error:
        raise GenerateError(str(error)) from None


def images(folder: Path, n: int, *, seed: int = 0, label: str | None = None) -> Samples:
    """``n`` samples of a GAN's generator or an autoencoder's decoder."""
    from .generation import generate, to_pixels

    folder = Path(folder)
    kind = kind_of(folder)
    if kind == "text":
        raise GenerateError(f"{folder} is a text model: give --prompt (and --length, --temperature) "
                            "to write text")
    if not 1 <= n <= MAX_SAMPLES:
        raise GenerateError(f"-n must be from 1 to {MAX_SAMPLES}, got {n}")
    if kind == "decoder":
        if label is not None:
            raise GenerateError("--label is for a conditional GAN; an autoencoder's decoder takes codes")
        decoder = _trained(folder, "decoder")
        codes = code_samples(_run_record(folder).get("code_stats"), tuple(decoder.input_shape), n, seed)
        with torch.no_grad():
            out = decoder.module.eval()(codes)
        return Samples(to_pixels(out, decoder.output_normalization), None, "decoder")
    generator = _trained(folder, "model")
    params = generator.project.task_params()
    classes = generator.input_shape[0] - int(params["noise_dim"])
    names = ((_run_record(folder).get("dataset") or {}).get("class_names")) or \
        [str(i) for i in range(classes)]
    labels = None
    if label is not None:
        if not params.get("conditional"):
            raise GenerateError("--label needs a conditional GAN (task.params.conditional); this one "
                                "makes samples of no class in particular")
        index = _class_index(label, names)
        labels = [index] * n
    try:
        pixels = generate(generator.module, params, n, num_classes=classes or None, labels=labels,
                          seed=seed, normalization=generator.output_normalization)
    except ValueError as error:
        raise GenerateError(str(error)) from None
    asked = None
    if params.get("conditional") and classes:
        asked = [names[i % classes] if labels is None else names[labels[0]] for i in range(n)]
    return Samples(pixels, asked, "generator")


def _class_index(label: str, names: list[str]) -> int:
    if label in names:
        return names.index(label)
    if label.isdigit() and int(label) < len(names):
        return int(label)
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    raise GenerateError(f"--label {label!r} is not one of the classes ({shown}) nor an index "
                        f"from 0 to {len(names) - 1}")


def text(folder: Path, *, prompt: str | None = None, length: int | None = None,
         temperature: float | None = None, seed: int = 0) -> tuple[str, str, float]:
    """``(prompt, written text, temperature)`` of a next-character model;
    what is not given comes from the task's parameters (or their defaults)."""
    from .writing import one_thread, write

    folder = Path(folder)
    kind = kind_of(folder)
    if kind != "text":
        raise GenerateError(f"{folder} makes {'images' if kind == 'images' else 'images from codes'}, "
                            "not text: leave out --prompt, --length and --temperature")
    model = _trained(folder, "model")
    params = model.project.task_params() if model.project.task_type == "text_generation" \
        else TASKS.get("text_generation").resolve({})
    prompt = params["prompt"] if prompt is None else prompt
    length = int(params["length"]) if length is None else length
    temperature = float(params["temperature"]) if temperature is None else temperature
    if not 1 <= length <= 100_000:
        raise GenerateError(f"--length must be from 1 to 100000, got {length}")
    if not 0 < temperature <= 10:
        raise GenerateError(f"--temperature must be above 0 and at most 10, got {temperature:g}")
    if len(model.input_shape) != 1 or model.input_dtype != "int64":
        raise GenerateError(f"{folder}: the model takes {tuple(model.input_shape)} "
                            f"{model.input_dtype} inputs, not a window of character ids")
    with one_thread():
        text = write(model.module, prompt, length, temperature, int(model.input_shape[0]), seed)
    return prompt, text, temperature


def save_values_csv(values: np.ndarray, path: Path) -> None:
    """Generated samples that are not images, one row of values each."""
    from ..spec import atomic_path

    rows = values.reshape(len(values), -1)
    with atomic_path(path) as tmp:
        np.savetxt(tmp, rows, delimiter=",", fmt="%.6g")
