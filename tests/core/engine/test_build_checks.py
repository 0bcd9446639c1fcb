"""The shape analysis refuses what a real forward pass (training) refuses,
including what torch checks only outside the meta device."""

import pytest
import torch

from guidl.engine import analyze, build
from guidl.spec import Layer, Model

# (layers, input shape, input dtype, the words of the problem)
REFUSED = [
    ([Layer("Embedding", {"num_embeddings": 10, "embedding_dim": 4, "padding_idx": 10})], [5], "int64",
     "padding_idx must be in [-num_embeddings, num_embeddings) = [-10, 10), got 10"),
    ([Layer("Embedding", {"num_embeddings": 10, "embedding_dim": 4, "padding_idx": -11})], [5], "int64",
     "padding_idx must be in [-num_embeddings, num_embeddings)"),
    ([Layer("Softmax", {"dim": 2})], [3], "float32", "dim must be in [-2, 1]"),
    ([Layer("LogSoftmax", {"dim": -3})], [3], "float32", "dim must be in [-2, 1]"),
    ([Layer("ConvTranspose2d", {"out_channels": 2, "kernel_size": 3, "output_padding": 2})],
     [2, 4, 4], "float32", "output_padding 2 must be smaller than stride (1) or dilation (1)"),
    ([Layer("ConvTranspose2d", {"out_channels": 2, "kernel_size": 3, "stride": [2, 1],
                                "output_padding": [1, 1]})],
     [2, 4, 4], "float32", "output_padding 1 must be smaller than stride (1) or dilation (1)"),
]

ACCEPTED = [
    ([Layer("Embedding", {"num_embeddings": 10, "embedding_dim": 4, "padding_idx": -10})], [5], "int64"),
    ([Layer("Embedding", {"num_embeddings": 10, "embedding_dim": 4, "padding_idx": 9})], [5], "int64"),
    ([Layer("Softmax", {"dim": 1})], [3], "float32"),
    ([Layer("LogSoftmax", {"dim": -2})], [3, 2], "float32"),
    ([Layer("ConvTranspose2d", {"out_channels": 2, "kernel_size": 3, "stride": 2, "output_padding": 1})],
     [2, 4, 4], "float32"),
    ([Layer("ConvTranspose2d", {"out_channels": 2, "kernel_size": 3, "dilation": 3, "output_padding": 2})],
     [2, 4, 4], "float32"),
]


@pytest.mark.parametrize("layers, shape, dtype, words", REFUSED)
def test_a_parameter_training_would_reject_is_a_problem_on_its_layer(layers, shape, dtype, words):
    report = analyze(Model(layers, shape, dtype))
    assert not report.ok
    assert words in report.layers[0].error
    assert report.layers[0].fix
    # ... and torch really refuses it outside the meta device.
    from guidl.engine.build import LAYER_FACTORIES, _construct_kwargs
    from guidl.registry import LAYERS

    entry = LAYERS.get(layers[0].type)
    params = dict(report.layers[0].params)
    params.update({"in_channels": shape[0]} if "in_channels" in entry.param_names else {})
    x = torch.zeros((2, *shape), dtype=torch.int64 if dtype == "int64" else torch.float32)
    with pytest.raises((AssertionError, IndexError, RuntimeError)):
        LAYER_FACTORIES[entry.name](**_construct_kwargs(entry, params))(x)


@pytest.mark.parametrize("layers, shape, dtype", ACCEPTED)
def test_the_edge_values_torch_accepts_pass_and_train(layers, shape, dtype):
    model = Model(layers, shape, dtype)
    assert analyze(model).ok, analyze(model).problems()
    module = build(model).module.train()
    x = torch.zeros((2, *shape), dtype=torch.int64) if dtype == "int64" else \
        torch.zeros((2, *shape), requires_grad=True)
    module(x).float().sum().backward()  # what a training step does


@pytest.mark.parametrize("layer, shape, needs", [
    (Layer("BatchNorm1d"), [6], True),
    (Layer("BatchNorm1d"), [3, 5], False),
    (Layer("BatchNorm2d"), [2, 1, 1], True),
    (Layer("BatchNorm2d"), [2, 3, 3], False),
    (Layer("GroupNorm", {"num_groups": 2}), [2], True),
    (Layer("GroupNorm", {"num_groups": 1}), [2], False),
    (Layer("LayerNorm"), [6], False),
])
def test_layers_that_cannot_train_on_a_batch_of_one_are_known(layer, shape, needs):
    from guidl.engine.build import needs_two_per_batch

    model = Model([layer], shape)
    found = needs_two_per_batch(analyze(model))
    assert (found is not None) == needs
    # ... as torch has it: a training batch of one sample fails exactly there.
    module = build(model).module.train()
    if needs:
        with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
            module(torch.randn(1, *shape))
    else:
        module(torch.randn(1, *shape))
