"""Editing a layer's parameter (the properties form, Apply fix) leaves the
graph canvas where the user had it: the view's scroll position and the
nodes' places stay, so the next click lands on the node aimed at. Only an
edit of the graph's structure lays it out again."""

from PySide6.QtWidgets import QAbstractSlider

from guidl.qt.graph_canvas import OUTPUT_INDEX
from guidl.spec import Layer
from guidl.spec.graph import INPUT_INDEX


def tall_model(window):
    """A chain far taller than the canvas, so that it scrolls."""
    layers = []
    for _ in range(12):
        layers += [Layer("Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}), Layer("ReLU")]
    layers += [Layer("Flatten"), Layer("Linear", {"out_features": 10})]
    project = window.document.project
    project.model.layers = layers
    window.document.set_project(project, None)
    canvas = window.model_tab.canvas
    assert canvas.verticalScrollBar().maximum() > canvas.verticalScrollBar().minimum() + 200
    return canvas


def view_of(canvas):
    return (canvas.horizontalScrollBar().value(), canvas.verticalScrollBar().value())


def centres(canvas):
    nodes = [*canvas.by_index, canvas.node(INPUT_INDEX), canvas.node(OUTPUT_INDEX)]
    return [(node.sceneBoundingRect().center().x(), node.pos().y()) for node in nodes]


def test_a_parameter_edit_keeps_the_scroll_and_the_nodes(window, qtbot):
    canvas = tall_model(window)
    # The user picks layer 16 in the table: the canvas scrolls down to it.
    window.stack.select_layer(16)
    qtbot.wait(20)
    view, places = view_of(canvas), centres(canvas)
    sizes = [(node.width, node.height, node.pos()) for node in canvas.by_index]
    assert view[1] > canvas.verticalScrollBar().minimum() + 100
    width = canvas.node(16).width
    # What the properties form does when a value is entered: 8 -> 256 channels
    # widens this node and the next (its parameter count), as a real edit does.
    window.edits.set_param(16, "out_channels", 256)
    qtbot.wait(20)
    assert canvas.node(16).width > width
    assert view_of(canvas) == view
    assert centres(canvas) == places
    # A node whose size stayed is exactly where it was; one that grew, around its centre.
    kept = [(n.pos(), pos) for n, (w, h, pos) in zip(canvas.by_index, sizes) if (n.width, n.height) == (w, h)]
    assert len(kept) >= len(sizes) - 3 and all(now == then for now, then in kept)
    # Undo (the node narrows again) keeps them too.
    window.document.undo_stack.undo()
    qtbot.wait(20)
    assert view_of(canvas) == view and centres(canvas) == places


def test_a_scroll_bar_moved_by_hand_stays_through_an_edit_and_a_fix(window, qtbot):
    canvas = tall_model(window)
    window.stack.select_layer(20)  # the form edits the selected layer
    bar = canvas.verticalScrollBar()
    for _ in range(6):
        bar.triggerAction(QAbstractSlider.SliderAction.SliderPageStepAdd)
    qtbot.wait(20)
    view, places = view_of(canvas), centres(canvas)
    window.edits.set_param(20, "out_channels", 512)
    qtbot.wait(20)
    assert view_of(canvas) == view and centres(canvas) == places
    # A problem (a band on the node, taller) and its one-click fix: the view stays through both.
    last = len(canvas.by_index) - 1
    window.edits.set_param(last, "out_features", 7)
    qtbot.wait(20)
    info = window.document.report.layers[last]
    assert info.error and info.fix_action is not None
    assert view_of(canvas) == view
    window.stack.select_layer(last)
    qtbot.wait(20)
    view = view_of(canvas)
    places = centres(canvas)
    window.model_tab.fix_button.click()
    qtbot.wait(20)
    assert window.document.project.model.layers[last].params["out_features"] == 10
    assert view_of(canvas) == view
    assert [y for _x, y in centres(canvas)] == [y for _x, y in places]


def test_a_structural_edit_still_lays_the_graph_out(window, qtbot):
    canvas = tall_model(window)
    window.stack.select_layer(10)
    below = canvas.node(11).pos().y()
    window.edits.insert("Dropout", 11)
    qtbot.wait(20)
    assert canvas.node(12).pos().y() > below  # the ReLU moved down under the new Dropout
    assert canvas.node(11).content.title.startswith("Dropout")
