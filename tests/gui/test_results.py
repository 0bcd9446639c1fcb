"""The Results tab and the class balance with many classes (a text dataset's
96 characters), with names that are whitespace, and with nothing to show."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QLabel

from guidl.engine.data import VOCAB
from guidl.qt.charts import CategoryAxis, visible_text
from guidl.qt.results import ResultsPanel


def _result(matrix: np.ndarray, names: list[str] | None):
    n = len(matrix)
    evaluation = {
        "task": "classification", "accuracy": 0.5, "macro_precision": 0.5, "macro_recall": 0.5,
        "macro_f1": 0.5, "loss": 1.0, "class_names": names, "precision": [0.5] * n,
        "recall": [0.5] * n, "f1": [0.5] * n, "support": [int(s) for s in matrix.sum(axis=1)],
        "confusion": matrix.tolist(),
    }
    return SimpleNamespace(evaluation=SimpleNamespace(to_dict=lambda: evaluation),
                           evaluation_split="val", stopped=False, stop_reason="")


@pytest.fixture
def panel(qtbot):
    widget = ResultsPanel()
    qtbot.addWidget(widget)
    widget.resize(1000, 700)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _drawn_labels(axis: CategoryAxis, widget) -> list[str]:
    axis.picture = None
    widget.grab()  # paints: the axis lays its labels out for its real length
    return axis.shown


def test_an_empty_confusion_matrix_shows_a_placeholder_not_tiny_axes(panel):
    assert panel.confusion_view.currentWidget() is panel.confusion_placeholder  # before any run
    panel.show_result(_result(np.zeros((0, 0), dtype=int), []), [])
    assert panel.confusion_view.currentWidget() is panel.confusion_placeholder
    assert "no samples" in panel.confusion_placeholder.text()
    panel.show_result(_result(np.zeros((2, 2), dtype=int), ["a", "b"]), [])
    assert panel.confusion_view.currentWidget() is panel.confusion_placeholder
    panel.show_result(_result(np.array([[3, 1], [0, 4]]), ["a", "b"]), [])
    assert panel.confusion_view.currentWidget() is panel.confusion
    (x_low, x_high), _ = panel.confusion.viewRange()
    assert x_low < 0.1 and x_high > 1.9
    panel.clear()
    assert panel.confusion_view.currentWidget() is panel.confusion_placeholder


def test_many_classes_get_thinned_labels_that_never_overlap(panel):
    names = [repr(c)[1:-1] if c == "\n" else c for c in VOCAB]  # what the text dataset names them
    matrix = np.eye(len(names), dtype=int) * 5
    panel.show_result(_result(matrix, names), [])
    for side in ("bottom", "left"):
        axis = panel.confusion.getAxis(side)
        shown = _drawn_labels(axis, panel)
        assert 1 < len(shown) < len(names)  # thinned, not dropped
        assert set(shown) <= {visible_text(n) for n in names}
    axis = panel.confusion.getAxis("bottom")
    metrics = QFontMetricsF(axis.style["tickFont"] or axis.font())
    length = axis.geometry().width()
    (step, values), = axis.tickValues(0, len(names), length)
    per_label = length / len(names) * step
    assert all(metrics.horizontalAdvance(s) < per_label for s in axis.tickStrings(values, 1, step))
    # The space class is shown as a symbol in the table.
    table_names = [panel.table.item(r, 0).text() for r in range(panel.table.rowCount() - 1)]
    assert "\u2423" in table_names and " " not in table_names


def test_two_long_names_in_a_narrow_plot_do_not_run_into_each_other():
    axis = CategoryAxis("bottom")
    axis.set_names(["class 0", "class 1"], offset=0.5)
    (step, values), = axis.tickValues(0, 2, 60)  # 30 pixels a class: "clclass01" before
    assert axis.tickStrings(values, 1, step) == ["class 0"]
    (step, values), = axis.tickValues(0, 2, 400)
    assert axis.tickStrings(values, 1, step) == ["class 0", "class 1"]


def test_whitespace_names_are_visible():
    assert visible_text(" ") == "\u2423" and visible_text("  ") == "\u2423\u2423"
    assert visible_text("\n") == "\u21b5" and visible_text("\t") == "\u21e5"
    assert visible_text("class 0") == "class 0"  # inner spaces are seen
    assert visible_text(" a ") == "\u2423a\u2423"
    assert visible_text("") == "\u2205" and visible_text("\x00") == "\\x00"


def test_a_predicted_space_shows_in_its_sample_tile(panel):
    matrix = np.array([[3, 1], [0, 4]])
    samples = [{"text": "hello wor", "predicted": " ", "true": "<l>", "probability": 0.5, "wrong": True},
               {"text": "the cat", "predicted": "\n", "true": "\n", "probability": 0.9, "wrong": False}]
    panel.show_result(_result(matrix, [" ", "<l>"]), samples)
    captions = [label for label in panel.samples.findChildren(QLabel)
                if label.textFormat() == Qt.TextFormat.RichText]
    wrong, right = sorted(captions, key=lambda label: "true" not in label.text())
    assert wrong.text().startswith("\u2423 (50%)") and "true: &lt;l&gt;" in wrong.text()
    assert right.text() == "\u21b5 (90%)"


def test_the_class_balance_names_every_class_by_its_name(qtbot):
    from guidl import spec
    from guidl.engine.data import prepare
    from guidl.examples import example_path
    from guidl.qt.document import ProjectDocument
    from guidl.qt.panels import DataPanel

    project = spec.load(example_path("char_lstm"))
    project.data.params = {"max_samples": 300}
    document = ProjectDocument()
    document.set_project(project, None)
    panel = DataPanel(document)
    qtbot.addWidget(panel)
    panel.resize(1100, 700)
    panel.show()
    data = prepare(project)
    panel.show_data(data)
    axis = panel.balance.getAxis("bottom")
    assert axis.names == [visible_text(n) for n in data.info.class_names]  # characters, not indices
    shown = _drawn_labels(axis, panel)
    assert 1 < len(shown) < len(axis.names)
    assert set(shown) <= set(axis.names)


def test_sample_tiles_follow_a_theme_switched_while_the_window_is_open(panel, qapp):
    from PySide6.QtGui import QPalette

    from guidl.qt.theme import apply_theme

    samples = [{"text": "hello wor", "predicted": "a", "true": "b", "probability": 0.5, "wrong": True},
               {"text": "the cat", "predicted": "b", "true": "b", "probability": 0.9, "wrong": False}]
    apply_theme(qapp, "light")
    panel.show_result(_result(np.array([[3, 1], [0, 4]]), ["a", "b"]), samples)
    qapp.processEvents()  # the tiles are shown (and polished) in the light theme
    try:
        apply_theme(qapp, "dark")
        qapp.processEvents()
        text = qapp.palette().color(QPalette.ColorRole.WindowText)
        labels = panel.samples.findChildren(QLabel)
        assert len(labels) == 4 and text.lightness() > 128  # dark theme: light text
        for label in labels:
            assert label.palette().color(label.foregroundRole()) == text, label.text()
        wrong = panel.samples_layout.itemAt(0).widget()
        edge = wrong.grab().toImage().pixelColor(wrong.width() // 2, 1)
        assert edge.red() > 180 and edge.green() < 100  # still outlined in red
    finally:
        apply_theme(qapp, "light")
        qapp.processEvents()
