"""The attention, transformer, 3-D, padding and activation layers of the
catalogue: each builds to what the same layer written by hand in torch is
(output shape, parameter count, outputs with the same weights), explains
the parameters and shapes that do not fit, and exports to every format."""

import pytest
import torch
from torch import nn

from guidl import spec
from guidl.engine import analyze, build
from guidl.engine.export import FORMATS, ExportError, export, load_trained
from guidl.engine.modules import PositionalEmbedding, SelfAttention
from guidl.engine.python_source import python_source
from guidl.registry import LAYERS
from guidl.spec import Layer, Model
from helpers import small_project


def _attention_forward(module, x):
    return module(x, x, x, need_weights=False)[0]


#: id -> (layer type, params, input shape, the torch module written by hand, its forward or None)
CASES = {
    "MultiheadAttention": ("MultiheadAttention", {"num_heads": 4, "add_bias_kv": True}, (5, 12),
                           lambda: nn.MultiheadAttention(12, 4, add_bias_kv=True, batch_first=True),
                           _attention_forward),
    "TransformerEncoderLayer": ("TransformerEncoderLayer",
                                {"nhead": 3, "dim_feedforward": 16, "activation": "gelu",
                                 "norm_first": True}, (5, 12),
                                lambda: nn.TransformerEncoderLayer(12, 3, 16, activation="gelu",
                                                                   norm_first=True, batch_first=True),
                                None),
    "PositionalEmbedding": ("PositionalEmbedding", {}, (5, 12), None, None),
    "ConvTranspose1d": ("ConvTranspose1d", {"out_channels": 4, "kernel_size": 3, "stride": 2,
                                            "output_padding": 1}, (3, 10),
                        lambda: nn.ConvTranspose1d(3, 4, 3, stride=2, output_padding=1), None),
    "Conv3d": ("Conv3d", {"out_channels": 4, "kernel_size": [3, 3, 2], "padding": 1}, (2, 5, 6, 6),
               lambda: nn.Conv3d(2, 4, (3, 3, 2), padding=1), None),
    "BatchNorm3d": ("BatchNorm3d", {}, (3, 4, 4, 4), lambda: nn.BatchNorm3d(3), None),
    "MaxPool3d": ("MaxPool3d", {"kernel_size": 2, "stride": [1, 2, 2]}, (3, 4, 6, 6),
                  lambda: nn.MaxPool3d(2, stride=(1, 2, 2)), None),
    "AdaptiveMaxPool2d": ("AdaptiveMaxPool2d", {"output_size": [2, 3]}, (3, 7, 9),
                          lambda: nn.AdaptiveMaxPool2d((2, 3)), None),
    "InstanceNorm2d": ("InstanceNorm2d", {"affine": True, "track_running_stats": True}, (3, 5, 5),
                       lambda: nn.InstanceNorm2d(3, affine=True, track_running_stats=True), None),
    "PReLU": ("PReLU", {"num_parameters": 3, "init": 0.1}, (3, 5, 5), lambda: nn.PReLU(3, 0.1), None),
    "Mish": ("Mish", {}, (6,), nn.Mish, None),
    "Hardswish": ("Hardswish", {}, (6,), nn.Hardswish, None),
    "Softplus": ("Softplus", {"beta": 2.0, "threshold": 5.0}, (6,), lambda: nn.Softplus(2.0, 5.0), None),
    "PixelShuffle": ("PixelShuffle", {"upscale_factor": 2}, (8, 3, 3), lambda: nn.PixelShuffle(2), None),
    "ZeroPad2d": ("ZeroPad2d", {"padding": [1, 2, 0, 3]}, (2, 3, 4), lambda: nn.ZeroPad2d((1, 2, 0, 3)),
                  None),
    "Dropout1d": ("Dropout1d", {"p": 0.3}, (3, 7), lambda: nn.Dropout1d(0.3), None),
}


def test_every_new_layer_is_in_the_catalogue_and_tested_here():
    assert set(CASES) <= set(LAYERS.names())


@pytest.mark.parametrize("name", list(CASES))
def test_a_new_layer_builds_to_the_torch_layer_written_by_hand(name):
    type_, params, shape, by_hand, forward = CASES[name]
    model = Model([Layer(type_, params)], list(shape))
    report = analyze(model)
    assert report.ok, report.problems()
    torch.manual_seed(0)
    built = build(model).module.eval()
    x = torch.randn(3, *shape)
    with torch.no_grad():
        y = built(x)
    assert tuple(y.shape) == (3, *report.output_shape)
    if by_hand is None:  # guidl's own layer: the hand-written equivalent is one tensor
        weight = built[0].weight
        assert report.total_params == weight.numel() == shape[0] * shape[1]
        assert torch.equal(y, x + weight)
        return
    reference = by_hand().eval()
    assert report.total_params == sum(p.numel() for p in reference.parameters())
    assert report.trainable_params == sum(p.numel() for p in reference.parameters() if p.requires_grad)
    # Same weights (and buffers) under the same names: the same outputs.
    reference.load_state_dict(built[0].state_dict())
    with torch.no_grad():
        expected = forward(reference, x) if forward else reference(x)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-6)


def test_self_attention_takes_the_input_as_query_key_and_value():
    torch.manual_seed(0)
    attention = SelfAttention(8, 2).eval()
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        expected, _ = nn.MultiheadAttention.forward(attention, x, x, x)
        torch.testing.assert_close(attention(x), expected, rtol=0, atol=1e-6)
    # Every time step attends over the others: changing the last step changes the first's output.
    changed = x.clone()
    changed[:, -1] += 1
    assert not torch.allclose(attention(changed)[:, 0], attention(x)[:, 0])


def test_the_transformer_layer_runs_batch_first_whatever_torch_defaults_to():
    built = build(Model([Layer("TransformerEncoderLayer", {"nhead": 2, "dim_feedforward": 8})], [7, 4]))
    layer = built.module[0]
    assert isinstance(layer, nn.TransformerEncoderLayer) and layer.self_attn.batch_first
    assert built.report.layers[0].params == {
        "d_model": 4, "nhead": 2, "dim_feedforward": 8, "dropout": 0.1, "activation": "relu",
        "layer_norm_eps": 1e-5, "norm_first": False, "bias": True}
    assert built.report.layers[0].label == "TransformerEncoderLayer(2)"


def test_positional_embedding_sizes_follow_the_sequence():
    report = analyze(Model([Layer("Embedding", {"num_embeddings": 30, "embedding_dim": 8}),
                            Layer("PositionalEmbedding")], [11], "int64"))
    assert report.ok
    assert report.layers[1].params == {"num_positions": 11, "embedding_dim": 8}
    assert report.layers[1].param_count == 88
    module = PositionalEmbedding(11, 8)
    assert module.weight.std() < 0.05  # starts small beside the token vectors


def test_a_small_transformer_counts_what_a_hand_written_module_counts():
    layers = [Layer("Embedding", {"num_embeddings": 40, "embedding_dim": 16}),
              Layer("PositionalEmbedding"),
              Layer("TransformerEncoderLayer", {"nhead": 4, "dim_feedforward": 32}),
              Layer("MultiheadAttention", {"num_heads": 2}),
              Layer("LayerNorm", {}),
              Layer("Flatten"),
              Layer("Linear", {"out_features": 40})]
    report = analyze(Model(layers, [12], "int64"))
    assert report.ok, report.problems()
    assert report.output_shape == (40,)

    class ByHand(nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens = nn.Embedding(40, 16)
            self.positions = nn.Parameter(torch.zeros(12, 16))
            self.encoder = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
            self.attention = nn.MultiheadAttention(16, 2, batch_first=True)
            self.norm = nn.LayerNorm(16)
            self.head = nn.Linear(12 * 16, 40)

    assert report.total_params == sum(p.numel() for p in ByHand().parameters())
    built = build(Model(layers, [12], "int64"))
    assert built.module(torch.randint(0, 40, (2, 12))).shape == (2, 40)


def _error(layers, shape, dtype="float32"):
    report = analyze(Model(layers, list(shape), dtype))
    assert not report.ok
    return next(layer.message for layer in report.layers if layer.error)


@pytest.mark.parametrize("layer, shape, message", [
    (Layer("MultiheadAttention", {"num_heads": 5}), (4, 12),
     "embed_dim 12 (the features of its input) is not divisible by num_heads 5: each head takes an "
     "equal share of the features; fix: set num_heads to a divisor of 12: 1, 2, 3, 4, 6 or 12"),
    (Layer("TransformerEncoderLayer", {"nhead": 2}), (4, 7),
     "d_model 7 (the features of its input) is not divisible by nhead 2: each head takes an equal "
     "share of the features; fix: set nhead to a divisor of 7: 1 or 7"),
    (Layer("Conv3d", {"out_channels": 8, "kernel_size": 3}), (1, 28, 28),
     "receives (1, 28, 28) but needs (channels, depth, height, width); fix: use Conv2d for "
     "(channels, height, width) inputs, or insert Unflatten before layer 0 (Conv3d) to make a "
     "volume (channels, depth, height, width)"),
    (Layer("MaxPool3d", {"kernel_size": 2}), (1, 28, 28),
     "fix: use MaxPool2d for (channels, height, width) inputs"),
    (Layer("BatchNorm3d"), (3, 8, 8), "fix: use BatchNorm2d for (channels, height, width) inputs"),
    (Layer("Conv3d", {"out_channels": 8, "kernel_size": 5}), (1, 4, 8, 8),
     "kernel_size 5 is larger than its input of 4 x 8 x 8"),
    (Layer("MultiheadAttention", {"num_heads": 1}), (1, 28, 28),
     "receives (1, 28, 28) but needs (time, features)"),
    (Layer("PositionalEmbedding", {"num_positions": 100}), (20, 8),
     "num_positions is 100 in the project, but the layer before gives 20"),
    (Layer("PReLU", {"num_parameters": 5}), (4, 6, 6),
     "num_parameters 5 must be 1 (one slope) or the input's channels (4, one slope each); "
     "fix: set num_parameters to 4 or 1"),
    (Layer("PixelShuffle", {"upscale_factor": 2}), (6, 3, 3),
     "its input's 6 channels are not a multiple of upscale_factor^2 = 4: each output pixel block "
     "takes 4 channels; fix: give the layer before a multiple of 4 channels, e.g. Conv2d(out_channels=4)"),
    (Layer("InstanceNorm2d"), (3, 1, 1), "its input (3, 1, 1) has a single pixel"),
    (Layer("ConvTranspose1d", {"out_channels": 2, "kernel_size": 3, "output_padding": 1}), (3, 8),
     "output_padding 1 must be smaller than stride (1) or dilation (1)"),
    (Layer("Dropout1d"), (3, 8, 8), "receives (3, 8, 8) but needs (channels, length); fix: use "
                                    "Dropout2d for (channels, height, width) inputs"),
])
def test_what_does_not_fit_is_explained_on_the_layer(layer, shape, message):
    assert message in _error([layer], shape)


def test_a_problem_sits_on_its_layer_in_summary_and_build():
    model = Model([Layer("Linear", {"out_features": 10}), Layer("MultiheadAttention", {"num_heads": 4})],
                  [6, 3])
    report = analyze(model)
    assert [str(p) for p in report.problems()] == [
        "model.layers[1]: MultiheadAttention: embed_dim 10 (the features of its input) is not "
        "divisible by num_heads 4: each head takes an equal share of the features; fix: set "
        "num_heads to a divisor of 10: 1, 2, 5 or 10"]
    with pytest.raises(spec.ProjectError, match="not divisible by num_heads 4"):
        build(model)


@pytest.mark.parametrize("name, params, problem", [
    ("TransformerEncoderLayer", {"nhead": 2, "activation": "tanh"}, "must be one of 'relu', 'gelu'"),
    ("MultiheadAttention", {}, "is required by MultiheadAttention"),
    ("ZeroPad2d", {"padding": [1, 2, 3]}, "must be a number or a list of 4 numbers"),
    ("ZeroPad2d", {"padding": -1}, "must be a non-negative integer"),
    ("Softplus", {"beta": 0}, "must be a number > 0"),
    ("PixelShuffle", {"upscale_factor": 0}, "must be a positive integer"),
])
def test_the_schema_refuses_what_torch_would(name, params, problem):
    problems = LAYERS.get(name).check_params(params)
    assert problems and problem in problems[0][1]


# -- export -------------------------------------------------------------------------------

#: One small model that holds every new layer: a signal, made a volume, an
#: image, then a sequence (one model: each export is checked once, quickly).
EXPORT_LAYERS = [
    Layer("ConvTranspose1d", {"out_channels": 4, "kernel_size": 3, "stride": 2}), Layer("Dropout1d"),
    Layer("Flatten"), Layer("Linear", {"out_features": 2 * 4 * 4 * 4}),
    Layer("Unflatten", {"dim": 1, "unflattened_size": [2, 4, 4, 4]}),
    Layer("Conv3d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), Layer("BatchNorm3d"),
    Layer("Mish"), Layer("MaxPool3d", {"kernel_size": 2}),
    Layer("Flatten"), Layer("Linear", {"out_features": 3 * 5 * 5}),
    Layer("Unflatten", {"dim": 1, "unflattened_size": [3, 5, 5]}),
    Layer("ZeroPad2d", {"padding": [1, 0, 1, 0]}), Layer("InstanceNorm2d", {"affine": True}),
    Layer("PReLU", {"num_parameters": 3}), Layer("Conv2d", {"out_channels": 8, "kernel_size": 1}),
    Layer("PixelShuffle", {"upscale_factor": 2}), Layer("Hardswish"),
    Layer("AdaptiveMaxPool2d", {"output_size": 2}), Layer("Softplus", {"beta": 2.0}),
    Layer("Flatten"), Layer("Linear", {"out_features": 5 * 8}),
    Layer("Unflatten", {"dim": 1, "unflattened_size": [5, 8]}),
    Layer("PositionalEmbedding"), Layer("MultiheadAttention", {"num_heads": 2}),
    Layer("TransformerEncoderLayer", {"nhead": 2, "dim_feedforward": 16, "activation": "gelu",
                                      "norm_first": True}),
    Layer("Flatten"), Layer("Linear", {"out_features": 3}),
]


def _untrained(tmp_path, name, layers, shape):
    project = small_project(model=Model(layers, shape), name=name)
    path = tmp_path / f"{name}.guidl.json"
    path.write_text(spec.dumps(project))
    return load_trained(path)


def test_every_new_layer_exports_to_every_format(tmp_path):
    assert set(CASES) <= {layer.type for layer in EXPORT_LAYERS}
    model = _untrained(tmp_path, "chain", EXPORT_LAYERS, [3, 6])
    assert model.report.ok and model.report.output_shape == (3,)
    for fmt, suffix in FORMATS.items():
        result = export(model, fmt, tmp_path / f"chain{suffix}")
        assert result.path.is_file()
        assert result.max_difference <= (1e-4 if fmt == "onnx" else 1e-6), (fmt, result.max_difference)
    source = (tmp_path / "chain.py").read_text()
    assert "guidl" not in source.split('"""', 2)[2]  # nothing but the docstring names it
    assert "PositionalEmbedding(num_positions=5, embedding_dim=8)" in source
    assert "SelfAttention(embed_dim=8, num_heads=2)" in source
    assert source.count("class SelfAttention(nn.MultiheadAttention)") == 1
    assert source.count("class PositionalEmbedding(nn.Module)") == 1
    assert "norm_first=True, batch_first=True)" in source


def test_guidl_s_own_classes_go_into_the_python_export_only_when_used(tmp_path):
    model = _untrained(tmp_path, "plain", [Layer("PReLU"), Layer("Linear", {"out_features": 2})], [4])
    source = python_source(model, "plain.safetensors")
    assert "nn.PReLU()" in source
    assert "class SelfAttention" not in source and "class PositionalEmbedding" not in source


def test_a_format_that_cannot_express_a_new_layer_names_it(tmp_path):
    # torch's ONNX exporter translates AdaptiveMaxPool2d only when the output size
    # divides the input's (7 x 7 to 2 x 2 does not); the other formats take it.
    layers = [Layer("Softplus"), Layer("AdaptiveMaxPool2d", {"output_size": 2})]
    model = _untrained(tmp_path, "pool", layers, [1, 7, 7])
    with pytest.raises(ExportError) as caught:
        export(model, "onnx", tmp_path / "m.onnx")
    assert str(caught.value).startswith(
        "layer 1 (AdaptiveMaxPool2d) cannot be expressed in ONNX: torch's ONNX exporter has no "
        "translation for aten.adaptive_max_pool2d.")
    assert not (tmp_path / "m.onnx").exists()
    assert export(model, "pt2", tmp_path / "m.pt2").max_difference == 0


def test_batch_norm_3d_on_one_value_per_channel_needs_two_samples_a_batch():
    from guidl.engine.build import needs_two_per_batch

    report = analyze(Model([Layer("BatchNorm3d")], [3, 1, 1, 1]))
    assert report.ok and needs_two_per_batch(report) is report.layers[0]
    assert needs_two_per_batch(analyze(Model([Layer("BatchNorm3d")], [3, 2, 1, 1]))) is None


def test_a_model_with_3d_convolutions_trains_without_channels_last_and_says_so():
    from guidl.engine.trainer import Trainer

    project = small_project(model=Model([
        Layer("Flatten"), Layer("Linear", {"out_features": 64}),
        Layer("Unflatten", {"dim": 1, "unflattened_size": [1, 4, 4, 4]}),
        Layer("Conv3d", {"out_channels": 2, "kernel_size": 3}), Layer("Flatten"),
        Layer("Linear", {"out_features": 10})]))
    project.training.channels_last = True
    trainer = Trainer(project, epochs=1, device="cpu")
    trainer.fit()  # torch has no channels-last layout for 5-D weights: it would raise
    assert not trainer.channels_last and len(trainer.history) == 1
    assert "this model's 3-D convolutions keep the standard layout" in " ".join(trainer.notes)
