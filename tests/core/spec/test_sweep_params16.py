"""What a sweep varies: parsing PATH=SPEC, checking it against the project
and its schemas, grid points, applying values, metrics and the config."""

import json
from pathlib import Path

import pytest

from guidl.spec import Project, ProjectError, load
from guidl.spec.sweep import (
    METRICS, SweepConfig, SweepParam, apply_values, check_params, default_metric, metric_direction,
    metrics_for, parse_param, setting_kind,
)

# Not `from conftest import ROOT`: with tests/gui's conftest loaded first, that names the wrong module.
ROOT = Path(__file__).resolve().parents[3]


def example(name: str) -> Project:
    return load(ROOT / "examples" / f"{name}.guidl.json")


@pytest.fixture(scope="module")
def moons() -> Project:
    return example("moons_mlp")


@pytest.mark.parametrize("text, expected", [
    ("training.optimizer.params.lr=0.001,0.01,0.1",
     SweepParam("training.optimizer.params.lr", "values", (0.001, 0.01, 0.1))),
    (" training.optimizer.params.lr = 1e-3 , 1E-2 ",
     SweepParam("training.optimizer.params.lr", "values", (0.001, 0.01))),
    ("training.optimizer.type=Adam,SGD", SweepParam("training.optimizer.type", "values", ("Adam", "SGD"))),
    ("training.optimizer.params.nesterov=true,false",
     SweepParam("training.optimizer.params.nesterov", "values", (True, False))),
    ("training.grad_clip=null,1", SweepParam("training.grad_clip", "values", (None, 1))),
    ("data.batch_size=16..128", SweepParam("data.batch_size", "range", (), 16, 128, True)),
    ("model.layers[0].params.out_features=log:8..256",
     SweepParam("model.layers[0].params.out_features", "log_range", (), 8, 256, True)),
    ("training.optimizer.params.lr=log:1e-4..1e-1",
     SweepParam("training.optimizer.params.lr", "log_range", (), 1e-4, 0.1, False)),
    ("a.b=-1.5..-0.5", SweepParam("a.b", "range", (), -1.5, -0.5, False)),
    ("a.b=-3,-1", SweepParam("a.b", "values", (-3, -1))),
])
def test_parse_param_reads_each_syntax_and_writes_it_back(text, expected):
    param = parse_param(text)
    assert param == expected
    assert parse_param(f"{param.path}={param.spec_text()}") == param


@pytest.mark.parametrize("text, message", [
    ("training.optimizer.params.lr", "write PATH=VALUES"),
    ("training.optimizer.params.lr=", "no values after '='"),
    ("data.batch_size=64..16", "data.batch_size: range 64..16 needs low < high"),
    ("data.batch_size=16..16", "needs low < high (to try one value"),
    ("training.optimizer.params.lr=log:0..1", "training.optimizer.params.lr: log range needs low > 0, got 0"),
    ("training.optimizer.params.lr=log:-1..1", "log range needs low > 0, got -1"),
    ("training.optimizer.params.lr=log:1e-3", "log range is written log:lo..hi"),
    ("training.optimizer.params.lr=a..b", "low end must be a number, got 'a'"),
    ("training.optimizer.params.lr=0.1,,0.2", "has an empty value"),
    ("training.optimizer.params.lr=0.1,0.2..0.3", "mixes a list and a range"),
    ("training.optimizer.params.lr=0.1,0.1", "0.1 is listed twice"),
    ("training.optimizer.params.lr=inf..1", "finite"),
    ("training..lr=1,2", "expected a key at character 10"),
])
def test_parse_param_refuses_bad_text_with_the_reason(text, message):
    with pytest.raises(ValueError) as error:
        parse_param(text)
    assert message in str(error.value)


def test_with_the_project_a_range_is_integer_only_on_a_whole_number_setting(moons):
    assert parse_param("model.layers[0].params.out_features=8..64", moons).integer
    assert parse_param("data.batch_size=16..128", moons).integer
    assert not parse_param("training.optimizer.params.lr=0..1", moons).integer  # a float setting
    assert parse_param("training.optimizer.type=3,4", moons).values == ("3", "4")  # text stays text
    assert parse_param('training.optimizer.type="null",null', moons).values == ("null", None)
    assert setting_kind(moons, "model.layers[0].params.out_features") == "int"
    assert setting_kind(moons, "training.optimizer.params.weight_decay") == "float"  # left at its default
    assert setting_kind(moons, "training.optimizer.type") == "str"


def test_valid_sweeps_pass_the_check(moons):
    params = [parse_param(text, moons) for text in (
        "training.optimizer.params.lr=log:1e-4..1e-1",
        "model.layers[2].params.out_features=8,16,32",
        "training.optimizer.type=Adam,SGD,RMSprop",
        "training.optimizer.params.weight_decay=0,1e-4",   # the schema knows it; the project leaves it out
        "data.batch_size=16..128",
        "data.params.noise=0.05..0.3",
        "training.grad_clip=0.5,1.0",
        "model.layers[1].type=ReLU,Tanh",
    )]
    assert check_params(moons, params) == []


@pytest.mark.parametrize("text, message", [
    ("model.layers[9].params.out_features=1,2", "model.layers[9].params.out_features: the model has 5 layers"),
    ("training.optimizer.params.lrr=0.1,0.2", "Adam has no parameter 'lrr'"),
    ("training.epoch=1,2", "training has no key 'epoch'"),
    ("data.batch_size=0..64", "data.batch_size: range 0..64: must be an integer from 1 to"),
    ("data.batch_size=16,0", "data.batch_size: value 0: must be an integer"),
    ("training.optimizer.params.lr=-1..1", "range -1..1: must be a number > 0, got -1"),
    ("training.optimizer.type=Adam,Adamm", "value Adamm: unknown optimizer 'Adamm'"),
    ("training.optimizer.type=1..3", "training.optimizer.type: a range needs a number setting; "
                                     "this one is text (Adam): list its values instead"),
    ("model.layers[0].params.out_features=8.5..20", "is a whole-number setting"),
    ("model.layers[0]=1,2", "names a whole object, not one setting"),
    # The example named is a path that exists (not model.layers.params.NAME).
    ("model.layers=1,2", "names a list, not one setting: name one of its values "
                         "(e.g. model.layers[0].params.NAME)"),
    ("model.layers[0].params=1,2", "(e.g. model.layers[0].params.NAME)"),
    ("training=1,2", "(e.g. training.epochs)"),
    ("name=a,b", "is not a setting a sweep can vary"),
    ("training.early_stopping.patience=1,2", "training.early_stopping is not set in this project"),
])
def test_check_params_refuses_bad_paths_and_values_with_the_sweep_path(moons, text, message):
    problems = check_params(moons, [parse_param(text, moons)])
    assert problems, text
    assert message in str(problems[0])
    assert problems[0].path == text.split("=")[0].strip()


def test_the_same_path_twice_is_refused(moons):
    params = [parse_param("data.batch_size=16,32"), parse_param("data.batch_size=64..128")]
    assert [str(p) for p in check_params(moons, params)] == [
        "data.batch_size: is swept twice: give each setting once"]


def test_block_parameters_are_checked_against_the_blocks_declaration():
    project = example("resnet_mnist")
    doc = project.to_dict()
    index, layer = next((i, l) for i, l in enumerate(doc["model"]["layers"]) if l["type"] in doc["model"]["blocks"])
    name = doc["model"]["blocks"][layer["type"]]["params"][0]["name"]
    path = f"model.layers[{index}].params.{name}"
    assert check_params(project, [parse_param(f"{path}=8,16", project)]) == []
    assert check_params(project, [parse_param(f"model.layers[{index}].params.nope=1", project)])


def test_grid_values():
    assert parse_param("a=1,b,true").grid_values() == [1, "b", True]
    assert parse_param("a=2..6").grid_values() == [2, 3, 4, 5, 6]
    assert parse_param("a=0..100").grid_values(5) == [0, 25, 50, 75, 100]
    assert parse_param("a=0.0..1.0").grid_values(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert parse_param("a=log:1e-4..1e-1").grid_values(4) == [1e-4, 1e-3, 1e-2, 1e-1]
    assert parse_param("a=log:16..256").grid_values(5) == [16, 32, 64, 128, 256]


def test_apply_values_sets_paths_types_first_and_refuses_bad_values(moons):
    changed = apply_values(moons, {"training.optimizer.params.momentum": 0.9, "training.optimizer.type": "SGD",
                                   "model.layers[0].params.out_features": 32})
    assert changed.training.optimizer.type == "SGD"
    assert changed.training.optimizer.params == {"lr": 0.01, "momentum": 0.9}
    assert changed.model.layers[0].params["out_features"] == 32
    assert moons.training.optimizer.type == "Adam"  # the original is untouched
    # A type the old parameters do not fit drops them (SGD's momentum when it becomes Adam).
    back = apply_values(changed, {"training.optimizer.type": "Adam"})
    assert back.training.optimizer.params == {"lr": 0.01}
    with pytest.raises(ProjectError, match=r"data\.batch_size: must be an integer from 1"):
        apply_values(moons, {"data.batch_size": 0})
    with pytest.raises(ProjectError, match=r"model\.layers\[7\]\.params\.out_features: the model has 5 layers"):
        apply_values(moons, {"model.layers[7].params.out_features": 3})


def test_metrics_and_their_directions_follow_the_task(moons):
    assert default_metric(moons) == "val_accuracy"
    assert default_metric(example("conv_autoencoder")) == "val_loss"
    gan = example("dcgan_mnist")
    assert "val_loss" not in metrics_for(gan) and default_metric(gan) == "judge_confidence"
    doc = moons.to_dict()
    doc["training"]["loss"] = {"type": "MSELoss", "params": {}}
    doc["data"] = {"dataset": "csv", "params": {"path": "x.csv", "task": "regression"}, "val_fraction": 0.2,
                   "batch_size": 32}
    assert default_metric(Project.from_dict(doc)) == "val_mae"
    doc = moons.to_dict()
    doc["data"]["val_fraction"] = 0
    assert default_metric(Project.from_dict(doc)) == "train_accuracy"
    assert metric_direction("val_loss") == "minimize" and metric_direction("val_psnr") == "maximize"
    assert set(METRICS) >= {"val_loss", "val_accuracy", "val_mae", "val_mse", "val_psnr", "train_loss"}
    with pytest.raises(ValueError, match="unknown metric 'val_acc'"):
        metric_direction("val_acc")


def test_config_round_trips_through_json_and_reports_its_problems(moons):
    config = SweepConfig([parse_param("training.optimizer.params.lr=log:1e-3..1e-1", moons),
                          parse_param("model.layers[0].params.out_features=4..64", moons),
                          parse_param("training.optimizer.type=Adam,SGD", moons)],
                         strategy="grid", trials=100, metric="val_accuracy", epochs=3, pruner=False)
    again = SweepConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert config.problems(moons) == []
    assert config.grid_size() == 5 * 5 * 2 and config.budget() == 50
    assert config.resolved_direction == "maximize"
    bad = SweepConfig([], strategy="bayes", trials=0, metric="val_psnr", direction="up", epochs=0)
    assert {p.path for p in bad.problems(moons)} == {"strategy", "trials", "metric", "direction", "epochs", "params"}
    assert "val_psnr is not recorded for this classification project" in str(bad.problems(moons))
    with pytest.raises(ValueError, match="trials"):
        SweepConfig.from_dict({"params": [], "trials": "many"})
    with pytest.raises(ValueError, match="kind must be one of"):
        SweepConfig.from_dict({"params": [{"path": "a", "kind": "spread"}]})


def test_a_variants_config_needs_no_params_but_valid_variants(moons):
    good = moons.to_dict()
    broken = moons.to_dict()
    broken["training"]["optimizer"] = {"type": "SGD", "params": {"lr": -1}}
    config = SweepConfig([], strategy="grid", trials=2, metric="val_accuracy", variants={"a": good, "b": broken},
                         compare="optimizers")
    problems = config.problems(moons)
    assert [p.path for p in problems] == ["variants.b.training.optimizer.params.lr"]
    config.variants = {"a": good}
    assert config.problems(moons) == [] and config.grid_space() == {"variant": ["a"]}
    assert SweepConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_a_parameter_of_a_swept_type_is_checked_against_the_types_that_take_it(moons):
    sweep = [parse_param("training.optimizer.type=SGD,Adam", moons),
             parse_param("training.optimizer.params.momentum=0.5,0.9", moons)]
    assert check_params(moons, sweep) == []  # the project's Adam has no momentum; SGD has
    bad = [parse_param("training.optimizer.type=Adagrad,Adam", moons),
           parse_param("training.optimizer.params.momentum=0.5,0.9", moons)]
    assert [str(p) for p in check_params(moons, bad)] == [
        "training.optimizer.params.momentum: none of the types swept (Adam, Adagrad) takes a parameter 'momentum'"]
    negative = [sweep[0], parse_param("training.optimizer.params.momentum=0.5,-2", moons)]
    assert "value -2: must be a number >= 0" in str(check_params(moons, negative))
    # A trial with Adam leaves the momentum out; one with SGD uses it.
    values = {"training.optimizer.type": "Adam", "training.optimizer.params.momentum": 0.9}
    assert apply_values(moons, values).training.optimizer.params == {"lr": 0.01}
    values["training.optimizer.type"] = "SGD"
    assert apply_values(moons, values).training.optimizer.params == {"lr": 0.01, "momentum": 0.9}


def test_a_swept_training_epochs_and_an_epochs_override_cannot_both_be_set(moons):
    # The override would train every trial alike while each recorded its swept epochs.
    swept = [parse_param("training.epochs=1..3", moons)]
    clash = SweepConfig(swept, strategy="random", trials=2, metric="val_accuracy", epochs=1)
    found = clash.problems(moons)
    assert [p.path for p in found] == ["epochs"]
    assert "cannot be set while the sweep varies training.epochs" in found[0].message
    assert SweepConfig(swept, strategy="random", trials=2, metric="val_accuracy").problems(moons) == []
    other = [parse_param("training.optimizer.params.lr=0.1,0.01", moons)]
    assert SweepConfig(other, strategy="grid", trials=2, metric="val_accuracy", epochs=1).problems(moons) == []


def test_a_val_metric_is_refused_when_a_swept_val_fraction_can_be_zero(moons):
    for text in ("data.val_fraction=0,0.2", "data.val_fraction=0.0..0.3"):
        found = SweepConfig([parse_param(text, moons)], strategy="random", trials=2,
                            metric="val_accuracy").problems(moons)
        assert [p.path for p in found] == ["metric"], text
        assert "data.val_fraction 0" in found[0].message
    held_out = [parse_param("data.val_fraction=0.1,0.2", moons)]
    assert SweepConfig(held_out, strategy="grid", trials=2, metric="val_accuracy").problems(moons) == []
    at_zero = [parse_param("data.val_fraction=0,0.2", moons)]
    assert SweepConfig(at_zero, strategy="grid", trials=2, metric="train_accuracy").problems(moons) == []
