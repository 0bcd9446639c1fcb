"""The fair races: `guidl sweep --compare optimizers|activations` trains each
variant from the same initial weights, on the same split, in the same data
order, and only the optimizer (or the hidden activations) differs."""

import json

import pytest
import torch

from guidl import cli, spec
from guidl.engine.runs import read_run
from guidl.engine.trainer import Trainer
from guidl.spec.comparisons import activation_variants, optimizer_variants
from helpers import small_moons


@pytest.fixture
def moons(tmp_path):
    project = small_moons()
    path = tmp_path / "moons.guidl.json"
    spec.save(project, path)
    return project, path


def _start(project_dict):
    trainer = Trainer(spec.Project.from_dict(project_dict))
    trainer.setup()
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    order = trainer._epoch_order(len(trainer.data.train.y))
    return weights, trainer.data.train.x.clone(), trainer.data.val.x.clone(), order


@pytest.mark.parametrize("variants", [optimizer_variants, activation_variants])
def test_every_variant_starts_from_the_same_weights_split_and_order(moons, variants):
    project, _ = moons
    starts = {label: _start(doc) for label, doc in variants(project).items()}
    assert len(starts) == (5 if variants is optimizer_variants else 3)
    (first_weights, train_x, val_x, order), *others = starts.values()
    for weights, train, val, other_order in others:
        assert weights.keys() == first_weights.keys()
        assert all(torch.equal(weights[k], first_weights[k]) for k in weights)
        assert torch.equal(train, train_x) and torch.equal(val, val_x)
        assert torch.equal(other_order, order)


def test_compare_activations_trains_each_variant_as_a_named_run(moons, tmp_path, capsys):
    _, path = moons
    runs = tmp_path / "runs"
    code = cli.main(["sweep", str(path), "--compare", "activations", "--epochs", "2",
                     "--runs-dir", str(runs), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["counts"]["complete"] == 3 and summary["counts"].get("pruned", 0) == 0
    hidden = {}
    for trial in summary["trials"]:
        record = read_run(trial["run_dir"])
        assert record["status"] == "finished" and record["sweep"]["variant"] == trial["variant"]
        layers = spec.load(f"{trial['run_dir']}/project.guidl.json").model.layers
        hidden[trial["variant"]] = {layer.type for layer in layers if layer.type != "Linear"}
    assert hidden == {"Sigmoid": {"Sigmoid"}, "Tanh": {"Tanh"}, "ReLU": {"ReLU"}}
