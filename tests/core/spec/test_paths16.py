"""JSON paths into project documents: parse, get, set, flatten and diff."""

import copy
import json
from pathlib import Path

import pytest

from guidl.spec import Project
from guidl.spec.paths import (
    MISSING, Change, PathError, diff, flatten, format_change, format_path, format_value, get_path,
    parse_path, set_path,
)

# Not `from conftest import ROOT`: with tests/gui's conftest loaded first, that names the wrong module.
ROOT = Path(__file__).resolve().parents[3]


def example(name: str) -> dict:
    return json.loads((ROOT / "examples" / f"{name}.guidl.json").read_text())


@pytest.mark.parametrize("text, parts", [
    ("training.optimizer.params.lr", ["training", "optimizer", "params", "lr"]),
    ("model.layers[4].params.out_features", ["model", "layers", 4, "params", "out_features"]),
    ('model.blocks["my block"].layers[0].type', ["model", "blocks", "my block", "layers", 0, "type"]),
    ("data.batch_size", ["data", "batch_size"]),
    ("a[0][12]", ["a", 0, 12]),
])
def test_paths_parse_and_format_back_to_the_same_text(text, parts):
    assert parse_path(text) == parts
    assert format_path(parts) == text


@pytest.mark.parametrize("text, says", [
    ("", "empty"),
    ("a..b", "expected a key at character 3"),
    ("a[x]", "expected an index"),
    ("a.", "got the end of the path"),
    ("layers[-1]", "expected an index"),
    ("a b", "expected '.' or '['"),
])
def test_malformed_paths_are_refused_with_where(text, says):
    with pytest.raises(PathError, match=r"(?s).*" + __import__("re").escape(says)):
        parse_path(text)


def test_get_path_reads_values_and_names_what_is_absent():
    doc = example("moons_mlp")
    assert get_path(doc, "training.optimizer.params.lr") == 0.01
    assert get_path(doc, ["model", "layers", 4, "params", "out_features"]) == 2
    assert get_path(doc, "model.input_shape") == [2]
    with pytest.raises(PathError, match=r"^model\.layers\[9\]: the model has 5 layers"):
        get_path(doc, "model.layers[9]")
    with pytest.raises(PathError, match=r"has no key 'lrr' \(its keys: lr\)"):
        get_path(doc, "training.optimizer.params.lrr")
    with pytest.raises(PathError, match=r"training\.epochs is a number, not a list"):
        get_path(doc, "training.epochs[0]")


def test_set_path_changes_values_and_creates_keys_only_where_a_schema_checks_them():
    doc = example("moons_mlp")
    set_path(doc, "model.layers[0].params.out_features", 32)
    set_path(doc, "training.optimizer.params.weight_decay", 1e-4)  # created inside params
    set_path(doc, "training.grad_clip", 1.0)                      # an optional training key
    assert doc["model"]["layers"][0]["params"]["out_features"] == 32
    assert doc["training"]["optimizer"]["params"] == {"lr": 0.01, "weight_decay": 1e-4}
    assert doc["training"]["grad_clip"] == 1.0
    Project.from_dict(doc)
    with pytest.raises(PathError, match=r"^training\.epoch: training has no key 'epoch'"):
        set_path(doc, "training.epoch", 3)  # a typo is not written as an unknown key
    with pytest.raises(PathError, match="the model has 5 layers"):
        set_path(doc, "model.layers[5].type", "ReLU")
    assert "epoch" not in doc["training"] and len(doc["model"]["layers"]) == 5


def test_flatten_keeps_scalar_lists_whole_and_descends_into_layers():
    flat = flatten(example("mnist_cnn"))
    assert flat["model.input_shape"] == [1, 28, 28]
    assert flat["model.layers[0].type"] == "Conv2d"
    assert flat["training.optimizer.type"] == "Adam"
    assert "model.layers" not in flat and "model.input_shape[0]" not in flat
    keys = list(flat)
    assert keys.index("model.input_shape") < keys.index("model.layers[0].type") < keys.index("data.dataset")


def test_diff_names_the_changed_paths_of_two_example_projects():
    before = example("moons_mlp")
    after = copy.deepcopy(before)
    set_path(after, "model.layers[2].params.out_features", 64)
    set_path(after, "training.optimizer.type", "SGD")
    set_path(after, "training.optimizer.params.momentum", 0.9)
    changes = diff(before, after)
    assert changes == [
        Change("model.layers[2].params.out_features", 16, 64),
        Change("training.optimizer.type", "Adam", "SGD"),
        Change("training.optimizer.params.momentum", MISSING, 0.9),
    ]
    assert [format_change(c) for c in changes] == [
        "model.layers[2].params.out_features 16 -> 64",
        'training.optimizer.type "Adam" -> "SGD"',
        "training.optimizer.params.momentum (absent) -> 0.9",
    ]
    # Project.to_dict of both gives the same answer as the files.
    assert diff(Project.from_dict(before).to_dict(), Project.from_dict(after).to_dict()) == changes


def test_diff_of_two_different_examples_lists_layers_index_by_index():
    changes = {c.path: c for c in diff(example("mlp"), example("mnist_cnn"))}
    assert changes["model.layers[0].type"] == Change("model.layers[0].type", "Flatten", "Conv2d")
    assert changes["model.layers[1].params.out_features"].after is MISSING
    assert changes["model.layers[6]"].before is MISSING
    assert changes["training.optimizer.params.lr"] == Change("training.optimizer.params.lr", 0.001, 0.002)
    assert changes["data.batch_size"] == Change("data.batch_size", 128, 32)
    # Same input shape, same loss: not listed. Different names: ignored.
    assert "model.input_shape" not in changes and "training.loss.type" not in changes
    assert "name" not in changes


def test_diff_ignores_positions_and_the_name_but_not_when_asked():
    before = example("moons_mlp")
    after = copy.deepcopy(before)
    after["name"] = "Renamed"
    for i, layer in enumerate(after["model"]["layers"]):
        layer["position"] = [10.0 * i, 20.0]
    assert diff(before, after) == []
    assert Change("name", "Two moons MLP", "Renamed") in diff(before, after, ignore=())
    assert Change("model.layers[0].position", MISSING, [0.0, 20.0]) in diff(before, after, ignore=())


def test_diff_of_an_added_layer_is_the_whole_layer_without_its_position():
    before = example("moons_mlp")
    after = copy.deepcopy(before)
    after["model"]["layers"].insert(4, {"type": "Dropout", "params": {"p": 0.2}, "position": [1, 2]})
    changes = diff(before, after)
    assert changes[0] == Change("model.layers[4].type", "Linear", "Dropout")
    assert changes[-1] == Change("model.layers[5]", MISSING, {"type": "Linear", "params": {"out_features": 2}})
    assert format_change(changes[-1]) == "model.layers[5] (absent) -> Linear(out_features=2)"


def test_an_absent_params_object_equals_an_empty_one_and_ints_equal_floats():
    a = {"layers": [{"type": "ReLU"}], "lr": 1}
    b = {"layers": [{"type": "ReLU", "params": {}}], "lr": 1.0}
    assert diff(a, b) == []
    assert diff({"x": True}, {"x": 1}) == [Change("x", True, 1)]


def test_format_value_is_compact():
    assert format_value(0.001) == "0.001"
    assert format_value("Adam") == '"Adam"'
    assert format_value([1, 28, 28]) == "[1, 28, 28]"
    assert format_value(MISSING) == "(absent)"
    assert format_value(None) == "null" and format_value(False) == "false"
    assert format_value({"type": "StepLR", "params": {"step_size": 10}}) == "StepLR(step_size=10)"
    assert len(format_value("x" * 1000)) < 200


def test_a_long_text_value_is_cut_without_a_wrong_length():
    from guidl.spec.paths import format_value

    shown = format_value("a" * 200)
    assert shown == '"' + "a" * 76 + '…"'  # not '… (100 characters)': it had 200
    assert format_value(["b" * 200]).startswith('["bbbb')


def test_format_value_shows_floats_to_six_significant_digits():
    # An Apply Best value and a sampled lr read as a table prints them, not 17 digits.
    assert format_value(0.16973076127852832) == "0.169731"
    assert format_value(0.02693883019285411) == "0.0269388"
    assert format_value(1e-05) == "1e-05" and format_value(1.0) == "1.0" and format_value(0.001) == "0.001"
    assert format_value(123456789.0) == "1.23457e+08"
    assert format_change(Change("training.optimizer.params.lr", 0.1, 0.02693883019285411)) == \
        "training.optimizer.params.lr 0.1 -> 0.0269388"
    assert format_value([0.333333333333, 2]) == "[0.333333, 2]"


def _adam(**params):
    return {"model": {"layers": [{"type": "Linear", "params": {"out_features": 2}},
                                 {"type": "Dropout", "params": {}}]},
            "data": {"dataset": "moons", "params": {"noise": 0.1}},
            "training": {"optimizer": {"type": "Adam", "params": params}, "early_stopping": {"patience": 5}}}


def test_a_parameter_left_at_its_catalogue_default_is_no_difference():
    # lr 0.001 is Adam's default: a run that stored params {} trained with the same lr.
    assert diff(_adam(lr=0.001), _adam()) == [] and diff(_adam(), _adam(lr=0.001)) == []
    written = _adam(lr=0.001)
    written["model"]["layers"][1]["params"]["p"] = 0.5  # Dropout's default
    written["data"]["params"]["n_samples"] = 1000  # moons' default
    written["training"]["early_stopping"]["restore_best"] = True  # early stopping's default
    assert diff(written, _adam()) == []


def test_a_parameter_changed_from_its_default_reads_as_the_default():
    [change] = diff(_adam(lr=0.1), _adam())
    assert change == Change("training.optimizer.params.lr", 0.1, 0.001, after_default=True)
    assert format_change(change) == "training.optimizer.params.lr 0.1 -> 0.001 (default)"
    [back] = diff(_adam(), _adam(lr=0.1))
    assert back.before_default and not back.after_default
    assert format_change(back) == "training.optimizer.params.lr 0.001 (default) -> 0.1"
    dropped = _adam()
    dropped["model"]["layers"][1]["params"]["p"] = 0.2
    assert [format_change(c) for c in diff(dropped, _adam())] == ["model.layers[1].params.p 0.2 -> 0.5 (default)"]


def test_defaults_fill_in_only_where_the_type_is_the_same_and_the_parameter_has_one():
    sgd = _adam()
    sgd["training"]["optimizer"]["type"] = "SGD"
    # Another type: its parameters as written (Adam's lr is no SGD default to compare with).
    assert [format_change(c) for c in diff(_adam(lr=0.1), sgd)] == [
        'training.optimizer.type "Adam" -> "SGD"', "training.optimizer.params.lr 0.1 -> (absent)"]
    # A required parameter (out_features) and an inferred one (in_features) have no default.
    wider = _adam()
    wider["model"]["layers"][0]["params"] = {"in_features": 2}
    assert [format_change(c) for c in diff(_adam(), wider)] == [
        "model.layers[0].params.out_features 2 -> (absent)", "model.layers[0].params.in_features (absent) -> 2"]


def test_a_block_instance_left_at_the_blocks_declared_default_is_no_difference():
    def doc(params, default=16):
        return {"model": {"blocks": {"Res": {"params": [{"name": "channels", "kind": "int", "default": default}],
                                             "layers": [{"type": "Conv2d", "params": {"out_channels": "$channels"}}]}},
                          "layers": [{"type": "Res", "params": params}]}}

    assert diff(doc({"channels": 16}), doc({})) == []
    assert [format_change(c) for c in diff(doc({"channels": 32}), doc({}))] == [
        "model.layers[0].params.channels 32 -> 16 (default)"]
    # Declarations that disagree on the default: the values as written.
    assert [format_change(c) for c in diff(doc({"channels": 16}), doc({}, default=8))] == [
        "model.blocks.Res.params[0].default 16 -> 8", "model.layers[0].params.channels 16 -> (absent)"]


def test_component_entry_names_the_catalogue_entry_that_owns_a_parameter():
    from guidl.registry import AUGMENT, DATASETS, LAYERS, OPTIMIZERS
    from guidl.spec.paths import component_catalogue, component_entry

    doc = {"model": {"layers": [{"type": "Linear", "params": {}}, {"type": "Res"}],
                     "blocks": {"Res": {"params": [], "layers": [{"type": "ReLU"}]}}},
           "data": {"dataset": "moons", "params": {}},
           "training": {"optimizer": {"type": "SGD", "params": {}}, "discriminator_optimizer": {"type": "nope"}}}
    assert component_entry(doc, parse_path("model.layers[0].params.out_features")) is LAYERS.get("Linear")
    assert component_entry(doc, parse_path("model.blocks.Res.layers[0].params.x")) is LAYERS.get("ReLU")
    assert component_entry(doc, parse_path("training.optimizer.params.lr")) is OPTIMIZERS.get("SGD")
    assert component_entry(doc, parse_path("data.params.samples")) is DATASETS.get("moons")
    assert component_entry(doc, parse_path("data.augment.hflip")) is AUGMENT
    # A block, an unknown type, an absent owner, a field that is no parameter: none.
    for path in ("model.layers[1].params.width", "training.discriminator_optimizer.params.lr",
                 "model.layers[5].params.x", "training.epochs", "training.optimizer.type"):
        assert component_entry(doc, parse_path(path)) is None, path
    assert component_catalogue(parse_path("discriminator.layers[2].params")) == (LAYERS, "type")
    assert component_catalogue(parse_path("data.params")) == (DATASETS, "dataset")
    assert component_catalogue(parse_path("training.epochs")) is None
