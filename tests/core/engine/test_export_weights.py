"""A run folder's weights are read only from a regular file no larger than
the model's weights allow, and only after their header matches the model."""

import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from guidl.engine import export as export_module
from guidl.engine.export import ExportError, load_trained, weights_size_limit

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def run(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(ROOT / "examples/moons_mlp.guidl.json", folder / "project.guidl.json")
    return folder


def _weights(folder) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in load_trained(folder / "project.guidl.json").module.state_dict().items()}


def test_weights_larger_than_the_model_allows_are_refused_before_reading(run, monkeypatch):
    weights = _weights(run)
    limit = weights_size_limit(load_trained(run / "project.guidl.json").module)
    save_file({**weights, "padding": torch.zeros(limit // 4 + 1)}, str(run / "model.safetensors"))
    monkeypatch.setattr("safetensors.torch.load", lambda *a: pytest.fail("the tensors were loaded"))
    with pytest.raises(ExportError, match="the weights file of this model is at most"):
        load_trained(run)


def test_a_tensor_the_model_lacks_is_refused_from_the_header(run, monkeypatch):
    save_file({**_weights(run), "evil": torch.zeros(3)}, str(run / "model.safetensors"))
    monkeypatch.setattr("safetensors.torch.load", lambda *a: pytest.fail("the tensors were loaded"))
    with pytest.raises(ExportError, match="holds 'evil', which the model has not"):
        load_trained(run)
    weights = _weights(run)
    weights["0.weight"] = torch.zeros(3, 2)
    save_file(weights, str(run / "model.safetensors"))
    with pytest.raises(ExportError, match=r"'0.weight' has shape \(3, 2\), the model's is \(16, 2\)"):
        load_trained(run)


def test_matching_weights_load(run):
    weights = _weights(run)
    weights["0.bias"] = torch.full_like(weights["0.bias"], 0.25)
    save_file(weights, str(run / "model.safetensors"))
    model = load_trained(run)
    assert model.trained and torch.equal(model.module.state_dict()["0.bias"], weights["0.bias"])
