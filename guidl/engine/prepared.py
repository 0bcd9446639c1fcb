"""Datasets in their prepared form: the types every loader returns (raw
NumPy arrays, splits of tensors, their description and normalisation) and
the steps shared by ``engine.data`` and ``engine.images`` (the seeded,
stratified validation split, the training split's statistics).

Both loaders import this module and it imports neither, so the two stay
apart: ``data`` dispatches image folders to ``images``, never the other way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

#: Printable ASCII and the newline: the vocabulary of the ``text`` dataset.
#: Other characters become a space. 96 tokens, matching the LSTM example.
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))
_CHAR_TO_ID = {c: i for i, c in enumerate(VOCAB)}


class DatasetError(ValueError):
    """A dataset that cannot be loaded; the message says why and what to do."""


@dataclass
class RawData:
    """A dataset as NumPy arrays, before splitting and normalising."""

    name: str
    modality: str  # image, points, tabular, text, array
    task: str  # classification or regression
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    class_names: list[str] | None = None
    title: str = ""


def encode_text(text: str) -> np.ndarray:
    space = _CHAR_TO_ID[" "]
    return np.fromiter((_CHAR_TO_ID.get(c, space) for c in text), dtype=np.int64, count=len(text))


def decode_text(ids: Sequence[int]) -> str:
    return "".join(VOCAB[int(i)] for i in ids)


@dataclass
class Split:
    """Samples held as tensors (on the training device when they fit) and
    sliced per batch. ``ImageSplit`` (engine.images) has the same API for
    image folders, cached as 8-bit pixels or streamed from disk."""

    x: torch.Tensor
    y: torch.Tensor

    #: Samples come from memory; training batches are augmented by the trainer.
    streams = False
    augments = False

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.x.to(device), self.y.to(device))

    def tensors(self) -> list[torch.Tensor]:
        return [self.x, self.y]

    def map_tensors(self, fn) -> "Split":
        return Split(fn(self.x), fn(self.y))

    @property
    def device_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.x, self.y))

    def take(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        return self.x[torch.as_tensor(indices, dtype=torch.long).to(self.x.device)]

    def batches(self, order: torch.Tensor, batch_size: int, *, train: bool = False, epoch: int = 0,
                device: torch.device | str | None = None):
        """(x, y) for ``order``'s samples, ``batch_size`` at a time, in order."""
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            yield self.x[index], self.y[index]


@dataclass
class DatasetInfo:
    """What the GUI and the trainer need to know about a dataset."""

    name: str
    title: str
    modality: str
    task: str
    input_shape: tuple[int, ...]
    input_dtype: str
    num_classes: int | None
    class_names: list[str] | None
    #: Regression: number of target values per sample.
    num_outputs: int | None
    sizes: dict[str, int] = field(default_factory=dict)
    class_counts: list[int] | None = None
    #: Files skipped as not readable images (image_folder).
    skipped: int = 0
    #: What loading had to tell (skipped files, streaming from disk).
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "modality": self.modality, "task": self.task,
            "input_shape": list(self.input_shape), "input_dtype": self.input_dtype,
            "num_classes": self.num_classes, "class_names": self.class_names,
            "num_outputs": self.num_outputs, "sizes": dict(self.sizes),
            "class_counts": self.class_counts, "skipped": self.skipped, "notes": list(self.notes),
        }


@dataclass
class Normalization:
    """``(x * scale - mean) / std`` per channel (images) or per feature."""

    scale: float
    mean: list[float]
    std: list[float]

    def _broadcast(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std shaped to broadcast over a (batch, channels, ...) tensor."""
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return (torch.tensor(self.mean, dtype=torch.float32).view(shape),
                torch.tensor(self.std, dtype=torch.float32).view(shape))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._broadcast(x)
        return (x.to(torch.float32) * self.scale - mean) / std

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._broadcast(x)
        return (x * std + mean) / self.scale

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Normalization":
        return cls(float(data["scale"]), [float(v) for v in data["mean"]], [float(v) for v in data["std"]])


@dataclass
class PreparedData:
    info: DatasetInfo
    train: Split
    val: Split | None
    test: Split | None
    normalization: Normalization | None
    #: A pretrained backbone's preprocessing (engine.images.Preprocessing.to_dict()).
    preprocessing: dict[str, Any] | None = None

    @property
    def evaluation_split(self) -> tuple[str, Split]:
        """The split results are reported on: test where the dataset has one."""
        if self.test is not None:
            return "test", self.test
        if self.val is not None:
            return "val", self.val
        return "train", self.train

    def to(self, device: torch.device | str) -> "PreparedData":
        move = (lambda s: None if s is None else s.to(device))
        return PreparedData(self.info, self.train.to(device), move(self.val), move(self.test),
                            self.normalization, self.preprocessing)

    def preview(self, count: int = 16, seed: int = 0) -> list[tuple[Any, str]]:
        """A few training samples for display: ``(sample, label)`` where an
        image is a uint8 array (H, W) or (H, W, 3), text a string, else numbers."""
        generator = np.random.default_rng(seed)
        picks = generator.choice(len(self.train), size=min(count, len(self.train)), replace=False)
        x = self.train.take(torch.as_tensor(picks)).cpu()
        y = self.train.y[torch.as_tensor(picks)].cpu()
        out = []
        for sample, target in zip(x, y):
            label = (self.info.class_names[int(target)] if self.info.class_names
                     else ", ".join(f"{v:g}" for v in target.flatten().tolist()))
            if self.info.modality == "image" and self.normalization is not None:
                pixels = self.normalization.invert(sample[None])[0].clamp(0, 255).round().byte()
                array = pixels.numpy()
                out.append((array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0), label))
            elif self.info.modality == "text":
                out.append((decode_text(sample.tolist()), label))
            else:
                values = self.normalization.invert(sample[None])[0] if self.normalization else sample
                out.append((values.numpy(), label))
        return out


def stratified_split(y: np.ndarray, fraction: float, seed: int,
                      classification: bool) -> tuple[np.ndarray, np.ndarray]:
    n = len(y)
    n_val = int(round(n * fraction))
    if n_val == 0:
        return np.arange(n), np.arange(0)
    if n - n_val < 1:
        raise DatasetError(f"val_fraction {fraction} leaves no training samples out of {n}")
    from sklearn.model_selection import train_test_split

    indices = np.arange(n)
    stratify = None
    if classification:
        counts = np.bincount(y)
        present = int((counts > 0).sum())
        if counts[counts > 0].min() >= 2 and n_val >= present and n - n_val >= present:
            stratify = y
    train, val = train_test_split(indices, test_size=n_val, random_state=seed % 2**32,
                                  shuffle=True, stratify=stratify)
    return np.sort(train), np.sort(val)


def normalization_from(x: torch.Tensor, scale: float) -> Normalization:
    values = x.to(torch.float64) * scale
    dims = [0] + list(range(2, values.ndim))
    mean = values.mean(dim=dims)
    std = values.std(dim=dims)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # constant columns stay as they are
    return Normalization(scale, mean.tolist(), std.tolist())
