"""The encoder and decoder of a trained autoencoder as models of their own.

``spec.parts`` cuts the project's model at the code layer; here the trained
weights follow: each key of the whole model's ``state_dict`` is renamed to
the name the part's own build gives the same layer (positions in a stack,
ids or ``<type>_<index>`` in a graph), so the part loads them strictly.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ..spec import Model
from ..spec.parts import PARTS, Split, SplitError, key_map, split

__all__ = ["PARTS", "SplitError", "code_shape", "part_weights", "split_at_code"]


def part_weights(state_dict: Mapping[str, torch.Tensor], model: Model, code_id: str,
                 part: str) -> dict[str, torch.Tensor]:
    """The tensors of ``state_dict`` (the whole model's) that ``part``
    ("encoder" or "decoder") holds, under the part's names."""
    names = key_map(model, code_id, part)
    out = {}
    for key, tensor in state_dict.items():
        head, dot, rest = key.partition(".")
        if head in names:
            out[names[head] + dot + rest] = tensor
    return out


def code_shape(report, code_id: str) -> tuple[int, ...]:
    """The code layer's output shape in a model's report (``build.ModelReport``)."""
    layer = next((layer for layer in report.layers if layer.id == code_id), None)
    if layer is None or layer.output_shape is None:
        raise SplitError(f"the model has no layer {code_id!r} with a known output shape")
    return tuple(layer.output_shape)


def split_at_code(model: Model, code_id: str, report) -> Split:
    """``spec.parts.split`` with the decoder's input shape taken from ``report``."""
    shape: Sequence[int] = code_shape(report, code_id)
    return split(model, code_id, shape)
