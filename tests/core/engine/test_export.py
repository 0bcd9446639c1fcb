"""Every example, trained briefly, exported to every format: each file's
outputs equal the model's on a real batch."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import onnxruntime
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from guidl import spec
from guidl.engine.callbacks import RunFolder
from guidl.engine.export import (
    FORMATS, ExportError, export, load_bundle, load_trained,
)
from guidl.engine.trainer import Trainer

EXAMPLES = ["mnist_cnn", "two_block_cnn", "mlp", "char_lstm", "moons_mlp"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One short training run per example, written as a run folder."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    folders = {}
    for name in EXAMPLES:
        project = spec.load(root / "examples" / f"{name}.guidl.json")
        if name == "char_lstm":
            project.data.params.update(max_samples=1500, stride=7)
        folder = tmp_path_factory.mktemp(name)
        Trainer(project, callbacks=[RunFolder(folder)], epochs=1, device="cpu").fit()
        folders[name] = folder
    return folders


def _reference(model):
    x = model.example_batch()
    with torch.no_grad():
        return x, model.module.eval()(x)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_format_reproduces_the_trained_model(runs, tmp_path, name):
    model = load_trained(runs[name])
    assert model.trained and model.samples is not None  # a real batch of the dataset
    x, expected = _reference(model)
    checkpoint = torch.load(runs[name] / "checkpoint.pt", weights_only=True)
    for key, value in checkpoint["model"].items():
        assert torch.equal(model.module.state_dict()[key], value)
    stem = f"m_{name}"
    for fmt, suffix in FORMATS.items():
        result = export(model, fmt, tmp_path / f"{stem}{suffix}")
        assert result.path.is_file()
        assert result.max_difference <= (1e-4 if fmt == "onnx" else 1e-6), (fmt, result.max_difference)
    # Each file again, loaded the way its users load it, on a batch size not traced:
    bigger = torch.cat([x, x[:3]])
    with torch.no_grad():
        want = model.module(bigger)
    session = onnxruntime.InferenceSession(str(tmp_path / f"{stem}.onnx"))
    assert np.abs(session.run(None, {"input": bigger.numpy()})[0] - want.numpy()).max() <= 1e-4
    program = torch.export.load(str(tmp_path / f"{stem}.pt2")).module()
    assert torch.allclose(program(bigger), want, atol=1e-6, rtol=0)
    with torch.no_grad():
        scripted = torch.jit.load(str(tmp_path / f"{stem}.pt"))
        assert torch.allclose(scripted(bigger), want, atol=1e-6, rtol=0)
    plain = torch.load(tmp_path / f"{stem}.pth", weights_only=True)
    assert plain.keys() == load_file(tmp_path / f"{stem}.safetensors").keys()
    bundle = load_bundle(tmp_path / f"{stem}.guidl")
    with torch.no_grad():
        assert torch.equal(bundle.module(bigger), want)
    assert bundle.class_names == model.class_names and bundle.normalization == model.normalization


def test_the_python_source_runs_without_guidl_and_trains(runs, tmp_path):
    model = load_trained(runs["moons_mlp"])
    export(model, "python", tmp_path / "moons.py", training_script=True)
    source = (tmp_path / "moons.py").read_text()
    assert "import guidl" not in source and "nn.Linear(in_features=2, out_features=16)" in source
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    code = ("import sys; sys.modules['guidl'] = None\n"
            "import moons_train\n"
            "moons_train.main('data.npz', 2)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "epoch 2/2  loss" in result.stdout
    assert (tmp_path / "moons_retrained.safetensors").exists()


def test_a_layer_a_format_cannot_express_is_named(runs, tmp_path, monkeypatch):
    model = load_trained(runs["moons_mlp"])
    # Make ReLU data-dependent in a way no graph export can follow.
    monkeypatch.setattr(nn.ReLU, "forward", lambda self, x: torch.from_numpy(x.detach().numpy().clip(0)))
    with pytest.raises(ExportError) as caught:
        export(model, "pt2", tmp_path / "m.pt2")
    assert str(caught.value).startswith("layer 1 (ReLU) cannot be expressed in torch.export")
    assert not (tmp_path / "m.pt2").exists() and list(tmp_path.iterdir()) == []
    assert export(model, "safetensors", tmp_path / "m.safetensors").max_difference == 0


def test_an_untrained_model_exports_with_a_warning(tmp_path, root):
    model = load_trained(root / "examples/moons_mlp.guidl.json")
    result = export(model, "onnx", tmp_path / "m.onnx")
    assert not model.trained
    assert result.notes == ["the model is untrained: its weights are the random initial ones"]


def test_damaged_bundles_and_weights_are_refused_clearly(runs, tmp_path):
    model = load_trained(runs["moons_mlp"])
    export(model, "bundle", tmp_path / "m.guidl")
    data = (tmp_path / "m.guidl").read_bytes()
    (tmp_path / "cut.guidl").write_bytes(data[: len(data) // 2])
    with pytest.raises(ExportError, match="not a valid guidl bundle: the zip is damaged or truncated"):
        load_trained(tmp_path / "cut.guidl")
    with zipfile.ZipFile(tmp_path / "m.guidl") as source, \
            zipfile.ZipFile(tmp_path / "bad.guidl", "w") as target:
        for item in source.infolist():
            payload = source.read(item.filename)
            if item.filename == "model.safetensors":
                payload = payload[:40] + b"\xff" * 16 + payload[56:]
            target.writestr(item, payload)
    with pytest.raises(ExportError, match="the weights cannot be read"):
        load_trained(tmp_path / "bad.guidl")
    with zipfile.ZipFile(tmp_path / "pickle.guidl", "w") as archive:
        archive.writestr("project.guidl.json", (runs["moons_mlp"] / "project.guidl.json").read_text())
        archive.writestr("meta.json", json.dumps({"format": "guidl-bundle"}))
        archive.writestr("model.safetensors", b"\x80\x04cos\nsystem\n.")
    with pytest.raises(ExportError, match="the weights cannot be read"):
        load_trained(tmp_path / "pickle.guidl")
    with pytest.raises(ExportError, match="unknown format 'keras'"):
        export(model, "keras", tmp_path / "m.keras")
    with pytest.raises(ExportError, match="must be written to a .py file"):
        export(model, "python", tmp_path / "m.txt")
