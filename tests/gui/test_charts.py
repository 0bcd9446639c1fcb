"""The live charts stay cheap however long the run: long series reach the
plot peak-decimated, incrementally, and in full detail when zoomed in."""

from __future__ import annotations

import numpy as np
import pytest

from guidl.qt.charts import Series, TrainingCharts


@pytest.fixture
def charts(qtbot):
    widget = TrainingCharts()
    qtbot.addWidget(widget)
    widget.show()
    return widget


def _noisy(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(1, n + 1) / 469.0  # fractional epochs, as the window sends them
    y = 2.3 * np.exp(-x / 20) + np.random.default_rng(seed).random(n)
    return x, y


def test_a_short_series_is_shown_as_it_is():
    series = Series()
    x, y = _noisy(Series.DISPLAY_POINTS)
    series.extend(x, y)
    shown_x, shown_y = series.display()
    assert np.array_equal(shown_x, x) and np.array_equal(shown_y, y)


def test_a_long_series_keeps_its_outline_in_few_points():
    x, y = _noisy(1_000_000)
    y[123_457] = 50.0  # one spike (a diverging batch) must stay visible
    y[654_321] = -3.0
    series = Series()
    series.extend(x, y)
    shown_x, shown_y = series.display()
    assert len(shown_x) <= Series.DISPLAY_POINTS + 1024
    assert shown_y.max() == 50.0 and shown_y.min() == -3.0
    assert np.all(np.diff(shown_x) >= 0)
    assert shown_x[0] < x[1000] and shown_x[-1] > x[-1000]  # the whole run, end to end
    # Every point shown is a real point of the series.
    index = np.searchsorted(x, shown_x)
    assert np.array_equal(y[index], shown_y)


def test_adding_in_pieces_gives_what_adding_at_once_gives():
    x, y = _noisy(300_000, seed=1)
    whole = Series()
    whole.extend(x, y)
    pieces = Series()
    for start in range(0, len(x), 7_777):  # refreshed after every piece, as during training
        pieces.extend(x[start:start + 7_777], y[start:start + 7_777])
        pieces.display()
    for a, b in zip(pieces.display(), whole.display()):
        assert np.array_equal(a, b)


def test_zoomed_in_a_long_series_shows_every_point_in_view():
    x, y = _noisy(1_000_000)
    series = Series()
    series.extend(x, y)
    lo, hi = x[500_000], x[501_000]
    shown_x, shown_y = series.display((lo, hi))
    assert np.array_equal(shown_x, x[499_999:501_002])  # all of them, one beyond each end
    shown_x, _ = series.display((x[100_000], x[900_000]))
    assert len(shown_x) <= 1.1 * Series.DISPLAY_POINTS and x[100_000] >= shown_x[0]


@pytest.mark.parametrize("n", [0, 1, Series.DISPLAY_POINTS])
def test_clearing_starts_over(n):
    series = Series()
    series.extend(*_noisy(50_000))
    series.display()
    series.clear()
    x, y = _noisy(n)
    series.extend(x, y)
    assert np.array_equal(series.display()[1], y)


def test_a_million_batches_reach_the_plot_decimated(charts):
    x, y = _noisy(1_000_000)
    charts.add_batches(x, y)
    charts.refresh()
    shown_x, shown_y = charts.curves["batch"].getData()
    assert 0 < len(shown_x) <= Series.DISPLAY_POINTS + 1024
    assert shown_y.max() == y.max()
    # The smoothed loss, a wide line, is drawn from far fewer points.
    assert 0 < len(charts.curves["smooth"].getData()[0]) <= TrainingCharts.SMOOTH_POINTS + 1024
    # Zoomed in (auto-range off), the plot gets the raw batches in view.
    charts.loss_plot.setXRange(x[1000], x[1100], padding=0)
    charts.refresh()
    shown_x, _ = charts.curves["batch"].getData()
    assert len(shown_x) < 200 and np.isin(x[1000:1100], shown_x).all()


def test_while_training_the_axes_stay_put(charts):
    """x spans the planned run and the loss axis moves in round steps, so the
    axes are not regenerated at every refresh; a user's zoom takes over."""
    charts.plan(epochs=4)
    x_ranges, y_ranges = set(), set()
    for batch in range(400):  # a falling, noisy loss over two of the four epochs
        x = (batch + 1) / 200
        charts.add_batches(np.array([x]), np.array([2.3 * np.exp(-x) + 0.1 * (batch % 7) / 7]))
        charts.refresh()
        (x0, x1), (y0, y1) = charts.loss_plot.vb.viewRange()
        x_ranges.add((round(x0, 9), round(x1, 9)))
        y_ranges.add((round(y0, 9), round(y1, 9)))
    assert len(x_ranges) == 1 and min(x_ranges)[0] < 0 and min(x_ranges)[1] > 4
    assert len(y_ranges) <= 6  # it grows in round steps as the loss falls, never shrinks
    low, high = charts.loss_plot.vb.viewRange()[1]
    assert low <= 0.3 and high >= 2.3  # every loss in view
    charts.loss_plot.vb.sigRangeChangedManually.emit([True, True])  # as a mouse zoom does
    charts.loss_plot.setYRange(1.0, 1.5, padding=0)
    charts.add_batches(np.array([2.01]), np.array([0.1]))
    charts.refresh()
    assert charts.loss_plot.vb.viewRange()[1] == [1.0, 1.5]  # the user's range is left alone


def test_an_infinite_validation_loss_does_not_squash_the_loss_axis(charts):
    charts.plan(epochs=3)
    charts.add_batches(np.array([0.5, 1.0]), np.array([80.0, 60.0]))
    charts.add_epoch({"epoch": 1, "train_loss": 70.0, "val_loss": float("inf"), "lr": 0.001})
    charts.refresh()
    low, high = charts.loss_plot.vb.viewRange()[1]
    assert low <= 60 and high >= 80


def test_the_auto_range_button_brings_a_long_run_back_whole(charts):
    x, y = _noisy(100_000)
    charts.add_batches(x, y)
    charts.refresh()
    charts.loss_plot.setXRange(x[2000], x[3000], padding=0)  # a zoom
    charts.refresh()
    assert charts.curves["batch"].getData()[0].max() < x[3100]
    charts.loss_plot.autoBtnClicked()  # pyqtgraph's "A"
    charts.refresh()
    shown = charts.curves["batch"].getData()[0]
    assert shown.min() < x[100] and shown.max() > x[-100]


def test_new_points_are_drawn_at_once_then_at_most_at_the_timer_s_pace(charts, qtbot):
    charts.refresh()
    qtbot.waitUntil(lambda: not charts.timer.isActive(), timeout=1_000)
    drawn = charts.redraws
    charts.add_batches(*_noisy(50))  # the first report is drawn at once
    assert charts.redraws == drawn + 1 and len(charts.curves["batch"].getData()[0]) == 50
    assert charts.timer.isActive()
    x, y = _noisy(80)
    charts.add_batches(x[50:] + 1, y[50:])  # the next, within the tick: at the tick
    assert charts.redraws == drawn + 1
    qtbot.waitUntil(lambda: charts.redraws == drawn + 2, timeout=1_000)
    assert len(charts.curves["batch"].getData()[0]) == 80
    qtbot.waitUntil(lambda: not charts.timer.isActive(), timeout=1_000)  # nothing new: it stops
    assert charts.redraws == drawn + 2
    charts.add_epoch({"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "lr": 0.01})
    assert charts.timer.isActive()
    assert len(charts.curves["val_loss"].getData()[0]) == 1


def _dark(qapp):
    from PySide6.QtGui import QColor, QPalette

    palette = QPalette(qapp.palette())
    for role, colour in ((QPalette.ColorRole.Window, "#1f2329"), (QPalette.ColorRole.Base, "#16191d"),
                         (QPalette.ColorRole.Text, "#e5e7eb"), (QPalette.ColorRole.WindowText, "#e5e7eb")):
        palette.setColor(role, QColor(colour))
    return palette


def test_a_palette_switched_while_open_reaches_legends_axes_and_titles(charts, qapp):
    """Any palette change (the theme menu, the desktop's scheme): no code in the window needed."""
    import pyqtgraph as pg
    from PySide6.QtGui import QColor

    old = qapp.palette()
    labels = [label for legend in (charts.loss_plot.legend, charts.metric_plot.legend)
              for _, label in legend.items]
    assert len(labels) == 6
    try:
        qapp.setPalette(_dark(qapp))
        qapp.processEvents()  # Qt posts the palette change to the widgets
        text = QColor("#e5e7eb")
        assert charts.graphics.backgroundBrush().color() == QColor("#16191d")
        for label in labels:  # what is drawn, not only the option
            assert text.name() in label.item.toHtml()
        assert pg.mkColor(charts.loss_plot.getAxis("left").textPen().color()) == text
        assert text.name() in charts.loss_plot.titleLabel.item.toHtml()
    finally:
        qapp.setPalette(old)
        qapp.processEvents()
    assert QColor("#e5e7eb").name() not in labels[0].item.toHtml()


def test_a_disabled_icon_is_dimmed_in_the_dark_theme(qapp):
    from PySide6.QtCore import QSize
    from PySide6.QtGui import QIcon

    from guidl.qt.icons import icon

    def opacity(image) -> float:
        alphas = [image.pixelColor(x, y).alphaF() for x in range(image.width()) for y in range(image.height())]
        return max(alphas)

    old = qapp.palette()
    try:
        qapp.setPalette(_dark(qapp))
        for name in ("train", "undo", "save"):
            normal = icon(name).pixmap(QSize(24, 24), QIcon.Mode.Normal).toImage()
            disabled = icon(name).pixmap(QSize(24, 24), QIcon.Mode.Disabled).toImage()
            assert normal != disabled
            assert opacity(disabled) <= 0.5 * opacity(normal)
        # The neutral strokes turn light on a dark background.
        undo = icon("undo").pixmap(QSize(24, 24)).toImage()
        assert max(undo.pixelColor(x, y).lightness() for x in range(24) for y in range(24)
                   if undo.pixelColor(x, y).alpha() > 200) > 180
    finally:
        qapp.setPalette(old)


def test_the_learning_rate_axis_labels_do_not_pile_up_within_a_decade(charts, qtbot):
    """A constant rate of 0.003 for two epochs: pyqtgraph labelled 0.002 ... 0.009 one on another."""
    from PySide6.QtGui import QFont, QFontMetricsF

    charts.add_epoch({"epoch": 1, "lr": 0.003, "train_loss": 1.0})
    charts.add_epoch({"epoch": 2, "lr": 0.003, "train_loss": 0.9})
    charts.refresh()
    axis = charts.lr_plot.getAxis("left")
    qtbot.waitUntil(lambda: axis.range[0] < -2)  # the view has ranged to log10(0.003)
    low, high = axis.range
    height = axis.geometry().height()
    levels = axis.tickValues(low, high, height)
    shown = [v for spacing, values in levels[:1] for v in values]
    assert shown, "the axis keeps some labels"
    per = height / (high - low)
    need = QFontMetricsF(axis.style["tickFont"] or QFont()).height()
    assert all((b - a) * per >= need for a, b in zip(shown, shown[1:]))
    assert {round(10 ** (v - np.floor(v))) % 10 or 1 for v in shown} <= {1, 2, 5}
