"""`guidl export` and `guidl predict` on a graph model (a residual block
used twice, a Concat of branches) as a user runs them: a project file, a
trained run folder and a bundle."""

import ast
import json
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from guidl import cli, spec
from guidl.engine.callbacks import RunFolder
from guidl.engine.data import prepare
from guidl.engine.export import load_trained
from guidl.engine.graph import GraphModel
from guidl.engine.trainer import Trainer

BLOCK = {
    "params": [{"name": "channels", "kind": "int", "default": 4, "minimum": 1}],
    "layers": [
        {"id": "conv", "type": "Conv2d", "params": {"out_channels": "$channels", "kernel_size": 3, "padding": 1}},
        {"id": "bn", "type": "BatchNorm2d"},
        {"id": "sum", "type": "Add", "inputs": ["bn", "input"]},
        {"type": "ReLU"},
    ],
}

PROJECT = {
    "format": "guidl-project", "version": 2, "name": "Digits graph",
    "model": {
        "input_shape": [1, 8, 8],
        "blocks": {"Residual": BLOCK},
        "layers": [
            {"id": "stem", "type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3, "padding": 1}},
            {"id": "blocks", "type": "Residual", "repeat": 2},
            {"id": "wide", "type": "Conv2d", "inputs": ["stem"], "params": {"out_channels": 2, "kernel_size": 1}},
            {"id": "joined", "type": "Concat", "inputs": ["blocks", "wide"]},
            {"type": "Flatten"},
            {"id": "head", "type": "Linear", "params": {"out_features": 10}},
        ],
    },
    "data": {"dataset": "digits", "batch_size": 32},
    "training": {"optimizer": {"type": "Adam", "params": {"lr": 0.01}}, "epochs": 3, "device": "cpu",
                 "seed": 0},
}


def guidl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "guidl", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_a_graph_project_exports_from_the_command_line(tmp_path):
    path = tmp_path / "graph.guidl.json"
    path.write_text(json.dumps(PROJECT))
    result = guidl("export", str(path), "--format", "python", "--training-script", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning: the model is untrained" in result.stderr
    out = json.loads(result.stdout)
    assert out["ok"] and out["format"] == "python" and out["max_difference"] <= 1e-6
    source = (tmp_path / "digits_graph.py").read_text()
    classes = [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
    assert classes == ["Residual", "Model"]  # both repetitions share one configuration
    assert "joined = torch.cat((blocks, wide), dim=1)" in source
    assert (tmp_path / "digits_graph_train.py").is_file() and (tmp_path / "digits_graph.safetensors").is_file()


def test_predict_on_a_trained_graph_run_and_its_bundle(tmp_path, capsys):
    project = spec.loads(json.dumps(PROJECT))
    run = tmp_path / "run"
    Trainer(project, callbacks=[RunFolder(run)], device="cpu").fit()
    assert isinstance(load_trained(run, samples=False).module, GraphModel)
    for fmt, name in (("onnx", "m.onnx"), ("bundle", "digits.guidl")):
        assert cli.main(["export", str(run), "-f", fmt, "-o", str(tmp_path / name), "--json"]) == 0
        assert json.loads(capsys.readouterr().out.splitlines()[-1])["max_difference"] <= 1e-4
    # Validation digits as the image files a user has.
    data = prepare(project)
    pixels = data.normalization.invert(data.val.x[:20]).round().clamp(0, 255).byte().numpy()
    labels = data.val.y[:20].tolist()
    files = []
    for index in range(20):
        files.append(tmp_path / f"digit{index}.png")
        Image.fromarray(pixels[index, 0]).save(files[-1])
    answers = []
    for model in (run, tmp_path / "digits.guidl"):
        assert cli.main(["predict", str(model), *map(str, files), "--json", "-k", "2"]) == 0
        answers.append(json.loads(capsys.readouterr().out.splitlines()[-1])["predictions"])
    assert answers[0] == answers[1]  # the run folder and its bundle are one model
    right = sum(p["top"][0]["class"] == str(label) for p, label in zip(answers[0], labels))
    assert right >= 14, answers[0]
    # The same probabilities from the exported ONNX file, without guidl's model.
    import onnxruntime

    x = data.normalization.apply(torch.as_tensor(np.stack([pixels[i] for i in range(20)])))
    logits = onnxruntime.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"input": x.numpy()})[0]
    top = torch.softmax(torch.as_tensor(logits), 1).max(1)
    for prediction, probability in zip(answers[0], top.values.tolist()):
        assert abs(prediction["top"][0]["probability"] - probability) <= 1e-4
