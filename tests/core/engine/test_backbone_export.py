"""A model on a pretrained backbone (resnet18, frozen, with a Linear head)
through every export, the bundle and ``guidl predict``: the backbone's image
preprocessing travels with the model and is applied as in training."""

import copy
import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from guidl import spec
from guidl.engine.build import build
from guidl.engine.bundle import META
from guidl.engine.export import FORMATS, ExportError, TrainedModel, export, load_bundle
from guidl.engine.predict import predict, preprocess, read_inputs

#: torchvision's ImageNet recipe scaled to a 64-pixel crop, so the checks stay fast.
PREPROCESSING = {"resize": 73, "crop": 64, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                 "interpolation": "bilinear"}


def backbone_project() -> spec.Project:
    return spec.Project.from_dict({
        "format": "guidl-project", "version": 4, "name": "Photo classifier",
        "model": {"input_shape": [3, 64, 64], "layers": [
            {"type": "resnet18", "params": {"weights": "none"}, "frozen": True},
            {"type": "Linear", "params": {"out_features": 2}},
        ]},
        "data": {"dataset": "image_folder", "params": {"path": "photos", "image_size": 64}},
        "training": {"loss": {"type": "CrossEntropyLoss"}, "optimizer": {"type": "Adam"}, "epochs": 1},
    })


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    project = backbone_project()
    torch.manual_seed(0)
    built = build(project.model, (3, 64, 64))
    with torch.no_grad():  # the BatchNorm statistics of a trained network, not the fresh 0 and 1
        for module in built.module.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    samples = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    return TrainedModel(project, built.module.eval(), built.report, (3, 64, 64), "float32",
                        task="classification", class_names=["cat", "dog"], samples=samples,
                        meta={"preprocessing": dict(PREPROCESSING)})


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A 90x120 colour photo (not square, not the crop's size)."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("photos") / "photo.png"
    Image.fromarray(pixels).save(path)
    return path


def trainer_eval(path: Path, preprocessing: dict) -> torch.Tensor:
    """The trainer's evaluation form of one image file (engine.images)."""
    from guidl.engine.images import Preprocessing, decode_bytes

    image = decode_bytes(str(path), path.read_bytes(), 3)
    return Preprocessing.from_dict(preprocessing).eval_transform()(image)[None]


def test_predict_reads_photos_as_the_trainer_evaluates_them(tmp_path):
    """Photos of odd sizes and formats (JPEG, grey PNG, RGBA): ``guidl predict``
    gives the model what the trainer's validation split gives it."""
    from guidl.engine.data import prepare
    from guidl.engine.images import preprocessing_of

    rng = np.random.default_rng(3)
    for name, size, mode, suffix in [("cats/a", (300, 250), "RGB", ".jpg"), ("cats/b", (230, 410), "L", ".png"),
                                     ("dogs/c", (257, 257), "RGBA", ".png"), ("dogs/d", (500, 240), "RGB", ".jpg")]:
        path = tmp_path / "photos" / (name + suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
        pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
        Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)
    project = backbone_project()
    project.model.input_shape = None
    project.data.params = {"path": str(tmp_path / "photos")}
    project.data.val_fraction = 0.5
    preprocessing = preprocessing_of(project).to_dict()
    data = prepare(project)
    reader = TrainedModel(project, torch.nn.Identity(), None, tuple(data.info.input_shape), "float32",
                          meta={"preprocessing": preprocessing})
    for split in (data.train, data.val):
        for index, file in enumerate(split.files):
            x, _ = read_inputs(reader, [file])
            # Equal to float rounding (the pipeline may fuse its scale and std); a pixel
            # off in the resize or crop would differ by far more.
            assert torch.allclose(preprocess(reader, x), split.take([index]), rtol=0, atol=1e-6), file


def test_predict_applies_the_backbones_preprocessing(model, photo):
    x, names = read_inputs(model, [str(photo)])
    assert tuple(x.shape) == (1, 3, 64, 64)  # resized, then cropped
    expected = trainer_eval(photo, PREPROCESSING)
    assert torch.allclose(preprocess(model, x), expected, rtol=0, atol=1e-6)
    top = predict(model, x, top_k=2, names=names)[0]
    with torch.no_grad():
        probabilities = model.module(expected).softmax(1)[0]
    assert {name: p for name, p in top} == pytest.approx(
        {"cat": float(probabilities[0]), "dog": float(probabilities[1])}, abs=1e-5)


@pytest.fixture(scope="module")
def good_bundle(model, tmp_path_factory) -> Path:
    return export(model, "bundle", tmp_path_factory.mktemp("bundle") / "photos.guidl").path


def test_bundle_carries_the_preprocessing(model, photo, good_bundle):
    with zipfile.ZipFile(good_bundle) as archive:
        assert json.loads(archive.read(META))["preprocessing"] == PREPROCESSING
    loaded = load_bundle(good_bundle)
    assert loaded.preprocessing == PREPROCESSING
    x, _ = read_inputs(loaded, [str(photo)])
    with torch.no_grad():
        assert torch.allclose(loaded.module(preprocess(loaded, x)),
                              model.module(trainer_eval(photo, PREPROCESSING)), atol=1e-5)


def _with_meta(path: Path, out: Path, **changes) -> Path:
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    meta = json.loads(members[META])
    meta.update(changes)
    members[META] = json.dumps(meta).encode()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out


@pytest.mark.parametrize("change, message", [
    ({"resize": -5}, "resize must be a whole number of pixels"),
    ({"crop": 10**9}, "crop must be a whole number of pixels"),
    ({"mean": [0.5, "x", 0.5]}, "mean and std must be lists"),
    ({"std": [0.2, 0.0, 0.2]}, "std within 0..1000 (above 0)"),
    ({"interpolation": "__import__('os')"}, "interpolation must be one of"),
    ({"extra": 1}, "must be an object of resize, crop, mean, std, interpolation"),
    ({"crop": 32}, "preprocessing makes 3x32x32 images, the model takes"),
])
def test_a_bundles_preprocessing_is_checked(good_bundle, tmp_path, change, message):
    bad = _with_meta(good_bundle, tmp_path / "bad.guidl", preprocessing={**PREPROCESSING, **change})
    with pytest.raises(ExportError, match="not a valid guidl bundle") as caught:
        load_bundle(bad)
    assert message in str(caught.value)


def test_python_export_builds_the_backbone_and_preprocesses_images(model, photo, tmp_path):
    result = export(model, "python", tmp_path / "photo_model.py")  # its check ran the module
    assert result.max_difference <= 1e-6
    source = result.path.read_text()
    assert "import torchvision" in source and "torchvision" in source.split('"""')[1]
    assert "Backbone('resnet18', 'none', 'pooled')" in source
    # The export's own check ran the module in a fresh interpreter without guidl;
    # here its read_image() and preprocess() meet the trainer's transform.
    spec_ = importlib.util.spec_from_file_location("photo_model", result.path)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    assert torch.allclose(module.preprocess(module.read_image(photo)), trainer_eval(photo, PREPROCESSING),
                          rtol=0, atol=1e-6)
    with torch.no_grad():
        got = module.load()(module.preprocess(module.read_image(photo)))
    with torch.no_grad():
        expected = model.module(trainer_eval(photo, PREPROCESSING))
    assert torch.allclose(got, expected, atol=1e-5)


def test_the_training_script_trains_the_head_on_the_exported_frozen_backbone(model, tmp_path):
    """The backbone is not retrained from random weights: the script starts
    from the exported ones and keeps the frozen backbone (and its BatchNorm
    statistics) as it is, while the head learns."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    export(model, "python", tmp_path / "photo_model.py", training_script=True)
    script = (tmp_path / "photo_model_train.py").read_text(encoding="utf-8")
    assert "torchvision" in script.split('"""')[1]
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "photos.npz", x=rng.integers(0, 256, (6, 3, 70, 80), dtype=np.uint8),
             y=np.array([0, 1] * 3))
    code = "import sys; sys.modules['guidl'] = None\nimport photo_model_train\nphoto_model_train.main('photos.npz', 1)\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1  loss" in result.stdout
    exported = load_file(tmp_path / "photo_model.safetensors")
    retrained = load_file(tmp_path / "photo_model_retrained.safetensors")
    backbone = [key for key in exported if key.startswith("0.")]
    assert any("running_mean" in key for key in backbone)
    assert all(torch.equal(retrained[key], exported[key]) for key in backbone)
    assert not torch.equal(retrained["1.weight"], exported["1.weight"])


def test_python_export_refuses_a_backbone_outside_the_catalogue(model):
    from guidl.engine.python_source import SourceError, python_source

    report = copy.deepcopy(model.report)
    report.layers[0].type = "resnet18'); import os; os.system('true"
    hostile = TrainedModel(model.project, model.module, report, model.input_shape, "float32",
                           meta={"preprocessing": dict(PREPROCESSING)})
    with pytest.raises(SourceError, match="is not a known layer"):
        python_source(hostile, "w.safetensors")
    for key, value in (("weights", "IMAGENET1K_V1'); import os; os.system('true"), ("output", "pooled\n")):
        report = copy.deepcopy(model.report)
        report.layers[0].params[key] = value
        hostile.report = report
        with pytest.raises(SourceError, match="is not a known backbone"):
            python_source(hostile, "w.safetensors")


#: The formats that trace the model. The bundle is checked by the fixture
#: above, the Python module in its own test; safetensors and state_dict write
#: the state dict whatever the layers are.
@pytest.mark.parametrize("fmt", ["onnx", "pt2", "torchscript"])
def test_the_traced_formats_take_a_backbone_model(model, tmp_path, fmt):
    result = export(model, fmt, tmp_path / f"photos{FORMATS[fmt]}")
    assert result.max_difference is not None and result.max_difference <= (1e-4 if fmt == "onnx" else 1e-6)
    assert result.path.is_file()


def test_predict_explains_a_photo_it_cannot_read(model, tmp_path):
    from guidl.engine.predict import PredictError

    (tmp_path / "notes.jpg").write_text("not a photo")
    with pytest.raises(PredictError, match="notes.jpg: not an image format guidl reads"):
        read_inputs(model, [str(tmp_path / "notes.jpg")])
