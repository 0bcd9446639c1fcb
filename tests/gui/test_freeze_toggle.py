"""Freezing a layer from the window: one click on its row's Frozen cell, or
the canvas node's menu, is one undo step; the summary's frozen count follows
what the engine counts; the layer form refuses a learning-rate multiplier of 0."""

from PySide6.QtCore import Qt

from guidl import spec
from guidl.engine.build import analyze
from guidl.qt.model_stack import FROZEN_COLUMN


def _click_frozen_cell(window, qtbot, layer: int) -> None:
    stack = window.stack
    rect = stack.visualRect(stack.table.index(layer + 1, FROZEN_COLUMN))
    assert rect.isValid() and rect.width() > 0
    qtbot.mouseClick(stack.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def _engine_counts(window) -> tuple[int, int]:
    project = window.document.project
    report = analyze(project.model, window.document.input_shape_and_dtype()[0])
    return report.trainable_params, report.total_params - report.trainable_params


def test_one_click_on_a_rows_frozen_cell_freezes_it_and_undo_thaws_it(window, qtbot):
    document = window.document
    conv_params = document.report.layers[0].param_count  # Conv2d(1 -> 32, 3x3): 320
    assert conv_params == 320 and "frozen 0 ·" in window.summary.text()
    steps = document.undo_stack.index()
    _click_frozen_cell(window, qtbot, 0)
    assert document.project.model.layers[0].frozen
    assert document.undo_stack.index() == steps + 1
    table = window.stack.table
    assert table.data(table.index(1, FROZEN_COLUMN), Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    trainable, frozen = _engine_counts(window)
    assert frozen == conv_params and trainable == document.report.total_params - conv_params
    assert f"trainable {trainable:,} · frozen {frozen:,}" in window.summary.text()
    assert '"frozen": true' in spec.dumps(document.project)
    window.undo_action.trigger()
    assert not document.project.model.layers[0].frozen
    assert "frozen 0 ·" in window.summary.text()
    assert table.data(table.index(1, FROZEN_COLUMN), Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked


def test_the_canvas_node_menu_freezes_and_unfreezes(window):
    document, canvas = window.document, window.canvas
    node = canvas.by_index[4]  # the first Linear
    menu = canvas.menu_at(node.sceneBoundingRect().center())
    freeze = next(a for a in menu.actions() if a.text() == "Freeze")
    freeze.trigger()
    assert document.project.model.layers[4].frozen
    node = canvas.by_index[4]
    assert node.content.frozen
    linear = document.report.layers[4].param_count
    assert _engine_counts(window)[1] == linear
    menu = canvas.menu_at(node.sceneBoundingRect().center())
    assert [a.text() for a in menu.actions()].count("Unfreeze") == 1
    window.undo_action.trigger()
    assert not document.project.model.layers[4].frozen and not canvas.by_index[4].content.frozen
    # The convolution and the last Linear selected: one menu entry, one undo step for the two.
    canvas.follow_selection([0, 6])
    steps = document.undo_stack.index()
    menu = canvas.menu_at(canvas.by_index[6].sceneBoundingRect().center())
    next(a for a in menu.actions() if a.text() == "Freeze 2 Layers").trigger()
    assert [layer.frozen for layer in document.project.model.layers] == [True] + [False] * 5 + [True]
    assert document.undo_stack.index() == steps + 1
    assert _engine_counts(window)[1] == 320 + 1290


def test_one_click_on_a_nodes_snowflake_freezes_it_and_another_thaws_it(window, qtbot):
    document, canvas = window.document, window.canvas
    canvas.fit_to_view()
    qtbot.wait(50)

    def badge_point(index):
        node = canvas.by_index[index]
        return canvas.mapFromScene(node.frozen_button.sceneBoundingRect().center())

    node = canvas.by_index[4]
    assert not node.frozen_button.isVisible()
    qtbot.mouseMove(canvas.viewport(), canvas.mapFromScene(node.sceneBoundingRect().center()))
    qtbot.waitUntil(lambda: canvas.by_index[4].frozen_button.isVisible(), timeout=2000)  # offered under the mouse
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=badge_point(4))
    assert document.project.model.layers[4].frozen and canvas.by_index[4].content.frozen
    qtbot.mouseMove(canvas.viewport(), canvas.mapFromScene(canvas.by_index[6].sceneBoundingRect().center()))
    qtbot.waitUntil(lambda: not canvas.by_index[4].hovered, timeout=2000)
    assert canvas.by_index[4].frozen_button.isVisible()  # frozen: shown without the mouse
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=badge_point(4))
    assert not document.project.model.layers[4].frozen
    window.undo_action.trigger()
    assert document.project.model.layers[4].frozen


def test_a_blocks_layer_freezes_in_the_blocks_table(window):
    document = window.document
    window.edits.make_block([0, 1])  # Conv2d + ReLU become Block1, used once
    name = next(iter(document.project.model.blocks))
    from guidl.qt.model_stack import LayerTableModel

    table = LayerTableModel(document, block=name)
    table.toggle_frozen(0)
    assert document.project.model.blocks[name].layers[0].frozen
    assert document.project.to_dict()["model"]["blocks"][name]["layers"][0]["frozen"] is True
    assert _engine_counts(window)[1] == 320  # every use of the block: its conv is frozen
    window.undo_action.trigger()
    assert not document.project.model.blocks[name].layers[0].frozen


def test_the_layer_form_refuses_a_zero_multiplier_and_takes_a_tenth(window, qtbot):
    document = window.document
    window.stack.select_layer(0)
    field = window.model_tab.wiring.lr_field
    field.edit.setFocus()
    field.edit.selectAll()
    qtbot.keyClicks(field.edit, "0")
    field.edit.editingFinished.emit()
    assert document.project.model.layers[0].lr_multiplier == 1.0
    assert "freeze" in field.note.text() and not field.note.isHidden()
    assert any("lr_multiplier" in key for key in document.field_problems())
    assert not window.train_action.isEnabled()
    field.edit.selectAll()
    qtbot.keyClicks(field.edit, "0.1")
    document.commit_edits()  # what Train does before it reads the project
    assert document.project.model.layers[0].lr_multiplier == 0.1
    assert not any("lr_multiplier" in key for key in document.field_problems())
    window.model_tab.wiring.frozen.click()
    assert document.project.model.layers[0].frozen
    assert window.stack.table.data(window.stack.table.index(1, FROZEN_COLUMN)) == "lr ×0.1"
