"""Live training charts (pyqtgraph).

One curve per series, created once and fed with ``setData`` from growing
NumPy buffers by a timer, so a fast model never redraws more than the timer
allows; long runs stay smooth with peak downsampling and clip-to-view.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, Qt, QTimer, Slot
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPalette
from PySide6.QtWidgets import QGraphicsItem, QLabel, QVBoxLayout, QWidget

REFRESH_HZ = 25
PALETTE_EVENTS = (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange)
COLLAPSE_STYLE = "color: #b45309; font-weight: bold;"
#: The fine-tune schedule's unfreeze marker: the ice blue of frozen layers.
UNFROZEN_COLOUR = (14, 116, 144)
#: Overlaid runs' colours: none is a live curve's hue (blue, orange, green,
#: red, purple) or the unfreeze marker's, and each has the middle lightness
#: that reads on the light theme's white and the dark theme's near-black.
OVERLAY_COLOURS = ((219, 39, 119), (6, 148, 162), (150, 150, 0), (128, 118, 110), (192, 38, 211),
                   (132, 204, 22), (146, 64, 14), (79, 70, 229))


def overlay_colour(index: int) -> QColor:
    """The colour of the ``index``-th overlaid run (0-based): the palette
    above, then hues a golden angle apart (as many runs as are ticked)."""
    if index < len(OVERLAY_COLOURS):
        return QColor(*OVERLAY_COLOURS[index])
    hue = int(index * 137.508) % 360
    return QColor.fromHsl(hue, 170, 115)


@dataclass
class OverlayRun:
    """A finished (or running) run drawn beside the live one: its name in
    the legend, its colour, and its metrics.csv columns (``epoch``,
    ``train_loss``, ``val_loss``, ``train_accuracy``, ``lr``, ...), NaN where
    an epoch has no value."""

    label: str
    colour: QColor | str
    metrics: dict[str, np.ndarray] = field(default_factory=dict)


#: Characters that would draw as nothing (or break a line) in a class name,
#: as symbols common fonts have (DejaVu lacks the U+2400 "control pictures").
_SHOWN_AS = {"\n": "\u21b5", "\t": "\u21e5"}
VISIBLE_SPACE = "\u2423"


def visible_text(name: str) -> str:
    """A class name as it can be seen: a line break as ``↵``, a tab as ``⇥``,
    other control characters as ``\\xNN``, spaces at either end (where they
    would be invisible: a text dataset's space class) as ``␣``; empty as ``∅``."""
    if not name:
        return "\u2205"

    def shown(c: str) -> str:
        if c in _SHOWN_AS:
            return _SHOWN_AS[c]
        code = ord(c)
        return f"\\x{code:02x}" if code < 32 or code == 127 else c

    text = "".join(shown(c) for c in name)
    core = text.strip(" ")
    start = len(text) - len(text.lstrip(" "))
    end = len(text) - len(text.rstrip(" ")) if core else 0
    return VISIBLE_SPACE * start + core + VISIBLE_SPACE * end


class CategoryAxis(pg.AxisItem):
    """An axis of named categories (classes) at ``offset + i``: every name
    while they fit, else every second, fifth, tenth... one, so that labels
    never run into each other however many classes and however narrow the
    plot. Names longer than ``MAX_CHARS`` are cut with an ellipsis."""

    PAD = 6  # pixels between two labels
    MAX_CHARS = 16

    def __init__(self, orientation: str, **kwargs):
        super().__init__(orientation, **kwargs)
        self.names: list[str] = []
        self.offset = 0.0
        self.shown: list[str] = []  # the labels of the last layout (for tests)
        self._room = float("inf")  # pixels each shown label may take

    def set_names(self, names: list[str], offset: float = 0.0) -> None:
        self.names = [visible_text(str(n)) for n in names]
        self.offset = offset
        self.picture = None
        self.update()

    def _metrics(self) -> QFontMetricsF:
        return QFontMetricsF(self.style["tickFont"] or QFont())

    def tickValues(self, minVal: float, maxVal: float, size: float):  # noqa: N802 - pyqtgraph's name
        if not self.names:
            return super().tickValues(minVal, maxVal, size)
        low, high = sorted((minVal, maxVal))
        if high <= low or size <= 0:
            return []
        per = size / (high - low)  # pixels per category
        metrics = self._metrics()
        if self.orientation in ("left", "right"):
            need = metrics.height() + 2  # labels stack vertically
        else:
            # Whole names, fewer of them: cut names ("cl…", "cl…") could not be told apart.
            need = max(metrics.horizontalAdvance(n[:self.MAX_CHARS]) for n in self.names) + self.PAD
        step = 1
        for factor in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000):
            step = factor
            if per * step >= need:
                break
        values = [i + self.offset for i in range(0, len(self.names), step)
                  if low <= i + self.offset <= high]
        self._room = per * step - self.PAD
        return [(float(step), values)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        if not self.names:
            return super().tickStrings(values, scale, spacing)
        metrics = self._metrics()
        strings = []
        for value in values:
            index = int(round(value - self.offset))
            name = self.names[index] if 0 <= index < len(self.names) else ""
            if len(name) > self.MAX_CHARS:
                name = name[:self.MAX_CHARS - 1] + "\u2026"
            if self.orientation in ("top", "bottom"):
                name = metrics.elidedText(name, Qt.TextElideMode.ElideRight, max(self._room, 1))
            strings.append(name)
        self.shown = strings
        return strings


class LogAxis(pg.AxisItem):
    """A vertical log axis whose labels never pile up: within one decade
    pyqtgraph labels every 2, 3, ... 9 times a power of ten, and the upper
    ones crowd together (0.006 0.007 0.008 0.009 on top of each other). Only
    1, 2 and 5 times a power of ten are kept, and of those as many as fit."""

    def logTickValues(self, minVal, maxVal, size, stdTicks):  # noqa: N802 - pyqtgraph's name
        levels = super().logTickValues(minVal, maxVal, size, stdTicks)
        if maxVal <= minVal or size <= 0:
            return levels
        per = size / (maxVal - minVal)  # pixels per decade
        need = QFontMetricsF(self.style["tickFont"] or QFont()).height() * 1.2
        thinned = []
        for spacing, values in levels:
            if spacing is None:  # the in-between ticks
                kept: list[float] = []
                for value in values:
                    mantissa = round(10 ** (value - math.floor(value))) % 10 or 1
                    if mantissa in (1, 2, 5) and (not kept or (value - kept[-1]) * per >= need):
                        kept.append(value)
                values = kept
            thinned.append((spacing, values))
        return thinned


def follow_palette(view: pg.GraphicsView, palette: QPalette) -> None:
    """Give a pyqtgraph view the palette's colours (pyqtgraph paints its own):
    background, axes and their labels, plot titles and legend entries. Widgets
    holding plots call this from ``changeEvent``, so a theme switched while the
    window is open reaches them."""
    background = palette.color(QPalette.ColorRole.Base)
    text = palette.color(QPalette.ColorRole.Text)
    view.setBackground(background)
    for item in view.scene().items():
        if isinstance(item, pg.AxisItem):
            item.setPen(pg.mkPen(text))
            item.setTextPen(pg.mkPen(text))
        elif isinstance(item, pg.LegendItem):
            item.setLabelTextColor(text)
            for _, label in item.items:  # setLabelTextColor keeps the old colour on screen
                label.setText(label.text, color=text)
        elif isinstance(item, pg.PlotItem) and item.titleLabel.text:
            item.titleLabel.setText(item.titleLabel.text, color=text)


class Series:
    """A growing pair of float arrays (amortised doubling).

    ``display()`` hands the plot at most ``display_points`` points however
    long the run: past that, complete buckets of raw points are reduced to
    their minimum and maximum (peak decimation, so spikes stay visible), and
    only the points added since the last call are reduced. A refresh thus
    costs the same at a million points as at ten thousand.
    """

    DISPLAY_POINTS = 4096  # about two per pixel of a wide plot

    def __init__(self, capacity: int = 1024, display_points: int = DISPLAY_POINTS):
        self.display_points = display_points
        self.x = np.empty(capacity)
        self.y = np.empty(capacity)
        self.size = 0
        self._low, self._high = math.inf, -math.inf
        self._reset_buckets()

    def bounds(self) -> tuple[float, float] | None:
        """Smallest and largest y so far (None when empty)."""
        return (self._low, self._high) if self._low <= self._high else None

    def _reset_buckets(self) -> None:
        self._bucket = 0  # raw points per bucket; 0 while the raw data is shown
        self._reduced = 0  # raw points folded into complete buckets
        self._bx = np.empty(0)
        self._by = np.empty(0)

    def append(self, x: float, y: float) -> None:
        if self.size == len(self.x):
            self.x = np.resize(self.x, 2 * self.size)
            self.y = np.resize(self.y, 2 * self.size)
        self.x[self.size] = x
        self.y[self.size] = y
        self.size += 1
        self._low, self._high = min(self._low, y), max(self._high, y)

    def extend(self, xs: np.ndarray, ys: np.ndarray) -> None:
        needed = self.size + len(xs)
        if needed > len(self.x):
            capacity = max(needed, 2 * len(self.x))
            self.x = np.resize(self.x, capacity)
            self.y = np.resize(self.y, capacity)
        self.x[self.size:needed] = xs
        self.y[self.size:needed] = ys
        self.size = needed
        if len(ys):  # batch losses are finite: the trainer stops at the first that is not
            self._low, self._high = min(self._low, float(np.min(ys))), max(self._high, float(np.max(ys)))

    def clear(self) -> None:
        self.size = 0
        self._low, self._high = math.inf, -math.inf
        self._reset_buckets()

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[:self.size], self.y[:self.size]

    def display(self, x_range: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """At most about ``display_points`` points: the whole series, or the
        part within ``x_range`` (with one point beyond each end) when zoomed."""
        if x_range is not None and self.size and x_range[0] <= self.x[0] \
                and x_range[1] >= self.x[self.size - 1]:
            x_range = None  # the whole series is in view
        if x_range is not None and self.size > self.display_points:
            xs = self.x[:self.size]
            start = max(int(np.searchsorted(xs, x_range[0])) - 1, 0)
            stop = min(int(np.searchsorted(xs, x_range[1], side="right")) + 1, self.size)
            bucket = -(-(stop - start) // (self.display_points // 2))
            if bucket <= 1:
                return self.x[start:stop], self.y[start:stop]
            px, py = _peaks(self.x[start:stop], self.y[start:stop], bucket)
            # The points just beyond the view, so the line reaches its edges.
            return (np.concatenate([self.x[start:start + 1], px, self.x[stop - 1:stop]]),
                    np.concatenate([self.y[start:start + 1], py, self.y[stop - 1:stop]]))
        if self.size <= self.display_points:
            if self._bucket:
                self._reset_buckets()
            return self.view()
        bucket = max(self._bucket, 1)
        while self.size // bucket * 2 > self.display_points:
            bucket *= 2
        if bucket != self._bucket:  # coarser buckets: reduce everything again (rare)
            self._bucket, self._reduced = bucket, 0
            self._bx, self._by = np.empty(0), np.empty(0)
        complete = self.size // bucket * bucket
        if complete > self._reduced:
            bx, by = _peaks(self.x[self._reduced:complete], self.y[self._reduced:complete], bucket)
            self._bx, self._by = np.concatenate([self._bx, bx]), np.concatenate([self._by, by])
            self._reduced = complete
        return (np.concatenate([self._bx, self.x[complete:self.size]]),
                np.concatenate([self._by, self.y[complete:self.size]]))

    def nearest(self, x: float) -> tuple[float, float] | None:
        if not self.size:
            return None
        xs = self.x[:self.size]
        i = int(np.clip(np.searchsorted(xs, x), 1, self.size - 1)) if self.size > 1 else 0
        if self.size > 1 and abs(xs[i - 1] - x) < abs(xs[i] - x):
            i -= 1
        return float(xs[i]), float(self.y[i])


def _peaks(x: np.ndarray, y: np.ndarray, bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """Each complete bucket of ``bucket`` points as its minimum and maximum,
    in their order along x; a last partial bucket is kept as it is."""
    complete = len(y) // bucket * bucket
    rows = np.arange(complete // bucket)
    shaped = y[:complete].reshape(-1, bucket)
    low, high = shaped.argmin(axis=1), shaped.argmax(axis=1)
    first = rows * bucket + np.minimum(low, high)
    second = rows * bucket + np.maximum(low, high)
    index = np.empty(2 * len(rows), dtype=np.int64)
    index[0::2], index[1::2] = first, second
    return (np.concatenate([x[index], x[complete:]]), np.concatenate([y[index], y[complete:]]))


#: The loss plot's curves and the metric plot's of every task trained on a target per sample.
_EPOCH_LOSSES = [("batch", "batch"), ("smooth", "batch (smoothed)"), ("train_loss", "train (epoch)"),
                 ("val_loss", "validation")]
_TRAIN_AND_VALIDATION = [("train_metric", "train"), ("val_metric", "validation")]

#: What an overlaid run draws on the loss and metric plots: pairs of
#: metrics.csv columns, the first drawn dashed (training), the second solid
#: (validation). The charts' task picks the pair; a run that lacks it (a run of
#: another task) draws the first pair it has.
_OVERLAY_PAIRS = {
    "loss": [("train_loss", "val_loss"), ("d_loss", "g_loss")],
    "metric": [("train_accuracy", "val_accuracy"), ("train_mae", "val_mae"), (None, "val_psnr"),
               ("d_real", "d_fake")],
}
_OVERLAY_TASK_PAIR = {"classification": ("train_loss", "train_accuracy"),
                      "text_generation": ("train_loss", "train_accuracy"),
                      "regression": ("train_loss", "train_mae"),
                      "reconstruction": ("train_loss", "val_psnr"), "gan": ("d_loss", "d_real")}
#: How the hover line names an overlaid run's column.
_OVERLAY_NAMES = {
    "train_loss": "train loss", "val_loss": "validation loss", "d_loss": "discriminator loss",
    "g_loss": "generator loss", "train_accuracy": "train accuracy", "val_accuracy": "validation accuracy",
    "train_mae": "train MAE", "val_mae": "validation MAE", "val_psnr": "validation PSNR",
    "d_real": "D(x)", "d_fake": "D(G(z))", "lr": "learning rate"}
#: An overlaid run's curves: (plot, which of the pair): 0 dashed, 1 solid.
_OVERLAY_ROLES = (("loss", 0), ("loss", 1), ("metric", 0), ("metric", 1), ("lr", 1))
#: How near (pixels) the pointer must pass an overlaid curve for the hover line to name its run.
_HOVER_REACH = 12.0


def _pair_for(metrics: dict, plot_key: str, task: str) -> tuple[str | None, str | None]:
    """The columns an overlaid run draws on ``plot_key`` ("loss", "metric",
    "lr") for the charts' ``task``."""
    if plot_key == "lr":
        return (None, "lr")
    pairs = _OVERLAY_PAIRS[plot_key]
    wanted = _OVERLAY_TASK_PAIR.get(task, _OVERLAY_TASK_PAIR["classification"])
    ordered = sorted(pairs, key=lambda pair: pair[0] not in wanted and pair[1] not in wanted)

    def has(column):
        values = metrics.get(column) if column else None
        return values is not None and bool(np.isfinite(np.asarray(values, dtype=float)).any())

    return next((pair for pair in ordered if has(pair[0]) or has(pair[1])), (None, None))


class _OverlayCurves:
    """One overlaid run's curves (loss, metric and learning-rate plots) and
    its legend sample. Created once and kept: the next run shown in its place
    reuses them with ``setData``."""

    def __init__(self):
        self.items = {role: pg.PlotDataItem() for role in _OVERLAY_ROLES}
        for item in self.items.values():
            # Behind the live curves, whose newest points are what one watches.
            item.setZValue(-1)
            item.setDownsampling(auto=False)
            item.setClipToView(False)
        #: The legend's sample, in no plot: a click on it in the legend hides
        #: or shows the run's curves (pyqtgraph toggles the sample's item).
        self.key = pg.PlotDataItem()
        self.run: OverlayRun | None = None
        #: Per role, the column drawn (None: nothing) and its finite points.
        self.columns: dict[tuple[str, int], str | None] = {}
        self.points: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    def style(self, colour: QColor) -> None:
        for (_, which), item in self.items.items():
            dash = Qt.PenStyle.DashLine if which == 0 else Qt.PenStyle.SolidLine
            item.setPen(pg.mkPen(colour, width=1.5, style=dash))
            # Solid markers on validation, hollow on training: a one-epoch run shows too.
            item.setSymbol("o")
            item.setSymbolSize(5)
            item.setSymbolPen(pg.mkPen(colour, width=1))
            item.setSymbolBrush(pg.mkBrush(colour) if which == 1 else pg.mkBrush(0, 0, 0, 0))
        self.key.setPen(pg.mkPen(colour, width=2.5))


class _RunsLegend(pg.LegendItem):
    """The overlaid runs' legend: a click on a run's name hides or shows the
    run as one on its colour sample does (pyqtgraph's names take no clicks:
    only the 20-pixel sample did, and a click on the name did nothing)."""

    def mouseClickEvent(self, event) -> None:  # noqa: N802 - pyqtgraph's name
        # The scene offers the click to the items under it, the name's text
        # first (it takes none), then this legend around it.
        if event.button() != Qt.MouseButton.LeftButton:
            return
        point = event.scenePos()
        for sample, label in self.items:
            if label.isVisible() and label.sceneBoundingRect().contains(point):
                sample.mouseClickEvent(event)  # toggles and emits sigSampleClicked, as a click on it
                return


def _first_given(metrics: dict, *names: str):
    """The first of ``names`` that ``metrics`` holds a value for."""
    return next((metrics[name] for name in names if metrics.get(name) is not None), None)


class TrainingCharts(QWidget):
    """Loss (per batch, smoothed, and per epoch), accuracy and learning rate;
    for a GAN the two networks' losses and D(x), D(G(z)) with a warning when
    training collapses; for an autoencoder the validation PSNR."""

    SMOOTHING = 0.9  # weight of the past in the smoothed batch loss
    SMOOTH_POINTS = 512  # the smoothed loss's points on screen, at most
    LEGEND_WIDTH = 340  # pixels a legend of two columns may take

    #: Per task: the second chart's title and, per plot, the curves shown with
    #: their legend names. Every curve exists from the start (pyqtgraph items are
    #: created once); a task only shows some and names them.
    LAYOUTS = {
        "classification": ("Accuracy", {
            "loss": _EPOCH_LOSSES,
            "metric": _TRAIN_AND_VALIDATION}),
        "regression": ("Mean absolute error", {
            "loss": _EPOCH_LOSSES,
            "metric": _TRAIN_AND_VALIDATION}),
        "gan": ("D(x), D(G(z)), class coverage", {
            "loss": [("batch", "generator (batch)"), ("smooth", "generator (smoothed)"),
                     ("d_loss", "discriminator (epoch)"), ("g_loss", "generator (epoch)")],
            "metric": [("d_real", "D(x): real judged real"), ("d_fake", "D(G(z)): fake judged real"),
                       ("judge_coverage", "class coverage of {samples} samples")]}),
        # Trained as a classifier of the next character: its accuracy, named for what it is.
        "text_generation": ("Next-character accuracy", {
            "loss": _EPOCH_LOSSES,
            "metric": _TRAIN_AND_VALIDATION}),
        "reconstruction": ("Validation PSNR (dB)", {
            "loss": _EPOCH_LOSSES,
            "metric": [("val_psnr", "validation PSNR")]}),
    }
    #: EpochMetrics fields drawn as they are, each by the curve of its name.
    DIRECT = ("d_loss", "g_loss", "d_real", "d_fake", "judge_coverage", "val_psnr")
    #: The learning-rate chart's title and legend per task: a GAN's second
    #: optimizer has no schedule (GANs refuse schedulers), so its rate is constant.
    LR_LAYOUTS = {"gan": ("Learning rate (discriminator: constant)", [("lr", "generator")])}

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.hover = QLabel(" ")
        self.hover.setTextFormat(Qt.TextFormat.PlainText)  # a run's name is shown as typed
        self.hover.setObjectName("chartHover")
        layout.addWidget(self.hover)
        #: Said above the charts while a GAN's last epochs look collapsed.
        self.warning = QLabel()
        self.warning.setObjectName("collapseWarning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(COLLAPSE_STYLE)
        self.warning.hide()
        layout.addWidget(self.warning)
        background = self.palette().color(QPalette.ColorRole.Base)
        foreground = self.palette().color(QPalette.ColorRole.Text)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(background)
        layout.addWidget(self.graphics)
        pen = pg.mkPen(foreground)
        # Row 0: the overlaid runs' legend (empty and of no height while none are ticked).
        self.loss_plot = self._plot("Loss", "epoch", pen, row=1)
        self.metric_plot = self._plot("Accuracy", "epoch", pen, row=3)
        self.lr_plot = self._plot("Learning rate", "epoch", pen, row=5, left=LogAxis("left"))
        # Learning rates change by factors: a log axis shows a schedule's shape and
        # keeps a constant rate readable.
        self.lr_plot.setLogMode(x=False, y=True)
        for plot in (self.loss_plot, self.metric_plot):  # the plots share x: named once, at the bottom
            plot.getAxis("bottom").showLabel(False)
        self.metric_plot.setXLink(self.loss_plot)
        self.lr_plot.setXLink(self.loss_plot)
        # Each legend under its plot, in two columns: inside the plot it hid the
        # lines that run near the top (D(x), a loss's first epochs), and beside
        # it took the width of a pane that shares the tab with the samples.
        for row, plot in enumerate((self.loss_plot, self.metric_plot, self.lr_plot)):
            legend = pg.LegendItem(colCount=2, labelTextSize="8pt", verSpacing=-6)
            legend.setLabelTextColor(foreground)
            self.graphics.addItem(legend, row=2 * row + 2, col=0)
            self.graphics.ci.layout.setAlignment(legend, Qt.AlignmentFlag.AlignHCenter)
            plot.legend = legend
        # Overlaid runs: one legend entry per run (not per curve), above the plots,
        # with the key to their lines; see set_overlays.
        # The key on a line of its own: beside the entries it made a narrow pane's charts too wide.
        self.runs_box = self.graphics.addLayout(row=0, col=0)
        self.runs_key = pg.LabelItem("", size="8pt", justify="left")
        self.runs_box.addItem(self.runs_key, row=0, col=0)
        self.runs_legend = _RunsLegend(colCount=4, labelTextSize="8pt", verSpacing=-6)
        self.runs_legend.setLabelTextColor(foreground)
        self.runs_box.addItem(self.runs_legend, row=1, col=0)
        self.runs_box.layout.setAlignment(self.runs_legend, Qt.AlignmentFlag.AlignHCenter)
        self.runs_box.layout.setVerticalSpacing(0)
        self.runs_legend.sigSampleClicked.connect(self._run_toggled)
        self._plots = {"loss": self.loss_plot, "metric": self.metric_plot, "lr": self.lr_plot}
        #: The runs drawn beside the live one, and a set of curves per run (kept
        #: when fewer runs are shown, for the next ones).
        self.overlays: list[OverlayRun] = []
        self._overlay_curves: list[_OverlayCurves] = []
        self._overlay_loss: tuple[float, float] | None = None  # the overlays' loss range
        self._overlay_span = 0.0  # the longest overlaid run's last epoch
        self._planned: int | None = None  # the live run's epochs (plan)
        self._fit_runs_box()
        self.series = {name: Series() for name in (
            "batch", "train_loss", "val_loss", "train_metric", "val_metric", "lr") + self.DIRECT}
        # The smoothed loss has no spikes to keep: a few hundred points draw it
        # as well as thousands, and its wide line costs the window (and so the
        # training) by the segment.
        self.series["smooth"] = Series(display_points=self.SMOOTH_POINTS)

        def epoch_curve(plot, colour, symbol):
            return plot.plot(pen=pg.mkPen(colour, width=2), symbol=symbol, symbolSize=6, symbolBrush=colour)

        self.curves = {
            "batch": self.loss_plot.plot(pen=pg.mkPen((96, 165, 250, 90), width=1)),
            "smooth": self.loss_plot.plot(pen=pg.mkPen((37, 99, 235), width=2)),
            "train_loss": epoch_curve(self.loss_plot, (234, 88, 12), "o"),
            "val_loss": epoch_curve(self.loss_plot, (22, 163, 74), "s"),
            "d_loss": epoch_curve(self.loss_plot, (220, 38, 38), "s"),
            "g_loss": epoch_curve(self.loss_plot, (234, 88, 12), "o"),
            "train_metric": epoch_curve(self.metric_plot, (234, 88, 12), "o"),
            "val_metric": epoch_curve(self.metric_plot, (22, 163, 74), "s"),
            "d_real": epoch_curve(self.metric_plot, (22, 163, 74), "o"),
            "d_fake": epoch_curve(self.metric_plot, (220, 38, 38), "s"),
            "judge_coverage": epoch_curve(self.metric_plot, (37, 99, 235), "t"),
            "val_psnr": epoch_curve(self.metric_plot, (22, 163, 74), "s"),
            "lr": epoch_curve(self.lr_plot, (147, 51, 234), "t"),
        }
        # Where the fine-tune schedule unfroze layers: one line per plot,
        # created once and shown when an epoch says so.
        self.unfreeze_markers = [self._marker(plot, label) for plot, label in (
            (self.loss_plot, "unfrozen"), (self.metric_plot, "unfrozen"), (self.lr_plot, None))]
        self.task = ""
        self.samples = 64  # a GAN's samples per epoch, that the judge's coverage is of
        #: The epochs' metrics as received (the collapse rule reads the last few).
        self.epochs: list[dict] = []
        self.set_task("classification")
        for name, curve in self.curves.items():
            # Series.display() already hands over a few thousand points at most
            # (decimated, and clipped when zoomed): pyqtgraph need not redo it.
            curve.setDownsampling(auto=False)
            curve.setClipToView(False)
            if name not in ("batch", "smooth"):
                # Per-epoch lines and markers change once an epoch: painted into
                # pixmaps that the batch curves' repaints reuse (a tenth of the
                # loss chart's paint time).
                for item in (curve.curve, curve.scatter):
                    item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.loss_plot.sigXRangeChanged.connect(self._x_range_changed)
        self.loss_plot.vb.sigStateChanged.connect(self._x_range_changed)  # e.g. auto-range back on
        # While training, the axes stay put: x spans the whole planned run and
        # the loss axis moves in round steps only. Regenerating an axis costs
        # milliseconds of the GUI thread, which the training thread would wait
        # for. A zoom or pan by the user hands the ranges back to pyqtgraph.
        self._managed = False
        self._loss_range: tuple[float, float] | None = None
        self.loss_plot.vb.sigRangeChangedManually.connect(self._zoomed_by_user)
        self._smoothed: float | None = None
        # Only curves with new points are handed to pyqtgraph: a batch touches the
        # loss plot alone, so the other plots are not repainted 25 times a second.
        self._dirty: set[str] = set()
        self.redraws = 0
        self.timer = QTimer(self)
        self.timer.setInterval(int(1000 / REFRESH_HZ))
        self.timer.timeout.connect(self.refresh)  # stops at the first tick with nothing new
        self._proxy = pg.SignalProxy(self.graphics.scene().sigMouseMoved, rateLimit=30,
                                     slot=self._mouse_moved)
        follow_palette(self.graphics, self.palette())  # titles too, as after a theme switch

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in PALETTE_EVENTS:
            follow_palette(self.graphics, self.palette())
            self._fit_runs_box()  # the key's text colour

    def _plot(self, title: str, x_label: str, pen, row: int = 0, left: pg.AxisItem | None = None):
        plot = self.graphics.addPlot(row=row, col=0, title=title,
                                     axisItems={"left": left} if left is not None else None)
        plot.showGrid(x=True, y=True, alpha=0.15)
        plot.setLabel("bottom", x_label)
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setPen(pen)
            plot.getAxis(axis).setTextPen(pen)
        plot.getAxis("bottom").enableAutoSIPrefix(False)  # epochs are epochs, not "x0.001"
        for axis in ("left", "bottom", "top", "right"):
            item = plot.getAxis(axis)
            # Grid lines at the labelled ticks only: the finer levels tripled
            # the time to paint the charts.
            item.setStyle(maxTickLevel=0)
            # An axis (with its grid) is painted once into a pixmap that Qt
            # reuses until the axis changes: a new batch on the curve then
            # repaints without running the axis's Python paint code.
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        return plot

    @staticmethod
    def _marker(plot, label: str | None) -> pg.InfiniteLine:
        line = pg.InfiniteLine(angle=90, movable=False, label=label,
                               pen=pg.mkPen(UNFROZEN_COLOUR, width=1.5, style=Qt.PenStyle.DashLine),
                               labelOpts={"position": 0.98, "color": UNFROZEN_COLOUR, "anchors": [(0, 0), (0, 0)]})
        line.setVisible(False)
        plot.addItem(line, ignoreBounds=True)
        return line

    def mark_unfrozen(self, epoch: int, count: int) -> None:
        """Mark the start of ``epoch`` (1-based), where the fine-tune schedule
        unfroze ``count`` parameters: batches of epoch E lie between E - 1 and E."""
        for line in self.unfreeze_markers:
            line.setValue(epoch - 1)
            line.setToolTip(f"epoch {epoch}: the fine-tune schedule unfroze {count:,} parameters")
            line.setVisible(True)

    def plan(self, epochs: int) -> None:
        """Fix the x axis to the whole run of ``epochs`` (all plots share it),
        or to the longest overlaid run where that is longer."""
        self._managed = True
        self._planned = epochs
        self._loss_range = None
        self.loss_plot.enableAutoRange(x=False, y=False)
        self._set_planned_x()

    def _set_planned_x(self) -> None:
        self.loss_plot.setXRange(0, max(self._planned or 1, self._overlay_span, 1), padding=0.02)

    @Slot()
    def _zoomed_by_user(self) -> None:
        self._managed = False

    def _manage_loss_range(self) -> None:
        found = [b for b in (self.series[n].bounds()
                             for n in ("batch", "train_loss", "val_loss", "d_loss", "g_loss")) if b]
        if self._overlay_loss is not None:
            found.append(self._overlay_loss)
        if not found:
            return
        low, high = min(b[0] for b in found), max(b[1] for b in found)
        if self._loss_range is not None:  # during a run the range only grows
            low, high = min(low, self._loss_range[0]), max(high, self._loss_range[1])
        wanted = _round_range(low, high)
        if wanted != self._loss_range:
            self._loss_range = wanted
            self.loss_plot.setYRange(*wanted, padding=0)

    def set_task(self, task: str | None, params: dict | None = None) -> None:
        """Show the curves of ``task`` (a project's task, or the dataset's
        classification / regression), named for it in the legends; ``params``:
        the task's (a GAN's ``samples``, the count its per-epoch figures are of)."""
        task = task if task in self.LAYOUTS else "classification"
        samples = int((params or {}).get("samples", 64))
        if (task, samples) == (self.task, self.samples):
            return
        self.task, self.samples = task, samples
        title, plots = self.LAYOUTS[task]
        self.metric_plot.setTitle(title)
        lr_title, lr_legend = self.LR_LAYOUTS.get(task, ("Learning rate", []))
        self.lr_plot.setTitle(lr_title)
        shown = {name for curves in plots.values() for name, _ in curves} | {"lr"}
        for name, curve in self.curves.items():
            curve.setVisible(name in shown)
        self.curves["lr"].opts["name"] = "learning rate"
        for curves, plot in ((plots["loss"], self.loss_plot), (plots["metric"], self.metric_plot),
                             (lr_legend, self.lr_plot)):
            plot.legend.clear()
            for name, label in curves:
                label = label.format(samples=samples)
                self.curves[name].opts["name"] = label  # the hover line says it too
                plot.legend.addItem(self.curves[name], label)
        for legend in (self.loss_plot.legend, self.metric_plot.legend, self.lr_plot.legend):
            # Long names one under the other: two columns of them would make the
            # charts wider than their pane (and be cut off at its edge).
            legend.setColumnCount(2)
            if legend.layout.preferredWidth() > self.LEGEND_WIDTH:
                legend.setColumnCount(1)
            # As tall as its entries, none when empty: the plots get the rest.
            height = legend.layout.preferredHeight() if legend.items else 0
            legend.setMinimumHeight(height)
            legend.setMaximumHeight(height)
        follow_palette(self.graphics, self.palette())  # the new legend entries
        if self.overlays:  # the overlaid runs draw the new task's figures
            self._draw_overlays()

    def shown_curves(self, plot_key: str) -> list[str]:
        """The curves the ``"loss"`` or ``"metric"`` plot shows for the task."""
        return [name for name, _ in self.LAYOUTS[self.task][1][plot_key]]

    def set_overlays(self, runs: list[OverlayRun]) -> None:
        """Draw ``runs`` beside the live run, each in its colour: its training
        figures dashed and its validation ones solid on the loss and metric
        plots, its learning rate on that plot, and one legend entry (a click
        on it hides or shows the run). ``[]`` removes them. The curves are
        made once per place and fed anew on each call; a new live run
        (``clear``) keeps the overlays: only this changes them."""
        runs = list(runs)
        before = {curves.run.label: curves.key.isVisible()
                  for curves in self._overlay_curves[:len(self.overlays)] if curves.run}
        while len(self._overlay_curves) < len(runs):
            self._overlay_curves.append(_OverlayCurves())
        for index, curves in enumerate(self._overlay_curves):
            run = runs[index] if index < len(runs) else None
            curves.run = run
            for (plot_key, _), item in curves.items.items():
                plot = self._plots[plot_key]
                if run is not None and item not in plot.items:
                    plot.addItem(item)
                elif run is None and item in plot.items:
                    plot.removeItem(item)
            if run is not None:
                curves.style(pg.mkColor(run.colour))
                # A run hidden from the legend stays hidden while it stays ticked.
                curves.key.setVisible(before.get(run.label, True))
        self.overlays = runs
        self.runs_legend.clear()
        for curves in self._overlay_curves[:len(runs)]:
            # Legend labels are HTML: a run named "<b>" or "a & b" is shown as named.
            self.runs_legend.addItem(curves.key, html.escape(curves.run.label))
            sample, label = self.runs_legend.items[-1]
            sample.setToolTip("Click to hide or show this run's curves")
            label.setCursor(Qt.CursorShape.PointingHandCursor)  # the name toggles the run too
        self._fit_runs_box()
        self._draw_overlays()

    def _fit_runs_box(self) -> None:
        """The overlaid runs' legend as tall as its entries (none: no
        height), with the key to their lines beside it."""
        shown = bool(self.overlays)
        colour = self.palette().color(QPalette.ColorRole.PlaceholderText).name()
        room = self._runs_room()
        self.runs_key.setText("ticked runs \u2014 dashed: train, solid: validation" if shown else "",
                              color=colour)
        if self.runs_key.minimumWidth() > room:  # a narrow pane: on two lines
            self.runs_key.setText("ticked runs \u2014<br>dashed: train, solid: validation", color=colour)
        # As many to a row as fit the width the live legends keep to, and never more than the
        # pane shows: the scene is not scrolled, so an entry past its edge is not seen at all.
        legend = self.runs_legend
        for (_, label), curves in zip(legend.items, self._overlay_curves):
            label.setText(html.escape(curves.run.label))  # whole again: the pane may have widened
            label.setToolTip(curves.run.label)
        for columns in (4, 3, 2, 1):
            legend.setColumnCount(columns)
            legend.layout.activate()
            if legend.layout.preferredWidth() <= min(self.LEGEND_WIDTH, room):
                break
        self._elide_runs_legend(room)
        height = self.runs_legend.layout.preferredHeight() + self.runs_key.preferredHeight() \
            if shown else 0
        self.runs_box.setMinimumHeight(height)
        self.runs_box.setMaximumHeight(height)
        self.runs_box.setVisible(shown)

    def _runs_room(self) -> float:
        """The width the runs' legend may take: the charts' view less its margins."""
        view = self.graphics
        left, _, right, _ = view.ci.layout.getContentsMargins()
        box_left, _, box_right, _ = self.runs_box.layout.getContentsMargins()
        return view.width() - 2 * view.frameWidth() - left - right - box_left - box_right

    def _elide_runs_legend(self, room: float) -> None:
        """Shorten the names (in the middle, where a sweep's run names differ least) until one
        column fits ``room``; the tooltip keeps the whole name."""
        legend = self.runs_legend
        font = QFont(self.font())
        font.setPointSizeF(8)  # the legend's labelTextSize
        metrics = QFontMetricsF(font)
        for _ in range(4):  # a label's width is its text's plus the text item's margins: settle it
            legend.layout.activate()
            over = legend.layout.preferredWidth() - room
            if over <= 0:
                return
            # One column by now: the widest names set its width; those wider than it may be are cut.
            width = max(label.minimumWidth() for _, label in legend.items) - over - 1
            width = max(width, metrics.horizontalAdvance("\u2026") * 4)
            for (_, label), curves in zip(legend.items, self._overlay_curves):
                if label.minimumWidth() > width:
                    text = metrics.horizontalAdvance(curves.run.label) - (label.minimumWidth() - width)
                    label.setText(html.escape(metrics.elidedText(curves.run.label, Qt.TextElideMode.ElideMiddle,
                                                                 max(text, 0))))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if self.overlays:
            self._fit_runs_box()  # a narrower pane: fewer entries to a row, more rows

    def _draw_overlays(self) -> None:
        """Feed the overlaid runs' curves for the charts' task, and widen
        the view to them."""
        losses: list[np.ndarray] = []
        self._overlay_span = 0.0
        for curves in self._overlay_curves[:len(self.overlays)]:
            metrics = curves.run.metrics
            count = max((len(v) for v in metrics.values()), default=0)
            epochs = np.asarray(metrics.get("epoch", np.arange(1, count + 1)), dtype=float)
            for plot_key in ("loss", "metric", "lr"):
                pair = _pair_for(metrics, plot_key, self.task)
                for which in (0, 1):
                    role = (plot_key, which)
                    if role not in curves.items:
                        continue
                    column = pair[which]
                    values = metrics.get(column) if column else None
                    x = y = np.empty(0)
                    if values is not None:
                        y = np.asarray(values, dtype=float)
                        x = epochs[:len(y)]
                        y = y[:len(x)]
                        # As the live curves: a NaN or inf (a blank, a diverged loss) is left out.
                        keep = np.isfinite(x) & np.isfinite(y)
                        x, y = x[keep], y[keep]
                        if plot_key == "lr":
                            y = np.maximum(y, 1e-12)  # a log axis has no zero
                    curves.columns[role] = column if len(x) else None
                    curves.points[role] = (x, y)
                    curves.items[role].setData(x, y)
                    curves.items[role].setVisible(bool(len(x)) and curves.key.isVisible())
                    if len(x):
                        self._overlay_span = max(self._overlay_span, float(x.max()))
                        if plot_key == "loss":
                            losses.append(y)
        self._overlay_loss = None
        if losses:
            joined = np.concatenate(losses)
            self._overlay_loss = (float(joined.min()), float(joined.max()))
        if self._managed:  # a live run's fixed axes: widened to the overlays, or back
            self._loss_range = None
            self._set_planned_x()
            self._manage_loss_range()

    @Slot(object)
    def _run_toggled(self, key) -> None:
        """A click on a run's legend entry (pyqtgraph has toggled the
        sample's visibility): its curves follow."""
        for curves in self._overlay_curves[:len(self.overlays)]:
            if curves.key is key:
                for role, item in curves.items.items():
                    item.setVisible(key.isVisible() and curves.columns.get(role) is not None)

    def clear(self) -> None:
        """Forget the live run's curves (a new run starts); the overlaid runs stay."""
        for series in self.series.values():
            series.clear()
        self._managed = False
        self._planned = None
        self._loss_range = None
        self.loss_plot.enableAutoRange(x=True, y=True)  # the overlaid runs included
        self._smoothed = None
        self.epochs = []
        self.warning.hide()
        for line in self.unfreeze_markers:
            line.setVisible(False)
        self._dirty = set(self.series)
        self.refresh()

    def add_batches(self, xs: np.ndarray, losses: np.ndarray) -> None:
        """Batch losses at fractional epochs ``xs``."""
        smoothed = np.empty(len(losses))
        value = self._smoothed
        for i, loss in enumerate(losses):
            value = loss if value is None else self.SMOOTHING * value + (1 - self.SMOOTHING) * loss
            smoothed[i] = value
        self._smoothed = value
        self.series["batch"].extend(xs, losses)
        self.series["smooth"].extend(xs, smoothed)
        self._changed({"batch", "smooth"})

    @Slot(object)
    def add_epoch(self, metrics: dict) -> None:
        epoch = metrics["epoch"]
        values = {
            "train_loss": metrics.get("train_loss"), "val_loss": metrics.get("val_loss"),
            "lr": max(metrics["lr"], 1e-12),  # a log axis has no zero
            # A regression epoch holds its accuracy as None, not absent: take the first value given.
            "train_metric": _first_given(metrics, "train_accuracy", "train_mae"),
            "val_metric": _first_given(metrics, "val_accuracy", "val_mae"),
        }
        values.update((name, metrics.get(name)) for name in self.DIRECT)
        for name, value in values.items():
            # An inf or NaN (a diverged validation loss) cannot be drawn: it is left
            # out here, so it neither breaks the plot nor stretches its axis.
            if value is not None and math.isfinite(value):
                self.series[name].append(epoch, value)
        self._changed(set(values))
        unfrozen = metrics.get("unfrozen")
        if unfrozen and math.isfinite(unfrozen):  # a run's metrics.csv gives floats
            self.mark_unfrozen(epoch, int(unfrozen))
        self.epochs.append(metrics)
        warning = None
        if metrics.get("d_loss") is not None:
            from ..engine.tasks import collapse_warning  # loaded with torch, before any epoch comes

            warning = collapse_warning(self.epochs)
        self.warning.setText(f"\u26a0 Training may have collapsed: {warning}" if warning else "")
        self.warning.setVisible(bool(warning))

    def _changed(self, names: set[str]) -> None:
        """Mark curves for a refresh: at once when none was made in the last
        tick of the timer, else at its next tick. New points are thus drawn
        as they come, at most ``REFRESH_HZ`` times a second (a timer running
        on its own would drift against the reports and miss one in five), and
        an idle window is not woken at all."""
        self._dirty |= names
        if not self.timer.isActive():
            self.timer.start()  # first: a range change inside the refresh comes back here
            self.refresh()

    def refresh(self) -> None:
        if not self._dirty:
            self.timer.stop()
            return
        dirty, self._dirty = self._dirty, set()
        zoomed = None
        if not self.loss_plot.vb.autoRangeEnabled()[0]:  # a fixed or zoomed x range
            zoomed = tuple(self.loss_plot.vb.viewRange()[0])
        if self._managed and dirty & {"batch", "train_loss", "val_loss", "d_loss", "g_loss"}:
            self._manage_loss_range()
        for name in dirty:
            x, y = self.series[name].display(zoomed)
            # The batch losses are finite (the trainer stops on the first that
            # is not), so pyqtgraph's check for NaN and inf can be skipped.
            self.curves[name].setData(x, y, skipFiniteCheck=name in ("batch", "smooth"))
        self.redraws += 1

    @Slot()
    def _x_range_changed(self) -> None:
        """Zoomed in, a long run shows its detail; zoomed out (or back to the
        whole run with pyqtgraph's "A" button), its outline."""
        if self.series["batch"].size > self.series["smooth"].display_points:
            self._changed({"batch", "smooth"})

    def _mouse_moved(self, event) -> None:
        position = event[0]
        for plot_key, plot, names in (
                ("loss", self.loss_plot, [n for n in self.shown_curves("loss") if n != "batch"]),
                ("metric", self.metric_plot, self.shown_curves("metric")),
                ("lr", self.lr_plot, ("lr",))):
            if plot.sceneBoundingRect().contains(position):
                x = plot.vb.mapSceneToView(position).x()
                parts = []
                for name in names:
                    found = self.series[name].nearest(x)
                    if found:
                        parts.append(f"{self.curves[name].name() or name}: {found[1]:.4g} "
                                     f"(epoch {found[0]:.2f})")
                near = self._overlay_near(plot_key, position)
                if near:  # first: the curve under the pointer, before the line is cut at the edge
                    parts.insert(0, near)
                self.hover.setText("   ".join(parts) if parts else " ")
                return

    def _overlay_near(self, plot_key: str, position: QPointF) -> str | None:
        """The overlaid run whose curve on ``plot_key`` passes under the
        pointer (within a few pixels, at the pointer's epoch), as "run:
        validation loss 0.31 (epoch 4)"; None when none does."""
        vb = self._plots[plot_key].vb
        x = vb.mapSceneToView(position).x()
        best: tuple[float, str] | None = None
        for curves in self._overlay_curves[:len(self.overlays)]:
            for role, item in curves.items.items():
                column = curves.columns.get(role)
                if role[0] != plot_key or column is None or not item.isVisible():
                    continue
                shown_x, shown_y = item.getData()  # as drawn (log10 on the learning-rate plot)
                if shown_x is None or not len(shown_x) or not shown_x[0] <= x <= shown_x[-1]:
                    continue
                at = vb.mapViewToScene(QPointF(x, float(np.interp(x, shown_x, shown_y))))
                distance = abs(at.y() - position.y())
                if distance <= _HOVER_REACH and (best is None or distance < best[0]):
                    epochs, values = curves.points[role]
                    i = int(np.argmin(np.abs(epochs - x)))
                    best = (distance, f"{curves.run.label}: {_OVERLAY_NAMES.get(column, column)} "
                                      f"{values[i]:.4g} (epoch {epochs[i]:g})")
        return best[1] if best else None


def _round_range(low: float, high: float) -> tuple[float, float]:
    """``low``..``high`` widened to multiples of a round step (1, 2 or 5
    times a power of ten, a fifth of the span or more), so that it changes
    seldom as a loss falls; a positive range near zero starts at zero."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return (0.0, 1.0)
    if 0 <= low < 0.5 * high:
        low = 0.0
    span = high - low or abs(high) or 1.0
    step = 10 ** math.floor(math.log10(span / 5))
    for factor in (1, 2, 5, 10):
        if span / (factor * step) <= 5:
            step *= factor
            break
    return (math.floor(low / step) * step, math.ceil(high / step) * step + (step if high == low else 0))
