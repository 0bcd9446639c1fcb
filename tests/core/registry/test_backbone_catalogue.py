"""The backbone catalogue states torchvision's own figures, and its layer entries
offer exactly torchvision's weights."""

import subprocess
import sys

import pytest
from torchvision.models import get_model_weights

from guidl.registry import LAYERS
from guidl.registry.backbones import BACKBONES, preprocessing_for

NAMES = ["resnet18", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
         "convnext_tiny", "regnet_y_400mf", "vit_b_16"]


def test_the_catalogue_holds_the_decided_backbones():
    assert list(BACKBONES) == NAMES
    assert [e.name for e in LAYERS if e.category == "Pretrained"] == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_weights_metadata_equals_torchvisions(name):
    enum = get_model_weights(name)
    ours = BACKBONES[name]
    assert ours["default_weights"] == enum.DEFAULT.name
    assert list(ours["weights"]) == [w.name for w in enum]
    for weights in enum:
        meta, transform = weights.meta, weights.transforms()
        mine = ours["weights"][weights.name]
        assert mine["url"] == weights.url
        assert mine["file"] == weights.url.rsplit("/", 1)[1]
        assert mine["params"] == meta["num_params"]
        assert mine["gflops"] == meta["_ops"]
        assert mine["file_mb"] == meta["_file_size"]
        assert mine["acc1"] == meta["_metrics"]["ImageNet-1K"]["acc@1"]
        assert mine["acc5"] == meta["_metrics"]["ImageNet-1K"]["acc@5"]
        assert mine["min_size"] == meta["min_size"][0] == meta["min_size"][1]
        assert mine["resize"] == transform.resize_size[0]
        assert mine["crop"] == transform.crop_size[0]
        assert mine["mean"] == list(transform.mean) and mine["std"] == list(transform.std)
        assert mine["interpolation"] == transform.interpolation.value
        assert preprocessing_for(name, weights.name) == {
            "resize": transform.resize_size[0], "crop": transform.crop_size[0],
            "mean": list(transform.mean), "std": list(transform.std),
            "interpolation": transform.interpolation.value}


@pytest.mark.parametrize("name", NAMES)
def test_layer_entry_offers_none_and_every_weights(name):
    entry = LAYERS.get(name)
    assert entry.category == "Pretrained"
    weights = entry.param("weights")
    assert weights.choices == ("none", *BACKBONES[name]["weights"])
    assert weights.default == BACKBONES[name]["default_weights"]
    assert entry.param("output").choices == ("pooled", "feature_map")
    assert entry.param("output").default == "pooled"
    assert entry.param("weights_file").nullable and entry.param("weights_file").default is None
    assert dict(entry.info) == {"backbone": True, "input_ranks": [3], "input": "float",
                                "key_params": ["weights"]}
    default = BACKBONES[name]["weights"][weights.default]
    assert f"{default['params'] / 1e6:.1f} M parameters" in entry.help
    assert f"{default['acc1']:g} %" in entry.help
    assert entry.check_params({"weights": "IMAGENET1K_V9"})
    assert not entry.check_params({"weights": "none", "output": "feature_map", "weights_file": "w.pth"})


def test_preprocessing_without_weights_is_the_default_weights():
    # resnet50's default is V2, which resizes to 232 (V1: 256).
    assert preprocessing_for("resnet50", "none") == preprocessing_for("resnet50", "IMAGENET1K_V2")
    assert preprocessing_for("resnet50", "none")["resize"] == 232
    assert preprocessing_for("efficientnet_b0", "none")["interpolation"] == "bicubic"


def test_the_catalogue_loads_without_torch():
    code = ("import sys; import guidl.registry.backbones; "
            "assert 'torch' not in sys.modules and 'PySide6' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
