"""The checks of model against data and loss, made while the model is edited:
a last layer of the wrong size is that layer's problem, with its fix, before
any data is loaded."""

import pytest

from guidl import spec
from guidl.engine import analyze
from guidl.engine.checks import catalogue_info, report_compatibility
from guidl.engine.data import prepare
from guidl.examples import example_path


def _moons(out_features: int, loss: str = "CrossEntropyLoss") -> spec.Project:
    project = spec.load(example_path("moons_mlp"))
    project.model.layers[-1].params["out_features"] = out_features
    project.training.loss = spec.Component(loss, {})
    return project


def test_a_last_linear_of_the_wrong_size_is_its_own_problem_with_the_fix():
    project = _moons(128)
    report = analyze(project.model, [2])
    assert report.problems() == []  # shapes alone cannot tell
    report_compatibility(project, report, catalogue_info(project))
    last = report.layers[-1]
    assert last.fix == "set out_features to 2"
    assert "gives (128,)" in last.error and "dataset 'moons', (2,)" in last.error
    assert [p.path for p in report.problems()] == ["model.layers[4]"]


def test_a_fitting_model_gets_no_problem_and_other_misfits_are_the_models():
    project = _moons(2)
    report = analyze(project.model, [2])
    report_compatibility(project, report, catalogue_info(project))
    assert report.problems() == []
    project = _moons(2, "MSELoss")  # no layer size fixes this one
    report = analyze(project.model, [2])
    report_compatibility(project, report, catalogue_info(project))
    assert [p.path for p in report.problems()] == ["training.loss"]
    assert "use CrossEntropyLoss" in report.problems()[0].message


@pytest.mark.parametrize("dataset, params", [
    ("moons", {"n_samples": 40}), ("circles", {"n_samples": 40}), ("xor", {"n_samples": 40}),
    ("spirals", {"n_samples": 40, "classes": 4}), ("blobs", {"n_samples": 40, "centers": 5}),
    ("digits", {}), ("text", {"max_samples": 50}),
])
def test_the_catalogue_knows_the_class_count_the_loaded_data_has(dataset, params):
    project = spec.load(example_path("moons_mlp"))
    project.data = spec.Data(dataset, params, val_fraction=0.2)
    assert catalogue_info(project).num_classes == prepare(project).info.num_classes


def test_the_users_own_files_are_left_to_loading():
    project = spec.load(example_path("moons_mlp"))
    project.data = spec.Data("csv", {"path": "table.csv"})
    assert catalogue_info(project) is None


def test_a_convolution_before_flatten_is_not_offered_a_size_it_cannot_fix():
    project = spec.load(example_path("mnist_cnn"))
    project.model.layers = project.model.layers[:4]  # Conv2d, ReLU, MaxPool2d, Flatten: (5408,)
    report = analyze(project.model, [1, 28, 28])
    report_compatibility(project, report, catalogue_info(project))
    assert all(layer.fix_action is None for layer in report.layers)  # out_channels cannot give (10,)
    [problem] = report.problems()
    assert problem.path == "training.loss" and "end the model with a Linear layer with out_features 10" \
        in problem.message
