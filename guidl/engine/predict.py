"""Predictions from a trained model on the user's own files: images or CSV
rows, with the preprocessing stored with the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import (
    IMAGE_SUFFIXES, MAX_IMAGE_FILE_BYTES, CsvReadError, Normalization, read_csv,
)
from .export import TrainedModel
from .metrics import to_probabilities
from .trainer import input_embeddings
from ..registry import LOSSES
from ..spec import UnreadableFileError, open_regular_file


class PredictError(ValueError):
    pass


FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Inputs:
    """What ``read_each`` read: the readable inputs, and the files it could not use."""

    #: Raw inputs, one per name (None when no file was readable).
    x: torch.Tensor | None
    names: list[str]
    #: ``(path, message)`` of each file that could not be used, in the order
    #: given; the message starts with the path ("x.jpg: not a readable image ...").
    failed: list[tuple[str, str]] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [message for _, message in self.failed]


def read_each(model: TrainedModel, paths: list[str]) -> Inputs:
    """Every input file that can be read; a file that cannot is set aside
    with its reason, so one bad file among many does not stop the others."""
    samples, names, failed = [], [], []
    for name in paths:
        try:
            found, found_names = _read_one(model, Path(name))
        except PredictError as error:
            failed.append((name, str(error)))
            continue
        samples += found
        names += found_names
    x = torch.as_tensor(np.stack(samples)) if samples else None
    return Inputs(x, names, failed)


def read_inputs(model: TrainedModel, paths: list[str]) -> tuple[torch.Tensor, list[str]]:
    """Raw inputs (pixels 0..255, or feature values; a backbone's images
    resized, cropped and normalised already) and a name for each; a
    ``PredictError`` for the first file that cannot be read."""
    inputs = read_each(model, paths)
    if inputs.failed:
        raise PredictError(inputs.problems()[0])
    return inputs.x, inputs.names


def _read_one(model: TrainedModel, path: Path) -> tuple[list[np.ndarray], list[str]]:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return [_image(model, path)], [str(path)]
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        rows = _csv_rows(model, path)
        return rows, [f"{path}:{i + 1}" for i in range(len(rows))]
    raise PredictError(f"{path}: give image files ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                       "or CSV files of feature rows")


def _image(model: TrainedModel, path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if len(model.input_shape) != 3:
        raise PredictError(f"{path}: this model takes {tuple(model.input_shape)} inputs, not images")
    if model.preprocessing is not None:
        return _backbone_image(model.preprocessing, path)
    channels, height, width = model.input_shape
    try:
        with open_regular_file(path, MAX_IMAGE_FILE_BYTES, "an image file") as handle, \
                Image.open(handle) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            array = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)
    except UnreadableFileError as error:
        raise PredictError(str(error)) from None
    except UnidentifiedImageError:
        # PIL's message names its file object ("<_io.BufferedReader name=3>"), not the file.
        raise PredictError(f"{path}: not a readable image (not an image format guidl reads)") from None
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        raise PredictError(f"{path}: not a readable image ({error})") from None
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _csv_rows(model: TrainedModel, path: Path) -> list[np.ndarray]:
    """Each row of numbers, checked here against what the model takes, so a
    bad value is reported with the row it is on."""
    if len(model.input_shape) != 1:
        raise PredictError(f"{path}: this model takes {tuple(model.input_shape)} inputs, not table rows")
    width = model.input_shape[0]
    try:
        table = read_csv(path)
    except (UnreadableFileError, CsvReadError) as error:
        raise PredictError(str(error)) from None
    ids = model.input_dtype == "int64"
    vocabulary = _vocabulary(model) if ids else None
    rows = []
    for line, row in enumerate(table, start=1):
        cells = [c.strip() for c in row if c.strip()]
        if not cells:
            continue
        try:
            values = [float(c) for c in cells]
        except ValueError:
            if line == 1:
                continue  # a header
            raise PredictError(f"{path}: row {line} holds a value that is not a number") from None
        if len(values) != width:
            raise PredictError(f"{path}: row {line} has {len(values)} values; the model takes {width}")
        array = np.array(values, dtype=np.float64)
        if not np.isfinite(array).all():
            raise PredictError(f"{path}: row {line} holds NaN or an infinite value; the model needs "
                               "finite numbers")
        if np.abs(array).max() > FLOAT32_MAX:
            raise PredictError(f"{path}: row {line} holds a number beyond what the model computes "
                               f"with (float32: up to {FLOAT32_MAX:.3g})")
        if ids:
            top = float("inf") if vocabulary is None else vocabulary
            bad = next((v for v in values if not v.is_integer() or not 0 <= v < top), None)
            if bad is not None:
                allowed = "whole numbers from 0" + ("" if vocabulary is None else f" to {vocabulary - 1}")
                raise PredictError(f"{path}: row {line} holds {bad:g}; this model takes token ids, "
                                   f"{allowed}")
        rows.append(array.astype(np.float32))
    if not rows:
        raise PredictError(f"{path}: no rows of numbers")
    return rows


def _vocabulary(model: TrainedModel) -> int | None:
    """How many token ids the model takes, when an embedding takes its input
    (in a graph, several may: the smallest of them)."""
    embeddings = input_embeddings(model.report)
    if embeddings:
        return min(layer.params["num_embeddings"] for _, layer in embeddings)
    embedding = next((m for m in model.module.modules() if isinstance(m, nn.Embedding)), None)
    return None if embedding is None else embedding.num_embeddings


def _backbone_image(preprocessing: dict, path: Path) -> np.ndarray:
    """An image file in the form a backbone's model takes (float, resized,
    cropped, normalised): decoded and transformed as the trainer does its
    evaluation images, so a file gets the same prediction here as there."""
    from .images import Preprocessing, SkippedImage, decode_bytes

    try:
        with open_regular_file(path, MAX_IMAGE_FILE_BYTES, "an image file") as handle:
            data = handle.read(MAX_IMAGE_FILE_BYTES + 1)
        image = decode_bytes(str(path), data, 3)
    except UnreadableFileError as error:
        raise PredictError(str(error)) from None
    except SkippedImage as error:
        raise PredictError(f"{path}: {error}") from None
    except OSError as error:
        raise PredictError(f"{path}: cannot be read ({error.strerror or error})") from None
    return Preprocessing.from_dict(preprocessing).eval_transform()(image).numpy()


def preprocess(model: TrainedModel, x: torch.Tensor) -> torch.Tensor:
    """Raw inputs (pixels 0..255, feature values, token ids) as the model
    takes them; a backbone's images come from ``read_inputs`` in that form already."""
    if model.preprocessing is not None:
        if x.is_floating_point():
            return x.to(torch.float32)
        from .images import Preprocessing

        return Preprocessing.from_dict(model.preprocessing).normalization.apply(x)
    if not model.normalization:
        return x.to(torch.int64 if model.input_dtype == "int64" else torch.float32)
    return Normalization.from_dict(model.normalization).apply(x)


def predict(model: TrainedModel, x: torch.Tensor, top_k: int = 3,
            names: list[str] | None = None) -> list[list[tuple[str, float]]]:
    """The ``top_k`` classes with their probabilities for each raw input
    (``names`` name the inputs in the error for an output that is not finite)."""
    with torch.no_grad():
        output = model.module.eval()(preprocess(model, x))
    finite = torch.isfinite(output.reshape(len(output), -1)).all(dim=1)
    if not bool(finite.all()):
        index = int((~finite).nonzero()[0, 0])
        name = names[index] if names else f"input {index + 1}"
        raise PredictError(f"{name}: the model's output is NaN or infinite; the input may be far "
                           "outside the values it was trained on, or the weights are damaged")
    if model.task != "classification":
        return [[("value", float(v)) for v in row.flatten()] for row in output]
    kind = LOSSES.get(model.project.training.loss.type).info["output"]
    probabilities = to_probabilities(output, kind)
    names = model.class_names or [str(i) for i in range(probabilities.shape[1])]
    k = min(top_k, probabilities.shape[1])
    values, indices = probabilities.topk(k, dim=1)
    return [[(names[int(i)], float(v)) for v, i in zip(row_v, row_i)]
            for row_v, row_i in zip(values, indices)]


def reconstruct(model: TrainedModel, x: torch.Tensor, names: list[str] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """An autoencoder's reconstructions of raw inputs: ``(inputs, outputs,
    error per input)``, the inputs and outputs scaled as in training and the
    error their mean squared difference there."""
    inputs = preprocess(model, x)
    with torch.no_grad():
        outputs = model.module.eval()(inputs)
    if outputs.shape != inputs.shape:
        raise PredictError(f"the model gives {tuple(outputs.shape[1:])} for inputs of "
                           f"{tuple(inputs.shape[1:])}: not an autoencoder's reconstruction")
    errors = ((outputs - inputs) ** 2).reshape(len(x), -1).mean(dim=1)
    bad = (~torch.isfinite(errors)).nonzero()
    if len(bad):
        index = int(bad[0, 0])
        name = names[index] if names else f"input {index + 1}"
        raise PredictError(f"{name}: the reconstruction is NaN or infinite; the weights may be damaged")
    return inputs, outputs, [float(e) for e in errors]


def save_reconstructions(model: TrainedModel, inputs: torch.Tensor, outputs: torch.Tensor,
                         names: list[str], folder: Path) -> list[Path]:
    """One PNG per image input: the input beside its reconstruction, named
    after the input (``digit.png`` -> ``digit_reconstruction.png``)."""
    from ..spec import atomic_path
    from .generation import image_grid, png_bytes, to_pixels

    before = to_pixels(inputs, model.normalization)
    after = to_pixels(outputs, model.normalization)
    if before.dtype != np.uint8:
        raise PredictError("the inputs are not images: there is nothing to draw (the errors are printed)")
    folder.mkdir(parents=True, exist_ok=True)
    written, used = [], set()
    for index, name in enumerate(names):
        stem = Path(name.split(":")[0]).stem or f"input_{index + 1}"
        path = folder / f"{stem}_reconstruction.png"
        number = 2
        while path in used:
            path = folder / f"{stem}_{number}_reconstruction.png"
            number += 1
        used.add(path)
        data = png_bytes(image_grid(np.stack([before[index], after[index]]), columns=2))
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(data)
        written.append(path)
    return written
