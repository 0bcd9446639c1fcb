"""Backbones as layers: torchvision's networks without their heads, their sizes,
shapes, stages and input checks."""

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from guidl.engine import analyze, build
from guidl.engine.build import needs_two_per_batch
from guidl.engine.backbones import Backbone, backbone_source
from guidl.registry.backbones import BACKBONES
from guidl.spec import Layer, Model

#: torchvision's head of each family, as guidl layers (MobileNetV3 has a hidden layer).
HEADS = {
    "mobilenet_v3_small": [Layer("Linear", {"out_features": 1024}), Layer("Hardswish"),
                           Layer("Dropout", {"p": 0.2}), Layer("Linear", {"out_features": 1000})],
    "mobilenet_v3_large": [Layer("Linear", {"out_features": 1280}), Layer("Hardswish"),
                           Layer("Dropout", {"p": 0.2}), Layer("Linear", {"out_features": 1000})],
}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_parameter_counts_are_torchvisions_without_the_head(name):
    model = BACKBONES[name]
    num_params = model["weights"][model["default_weights"]]["params"]
    head = HEADS.get(name, [Layer("Linear", {"out_features": 1000})])
    report = analyze(Model([Layer(name), *head], [3, 224, 224]))
    assert report.ok, report.problems()
    layer = report.layers[0]
    assert layer.output_shape == (model["features"],)
    # With torchvision's own head on top, the count is torchvision's.
    assert report.total_params == num_params
    with torch.device("meta"):
        full = torchvision.models.get_model(name) if name != "regnet_y_400mf" else None
    if full is not None:
        head_module = full.get_submodule(Backbone.HEADS[model["family"]])
        assert layer.param_count == num_params - sum(p.numel() for p in head_module.parameters())


@pytest.mark.parametrize("name", list(BACKBONES))
def test_state_dict_is_torchvisions_under_net_and_stages_hold_each_parameter_once(name):
    with torch.device("meta"):
        backbone = Backbone(name)
    # torchvision's RegNet builder needs real values: that one is built on the CPU.
    with torch.device("cpu" if name == "regnet_y_400mf" else "meta"):
        theirs = torchvision.models.get_model(name).state_dict()
    head = Backbone.HEADS[BACKBONES[name]["family"]] + "."
    expected = {k: tuple(v.shape) for k, v in theirs.items() if not k.startswith(head)}
    assert {k[len("net."):]: tuple(v.shape) for k, v in backbone.state_dict().items()} == expected
    _check_stages(backbone)


@pytest.mark.parametrize("name", ["convnext_tiny", "vit_b_16"])
def test_feature_map_stages_hold_each_parameter_once(name):
    with torch.device("meta"):
        _check_stages(Backbone(name, output="feature_map"))


def _check_stages(backbone):
    stages = backbone.stages()
    assert len(stages) >= 5
    seen = [id(p) for stage in stages for module in stage for p in module.parameters()]
    assert len(seen) == len(set(seen))
    assert set(seen) == {id(p) for p in backbone.parameters()}
    # Model order: the first stage takes the image (the first convolution is in it).
    first_conv = next(m for m in backbone.modules() if isinstance(m, nn.Conv2d))
    assert any(first_conv in list(module.modules()) for module in stages[0])


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_pooled_features_feed_torchvisions_head_and_the_feature_map_pools_to_them(name):
    torch.manual_seed(0)
    theirs = torchvision.models.get_model(name).eval()
    pooled = Backbone(name).eval()
    mapped = Backbone(name, output="feature_map").eval()
    pooled.net.load_state_dict({k: v for k, v in theirs.state_dict().items() if k in pooled.net.state_dict()})
    mapped.load_state_dict(pooled.state_dict())
    x = torch.rand(2, 3, 64, 64)
    head = theirs.fc if name == "resnet18" else theirs.classifier
    with torch.no_grad():
        features = pooled(x)
        assert features.shape == (2, BACKBONES[name]["features"])
        assert torch.allclose(head(features), theirs(x), atol=1e-5)
        feature_map = mapped(x)
        assert feature_map.shape == (2, BACKBONES[name]["features"], 2, 2)
        assert torch.allclose(feature_map.mean((2, 3)), features, atol=1e-5)


@pytest.mark.parametrize("output,shape", [("pooled", (512,)), ("feature_map", (512, 2, 2))])
def test_a_built_model_gives_the_analysed_shape(output, shape):
    model = Model([Layer("resnet18", {"output": output, "weights": "none"})], [3, 64, 64])
    built = build(model)
    assert built.report.output_shape == shape
    with torch.no_grad():
        assert tuple(built.module.eval()(torch.rand(2, 3, 64, 64)).shape) == (2, *shape)


def test_vit_takes_any_multiple_of_its_patch_size():
    report = analyze(Model([Layer("vit_b_16", {"output": "feature_map"})], [3, 224, 224]))
    assert report.output_shape == (768, 14, 14)
    report = analyze(Model([Layer("vit_b_16", {"output": "feature_map"})], [3, 32, 48]))
    assert report.output_shape == (768, 2, 3)
    # SWAG E2E weights were trained at 384: the model carries positions for 24 x 24 patches.
    with torch.device("meta"):
        swag = Backbone("vit_b_16", weights="IMAGENET1K_SWAG_E2E_V1")
    assert swag.net.encoder.pos_embedding.shape == (1, 24 * 24 + 1, 768)


def test_vit_gives_torchvisions_class_token_and_resizes_its_positions():
    torch.manual_seed(0)
    # A tiny ViT of torchvision's class stands in for ViT-B/16 (the same code, seconds less).
    small = torchvision.models.vision_transformer.VisionTransformer(
        image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16).eval()
    with torch.device("meta"):
        backbone = Backbone("vit_b_16")
    backbone.net = small
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        tokens = torch.cat([small.class_token.expand(2, -1, -1), small._process_input(x)], 1)
        assert torch.allclose(backbone(x), small.encoder(tokens)[:, 0], atol=1e-6)
        backbone.output = "feature_map"
        assert backbone(torch.rand(2, 3, 48, 64)).shape == (2, 8, 3, 4)


@pytest.mark.parametrize("shape,expected", [
    ([1, 28, 28], "resnet18 takes 3 colour channels but receives (1, 28, 28)"),
    ([4, 64, 64], "resnet18 takes 3 colour channels but receives (4, 64, 64)"),
    ([784], "receives (784,) but needs (channels, height, width)"),
])
def test_a_wrong_input_is_explained_on_the_layer(shape, expected):
    report = analyze(Model([Layer("resnet18"), Layer("Linear", {"out_features": 3})], shape))
    assert not report.ok
    assert expected in report.layers[0].message
    assert "fix:" in report.layers[0].message


def test_too_small_or_uneven_images_are_explained():
    message = analyze(Model([Layer("convnext_tiny")], [3, 16, 16])).layers[0].message
    assert "convnext_tiny needs images of at least 32x32 but receives (3, 16, 16)" in message
    message = analyze(Model([Layer("vit_b_16")], [3, 100, 100])).layers[0].message
    assert "multiples of 16" in message and "resize the images to 224x224" in message
    # Analysis never raises, even for a value validation would have refused.
    message = analyze(Model([Layer("vit_b_16", {"weights": "V9"})], [3, 224, 224])).layers[0].message
    assert "weights 'V9' are not among vit_b_16's" in message


def test_exported_source_builds_the_same_network_without_guidl():
    source = backbone_source()
    assert "load_pretrained" not in source and "guidl" not in source.lower()
    namespace = {"math": math, "partial": partial, "torch": torch, "F": F, "nn": nn}
    exec(compile(source, "<export>", "exec"), namespace)
    with torch.device("meta"):
        exported = namespace["Backbone"]("regnet_y_400mf", output="feature_map")
        ours = Backbone("regnet_y_400mf", output="feature_map")
    assert {k: v.shape for k, v in exported.state_dict().items()} == \
        {k: v.shape for k, v in ours.state_dict().items()}


@pytest.mark.parametrize("name", ["resnet18", "regnet_y_400mf"])
def test_a_backbone_ending_at_1x1_needs_two_samples_per_batch(name):
    # On 32x32 images the last BatchNorm sees one value per channel: torch refuses a batch of one.
    small = analyze(Model([Layer(name)], [3, 32, 32]))
    assert needs_two_per_batch(small) is small.layers[0]
    backbone = Backbone(name).train()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        backbone(torch.rand(1, 3, 32, 32))
    larger = analyze(Model([Layer(name)], [3, 33, 40]))
    assert needs_two_per_batch(larger) is None
    backbone(torch.rand(1, 3, 33, 40))
    assert needs_two_per_batch(analyze(Model([Layer("convnext_tiny")], [3, 32, 32]))) is None


def test_a_vits_last_stage_is_its_last_encoder_layer_with_the_final_norm():
    with torch.device("meta"):
        backbone = Backbone("vit_b_16")
    stages = backbone.stages()
    encoder = backbone.net.encoder
    assert len(stages) == 1 + len(encoder.layers)  # the patch embedding, then one per encoder layer
    assert stages[-1] == [encoder.layers[-1], encoder.ln]
    assert sum(p.numel() for m in stages[-1] for p in m.parameters()) > 7_000_000  # not the norm alone
