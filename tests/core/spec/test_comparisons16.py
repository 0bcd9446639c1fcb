"""The optimizer and activation races: each variant is a valid project that
differs from the original only in the optimizer, or only in its hidden
activations."""

from pathlib import Path

import pytest

from guidl.spec import Project, load
from guidl.spec.comparisons import (
    ACTIVATION_RACE, OPTIMIZER_RACE, activation_variants, comparison_config, hidden_activations,
    optimizer_variants,
)
from guidl.spec.paths import MISSING, Change, diff

# Not `from conftest import ROOT`: with tests/gui's conftest loaded first, that names the wrong module.
ROOT = Path(__file__).resolve().parents[3]


def example(name: str) -> Project:
    return load(ROOT / "examples" / f"{name}.guidl.json")


def test_the_optimizer_race_is_the_tutorials_list():
    assert [label for label, _ in OPTIMIZER_RACE] == ["SGD", "SGD with momentum", "Adagrad", "RMSprop", "Adam"]
    assert ACTIVATION_RACE == ("Sigmoid", "Tanh", "ReLU")


def test_optimizer_variants_change_only_the_optimizer_and_keep_the_rate():
    project = example("moons_mlp")  # Adam at lr 0.01
    variants = optimizer_variants(project)
    assert list(variants) == [label for label, _ in OPTIMIZER_RACE]
    base = project.to_dict()
    for label, doc in variants.items():
        Project.from_dict(doc)
        assert doc["training"]["optimizer"]["params"]["lr"] == 0.01
        assert doc["training"]["seed"] == base["training"]["seed"] and doc["data"] == base["data"]
        assert all(c.path.startswith("training.optimizer.") for c in diff(base, doc)), label
    assert diff(base, variants["SGD"]) == [Change("training.optimizer.type", "Adam", "SGD")]
    assert diff(base, variants["SGD with momentum"]) == [
        Change("training.optimizer.type", "Adam", "SGD"),
        Change("training.optimizer.params.momentum", MISSING, 0.9)]
    assert diff(base, variants["Adam"]) == []


def test_settings_of_one_optimizer_do_not_leak_into_another():
    doc = example("moons_mlp").to_dict()
    doc["training"]["optimizer"] = {"type": "SGD", "params": {"lr": 0.05, "momentum": 0.5, "nesterov": True,
                                                               "weight_decay": 1e-4}}
    variants = optimizer_variants(Project.from_dict(doc))
    assert variants["SGD"]["training"]["optimizer"] == {"type": "SGD",
                                                        "params": {"lr": 0.05, "weight_decay": 1e-4}}
    assert variants["SGD with momentum"]["training"]["optimizer"]["params"] == {
        "lr": 0.05, "weight_decay": 1e-4, "momentum": 0.9}
    assert variants["Adam"]["training"]["optimizer"] == {"type": "Adam",
                                                         "params": {"lr": 0.05, "weight_decay": 1e-4}}
    # A rate left at the optimizer's default is written out: RMSprop's default would differ.
    doc["training"]["optimizer"] = {"type": "Adam", "params": {}}
    assert optimizer_variants(Project.from_dict(doc))["RMSprop"]["training"]["optimizer"]["params"] == {"lr": 0.001}


def test_activation_variants_replace_the_hidden_activations_only():
    project = example("moons_mlp")  # Linear ReLU Linear ReLU Linear
    variants = activation_variants(project)
    assert list(variants) == list(ACTIVATION_RACE)
    base = project.to_dict()
    assert diff(base, variants["Tanh"]) == [Change("model.layers[1].type", "ReLU", "Tanh"),
                                            Change("model.layers[3].type", "ReLU", "Tanh")]
    assert diff(base, variants["ReLU"]) == []
    for doc in variants.values():
        Project.from_dict(doc)


def test_output_activations_and_softmax_are_kept_and_block_activations_replaced():
    doc = example("moons_mlp").to_dict()
    doc["model"]["layers"][1] = {"id": "act", "type": "LeakyReLU", "params": {"negative_slope": 0.2},
                                 "position": [5.0, 6.0]}
    doc["model"]["layers"].append({"type": "Softmax", "params": {"dim": 1}})
    project = Project.from_dict(doc)
    variants = activation_variants(project)
    changes = diff(project.to_dict(), variants["Sigmoid"])
    assert changes == [Change("model.layers[1].type", "LeakyReLU", "Sigmoid"),
                       Change("model.layers[1].params.negative_slope", 0.2, MISSING),
                       Change("model.layers[3].type", "ReLU", "Sigmoid")]
    assert variants["Sigmoid"]["model"]["layers"][1]["id"] == "act"          # the wiring stays
    assert variants["Sigmoid"]["model"]["layers"][1]["position"] == [5.0, 6.0]
    assert variants["Sigmoid"]["model"]["layers"][-1]["type"] == "Softmax"

    # An autoencoder's last Sigmoid sets the output range; its ReLUs are hidden.
    autoencoder = example("conv_autoencoder")
    last = len(autoencoder.model.layers) - 1
    assert autoencoder.model.layers[last].type == "Sigmoid"
    assert ("model", "layers", last) not in hidden_activations(autoencoder)
    assert activation_variants(autoencoder)["Tanh"]["model"]["layers"][last]["type"] == "Sigmoid"

    # Blocks and a GAN's discriminator are raced too.
    resnet = example("resnet_mnist")
    changes = diff(resnet.to_dict(), activation_variants(resnet)["Tanh"])
    assert any(c.path.startswith("model.blocks.") for c in changes)
    assert all(c.path.endswith(".type") and c.after == "Tanh" for c in changes)
    gan = example("dcgan_mnist")
    paths = [c.path for c in diff(gan.to_dict(), activation_variants(gan)["ReLU"])]
    assert any(p.startswith("discriminator.layers[") for p in paths)


def test_a_model_without_hidden_activations_is_refused():
    with pytest.raises(ValueError, match="no hidden activation to compare"):
        activation_variants(example("char_lstm"))


def test_comparison_config_is_a_grid_over_the_variants_without_pruning():
    project = example("mnist_cnn")
    config = comparison_config(project, "optimizers")
    assert config.strategy == "grid" and config.trials == 5 and not config.pruner and config.params == []
    assert config.metric == "val_accuracy" and config.compare == "optimizers"
    assert config.grid_space() == {"variant": [label for label, _ in OPTIMIZER_RACE]}
    assert config.problems(project) == []
    config = comparison_config(example("conv_autoencoder"), "activations")
    assert config.trials == 3 and config.metric == "val_loss" and list(config.variants) == list(ACTIVATION_RACE)
    with pytest.raises(ValueError, match="unknown comparison 'losses'"):
        comparison_config(project, "losses")
