"""Freezing and fine-tuning from the command line: the summary counts frozen
parameters, and `guidl train` unfreezes on schedule and says so."""

import csv
import json
import subprocess
import sys

from guidl import spec


def guidl(*args):
    return subprocess.run([sys.executable, "-m", "guidl", *args], capture_output=True, text=True,
                          timeout=300)


def _project(tmp_path, root):
    doc = json.loads((root / "examples/moons_mlp.guidl.json").read_text())
    doc["model"]["layers"][0]["frozen"] = True  # Linear(2 -> 16): 48 parameters
    doc["training"]["fine_tune"] = {"head_epochs": 1}
    path = tmp_path / "moons.guidl.json"
    path.write_text(json.dumps(doc))
    return path


def test_summary_and_training_with_a_frozen_layer_and_a_fine_tune_schedule(tmp_path, root):
    path = _project(tmp_path, root)
    summary = guidl("summary", str(path))
    assert summary.returncode == 0, summary.stderr
    assert "Frozen params: 48 in #0 (Linear) (they do not train)" in summary.stdout
    data = json.loads(guidl("summary", str(path), "--json").stdout.splitlines()[-1])
    assert data["frozen_params"] == 48 and data["trainable_params"] == data["total_params"] - 48
    out = tmp_path / "run"
    result = guidl("train", str(path), "--epochs", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "epoch 2: unfroze layer 0 (Linear) (48 parameters) at lr" in result.stdout + result.stderr
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [row["unfrozen"] for row in rows] == ["", "48"]
    copy = spec.load(out / "project.guidl.json")
    assert copy.model.layers[0].frozen and copy.training.fine_tune == {"head_epochs": 1}
    assert json.loads((out / "project.guidl.json").read_text())["version"] == 4
