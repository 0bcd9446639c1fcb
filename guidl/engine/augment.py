"""Image augmentation of whole training batches, on the batch's device.

Random crop with padding, horizontal flip and small rotations, drawn per
sample from the trainer's seeded generator so runs stay reproducible.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch.nn import functional as F


def _uniform(generator: torch.Generator, n: int, low: float, high: float, device) -> torch.Tensor:
    return (torch.rand(n, generator=generator) * (high - low) + low).to(device)


def augment_batch(x: torch.Tensor, settings: Mapping[str, Any], generator: torch.Generator) -> torch.Tensor:
    """``x`` is (batch, channels, height, width), already normalised."""
    n, _, height, width = x.shape
    device = x.device
    pad = int(settings.get("crop_padding", 0) or 0)
    if pad:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(device)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(device)
        rows = (dy[:, None] + torch.arange(height, device=device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(width, device=device))[:, None, None, :]
        batch = torch.arange(n, device=device)[:, None, None, None]
        channel = torch.arange(x.shape[1], device=device)[None, :, None, None]
        x = padded[batch, channel, rows, cols]
    if settings.get("hflip"):
        flip = (torch.rand(n, generator=generator) < 0.5).to(device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    degrees = float(settings.get("rotation", 0) or 0)
    if degrees:
        angle = _uniform(generator, n, -degrees, degrees, device) * (math.pi / 180)
        cos, sin = angle.cos(), angle.sin()
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return x
