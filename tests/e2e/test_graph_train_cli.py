"""A graph project (a residual block, a 1x1 shortcut, a branch nobody uses)
through `guidl train`, `guidl train --resume` and `guidl predict`, as a
user runs them."""

import json
import subprocess
import sys

import torch
from PIL import Image
from safetensors.torch import load_file

from guidl import spec
from guidl.engine.data import prepare
from helpers import small_graph_project


def guidl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "guidl", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_a_graph_trains_resumes_and_predicts_from_the_command_line(tmp_path):
    project = small_graph_project(unused_branch=True, training__epochs=2)
    path = tmp_path / "graph.guidl.json"
    spec.save(project, path)
    assert json.loads(path.read_text())["version"] == 2
    run = tmp_path / "run"
    result = guidl("train", str(path), "--epochs", "1", "--out", str(run), "--json")
    assert result.returncode == 0, result.stderr
    assert "layer 6 'aux' (Conv2d): its output is not used by any layer" in result.stderr
    resumed = guidl("train", "--resume", str(run), "--epochs", "2", "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.splitlines()[-1])
    assert summary["ok"] and summary["epochs_completed"] == 2
    assert summary["evaluation"]["accuracy"] > 0.85
    weights = load_file(run / "model.safetensors")
    assert {"stem.weight", "res.conv1.weight", "res.bn2.running_mean", "shortcut.weight",
            "aux.weight", "head.weight"} <= weights.keys()
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and weights.keys() == checkpoint["model"].keys()

    # Validation digits written as the image files a user has, predicted from the run folder.
    data = prepare(project, seed=project.training.seed)
    pixels = data.normalization.invert(data.val.x[:20]).round().clamp(0, 255).byte().numpy()
    files = []
    for i in range(20):
        files.append(tmp_path / f"digit{i}.png")
        Image.fromarray(pixels[i, 0]).save(files[-1])
    result = guidl("predict", str(run), *map(str, files), "--json")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)["predictions"]
    right = sum(p["top"][0]["class"] == str(int(label)) for p, label in zip(predictions, data.val.y[:20]))
    assert right >= 16, predictions
