"""The checks that tell, before training, that a task's networks do not fit
the data: each mismatch on the layer or field that causes it, with the JSON
path and the fix where one parameter makes it (applied, it passes)."""

import json

from guidl import spec
from guidl.engine import analyze
from guidl.engine.checks import catalogue_info, report_compatibility
from guidl.engine.data import DatasetInfo
from guidl.engine.task_checks import check_task, task_problems, task_reports
from guidl.examples import example_path
from guidl.spec.fixes import apply_fix

GENERATOR = [
    {"type": "Linear", "params": {"out_features": 1568}},          # 0: 32 x 7 x 7
    {"type": "ReLU"},
    {"type": "Unflatten", "params": {"dim": 1, "unflattened_size": [32, 7, 7]}},
    {"type": "ConvTranspose2d", "params": {"out_channels": 16, "kernel_size": 4, "stride": 2,
                                           "padding": 1}},          # 3: 14 x 14
    {"type": "BatchNorm2d"},
    {"type": "ReLU"},
    {"type": "ConvTranspose2d", "params": {"out_channels": 1, "kernel_size": 4, "stride": 2,
                                           "padding": 1}},          # 6: 28 x 28
    {"type": "Tanh"},
]

DISCRIMINATOR = [
    {"type": "Conv2d", "params": {"out_channels": 16, "kernel_size": 4, "stride": 2, "padding": 1}},
    {"type": "LeakyReLU", "params": {"negative_slope": 0.2}},
    {"type": "Conv2d", "params": {"out_channels": 32, "kernel_size": 4, "stride": 2, "padding": 1}},
    {"type": "LeakyReLU", "params": {"negative_slope": 0.2}},
    {"type": "Flatten"},
    {"type": "Linear", "params": {"out_features": 1}},              # 5
]

AUTOENCODER = [
    {"type": "Conv2d", "params": {"out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1}},
    {"type": "ReLU"},
    {"type": "Conv2d", "params": {"out_channels": 16, "kernel_size": 3, "stride": 2, "padding": 1}},
    {"type": "ReLU", "id": "code"},
    {"type": "ConvTranspose2d", "params": {"out_channels": 8, "kernel_size": 4, "stride": 2,
                                           "padding": 1}},
    {"type": "ReLU"},
    {"type": "ConvTranspose2d", "params": {"out_channels": 1, "kernel_size": 4, "stride": 2,
                                           "padding": 1}},          # 6
    {"type": "Sigmoid"},                                            # 7
]


def _project(task, model, discriminator=None, loss="MSELoss", dataset="mnist_sample",
             data_params=None) -> spec.Project:
    doc = {"format": "guidl-project", "version": 3, "name": "t", "model": {"layers": model},
           "data": {"dataset": dataset, "params": data_params or {}},
           "training": {"loss": {"type": loss}, "optimizer": {"type": "Adam"}, "epochs": 1},
           "task": task}
    if discriminator is not None:
        doc["discriminator"] = {"layers": discriminator}
    return spec.loads(json.dumps(doc))


def _gan(generator=GENERATOR, discriminator=DISCRIMINATOR, **params):
    return _project({"type": "gan", "params": params}, generator, discriminator, "BCEWithLogitsLoss")


def _autoencoder(layers=AUTOENCODER, loss="MSELoss", **params):
    return _project({"type": "reconstruction", "params": params}, layers, loss=loss)


def _check(project, info=None):
    info = info or catalogue_info(project)
    return check_task(project, task_reports(project, info), info)


def _paths(result):
    return [p.path for p in result.problems]


def _changed(layers, index, **params):
    layers = json.loads(json.dumps(layers))
    layers[index].setdefault("params", {}).update(params)
    return layers


def test_a_dcgan_pair_and_a_conv_autoencoder_on_mnist_shapes_pass():
    gan = _gan()
    reports = task_reports(gan, catalogue_info(gan))
    assert reports["model"].input_shape == (64,) and reports["model"].output_shape == (1, 28, 28)
    assert reports["discriminator"].input_shape == (1, 28, 28)
    assert reports["discriminator"].output_shape == (1,)
    result = _check(gan)
    assert result.problems == [] and result.warnings == [] and result.layer_fixes == []
    result = _check(_autoencoder())
    assert result.problems == [] and result.warnings == []
    assert task_problems(_autoencoder(), catalogue_info(_autoencoder())) == ([], [])
    assert check_task(gan, {}, None).problems == []  # the user's own files: known once loaded


def test_a_generator_of_the_wrong_channels_gets_the_fix_that_makes_it_pass():
    project = _gan(generator=_changed(GENERATOR, 6, out_channels=3))
    result = _check(project)
    assert _paths(result) == ["model.layers[6].params.out_channels"]
    message = result.problems[0].message
    assert "the generator gives (3, 28, 28) but the data's samples are (1, 28, 28)" in message
    assert "set out_channels of layer 6 (ConvTranspose2d) to 1" in message
    [fix] = result.layer_fixes
    assert (fix.network, fix.index, fix.fix) == ("model", 6, "set out_channels to 1")
    apply_fix(project, fix.action)
    assert _check(project).problems == []


def test_a_generator_of_the_wrong_size_gets_a_padding_that_makes_it_pass():
    # 7 -> 14 -> 32: the last upsampling's padding decides the size
    project = _gan(generator=_changed(GENERATOR, 6, padding=0, output_padding=0, kernel_size=6))
    result = _check(project)
    [problem] = result.problems
    assert problem.path.startswith("model.layers[6].params.")
    assert "the generator gives (1, 32, 32) but the data's samples are (1, 28, 28)" in problem.message
    apply_fix(project, result.layer_fixes[0].action)
    assert _check(project).problems == []


def test_a_generator_no_parameter_fixes_is_told_where_to_look():
    # (1568,) flat: it needs Unflatten, which one parameter cannot add
    project = _gan(generator=GENERATOR[:1])
    result = _check(project)
    assert _paths(result) == ["model.layers[0]"]
    assert "gives (1568,)" in result.problems[0].message
    assert "Linear layer with out_features 784 and Unflatten" in result.problems[0].message
    assert result.layer_fixes[0].action is None


def test_a_discriminator_that_does_not_end_in_one_score_per_sample():
    project = _gan(discriminator=_changed(DISCRIMINATOR, 5, out_features=10))
    result = _check(project)
    assert _paths(result) == ["discriminator.layers[5].params.out_features"]
    assert "the discriminator gives (10,) but it must end in one score per sample, (1,)" \
        in result.problems[0].message
    [fix] = result.layer_fixes
    assert fix.network == "discriminator" and fix.action.name == "out_features" and fix.action.value == 1
    project.discriminator.layers[5].params["out_features"] = 1  # the window applies it there
    assert _check(project).problems == []
    # Ending in an image-shaped map: Flatten is the fix
    project = _gan(discriminator=DISCRIMINATOR[:3] + [
        {"type": "Conv2d", "params": {"out_channels": 1, "kernel_size": 7}}])
    result = _check(project)
    assert _paths(result) == ["discriminator.layers[3]"]
    assert "gives (1, 1, 1)" in result.problems[0].message and "Flatten" in result.problems[0].message


def test_a_discriminator_ending_in_sigmoid_squashes_twice():
    project = _gan(discriminator=DISCRIMINATOR + [{"type": "Sigmoid"}])
    result = _check(project)
    assert _paths(result) == ["discriminator.layers[6]"]
    assert "BCEWithLogitsLoss applies it itself" in result.problems[0].message


def test_an_autoencoder_whose_output_differs_from_its_input():
    project = _autoencoder(_changed(AUTOENCODER, 6, out_channels=2))
    result = _check(project)
    assert _paths(result) == ["model.layers[6].params.out_channels"]
    assert "the autoencoder gives (2, 28, 28) but its input is (1, 28, 28)" in result.problems[0].message
    apply_fix(project, result.layer_fixes[0].action)
    assert _check(project).problems == []


def test_bce_needs_a_sigmoid_end_and_unit_range():
    result = _check(_autoencoder(AUTOENCODER[:-1], loss="BCELoss"))
    assert _paths(result) == ["training.loss.type"]
    assert "ends with ConvTranspose2d: end it with Sigmoid" in result.problems[0].message
    assert result.layer_fixes[0].index == 6
    result = _check(_autoencoder(loss="BCELoss", pixel_range="symmetric"))
    assert _paths(result) == ["task.params.pixel_range"]
    assert "BCELoss needs targets between 0 and 1" in result.problems[0].message
    assert _check(_autoencoder(loss="BCELoss")).problems == []


def test_a_sigmoid_end_cannot_reach_symmetric_data_and_a_tanh_end_wastes_unit():
    result = _check(_autoencoder(pixel_range="symmetric"))
    assert _paths(result) == ["task.params.pixel_range"]
    message = result.problems[0].message
    assert "ends with Sigmoid, which gives 0..1, but the data is scaled to -1..1" in message
    assert "end it with Tanh, or set task.params.pixel_range to 'unit'" in message
    assert result.layer_fixes[0].index == 7  # shown on the Sigmoid
    tanh = AUTOENCODER[:-1] + [{"type": "Tanh"}]
    result = _check(_autoencoder(tanh, pixel_range="unit"))
    assert result.problems == [] and "part of its range is never used" in result.warnings[0]
    result = _check(_autoencoder(pixel_range="standardized"))
    assert result.problems == [] and "standardized data" in result.warnings[0]


def test_a_conditional_gan_needs_labels_and_takes_them_as_inputs():
    project = _gan(conditional=True)
    reports = task_reports(project, catalogue_info(project))
    assert reports["model"].input_shape == (74,) and reports["discriminator"].input_shape == (11, 28, 28)
    assert _check(project).problems == []
    unlabeled = DatasetInfo("table", "Table", "table", "regression", (1, 28, 28), "float32", None, None, 1)
    result = _check(project, unlabeled)
    assert _paths(result) == ["task.params.conditional"]
    assert "has no class labels" in result.problems[0].message


def test_gan_and_autoencoder_on_text_are_refused_on_the_dataset():
    text = DatasetInfo("text", "Text", "text", "classification", (32,), "int64", 40, None, None)
    for project in (_gan(), _autoencoder()):
        result = _check(project, text)
        assert _paths(result) == ["data.dataset"] and "character ids" in result.problems[0].message


def test_text_generation_needs_one_score_per_character():
    doc = json.loads(example_path("char_lstm").read_text())
    doc["version"] = 3
    doc["task"] = {"type": "text_generation", "params": {}}
    layers = doc["model"]["layers"]
    last = max(i for i, layer in enumerate(layers) if layer["type"] == "Linear")
    layers[last]["params"]["out_features"] = 7
    project = spec.loads(json.dumps(doc))
    info = catalogue_info(project)
    result = _check(project, info)
    assert _paths(result) == ["training.loss"]
    assert f"one score per class, ({info.num_classes},)" in result.problems[0].message
    assert result.layer_fixes[0].action.value == info.num_classes


def test_the_window_flags_each_networks_own_layer():
    project = _gan(discriminator=_changed(DISCRIMINATOR, 5, out_features=10))
    info = catalogue_info(project)
    generator = analyze(project.model, [64])
    report_compatibility(project, generator, info)
    # The generator's view: the discriminator's problem is the project's, not a layer's here
    assert all(layer.error is None for layer in generator.layers)
    assert [p.path for p in generator.model_errors] == ["discriminator.layers[5].params.out_features"]
    discriminator = analyze(project.discriminator, [1, 28, 28])
    report_compatibility(project, discriminator, info, network="discriminator")
    assert discriminator.layers[5].fix == "set out_features to 1"
    assert discriminator.layers[5].fix_action.value == 1 and discriminator.model_errors == []


def test_projects_without_a_task_are_checked_as_before():
    project = _project(None, [{"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 3}}],
                       loss="CrossEntropyLoss")
    report = analyze(project.model, [1, 28, 28])
    result = report_compatibility(project, report, catalogue_info(project))
    assert report.layers[1].fix == "set out_features to 10"
    assert [f.network for f in result.layer_fixes] == ["model"]


def test_the_range_is_that_of_the_last_activation_before_layers_that_only_reshape():
    flat = [{"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 784}}, {"type": "Sigmoid"},
            {"type": "Unflatten", "params": {"dim": 1, "unflattened_size": [1, 28, 28]}}]
    # Sigmoid then Unflatten still gives 0..1: BCELoss fits it.
    assert _check(_autoencoder(flat, loss="BCELoss")).problems == []
    # ... and cannot reach -1: the symmetric range is refused, on the Sigmoid.
    result = _check(_autoencoder(flat, pixel_range="symmetric"))
    assert [p.path for p in result.problems] == ["task.params.pixel_range"]
    assert "ends with Sigmoid" in result.problems[0].message
    assert [fix.index for fix in result.layer_fixes] == [2]


def test_a_discriminator_left_in_a_project_that_is_not_a_gan_is_not_checked():
    project = _autoencoder()
    project.discriminator = spec.Model(layers=[spec.Layer("Linear", {"out_features": 3})])
    info = catalogue_info(project)
    assert list(task_reports(project, info)) == ["model"]
    assert task_problems(project, info) == ([], [])
