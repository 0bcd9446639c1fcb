"""A value typed but not yet applied (no Enter, the focus still in its field)
is what Train (F5) and Save use; an invalid one keeps Train from starting."""

from PySide6.QtCore import Qt

from guidl import spec
from helpers import small_project


def _type(qtbot, editor, text: str) -> None:
    editor.setFocus()
    editor.selectAll()
    qtbot.keyClicks(editor, text)  # no Enter


def _f5(window, qtbot) -> None:
    window.activateWindow()
    qtbot.keyClick(window.focusWidget() or window, Qt.Key.Key_F5)


def test_f5_trains_with_a_layer_value_typed_but_not_applied(window, qtbot):
    window.document.set_project(small_project(training__epochs=1), None)
    window.stack.select_layer(3)  # Dropout(0.2)
    editor = window.layer_form.editor("p")
    _type(qtbot, editor, "0.4")
    assert window.document.project.model.layers[3].params == {"p": 0.2}
    _f5(window, qtbot)
    assert window.worker is not None, window.statusBar().currentMessage()
    assert window.worker.project.model.layers[3].params == {"p": 0.4}
    qtbot.waitUntil(lambda: window.thread is None, timeout=60_000)


def test_f5_trains_with_an_input_shape_typed_but_not_applied(window, qtbot):
    window.document.set_project(small_project(training__epochs=1), None)
    _type(qtbot, window.input_shape, "64")  # digits: 64 values, 1x8x8 by default
    assert window.document.project.model.input_shape is None
    _f5(window, qtbot)
    assert window.worker is not None, window.statusBar().currentMessage()
    assert window.worker.project.model.input_shape == [64]
    qtbot.waitUntil(lambda: window.thread is None, timeout=60_000)


def test_f5_refuses_an_invalid_value_typed_but_not_applied(window, qtbot):
    window.document.set_project(small_project(training__epochs=1), None)
    _type(qtbot, window.input_shape, "1, -8, 8")
    assert window.document.field_problems().keys() == {"model.input_shape"}
    assert not window.train_action.isEnabled()
    _f5(window, qtbot)
    assert window.worker is None and window.document.project.model.input_shape is None
    window.stack.select_layer(3)
    _type(qtbot, window.layer_form.editor("p"), "1.5")
    assert "layer 3 · p" in window.document.field_problems()


def test_save_writes_a_value_typed_but_not_applied(window, qtbot, tmp_path):
    path = tmp_path / "boring.guidl.json"
    window.document.set_project(small_project(), None)
    window.files.save_to(path)
    _type(qtbot, window.project_name, "Digits MLP")
    window.save_action.trigger()
    assert spec.load(path).name == "Digits MLP" and not window.document.modified


def test_save_says_an_invalid_value_was_not_saved(window, qtbot, tmp_path):
    path = tmp_path / "boring.guidl.json"
    window.document.set_project(small_project(), None)
    window.stack.select_layer(3)
    _type(qtbot, window.layer_form.editor("p"), "1.5")
    assert window.files.save_to(path)
    assert spec.load(path).model.layers[3].params == {"p": 0.2}  # the last valid value
    message = window.statusBar().currentMessage()
    assert "without the invalid value in layer 3 · p" in message, message


def test_turning_early_stopping_off_drops_a_refused_value_typed_in_it(window, qtbot):
    window.document.set_project(small_project(training__epochs=1), None)
    window.setup.early.setChecked(True)
    _type(qtbot, window.setup.early_form.editor("min_delta"), "-1")
    assert "training.early_stopping.min_delta" in window.document.field_problems()
    assert not window.train_action.isEnabled()
    window.setup.early.setChecked(False)
    assert window.document.field_problems() == {}
    assert window.document.project.training.early_stopping is None
    assert window.train_action.isEnabled(), window.train_action.toolTip()
    # Undone the same way: turned on, a refused value typed, and the turning on undone.
    window.setup.early.setChecked(True)
    _type(qtbot, window.setup.early_form.editor("min_delta"), "-1")
    window.undo_action.trigger()
    assert window.document.project.training.early_stopping is None
    assert window.document.field_problems() == {} and window.train_action.isEnabled()
