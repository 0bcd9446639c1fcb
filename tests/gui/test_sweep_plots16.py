"""A sweep's result plots: one line per complete trial in the parallel
coordinates (pruned faint, failed left out), the parameter against the metric
on a log axis with the best trial marked, importances sorted, and the empty
states."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import pytest

from guidl.qt.sweep_plots import (
    IMPORTANCE_EMPTY, ImportanceBars, ParallelCoordinates, ParamAxis, ParamScatter, short_names, spaced_ticks,
)

LR, WIDTH, OPT = "training.optimizer.params.lr", "model.layers[4].params.out_features", "training.optimizer.type"
PARAMS = [LR, WIDTH, OPT]


def row(number, state, value, lr, width, opt):
    return {"number": number, "state": state, "value": value, "params": {LR: lr, WIDTH: width, OPT: opt},
            "run_dir": None, "duration_s": 1.0, "intermediate": {}, "variant": None, "cause": None}


ROWS = [
    row(0, "COMPLETE", 0.80, 1e-4, 16, "SGD"),
    row(1, "COMPLETE", 0.95, 1e-2, 64, "Adam"),  # the best (maximize)
    row(2, "PRUNED", None, 1e-3, 32, "Adam"),
    row(3, "FAIL", None, 5e-2, 8, "SGD"),
    row(4, "COMPLETE", 0.90, 1e-3, 32, "RMSprop"),
]


@pytest.fixture
def parallel(qtbot):
    widget = ParallelCoordinates()
    qtbot.addWidget(widget)
    widget.resize(800, 400)
    widget.show()
    return widget


def test_parallel_coordinates_draws_one_line_per_complete_trial(qtbot, parallel):
    parallel.set_rows(ROWS, PARAMS, "val_accuracy", "maximize", {LR})
    assert parallel.line_count() == (3, 1)  # complete; pruned faint; the failed one left out
    assert parallel.line_of(3) is None
    assert sum(line.isVisible() for line in parallel.lines) == 4
    assert [axis.title for axis in parallel.axes] == ["optimizer.lr", "layers[4].out_features",
                                                      "optimizer.type", "val_accuracy \u2191"]
    assert [t.toPlainText() for t in parallel.titles[:3]] == ["optimizer.lr", "layers[4].out_features",
                                                             "optimizer.type"]
    assert parallel.titles[0].toolTip() == LR
    lr_axis, _, opt_axis, metric_axis = parallel.axes
    assert lr_axis.kind == "log" and opt_axis.kind == "category"
    # Each trial's line goes through its own values on each axis's scale.
    best = parallel.line_of(1)
    x, y = best.getData()
    assert list(x) == [0, 1, 2, 3]
    # lr on a log scale over the drawn trials' 1e-4 .. 1e-2 (the failed trial's 5e-2 is not drawn).
    assert y[0] == pytest.approx(1.0) and parallel.line_of(4).getData()[1][0] == pytest.approx(0.5)
    assert y[2] == pytest.approx(opt_axis.position("Adam"))
    assert y[3] == pytest.approx(1.0)  # the best accuracy on top of its axis
    assert parallel.line_of(0).getData()[1][3] == pytest.approx(0.0)
    # The best is on top and thickest; the pruned line has no metric and is faint.
    assert best.zValue() > max(parallel.line_of(n).zValue() for n in (0, 4))
    assert best.opts["pen"].widthF() > parallel.line_of(0).opts["pen"].widthF()
    pruned = parallel.line_of(2)
    assert math.isnan(pruned.getData()[1][3]) and pruned.zValue() < parallel.line_of(0).zValue()
    assert "3 complete" in parallel.caption.text() and "1 failed" in parallel.caption.text()
    # Minimizing instead: the lowest value is the best and goes on top.
    parallel.set_rows(ROWS, PARAMS, "val_loss", "minimize")
    assert parallel.line_of(0).zValue() > parallel.line_of(1).zValue()
    assert parallel.axes[0].kind == "linear"  # not a log parameter this time


def test_hovering_a_line_names_its_trial(qtbot, parallel):
    parallel.set_rows(ROWS, PARAMS, "val_accuracy", "maximize", {LR})
    qtbot.waitUntil(lambda: parallel.plot.sceneBoundingRect().width() > 100)
    y = parallel.line_of(4).getData()[1]
    vb = parallel.plot.vb
    parallel.hover_at(vb.mapViewToScene(pg.Point(0.5, (y[0] + y[1]) / 2)))
    text = parallel.hover.text()
    assert "trial 4" in text and "RMSprop" in text and "0.9" in text
    assert parallel.line_of(4).opts["pen"].widthF() == parallel.HOVER_WIDTH
    parallel.hover_at(vb.mapViewToScene(pg.Point(0.5, 1.15)))  # above every line
    assert parallel.hover.text() == parallel.hover.idle
    assert parallel.line_of(4).opts["pen"].widthF() == parallel.LINE_WIDTH


def test_scatter_shows_complete_trials_on_a_log_axis_with_the_best_marked(qtbot):
    scatter = ParamScatter()
    qtbot.addWidget(scatter)
    scatter.set_rows(ROWS, PARAMS, "val_accuracy", "maximize", {LR})
    assert scatter.current_param() == LR and scatter.axis.kind == "log"
    assert scatter.plot.getAxis("bottom").logMode
    assert sorted(scatter.xs) == pytest.approx([-4, -3, -2])  # log10 of the complete trials' lr
    assert sorted(scatter.ys) == pytest.approx([0.8, 0.9, 0.95])
    assert [p.pos().x() for p in scatter.best.points()] == pytest.approx([-2])
    assert scatter.best_label.toPlainText() == "best: trial 1"
    scatter.choose(OPT)  # a choice: categories, no log
    assert scatter.axis.kind == "category" and not scatter.plot.getAxis("bottom").logMode
    assert scatter.plot.getAxis("bottom").names == ["Adam", "RMSprop", "SGD"]
    assert sorted(scatter.xs) == [0, 1, 2]
    # More trials arrive: the chosen parameter stays chosen.
    scatter.set_rows(ROWS + [row(5, "COMPLETE", 0.7, 1e-3, 8, "SGD")], PARAMS, "val_accuracy", "maximize", {LR})
    assert scatter.current_param() == OPT and len(scatter.xs) == 4


def test_importances_sorted_with_their_values_and_an_empty_state(qtbot):
    bars = ImportanceBars()
    qtbot.addWidget(bars)
    bars.show()
    assert bars.note.isVisible() and bars.note.text() == IMPORTANCE_EMPTY and not bars.view.isVisible()
    bars.set_importances({WIDTH: 0.1, LR: 0.6, OPT: 0.3})
    assert bars.order == [LR, OPT, WIDTH] and not bars.note.isVisible() and bars.view.isVisible()
    widths, ys = bars.bars.opts["width"], bars.bars.opts["y"]
    assert list(widths) == [0.6, 0.3, 0.1] and ys[0] > ys[1] > ys[2]  # the most important on top
    assert bars.left.names == ["layers[4].out_features", "optimizer.type", "optimizer.lr"]  # bottom up
    assert [v.toPlainText().strip() for v in bars.values[:3]] == ["0.60", "0.30", "0.10"]
    bars.set_importances({})
    assert bars.note.isVisible() and not any(v.isVisible() for v in bars.values)
    assert len(bars.bars.opts["width"]) == 0


def test_empty_states_before_any_complete_trial(qtbot, parallel):
    scatter = ParamScatter()
    qtbot.addWidget(scatter)
    scatter.show()
    only_failed = [ROWS[2], ROWS[3]]
    parallel.set_rows(only_failed, PARAMS, "val_loss", "minimize")
    scatter.set_rows(only_failed, PARAMS, "val_loss", "minimize")
    for widget in (parallel, scatter):
        assert "No complete trials yet" in widget.caption.text() and not widget.view.isVisible()
    assert len(scatter.xs) == 0
    parallel.set_rows(ROWS, PARAMS, "val_loss", "minimize")
    assert parallel.view.isVisible()


def test_axes_and_names():
    assert short_names([LR, WIDTH, "data.batch_size", "discriminator.layers[4].params.out_features"]) == {
        LR: "optimizer.lr", WIDTH: "model.layers[4].out_features", "data.batch_size": "data.batch_size",
        "discriminator.layers[4].params.out_features": "discriminator.layers[4].out_features"}
    axis = ParamAxis.of("p", "p", [8, 16, 128])
    assert axis.integer and [text for _, text in axis.ticks()][0] == "8" and axis.ticks()[-1] == (1.0, "128")
    assert all(0 <= position <= 1 for position, _ in axis.ticks())
    log = ParamAxis.of("lr", "lr", [1e-4, 1e-1], log=True)
    assert [text for _, text in log.ticks()] == ["0.0001", "0.001", "0.01", "0.1"]
    assert np.allclose([p for p, _ in log.ticks()], [0, 1 / 3, 2 / 3, 1])
    assert ParamAxis.of("b", "b", [True, False, True]).categories == [False, True]


def test_scatter_of_trials_that_all_scored_the_same_shows_a_readable_band(qtbot):
    scatter = ParamScatter()
    qtbot.addWidget(scatter)
    same = [row(n, "COMPLETE", 1.0, lr, 16, "Adam") for n, lr in enumerate((1e-4, 1e-3, 1e-2))]
    scatter.set_rows(same, PARAMS, "val_accuracy", "maximize", {LR})
    low, high = scatter.plot.getViewBox().viewRange()[1]
    assert low == pytest.approx(0.95) and high == pytest.approx(1.05)


def test_the_states_as_guidl_sweeps_trial_rows_names_them(qtbot, parallel):
    """engine.sweep.trial_rows says complete / pruned / failed / retried (a dead worker's trial run again)."""
    rows = [dict(r, state=s) for r, s in zip(ROWS, ("complete", "complete", "pruned", "failed", "retried"))]
    parallel.set_rows(rows, PARAMS, "val_accuracy", "maximize", {LR})
    assert parallel.line_count() == (2, 1)
    assert "2 complete" in parallel.caption.text() and "2 failed" in parallel.caption.text()


# -- the parallel plot's texts at the sizes the Sweep dialog gives it ------------------------

RACE = ["Adam", "AdamW", "RMSprop", "SGD", "SGD with momentum"]  # Compare Optimizers' labels


def race_rows():
    widths = [8, 16, 30, 32]  # 30 and 32: neighbouring ticks of an integer axis
    return [{"number": n, "state": "COMPLETE", "value": 0.1 + 0.003 * n,
             "params": {WIDTH: widths[n % 4], LR: 10 ** (-4 + 3 * n / 11), OPT: RACE[n % 5]}}
            for n in range(12)]


def shown_texts(parallel, qtbot, width, height):
    parallel.resize(width, height)
    parallel.set_rows(race_rows(), [WIDTH, LR, OPT], "val_mae", "minimize", {LR})
    vb = parallel.plot.vb
    qtbot.waitUntil(lambda: abs(vb.width() - parallel.view.width()) < 40 and vb.height() > 100)
    parallel.view.grab()  # painted: the texts follow the view's range
    inside = vb.sceneBoundingRect().adjusted(-0.5, -0.5, 0.5, 0.5)
    titles = [t for t in parallel.titles if t.isVisible()]
    labels = [t for t in parallel.labels if t.isVisible()]
    for items in (titles, labels):
        for i, a in enumerate(items):
            for b in items[i + 1:]:
                assert not a.sceneBoundingRect().intersects(b.sceneBoundingRect()), \
                    (a.toPlainText(), b.toPlainText())
    for item in titles + labels:
        assert inside.contains(item.sceneBoundingRect()), (item.toPlainText(), item.sceneBoundingRect(), inside)
    return titles, labels


def test_spaced_ticks_keep_the_ends_and_drop_inner_ones_too_close():
    ticks = [(0, "8"), (10, "10"), (30, "15"), (50, "20"), (70, "25"), (90, "30"), (96, "32")]
    assert spaced_ticks(ticks, 18) == [0, 2, 3, 4, 6]  # "10" too near "8", "30" too near "32"
    assert spaced_ticks(ticks, 200) == [0, 6]
    assert spaced_ticks(ticks[:2], 50) == [0, 1]


@pytest.mark.parametrize("size", [(560, 260), (700, 300), (1200, 500)])
def test_parallel_titles_and_tick_labels_are_whole_inside_the_view_and_apart(qtbot, parallel, size):
    titles, labels = shown_texts(parallel, qtbot, *size)
    assert [t.toPlainText() for t in titles] == ["layers[4].out_features", "optimizer.lr",
                                                  "optimizer.type", "val_mae \u2193"]
    texts = [t.toPlainText() for t in labels]
    assert "8" in texts and "32" in texts  # an axis's ends are always labelled
    assert "SGD with momentum" in texts  # a race's label whole where there is room
    # Each axis's labels sit between it and the axis before it.
    vb = parallel.plot.vb
    for item in labels:
        x = vb.mapSceneToView(item.sceneBoundingRect().topRight()).x()
        left = vb.mapSceneToView(item.sceneBoundingRect().topLeft()).x()
        axis = round(x)
        assert axis - 0.2 < x <= axis and (axis == 0 or left > axis - 1), item.toPlainText()


def test_a_label_with_no_room_is_cut_in_the_middle_with_its_whole_text_as_tooltip(qtbot, parallel):
    params = [WIDTH, "data.batch_size", "model.layers[1].params.p", "training.epochs", LR, OPT]
    rows = [{**r, "params": {**r["params"], "data.batch_size": 16 + r["number"],
                             "model.layers[1].params.p": 0.1 * (r["number"] % 3), "training.epochs": 2}}
            for r in race_rows()]
    parallel.resize(480, 300)
    parallel.set_rows(rows, params, "val_mae", "minimize", {LR})
    qtbot.waitUntil(lambda: parallel.plot.vb.width() > 300)
    parallel.view.grab()
    long = [t for t in parallel.labels if t.isVisible() and t.toolTip() == "SGD with momentum"]
    assert len(long) == 1 and "\u2026" in long[0].toPlainText()
    text = long[0].toPlainText()
    assert text.startswith("S") and text.endswith("m")  # cut in the middle: both ends stay
    vb = parallel.plot.vb
    assert vb.mapSceneToView(long[0].sceneBoundingRect().topLeft()).x() > params.index(OPT) - 1  # right of the axis before
