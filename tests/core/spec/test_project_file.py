import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guidl import spec
from guidl.registry import DATASETS, EARLY_STOPPING, LAYERS, LOSSES, OPTIMIZERS, SCHEDULERS
from guidl.spec import Component, Data, Layer, Model, Project, ProjectError, Training

VALID = {
    "format": "guidl-project",
    "version": 1,
    "name": "t",
    "model": {"input_shape": [1, 28, 28], "layers": [
        {"type": "Conv2d", "params": {"out_channels": 32, "kernel_size": 3}},
        {"type": "ReLU"},
        {"type": "Flatten"},
        {"type": "Linear", "params": {"out_features": 10}},
    ]},
    "data": {"dataset": "mnist_sample", "params": {}, "val_fraction": 0.1, "batch_size": 128},
    "training": {"loss": {"type": "CrossEntropyLoss", "params": {}},
                 "optimizer": {"type": "Adam", "params": {"lr": 0.001}},
                 "scheduler": None, "epochs": 5, "device": "auto", "seed": 0},
}


def _doc(**changes):
    doc = json.loads(json.dumps(VALID))
    for path, value in changes.items():
        target = doc
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        last = keys[-1]
        if isinstance(target, list):
            target[int(last)] = value
        elif value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return doc


_DELETE = object()


def _problems(doc_or_text) -> list[str]:
    text = doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text)
    with pytest.raises(ProjectError) as caught:
        spec.loads(text)
    return [str(p) for p in caught.value.problems]


def test_examples_load_and_round_trip_to_the_same_text(example_path):
    text = example_path.read_text()
    project = spec.load(example_path)
    assert spec.dumps(project) == text
    assert spec.loads(spec.dumps(project)) == project
    assert project.problems() == []


def test_unknown_keys_are_kept_at_every_level():
    doc = _doc(comment="mine", model__note={"a": [1, 2]}, model__layers__1={"type": "ReLU", "x": 1},
               data__note="later", training__optimizer__tag="t", training__extra_key=3)
    project = spec.loads(json.dumps(doc))
    assert project.extra == {"comment": "mine"}
    assert project.model.layers[1].extra == {"x": 1}
    assert json.loads(spec.dumps(project)) == doc


def test_defaults_fill_what_a_hand_written_file_leaves_out():
    doc = {"format": "guidl-project", "version": 1,
           "model": {"input_shape": [2], "layers": [{"type": "Linear", "params": {"out_features": 2}}]},
           "data": {"dataset": "moons"}, "training": {}}
    project = spec.loads(json.dumps(doc))
    assert project.name == "Untitled"
    assert project.training.loss.type == "CrossEntropyLoss"
    assert project.training.optimizer == Component("Adam", {"lr": 0.001})
    assert project.data.batch_size == 128 and project.data.val_fraction == 0.1


@pytest.mark.parametrize("changes,expected", [
    ({"model__layers__0__params__kernel_size": -2},
     "model.layers[0].params.kernel_size: must be a positive integer (or a list of 2), got -2"),
    ({"model__layers__0__params__kernel_size": "3"}, "model.layers[0].params.kernel_size: must be"),
    ({"model__layers__0__params__stride": [1, 1, 1]}, "model.layers[0].params.stride: must be a number or a list of 2"),
    ({"model__layers__1": {"type": "Relu"}}, "model.layers[1].type: unknown layer 'Relu'; did you mean 'ReLU'?"),
    ({"model__layers__1": {"type": "os.system"}}, "model.layers[1].type: unknown layer 'os.system'"),
    ({"model__layers__1": {"type": "ReLU", "params": {"inplace": True}}},
     "model.layers[1].params.inplace: ReLU does not take a parameter 'inplace'; it takes no parameters"),
    ({"model__layers__3__params": {"out_feature": 10}},
     "model.layers[3].params.out_feature: Linear does not take a parameter 'out_feature'; did you mean 'out_features'?"),
    ({"model__layers__3": {"params": {}}}, "model.layers[3].type: is missing"),
    ({"model__layers__3": "Linear"}, "model.layers[3]: must be an object, got a string"),
    ({"model__layers": {}}, "model.layers: must be a list of layers, got an object"),
    ({"model__input_shape": [1, 0, 28]}, "model.input_shape: must be a list of 1 to 8 positive integers"),
    ({"model__input_dtype": "float16"}, "model.input_dtype: must be one of 'float32', 'int64'"),
    ({"model__layers__2": {"type": "Flatten", "id": "a", "inputs": ["x"]}},
     "model.layers[2].inputs[0]: unknown id 'x'; the layers before it are 'input'"),
    ({"training__loss": {"type": "MSELoss", "params": {"reduction": "sum"}}},
     "training.loss.params.reduction: MSELoss does not take a parameter 'reduction'"),
    ({"model__layers__1": {"type": "LSTM", "params": {"hidden_size": 8, "num_layers": 1000}}},
     "model.layers[1].params.num_layers: must be an integer >= 1 and <= 100"),
    ({"training__loss": {"type": "CrossEntropy"}},
     "training.loss.type: unknown loss 'CrossEntropy'; did you mean 'CrossEntropyLoss'?"),
    ({"training__optimizer": {"type": "Adam", "params": {"lr": -0.1}}},
     "training.optimizer.params.lr: must be a number > 0, got -0.1"),
    ({"training__optimizer": {"type": "adam"}}, "training.optimizer.type: unknown optimizer 'adam'; did you mean 'Adam'?"),
    ({"training__scheduler": {"type": "StepLR", "params": {}}},
     "training.scheduler.params.step_size: is required by StepLR"),
    ({"training__epochs": 0}, "training.epochs: must be an integer from 1 to 1000000, got 0"),
    ({"training__epochs": 2.5}, "training.epochs: must be an integer, got a number"),
    ({"training__device": "gpu"}, "training.device: must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu'"),
    ({"training__seed": -1}, "training.seed: must be an integer"),
    ({"data__val_fraction": 1.0}, "data.val_fraction: must be a number from 0 up to (not including) 1"),
    ({"data__batch_size": True}, "data.batch_size: must be an integer, got a boolean"),
    ({"data__dataset": "../../etc/passwd"}, "data.dataset: must be a dataset name in lower case"),
    ({"data__dataset": "mnsit"}, "data.dataset: unknown dataset 'mnsit'; did you mean 'mnist'?"),
    ({"data__dataset": "csv"}, "data.params.path: is required by csv"),
    ({"data__params": {"n_samples": 5}, "data__dataset": "moons"},
     "data.params.n_samples: must be an integer >= 10"),
    ({"data__augment": {"hflip": 1}}, "data.augment.hflip: must be true or false, got 1"),
    ({"training__early_stopping": {"monitor": "loss"}},
     "training.early_stopping.monitor: must be one of 'val_loss', 'val_accuracy', 'val_mae'"),
    ({"training__grad_clip": 0}, "training.grad_clip: must be a number > 0"),
    ({"training__precision": "half"}, "training.precision: must be one of 'fp32', 'bf16', 'fp16'"),
    ({"training__compile": "yes"}, "training.compile: must be true or false, got 'yes'"),
    ({"training__channels_last": 1}, "training.channels_last: must be true or false, got 1"),
    ({"name": 3}, "name: must be a string, got a number"),
    ({"model": _DELETE}, "model: is missing"),
])
def test_each_problem_is_reported_with_its_json_path(changes, expected):
    problems = _problems(_doc(**changes))
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_at_once():
    doc = _doc(model__layers__0__params__kernel_size=-2, training__epochs=0, data__batch_size=0,
               training__optimizer={"type": "Adam", "params": {"lr": 0, "betas": [0.9]}})
    problems = _problems(doc)
    assert [p.split(":")[0] for p in problems] == [
        "model.layers[0].params.kernel_size", "data.batch_size", "training.optimizer.params.lr",
        "training.optimizer.params.betas", "training.epochs"]


@pytest.mark.parametrize("text,expected", [
    ('{"format": "guidl-project", "version": 1,', "not valid JSON: Expecting property name"),
    ("", "not valid JSON: Expecting value (line 1, column 1)"),
    ("[1, 2]", "a project file must hold a JSON object"),
    ('"hello"', "a project file must hold a JSON object"),
    ('{"format": "keras"}', "format: must be 'guidl-project', got 'keras'"),
    ('{"version": 1}', "format: must be 'guidl-project', got None"),
    ('{"format": "guidl-project", "version": 7}', "version: 7 is newer than this guidl understands (up to 4)"),
    ('{"format": "guidl-project", "version": 0}', "version: unknown version 0"),
    ('{"format": "guidl-project", "version": "1"}', "version: must be an integer, got '1'"),
    ('{"format": "guidl-project", "format": "guidl-project"}', "not valid JSON for guidl: the key 'format' appears twice"),
    ('{"format": "guidl-project", "version": NaN}', "not valid JSON: NaN is not a JSON number"),
    ("[" * 100_000 + "]" * 100_000, "not a project file: its JSON is nested too deeply"),
    ('{"format": "guidl-project", "note": 1e400}', "not valid JSON for guidl: a number is too large"),
    ('{"format": "guidl-project", "name": "\\ud800"}', "not valid JSON for guidl: the text"),
    (json.dumps({**VALID, "note": json.loads("[" * 900 + "]" * 900)}),
     "not a project file: its JSON is nested too deeply"),
])
def test_malformed_documents_get_one_clear_line(text, expected):
    problems = _problems(text)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_file_level_problems(tmp_path):
    with pytest.raises(ProjectError, match="no such file"):
        spec.load(tmp_path / "missing.guidl.json")
    with pytest.raises(ProjectError, match="is a folder"):
        spec.load(tmp_path)
    binary = tmp_path / "model.guidl.json"
    binary.write_bytes(b"\x80\x04\x95pickle")
    with pytest.raises(ProjectError, match=r"not a text file \(not UTF-8 at byte 0\)") as caught:
        spec.load(binary)
    assert caught.value.lines() == [f"{binary}: not a text file (not UTF-8 at byte 0)"]
    big = tmp_path / "big.guidl.json"
    with open(big, "wb") as handle:
        handle.truncate(spec.io.MAX_FILE_BYTES + 1)
    with pytest.raises(ProjectError, match="a project file is at most 16.00 MB"):
        spec.load(big)


def test_migrations_upgrade_step_by_step(monkeypatch):
    from guidl.spec import io, project

    calls = []

    def v1_to_v2(doc):
        calls.append(1)
        doc["model"]["layers"] = doc["model"].pop("stack")
        return doc

    def v2_to_v3(doc):
        calls.append(2)
        return doc

    def v3_to_v4(doc):
        calls.append(3)
        return doc

    def v4_to_v5(doc):
        calls.append(4)
        return doc

    monkeypatch.setattr(project, "CURRENT_VERSION", 5)
    monkeypatch.setattr(io, "CURRENT_VERSION", 5)
    monkeypatch.setitem(io.MIGRATIONS, 1, v1_to_v2)
    monkeypatch.setitem(io.MIGRATIONS, 2, v2_to_v3)
    monkeypatch.setitem(io.MIGRATIONS, 3, v3_to_v4)
    monkeypatch.setitem(io.MIGRATIONS, 4, v4_to_v5)
    old = _doc()
    old["model"]["stack"] = old["model"].pop("layers")
    project_ = spec.loads(json.dumps(old))
    assert calls == [1, 2, 3, 4]
    assert project_.version == 5 and len(project_.model.layers) == 4
    assert json.loads(spec.dumps(project_))["version"] == 5


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "p.guidl.json"
    first = spec.loads(json.dumps(VALID))
    spec.save(first, path)
    assert spec.load(path) == first
    second = first.copy()
    second.name = "second"

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        spec.save(second, path)
    assert spec.load(path).name == "t"
    assert [p.name for p in tmp_path.iterdir()] == ["p.guidl.json"]


def test_problems_of_an_edited_project():
    project = spec.loads(json.dumps(VALID))
    assert project.problems() == []
    project.model.layers[0].params["kernel_size"] = 0
    assert [p.path for p in project.problems()] == ["model.layers[0].params.kernel_size"]


# -- property: any project built from the catalogues round-trips ------------------

_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                          st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
_extras = st.dictionaries(st.text(min_size=1, max_size=6).filter(lambda k: k not in {
    "type", "params", "id", "inputs", "format", "version", "name", "model", "data", "training",
    "input_shape", "input_dtype", "layers", "dataset", "val_fraction", "batch_size", "loss",
    "optimizer", "scheduler", "epochs", "device", "seed", "augment", "early_stopping", "grad_clip",
    "precision", "channels_last", "compile", "blocks", "balance", "discriminator", "discriminator_optimizer",
    "fine_tune", "frozen", "lr_multiplier", "task", "source", "notes"}), _json_scalars, max_size=2)


def _component(catalogue):
    return st.sampled_from(list(catalogue)).map(lambda e: Component(e.name, e.initial_params()))


# Merge layers need inputs; graphs round-trip in tests/core/spec/test_graph.py.
_layers = st.sampled_from([e for e in LAYERS if not e.info.get("merge")]).flatmap(
    lambda e: _extras.map(lambda extra: Layer(e.name, e.initial_params(), extra=extra)))

_projects = st.builds(
    Project,
    name=st.text(max_size=20),
    model=st.builds(Model, layers=st.lists(_layers, max_size=6),
                    input_shape=st.one_of(st.none(), st.lists(st.integers(1, 64), min_size=1, max_size=3)),
                    input_dtype=st.sampled_from(["float32", "int64"]), extra=_extras),
    data=st.sampled_from(list(DATASETS)).flatmap(lambda e: st.builds(
        Data, dataset=st.just(e.name), params=st.just(e.initial_params()),
        val_fraction=st.floats(0, 0.9), batch_size=st.integers(1, 4096),
        augment=st.one_of(st.none(), st.just({"hflip": True, "crop_padding": 4})), extra=_extras)),
    training=st.builds(Training, loss=_component(LOSSES), optimizer=_component(OPTIMIZERS),
                       scheduler=st.one_of(st.none(), _component(SCHEDULERS)),
                       epochs=st.integers(1, 1000), device=st.sampled_from(["auto", "cpu", "cuda:1"]),
                       seed=st.integers(0, 2**40),
                       early_stopping=st.one_of(st.none(), st.just(EARLY_STOPPING.resolve({}))),
                       grad_clip=st.one_of(st.none(), st.floats(0.01, 100)),
                       precision=st.sampled_from(["fp32", "bf16", "fp16"]),
                       channels_last=st.booleans(), compile=st.booleans(), extra=_extras),
    extra=_extras,
)


@settings(max_examples=150, deadline=None)
@given(_projects)
def test_any_valid_project_round_trips_losslessly(project):
    text = spec.dumps(project)
    again = spec.loads(text)
    assert again == project
    assert spec.dumps(again) == text
