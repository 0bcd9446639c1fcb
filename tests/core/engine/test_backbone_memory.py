"""A pretrained backbone's inner activations count in the training-memory
estimate: measured on the meta device with autograd's saved-tensor hooks, not
only the backbone's output."""

import torch
from torch import nn

from guidl.engine.backbones import Backbone
from guidl.engine.build import analyze, check_training_memory, training_memory
from guidl.engine.summary import summary_text
from guidl.formatting import format_bytes
from guidl.spec import Component, Layer, Model
from helpers import small_project

SHAPE = [3, 224, 224]


def _model(name: str, *, frozen: bool = False, before: list[Layer] = ()) -> Model:
    return Model([*before, Layer(name, {"weights": "none"}, frozen=frozen),
                  Layer("Linear", {"out_features": 2})], SHAPE)


def _leaf_outputs_per_sample(module: nn.Module, shape) -> float:
    """The reference: every leaf module's output in a real CPU training forward."""
    total = 0

    def hook(_module, _inputs, output):
        nonlocal total
        total += output.numel() * output.element_size()

    leaves = [m for m in module.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    module.train()(torch.randn(2, *shape))
    for handle in handles:
        handle.remove()
    return total / 2


def test_resnet18_counts_what_its_layers_keep():
    report = analyze(_model("resnet18"))
    estimate = report.activation_bytes()
    reference = _leaf_outputs_per_sample(Backbone("resnet18"), SHAPE)  # about 30 MB
    assert reference / 2 < estimate < reference * 2
    # Not only the input and the pooled output (0.6 MB per sample before).
    assert estimate > 10 * 2**20
    assert report.layers[0].inner_activation_bytes > 10 * 2**20
    assert report.activation_bytes(32) == 32 * estimate


def test_bigger_backbones_keep_more():
    sizes = {name: analyze(_model(name)).activation_bytes()
             for name in ("mobilenet_v3_small", "resnet18", "vit_b_16")}
    assert sizes["mobilenet_v3_small"] < sizes["resnet18"] < sizes["vit_b_16"]
    assert sizes["vit_b_16"] > 5 * sizes["resnet18"]


def test_the_estimate_is_cached_with_the_analysis():
    first = analyze(_model("resnet18")).layers[0].inner_activation_bytes
    again = analyze(_model("resnet18")).layers[0].inner_activation_bytes
    assert first == again > 0


def test_a_frozen_backbone_no_gradient_reaches_keeps_nothing_inside():
    trained = analyze(_model("resnet18")).activation_bytes()
    frozen = analyze(_model("resnet18", frozen=True))
    outputs = (3 * 224 * 224 + 512 + 2) * 4
    assert frozen.activation_bytes() == outputs
    # A fine-tune schedule unfreezes it later: then it keeps them.
    assert frozen.activation_bytes(all_trainable=True) == trained
    assert training_memory(frozen, Component("Adam"), 8).activations == 8 * outputs
    assert training_memory(frozen, Component("Adam"), 8, frozen.total_params).activations == 8 * trained
    # A trainable layer before it: the gradient goes through the backbone.
    after = analyze(_model("resnet18", frozen=True, before=[
        Layer("Conv2d", {"out_channels": 3, "kernel_size": 1})]))
    assert after.activation_bytes() > trained


def test_training_memory_refuses_a_batch_a_backbone_cannot_hold():
    report = analyze(_model("resnet18"))
    project = small_project()
    project.model = _model("resnet18")
    project.data.batch_size = 256  # ~5.5 GB of activations; the input and output alone: 150 MB
    problem = check_training_memory(project, report, "cpu", available=2**30)
    assert problem is not None and "lower data.batch_size" in problem.message
    project.data.batch_size = 8
    assert check_training_memory(project, report, "cpu", available=2**30) is None


def test_summary_shows_the_activations_inside():
    report = analyze(_model("resnet18"))
    text = summary_text(report)
    assert f"activations per sample: {format_bytes(report.activation_bytes())}\n" in text
    frozen = analyze(_model("resnet18", frozen=True))
    assert (f"activations per sample: {format_bytes(frozen.activation_bytes())} "
            f"({format_bytes(report.activation_bytes())} with every layer trainable)") in summary_text(frozen)
