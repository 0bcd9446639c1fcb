"""The Sweep dialog: what a sweep varies and how it searches, its trials as
they run, and its results.

The dialog is a view. It checks the settings a user types (through the same
``spec.sweep`` checks as ``guidl sweep``) and asks for a start, a stop or the
best trial's settings with signals; the sweeps controller runs the
``guidl sweep`` process and feeds the study it reads back with ``show_study``.
The same dialog watches a study other processes run (``watch=True``): no
settings, no Start or Stop.
"""

from __future__ import annotations

import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QDialog, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel,
    QPushButton, QSpinBox, QSplitter, QTableView, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget,
)

from .. import registry
from ..formatting import format_duration
from ..spec import Project
from ..spec.paths import format_value
from .charts import PALETTE_EVENTS, follow_palette
from .panels import WARNING_STYLE, message_label
from .runs_panel import STATUS_COLOURS
# One naming of a swept path for the table, the best trial and the plots (lr -> optimizer.lr).
from .sweep_plots import ImportanceBars, ParallelCoordinates, ParamScatter, format_number, short_names

OK_STYLE = "color: #15803d;"
DEFAULT_TRIALS = 20  # guidl sweep's budget for a random or TPE search
STRATEGY_TITLES = {"grid": "Grid (every combination)", "random": "Random", "tpe": "TPE (Optuna's Bayesian search)"}
#: A trial's state as shown, and the colour of its row and marker.
#: Settings whose values span decades: a log range is the natural search.
LOG_SCALE_PARAMS = ("lr", "weight_decay", "eps", "min_lr", "eta_min")


# -- what to suggest for a setting --------------------------------------------------------------


def _schema_param(doc: dict, parts: list) -> registry.Param | None:
    """The catalogue's schema of the parameter at ``parts`` (``...params.NAME``), if any."""
    from ..spec.paths import component_entry

    entry = component_entry(doc, parts)
    try:
        return entry.param(parts[-1]) if entry is not None else None
    except KeyError:  # a parameter its component does not take
        return None


def suggest_spec(project: Project, path: str) -> str:
    """A first search for the setting at ``path``, around its value in the
    project: a log range over two decades for a learning rate, half to
    double a whole number, every choice for a choice. Empty when there is
    nothing to suggest (the user types it)."""
    from ..spec.paths import PathError, get_path, parse_path

    doc = project.to_dict()
    try:
        parts = parse_path(path)
    except PathError:
        return ""
    try:
        value = get_path(doc, parts)
    except PathError:
        value = None
    name = parts[-1] if isinstance(parts[-1], str) else ""
    param = _schema_param(doc, parts)
    if value is None and param is not None and param.default is not registry.REQUIRED:
        value = param.default  # a parameter the project leaves at its default (weight_decay)
    if param is not None and param.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if name == "type" and len(parts) >= 2:
        from ..spec.paths import component_catalogue

        catalogue = (component_catalogue([*parts[:-1], "params"]) or (None,))[0]
        if catalogue is registry.OPTIMIZERS:
            return ",".join(catalogue.names())
        if catalogue is registry.LAYERS and isinstance(value, str):
            from ..spec.comparisons import ACTIVATION_RACE

            if value in ACTIVATION_RACE:  # an activation: the race's three
                return ",".join(ACTIVATION_RACE)
        return str(value) if value is not None else ""
    if isinstance(value, bool) or (param is not None and param.kind == "bool"):
        return "true,false"
    if param is not None and param.choices:
        return ",".join(str(c) for c in param.choices)
    if isinstance(value, str):
        return value
    low_bound = param.minimum if param is not None else None
    high_bound = param.maximum if param is not None else None
    if isinstance(value, int):
        low = max(value // 2, int(low_bound) if low_bound is not None else 1, 0)
        high = max(value * 2, low + 1)
        if high_bound is not None:
            high = min(high, int(high_bound))
        return f"{low}..{high}" if low < high else str(value)
    if isinstance(value, float):
        if value > 0 and (name in LOG_SCALE_PARAMS or value < 0.01):
            return f"log:{format_value(value / 10)}..{format_value(value * 10)}"
        if value == 0:
            if name in LOG_SCALE_PARAMS:
                return "log:1e-05..0.01"
            return f"0..{format_value(high_bound)}" if high_bound is not None and high_bound > 0 else "0..1"
        low, high = value / 2, value * 2
        if low_bound is not None:
            low = max(low, low_bound)
        if high_bound is not None and high >= high_bound:
            high = (value + high_bound) / 2 if param.exclusive_maximum else high_bound
        return f"{format_value(low)}..{format_value(high)}" if low < high else format_value(value)
    return ""


# -- checking the parameters table --------------------------------------------------------------


@dataclass
class RowCheck:
    param: Any = None  # the SweepParam, when the row parses
    problem: str | None = None
    note: str = ""  # what a valid row amounts to ("5 values")


def check_rows(project: Project, rows: list[tuple[str, str]]) -> list[RowCheck]:
    """Each (path, values) row checked as ``guidl sweep --param PATH=VALUES`` is."""
    from ..spec.sweep import check_params, parse_param

    checks: list[RowCheck] = []
    seen: set[str] = set()
    for path, values in rows:
        path, values = path.strip(), values.strip()
        if not path:
            checks.append(RowCheck(problem="name a setting by its JSON path, e.g. training.optimizer.params.lr"))
            continue
        if not values:
            checks.append(RowCheck(problem="give values (a,b,c), a range (lo..hi) or a log range (log:lo..hi)"))
            continue
        try:
            param = parse_param(f"{path}={values}", project)
        except ValueError as error:
            checks.append(RowCheck(problem=str(error)))
            continue
        if param.path in seen:
            checks.append(RowCheck(param, "this setting is varied twice: keep one row"))
            continue
        seen.add(param.path)
        checks.append(RowCheck(param))
    valid = [c.param for c in checks if c.param is not None and c.problem is None]
    problems: dict[str, str] = {}
    if valid:
        for problem in check_params(project, valid):
            problems.setdefault(problem.path, problem.message)
    for check in checks:
        if check.param is None or check.problem is not None:
            continue
        message = problems.get(check.param.path)
        if message is None:  # a problem named by a path inside the setting (a layer's param)
            message = next((m for p, m in problems.items() if p.startswith(check.param.path)), None)
        if message is not None:
            check.problem = message
        elif check.param.kind == "values":
            check.note = f"{len(check.param.values)} value{'s' if len(check.param.values) != 1 else ''}"
        else:
            points = check.param.grid_values()
            kind = "log range" if check.param.kind == "log_range" else "range"
            check.note = f"{kind} · grid of {len(points)}"
    return checks


# -- the study as read back -----------------------------------------------------------------------


@dataclass
class StudyView:
    """What a poll of the study found, made off the GUI thread."""

    name: str
    storage: str  # as shown (no password)
    rows: list[dict] = field(default_factory=list)
    best: dict | None = None
    importances: dict[str, float] = field(default_factory=dict)
    params: list[str] = field(default_factory=list)  # the swept paths, in the config's order
    metric: str = "val_loss"
    direction: str = "minimize"
    trials: int = 0  # the budget
    variants: list[str] = field(default_factory=list)  # a comparison's labels
    log_params: list[str] = field(default_factory=list)  # swept over a log range: drawn on a log scale
    config: Any = None  # the study's SweepConfig
    project: dict | None = None  # the project the study was made with
    tally: Any = None  # engine.sweep.tally: the trials by state, as guidl sweep counts them


def trials_done(view: StudyView) -> int:
    """The trials that ran to their end (complete or pruned), by the study's tally."""
    return (view.tally.complete + view.tally.pruned) if view.tally is not None else 0


def best_settings(project: Project, view: StudyView | None, best: dict) -> Project:
    """``project`` with the trial ``best``'s settings: its values, or for a
    race's winner its variant's optimizer or activations, on the project as it
    is now. ProjectError, ValueError or KeyError when they do not apply."""
    from ..spec.paths import diff
    from ..spec.sweep import apply_values

    if view is not None and view.variants and view.project is not None and view.config is not None:
        variant = view.config.variants[best["variant"]]
        return apply_values(project, {c.path: c.after for c in diff(view.project, variant)})
    return apply_values(project, best.get("params") or {})


def _plot_value(row: dict) -> float | None:
    """The figure a trial is drawn at: its value, or a pruned or failed
    trial's last reported epoch."""
    if row.get("value") is not None:
        return float(row["value"])
    intermediate = row.get("intermediate") or {}
    if intermediate:
        return float(intermediate[max(intermediate, key=lambda k: int(k))])
    return None


class TrialsModel(QAbstractTableModel):
    """The trials table: number, state, value, each parameter, duration, run folder."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[dict] = []
        self.params: list[str] = []
        self.titles: dict[str, str] = {}
        self.metric_name = "value"
        self.variants = False
        #: Nothing runs the study now (the window's sweep stopped): a queued trial waits for a Continue.
        self.idle = False

    def set_rows(self, rows: list[dict], params: list[str], metric: str, variants: bool) -> None:
        columns_changed = (params, metric, variants) != (self.params, self.metric_name, self.variants)
        if columns_changed or len(rows) != len(self.rows):
            self.beginResetModel()
            self.rows, self.params, self.metric_name, self.variants = list(rows), list(params), metric, variants
            self.titles = short_names(params)
            self.endResetModel()
            return
        self.rows = list(rows)
        if rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, self.columnCount() - 1))

    def set_idle(self, idle: bool) -> None:
        if idle != self.idle:
            self.idle = idle
            if self.rows:
                self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, self.columnCount() - 1))

    def columns(self) -> list[str]:
        middle = ["variant"] if self.variants else self.params
        return ["#", "state", self.metric_name, *middle, "duration", "run folder"]

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.columns())

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation != Qt.Orientation.Horizontal:
            return None
        columns = self.columns()
        if not 0 <= section < len(columns):
            return None
        name = columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.titles.get(name, name)
        if role == Qt.ItemDataRole.ToolTipRole and name in self.titles:
            return name
        return None

    def cell(self, row: dict, column: str) -> Any:
        if column == "#":
            return row.get("number")
        if column == "state":
            state = row.get("state") or ""
            return "not run" if state == "waiting" and self.idle else state
        if column == self.metric_name and column not in self.params:
            return format_number(row.get("value"))
        if column == "variant":
            return row.get("variant") or ""
        if column == "duration":
            seconds = row.get("duration_s")
            return format_duration(seconds) if seconds is not None else ""
        if column == "run folder":
            run_dir = row.get("run_dir")
            return os.path.basename(str(run_dir).rstrip("/\\")) if run_dir else ""
        return format_number((row.get("params") or {}).get(column))

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        row = self.rows[index.row()]
        column = self.columns()[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cell(row, column)
        if role == Qt.ItemDataRole.ForegroundRole and column == "state":
            colour = STATUS_COLOURS.get(row.get("state") or "")
            return QBrush(QColor(colour)) if colour else None
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == "run folder" and row.get("run_dir"):
                return str(row["run_dir"])
            if column == "state" and row.get("cause"):
                return str(row["cause"])
            if column == "state" and row.get("state") == "waiting" and self.idle:
                return "Queued in the study: Continue runs it"
        if role == Qt.ItemDataRole.TextAlignmentRole and column not in ("state", "run folder", "variant"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class TrialChart(QWidget):
    """The metric per trial: finished trials as dots, pruned and failed ones
    marked apart, and the best so far as a step line. A running trial (or one
    stopped by the user) is drawn at its last epoch's figure, so a long trial
    shows how it goes before it ends."""

    #: state -> (symbol, colour, filled, legend text)
    MARKS = {"complete": ("o", "#2563eb", True, "complete"),
             "pruned": ("t", STATUS_COLOURS["pruned"], True, "pruned"),
             "failed": ("x", STATUS_COLOURS["failed"], True, "failed"),
             "running": ("o", "#2563eb", False, "running (last epoch)"),
             "stopped": ("s", STATUS_COLOURS["stopped"], False, "stopped")}

    def __init__(self, parent=None):
        super().__init__(parent)
        self.view = pg.GraphicsLayoutWidget()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.plot = self.view.addPlot(row=1, col=0)
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.setLabel("bottom", "trial")
        for axis in ("bottom", "left"):  # a trial is a trial, an accuracy an accuracy: no "(x0.001)"
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        # Room for the label and four-digit ticks from the start: the axis does not
        # widen itself when its first ticks come, and the label would sit on them.
        self.plot.setLabel("left", "value")
        self.plot.getAxis("left").setWidth(64)
        # A row of its own above the plot: inside it, a legend hides the trials under it.
        self.legend = pg.LegendItem(colCount=3)
        self.view.ci.addItem(self.legend, row=0, col=0)
        self.best_line = self.plot.plot([], [], pen=pg.mkPen("#16a34a", width=2))
        self.legend.addItem(self.best_line, "best so far")
        self.scatters: dict[str, pg.ScatterPlotItem] = {}
        for state, (symbol, colour, filled, text) in self.MARKS.items():
            item = pg.ScatterPlotItem(symbol=symbol, size=10, pen=pg.mkPen(colour, width=1.5),
                                      brush=pg.mkBrush(colour if filled else None), name=text)
            self.plot.addItem(item)
            self.legend.addItem(item, item.name())
            self.scatters[state] = item
        follow_palette(self.view, self.palette())

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in PALETTE_EVENTS:
            follow_palette(self.view, self.palette())

    def set_rows(self, rows: list[dict], metric: str, direction: str) -> None:
        self.plot.setLabel("left", metric)
        # Trials are whole numbers: ticks on them (about ten at most), never at 0.5.
        numbers = [r["number"] for r in rows]
        step = max(1, math.ceil((max(numbers) - min(numbers) + 1) / 10)) if numbers else 1
        self.plot.getAxis("bottom").setTickSpacing(step, step)
        drawn: list[float] = []
        for state, item in self.scatters.items():
            # A retried trial failed, as far as the chart goes (its retry is a trial of its own).
            points = [(r["number"], _plot_value(r)) for r in rows
                      if r.get("state") == state or state == "failed" and r.get("state") == "retried"]
            points = [(x, y) for x, y in points if y is not None and math.isfinite(y)]
            item.setData([p[0] for p in points], [p[1] for p in points])
            drawn += [y for _, y in points]
        if drawn and max(drawn) - min(drawn) <= 1e-9 * max(1.0, abs(drawn[0])):
            # One figure for every trial (moons: accuracy 1.0): a narrow band around it, not
            # pyqtgraph's +-0.5 (an accuracy axis up to 1.5).
            pad = max(abs(drawn[0]) * 0.05, 1e-3)
            self.plot.setYRange(drawn[0] - pad, drawn[0] + pad, padding=0)
        else:
            self.plot.enableAutoRange(axis="y")
        done = sorted((r["number"], float(r["value"])) for r in rows
                      if r.get("state") == "complete" and r.get("value") is not None and math.isfinite(r["value"]))
        if not done:
            self.best_line.setData([], [])
            return
        pick = min if direction == "minimize" else max
        xs, ys, best = [], [], None
        for number, value in done:
            best = value if best is None else pick(best, value)
            if ys:  # a step: the best holds until the next trial improves it
                xs.append(number)
                ys.append(ys[-1])
            xs.append(number)
            ys.append(best)
        # To the last trial drawn: after a Stop, the queued ("not run") trials have no figure.
        last = max((r["number"] for r in rows if _plot_value(r) is not None and math.isfinite(_plot_value(r))),
                   default=xs[-1])
        if last > xs[-1]:
            xs.append(last)
            ys.append(ys[-1])
        self.best_line.setData(np.asarray(xs, float), np.asarray(ys, float))


# -- the dialog ------------------------------------------------------------------------------------


class SweepDialog(QDialog):
    """Set up a sweep, follow its trials, and take its best settings."""

    start_requested = Signal(object)  # a SweepConfig
    stop_requested = Signal()
    continue_requested = Signal()  # run the rest of the last study
    apply_requested = Signal(object)  # the best trial's row

    def __init__(self, project: Project, parent: QWidget | None = None, *, watch: bool = False,
                 title: str | None = None):
        super().__init__(parent)
        self.project = project
        self.watch = watch
        self.running = False
        self.view: StudyView | None = None
        self.setWindowTitle(title or ("Watch Study" if watch else "Sweep"))
        self.resize(1200, 940)
        self._updating = False
        self._strategy_chosen = False  # by the user: else it follows the rows as guidl sweep's default
        self._auto_strategy = False

        layout = QVBoxLayout(self)
        split = QSplitter(Qt.Orientation.Vertical)
        layout.addWidget(split, 1)
        self.setup_box = self._build_setup()
        split.addWidget(self.setup_box)
        self.setup_box.setVisible(not watch)

        trials_box = QGroupBox("Trials")
        trials_layout = QHBoxLayout(trials_box)
        self.trials_model = TrialsModel(self)
        self.trials_table = QTableView()
        self.trials_table.setModel(self.trials_model)
        self.trials_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.trials_table.verticalHeader().hide()
        self.trials_table.setWordWrap(False)  # a long run folder's name is elided, not wrapped
        self.trials_table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.trials_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.trials_table.horizontalHeader().setStretchLastSection(True)
        self.chart = TrialChart()
        trials_split = QSplitter(Qt.Orientation.Horizontal)
        trials_split.addWidget(self.trials_table)
        trials_split.addWidget(self.chart)
        trials_split.setSizes([620, 480])
        trials_layout.addWidget(trials_split)
        split.addWidget(trials_box)

        split.addWidget(self._build_results())
        split.setSizes([210, 330, 360] if not watch else [0, 450, 450])

        buttons = QHBoxLayout()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons.addWidget(self.status, 1)
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(not watch)
        self.start_button.clicked.connect(self._start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the sweep: the running trials end after their current batch")
        self.stop_button.clicked.connect(self.stop_requested)
        self.close_button = QPushButton("Close")
        self.close_button.setAutoDefault(False)
        self.close_button.clicked.connect(self.close)
        # After a Stop (or a failure) the study's remaining trials can still run: Start
        # would begin a new study and train its finished points again.
        self.continue_button = QPushButton("Continue")
        self.continue_button.setToolTip("Run the rest of this study's trials (its finished trials stay)")
        self.continue_button.setAutoDefault(False)
        self.continue_button.clicked.connect(self.continue_requested)
        self.continue_button.hide()
        buttons.addWidget(self.continue_button)
        for button in (self.start_button, self.stop_button):
            button.setVisible(not watch)
            buttons.addWidget(button)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)
        self._set_metric_default()
        self.validate()
        self.set_running(False)

    # -- the set-up ----------------------------------------------------------------------------

    def _build_setup(self) -> QGroupBox:
        from ..spec.sweep import METRICS, STRATEGIES, metrics_for

        box = QGroupBox("Set-up")
        layout = QHBoxLayout(box)

        left = QVBoxLayout()
        self.params_table = QTableWidget(0, 3)
        self.params_table.setHorizontalHeaderLabels(["Setting (JSON path)", "Values", "Check"])
        header = self.params_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.params_table.setColumnWidth(0, 280)
        self.params_table.setColumnWidth(1, 180)
        self.params_table.verticalHeader().hide()
        self.params_table.setToolTip(
            "Values: a,b,c · a range: lo..hi · a log range: log:lo..hi\n"
            "Paths such as training.optimizer.params.lr, model.layers[0].params.out_features, data.batch_size")
        self.params_table.itemChanged.connect(self._item_changed)
        left.addWidget(self.params_table, 1)
        row_buttons = QHBoxLayout()
        self.add_button = QPushButton("Add Setting")
        self.add_button.clicked.connect(lambda: self.add_param("", ""))
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self._remove_selected)
        hint = QLabel("values <i>a,b,c</i> · range <i>lo..hi</i> · log range <i>log:lo..hi</i>")
        row_buttons.addWidget(self.add_button)
        row_buttons.addWidget(self.remove_button)
        row_buttons.addWidget(hint, 1)
        left.addLayout(row_buttons)
        layout.addLayout(left, 3)

        form = QFormLayout()
        self.strategy = QComboBox()
        for name in STRATEGIES:
            self.strategy.addItem(STRATEGY_TITLES.get(name, name), name)
        self.strategy.setCurrentIndex(self.strategy.findData("tpe"))
        self.strategy.currentIndexChanged.connect(self._strategy_changed)
        form.addRow("Strategy", self.strategy)
        self.trials = QSpinBox()
        self.trials.setRange(1, 100_000)
        self.trials.setValue(DEFAULT_TRIALS)
        self.trials.setToolTip("The study's budget: trials finished or pruned, over all workers")
        form.addRow("Trials", self.trials)
        self.jobs = QSpinBox()
        cores = os.cpu_count() or 1
        self.jobs.setRange(1, cores)
        self.jobs.setToolTip(f"Trials run at once, each with its share of the {cores} cores")
        form.addRow("Jobs at once", self.jobs)
        self.metric_box = QComboBox()
        try:
            names = metrics_for(self.project)
        except Exception:  # noqa: BLE001 - a project that cannot say: every figure
            names = tuple(METRICS)
        for name in names:
            self.metric_box.addItem(name, name)
        self.metric_box.currentIndexChanged.connect(self._metric_changed)
        form.addRow("Metric", self.metric_box)
        self.direction = QComboBox()
        self.direction.addItem("minimize", "minimize")
        self.direction.addItem("maximize", "maximize")
        form.addRow("Direction", self.direction)
        self.pruner = QCheckBox("Stop hopeless trials early (median pruner)")
        self.pruner.setChecked(True)
        self.pruner.setToolTip("Optuna's MedianPruner: a trial whose epoch is worse than the median of the "
                               "trials before it at that epoch stops")
        form.addRow("", self.pruner)
        self.tensorboard = QCheckBox("TensorBoard event files (HParams view)")
        self.tensorboard.setToolTip("Each trial also writes RUN_DIR/tensorboard: tensorboard --logdir on the runs "
                                    "folder compares the trials in its HParams view")
        form.addRow("", self.tensorboard)
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 100_000)
        self.epochs.setSpecialValueText(f"as the project ({self.project.training.epochs})")
        self.epochs.setToolTip("Epochs each trial trains")
        form.addRow("Epochs per trial", self.epochs)
        self.grid_note = QLabel()
        self.grid_note.setWordWrap(True)
        form.addRow("", self.grid_note)
        for spin in (self.trials, self.jobs, self.epochs):
            spin.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.epochs.valueChanged.connect(self.validate)
        form_holder = QWidget()
        form_holder.setLayout(form)
        layout.addWidget(form_holder, 2)
        return box

    def _set_metric_default(self) -> None:
        from ..spec.sweep import default_metric

        try:
            metric = default_metric(self.project)
        except Exception:  # noqa: BLE001 - a project the engine cannot judge: keep val_loss
            metric = "val_loss"
        index = self.metric_box.findData(metric)
        if index >= 0:
            self.metric_box.setCurrentIndex(index)
        self._metric_changed()

    @Slot()
    def _metric_changed(self) -> None:
        from ..spec.sweep import metric_direction

        try:
            direction = metric_direction(self.metric_box.currentData())
        except ValueError:
            return
        self.direction.setCurrentIndex(self.direction.findData(direction))
        if getattr(self, "chart", None) is not None and self.view is None:  # no trial yet: its axes as they will be
            self.chart.set_rows([], self.metric_box.currentData(), direction)

    def add_param(self, path: str, values: str | None = None) -> int:
        """A row varying ``path``; ``values`` None: a search around the project's value."""
        if values is None:
            try:
                values = suggest_spec(self.project, path)
            except Exception:  # noqa: BLE001 - no suggestion; the user types one
                values = ""
        self._updating = True
        row = self.params_table.rowCount()
        self.params_table.insertRow(row)
        self.params_table.setItem(row, 0, QTableWidgetItem(path))
        self.params_table.setItem(row, 1, QTableWidgetItem(values))
        check = QTableWidgetItem()
        check.setFlags(Qt.ItemFlag.ItemIsEnabled)
        self.params_table.setItem(row, 2, check)
        self._updating = False
        self.validate()
        if not path:
            self.params_table.setCurrentCell(row, 0)
            self.params_table.editItem(self.params_table.item(row, 0))
        return row

    def set_param_text(self, row: int, path: str | None = None, values: str | None = None) -> None:
        """Type into a row (as the user would, in the table's cells)."""
        if path is not None:
            self.params_table.item(row, 0).setText(path)
        if values is not None:
            self.params_table.item(row, 1).setText(values)

    def rows(self) -> list[tuple[str, str]]:
        table = self.params_table
        return [(table.item(r, 0).text(), table.item(r, 1).text()) for r in range(table.rowCount())]

    @Slot()
    def _remove_selected(self) -> None:
        rows = sorted({index.row() for index in self.params_table.selectedIndexes()}, reverse=True)
        if not rows and self.params_table.currentRow() >= 0:
            rows = [self.params_table.currentRow()]
        for row in rows:
            self.params_table.removeRow(row)
        self.validate()

    @Slot(QTableWidgetItem)
    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._updating or item.column() == 2:
            return
        if item.column() == 0 and not self.params_table.item(item.row(), 1).text().strip():
            # A path typed into a new row: suggest its values as the dialog does when opened from a field.
            suggestion = suggest_spec(self.project, item.text().strip()) if item.text().strip() else ""
            if suggestion:
                self._updating = True
                self.params_table.item(item.row(), 1).setText(suggestion)
                self._updating = False
        self.validate()

    @Slot()
    def _strategy_changed(self) -> None:
        if self._auto_strategy:
            return  # set by validate itself, which goes on
        self._strategy_chosen = True  # the user's choice stays, whatever the rows become
        self.validate()

    def set_project(self, project: Project) -> None:
        """The project the sweep would start from (the window's, edited since)."""
        self.project = project
        if self.watch:  # no set-up: only whether the best trial fits the project
            self._update_apply()
        elif not self.running:
            self.epochs.setSpecialValueText(f"as the project ({project.training.epochs})")
            self.validate()

    def validate(self) -> list[RowCheck]:
        """Check every row, say why beside each, and enable Start only when all are valid."""
        checks = check_rows(self.project, self.rows()) if self.params_table.rowCount() else []
        self._updating = True
        for row, check in enumerate(checks):
            item = self.params_table.item(row, 2)
            if check.problem:
                item.setText(check.problem)
                item.setForeground(QBrush(QColor("#dc2626")))
            else:
                item.setText(f"✓ {check.note}".strip())
                item.setForeground(QBrush(QColor("#15803d")))
            item.setToolTip(item.text())
        self._updating = False
        self.problem: str | None = None
        if not checks:
            self.problem = "Add a setting to vary (its JSON path and the values to try)."
        else:
            first = next((c for c in checks if c.problem), None)
            if first is not None:
                self.problem = f"Fix the settings first: {first.problem}"
        if not self.problem and not self._strategy_chosen:
            # As guidl sweep without --strategy: lists of values only, every combination;
            # a range, TPE's search over a budget of 20.
            wanted = "grid" if all(c.param.kind == "values" for c in checks) else "tpe"
            if self.strategy.currentData() != wanted:
                self._auto_strategy = True
                self.strategy.setCurrentIndex(self.strategy.findData(wanted))
                self._auto_strategy = False
                if wanted != "grid":
                    self.trials.setValue(DEFAULT_TRIALS)
        grid_size = None
        if not self.problem and self.strategy.currentData() == "grid":
            from ..spec.sweep import SweepConfig

            grid_size = SweepConfig([c.param for c in checks], strategy="grid").grid_size()
            if grid_size != getattr(self, "_grid_size", None):
                self.trials.setValue(grid_size)  # every point once; the user may take fewer
        self._grid_size = grid_size
        if not self.problem:
            self.problem = self._config_problem([c.param for c in checks])
        self.grid_note.setText(f"A grid of {grid_size} point{'s' if grid_size != 1 else ''}."
                               if grid_size is not None else "")
        if not self.running and self.view is None or not self.running and self.problem:
            self._show_problem()
        self.start_button.setEnabled(not self.watch and not self.running and self.problem is None)
        return checks

    def _config_problem(self, params) -> str | None:
        """What SweepConfig.problems says of the sweep as set up (each row is valid):
        asked as anything changes, so Start is never pressed only to be told."""
        from ..spec.sweep import SweepConfig

        config = SweepConfig(params=params, strategy=self.strategy.currentData(), trials=self.trials.value(),
                             metric=self.metric_box.currentData(), direction=self.direction.currentData(),
                             pruner=self.pruner.isChecked(), epochs=self.epochs.value() or None)
        problems = config.problems(self.project)
        if not problems:
            return None
        if problems[0].path == "epochs":  # it overrides every trial's swept training.epochs
            return ('Epochs per trial: set it to "as the project" or stop varying training.epochs '
                    "(every trial would train the same epochs whatever its training.epochs says).")
        return f"Cannot start: {problems[0].path}: {problems[0].message}"

    def _show_problem(self) -> None:
        if self.problem:
            self.set_status(self.problem, WARNING_STYLE)
        elif not self.running:
            self.set_status("Ready: Start runs the sweep as a guidl sweep process.", "")

    def config(self):
        """The sweep as set up, or None while a row is invalid."""
        from ..spec.sweep import SweepConfig

        checks = self.validate()
        if self.problem:
            return None
        return SweepConfig(params=[c.param for c in checks], strategy=self.strategy.currentData(),
                           trials=self.trials.value(), metric=self.metric_box.currentData(),
                           direction=self.direction.currentData(), pruner=self.pruner.isChecked(),
                           epochs=self.epochs.value() or None)

    @Slot()
    def _start(self) -> None:
        config = self.config()
        if config is not None:
            self.start_requested.emit(config)

    # -- running -------------------------------------------------------------------------------

    def set_can_continue(self, can: bool) -> None:
        self.continue_button.setVisible(can and not self.watch and not self.running)
        self.start_button.setText("Start New" if self.continue_button.isVisible() else "Start")

    def set_running(self, running: bool) -> None:
        self.running = running
        self.trials_model.set_idle(not running and not self.watch)
        if running:
            self.set_can_continue(False)
        for widget in (self.params_table, self.add_button, self.remove_button, self.strategy, self.trials,
                       self.jobs, self.metric_box, self.direction, self.pruner, self.tensorboard, self.epochs):
            widget.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.start_button.setEnabled(not self.watch and not running and self.problem is None)
        self._update_apply()

    def set_status(self, text: str, style: str | None = None) -> None:
        self.status.setStyleSheet(style or "")
        self.status.setText(text)

    # -- results -------------------------------------------------------------------------------

    def _build_results(self) -> QWidget:
        box = QGroupBox("Results")
        layout = QHBoxLayout(box)
        best = QWidget()
        best.setMaximumWidth(340)
        best_layout = QVBoxLayout(best)
        best_layout.setContentsMargins(0, 0, 0, 0)
        self.best_label = message_label()
        self.best_label.setText("No finished trial yet.")
        self.best_label.show()
        best_layout.addWidget(self.best_label)
        self.apply_button = QPushButton("Apply Best to Project")
        self.apply_button.setToolTip("Set the best trial's values in the project (one undo step)")
        self.apply_button.clicked.connect(self._apply_best)
        best_layout.addWidget(self.apply_button, 0, Qt.AlignmentFlag.AlignLeft)
        # What Apply Best did, beside it: the status line below is the study's progress,
        # rewritten on every read of a running or watched study.
        self.applied_label = message_label()
        best_layout.addWidget(self.applied_label)
        best_layout.addStretch(1)
        layout.addWidget(best)
        self.results_tabs = QTabWidget()
        self.parallel = ParallelCoordinates()
        self.scatter = ParamScatter()
        self.importance = ImportanceBars()
        self.results_tabs.addTab(self.parallel, "Parallel Coordinates")
        self.results_tabs.addTab(self.scatter, "Parameter vs Metric")
        self.results_tabs.addTab(self.importance, "Importance")
        layout.addWidget(self.results_tabs, 1)
        return box

    def show_study(self, view: StudyView) -> None:
        """Show a poll of the study: trials, chart, best trial, plots."""
        self.view = view
        variants = bool(view.variants)
        self.trials_model.set_rows(view.rows, view.params, view.metric, variants)
        self.chart.set_rows(view.rows, view.metric, view.direction)
        params = ["variant"] if variants else view.params
        rows = view.rows
        if variants:  # the plots read params by name: the variant is the one parameter
            rows = [dict(r, params={"variant": r.get("variant")}) for r in view.rows]
        self.parallel.set_rows(rows, params, view.metric, view.direction, view.log_params)
        self.scatter.set_rows(rows, params, view.metric, view.direction, view.log_params)
        self.importance.set_importances(view.importances)
        best = view.best
        if best is None:
            self.best_label.setText("No finished trial yet.")
        else:
            # Everything here comes from the study (a shared storage others write): plain text
            # in a rich-text label, so a variant named "<b>" reads as typed.
            esc = html.escape
            titles = short_names(view.params)
            settings = (f"variant <b>{esc(str(best.get('variant')))}</b>" if variants else
                        ", ".join(f"{esc(str(titles.get(p, p)))} = <b>{esc(format_number(v))}</b>"
                                  for p, v in (best.get("params") or {}).items()))
            folder = str(best.get("run_dir") or "")
            self.best_label.setText(
                f"Best: trial #{esc(str(best['number']))}<br>{esc(str(view.metric))} "
                f"<b>{esc(format_number(best.get('value')))}</b> ({esc(str(view.direction))})<br>{settings}"
                f"<br><small>{esc(Path(folder).name) if folder else ''}</small>")
            self.best_label.setToolTip(folder)
        self._update_apply()
        parts = [f"{trials_done(view)}/{view.trials} trials done"]
        for state, word in (("running", "running"), ("pruned", "pruned"), ("failed", "failed"),
                            ("retried", "failed and retried")):
            if getattr(view.tally, state, 0):
                parts.append(f"{getattr(view.tally, state)} {word}")
        self.progress_text = f"Study {view.name} · " + " · ".join(parts)
        if self.running or self.watch:
            self.set_status(self.progress_text, "")

    def set_applied(self, text: str, style: str | None = OK_STYLE) -> None:
        """What Apply Best did (``Applied trial #12: ...``), under its button; cut
        to a few lines, in full as the tooltip."""
        self.applied_label.setStyleSheet(style or "")
        self.applied_label.setText(text if len(text) <= 300 else text[:299] + "…")
        self.applied_label.setToolTip(text if len(text) > 300 else "")
        self.applied_label.setVisible(bool(text))

    def clear_study(self) -> None:
        """A new sweep starts: the last one's trials and results go."""
        self.set_applied("")
        self.show_study(StudyView(name="", storage="", metric=self.metric_box.currentData() or "value",
                                  direction=self.direction.currentData() or "minimize"))
        self.view = None
        self._update_apply()

    def _update_apply(self) -> None:
        has_best = self.view is not None and self.view.best is not None
        applies = has_best and (not self.watch or self._best_applies())
        # A watched study may be of another project: offered when its best settings fit this one.
        self.apply_button.setVisible(not self.watch or applies)
        self.apply_button.setEnabled(applies)

    def _best_applies(self) -> bool:
        from ..spec import ProjectError

        try:
            best_settings(self.project, self.view, self.view.best)
        except (ProjectError, ValueError, KeyError, TypeError):
            return False
        return True

    @Slot()
    def _apply_best(self) -> None:
        if self.view is not None and self.view.best is not None:
            self.apply_requested.emit(self.view.best)

