"""Leaving a GAN (or text generation) in the task form leaves a model that
fits the new task: the model, data and optimizer from before the task was
chosen in this session, else a small default model for the new task; one
undo step, and the status bar says what changed."""

import copy

from guidl import spec
from guidl.examples import example_path


def choose(window, task_type):
    combo = window.setup.task.combo
    combo.setCurrentIndex(combo.findData(task_type))


def no_problems(document):
    assert document.project.problems() == []
    assert document.model_problems() == []
    assert all(not layer.error for layer in document.report.layers)
    assert document.report.output_shape is not None


def test_gan_then_labels_brings_back_the_model_and_optimizer(window):
    document = window.document
    before = copy.deepcopy(document.project)
    before.training.optimizer.params = {"lr": 0.002, "betas": [0.9, 0.999]}
    document.set_project(before, None)
    choose(window, "gan")
    assert document.project.model != before.model  # the DCGAN-style generator
    choose(window, None)
    project = document.project
    assert project.task is None and project.discriminator is None
    assert project.model == before.model
    assert project.training.optimizer == before.training.optimizer
    assert project == before
    no_problems(document)
    assert document.report.layers[0].output_shape == (32, 26, 26)
    assert window.train_action.isEnabled()
    message = window.statusBar().currentMessage()
    assert "the model and optimizer from before the GAN (Adam lr 0.002" in message and "Undo brings back" in message
    # Short enough to show whole beside the status bar's permanent text (the last run's result).
    width = window.statusBar().fontMetrics().horizontalAdvance(message)
    assert width + window.statusBar().fontMetrics().horizontalAdvance("Training stopped by the user in 33.4s") \
        < 1400, message
    # One undo step each way.
    stack = document.undo_stack
    assert stack.count() == 2
    stack.undo()
    assert document.project.task_type == "gan" and document.project.model != before.model
    stack.redo()
    assert document.project == before
    no_problems(document)


def test_a_gan_opened_from_a_file_gets_a_default_model_for_the_new_task(window):
    document = window.document
    document.set_project(spec.load(example_path("dcgan_mnist")), None)
    generator = copy.deepcopy(document.project.model)
    choose(window, None)
    project = document.project
    assert project.model != generator
    assert project.model.layers[-1].params == {"out_features": 10}
    assert project.training.optimizer.params.get("lr") == 0.001
    no_problems(document)
    assert document.report.output_shape == (10,)
    message = window.statusBar().currentMessage()
    assert "classifier" in message and "generator" in message
    document.undo_stack.undo()
    assert document.project.model == generator
    # Reconstruction: an autoencoder with a code layer, its output the input's shape.
    choose(window, "reconstruction")
    project = document.project
    assert project.task_params()["code_layer"] == "code"
    assert any(layer.id == "code" for layer in project.model.layers)
    no_problems(document)
    assert document.report.output_shape == (1, 28, 28)
    assert "autoencoder" in window.statusBar().currentMessage()


def test_text_generation_then_labels_brings_back_the_data_and_model(window):
    document = window.document
    before = copy.deepcopy(document.project)
    choose(window, "text_generation")
    assert document.project.data.dataset == "text"
    choose(window, None)
    assert document.project.data == before.data
    assert document.project.model == before.model
    no_problems(document)


def test_a_conditional_generator_s_header_says_noise_plus_class(window):
    document = window.document
    document.set_project(spec.load(example_path("cgan_mnist")), None)
    params = document.project.task_params()
    assert params["conditional"]
    noise = params["noise_dim"]
    note = window.model_tab.network_note.text()
    assert note.startswith(f"noise {noise} + class 10 → ({noise + 10},) → samples (1, 28, 28)"), note
    document.set_network("discriminator")
    assert window.model_tab.network_note.text().startswith("samples")


def test_a_character_model_on_other_data_gets_a_classifier_for_labels(window):
    document = window.document
    project = spec.load(example_path("char_lstm"))
    project.task = spec.Component("text_generation", {})
    project.data = spec.load(example_path("mnist_cnn")).data
    document.set_project(project, None)
    choose(window, None)
    layers = document.project.model.layers
    assert layers[0].type != "Embedding" and layers[-1].params == {"out_features": 10}
    no_problems(document)
    assert "character model" in window.statusBar().currentMessage()
