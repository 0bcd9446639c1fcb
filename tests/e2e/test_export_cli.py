"""`guidl export` and `guidl predict` as a user runs them."""

import json
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from guidl import spec
from guidl.engine.callbacks import RunFolder
from guidl.engine.data import prepare
from guidl.engine.trainer import Trainer


def guidl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "guidl", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_bundle_round_trips_through_predict(tmp_path, root):
    project = spec.load(root / "examples/mnist_cnn.guidl.json")
    run = tmp_path / "run"
    Trainer(project, callbacks=[RunFolder(run)], epochs=2, device="cpu").fit()
    result = guidl("export", str(run), "--format", "bundle", "-o", str(tmp_path / "digits.guidl"))
    assert result.returncode == 0, result.stderr
    assert "largest difference from the model: 0" in result.stdout
    # Known samples: validation digits, written as the PNG files a user has.
    data = prepare(project)
    pixels = data.normalization.invert(data.val.x[:40]).round().clamp(0, 255).byte().numpy()
    labels = data.val.y[:40].tolist()
    files = []
    for i in range(0, 40, 4):  # ten samples of several classes
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(pixels[i, 0]).save(path)
        files.append((path, str(labels[i])))
    result = guidl("predict", str(tmp_path / "digits.guidl"), *[str(p) for p, _ in files], "--json", "-k", "2")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)["predictions"]
    assert [p["input"] for p in predictions] == [str(p) for p, _ in files]
    right = sum(p["top"][0]["class"] == label for p, (_, label) in zip(predictions, files))
    assert right >= 8, predictions
    assert all(len(p["top"]) == 2 and p["top"][0]["probability"] >= p["top"][1]["probability"]
               for p in predictions)
    text = guidl("predict", str(tmp_path / "digits.guidl"), str(files[0][0]))
    assert text.returncode == 0 and text.stdout.startswith(f"{files[0][0]}: ")


def test_export_and_predict_explain_bad_input(tmp_path, root):
    result = guidl("export", str(tmp_path / "missing"), "--format", "onnx")
    assert result.returncode == 2 and "no such run folder, bundle or project file" in result.stderr
    result = guidl("export", str(root / "examples/moons_mlp.guidl.json"), "--format", "onnx",
                   "-o", str(tmp_path / "m.onnx"))
    assert result.returncode == 0 and "warning: the model is untrained" in result.stderr
    (tmp_path / "broken.guidl").write_bytes(b"PK\x03\x04 not really a zip")
    result = guidl("predict", str(tmp_path / "broken.guidl"), str(tmp_path / "x.png"))
    assert result.returncode == 2 and "not a valid guidl bundle" in result.stderr
    assert "Traceback" not in result.stderr
    rows = tmp_path / "rows.csv"
    rows.write_text("x,y\n0.5,0.2\n-1,0.3\n")
    result = guidl("predict", str(root / "examples/moons_mlp.guidl.json"), str(rows), "--json")
    assert result.returncode == 0
    assert len(json.loads(result.stdout)["predictions"]) == 2
    result = guidl("predict", str(root / "examples/mnist_cnn.guidl.json"), str(rows))
    assert result.returncode == 2 and "takes (1, 28, 28) inputs, not table rows" in result.stderr
