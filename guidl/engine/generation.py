"""Samples from a generator (a GAN's, or an autoencoder's decoder): the noise
it starts from, the images it makes, and grids of them for people to look at."""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..spec.io import atomic_write_bytes
from .data import Normalization


def noise(params: dict[str, Any], n: int, num_classes: int | None = None,
          labels: Sequence[int] | torch.Tensor | None = None, seed: int = 0
          ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A generator's input for ``n`` samples, drawn from its own seeded
    generator (the global random state is left alone): standard normal noise
    of ``noise_dim`` values, followed by the one-hot class label for a
    conditional GAN (by default the classes in turn: 0, 1, 2, ..., 0, 1, ...).
    Returns ``(input, labels)``; labels is None unless conditional."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, int(params["noise_dim"]), generator=generator)
    if not params.get("conditional"):
        return z, None
    if not num_classes:
        raise ValueError("a conditional GAN needs the number of classes")
    if labels is None:
        labels = torch.arange(n) % num_classes
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} samples")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"class labels must be 0 to {num_classes - 1}")
    return torch.cat([z, nn.functional.one_hot(labels, num_classes).to(z.dtype)], dim=1), labels


def to_pixels(x: torch.Tensor, normalization: Normalization | dict | None) -> np.ndarray:
    """Model outputs shaped like images (N, C, H, W) as 8-bit pixels: (N, H, W)
    for one channel, (N, H, W, 3) for three. Anything else is returned as
    float values in the data's own units."""
    if isinstance(normalization, dict):
        normalization = Normalization.from_dict(normalization)
    x = x.detach().float().cpu()
    if normalization is not None:
        x = normalization.invert(x)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        return x.numpy()
    if normalization is None or normalization.scale == 1.0:
        # Unknown range: spread what there is over 0..255.
        low, high = float(x.min()), float(x.max())
        x = (x - low) / max(high - low, 1e-8) * 255
    pixels = x.clamp(0, 255).round().to(torch.uint8).numpy()
    return pixels[:, 0] if pixels.shape[1] == 1 else pixels.transpose(0, 2, 3, 1)


@torch.no_grad()
def generate(generator: nn.Module, params: dict[str, Any], n: int, *, num_classes: int | None = None,
             labels: Sequence[int] | None = None, seed: int = 0,
             normalization: Normalization | dict | None = None, batch_size: int = 256) -> np.ndarray:
    """``n`` samples of a trained generator as pixels (see ``to_pixels``)."""
    z, _ = noise(params, n, num_classes, labels, seed)
    device = next((p.device for p in generator.parameters()), torch.device("cpu"))
    was_training = generator.training
    generator.eval()
    try:
        outputs = [generator(z[start:start + batch_size].to(device)).float().cpu()
                   for start in range(0, n, batch_size)]
    finally:
        generator.train(was_training)
    return to_pixels(torch.cat(outputs), normalization)


def image_grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Images (N, H, W) or (N, H, W, 3) of 8-bit pixels tiled into one RGB
    image (H', W', 3), about square unless ``columns`` says how wide."""
    from torchvision.utils import make_grid

    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None].repeat(3, axis=3)
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"image_grid takes 8-bit images (N, H, W[, 3]), got {images.shape} "
                         f"{images.dtype}")
    columns = columns or max(1, math.ceil(math.sqrt(len(images))))
    tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    grid = make_grid(tensor, nrow=columns, padding=padding, pad_value=0)
    return grid.permute(1, 2, 0).contiguous().numpy()


def png_bytes(image: np.ndarray) -> bytes:
    """An RGB (H, W, 3) or grey (H, W) 8-bit image as PNG bytes (Pillow, as
    images are read: torchvision's own encoder is deprecated since 0.29)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.asarray(image, dtype=np.uint8))).save(buffer, format="PNG")
    return buffer.getvalue()


def save_grid(images: np.ndarray, path: str | os.PathLike[str], columns: int | None = None) -> None:
    """Write ``image_grid(images)`` as a PNG, atomically."""
    atomic_write_bytes(path, png_bytes(image_grid(images, columns)))
