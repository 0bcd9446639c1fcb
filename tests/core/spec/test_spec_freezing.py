"""Transfer learning in the project file: ``frozen`` and ``lr_multiplier`` on
layers, ``training.fine_tune`` and ``data.balance``; version 4 only when one
of them is used, older files unchanged, bad values named by their JSON path."""

from __future__ import annotations

import json

import pytest

from guidl import spec
from guidl.registry import FINE_TUNE
from guidl.spec import Project, ProjectError


def _doc(**changes):
    doc = {"format": "guidl-project", "version": 3, "name": "t",
           "model": {"layers": [{"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 16}},
                                {"type": "ReLU"}, {"type": "Linear", "params": {"out_features": 10}}]},
           "data": {"dataset": "digits", "params": {}, "val_fraction": 0.1, "batch_size": 32},
           "training": {"loss": {"type": "CrossEntropyLoss", "params": {}},
                        "optimizer": {"type": "Adam", "params": {"lr": 0.001}},
                        "scheduler": None, "epochs": 4, "device": "cpu", "seed": 0}}
    doc.update(changes)
    return doc


def _problems(doc) -> list[str]:
    with pytest.raises(ProjectError) as caught:
        spec.loads(json.dumps(doc))
    return [str(problem) for problem in caught.value.problems]


def test_frozen_and_lr_multiplier_round_trip_as_version_4():
    doc = _doc()
    doc["model"]["layers"][1].update(frozen=True)
    doc["model"]["layers"][3].update(lr_multiplier=10)
    project = spec.loads(json.dumps(doc))
    first, head = project.model.layers[1], project.model.layers[3]
    assert first.frozen and first.lr_multiplier == 1.0 and not first.extra
    assert not head.frozen and head.lr_multiplier == 10.0
    written = json.loads(spec.dumps(project))
    assert written["version"] == 4
    assert written["model"]["layers"][1] == {"type": "Linear", "params": {"out_features": 16}, "frozen": True}
    assert written["model"]["layers"][3]["lr_multiplier"] == 10.0
    assert "frozen" not in written["model"]["layers"][3]
    assert spec.loads(spec.dumps(project)) == project


def test_fine_tune_and_balance_round_trip_as_version_4():
    fine_tune = {"head_epochs": 2, "unfreeze": 1, "lr_factor": 0.05}
    doc = _doc(training={**_doc()["training"], "fine_tune": fine_tune},
               data={**_doc()["data"], "balance": "sampler"})
    project = spec.loads(json.dumps(doc))
    assert project.training.fine_tune == fine_tune and project.data.balance == "sampler"
    written = json.loads(spec.dumps(project))
    assert written["version"] == 4
    assert written["training"]["fine_tune"] == fine_tune and written["data"]["balance"] == "sampler"
    assert FINE_TUNE.resolve({"unfreeze": "all"}) == {"head_epochs": 3, "unfreeze": "all", "lr_factor": 0.1}
    for changed in ({"training": {**_doc()["training"], "fine_tune": fine_tune}},
                    {"data": {**_doc()["data"], "balance": "class_weights"}}):
        assert json.loads(spec.dumps(spec.loads(json.dumps(_doc(**changed)))))["version"] == 4


def test_older_files_read_unchanged_and_keep_their_version():
    for version in (1, 2, 3):
        text = json.dumps(_doc(version=version), indent=2)
        project = spec.loads(text)
        assert project.version == spec.CURRENT_VERSION == 4
        assert all(not layer.frozen and layer.lr_multiplier == 1 for layer in project.model.layers)
        assert project.training.fine_tune is None and project.data.balance == "none"
        written = json.loads(spec.dumps(project))
        assert written["version"] == 1  # nothing new used: the oldest format, for older guidl
        assert "balance" not in written["data"] and "fine_tune" not in written["training"]
        assert all("frozen" not in layer and "lr_multiplier" not in layer
                   for layer in written["model"]["layers"])


def test_a_frozen_layer_inside_a_block_needs_version_4_and_round_trips():
    blocks = {"Pair": {"params": [], "layers": [
        {"type": "Linear", "params": {"out_features": 8}, "frozen": True}, {"type": "ReLU"}]}}
    doc = _doc(model={"blocks": blocks, "layers": [
        {"type": "Flatten"}, {"type": "Pair", "lr_multiplier": 0.5},
        {"type": "Linear", "params": {"out_features": 10}}]}, version=4)
    project = spec.loads(json.dumps(doc))
    assert project.model.blocks["Pair"].layers[0].frozen
    assert project.model.layers[1].lr_multiplier == 0.5
    written = json.loads(spec.dumps(project))
    assert written["version"] == 4 and written["model"]["blocks"] == blocks
    assert written["model"]["layers"][1] == {"type": "Pair", "lr_multiplier": 0.5}


@pytest.mark.parametrize("value, message", [
    (0, "model.layers[1].lr_multiplier: must be a number > 0 and <= 1000"),
    (-2, "model.layers[1].lr_multiplier: must be a number > 0 and <= 1000"),
    (1e6, "model.layers[1].lr_multiplier: must be a number > 0 and <= 1000"),
    ("fast", "model.layers[1].lr_multiplier: must be a number > 0 and <= 1000"),
    (True, "model.layers[1].lr_multiplier: must be a number > 0 and <= 1000"),
])
def test_bad_lr_multipliers_are_refused_with_their_path(value, message):
    doc = _doc(version=4)
    doc["model"]["layers"][1]["lr_multiplier"] = value
    problems = _problems(doc)
    assert len(problems) == 1 and problems[0].startswith(message)
    if value == 0:
        assert '"frozen": true' in problems[0]


def test_bad_frozen_fine_tune_and_balance_values_are_refused_with_their_paths():
    doc = _doc(version=4, data={**_doc()["data"], "balance": "oversample"},
               training={**_doc()["training"], "fine_tune": {"head_epochs": 0, "unfreeze": "some",
                                                             "lr_factor": 2}})
    doc["model"]["layers"][3]["frozen"] = "yes"
    problems = _problems(doc)
    assert problems == [
        "model.layers[3].frozen: must be true or false, got 'yes'",
        "data.balance: must be one of 'none', 'class_weights', 'sampler' ('class_weights': rarer "
        "classes weigh more in the loss; 'sampler': batches drawn class-balanced), got 'oversample'",
        "training.fine_tune.head_epochs: must be a positive integer, got 0",
        "training.fine_tune.unfreeze: must be a positive integer or 'all', got 'some'",
        "training.fine_tune.lr_factor: must be a number > 0 and <= 1, got 2",
    ]
    doc["training"]["fine_tune"] = {"unfreeze": 0, "epochs": 3}
    doc["data"]["balance"] = "none"
    doc["model"]["layers"][3]["frozen"] = False
    assert _problems(doc) == [
        "training.fine_tune.unfreeze: must be a positive integer or 'all', got 0",
        "training.fine_tune.epochs: fine_tune does not take a parameter 'epochs'; did you mean "
        "'head_epochs'?",
    ]


def test_a_project_built_in_code_needs_version_4_only_when_it_uses_a_feature():
    project = Project.from_dict(_doc())
    assert project.file_version() == 1
    project.model.layers[1].frozen = True
    assert project.file_version() == 4 and project.problems() == []
    project.model.layers[1].frozen = False
    project.model.layers[1].lr_multiplier = 1.0
    assert project.file_version() == 1


@pytest.mark.parametrize("params, augment", [
    ({"cache": "stream"}, None), ({"memory_budget_mb": 64}, None), ({"workers": 0}, None),
    ({"cache": "auto"}, None),  # at its default: older guidl still refuses the key
    ({}, {"random_resized_crop": True}), ({}, {"crop_scale": 0.5}), ({}, {"color_jitter": 0.2}),
])
def test_each_new_image_folder_param_or_augment_key_alone_needs_version_4(params, augment):
    data = {"dataset": "image_folder", "params": {"path": "photos", **params},
            "val_fraction": 0.1, "batch_size": 8}
    if augment is not None:
        data["augment"] = augment
    written = json.loads(spec.dumps(spec.loads(json.dumps(_doc(data=data)))))
    assert written["version"] == 4


def test_an_image_folder_without_the_new_keys_keeps_its_old_version():
    data = {"dataset": "image_folder", "params": {"path": "photos", "image_size": [16, 16]},
            "val_fraction": 0.1, "batch_size": 8, "augment": {"hflip": True, "crop_padding": 2}}
    for version in (1, 2, 3):
        written = json.loads(spec.dumps(spec.loads(json.dumps(_doc(version=version, data=data)))))
        assert written["version"] == 1
