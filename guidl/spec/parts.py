"""An autoencoder cut at its code layer into an encoder and a decoder.

The encoder is the model up to and including the code layer; the decoder is
the rest, taking the code as its input. For a stack that is slicing. In a
graph the code layer must be a cut point: every path from the input to the
output passes through it, else the decoder would need more than the code.
Layers that reach neither the code nor the output (their outputs unused) are
left out of both halves. Both halves keep the model's blocks.

``module_key_names`` says how the built module names each layer, so the
engine can rename a trained model's weights for either half
(``engine.parts.part_weights``). No torch and no Qt here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

from ..formatting import quote
from .graph import INPUT, INPUT_INDEX, is_chain, is_merge, module_keys, resolve_inputs
from .project import Layer, Model

PARTS = ("encoder", "decoder")


class SplitError(ValueError):
    """The model cannot be cut at the code layer; the message says why."""


@dataclass
class Split:
    encoder: Model
    decoder: Model
    #: The original indexes of each half's layers, in the half's order.
    encoder_layers: list[int]
    decoder_layers: list[int]


def module_key_names(model: Model) -> list[str]:
    """The name of each layer's module in the built model: its position in a
    stack (an ``nn.Sequential``), its key in a graph."""
    if is_chain(model):
        return [str(index) for index in range(len(model.layers))]
    return module_keys(model.layers)


def _name(layers: Sequence[Layer], index: int) -> str:
    if index == INPUT_INDEX:
        return "the input"
    layer = layers[index]
    return f"layer {quote(layer.id)}" if layer.id else f"layer {index} ({layer.type})"


def split(model: Model, code_id: str, code_shape: Sequence[int] | None = None) -> Split:
    """``model`` cut after the layer whose id is ``code_id``; ``code_shape``
    (the code layer's output shape, when known) becomes the decoder's
    ``input_shape``. ``SplitError`` when the code layer is missing, last, or
    not a cut point."""
    layers = model.layers
    wiring = resolve_inputs(layers)
    if wiring.problems:
        problem = wiring.problems[0]
        raise SplitError(f"the model's wiring is invalid at layer {problem.index}: {problem.message}")
    code = wiring.ids.get(code_id)
    if code is None:
        known = ", ".join(quote(i) for i in wiring.ids) or "none"
        raise SplitError(f"the model has no layer {quote(code_id)} to cut at (layer ids: {known})")
    last = len(layers) - 1
    if code == last:
        raise SplitError(f"{quote(code_id)} is the model's last layer: the decoder would be empty")
    # What the output needs, walking back from the last layer (a topological order).
    needed = {last}
    for index in range(last, -1, -1):
        if index in needed:
            needed.update(s for s in wiring.inputs[index] if s >= 0)
    if code not in needed:
        raise SplitError(f"{quote(code_id)} does not lead to the model's output: the decoder "
                         "would not use the code")
    decoder_layers = [i for i in range(code + 1, len(layers)) if i in needed]
    for index in decoder_layers:
        for source in wiring.inputs[index]:
            if source < code:
                what = "the input directly" if source == INPUT_INDEX else \
                    f"{_name(layers, source)}, which comes before the code"
                raise SplitError(f"{_name(layers, index)} after the code also takes {what}: the "
                                 f"code {quote(code_id)} is not the only way from the input to the "
                                 "output, so the model cannot be cut there")
    reaches_code = {code}
    for index in range(code, -1, -1):
        if index in reaches_code:
            reaches_code.update(s for s in wiring.inputs[index] if s >= 0)
    encoder_layers = sorted(reaches_code)
    keys = module_keys(layers)
    encoder = _half(model, encoder_layers, wiring.inputs, keys, entry=INPUT_INDEX)
    decoder = _half(model, decoder_layers, wiring.inputs, keys, entry=code)
    decoder.input_shape = None if code_shape is None else [int(d) for d in code_shape]
    decoder.input_dtype = "float32"
    return Split(encoder, decoder, encoder_layers, decoder_layers)


def split_model(model: Model, code_id: str) -> tuple[Model, Model]:
    """(encoder, decoder): ``model`` cut after its layer ``code_id`` (see ``split``)."""
    halves = split(model, code_id)
    return halves.encoder, halves.decoder


def _half(model: Model, kept: list[int], inputs: list[list[int]], keys: list[str],
          entry: int) -> Model:
    """The layers ``kept`` (original indexes) as a model whose input is the
    output of ``entry`` (``INPUT_INDEX``: the model's input). Wiring is written
    out (``inputs`` with ids) only where the implicit "the layer before" would
    be wrong; a layer named that way without an id gets its module's key."""
    position = {original: new for new, original in enumerate(kept)}
    position[entry] = INPUT_INDEX
    sources = [[position[s] for s in inputs[original]] for original in kept]
    implicit = [wired == [new - 1 if new else INPUT_INDEX] and not is_merge(model.layers[o].type)
                for new, (o, wired) in enumerate(zip(kept, sources))]
    referenced = {s for new, wired in enumerate(sources) if not implicit[new] for s in wired if s >= 0}
    out = []
    for new, original in enumerate(kept):
        layer = copy.deepcopy(model.layers[original])
        if new in referenced and layer.id is None:
            layer.id = keys[original]  # unique among the model's ids and keys
        if implicit[new]:
            layer.inputs = None
        else:
            layer.inputs = [INPUT if s == INPUT_INDEX else out[s].id for s in sources[new]]
        out.append(layer)
    return Model(layers=out, input_shape=copy.deepcopy(model.input_shape) if entry == INPUT_INDEX else None,
                 input_dtype=model.input_dtype if entry == INPUT_INDEX else "float32",
                 blocks=copy.deepcopy(model.blocks), extra=copy.deepcopy(model.extra))


def key_map(model: Model, code_id: str, part: str) -> dict[str, str]:
    """For ``part`` ("encoder" or "decoder"): the whole model's module name
    of each layer the part keeps -> that layer's module name in the part."""
    if part not in PARTS:
        raise SplitError(f"unknown part {quote(part)}; the parts are {', '.join(PARTS)}")
    halves = split(model, code_id)
    half, kept = ((halves.encoder, halves.encoder_layers) if part == "encoder"
                  else (halves.decoder, halves.decoder_layers))
    whole = module_key_names(model)
    own = module_key_names(half)
    return {whole[original]: own[new] for new, original in enumerate(kept)}
