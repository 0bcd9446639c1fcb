import math
import time

import pytest
import torch

from guidl.engine import analyze, build
from guidl.engine.modules import Recurrent
from guidl.registry import LAYERS
from guidl.spec import Layer, Model, ProjectError, load

SAMPLE_SHAPES = {1: (12,), 2: (4, 12), 3: (4, 12, 12), 4: (4, 6, 6, 6)}


def _input_for(entry):
    ranks = entry.info.get("input_ranks") or [3]
    rank = max(ranks)
    if entry.name == "Unflatten":
        return (784,), "float32"
    if entry.info.get("input") == "index":
        return (10,), "int64"
    return SAMPLE_SHAPES[rank], "float32"


# Merge layers take two inputs: tests/core/engine/test_graph_build.py builds them; backbones
# (seconds each to build for real) are counted and run in tests/core/engine/test_backbones.py.
@pytest.mark.parametrize("entry", [e for e in LAYERS if not e.info.get("merge") and not e.info.get("backbone")],
                         ids=lambda e: e.name)
def test_every_layer_builds_with_its_defaults_and_counts_parameters_exactly(entry):
    shape, dtype = _input_for(entry)
    model = Model([Layer(entry.name, entry.initial_params())], list(shape), dtype)
    report = analyze(model)
    assert report.ok, report.problems()
    built = build(model)
    module = built.module
    assert report.total_params == sum(p.numel() for p in module.parameters())
    # The shape found on the meta device is the shape of a real forward pass.
    torch.manual_seed(0)
    x = torch.randint(0, 128, (3, *shape)) if dtype == "int64" else torch.randn(3, *shape)
    module.eval()
    with torch.no_grad():
        y = module(x)
    assert tuple(y.shape) == (3, *report.output_shape)


def test_the_mnist_cnn_of_the_design_has_keras_totals(root):
    report = analyze(load(root / "examples/mnist_cnn.guidl.json").model)
    assert report.ok
    assert [layer.output_shape for layer in report.layers] == [
        (32, 26, 26), (32, 26, 26), (32, 13, 13), (5408,), (128,), (128,), (10,)]
    assert [layer.param_count for layer in report.layers] == [320, 0, 0, 0, 692_352, 0, 1290]
    assert report.total_params == report.trainable_params == 693_962
    assert report.layers[0].params["in_channels"] == 1
    assert report.layers[4].params["in_features"] == 5408


def test_shape_inference_is_instant_and_allocates_nothing_for_a_huge_model():
    # 4 x 40,000 x 40,000 float32 weights would need ~25 GB; on meta they need nothing.
    model = Model([Layer("Linear", {"out_features": 40_000}) for _ in range(4)], [40_000])
    start = time.perf_counter()
    report = analyze(model, memory_limit=10**15)
    assert report.ok
    assert report.total_params == 4 * (40_000 * 40_000 + 40_000)
    assert time.perf_counter() - start < 30  # generous: only guards against real allocation


def _error(model: Model, index: int) -> str:
    report = analyze(model)
    assert not report.ok
    failed = [layer.index for layer in report.layers if layer.error]
    assert failed[0] == index, report.problems()
    return report.layers[index].message


def test_linear_after_a_convolution_asks_for_flatten():
    model = Model([Layer("Conv2d", {"out_channels": 8, "kernel_size": 3}), Layer("ReLU"),
                   Layer("MaxPool2d", {"kernel_size": 2}), Layer("Linear", {"out_features": 10})],
                  [1, 28, 28])
    message = _error(model, 3)
    assert "receives (8, 13, 13)" in message
    assert "insert Flatten before layer 3 (Linear)" in message


def test_conv_after_a_vector_suggests_unflatten_to_an_image():
    model = Model([Layer("Conv2d", {"out_channels": 8, "kernel_size": 3})], [784])
    message = _error(model, 0)
    assert "needs (channels, height, width)" in message
    assert "Unflatten(dim=1, unflattened_size=[1, 28, 28])" in message


def test_a_kernel_larger_than_its_input_is_named():
    model = Model([Layer("Conv2d", {"out_channels": 8, "kernel_size": 5}),
                   Layer("MaxPool2d", {"kernel_size": 2}),
                   Layer("Conv2d", {"out_channels": 8, "kernel_size": 5})], [1, 8, 8])
    message = _error(model, 2)
    assert "kernel_size 5 is larger than its input of 2 x 2" in message


def test_a_model_too_big_for_memory_is_refused_before_allocating():
    model = Model([Layer("Flatten"), Layer("Linear", {"out_features": 1_000_000_000})], [1, 28, 28])
    message = _error(model, 1)
    assert "784,001,000,000" not in message  # counts are per layer; this is the layer's own
    assert "more than this machine's" in message
    with pytest.raises(ProjectError) as caught:
        build(model)
    assert caught.value.problems[0].path == "model.layers[1]"


def test_an_output_too_big_for_memory_is_refused():
    model = Model([Layer("Upsample", {"scale_factor": 1000.0})], [3, 1000, 1000])
    assert "one sample's output (3, 1000000, 1000000)" in _error(model, 0)


def test_embedding_needs_token_ids_and_other_layers_need_real_numbers():
    assert "set the model's input_dtype to 'int64'" in _error(
        Model([Layer("Embedding", {"num_embeddings": 10, "embedding_dim": 4})], [5]), 0)
    assert "insert Embedding before layer 0 (Linear)" in _error(
        Model([Layer("Linear", {"out_features": 4})], [5], "int64"), 0)


def test_an_inferred_size_that_contradicts_the_layer_before_is_reported():
    message = _error(Model([Layer("Linear", {"in_features": 100, "out_features": 4})], [5]), 0)
    assert "in_features is 100 in the project, but the layer before gives 5" in message
    # A correct explicit value is fine.
    assert analyze(Model([Layer("Linear", {"in_features": 5, "out_features": 4})], [5])).ok


def test_torch_errors_become_layer_messages():
    message = _error(Model([Layer("Upsample", {})], [3, 8, 8]), 0)
    assert message == "cannot take input (3, 8, 8): either size or scale_factor should be defined"
    message = _error(Model([Layer("GroupNorm", {"num_groups": 3}), ], [8, 4, 4]), 0)
    assert message == ("cannot be built with these parameters: "
                       "num_channels (8) must be divisible by num_groups (3)")


def test_layers_after_a_failed_one_have_no_shape_but_keep_their_params():
    report = analyze(Model([Layer("Linear", {"out_features": 4}), Layer("ReLU"),
                            Layer("Linear", {"out_features": 3})], [1, 5, 5]))
    assert report.layers[0].error and report.layers[2].error is None
    assert report.layers[2].output_shape is None
    assert report.layers[2].params == {"out_features": 3, "bias": True}


def test_missing_input_shape_is_a_model_problem():
    report = analyze(Model([Layer("ReLU")]))
    assert [p.path for p in report.problems()] == ["model.input_shape"]


def test_torch_warnings_are_kept_on_the_layer():
    report = analyze(Model([Layer("LSTM", {"hidden_size": 8, "dropout": 0.5})], [5, 3]))
    assert report.ok
    assert any("dropout" in w for w in report.layers[0].warnings)


def test_recurrent_layers_give_the_last_step_or_the_whole_sequence():
    torch.manual_seed(0)
    x = torch.randn(2, 7, 3)
    last = Recurrent("LSTM", 3, 5)
    out, _ = last.rnn(x)
    assert torch.equal(last(x), out[:, -1])
    sequence = Recurrent("GRU", 3, 5, return_sequences=True)
    assert sequence(x).shape == (2, 7, 5)
    both = Recurrent("RNN", 3, 5, bidirectional=True)
    out, _ = both.rnn(x)
    y = both(x)
    assert y.shape == (2, 10)
    assert torch.equal(y[:, :5], out[:, -1, :5]) and torch.equal(y[:, 5:], out[:, 0, 5:])
    report = analyze(Model([Layer("GRU", {"hidden_size": 6, "bidirectional": True,
                                          "return_sequences": True})], [7, 3]))
    assert report.output_shape == (7, 12)


def test_every_example_builds_and_runs_a_real_batch(example_path):
    project = load(example_path)
    shape = None
    if project.task is not None and project.model.input_shape is None:  # e.g. a generator: the noise
        from guidl.engine.checks import catalogue_info
        from guidl.engine.tasks import input_shapes

        shape = input_shapes(project, catalogue_info(project))["model"]
    built = build(project, shape)
    shape = built.report.input_shape
    x = (torch.randint(0, 96, (2, *shape)) if project.model.input_dtype == "int64"
         else torch.randn(2, *shape))
    assert tuple(built.module(x).shape) == (2, *built.report.output_shape)
    assert built.report.activation_bytes() >= math.prod(shape) * 4
