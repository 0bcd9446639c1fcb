"""Pretrained torchvision backbones: what each one is, what its weights cost
and how its images must be prepared.

Plain numbers copied from torchvision's weights metadata (``get_model_weights``:
the file, its url, ``num_params``, ``_ops`` as GFLOPS, ``_file_size`` in MB,
ImageNet-1K accuracy and the evaluation transform); a test checks every one of
them against torchvision, so the window can show sizes and accuracy without
importing torch. ``features`` is the size of the pooled features the backbone
gives once its classification head is removed.

One layer catalogue entry per backbone (``BACKBONE_LAYERS``), named as the
torchvision builder (``resnet18``), in the category "Pretrained".
"""

from __future__ import annotations

from typing import Any

from .schema import Entry, Param

_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_STD = [0.229, 0.224, 0.225]
_URL = "https://download.pytorch.org/models/"


def _weights(file: str, params: int, gflops: float, file_mb: float, acc1: float, acc5: float,
             resize: int, crop: int = 224, interpolation: str = "bilinear",
             min_size: int = 1) -> dict[str, Any]:
    return {"file": file, "url": _URL + file, "params": params, "gflops": gflops,
            "file_mb": file_mb, "acc1": acc1, "acc5": acc5, "resize": resize, "crop": crop,
            "mean": list(_IMAGENET_MEAN), "std": list(_IMAGENET_STD),
            "interpolation": interpolation, "min_size": min_size}


#: name -> {"family", "title", "default_weights", "features", "weights": {name: {...}}}.
#: ``min_size``: the smallest height and width torchvision documents for the weights.
BACKBONES: dict[str, dict[str, Any]] = {
    "resnet18": {
        "family": "resnet", "title": "ResNet-18", "default_weights": "IMAGENET1K_V1", "features": 512,
        "weights": {
            "IMAGENET1K_V1": _weights("resnet18-f37072fd.pth", 11689512, 1.814, 44.661, 69.758, 89.078, 256),
        },
    },
    "resnet50": {
        "family": "resnet", "title": "ResNet-50", "default_weights": "IMAGENET1K_V2", "features": 2048,
        "weights": {
            "IMAGENET1K_V1": _weights("resnet50-0676ba61.pth", 25557032, 4.089, 97.781, 76.13, 92.862, 256),
            "IMAGENET1K_V2": _weights("resnet50-11ad3fa6.pth", 25557032, 4.089, 97.79, 80.858, 95.434, 232),
        },
    },
    "mobilenet_v3_small": {
        "family": "mobilenet_v3", "title": "MobileNetV3 Small", "default_weights": "IMAGENET1K_V1",
        "features": 576,
        "weights": {
            "IMAGENET1K_V1": _weights("mobilenet_v3_small-047dcff4.pth", 2542856, 0.057, 9.829, 67.668,
                                      87.402, 256),
        },
    },
    "mobilenet_v3_large": {
        "family": "mobilenet_v3", "title": "MobileNetV3 Large", "default_weights": "IMAGENET1K_V2",
        "features": 960,
        "weights": {
            "IMAGENET1K_V1": _weights("mobilenet_v3_large-8738ca79.pth", 5483032, 0.217, 21.114, 74.042,
                                      91.34, 256),
            "IMAGENET1K_V2": _weights("mobilenet_v3_large-5c1a4163.pth", 5483032, 0.217, 21.107, 75.274,
                                      92.566, 232),
        },
    },
    "efficientnet_b0": {
        "family": "efficientnet", "title": "EfficientNet-B0", "default_weights": "IMAGENET1K_V1",
        "features": 1280,
        "weights": {
            "IMAGENET1K_V1": _weights("efficientnet_b0_rwightman-7f5810bc.pth", 5288548, 0.386, 20.451,
                                      77.692, 93.532, 256, interpolation="bicubic"),
        },
    },
    "convnext_tiny": {
        "family": "convnext", "title": "ConvNeXt Tiny", "default_weights": "IMAGENET1K_V1", "features": 768,
        "weights": {
            "IMAGENET1K_V1": _weights("convnext_tiny-983f1562.pth", 28589128, 4.456, 109.119, 82.52, 96.146,
                                      236, min_size=32),
        },
    },
    "regnet_y_400mf": {
        "family": "regnet", "title": "RegNetY-400MF", "default_weights": "IMAGENET1K_V2", "features": 440,
        "weights": {
            "IMAGENET1K_V1": _weights("regnet_y_400mf-c65dace8.pth", 4344144, 0.402, 16.806, 74.046, 91.716,
                                      256),
            "IMAGENET1K_V2": _weights("regnet_y_400mf-e6988f5f.pth", 4344144, 0.402, 16.806, 75.804, 92.742,
                                      232),
        },
    },
    "vit_b_16": {
        "family": "vit", "title": "ViT-B/16", "default_weights": "IMAGENET1K_V1", "features": 768,
        "weights": {
            "IMAGENET1K_V1": _weights("vit_b_16-c867db91.pth", 86567656, 17.564, 330.285, 81.072, 95.318,
                                      256, min_size=224),
            "IMAGENET1K_SWAG_E2E_V1": _weights("vit_b_16_swag-9ac1b537.pth", 86859496, 55.484, 331.398,
                                               85.304, 97.65, 384, 384, "bicubic", min_size=384),
            "IMAGENET1K_SWAG_LINEAR_V1": _weights("vit_b_16_lc_swag-4e70ced5.pth", 86567656, 17.564,
                                                  330.285, 81.886, 96.18, 224, interpolation="bicubic",
                                                  min_size=224),
        },
    },
}

OUTPUTS = ("pooled", "feature_map")
_PREPROCESSING = ("resize", "crop", "mean", "std", "interpolation")


def weights_of(name: str, weights: str) -> dict[str, Any]:
    """The metadata of ``name``'s ``weights`` ("none": its default weights')."""
    model = BACKBONES[name]
    return model["weights"][model["default_weights"] if weights in (None, "none") else weights]


def preprocessing_for(name: str, weights: str) -> dict[str, Any]:
    """How images are resized, cropped and normalised for these weights; for
    "none" the default weights' recipe (a sound start for a fresh network too)."""
    found = weights_of(name, weights)
    return {key: list(found[key]) if isinstance(found[key], list) else found[key] for key in _PREPROCESSING}


def usable_weights(name: str, weights: Any) -> str:
    """``weights`` when ``name`` has them, else "none" (the default's recipe):
    a name it lacks or a block parameter is for validation to report, not a
    reason to fail while preparing images or describing them."""
    return weights if isinstance(weights, str) and weights in BACKBONES[name]["weights"] else "none"


def _millions(count: int) -> str:
    return f"{count / 1e6:.1f} M"


def _entry(name: str, model: dict[str, Any]) -> Entry:
    default = model["weights"][model["default_weights"]]
    best = max(model["weights"].items(), key=lambda item: item[1]["acc1"])
    help_text = (f"{model['title']} pretrained on ImageNet (torchvision): {_millions(default['params'])} "
                 f"parameters, {default['gflops']:g} GFLOPS, top-1 {default['acc1']:g} % with "
                 f"{model['default_weights']} ({default['file_mb']:.0f} MB download)")
    if best[0] != model["default_weights"]:
        help_text += f", {best[1]['acc1']:g} % with {best[0]}"
    help_text += (f". Takes 3-channel images, {default['crop']}x{default['crop']} as trained; gives "
                  f"{model['features']} pooled features or its last feature map.")
    return Entry(name, "Pretrained", help_text, (
        Param("weights", "str", model["default_weights"],
              "pretrained weights to start from ('none': random initialisation)",
              choices=("none", *model["weights"])),
        Param("output", "str", "pooled",
              "'pooled': one feature vector per image (put Linear after it); 'feature_map': the "
              "last feature map (channels, height, width)", choices=OUTPUTS),
        Param("weights_file", "str", None,
              "a .pth/.pt or .safetensors file with this model's state_dict, used instead of "
              "downloading 'weights' (offline use or your own weights)", nullable=True),
    ), {"backbone": True, "input_ranks": [3], "input": "float", "key_params": ["weights"]})


#: The layer catalogue entries, in the order of ``BACKBONES``.
BACKBONE_LAYERS: list[Entry] = [_entry(name, model) for name, model in BACKBONES.items()]
