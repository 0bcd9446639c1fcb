"""Graphs on the command line: `guidl summary` shows what each layer takes,
and refuses a graph that cannot work with exit 2 and its problems, never a
traceback."""

import json
import subprocess
import sys

import pytest


def guidl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "guidl", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def skip_net(layers=None) -> dict:
    layers = layers or [
        {"id": "hidden", "type": "Linear", "params": {"out_features": 2}},
        {"type": "ReLU"},
        {"id": "skip", "type": "Add", "inputs": ["input", "relu"]},
        {"type": "Linear", "params": {"out_features": 2}},
    ]
    return {"format": "guidl-project", "version": 2, "name": "skip",
            "model": {"input_shape": [2], "layers": layers},
            "data": {"dataset": "moons", "params": {"n_samples": 100}, "val_fraction": 0.2, "batch_size": 32},
            "training": {"epochs": 1, "device": "cpu"}}


def test_summary_of_a_graph_shows_connected_to(tmp_path):
    doc = skip_net()
    doc["model"]["layers"][1]["id"] = "relu"
    path = tmp_path / "skip.guidl.json"
    path.write_text(json.dumps(doc))
    result = guidl("summary", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Connected to" in lines[2]
    assert any(line.split()[1] == "skip" and line.rstrip().endswith("input, relu") for line in lines[4:9]), lines
    data = json.loads(guidl("summary", str(path), "--json").stdout)
    assert data["layers"][2]["inputs"] == ["input", 1]


@pytest.mark.parametrize("layers, expected", [
    ([{"id": "a", "type": "Linear", "params": {"out_features": 3}}, {"type": "Add", "inputs": ["a", "input"]}],
     "model.layers[1]: Add: needs inputs of one shape, but gets (3,) from 'a' and (2,) from the input; "
     "fix: insert Linear(out_features=3) on the shortcut (input 2, from the input)"),
    ([{"type": "Linear", "params": {"out_features": 2}, "inputs": ["ghost"]}],
     "model.layers[0].inputs[0]: unknown id 'ghost'; the layers before it are 'input'"),
])
def test_summary_and_train_refuse_a_graph_that_cannot_work(tmp_path, layers, expected):
    path = tmp_path / "bad.guidl.json"
    path.write_text(json.dumps(skip_net(layers)))
    # train refuses through the same check as summary: once is enough to show it.
    for command in ("summary", "train") if "ghost" in expected else ("summary",):
        result = guidl(command, str(path), cwd=tmp_path)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert expected in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
