""""Sweep this…": a numeric or choice field's context menu offers to sweep
the setting by its JSON path, beside the menu Qt gives the field, and calls
the window's sweeps controller with that path; text and list fields do not."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QTimer
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QHBoxLayout, QWidget

from guidl import spec
from guidl.examples import example_path
from guidl.qt.document import LayerEdits, ProjectDocument
from guidl.qt.model_tab import ModelTab
from guidl.qt.panels import TrainingSetup
from guidl.qt.sweep_this import SWEEP_TEXT


class Sweeps:
    """What the window's ``sweeps`` controller is to the fields: the paths asked for."""

    def __init__(self):
        self.opened: list[str] = []

    def open_dialog(self, path=None):
        self.opened.append(path)


@pytest.fixture
def host(qtbot):
    """The Model tab and the Train tab's set-up in a window that has a sweeps controller."""
    document = ProjectDocument()
    project = spec.load(example_path("moons_mlp"))
    document.set_project(project, None)
    window = QWidget()
    window.sweeps = Sweeps()
    qtbot.addWidget(window)
    window.setup = TrainingSetup(document)
    window.model_tab = ModelTab(document, LayerEdits(document), lambda: True)
    row = QHBoxLayout(window)
    row.addWidget(window.setup)
    row.addWidget(window.model_tab)
    window.document = document
    window.setup.sync()
    window.model_tab.sync()
    window.show()
    return window


def context_menu(qtbot, field, choose: bool = False) -> list[str]:
    """Right-click ``field``: the texts of the menu that opens (and trigger
    "Sweep this…" when ``choose``). A spin box's and a combo box's menus are
    modal (looked at from a timer); a line edit's is not."""
    seen: dict = {}

    def look() -> None:
        menu = QApplication.activePopupWidget()
        if menu is None or seen:
            return
        seen["texts"] = [action.text() for action in menu.actions() if not action.isSeparator()]
        sweep = next((a for a in menu.actions() if a.text() == SWEEP_TEXT), None)
        menu.close()
        if choose and sweep is not None:
            sweep.trigger()

    timer = QTimer()
    timer.timeout.connect(look)
    timer.start(10)
    target = field.lineEdit() if isinstance(field, QAbstractSpinBox) else field
    QApplication.sendEvent(target, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, QPoint(4, 4),
                                                     target.mapToGlobal(QPoint(4, 4))))
    qtbot.waitUntil(lambda: bool(seen), timeout=3000)
    timer.stop()
    return seen["texts"]


def test_a_layer_parameter_sweeps_by_its_json_path(qtbot, host):
    tab = host.model_tab
    tab.stack.select_layers([2])  # moons_mlp: Linear(16), ReLU, Linear(16), ReLU, Linear(2)
    tab.show_layer(2)
    field = tab.layer_form.editor("out_features")
    texts = context_menu(qtbot, field, choose=True)
    # Qt's own menu is all there, the entry last.
    assert "&Copy\tCtrl+C" in texts and "&Step up" in texts and texts[-1] == SWEEP_TEXT
    assert host.sweeps.opened == ["model.layers[2].params.out_features"]
    # The form follows the selection: another layer, another path.
    tab.stack.select_layers([0])
    tab.show_layer(0)
    context_menu(qtbot, tab.layer_form.editor("out_features"), choose=True)
    assert host.sweeps.opened[-1] == "model.layers[0].params.out_features"
    assert tab.layer_form.sweep_path("bias") == "model.layers[0].params.bias"  # a choice too
    assert tab.layer_form.sweep_path("in_features") is None  # inferred: not a setting


def test_training_settings_sweep_by_their_paths(qtbot, host):
    setup = host.setup
    lr = setup.optimizer.form.editor("lr")
    texts = context_menu(qtbot, lr, choose=True)
    assert "&Paste\tCtrl+V" in texts and texts[-1] == SWEEP_TEXT
    context_menu(qtbot, setup.batch_size, choose=True)
    assert context_menu(qtbot, setup.optimizer.combo, choose=True) == [SWEEP_TEXT]  # a combo box has no menu of its own
    assert host.sweeps.opened == ["training.optimizer.params.lr", "data.batch_size", "training.optimizer.type"]
    # A parameter the project leaves at its default is a path the sweep can set.
    assert setup.optimizer.form.sweep_path("weight_decay") == "training.optimizer.params.weight_decay"


def test_text_and_list_fields_and_windows_without_sweeps_have_no_entry(qtbot, host):
    setup = host.setup
    betas = setup.optimizer.form.editor("betas")  # Adam's betas: a list of two numbers
    texts = context_menu(qtbot, betas)
    assert "&Copy\tCtrl+C" in texts and SWEEP_TEXT not in texts
    assert setup.optimizer.form.sweep_path("betas") is None
    # No learning-rate schedule: nothing of it to sweep.
    assert setup.scheduler.form.sweep_path("step_size") is None
    assert host.sweeps.opened == []
    # A window without a sweeps controller (the block editor's dialog): Qt's menu alone.
    del host.sweeps
    texts = context_menu(qtbot, host.setup.epochs)
    assert "&Step up" in texts and SWEEP_TEXT not in texts


def test_a_discriminator_layer_is_named_by_its_network(qtbot):
    document = ProjectDocument()
    document.set_project(spec.load(example_path("dcgan_mnist")), None)
    tab = ModelTab(document, LayerEdits(document), lambda: True)
    qtbot.addWidget(tab)
    tab.sync()
    document.set_network("discriminator")
    index = next(i for i, layer in enumerate(document.model.layers) if layer.type == "Conv2d")
    tab.stack.select_layers([index])
    tab.show_layer(index)
    assert tab.layer_form.sweep_path("out_channels") == f"discriminator.layers[{index}].params.out_channels"
