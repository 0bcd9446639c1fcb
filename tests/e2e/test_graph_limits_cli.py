"""Hostile graph files on the command line: exit 2 with clear lines, never a
traceback, and never minutes of work."""

import json
import subprocess
import sys

import pytest

DATA = {"dataset": "moons", "params": {"n_samples": 100}, "val_fraction": 0.2, "batch_size": 32}


def _write(tmp_path, model: dict):
    path = tmp_path / "hostile.guidl.json"
    path.write_text(json.dumps({"format": "guidl-project", "version": 2, "name": "hostile",
                                "model": model, "data": DATA, "training": {"epochs": 1, "device": "cpu"}}))
    return path


EXPLODING = {"input_shape": [2], "blocks": {
    "Leaf": {"params": [], "layers": [{"type": "ReLU"}]},
    "Many": {"params": [], "layers": [{"type": "Leaf", "repeat": 1000}]}},
    "layers": [{"type": "Many", "repeat": 1000}, {"type": "Linear", "params": {"out_features": 2}}]}

INPUTS_ID = {"input_shape": [2], "layers": [
    {"id": "inputs", "type": "Linear", "params": {"out_features": 2}},
    {"id": "other", "type": "Linear", "params": {"out_features": 2}, "inputs": ["input"]},
    {"type": "Add", "inputs": ["inputs", "other"]}]}


@pytest.mark.parametrize("command", ["summary", "train"])
@pytest.mark.parametrize("model, expected", [
    (EXPLODING, "model.layers[0]: Many: unrolls to 1,001 layers per repetition × 1,000 repetitions"),
    (INPUTS_ID, "model.layers[0].id: 'inputs' is a name Python or PyTorch modules use"),
])
def test_a_hostile_graph_is_exit_2_with_its_problem(tmp_path, command, model, expected):
    path = _write(tmp_path, model)
    args = [command, str(path)] + (["--out", str(tmp_path / "run")] if command == "train" else [])
    done = subprocess.run([sys.executable, "-m", "guidl", *args], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert expected in done.stderr
