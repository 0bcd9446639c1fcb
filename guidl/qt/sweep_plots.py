"""A sweep's results drawn (pyqtgraph): a parallel-coordinates plot of the
trials, one parameter against the metric, and each parameter's importance.

The rows are ``engine.sweep.trial_rows(study)``'s dicts (``number``,
``state``, ``value``, ``params``, ...). As in ``charts``, plot items are made
once and fed with ``setData``; the parallel plot keeps pools of lines and
labels that grow with the trials and axes and hide what is not used.

Colours say how good a trial was, whatever the direction: the best trials
are drawn on top, thicker and in the strongest colour of a perceptual map
(viridis) that suits the theme: bright yellow on a dark background, deep
violet on a light one, so the best line stands out on both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QFontMetricsF, QPalette
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..spec.paths import PathError, parse_path
from .charts import PALETTE_EVENTS, CategoryAxis, follow_palette

#: Optuna's trial states as ``trial_rows`` names them.
COMPLETE, PRUNED, FAIL = "COMPLETE", "PRUNED", "FAIL"
#: Pixels from a line or point within which the mouse names its trial.
HOVER_PIXELS = 8
#: Pixels between a tick label and its axis, and around the parallel plot's texts.
TEXT_GAP = 4
PRUNED_COLOUR = (148, 163, 184, 110)  # slate, faint: pruned trials have no final value
BEST_COLOUR = (234, 88, 12)  # the best trial's marker: orange on light and dark alike
EMPTY_NOTE = "No complete trials yet: each complete trial draws here as it finishes."


#: ``engine.sweep.trial_rows``'s names that are Optuna's FAIL: a failed trial,
#: and one a dead worker left that was run again ("retried").
_FAILED_NAMES = ("FAILED", "RETRIED")


def state_of(row: dict) -> str:
    """``"COMPLETE"``, ``"PRUNED"``, ``"FAIL"``, ``"RUNNING"``... whether the
    row says ``COMPLETE``, ``complete`` or ``TrialState.COMPLETE`` (or
    ``failed`` / ``retried``, as ``trial_rows`` does: ``FAIL``)."""
    state = str(row.get("state", "")).rsplit(".", 1)[-1].upper()
    return FAIL if state in _FAILED_NAMES else state


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def complete_rows(rows: Iterable[dict]) -> list[dict]:
    """The rows of complete trials with a finite metric value."""
    return [row for row in rows if state_of(row) == COMPLETE and _finite(row.get("value"))]


def short_names(paths: list[str]) -> dict[str, str]:
    """Each path by its last two steps, ``params`` left out and an index kept
    with its list (``training.optimizer.params.lr`` -> ``optimizer.lr``,
    ``model.layers[4].params.out_features`` -> ``layers[4].out_features``);
    longer where two would read the same (a generator's and a discriminator's
    layer)."""
    steps: dict[str, list[str]] = {}
    for path in paths:
        try:
            parts = parse_path(path)
        except PathError:
            steps[path] = [path]
            continue
        words: list[str] = []
        for part in parts:
            if isinstance(part, int) and words:
                words[-1] += f"[{part}]"  # an index stays with its list: layers[4]
            elif part != "params":
                words.append(str(part))
        steps[path] = words or [path]
    names: dict[str, str] = {}
    for path in paths:
        count = 2
        while True:
            name = ".".join(steps[path][-count:])
            clash = [other for other in paths if other != path and ".".join(steps[other][-count:]) == name]
            if not clash or count >= len(steps[path]):
                break
            count += 1
        names[path] = name
    return names


def format_number(value: Any) -> str:
    """A trial's value or setting as the plots and the Sweep dialog's table show it:
    four significant digits; nothing for a value not there."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def tick_text(value: float) -> str:
    """A scale's label: three significant digits (an axis's ends are the trials' own values)."""
    return str(value) if isinstance(value, int) else f"{value:.3g}"


def _elide(item: pg.TextItem, text: str, pixels: float) -> str:
    """``text`` as it fits ``pixels`` in ``item``'s font, cut in the middle
    (``SGD w…mentum``): both ends of a name tell more than its start alone."""
    metrics = QFontMetricsF(item.textItem.font())
    return metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, max(pixels, metrics.averageCharWidth() * 3))


def spaced_ticks(places: list[tuple[float, str]], pixels_apart: float) -> list[int]:
    """Which ticks (``(pixel, text)``, in axis order) to label so that no two
    are closer than ``pixels_apart``: both ends always, an inner one only when
    it keeps that distance from its kept neighbours (an end wins over an
    inner tick beside it)."""
    if len(places) <= 2:
        return list(range(len(places)))
    last = len(places) - 1
    kept = [0]
    for i in range(1, last):
        if (abs(places[i][0] - places[kept[-1]][0]) >= pixels_apart
                and abs(places[last][0] - places[i][0]) >= pixels_apart):
            kept.append(i)
    return kept + [last]


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


class QualityColours:
    """A trial's colour from its quality (0 worst .. 1 best) on viridis,
    light or dark theme."""

    def __init__(self):
        self.map = pg.colormap.get("viridis")

    def colours(self, quality: np.ndarray, dark: bool) -> list[QColor]:
        # Dark background: worst a muted blue-violet, best bright yellow.
        # Light background: the map reversed and cut before its pale yellow,
        # so the worst is a light green and the best a deep violet.
        where = 0.18 + 0.82 * quality if dark else 0.82 * (1 - quality)
        return [QColor(*rgba) for rgba in self.map.map(np.asarray(where, dtype=float), mode="byte")]


def quality(values: np.ndarray, direction: str) -> np.ndarray:
    """0 (worst) .. 1 (best) per value; all 1 when they are equal."""
    if not len(values):
        return np.zeros(0)
    low, high = float(np.min(values)), float(np.max(values))
    if high <= low:
        return np.ones(len(values))
    scaled = (values - low) / (high - low)
    return 1 - scaled if direction == "minimize" else scaled


def best_index(values: list[float], direction: str) -> int | None:
    if not values:
        return None
    pick = min if direction == "minimize" else max
    return values.index(pick(values))


# -- one axis of the parallel plot -----------------------------------------------------------


@dataclass
class ParamAxis:
    """How one parameter's (or the metric's) values map to 0..1 on its axis:
    linear, log, or evenly spaced categories."""

    path: str
    title: str
    kind: str = "linear"  # "linear" | "log" | "category"
    low: float = 0.0
    high: float = 1.0
    categories: list[Any] = field(default_factory=list)
    integer: bool = False

    @classmethod
    def of(cls, path: str, title: str, values: list[Any], log: bool = False) -> "ParamAxis":
        present = [v for v in values if v is not None]
        numbers = [v for v in present if _finite(v)]
        if present and len(numbers) < len(present):  # text, booleans, or a mix: categories
            categories: list[Any] = []
            for value in present:
                if value not in categories:
                    categories.append(value)
            # In a fixed order, so that the axis does not reorder as trials come in.
            categories.sort(key=lambda v: (type(v).__name__, v if isinstance(v, (int, float, str)) else str(v)))
            return cls(path, title, "category", categories=categories)
        if log and numbers and min(numbers) > 0:
            return cls(path, title, "log", min(numbers), max(numbers))
        if not numbers:
            return cls(path, title, "linear", 0.0, 1.0)
        return cls(path, title, "linear", min(numbers), max(numbers),
                   integer=all(isinstance(v, int) for v in numbers))

    def position(self, value: Any) -> float:
        """Where ``value`` sits on the axis, 0 (bottom) .. 1 (top); NaN when absent."""
        if value is None:
            return math.nan
        if self.kind == "category":
            if value not in self.categories:
                return math.nan
            count = len(self.categories)
            return 0.5 if count == 1 else self.categories.index(value) / (count - 1)
        if not _finite(value):
            return math.nan
        if self.kind == "log":
            if value <= 0:
                return math.nan
            low, high, value = math.log10(self.low), math.log10(self.high), math.log10(value)
        else:
            low, high = self.low, self.high
        return 0.5 if high <= low else (value - low) / (high - low)

    def ticks(self) -> list[tuple[float, str]]:
        """Labelled places on the axis: (position, text)."""
        if self.kind == "category":
            return [(self.position(c), format_number(c)) for c in self.categories]
        if self.high <= self.low:
            return [(0.5, tick_text(self.low))]
        if self.kind == "log":
            values = _log_ticks(self.low, self.high)
        else:
            values = _linear_ticks(self.low, self.high, self.integer)
        return [(self.position(v), tick_text(v)) for v in values]


def _linear_ticks(low: float, high: float, integer: bool, count: int = 5) -> list[float]:
    """Round values from ``low`` to ``high``, about ``count`` of them, both ends included."""
    span = high - low
    step = 10 ** math.floor(math.log10(span / count))
    for factor in (1, 2, 5, 10):
        if span / (factor * step) <= count:
            step *= factor
            break
    if integer:
        step = max(1, round(step))
    inner = [k * step for k in range(math.ceil(low / step), math.floor(high / step) + 1)]
    # The ends themselves: the range is what the trials tried. An inner tick
    # too close to an end would print on top of it.
    values = [low] + [v for v in inner if min(v - low, high - v) > 0.3 * step] + [high]
    return [int(round(v)) if integer else float(v) for v in values]


def _log_ticks(low: float, high: float) -> list[float]:
    """1, 2 and 5 times powers of ten within the range (only powers of ten
    when those are many), and the ends."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for mantissas in ((1, 2, 5), (1,)):
        inner = [m * 10.0 ** e for e in range(first, last + 1) for m in mantissas
                 if low * 1.0001 < m * 10.0 ** e < high / 1.0001]
        if len(inner) <= 4:
            break
    ends = [low, high]
    kept = [v for v in inner if min(math.log10(v / low), math.log10(high / v)) > 0.08 * math.log10(high / low)]
    return [ends[0], *kept, ends[1]]


# -- shared helpers ------------------------------------------------------------------------


def _plain_plot(widget: pg.PlotWidget) -> pg.PlotItem:
    plot = widget.getPlotItem()
    plot.setMenuEnabled(False)
    plot.hideButtons()
    return plot


def _text_colour(palette: QPalette, faint: bool = False) -> QColor:
    colour = QColor(palette.color(QPalette.ColorRole.Text))
    if faint:
        colour.setAlpha(170)
    return colour


class _Hover(QLabel):
    """The line under a plot that names what the mouse is on."""

    def __init__(self, idle: str):
        super().__init__(idle)
        self.idle = idle
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def show_text(self, text: str | None) -> None:
        self.setText(text or self.idle)


def trial_text(row: dict, params: list[str], names: dict[str, str], metric: str) -> str:
    parts = [f"<b>trial {row.get('number', '?')}</b>"]
    state = state_of(row)
    if state != COMPLETE:
        parts[0] += f" ({state.lower()})"
    values = row.get("params") or {}
    parts += [f"{names.get(p, p)} {format_number(values[p])}" for p in params if p in values]
    if _finite(row.get("value")):
        parts.append(f"<b>{metric} {format_number(float(row['value']))}</b>")
    return " \u00b7 ".join(parts)


# -- parallel coordinates ------------------------------------------------------------------


class ParallelCoordinates(QWidget):
    """One vertical axis per parameter and one for the metric, each scaled to
    its own values; one line per complete trial, coloured by its metric; the
    pruned trials faint (their parameters only), the failed ones left out.
    Hovering a line names its trial and values."""

    trial_hovered = Signal(object)  # the trial's number, or None

    LINE_WIDTH = 1.6
    BEST_WIDTH = 3.2
    HOVER_WIDTH = 4.0

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.rows: list[dict] = []
        self.params: list[str] = []
        self.metric_name = ""
        self.direction = "minimize"
        self.log_params: frozenset[str] = frozenset()
        self.axes: list[ParamAxis] = []
        self.names: dict[str, str] = {}
        #: The drawn lines: complete trials, then pruned ones (faint).
        self.complete: list[dict] = []
        self.pruned: list[dict] = []
        self.failed = 0
        self._ys: list[np.ndarray] = []  # each drawn line's y per axis (complete, then pruned)
        self._hovered: int | None = None  # index into complete + pruned
        self._given: tuple | None = None  # set_rows's arguments last time
        self._mouse = None  # the scene point the mouse was last seen at
        self.colours = QualityColours()
        self.caption = QLabel(EMPTY_NOTE)
        self.caption.setWordWrap(True)
        self.view = pg.PlotWidget()
        self.view.setMinimumHeight(220)
        self.plot = _plain_plot(self.view)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.vb.setDefaultPadding(0)
        # Axis lines and their tick marks: two items, however many axes.
        self.axis_lines = pg.PlotCurveItem(connect="pairs")
        self.tick_marks = pg.PlotCurveItem(connect="pairs")
        for item in (self.axis_lines, self.tick_marks):
            item.setZValue(1000)  # over the lines: the scale stays readable
            self.plot.addItem(item)
        self.lines: list[pg.PlotCurveItem] = []  # pooled: one per drawn trial
        self.titles: list[pg.TextItem] = []  # pooled: one per axis
        self.labels: list[pg.TextItem] = []  # pooled: tick labels
        self.hover = _Hover("Point at a line to see its trial.")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.hover)
        self._proxy = pg.SignalProxy(self.view.scene().sigMouseMoved, rateLimit=30, slot=self._mouse_moved)
        # The texts keep their size in pixels: a new size of the view places them anew.
        self.plot.vb.sigResized.connect(lambda _vb: self._layout())
        follow_palette(self.view, self.palette())
        self._draw()

    # -- data ------------------------------------------------------------------------------

    def set_rows(self, rows: list[dict], params: list[str], metric: str, direction: str,
                 log_params: Iterable[str] = frozenset()) -> None:
        """Draw ``rows`` (``trial_rows``'s dicts) on an axis per path of
        ``params`` and one for ``metric``; ``direction``: "minimize" or
        "maximize" (which end is best); ``log_params``: paths on a log scale."""
        given = (list(rows), list(params), metric, direction, frozenset(log_params))
        if given == self._given:
            return  # the dialog polls the study: an unchanged poll redraws nothing
        self._given = given
        self.rows, self.params, self.metric_name = list(rows), list(params), metric
        self.direction = direction
        self.log_params = frozenset(log_params)
        self.complete = complete_rows(self.rows)
        self.pruned = [row for row in self.rows if state_of(row) == PRUNED]
        self.failed = sum(state_of(row) == FAIL for row in self.rows)
        self.names = short_names(self.params)
        shown = self.complete + self.pruned
        self.axes = [ParamAxis.of(path, self.names[path], [(row.get("params") or {}).get(path) for row in shown],
                                  log=path in self.log_params) for path in self.params]
        arrow = "\u2193" if direction == "minimize" else "\u2191"
        self.axes.append(ParamAxis.of(metric, f"{metric} {arrow}", [float(row["value"]) for row in self.complete]))
        self._draw()

    def line_count(self) -> tuple[int, int]:
        """Lines drawn: (complete trials, pruned trials)."""
        return len(self.complete), len(self.pruned)

    def line_of(self, number: int) -> pg.PlotCurveItem | None:
        """The line drawn for trial ``number`` (None when it is not drawn)."""
        for i, row in enumerate(self.complete + self.pruned):
            if row.get("number") == number:
                return self.lines[i]
        return None

    # -- drawing ---------------------------------------------------------------------------

    def _pool(self, items: list, count: int, make) -> list:
        while len(items) < count:
            item = make()
            self.plot.addItem(item)
            items.append(item)
        for i, item in enumerate(items):
            item.setVisible(i < count)
        return items[:count]

    @staticmethod
    def _label(anchor=(1, 0.5)) -> pg.TextItem:
        item = pg.TextItem(anchor=anchor)
        # A thin margin: the rectangle (and its veil) is the text's own, so the
        # spacing of the ticks can be measured from it.
        item.textItem.document().setDocumentMargin(1)
        item.setZValue(1001)
        return item

    def _draw(self) -> None:
        palette = self.palette()
        dark = is_dark(palette)
        self._hovered = None
        count = len(self.axes)
        drawn = self.complete + self.pruned if count > 1 else []
        self.caption.setText(self._caption())
        self.view.setVisible(bool(self.complete))
        self.hover.setVisible(bool(self.complete))
        # Axes: vertical lines at x = 0, 1, ...; their ticks and texts are placed
        # in pixels by _layout (they depend on the view's size).
        xs = np.repeat(np.arange(count, dtype=float), 2)
        ys = np.tile([0.0, 1.0], count)
        self.axis_lines.setData(xs, ys, pen=pg.mkPen(_text_colour(palette), width=1.2))
        # Lines: complete trials by quality (the best on top), pruned ones faint below.
        values = np.array([float(row["value"]) for row in self.complete])
        good = quality(values, self.direction)
        colours = self.colours.colours(good, dark)
        best = best_index(list(values), self.direction)
        self._ys = []
        lines = self._pool(self.lines, len(drawn), lambda: pg.PlotCurveItem(connect="finite"))
        for i, (row, line) in enumerate(zip(drawn, lines)):
            given = row.get("params") or {}
            y = np.array([axis.position(given.get(axis.path)) for axis in self.axes[:-1]]
                         + [self.axes[-1].position(row.get("value")) if i < len(self.complete) else math.nan])
            self._ys.append(y)
            line.setData(np.arange(count, dtype=float), y)
            if i < len(self.complete):
                width = self.BEST_WIDTH if i == best else self.LINE_WIDTH
                line.setPen(pg.mkPen(colours[i], width=width))
                line.setZValue(10 + 10 * good[i] + (5 if i == best else 0))
            else:
                line.setPen(pg.mkPen(PRUNED_COLOUR, width=1, style=Qt.PenStyle.DashLine))
                line.setZValue(0)
        self._layout()
        # New trials came in under the mouse: what it points at, named again.
        self.hover_at(self._mouse) if self._mouse is not None else self.hover.show_text(None)

    #: Pixels of a tick mark, left of its axis.
    TICK_PIXELS = 6

    def _layout(self) -> None:
        """The scale's texts placed in pixels, whatever the view's size: the
        view's range leaves room above the axes for their titles and left of
        the first axis for its labels; a tick label too close to its
        neighbour is left out (the ends always stay); a label or title wider
        than the room between two axes is cut in the middle, whole in its
        tooltip."""
        palette = self.palette()
        text, faint = _text_colour(palette), _text_colour(palette, faint=True)
        count = len(self.axes)
        vb = self.plot.vb
        width, height = max(vb.width(), 1.0), max(vb.height(), 1.0)
        places = [axis.ticks() for axis in self.axes]
        titles = self._pool(self.titles, count, lambda: self._label(anchor=(0.5, 1)))
        labels = self._pool(self.labels, sum(len(p) for p in places), self._label)
        probe = titles[0] if titles else self._label()
        metrics = QFontMetricsF(probe.textItem.font())
        text_height = metrics.height() + 2  # with the document's margin of 1 px
        mark, gap = self.TICK_PIXELS, TEXT_GAP

        def wide(words: str) -> float:
            return metrics.horizontalAdvance(words) + 2 + 1  # margins, and rounding

        # Vertically: the axes span what is left below the titles (and half a label
        # above the top tick, half a label below the bottom one).
        top = text_height / 2 + gap + text_height + gap
        bottom = text_height / 2 + gap
        span = max(height - top - bottom, 1.0)
        per_y = 1.0 / span  # view units per pixel
        self.plot.setYRange(-bottom * per_y, 1 + top * per_y, padding=0)
        # Horizontally: the first axis's labels and half the outer titles at the edges.
        cap = max(48.0, 0.3 * width)  # no label takes more than this
        label_widths = [min(max((wide(t) for _, t in p), default=0.0), cap) for p in places]
        title_widths = [wide(axis.title) for axis in self.axes]
        spacing = width
        for _ in range(2):  # the second time with titles cut to the room between axes
            if count > 1:
                left = max(label_widths[0] + mark + 2 * gap, title_widths[0] / 2 + gap)
                right = title_widths[-1] / 2 + gap
                spacing = max((width - left - right) / (count - 1), 1.0)
            else:
                left = right = width / 2
            title_widths = [min(w, max(spacing - 2 * gap, 1.0)) for w in title_widths]
        per_x = 1.0 / spacing
        self.plot.setXRange(-left * per_x, max(count - 1, 0) + right * per_x, padding=0)
        for i, (item, axis) in enumerate(zip(titles, self.axes)):
            whole = wide(axis.title) <= title_widths[i] + 0.5
            item.setText(axis.title if whole else _elide(item, axis.title, title_widths[i] - 3), color=text)
            item.setPos(i, 1 + (text_height / 2 + gap) * per_y)
            item.setToolTip(axis.path if axis.path != self.metric_name else
                            f"{self.metric_name}: the metric the sweep {self.direction}s")
        # Ticks: a mark for each, a label for those that keep a label's height apart.
        marks_x, marks_y, shown = [], [], []
        for i, (axis, ticks) in enumerate(zip(self.axes, places)):
            room = min(cap, (left if i == 0 else spacing) - mark - 2 * gap)
            for position, _ in ticks:
                marks_x += [i - mark * per_x, i]
                marks_y += [position, position]
            kept = spaced_ticks([(position * span, label) for position, label in ticks], text_height + 1)
            shown += [(i, ticks[k][0], ticks[k][1], room) for k in kept]
        self.tick_marks.setData(np.array(marks_x), np.array(marks_y), pen=pg.mkPen(text, width=1))
        # The labels on a veil of the background, over the lines: lines meet at
        # the axes, where the labels are.
        veil = QColor(palette.color(QPalette.ColorRole.Base))
        veil.setAlpha(210)
        for item in labels[len(shown):]:
            item.setVisible(False)
        for item, (i, position, label, room) in zip(labels, shown):
            whole = wide(label) <= room + 0.5
            item.setText(label if whole else _elide(item, label, room - 3), color=faint)
            item.setToolTip("" if whole else label)
            item.fill = pg.mkBrush(veil)
            item.setPos(i - (mark + gap) * per_x, position)

    def _caption(self) -> str:
        if not self.complete:
            return EMPTY_NOTE
        parts = [f"{len(self.complete)} complete trial" + ("" if len(self.complete) == 1 else "s")]
        if self.pruned:
            parts.append(f"{len(self.pruned)} pruned (faint, dashed: no final {self.metric_name})")
        if self.failed:
            parts.append(f"{self.failed} failed (not shown)")
        best = "lowest" if self.direction == "minimize" else "highest"
        colour = "bright yellow" if is_dark(self.palette()) else "deep violet"
        return " \u00b7 ".join(parts) + f". Colour: {self.metric_name}, the {best} in {colour}, thickest and on top."

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in PALETTE_EVENTS:
            follow_palette(self.view, self.palette())
            self._draw()  # the colour map and the labels follow the theme

    # -- hover -----------------------------------------------------------------------------

    def trial_near(self, scene_pos) -> dict | None:
        """The trial whose line passes within ``HOVER_PIXELS`` of a scene
        point (the nearest; complete trials before pruned ones)."""
        if not self._ys or not self.plot.sceneBoundingRect().contains(scene_pos):
            return None
        vb = self.plot.vb
        point = vb.mapSceneToView(scene_pos)
        count = len(self.axes)
        x = point.x()
        if not -0.05 <= x <= count - 1 + 0.05:
            return None
        left = int(min(max(math.floor(x), 0), count - 2))
        t = min(max(x - left, 0.0), 1.0)
        # Pixels per unit of y, to compare distances as the eye does.
        pixels = abs(vb.mapViewToScene(pg.Point(0, 1)).y() - vb.mapViewToScene(pg.Point(0, 0)).y()) or 1.0
        found, nearest = None, HOVER_PIXELS
        for i, y in enumerate(self._ys):
            a, b = y[left], y[left + 1]
            if math.isnan(a) or math.isnan(b):
                continue
            distance = abs(a + (b - a) * t - point.y()) * pixels
            if distance < nearest or (distance == nearest and found is not None and i < found):
                found, nearest = i, distance
        return None if found is None else (self.complete + self.pruned)[found]

    def _mouse_moved(self, event) -> None:
        self._mouse = event[0]
        self.hover_at(event[0])

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().leaveEvent(event)
        self._mouse = None
        self.hover_at(QPointF(-1e9, -1e9))  # nowhere: no line named or thickened

    def hover_at(self, scene_pos) -> None:
        row = self.trial_near(scene_pos)
        drawn = self.complete + self.pruned
        index = next((i for i, r in enumerate(drawn) if r is row), None)
        if index != self._hovered:
            if self._hovered is not None and self._hovered < len(self.lines):
                line = self.lines[self._hovered]
                pen = pg.mkPen(line.opts["pen"])
                pen.setWidthF(self._width_of(self._hovered))
                line.setPen(pen)
            if index is not None:
                pen = pg.mkPen(self.lines[index].opts["pen"])
                pen.setWidthF(self.HOVER_WIDTH)
                self.lines[index].setPen(pen)
            self._hovered = index
            self.trial_hovered.emit(None if row is None else row.get("number"))
        self.hover.show_text(None if row is None else trial_text(row, self.params, self.names, self.metric_name))

    def _width_of(self, index: int) -> float:
        if index >= len(self.complete):
            return 1.0
        values = [float(row["value"]) for row in self.complete]
        return self.BEST_WIDTH if index == best_index(values, self.direction) else self.LINE_WIDTH


# -- one parameter against the metric -----------------------------------------------------


class ParamScatter(QWidget):
    """A parameter chosen in a combo box against the metric: one point per
    complete trial (a log x axis for a log parameter, categories for a
    choice), the best trial marked with a star."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.rows: list[dict] = []
        self.complete: list[dict] = []
        self.params: list[str] = []
        self.metric_name = ""
        self.direction = "minimize"
        self.log_params: frozenset[str] = frozenset()
        self.names: dict[str, str] = {}
        self.axis: ParamAxis | None = None
        #: The points drawn, in view coordinates (x as drawn: log10 on a log axis).
        self.xs = np.zeros(0)
        self.ys = np.zeros(0)
        self.shown: list[dict] = []  # the rows behind the points
        self._given: tuple | None = None  # set_rows's arguments last time
        self.colours = QualityColours()
        self.choice = QComboBox()
        self.choice.setToolTip("The parameter on the horizontal axis")
        self.choice.currentIndexChanged.connect(lambda _index: self._draw())
        self.caption = QLabel(EMPTY_NOTE)
        self.caption.setWordWrap(True)
        self.bottom = _ParamAxisItem("bottom")
        self.view = pg.PlotWidget(axisItems={"bottom": self.bottom})
        self.view.setMinimumHeight(200)
        self.plot = _plain_plot(self.view)
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        for side in ("left", "bottom"):  # 0.93, not "930 (x0.001)"
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.points = pg.ScatterPlotItem(size=9, pen=pg.mkPen(None))
        self.best = pg.ScatterPlotItem(size=20, symbol="star", pen=pg.mkPen((255, 255, 255), width=1),
                                       brush=pg.mkBrush(BEST_COLOUR))
        self.best.setZValue(10)
        self.best_label = pg.TextItem(anchor=(0, 1.1), color=BEST_COLOUR)
        for item in (self.points, self.best, self.best_label):
            self.plot.addItem(item)
        self.hover = _Hover("Point at a dot to see its trial.")
        top = QHBoxLayout()
        top.addWidget(QLabel("Parameter:"))
        top.addWidget(self.choice, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.caption)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.hover)
        self._proxy = pg.SignalProxy(self.view.scene().sigMouseMoved, rateLimit=30, slot=self._mouse_moved)
        follow_palette(self.view, self.palette())
        self._draw()

    def set_rows(self, rows: list[dict], params: list[str], metric: str, direction: str,
                 log_params: Iterable[str] = frozenset()) -> None:
        """As ``ParallelCoordinates.set_rows``; the parameter chosen stays
        chosen while the sweep adds trials."""
        given = (list(rows), list(params), metric, direction, frozenset(log_params))
        if given == self._given:
            return  # an unchanged poll: the user's zoom stays
        self._given = given
        self.rows, self.metric_name, self.direction = list(rows), metric, direction
        self.log_params = frozenset(log_params)
        self.complete = complete_rows(self.rows)
        chosen = self.current_param()
        if list(params) != self.params:
            self.params = list(params)
            self.names = short_names(self.params)
            self.choice.blockSignals(True)
            self.choice.clear()
            for path in self.params:
                self.choice.addItem(self.names[path], path)
                self.choice.setItemData(self.choice.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
            self.choice.setCurrentIndex(max(self.choice.findData(chosen), 0))
            self.choice.blockSignals(False)
        self.plot.setLabel("left", metric)
        self._draw()

    def current_param(self) -> str | None:
        return self.choice.currentData()

    def choose(self, path: str) -> None:
        """Show parameter ``path`` on the horizontal axis."""
        self.choice.setCurrentIndex(self.choice.findData(path))

    def _draw(self) -> None:
        path = self.current_param()
        palette = self.palette()
        self.choice.setEnabled(len(self.params) > 1)
        rows = [row for row in self.complete if path is not None and (row.get("params") or {}).get(path) is not None]
        self.shown = rows
        self.view.setVisible(bool(rows))
        self.hover.setVisible(bool(rows))
        self.caption.setText(self._caption(rows))
        if not rows:
            self.axis = None
            self.xs = self.ys = np.zeros(0)
            self.points.setData([], [])
            self.best.setData([], [])
            self.best_label.setVisible(False)
            self.hover.show_text(None)
            return
        values = [row["params"][path] for row in rows]
        self.axis = axis = ParamAxis.of(path, self.names.get(path, path), values, log=path in self.log_params)
        log = axis.kind == "log"
        self.plot.setLogMode(x=log, y=False)
        if axis.kind == "category":
            self.bottom.set_names([format_number(c) for c in axis.categories])
            # Trials with the same choice side by side rather than on top of each other.
            spread = _spread([axis.categories.index(v) for v in values])
            xs = np.array([axis.categories.index(v) + s for v, s in zip(values, spread)], dtype=float)
        else:
            self.bottom.set_names([])
            xs = np.array(values, dtype=float)
        self.bottom.setLabel(axis.title)
        ys = np.array([float(row["value"]) for row in rows])
        colours = self.colours.colours(quality(ys, self.direction), is_dark(palette))
        # ScatterPlotItem draws what it is given: log10 of x on a log axis (setLogMode
        # reaches PlotDataItems only).
        self.xs = np.log10(xs) if log else xs
        self.ys = ys
        self.points.setData(self.xs, ys, brush=[pg.mkBrush(c) for c in colours],
                            data=[row.get("number") for row in rows])
        best = best_index(list(ys), self.direction)
        self.best.setData([self.xs[best]], [ys[best]])
        self.best_label.setText(f"best: trial {rows[best].get('number')}", color=BEST_COLOUR)
        self.best_label.setPos(self.xs[best], ys[best])
        self.best_label.setVisible(True)
        self.plot.enableAutoRange()
        if axis.kind == "category":
            self.plot.setXRange(-0.6, len(axis.categories) - 0.4, padding=0)
        low, high = float(ys.min()), float(ys.max())
        if high - low <= 1e-9 * max(1.0, abs(high)):
            # Every trial scored the same (a solved toy problem): pyqtgraph would stretch
            # rounding noise over the axis (1.000000000000002); show the value in a band.
            pad = 0.05 * abs(high) or 0.5
            self.plot.setYRange(low - pad, high + pad, padding=0)
        self.hover.show_text(None)

    def _caption(self, rows: list[dict]) -> str:
        if not self.complete:
            return EMPTY_NOTE
        if not rows:
            return "No complete trial has a value for this parameter."
        left_out = len(self.rows) - len(self.complete)
        best = "lowest" if self.direction == "minimize" else "highest"
        return (f"{len(rows)} complete trial" + ("" if len(rows) == 1 else "s")
                + (f" ({left_out} pruned, failed or running not shown)" if left_out else "")
                + f" · the star: the {best} {self.metric_name}")

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in PALETTE_EVENTS:
            follow_palette(self.view, self.palette())
            self._draw()

    def trial_near(self, scene_pos) -> dict | None:
        if not len(self.xs) or not self.plot.sceneBoundingRect().contains(scene_pos):
            return None
        vb = self.plot.vb
        found, nearest = None, float(HOVER_PIXELS)
        for i, (x, y) in enumerate(zip(self.xs, self.ys)):
            at = vb.mapViewToScene(pg.Point(float(x), float(y)))
            distance = math.hypot(at.x() - scene_pos.x(), at.y() - scene_pos.y())
            if distance <= nearest:
                found, nearest = i, distance
        return None if found is None else self.shown[found]

    def _mouse_moved(self, event) -> None:
        row = self.trial_near(event[0])
        self.hover.show_text(None if row is None else trial_text(row, self.params, self.names, self.metric_name))


class _ParamAxisItem(CategoryAxis):
    """The scatter's parameter axis: categories, numbers, or a log scale
    labelled at 1, 2 and 5 times powers of ten (fewer when they would crowd),
    written as numbers (0.0003, not 3·10⁻⁴)."""

    MAX_CHARS = 14
    LABEL_PIXELS = 60  # room for one label

    def logTickValues(self, minVal, maxVal, size, stdTicks):  # noqa: N802 - pyqtgraph's name
        if maxVal <= minVal or size <= 0:
            return []
        per = size / (maxVal - minVal)  # pixels per decade
        first, last = math.floor(minVal), math.ceil(maxVal)
        values: list[float] = []
        for mantissas, every in (((1, 2, 5), 1), ((1, 3), 1), ((1,), 1), ((1,), 2), ((1,), 5)):
            values = [e + math.log10(m) for e in range(first, last + 1) if e % every == 0 for m in mantissas]
            values = [v for v in values if minVal <= v <= maxVal]
            if all((b - a) * per >= self.LABEL_PIXELS for a, b in zip(values, values[1:])):
                break
        return [(1.0, values)]

    def logTickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        return [tick_text(10 ** v) for v in values]


def _spread(slots: list[int], width: float = 0.3) -> list[float]:
    """Offsets that put the points of one category side by side within ``width``."""
    seen: dict[int, int] = {}
    order = []
    for slot in slots:
        order.append(seen.get(slot, 0))
        seen[slot] = seen.get(slot, 0) + 1
    return [0.0 if seen[s] == 1 else width * (k / (seen[s] - 1) - 0.5) for s, k in zip(slots, order)]


# -- importances ---------------------------------------------------------------------------


IMPORTANCE_EMPTY = ("Importances need at least 2 complete trials that differ in their parameters "
                    "(Optuna's importance evaluator compares how the metric moves with each).")


class ImportanceBars(QWidget):
    """Each parameter's importance (``engine.sweep.importances``: Optuna's
    evaluator, normalised to sum to 1), as horizontal bars, the most
    important on top, with their values."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.importances: dict[str, float] = {}
        self.order: list[str] = []  # the paths, most important first
        self.names: dict[str, str] = {}
        self.note = QLabel(IMPORTANCE_EMPTY)
        self.note.setWordWrap(True)
        self.left = CategoryAxis("left")
        self.left.MAX_CHARS = 32  # the names are the only labels: room for them
        self.view = pg.PlotWidget(axisItems={"left": self.left})
        self.view.setMinimumHeight(120)
        self.plot = _plain_plot(self.view)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setLabel("bottom", "importance")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.bars = pg.BarGraphItem(x0=np.zeros(0), y=np.zeros(0), width=np.zeros(0), height=0.6,
                                    brush=(59, 130, 246), pen=pg.mkPen(None))
        self.plot.addItem(self.bars)
        self.values: list[pg.TextItem] = []  # pooled: one per bar
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.note)
        layout.addWidget(self.view, 1)
        follow_palette(self.view, self.palette())
        self._draw()

    def set_importances(self, importances: dict[str, float]) -> None:
        """``{path: importance}``; ``{}``: too few trials yet (the note says so)."""
        importances = {k: float(v) for k, v in importances.items() if _finite(v)}
        if importances == self.importances and self.order:
            return
        self.importances = importances
        self.order = sorted(self.importances, key=lambda k: (-self.importances[k], k))
        self.names = short_names(self.order)
        self._draw()

    def _draw(self) -> None:
        count = len(self.order)
        self.note.setVisible(not count)
        self.view.setVisible(bool(count))
        # The most important at the top: y counts from the bottom.
        ys = np.arange(count, dtype=float)[::-1]
        widths = np.array([self.importances[k] for k in self.order])
        self.bars.setOpts(x0=np.zeros(count), y=ys, width=widths, height=0.6)
        self.left.set_names([self.names[k] for k in reversed(self.order)])
        text = _text_colour(self.palette())
        while len(self.values) < count:
            item = pg.TextItem(anchor=(0, 0.5))
            self.plot.addItem(item)
            self.values.append(item)
        for i, item in enumerate(self.values):
            item.setVisible(i < count)
            if i < count:
                path = self.order[i]
                item.setText(f" {self.importances[path]:.2f}", color=text)
                item.setPos(self.importances[path], ys[i])
                item.setToolTip(path)
        top = max(widths, default=1.0)
        self.plot.setXRange(0, top * 1.18 or 1.0, padding=0)
        self.plot.setYRange(-0.6, max(count, 1) - 0.4, padding=0)
        self.view.setToolTip("\n".join(f"{self.names[k]}: {k}" for k in self.order))
        # About a line of text per bar, within reason.
        self.view.setMinimumHeight(min(60 + 28 * count, 320))

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in PALETTE_EVENTS:
            follow_palette(self.view, self.palette())
            self._draw()
