"""Forms: a typed value reaches the document only when it is valid and the
user is done with it; a refused one stays in its field with the reason and
keeps Train waiting; an unfocused spin box or combo box leaves the mouse
wheel to the scroll area."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QScrollArea

from guidl import spec
from guidl.examples import example_path
from guidl.qt.document import LayerEdits, ProjectDocument
from guidl.qt.panels import TrainingSetup
from guidl.qt.param_form import ParamForm
from guidl.registry import LAYERS
from qt_helpers import type_text


@pytest.fixture
def document(qtbot):
    document = ProjectDocument()
    project = spec.load(example_path("moons_mlp"))
    project.model.layers.insert(1, spec.Layer("Dropout", {}))  # layer 1: Dropout(0.5)
    document.set_project(project, None)
    return document


@pytest.fixture
def layer_form(qtbot, document):
    """The Model tab's property form for layer 1, wired as the window wires it."""
    form = ParamForm()
    qtbot.addWidget(form)
    form.bind(document, lambda: "layer 1 · ")
    edits = LayerEdits(document)
    form.param_changed.connect(lambda name, value: edits.set_param(1, name, value))
    document.changed.connect(
        lambda: form.set_entry(LAYERS.get("Dropout"), document.project.model.layers[1].params))
    form.set_entry(LAYERS.get("Dropout"), {})
    form.show()
    return form


def test_a_refused_value_stays_in_its_field_and_never_reaches_the_document(qtbot, document, layer_form):
    editor = layer_form.editor("p")
    type_text(qtbot, editor, "1.5")  # typing "1" on the way is valid: it must not be applied either
    assert document.project.model.layers[1].params == {}  # p keeps its last valid value (0.5)
    assert document.report.layers[1].label == "Dropout(0.5)"
    assert not document.undo_stack.canUndo()
    assert editor.text() == "1.5" and "border" in editor.styleSheet()
    note = layer_form.note("p")
    assert note.isVisible() and "1" in note.text()
    assert document.field_problems() == {"layer 1 · p": note.text()}
    # Another edit of the document re-fills the form: the refused text stays.
    document.apply(lambda p: setattr(p.training, "epochs", 3), "Set epochs")
    assert editor.text() == "1.5" and document.field_problems()

    type_text(qtbot, editor, "0.3")
    assert document.project.model.layers[1].params == {"p": 0.3}
    assert document.field_problems() == {}
    assert not note.isVisible() and editor.styleSheet() == ""


def test_a_value_applies_on_enter_or_focus_out_as_one_step(qtbot, document, layer_form):
    editor = layer_form.editor("p")
    type_text(qtbot, editor, "0.25", enter=False)
    assert document.project.model.layers[1].params == {}  # still typing
    document.commit_edits()  # what Train does when pressed with the focus in the field
    assert document.project.model.layers[1].params == {"p": 0.25}
    assert document.undo_stack.count() == 1


def test_a_refused_value_is_dropped_with_its_problem_when_the_form_shows_another_layer(
        qtbot, document):
    form = ParamForm()
    qtbot.addWidget(form)
    selected = {"index": 1}
    form.bind(document, lambda: f"layer {selected['index']} · ")
    form.set_entry(LAYERS.get("Dropout"), {})
    form.show()
    type_text(qtbot, form.editor("p"), "2")
    assert list(document.field_problems()) == ["layer 1 · p"]
    selected["index"] = 4  # another Dropout is selected
    form.set_entry(LAYERS.get("Dropout"), {"p": 0.1})
    assert form.editor("p").text() == "0.1" and document.field_problems() == {}
    type_text(qtbot, form.editor("p"), "x")
    document.set_project(spec.load(example_path("moons_mlp")), None)  # New / Open
    assert document.field_problems() == {}


@pytest.fixture
def setup(qtbot, document):
    widget = TrainingSetup(document)
    widget.sync()
    document.changed.connect(widget.sync)
    scroll = QScrollArea()
    scroll.setWidget(widget)
    scroll.setWidgetResizable(True)
    scroll.resize(400, 200)  # much shorter than the form: it scrolls
    qtbot.addWidget(scroll)
    scroll.show()
    qtbot.waitExposed(scroll)
    return widget, scroll


def test_a_refused_gradient_clip_keeps_train_waiting(qtbot, document, setup):
    widget, _ = setup
    type_text(qtbot, widget.grad_clip, "-1")
    assert document.project.training.grad_clip is None
    assert "positive" in document.field_problems()["training.grad_clip"]
    assert widget.grad_clip_note.isVisible()
    type_text(qtbot, widget.grad_clip, "1.5")
    assert document.project.training.grad_clip == 1.5 and document.field_problems() == {}


def _wheel(widget, steps: int = -3) -> QWheelEvent:
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0),
                        QPoint(0, 120 * steps), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)
    return event


def test_the_wheel_over_an_unfocused_spin_box_scrolls_the_form_instead(qtbot, document, setup):
    widget, _ = setup
    batch = widget.batch_size
    assert not batch.hasFocus()
    # Ignored: a real (spontaneous) wheel event then goes on to the scroll area.
    assert not _wheel(batch).isAccepted()
    assert batch.value() == 64 and document.project.data.batch_size == 64
    assert document.undo_stack.count() == 0
    for combo in (widget.device, widget.precision, widget.optimizer.combo):
        index = combo.currentIndex()
        assert not _wheel(combo).isAccepted()
        assert combo.currentIndex() == index
    assert document.undo_stack.count() == 0
    # With the focus, the wheel steps the value (one undo step).
    batch.setFocus()
    qtbot.waitUntil(batch.hasFocus)
    _wheel(batch, steps=1)
    assert document.project.data.batch_size == 65 and document.undo_stack.count() == 1


def test_a_refused_dataset_parameter_keeps_train_waiting(qtbot, document):
    from guidl.qt.panels import DataPanel

    document.apply(lambda p: setattr(p.data, "dataset", "text"), "Use text")
    panel = DataPanel(document)
    qtbot.addWidget(panel)
    panel.sync()
    document.changed.connect(panel.sync)
    panel.show()
    editor = panel.form.editor("max_samples")
    type_text(qtbot, editor, "1500x")
    assert "not an integer" in document.field_problems()["data.params.max_samples"]
    assert "max_samples" not in document.project.data.params
    type_text(qtbot, editor, "1500")
    assert document.project.data.params["max_samples"] == 1500 and document.field_problems() == {}
