"""The task form in the Train tab: choosing a task makes a project that can
train, as one undo step; the task's parameters are edited like any form."""

import copy

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit, QSpinBox

from guidl import spec
from guidl.qt.task_panel import LABELS_TITLE


def choose(window, task_type):
    combo = window.setup.task.combo
    combo.setCurrentIndex(combo.findData(task_type))


def test_the_form_lists_the_tasks_by_their_titles(window):
    combo = window.setup.task.combo
    titles = [combo.itemText(i) for i in range(combo.count())]
    assert titles[0] == LABELS_TITLE
    assert "Reconstruction (autoencoder)" in titles and "Text generation" in titles
    assert any(title.startswith("GAN") for title in titles)
    assert combo.currentData() is None  # the example learns its labels
    assert window.setup.task.form.isHidden()


def test_choosing_gan_makes_a_trainable_gan_in_one_undo_step(window):
    document = window.document
    before = copy.deepcopy(document.project)
    choose(window, "gan")
    project = document.project
    assert project.task_type == "gan"
    assert project.training.loss.type == "BCEWithLogitsLoss"
    # A discriminator made for 1x28x28 images: two strided convolutions, one score.
    assert [layer.type for layer in project.discriminator.layers] == [
        "Conv2d", "LeakyReLU", "Conv2d", "BatchNorm2d", "LeakyReLU", "Flatten", "Linear"]
    assert document.reports["discriminator"].output_shape == (1,)
    # The example's classifier cannot turn noise into images: a DCGAN-style generator replaces it.
    assert project.model.layers[-1].type == "Tanh"
    assert document.reports["model"].input_shape == (64,)
    assert document.reports["model"].output_shape == (1, 28, 28)
    assert project.training.optimizer.params == {"lr": 0.0002, "betas": [0.5, 0.999]}  # DCGAN's
    assert project.problems() == []
    message = window.statusBar().currentMessage()
    assert "added a discriminator" in message and "BCEWithLogitsLoss" in message and "new DCGAN-style generator" in message
    # The window shows what a GAN uses: the discriminator's optimizer, no schedule.
    setup = window.setup
    assert setup.discriminator_optimizer.isVisibleTo(setup) and not setup.scheduler.isVisibleTo(setup)
    assert setup.discriminator_optimizer.combo.currentData() == "Adam"  # DCGAN's default, shown
    assert setup.optimizer.title() == "Generator optimizer"
    # One step back restores the project exactly.
    assert document.undo_stack.count() == 1
    window.undo_action.trigger()
    assert document.project == before
    assert spec.dumps(document.project) == spec.dumps(before)
    assert window.setup.task.combo.currentData() is None
    assert not setup.discriminator_optimizer.isVisibleTo(setup)


def test_reconstruction_keeps_the_model_and_sets_a_loss_that_fits(window):
    document = window.document
    model = copy.deepcopy(document.project.model)
    choose(window, "reconstruction")
    assert document.project.task_type == "reconstruction"
    assert document.project.training.loss.type == "MSELoss"
    assert document.project.model == model
    assert document.project.discriminator is None
    assert "MSELoss" in window.statusBar().currentMessage()
    assert window.setup.task.form.isVisibleTo(window.setup)
    # From a GAN, its BCEWithLogitsLoss (which reconstruction could use) gives way to MSELoss too.
    choose(window, "gan")
    choose(window, "reconstruction")
    assert document.project.training.loss.type == "MSELoss"
    assert document.project.discriminator is None


def test_text_generation_takes_the_text_dataset_and_a_character_model(window):
    document = window.document
    choose(window, "text_generation")
    project = document.project
    assert project.data.dataset == "text"
    assert project.model.layers[0].type == "Embedding"
    assert project.training.loss.type == "CrossEntropyLoss"
    assert project.problems() == []
    # Back to the labels: no task in the file, and one undo step each.
    choose(window, None)
    assert document.project.task is None
    window.undo_action.trigger()
    assert document.project.task_type == "text_generation"


def test_a_value_typed_in_the_task_form_reaches_the_project_only_when_valid(window, qtbot):
    document = window.document
    window.show_tab("train")
    choose(window, "gan")
    form = window.setup.task.form
    noise = form.editor("noise_dim")
    assert isinstance(noise, QSpinBox)
    noise.setValue(100)
    assert document.project.task.params["noise_dim"] == 100
    assert document.reports["model"].input_shape == (100,)  # the generator takes the new noise
    assert document.undo_stack.undoText() == "Set task noise_dim"
    # A typed value: applied on Enter when valid; refused, with the reason, when not.
    choose(window, "text_generation")
    temperature = form.editor("temperature")
    assert isinstance(temperature, QLineEdit)
    temperature.setFocus()
    temperature.selectAll()
    qtbot.keyClicks(temperature, "0")  # must be above 0
    qtbot.keyClick(temperature, Qt.Key.Key_Return)
    assert document.project.task_params()["temperature"] == 0.8
    reason = form.note("temperature").text()
    assert reason and document.field_problems() == {"task.params.temperature": reason}
    assert not window.train_action.isEnabled()
    temperature.selectAll()
    qtbot.keyClicks(temperature, "1.5")
    qtbot.keyClick(temperature, Qt.Key.Key_Return)
    assert document.project.task.params["temperature"] == 1.5
    assert document.field_problems() == {}


def test_the_code_layer_is_picked_from_the_model_s_layers(window):
    document = window.document
    choose(window, "reconstruction")
    combo = window.setup.task.code_layer
    assert window.setup.task.code_row.isVisibleTo(window.setup)
    with_form = [window.setup.task.form.entry.param_names]
    assert "code_layer" not in with_form[0]  # the list replaces the form's text field
    # The model's layers but the last (the code comes before the decoder), with their shapes.
    assert combo.count() == 1 + len(document.project.model.layers) - 1
    assert combo.itemText(5).startswith("#4 Linear(128)") and "128" in combo.itemText(5)
    combo.activated.emit(5)
    assert document.project.model.layers[4].id == "linear_1"
    assert document.project.task.params["code_layer"] == "linear_1"
    assert combo.currentIndex() == 5 and combo.currentText().startswith("#4 linear_1: ")
    table = window.stack.table
    assert table.data(table.index(5, 1)).endswith("· code")  # the table marks the bottleneck
    window.undo_action.trigger()  # one step: the id and the choice
    assert document.project.model.layers[4].id is None and "code_layer" not in document.project.task.params
    combo.activated.emit(5)
    combo.activated.emit(0)
    assert "code_layer" not in document.project.task.params


def test_the_discriminator_optimizer_is_edited_from_dcgan_s_default(window, qtbot):
    document = window.document
    window.show_tab("train")
    choose(window, "gan")
    assert document.project.training.discriminator_optimizer is None  # the default applies
    lr = window.setup.discriminator_optimizer.form.editor("lr")
    lr.setFocus()
    lr.selectAll()
    qtbot.keyClicks(lr, "-1")
    qtbot.keyClick(lr, Qt.Key.Key_Return)
    assert document.project.training.discriminator_optimizer is None
    assert "training.discriminator_optimizer.lr" in document.field_problems()
    lr.selectAll()
    qtbot.keyClicks(lr, "0.0001")
    qtbot.keyClick(lr, Qt.Key.Key_Return)
    assert document.project.training.discriminator_optimizer.to_dict() == {
        "type": "Adam", "params": {"lr": 0.0001, "betas": [0.5, 0.999]}}
    # A refused value left in the form when the task changes keeps nothing waiting.
    lr.selectAll()
    qtbot.keyClicks(lr, "-1")
    qtbot.keyClick(lr, Qt.Key.Key_Return)
    choose(window, None)
    assert document.field_problems() == {}


def test_data_loaded_for_labels_is_not_reused_for_a_gan(window):
    # A GAN's images are scaled to -1..1, the classifier's standardized: another key, another load.
    document = window.document
    labels_key = document.data_key()
    choose(window, "gan")
    gan_key = document.data_key()
    assert gan_key != labels_key and '"scaling": "symmetric"' in gan_key
    choose(window, "reconstruction")
    assert document.data_key() not in (labels_key, gan_key)
