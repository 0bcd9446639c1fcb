"""Building a model in the window: palette, drops, the property editor,
undo/redo, reordering, and a layer marked when it does not fit."""

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QSpinBox

from guidl import spec
from guidl.examples import example_path
from guidl.qt.palette import palette_mime


def drop(window, name, row=-1):
    model = window.stack.table
    data = palette_mime(name)
    assert model.canDropMimeData(data, Qt.DropAction.CopyAction, row, 0, QModelIndex())
    assert model.dropMimeData(data, Qt.DropAction.CopyAction, row, 0, QModelIndex())


def set_spin(window, layer, name, value):
    window.stack.select_layer(layer)
    editor = window.layer_form.editor(name)
    assert isinstance(editor, QSpinBox)
    editor.setValue(value)


def test_build_the_two_block_cnn_from_an_empty_model(window):
    window.new_project()
    assert window.document.project.model.layers == []
    assert not window.train_action.isEnabled()
    assert "no layers" in window.train_action.toolTip()
    assert window.train_action.statusTip() == window.train_action.toolTip()  # said on hover too
    for name in ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]:
        drop(window, name)
    set_spin(window, 3, "out_channels", 64)
    set_spin(window, 7, "out_features", 10)
    report = window.document.report
    assert [layer.output_shape for layer in report.layers] == [
        (32, 26, 26), (32, 26, 26), (32, 13, 13), (64, 11, 11), (64, 11, 11), (64, 5, 5), (1600,), (10,)]
    assert report.total_params == 34_826
    assert "<b>Total params:</b> 34,826" in window.summary.text()
    assert window.stack.table.data(window.stack.table.index(9, 2)) == "(10,)"  # the output row
    assert window.train_action.isEnabled()
    # The last edit undoes and redoes as one step.
    window.undo_action.trigger()
    assert window.document.report.total_params == 1600 * 128 + 128 + 18_816
    assert window.document.project.model.layers[7].params["out_features"] == 128
    window.redo_action.trigger()
    assert window.document.report.total_params == 34_826
    assert window.isWindowModified()


def test_a_drop_lands_where_it_is_dropped_and_rows_can_be_dragged(window):
    drop(window, "Dropout", row=1)  # between the input row and layer 0
    layers = window.document.project.model.layers
    assert layers[0].type == "Dropout" and len(layers) == 8
    model = window.stack.table
    moved = model.mimeData([model.index(1, 0)])  # drag the Dropout row...
    assert model.dropMimeData(moved, Qt.DropAction.MoveAction, 5, 0, QModelIndex())  # ...below layer 3
    assert [layer.type for layer in window.document.project.model.layers][:5] == [
        "Conv2d", "ReLU", "MaxPool2d", "Dropout", "Flatten"]
    window.undo_action.trigger()
    assert window.document.project.model.layers[0].type == "Dropout"


def test_keyboard_actions_delete_duplicate_and_move(window, qtbot):
    window.stack.select_layer(1)
    window.duplicate_action.trigger()
    assert [l.type for l in window.document.project.model.layers][:3] == ["Conv2d", "ReLU", "ReLU"]
    assert window.stack.selected_layer() == 2
    window.down_action.trigger()
    assert [l.type for l in window.document.project.model.layers][:4] == ["Conv2d", "ReLU", "MaxPool2d", "ReLU"]
    assert window.stack.selected_layer() == 3
    window.up_action.trigger()
    assert window.stack.selected_layer() == 2
    window.stack.setFocus()
    qtbot.keyClick(window.stack, Qt.Key.Key_Delete)
    assert [l.type for l in window.document.project.model.layers][:3] == ["Conv2d", "ReLU", "MaxPool2d"]
    window.stack.select_layer(6)
    assert not window.down_action.isEnabled()
    window.document.undo_stack.setIndex(0)
    assert len(window.document.project.model.layers) == 7
    assert not window.isWindowModified()


def test_palette_search_and_activation_append_after_the_selection(window, qtbot):
    palette = window.palette_widget
    qtbot.keyClicks(palette.search, "batchnorm2")
    visible = [name for name, item in palette.items.items() if not item.isHidden()]
    assert visible == ["BatchNorm2d"]
    window.stack.select_layer(0)
    qtbot.keyClick(palette.search, Qt.Key.Key_Return)
    layers = window.document.project.model.layers
    assert layers[1].type == "BatchNorm2d"
    assert window.document.report.layers[1].params["num_features"] == 32
    assert window.stack.selected_layer() == 1


def test_an_invalid_stack_marks_the_layer_and_disables_train(window):
    window.stack.select_layer(3)
    window.delete_action.trigger()  # remove Flatten
    model = window.stack.table
    row = model.index(4, 1)  # layer 3 (Linear) now sits on table row 4
    assert model.data(row, Qt.ItemDataRole.BackgroundRole) is not None
    tooltip = model.data(row, Qt.ItemDataRole.ToolTipRole)
    assert "Layer 3 (Linear)" in tooltip and "insert Flatten before layer 3 (Linear)" in tooltip
    assert model.data(model.index(1, 1), Qt.ItemDataRole.BackgroundRole) is None
    assert not window.train_action.isEnabled()
    assert window.train_action.toolTip().startswith("Cannot train: fix the model first: model.layers[3]")
    window.stack.select_layer(3)
    assert window.layer_message.isVisibleTo(window) and "insert Flatten" in window.layer_message.text()
    window.undo_action.trigger()
    assert window.train_action.isEnabled()


def _type_kernel_size(window, qtbot, text: str):
    """Select the first layer and type ``text`` over its kernel_size."""
    window.stack.select_layer(0)
    editor = window.layer_form.editor("kernel_size")
    editor.setFocus()
    editor.selectAll()
    qtbot.keyClicks(editor, text)
    return editor


def test_the_property_editor_refuses_bad_text_in_place(window, qtbot):
    editor = _type_kernel_size(window, qtbot, "3, 0")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert "border" in editor.styleSheet()
    assert "positive integer" in window.layer_form.note("kernel_size").text()
    assert window.document.project.model.layers[0].params["kernel_size"] == 3
    editor.selectAll()
    qtbot.keyClicks(editor, "5, 3")
    assert window.document.project.model.layers[0].params["kernel_size"] == 3  # not applied yet
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert window.document.project.model.layers[0].params["kernel_size"] == [5, 3]
    assert window.document.report.layers[0].output_shape == (32, 24, 26)


def test_the_dark_theme_reaches_the_charts(window, qapp):
    from PySide6.QtGui import QPalette

    from guidl.qt.app import apply_theme

    try:
        apply_theme(qapp, "dark")
        qapp.processEvents()  # Qt posts the palette change to the widgets: the charts follow it
        assert qapp.palette().color(QPalette.ColorRole.Window).lightness() < 80
        background = window.charts.graphics.backgroundBrush().color()
        assert background.lightness() < 80
    finally:
        apply_theme(qapp, "light")
        qapp.processEvents()
    assert window.charts.graphics.backgroundBrush().color().lightness() > 200


def test_typing_is_not_rewritten_and_null_can_be_chosen(window, qtbot):
    editor = _type_kernel_size(window, qtbot, "3, ")
    assert editor.text() == "3, "  # parses as 3, but the user is still typing
    qtbot.keyClicks(editor, "5")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert window.document.project.model.layers[0].params["kernel_size"] == [3, 5]
    window.edits.insert("BatchNorm2d", 1)
    window.stack.select_layer(1)
    momentum = window.layer_form.editor("momentum")
    momentum.setFocus()
    momentum.selectAll()
    qtbot.keyClicks(momentum, "none")
    qtbot.keyClick(momentum, Qt.Key.Key_Return)
    assert window.document.project.model.layers[1].params == {"momentum": None}
    window.stack.select_layer(0)
    window.stack.select_layer(1)
    assert window.layer_form.editor("momentum").text() == "none"


def test_a_last_layer_that_does_not_fit_the_classes_is_shown_before_train(window):
    project = spec.load(example_path("moons_mlp"))
    project.model.layers[-1].params["out_features"] = 128  # two classes: needs 2
    window.document.set_project(project, None)
    model = window.stack.table
    row = model.index(5, 1)  # layer 4, the last Linear
    assert model.data(row, Qt.ItemDataRole.BackgroundRole) is not None
    assert "set out_features to 2" in model.data(row, Qt.ItemDataRole.ToolTipRole)
    assert not window.train_action.isEnabled()
    assert "set out_features to 2" in window.train_action.toolTip()
    window.stack.select_layer(4)
    assert "set out_features to 2" in window.layer_message.text()
    window.layer_form.editor("out_features").setValue(2)
    assert window.train_action.isEnabled()


def test_a_refused_layer_value_never_reaches_the_model_and_keeps_train_waiting(window, qtbot):
    window.edits.insert("Dropout", 5)
    window.stack.select_layer(5)
    editor = window.layer_form.editor("p")
    editor.setFocus()
    editor.selectAll()
    qtbot.keyClicks(editor, "1.5")  # "1" on the way is valid: it must not reach the model either
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert window.document.project.model.layers[5].params == {}
    assert window.stack.table.data(window.stack.table.index(6, 1)) == "Dropout(0.5)"
    assert "border" in editor.styleSheet() and not window.layer_form.note("p").isHidden()
    reason = window.layer_form.note("p").text()
    assert window.document.field_problems() == {"layer 5 · p": reason}
    assert not window.train_action.isEnabled()
    assert window.train_action.toolTip() == f"Cannot train: layer 5 · p: {reason}"
    editor.selectAll()
    qtbot.keyClicks(editor, "0.3")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert window.document.project.model.layers[5].params == {"p": 0.3}
    assert window.document.field_problems() == {} and window.train_action.isEnabled()
