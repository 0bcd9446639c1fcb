"""``edits.set_layer_option``: freezing and learning-rate multipliers of
model layers, block layers and several layers at once; bad values refused."""

import pytest

from guidl import spec
from guidl.spec import edits


def _project():
    return spec.Project.from_dict({
        "format": "guidl-project", "version": 2, "name": "t",
        "model": {"input_shape": [4], "layers": [
            {"type": "Linear", "params": {"out_features": 8}}, {"type": "ReLU"}, {"type": "Tiny"},
            {"type": "Linear", "params": {"out_features": 2}}],
            "blocks": {"Tiny": {"layers": [{"type": "Linear", "params": {"out_features": 8}}]}}},
        "data": {"dataset": "moons"},
        "training": {"loss": {"type": "CrossEntropyLoss"}, "optimizer": {"type": "Adam"}, "epochs": 1}})


def test_freeze_and_multiplier_are_written_only_when_not_default():
    project = _project()
    edits.set_layer_option(project.model, [0, 3], "frozen", True)
    edits.set_layer_option(project.model, 0, "lr_multiplier", 0.1)
    edits.set_layer_option(project.model, 0, "frozen", True, block="Tiny")
    layers = project.to_dict()["model"]["layers"]
    assert layers[0] == {"type": "Linear", "params": {"out_features": 8}, "frozen": True, "lr_multiplier": 0.1}
    assert layers[3]["frozen"] is True and "frozen" not in layers[1]
    assert project.to_dict()["model"]["blocks"]["Tiny"]["layers"][0]["frozen"] is True
    assert project.file_version() == 4
    edits.set_layer_option(project.model, 0, "lr_multiplier", 1)
    assert "lr_multiplier" not in project.to_dict()["model"]["layers"][0]


@pytest.mark.parametrize("key, value, words", [
    ("lr_multiplier", 0, "above 0"), ("lr_multiplier", 5000, "at most 1000"),
    ("lr_multiplier", "0.1", "a number"), ("frozen", "yes", "true or false"), ("color", 1, "no option")])
def test_bad_values_are_refused_and_change_nothing(key, value, words):
    project = _project()
    with pytest.raises(edits.EditError, match=words):
        edits.set_layer_option(project.model, 0, key, value)
    with pytest.raises(edits.EditError, match="no layer 9"):
        edits.set_layer_option(project.model, [0, 9], "frozen", True)
    assert project.to_dict() == _project().to_dict()
