"""Predictions from a trained model on the user's own files: images or CSV
rows, with the preprocessing stored with the model."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from .data import IMAGE_SUFFIXES, Normalization
from .export import TrainedModel
from .metrics import to_probabilities
from ..registry import LOSSES


class PredictError(ValueError):
    pass


def read_inputs(model: TrainedModel, paths: list[str]) -> tuple[torch.Tensor, list[str]]:
    """Raw inputs (pixels 0..255, or feature values) and a name for each."""
    samples, names = [], []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise PredictError(f"{path}: no such file")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            samples.append(_image(model, path))
            names.append(str(path))
        elif path.suffix.lower() in (".csv", ".tsv", ".txt"):
            rows = _csv_rows(model, path)
            samples += rows
            names += [f"{path}:{i + 1}" for i in range(len(rows))]
        else:
            raise PredictError(f"{path}: give image files ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                               "or CSV files of feature rows")
    return torch.as_tensor(np.stack(samples)), names


def _image(model: TrainedModel, path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if len(model.input_shape) != 3:
        raise PredictError(f"{path}: this model takes {tuple(model.input_shape)} inputs, not images")
    channels, height, width = model.input_shape
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            array = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise PredictError(f"{path}: not a readable image ({error})") from None
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _csv_rows(model: TrainedModel, path: Path) -> list[np.ndarray]:
    if len(model.input_shape) != 1:
        raise PredictError(f"{path}: this model takes {tuple(model.input_shape)} inputs, not table rows")
    width = model.input_shape[0]
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
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
            rows.append(np.array(values, dtype=np.float32))
    if not rows:
        raise PredictError(f"{path}: no rows of numbers")
    return rows


def preprocess(model: TrainedModel, x: torch.Tensor) -> torch.Tensor:
    if not model.normalization:
        return x.to(torch.int64 if model.input_dtype == "int64" else torch.float32)
    return Normalization.from_dict(model.normalization).apply(x)


def predict(model: TrainedModel, x: torch.Tensor, top_k: int = 3) -> list[list[tuple[str, float]]]:
    """The ``top_k`` classes with their probabilities for each raw input."""
    with torch.no_grad():
        output = model.module.eval()(preprocess(model, x))
    if model.task != "classification":
        return [[("value", float(v)) for v in row.flatten()] for row in output]
    kind = LOSSES.get(model.project.training.loss.type).info["output"]
    probabilities = to_probabilities(output, kind)
    names = model.class_names or [str(i) for i in range(probabilities.shape[1])]
    k = min(top_k, probabilities.shape[1])
    values, indices = probabilities.topk(k, dim=1)
    return [[(names[int(i)], float(v)) for v, i in zip(row_v, row_i)]
            for row_v, row_i in zip(values, indices)]
