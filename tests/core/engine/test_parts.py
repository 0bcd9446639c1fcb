"""An autoencoder cut at its code layer: encoder then decoder gives the whole
model's output, with the whole model's weights renamed for each half."""

import copy

import pytest
import torch

from guidl.engine import build
from guidl.engine.parts import part_weights, split_at_code
from guidl.spec import Block, Layer, Model
from guidl.spec.parts import SplitError, split_model


def _stack() -> Model:
    return Model([
        Layer("Flatten"),
        Layer("Linear", {"out_features": 16}),
        Layer("ReLU"),
        Layer("Linear", {"out_features": 2}, id="code"),
        Layer("Linear", {"out_features": 16}),
        Layer("ReLU"),
        Layer("Linear", {"out_features": 64}),
        Layer("Unflatten", {"dim": 1, "unflattened_size": [1, 8, 8]}),
    ], [1, 8, 8])


SKIP = Block([{"name": "width", "kind": "int", "default": 8, "minimum": 1}], [
    Layer("Linear", {"out_features": "$width"}, id="inner"),
    Layer("Tanh"),
    Layer("Add", inputs=["inner", "input"]),
])


def _graph() -> Model:
    """Skip connections inside the encoder and inside the decoder (through a
    block), an unused branch, and layers without ids."""
    return Model([
        Layer("Flatten", id="flat"),
        Layer("Linear", {"out_features": 12}, id="a"),
        Layer("ReLU"),
        Layer("Linear", {"out_features": 12}, id="b"),
        Layer("Add", inputs=["a", "b"], id="sum"),
        Layer("Linear", {"out_features": 3}, id="dead", inputs=["a"]),  # reaches nothing
        Layer("Linear", {"out_features": 4}, inputs=["sum"], id="code"),
        Layer("Linear", {"out_features": 8}),
        Layer("Skip", {"width": 8}, repeat=2),
        Layer("Linear", {"out_features": 64}, id="out"),
    ], [1, 8, 8], blocks={"Skip": copy.deepcopy(SKIP)})


def _check_halves(model: Model) -> None:
    torch.manual_seed(0)
    whole = build(model, [1, 8, 8])
    halves = split_at_code(model, "code", whole.report)
    encoder = build(halves.encoder, [1, 8, 8]).module
    decoder = build(halves.decoder, halves.decoder.input_shape).module
    state = whole.module.state_dict()
    encoder.load_state_dict(part_weights(state, model, "code", "encoder"), strict=True)
    decoder.load_state_dict(part_weights(state, model, "code", "decoder"), strict=True)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        code = encoder.eval()(x)
        assert code.shape == (5, *halves.decoder.input_shape)
        torch.testing.assert_close(decoder.eval()(code), whole.module.eval()(x), rtol=0, atol=1e-6)


def test_a_stack_splits_by_slicing_and_the_halves_give_the_whole_output():
    model = _stack()
    encoder, decoder = split_model(model, "code")
    assert [l.type for l in encoder.layers] == ["Flatten", "Linear", "ReLU", "Linear"]
    assert [l.type for l in decoder.layers] == ["Linear", "ReLU", "Linear", "Unflatten"]
    assert encoder.input_shape == [1, 8, 8] and decoder.input_shape is None
    _check_halves(model)


def test_a_graph_splits_at_a_cut_point_keeping_blocks_and_skips():
    model = _graph()
    encoder, decoder = split_model(model, "code")
    assert "dead" not in [l.id for l in encoder.layers + decoder.layers]
    assert decoder.blocks.keys() == {"Skip"} and encoder.blocks.keys() == {"Skip"}
    assert decoder.layers[0].inputs is None  # takes the decoder's input, the code
    _check_halves(model)


def test_a_skip_over_the_code_is_refused_with_the_reason():
    model = _stack()
    model.layers[1].id = "h"
    model.layers[4].id = "up"
    model.layers[5] = Layer("Add", inputs=["up", "h"], id="u_net")
    with pytest.raises(SplitError, match=r"layer 'u_net' after the code also takes layer 'h', which "
                                         "comes before the code"):
        split_model(model, "code")
    model.layers[5] = Layer("Add", inputs=["up", "input"])
    with pytest.raises(SplitError, match="after the code also takes the input directly"):
        split_model(model, "code")


def test_a_missing_or_last_code_layer_is_refused():
    with pytest.raises(SplitError, match="no layer 'nope'"):
        split_model(_stack(), "nope")
    model = _stack()
    model.layers[-1].id = "last"
    with pytest.raises(SplitError, match="last layer"):
        split_model(model, "last")
