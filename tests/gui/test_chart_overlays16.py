"""Ticked runs overlaid on the live charts: each in its colour with one legend
entry, fed into curves made once, beside a live run that keeps drawing."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QRectF

from guidl.qt.charts import OverlayRun, TrainingCharts, overlay_colour


@pytest.fixture
def charts(qtbot):
    widget = TrainingCharts()
    qtbot.addWidget(widget)
    widget.resize(600, 900)
    widget.show()
    return widget


def _metrics(epochs: int, scale: float, lr: float = 1e-3) -> dict[str, np.ndarray]:
    e = np.arange(1, epochs + 1, dtype=float)
    loss = scale * np.exp(-e / 3) + 0.05
    return {"epoch": e, "train_loss": loss, "val_loss": loss + 0.02,
            "train_accuracy": 1 - loss / 2, "val_accuracy": 1 - loss / 2 - 0.03,
            "train_mae": np.full(epochs, np.nan), "val_mae": np.full(epochs, np.nan),
            "lr": np.full(epochs, lr)}


def _runs() -> list[OverlayRun]:
    return [OverlayRun("baseline", overlay_colour(0), _metrics(5, 1.0)),
            OverlayRun("lr 0.01", overlay_colour(1), _metrics(12, 2.0, lr=1e-2)),
            OverlayRun("dropout", overlay_colour(2).name(), _metrics(3, 0.5))]


def _items(charts) -> dict[str, list]:
    return {key: list(plot.items) for key, plot in
            (("loss", charts.loss_plot), ("metric", charts.metric_plot), ("lr", charts.lr_plot))}


def _curve(charts, plot, colour, dashed: bool):
    """The one overlay curve on ``plot`` drawn in ``colour``, dashed or solid."""
    found = [item for item in plot.items if getattr(item, "opts", {}).get("pen") is not None
             and item not in charts.curves.values()
             and item.opts["pen"].color().name() == colour.name()
             and (item.opts["pen"].style().name == "DashLine") == dashed]
    assert len(found) == 1, found
    return found[0]


def test_three_runs_overlay_in_their_colours_beside_the_live_run(charts):
    before = {key: len(items) for key, items in _items(charts).items()}
    runs = _runs()
    charts.set_overlays(runs)

    assert [label.text for _, label in charts.runs_legend.items] == ["baseline", "lr 0.01", "dropout"]
    colours = [overlay_colour(i) for i in range(3)]
    assert len({c.name() for c in colours}) == 3
    live = {charts.curves[n].opts["pen"].color().name() for n in charts.curves}
    assert not live & {c.name() for c in colours}  # never mistaken for a live curve
    for run, colour in zip(runs, colours):
        x, y = _curve(charts, charts.loss_plot, colour, dashed=False).getOriginalDataset()
        assert np.array_equal(x, run.metrics["epoch"]) and np.allclose(y, run.metrics["val_loss"])
        _, y = _curve(charts, charts.loss_plot, colour, dashed=True).getOriginalDataset()
        assert np.allclose(y, run.metrics["train_loss"])
        _, y = _curve(charts, charts.metric_plot, colour, dashed=False).getOriginalDataset()
        assert np.allclose(y, run.metrics["val_accuracy"])
        _, y = _curve(charts, charts.lr_plot, colour, dashed=False).getOriginalDataset()
        assert np.allclose(y, run.metrics["lr"])
    # Five curves per run: train and validation on two plots, the learning rate.
    assert sum(len(items) for items in _items(charts).values()) == sum(before.values()) + 15

    # The live run keeps drawing beside them.
    charts.add_epoch({"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "lr": 1e-3,
                      "train_accuracy": 0.5, "val_accuracy": 0.6})
    x, y = charts.curves["val_loss"].getOriginalDataset()
    assert list(x) == [1] and list(y) == [0.8]

    # Again with the same runs: the same curve items, fed anew.
    items = _items(charts)
    charts.set_overlays(runs)
    assert _items(charts) == items
    assert len(charts.runs_legend.items) == 3

    charts.set_overlays([])
    assert {key: len(items) for key, items in _items(charts).items()} == before
    assert charts.runs_legend.items == []
    assert charts.curves["val_loss"] in charts.loss_plot.items


def test_overlays_outlive_a_new_live_run_and_widen_its_planned_axis(charts):
    charts.set_overlays(_runs())
    charts.clear()  # a new run starts
    charts.plan(3)
    assert len(charts.runs_legend.items) == 3
    low, high = charts.loss_plot.vb.viewRange()[0]
    assert low <= 0 and high >= 12  # the longest ticked run, not only the 3 planned epochs
    bottom, top = charts.loss_plot.vb.viewRange()[1]
    assert top >= 2.0 * np.exp(-1 / 3)  # its highest loss is in view
    charts.set_overlays([])
    low, high = charts.loss_plot.vb.viewRange()[0]
    assert 3 <= high < 4  # back to the live run's plan


def test_the_hover_line_names_the_run_under_the_pointer(charts, qtbot):
    runs = _runs()
    charts.set_overlays(runs)
    charts.loss_plot.vb.setRange(xRange=(0, 12), yRange=(0, 2), padding=0)
    qtbot.wait(10)
    on = charts.loss_plot.vb.mapViewToScene(QPointF(4.0, float(runs[1].metrics["val_loss"][3])))
    charts._mouse_moved((on,))
    assert "lr 0.01: validation loss" in charts.hover.text() and "(epoch 4)" in charts.hover.text()
    away = charts.loss_plot.vb.mapViewToScene(QPointF(4.0, 1.9))
    charts._mouse_moved((away,))
    assert not any(run.label in charts.hover.text() for run in runs)


def test_a_regression_task_overlays_the_runs_mean_absolute_error(charts):
    metrics = _metrics(4, 1.0)
    metrics.update(train_accuracy=np.full(4, np.nan), val_accuracy=np.full(4, np.nan),
                   train_mae=np.array([3.0, 2.0, 1.5, 1.2]), val_mae=np.array([3.5, 2.5, 2.0, 1.9]))
    charts.set_overlays([OverlayRun("fit", "#db2777", metrics)])
    charts.set_task("regression")
    _, y = _curve(charts, charts.metric_plot, overlay_colour(0), dashed=False).getOriginalDataset()
    assert list(y) == [3.5, 2.5, 2.0, 1.9]


def test_a_click_on_a_runs_legend_entry_hides_its_curves(charts):
    runs = _runs()
    runs[0].label = "a <b>bold</b> & name"
    charts.set_overlays(runs)
    sample, label = charts.runs_legend.items[0]
    assert "&lt;b&gt;" in label.text  # shown as typed, not as HTML

    class Click:
        def button(self):
            from PySide6.QtCore import Qt
            return Qt.MouseButton.LeftButton

        def accept(self):
            pass

    colour = overlay_colour(0)
    solid = _curve(charts, charts.loss_plot, colour, dashed=False)
    sample.mouseClickEvent(Click())
    assert not solid.isVisible() and not _curve(charts, charts.lr_plot, colour, dashed=False).isVisible()
    assert _curve(charts, charts.loss_plot, overlay_colour(1), dashed=False).isVisible()
    charts.set_overlays(runs)  # ticks changed elsewhere: a hidden run stays hidden
    assert not solid.isVisible()
    sample, _ = charts.runs_legend.items[0]
    sample.mouseClickEvent(Click())
    assert solid.isVisible()


def _shown_entries(charts) -> list[str]:
    """The runs' legend entries whose sample and name lie wholly inside the charts' view."""
    view = charts.graphics
    seen = QRectF(view.viewport().rect())
    shown = []
    for sample, label in charts.runs_legend.items:
        rects = [QRectF(view.mapFromScene(item.mapToScene(item.boundingRect())).boundingRect())
                 for item in (sample, label.item)]
        if sample.isVisible() and label.isVisible() and all(seen.contains(r) for r in rects):
            shown.append(label.item.toPlainText())
    return shown


COMPARED = ["SGD", "SGD with momentum", "Adagrad", "RMSprop", "Adam"]  # Compare Optimizers' runs


def test_five_ticked_runs_each_have_a_legend_entry_in_a_narrow_pane(charts, qtbot):
    width = 280  # the Train tab's charts pane with the form beside it, in a small window
    charts.resize(width, 900)
    charts.set_overlays([OverlayRun(name, overlay_colour(i), _metrics(3, 1.0 + i)) for i, name in enumerate(COMPARED)])
    qtbot.waitUntil(lambda: _shown_entries(charts) == COMPARED, timeout=3_000)

    # Made narrower after they were ticked (the splitter dragged): more rows, none cut off.
    charts.resize(900, 900)
    qtbot.waitUntil(lambda: _shown_entries(charts) == COMPARED, timeout=3_000)
    rows = {round(label.item.sceneBoundingRect().top()) for _, label in charts.runs_legend.items}
    charts.resize(width, 900)
    qtbot.waitUntil(lambda: _shown_entries(charts) == COMPARED, timeout=3_000)
    assert len({round(label.item.sceneBoundingRect().top()) for _, label in charts.runs_legend.items}) > len(rows)


def test_names_too_long_for_the_pane_are_shortened_in_the_middle(charts, qtbot):
    names = [f"two-moons-classifier-optimizers-20261202-024032-t00{i}" for i in range(5)]
    charts.resize(300, 900)
    charts.set_overlays([OverlayRun(name, overlay_colour(i), _metrics(3, 1.0)) for i, name in enumerate(names)])

    def cut() -> list[str]:
        return _shown_entries(charts)
    qtbot.waitUntil(lambda: len(cut()) == 5, timeout=3_000)
    for name, text, (_, label) in zip(names, cut(), charts.runs_legend.items):
        assert "\u2026" in text and text.endswith(name[-3:])  # the trial number stays readable
        assert label.toolTip() == name
    charts.resize(1400, 900)  # room again: whole names
    qtbot.waitUntil(lambda: cut() == names, timeout=3_000)


def _click_scene(charts, qtbot, item) -> None:
    """A real left click (press and release) at the middle of ``item`` on screen."""
    from PySide6.QtCore import Qt

    view = charts.graphics
    centre = view.mapFromScene(item.mapToScene(item.boundingRect().center()))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=centre)


def test_a_click_on_a_runs_name_in_the_legend_hides_and_shows_it(charts, qtbot):
    charts.set_overlays(_runs())
    qtbot.waitUntil(lambda: _shown_entries(charts) == ["baseline", "lr 0.01", "dropout"], timeout=3_000)
    sample, label = charts.runs_legend.items[1]
    colour = overlay_colour(1)
    solid = _curve(charts, charts.loss_plot, colour, dashed=False)
    assert solid.isVisible()

    _click_scene(charts, qtbot, label.item)  # the name's text, not the colour sample
    assert not solid.isVisible() and not _curve(charts, charts.metric_plot, colour, dashed=True).isVisible()
    assert _curve(charts, charts.loss_plot, overlay_colour(0), dashed=False).isVisible()  # the others stay
    assert not sample.item.isVisible()  # the sample shows the run hidden (pyqtgraph's crossed eye)

    qtbot.wait(600)  # not a double click
    _click_scene(charts, qtbot, label.item)
    assert solid.isVisible()
