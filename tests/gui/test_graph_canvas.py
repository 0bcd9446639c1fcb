"""The Model tab's graph canvas: nodes and wires follow the document (edits,
undo, redo), wiring and moving with the mouse are one undo step each, drops
from the palette land on wires, selection follows the layer table, problems
show on the node with a one-click fix, and the view zooms and fits."""

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication

from guidl import spec
from guidl.examples import example_path
from guidl.qt.document import LayerEdits
from guidl.qt.graph_canvas import OUTPUT_INDEX, READABLE_ZOOM, NodeItem, WireItem
from guidl.qt.palette import palette_mime
from guidl.spec import Layer
from guidl.spec.graph import INPUT_INDEX


def conv(out_channels=8, **extra):
    return {"out_channels": out_channels, "kernel_size": 3, "padding": 1, **extra}


def open_layers(window, layers):
    project = window.document.project
    project.model.layers = layers
    window.document.set_project(project, None)
    return window.model_tab.canvas


def residual(window, add_inputs=("conv2", "stem"), channels=8):
    return open_layers(window, [
        Layer("Conv2d", conv(8), id="stem"),
        Layer("ReLU"),
        Layer("Conv2d", conv(8), id="conv1"),
        Layer("ReLU"),
        Layer("Conv2d", conv(channels), id="conv2"),
        Layer("Add", {}, id="add", inputs=list(add_inputs)),
        Layer("Flatten"),
        Layer("Linear", {"out_features": 10}),
    ])


def view_point(canvas, scene_point: QPointF) -> QPoint:
    return canvas.mapFromScene(scene_point)


def node_centre(canvas, index) -> QPoint:
    return view_point(canvas, canvas.node(index).sceneBoundingRect().center())


def chain_pairs(count):
    return {(INPUT_INDEX, 0), *((i, i + 1) for i in range(count - 1)), (count - 1, OUTPUT_INDEX)}


def test_nodes_and_wires_follow_edits_undo_and_redo(window):
    canvas = window.model_tab.canvas
    layers = window.document.project.model.layers
    assert len(canvas.nodes) == len(layers) == 7
    assert canvas.wire_pairs() == chain_pairs(7)
    assert canvas.node(0).content.title == "Conv2d(32, 3)"
    assert canvas.node(0).content.detail == "(32, 26, 26) · 320 params"
    assert canvas.node(INPUT_INDEX).content.detail == "(1, 28, 28)"
    assert canvas.node(OUTPUT_INDEX).content.detail == "(10,)"
    window.edits.insert("Dropout", 4)
    assert len(canvas.nodes) == 8 and canvas.wire_pairs() == chain_pairs(8)
    assert canvas.node(4).content.title.startswith("Dropout")
    window.document.undo_stack.undo()
    assert len(canvas.nodes) == 7 and canvas.wire_pairs() == chain_pairs(7)
    assert [n.content.title for n in canvas.by_index][3:5] == ["Flatten", "Linear(128)"]
    window.document.undo_stack.redo()
    assert len(canvas.nodes) == 8
    # Nodes hold no stale items: every node and wire in the scene is one the canvas keeps.
    items = canvas.scene().items()
    assert sum(isinstance(i, NodeItem) for i in items) == 8 + 2
    assert sum(isinstance(i, WireItem) for i in items) == len(canvas.wires) == 9


def test_an_edit_updates_the_node_in_place(window):
    canvas = residual(window)
    stem = canvas.node(0)
    window.edits.set_param(0, "out_channels", 16)
    assert canvas.node(0) is stem  # kept by its id, not rebuilt
    assert stem.content.title == "stem: Conv2d(16, 3)"
    assert stem.content.detail.startswith("(16, 28, 28)")


def test_a_residual_shows_its_skip_beside_a_straight_column(window):
    canvas = residual(window)
    assert (0, 5) in canvas.wire_pairs() and (4, 5) in canvas.wire_pairs()
    centres = {round(canvas.node(i).sceneBoundingRect().center().x()) for i in range(8)}
    assert len(centres) == 1
    skip = canvas.wire(0, 5).path().boundingRect()
    assert skip.right() > canvas.node(2).sceneBoundingRect().right()  # routed beside the column
    assert canvas.node(5).content.level == ""


def test_dragging_from_an_output_port_to_a_node_wires_it_in_one_undo_step(window, qtbot):
    canvas = residual(window, add_inputs=("conv2",))  # an Add with one input: a problem
    add = canvas.node(5)
    assert add.content.level == "error"
    steps = window.document.undo_stack.count()
    port = view_point(canvas, canvas.node(0).output_port())
    qtbot.mousePress(canvas.viewport(), Qt.MouseButton.LeftButton, pos=port)
    qtbot.mouseMove(canvas.viewport(), node_centre(canvas, 3))
    qtbot.mouseMove(canvas.viewport(), node_centre(canvas, 5))
    qtbot.mouseRelease(canvas.viewport(), Qt.MouseButton.LeftButton, pos=node_centre(canvas, 5))
    assert window.document.project.model.layers[5].inputs == ["conv2", "stem"]
    assert (0, 5) in canvas.wire_pairs()
    assert canvas.node(5).content.level == ""
    assert window.document.undo_stack.count() == steps + 1
    window.show_tab("model")
    canvas.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.document.project.model.layers[5].inputs == ["conv2"]
    assert (0, 5) not in canvas.wire_pairs()


def test_a_wire_dropped_on_empty_canvas_changes_nothing(window):
    canvas = window.model_tab.canvas
    canvas.begin_wire(canvas.node(0))
    assert not canvas.end_wire(QPointF(5000, 5000))
    assert window.document.undo_stack.count() == 0
    assert not any(type(i).__name__ == "QGraphicsPathItem" for i in canvas.scene().items())


def test_moving_a_node_is_one_undo_step_without_analysis(window, qtbot):
    canvas = window.model_tab.canvas
    analyses = []
    window.document.report_changed.connect(lambda: analyses.append(1))
    before = canvas.node(2).pos()
    start = node_centre(canvas, 2)
    qtbot.mousePress(canvas.viewport(), Qt.MouseButton.LeftButton, pos=start)
    for step in range(1, 6):
        qtbot.mouseMove(canvas.viewport(), start + QPoint(30 * step, 5 * step))
    qtbot.mouseRelease(canvas.viewport(), Qt.MouseButton.LeftButton, pos=start + QPoint(150, 25))
    layer = window.document.project.model.layers[2]
    assert layer.position is not None
    assert canvas.node(2).pos().x() > before.x() + 50  # stays where it was dropped
    assert tuple(layer.position) == (canvas.node(2).pos().x(), canvas.node(2).pos().y())
    assert window.document.undo_stack.count() == 1
    assert analyses == []
    # The wires into and out of it followed it.
    assert canvas.wire(1, 2).path().elementAt(canvas.wire(1, 2).path().elementCount() - 1).x == \
        canvas.node(2).input_port().x()
    window.document.undo_stack.undo()
    assert window.document.project.model.layers[2].position is None
    assert canvas.node(2).pos() == before
    # Tidy up forgets positions.
    window.edits.set_positions({1: (400.0, 50.0)})
    canvas.tidy_action.trigger()
    assert all(layer.position is None for layer in window.document.project.model.layers)


def test_delete_removes_the_selected_wire(window, qtbot):
    canvas = residual(window)
    LayerEdits(window.document).connect(1, 5)  # the Add merges three: one wire may go
    skip = canvas.wire(0, 5)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton,
                     pos=view_point(canvas, skip.path().pointAtPercent(0.5)))
    assert canvas.selected_wires() == [skip] and canvas.selected_layers() == []
    assert window.delete_wire_action.isEnabled()  # the Model menu follows the canvas
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert (0, 5) not in canvas.wire_pairs()
    assert "stem" not in (window.document.project.model.layers[5].inputs or [])
    window.document.undo_stack.undo()
    assert (0, 5) in canvas.wire_pairs()


def test_delete_removes_selected_nodes_as_one_step(window, qtbot):
    canvas = window.model_tab.canvas
    canvas.select_layers([1, 2])
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert [layer.type for layer in window.document.project.model.layers][:2] == ["Conv2d", "Flatten"]
    assert canvas.wire_pairs() == chain_pairs(5)
    window.document.undo_stack.undo()
    assert len(window.document.project.model.layers) == 7


def _drop(canvas, name, scene_point):
    data = palette_mime(name)  # the event does not own it: kept alive here
    event = QDropEvent(QPointF(view_point(canvas, scene_point)), Qt.DropAction.CopyAction,
                       data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    canvas.dropEvent(event)
    return event


def test_a_layer_dropped_from_the_palette_onto_a_wire_goes_on_that_wire(window):
    canvas = residual(window)
    skip = canvas.wire(0, 5)
    middle = skip.path().pointAtPercent(0.5)
    assert canvas.node(3).sceneBoundingRect().contains(middle) is False
    event = _drop(canvas, "BatchNorm2d", middle)
    assert event.isAccepted()
    layers = window.document.project.model.layers
    assert len(layers) == 9
    new = next(i for i, layer in enumerate(layers) if layer.type == "BatchNorm2d")
    add = next(i for i, layer in enumerate(layers) if layer.type == "Add")
    assert (0, new) in canvas.wire_pairs() and (new, add) in canvas.wire_pairs()
    assert (0, add) not in canvas.wire_pairs()
    assert window.document.undo_stack.count() == 1


def test_a_layer_dropped_on_empty_canvas_goes_after_the_selection(window):
    canvas = window.model_tab.canvas
    canvas.select_layers([2])
    _drop(canvas, "Dropout", QPointF(3000, 3000))
    assert window.document.project.model.layers[3].type == "Dropout"
    canvas.scene().clearSelection()
    _drop(canvas, "Softmax", QPointF(3000, 3000))
    assert window.document.project.model.layers[-1].type == "Softmax"


def test_selection_follows_the_table_and_the_table_follows_the_canvas(window, qtbot):
    canvas = window.model_tab.canvas
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=node_centre(canvas, 4))
    assert canvas.selected_layers() == [4]
    assert window.stack.selected_layer() == 4
    assert window.properties.title() == "Layer 4: Linear"
    window.stack.select_layer(2)
    assert canvas.selected_layers() == [2]
    # Ctrl+click adds to the selection, and the table shows both rows selected.
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier,
                     node_centre(canvas, 5))
    assert canvas.selected_layers() == [2, 5]
    assert window.stack.selected_layers() == [2, 5] and window.stack.selected_layer() == -1
    # An edit selects the layer it edited, in both views alike.
    window.edits.set_param(5 - 1, "out_features", 64)
    assert window.document.project.model.layers[4].params["out_features"] == 64
    assert canvas.selected_layers() == window.stack.selected_layers() == [4]
    # Several rows selected in the table: the same nodes on the canvas.
    window.stack.select_layers([0, 3, 4])
    assert canvas.selected_layers() == [0, 3, 4]
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier,
                     node_centre(canvas, 3))  # Ctrl+click again: that one leaves both
    assert canvas.selected_layers() == [0, 4] and window.stack.selected_layers() == [0, 4]
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    assert canvas.selected_layers() == []
    assert window.stack.selected_layer() == -1


def test_a_rubber_band_selects_several_nodes(window, qtbot):
    canvas = window.model_tab.canvas
    top = canvas.node(1).sceneBoundingRect()
    bottom = canvas.node(3).sceneBoundingRect()
    start = view_point(canvas, QPointF(top.left() - 60, top.top() + 5))
    end = view_point(canvas, QPointF(bottom.right() + 60, bottom.bottom() - 5))
    qtbot.mousePress(canvas.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(canvas.viewport(), (start + end) / 2)
    qtbot.mouseMove(canvas.viewport(), end)
    qtbot.mouseRelease(canvas.viewport(), Qt.MouseButton.LeftButton, pos=end)
    assert canvas.selected_layers() == [1, 2, 3]


def test_a_problem_shows_red_on_the_node_and_its_fix_applies_with_one_click(window, qtbot):
    canvas = residual(window, channels=16)  # the shortcut has 8 channels, the main path 16
    add = canvas.node(5)
    assert add.content.level == "error"
    assert "8" in add.content.problem and "16" in add.content.problem
    assert add.toolTip() == add.content.problem
    assert add.fix_button is not None and add.fix_button.isVisible()
    steps = window.document.undo_stack.count()
    button = view_point(canvas, add.fix_button.sceneBoundingRect().center())
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=button)
    layers = window.document.project.model.layers
    assert window.document.undo_stack.count() == steps + 1
    assert len(layers) == 9 and window.document.report.ok
    fixed = next(node for node in canvas.by_index if node.content.title.startswith("add: Add"))
    assert fixed.content.level == "" and not fixed.fix_button.isVisible()
    window.document.undo_stack.undo()
    assert canvas.node(5).content.level == "error"


def test_an_unused_output_is_amber(window):
    canvas = open_layers(window, [
        Layer("Flatten", id="flat"),
        Layer("Linear", {"out_features": 4}, id="unused"),
        Layer("Linear", {"out_features": 10}, inputs=["flat"]),
    ])
    assert canvas.node(1).content.level == "warning"
    assert canvas.node(2).content.level == ""
    assert canvas.wire_pairs() == {(INPUT_INDEX, 0), (0, 1), (0, 2), (2, OUTPUT_INDEX)}


def test_zoom_and_fit_change_the_view(window, qtbot):
    canvas = open_layers(window, [Layer("Flatten")] + [
        Layer("Linear", {"out_features": 16}) if i % 2 == 0 else Layer("ReLU") for i in range(59)])
    canvas.fit_to_view()
    fitted = canvas.zoom()
    # Sixty nodes do not fit readably: Fit to View stops at a legible zoom, and scrolls.
    assert fitted == pytest.approx(READABLE_ZOOM)
    assert canvas.graph_rect().height() * fitted > canvas.viewport().height()
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom() > fitted
    assert canvas.overview.isVisible()  # bigger than the view: the overview shows
    qtbot.keyClick(canvas, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(canvas, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom() < fitted
    canvas.fit_action.trigger()
    assert abs(canvas.zoom() - fitted) < 1e-6
    # A click on the overview moves the view there.
    canvas.zoom_by(3)
    top = canvas.visible_rect().center().y()
    overview = canvas.overview
    bottom = overview.mapFromScene(canvas.node(50).sceneBoundingRect().center())
    qtbot.mouseClick(overview.viewport(), Qt.MouseButton.LeftButton, pos=bottom)
    assert canvas.visible_rect().center().y() > top + 200


def test_the_context_menu_offers_the_graph_commands(window):
    canvas = window.model_tab.canvas
    menu = canvas.menu_at(canvas.node(2).sceneBoundingRect().center())
    texts = [a.text() for a in menu.actions() if a.text()]
    assert texts[:2] == ["Delete", "Duplicate"]
    for text in ("Add Skip Connection", "Wrap in Residual Block", "Make Block from Selection…", "Copy"):
        assert text in texts
    assert canvas.selected_layers() == [2]
    next(a for a in menu.actions() if a.text() == "Add Skip Connection").trigger()
    layers = window.document.project.model.layers
    assert any(layer.type == "Add" for layer in layers)
    wire_menu = canvas.menu_at(canvas.wire(0, 1).path().pointAtPercent(0.5))
    assert [a.text() for a in wire_menu.actions()][:2] == ["Delete Wire", "Insert Layer Here"]


def test_copy_and_paste_through_the_clipboard(window, qtbot):
    canvas = window.model_tab.canvas
    canvas.select_layers([0, 1])
    canvas.copy_action.trigger()
    assert "Conv2d" in QApplication.clipboard().text()
    canvas.select_layers([6])
    canvas.paste_action.trigger()
    assert [layer.type for layer in window.document.project.model.layers][7:] == ["Conv2d", "ReLU"]
    assert window.document.undo_stack.count() == 1


def test_the_canvas_follows_the_theme(window, qapp):
    from guidl.qt.theme import dark_palette

    canvas = window.model_tab.canvas
    light = canvas.scene().colors.background
    old = qapp.palette()
    try:
        qapp.setPalette(dark_palette())
        qapp.processEvents()
        assert canvas.scene().colors.background.name() == "#16191d"
        assert canvas.scene().colors.text.name() == "#e5e7eb"
    finally:
        qapp.setPalette(old)
        qapp.processEvents()
    assert canvas.scene().colors.background == light


def test_a_block_use_shows_its_repeat(window, qtbot):
    project = window.document.project
    text = spec.dumps(project)
    doc = __import__("json").loads(text)
    doc["model"]["blocks"] = {"Pair": {"params": [{"name": "width", "kind": "int", "default": 8, "minimum": 1}],
                                       "layers": [{"type": "Linear", "params": {"out_features": "$width"}},
                                                  {"type": "ReLU"}]}}
    doc["model"]["layers"] = [{"type": "Flatten"}, {"type": "Pair", "params": {"width": 16}, "repeat": 2},
                              {"type": "Linear", "params": {"out_features": 10}}]
    doc["version"] = 2
    window.document.set_project(spec.Project.from_dict(doc), None)
    canvas = window.model_tab.canvas
    assert canvas.node(1).content.title == "Pair(16) ×2"
    assert canvas.node(1).content.block and not canvas.node(0).content.block
    menu = canvas.menu_at(canvas.node(1).sceneBoundingRect().center())
    assert "Expand Block" in [a.text() for a in menu.actions()]
    activated = []
    canvas.layer_activated.connect(activated.append)
    canvas.scene().clearSelection()
    canvas.ensureVisible(canvas.node(1))
    qtbot.mouseDClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=node_centre(canvas, 1))
    assert activated == [1]
    editor = window.block_editors.editors.get("Pair")  # the window opens the block's definition
    assert editor is not None and editor.isVisible()
    editor.close()


def test_mime_from_another_program_is_refused(window):
    canvas = window.model_tab.canvas
    data = QMimeData()
    data.setText("Conv2d")
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    canvas.dropEvent(event)
    assert window.document.undo_stack.count() == 0


def test_ctrl_wheel_zooms_and_a_middle_drag_pans(window, qtbot):
    from PySide6.QtGui import QWheelEvent

    canvas = open_layers(window, [Layer("Flatten")] + [Layer("ReLU") for _ in range(40)])
    canvas.resetTransform()
    centre = QPointF(canvas.viewport().rect().center())

    def wheel(modifiers):
        event = QWheelEvent(centre, QPointF(canvas.viewport().mapToGlobal(centre.toPoint())), QPoint(0, 0),
                            QPoint(0, 240), Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase,
                            False)
        QApplication.sendEvent(canvas.viewport(), event)

    wheel(Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom() > 1.3
    zoom, scroll = canvas.zoom(), canvas.verticalScrollBar().value()
    wheel(Qt.KeyboardModifier.NoModifier)  # a plain wheel scrolls
    assert canvas.zoom() == zoom and canvas.verticalScrollBar().value() != scroll
    scroll = canvas.verticalScrollBar().value()
    start = canvas.viewport().rect().center()
    qtbot.mousePress(canvas.viewport(), Qt.MouseButton.MiddleButton, pos=start)
    qtbot.mouseMove(canvas.viewport(), start + QPoint(0, -120))
    qtbot.mouseRelease(canvas.viewport(), Qt.MouseButton.MiddleButton, pos=start + QPoint(0, -120))
    assert canvas.verticalScrollBar().value() == scroll + 120
    assert window.document.undo_stack.count() == 0  # panning moved no node


def test_a_duplicate_id_still_gets_a_node_of_its_own_marked_red(window):
    canvas = open_layers(window, [Layer("Flatten", id="same"), Layer("ReLU", id="same"),
                                  Layer("Linear", {"out_features": 10})])
    assert len({id(canvas.node(i)) for i in range(3)}) == 3
    assert canvas.node(1).content.level == "error"
    assert "already the id" in canvas.node(1).content.problem
    window.edits.rename_id(1, "other")
    assert len(canvas.nodes) == 3 and canvas.node(1).content.level == ""


def test_blocks_from_the_canvas_make_and_expand(window):
    canvas = window.model_tab.canvas
    canvas.select_layers([1, 2])
    canvas.make_block([1, 2], "Pair")
    model = window.document.project.model
    assert "Pair" in model.blocks and len(model.layers) == 6
    use = next(i for i, layer in enumerate(model.layers) if layer.type == "Pair")
    assert canvas.node(use).content.block
    menu = canvas.menu_at(canvas.node(use).sceneBoundingRect().center())
    next(a for a in menu.actions() if a.text() == "Expand Block").trigger()
    assert [layer.type for layer in window.document.project.model.layers][:3] == ["Conv2d", "ReLU", "MaxPool2d"]
    assert len(canvas.nodes) == 7


def test_insert_layer_here_from_a_wire_menu(window):
    canvas = window.model_tab.canvas
    menu = canvas.menu_at(canvas.wire(1, 2).path().pointAtPercent(0.5))
    insert = next(a for a in menu.actions() if a.text() == "Insert Layer Here").menu()
    core = next(a for a in insert.actions() if a.text() == "Core").menu()
    next(a for a in core.actions() if a.text() == "Dropout").trigger()
    assert [layer.type for layer in window.document.project.model.layers][1:4] == ["ReLU", "Dropout", "MaxPool2d"]
    assert window.document.undo_stack.count() == 1


def test_a_new_project_drops_the_old_selection(window, qtbot):
    """A node selected on the canvas, then New: no traceback from the
    actions (which asked for the old index) and nothing selected; Open
    after a selection in the table selects nothing either."""
    path = example_path("resnet_mnist")
    assert window.files.open_path(path, ask=False)
    canvas = window.model_tab.canvas
    canvas.setFocus()
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=node_centre(canvas, 5))
    assert canvas.selected_layers() == [5] and window.stack.selected_layers() == [5]
    window.files.new_project()  # an empty model: index 5 is no layer of it
    assert window.document.project.model.layers == []
    assert canvas.selected_layers() == [] and window.stack.selected_layers() == []
    assert window.graph_edits.selection() == [] and not window.graph_edits.is_block_use()
    window.files.new_project("mnist_cnn")
    window.stack.select_layer(2)
    assert canvas.selected_layers() == [2]
    assert window.files.open_path(path, ask=False)
    assert canvas.selected_layers() == [] and window.stack.selected_layers() == []


def test_the_stale_selection_of_a_view_is_no_error(window):
    """Whatever a view still holds, the window's commands see only real layers."""
    canvas = window.model_tab.canvas
    canvas.select_layers([5])
    canvas.setFocus()
    window.document.project.model.layers = window.document.project.model.layers[:2]  # as a replaced project
    assert all(index < 2 for index in window.graph_edits.selection())
    assert window.graph_edits.is_block_use() is False


def test_a_fix_clicked_while_a_node_is_selected_stores_no_position(window, qtbot):
    """The layout moves the selected node while the Fix button is pressed:
    that is not the user's drag, so the node keeps no position and the next
    edits lay it out afresh (it never ends up on top of another, or below
    the output)."""
    canvas = residual(window, channels=16)  # the shortcut needs a 1x1 Conv2d: a Fix
    assert canvas.node(5).content.fix
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=node_centre(canvas, 7))
    assert canvas.selected_layers() == [7]
    button = canvas.node(5).fix_button
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton,
                     pos=view_point(canvas, button.sceneBoundingRect().center()))
    layers = window.document.project.model.layers
    assert len(layers) == 9 and window.document.undo_stack.count() == 1  # the fix, and no "Move node"
    assert all(layer.position is None for layer in layers)
    assert_fresh_layout(canvas)
    # Deleting a layer of the chain: what is left closes up, the output stays last.
    window.edits.remove(7)  # Flatten
    assert_fresh_layout(canvas)
    assert canvas.node(OUTPUT_INDEX).pos().y() > canvas.node(7).pos().y()


def assert_fresh_layout(canvas):
    """Every node is where a layered layout of the graph puts it, and no two overlap."""
    from guidl.qt.graph_layout import layered_layout, output_node
    from guidl.spec.graph import resolve_inputs

    layers = canvas.document.project.model.layers
    inputs = [list(s) for s in resolve_inputs(layers).inputs]
    count = len(layers)
    nodes = {**{i: canvas.node(i) for i in range(count)}, INPUT_INDEX: canvas.node(INPUT_INDEX),
             output_node(count): canvas.node(OUTPUT_INDEX)}
    sizes = {number: (node.width, node.height) for number, node in nodes.items()}
    fresh = layered_layout(inputs, sizes)
    for number, node in nodes.items():
        assert (node.pos().x(), node.pos().y()) == fresh.positions[number], number
    boxes = [node.sceneBoundingRect().adjusted(4, 8, -4, -8) for node in nodes.values()]
    assert not any(a.intersects(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_make_block_and_delete_lay_the_graph_out_afresh(window):
    canvas = window.model_tab.canvas  # mnist_cnn: a chain of 7
    canvas.make_block([1, 2, 3], "Trio")
    assert_fresh_layout(canvas)
    window.edits.remove(len(window.document.project.model.layers) - 2)
    assert_fresh_layout(canvas)
    window.document.undo_stack.undo()
    window.document.undo_stack.undo()
    assert_fresh_layout(canvas)


def test_node_text_is_at_least_the_application_font_and_fits_the_node(window, qapp):
    from PySide6.QtGui import QFont, QFontMetricsF

    from guidl.qt.graph_canvas import NodeText

    canvas = window.model_tab.canvas
    app_font = QApplication.font()
    fonts = NodeText.current()
    assert fonts.plain.pointSizeF() >= app_font.pointSizeF()
    assert fonts.title.pointSizeF() > app_font.pointSizeF() and fonts.title.bold()
    node = canvas.node(0)
    assert node.height >= fonts.title_metrics.height() + fonts.plain_metrics.height() + 8
    # A larger application font makes taller nodes (the text never overflows them).
    big = QFont(app_font)
    big.setPointSizeF(app_font.pointSizeF() * 2)
    qapp.setFont(big)
    try:
        larger = NodeText.current()
        assert larger.node_height > fonts.node_height
        assert larger.node_height >= QFontMetricsF(larger.title).height() + QFontMetricsF(big).height() + 8
    finally:
        qapp.setFont(app_font)


def test_the_graph_has_most_of_the_model_tab_height(window, qtbot):
    window.resize(1400, 900)
    qtbot.wait(10)
    graph, table = window.model_tab.views.sizes()
    assert graph >= 3 * table and table > 0
