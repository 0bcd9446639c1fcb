"""The Runs tab: every run of the project in one sortable, filterable table.

A view only. ``RunsController`` (``controllers/runs.py``) lists the runs
folder and hands the rows in with ``set_runs``; what the user asks for
(make a run current, open its project, compare, show, delete, a new name,
tags or a note, ticks for the charts' overlay) leaves as signals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel, QModelIndex, QPersistentModelIndex, QPoint, QSortFilterProxyModel, Qt, Signal, Slot,
)
from PySide6.QtGui import QAction, QBrush, QColor, QFont, QFontMetrics, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMenu, QPushButton, QTableView,
    QVBoxLayout, QWidget,
)

from ..formatting import format_duration

#: The statuses a run can show, in the order the filter lists them.
#: engine.runs.STATUSES, written out: importing the engine loads PyTorch, which the window
#: only loads in the background after it shows (a test keeps the two the same).
STATUSES = ("running", "finished", "stopped", "interrupted", "pruned", "failed")
#: Each run status's and sweep trial state's colour (None: the text's own), one table for the
#: Runs tab and the Sweep dialog: readable on the light and the dark theme alike.
STATUS_COLOURS = {"running": "#3b82f6", "finished": "#16a34a", "stopped": "#d97706",
                  "interrupted": "#d97706", "pruned": "#8b8b8b", "failed": "#dc2626",
                  # a sweep trial's states besides (engine.sweep.trial_rows)
                  "complete": None, "retried": "#9ca3af", "waiting": "#6b7280"}
#: (key, header) of each column, in order: as in MATLAB's Experiment Manager,
#: what a run varied, then what it got, then the rest.
COLUMNS = (("tick", ""), ("name", "Name"), ("status", "Status"), ("trial", "Sweep"),
           ("changes", "Differences from the project"), ("best", "Best"), ("final", "Final"),
           ("epochs", "Epochs"), ("duration", "Duration"), ("started", "Started"), ("tags", "Tags"),
           ("note", "Note"), ("device", "Device"))
COLUMN = {key: number for number, (key, _) in enumerate(COLUMNS)}
EDITABLE = ("name", "tags", "note")
#: The role the table's rows are sorted by: numbers as numbers, times as times.
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
#: The role that holds a row's run folder.
PATH_ROLE = Qt.ItemDataRole.UserRole + 2
#: At most this many differences are named in the cell (by short paths); the tooltip lists all.
SHOWN_CHANGES = 2
#: The widest a column is made to fit its contents (pixels); the user may widen it.
MAX_COLUMN = 320
#: The differences' column may take more: a sweep trial's two settings side by side.
MAX_CHANGES_COLUMN = 480
#: The tooltip of a run that trained another model or on other data.
UNFIT = ("Trained another model or on other data: it cannot become the current run "
         "(“Open This Run's Project” works with it)")
#: The dimmed text of such a run.
UNFIT_COLOUR = "#9ca3af"
EMPTY = ("No runs yet. Train the model (F5), or run “guidl train PROJECT” or a sweep: "
         "every run of this project appears here.")


@dataclass
class RunRow:
    """What the table shows of one run: its summary (``engine.run_index.RunSummary``)
    and its settings' differences from the open project, each as one line."""

    summary: Any
    changes: list[str] = field(default_factory=list)
    #: Whether it trained the open project's model on its data (``engine.run_index.run_fits``):
    #: only then can it become the window's model; shown dimmed otherwise.
    fits: bool = True

    @property
    def path(self) -> Path:
        return Path(self.summary.path)


def metric_text(metric: str, value: float | None) -> str:
    """A validation figure as people read it: accuracy in percent, others to 4 figures."""
    if value is None or not math.isfinite(value):
        return ""
    if "accuracy" in metric or "coverage" in metric or "confidence" in metric:
        return f"{value:.2%}"
    return f"{value:.4g}"


def short_changes(changes: list[str]) -> list[str]:
    """Difference lines (``training.optimizer.params.lr 0.001 -> 0.01``) with
    their paths cut to the last steps (``optimizer.lr 0.001 -> 0.01``), as the
    sweep plots name them: a sweep's trials differ in two or three settings,
    all of which should fit the cell."""
    from .sweep_plots import short_names

    split = [line.split(" ", 1) if " " in line else [line, ""] for line in changes]
    names = short_names([path for path, _ in split])
    return [f"{names.get(path, path)} {rest}".rstrip() for path, rest in split]


def changes_text(changes: list[str]) -> str:
    """A run's differences in short: the first ``SHOWN_CHANGES`` by short paths, then how many more."""
    if not changes:
        return ""
    more = len(changes) - SHOWN_CHANGES
    return "; ".join(short_changes(changes[:SHOWN_CHANGES])) + (f" (+{more} more)" if more > 0 else "")


def started_text(started: datetime | None) -> str:
    """When a run started, in local time to the minute (as the Started column shows it)."""
    started = _local(started)
    return started.strftime("%Y-%m-%d %H:%M") if started else ""


#: The words of a figure's name written as people write them (``val_mae`` -> ``val MAE``).
ACRONYMS = {"mae": "MAE", "mse": "MSE", "rmse": "RMSE", "psnr": "PSNR", "ssim": "SSIM", "iou": "IoU",
            "auc": "AUC", "lr": "LR", "f1": "F1"}


def metric_title(metric: str) -> str:
    """A metric's name as headers and lines show it: ``val_accuracy`` -> ``val
    accuracy``, ``val_mae`` -> ``val MAE`` (the one helper for the Runs tab,
    Compare and the sweep views)."""
    return " ".join(ACRONYMS.get(word.casefold(), word) for word in metric.split("_"))


def _local(started: datetime | None) -> datetime | None:
    if started is None:
        return None
    return started.astimezone() if started.tzinfo is not None else started


def trial_text(sweep: dict | None) -> str:
    """A sweep trial's study and number (``lr-sweep #3``), or what it compared."""
    if not isinstance(sweep, dict):
        return ""
    study, trial, variant = sweep.get("study"), sweep.get("trial"), sweep.get("variant")
    text = str(study) if study else "sweep"
    if isinstance(trial, int) and not isinstance(trial, bool):
        text += f" #{trial}"
    if variant:
        text += f" · {variant}"
    return text


class RunsModel(QAbstractTableModel):
    """The runs as table rows. Edits of name, tags and note, and ticks, are
    not kept here: they leave as ``labels_edited`` and ``ticked_changed`` and
    come back with the next ``set_rows`` (the labels file is the truth)."""

    #: (run folder, {"name"|"tags"|"note": new value})
    labels_edited = Signal(Path, dict)
    #: The ticked run folders, in the order they were ticked.
    ticked_changed = Signal(list)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[RunRow] = []
        self.current: Path | None = None
        self.ticked: list[Path] = []
        self.colours: dict[Path, QColor] = {}  # a ticked run's overlay colour
        self.metric = ""  # the validation figure all rows share ("" when they differ)

    # -- filling ----------------------------------------------------------------------------

    def set_rows(self, rows: list[RunRow], current: Path | None) -> None:
        metrics = {row.summary.metric for row in rows}
        metric = next(iter(metrics)) if len(metrics) == 1 else ""
        same = [r.path for r in rows] == [r.path for r in self.rows] and metric == self.metric
        was_current = self.current
        self.current = current
        self.ticked = [p for p in self.ticked if any(r.path == p for r in rows)]
        if same:  # the same runs: repaint in place, so selection, editing and scroll stay
            old, self.rows = self.rows, rows
            # Only the span of rows whose summary or differences changed (the
            # controller reuses an unchanged run's summary): a dataChanged makes
            # the sorting proxy sort again, which costs with hundreds of runs.
            changed = [number for number, (before, after) in enumerate(zip(old, rows))
                       if before.summary is not after.summary or before.changes != after.changes
                       or before.fits != after.fits
                       or (was_current != current and after.path in (was_current, current))]
            if changed:
                self.dataChanged.emit(self.index(changed[0], 0), self.index(changed[-1], len(COLUMNS) - 1))
            return
        self.beginResetModel()
        self.rows, self.metric = rows, metric
        self.endResetModel()
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, COLUMN["best"], COLUMN["final"])

    def set_ticked(self, paths: list[Path], colours: dict[Path, QColor] | None = None) -> None:
        self.ticked = [Path(p) for p in paths if any(r.path == Path(p) for r in self.rows)]
        self.colours = dict(colours or {})
        if self.rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.rows) - 1, 0))

    def row_of(self, path: Path) -> int:
        return next((i for i, r in enumerate(self.rows) if r.path == Path(path)), -1)

    # -- Qt's model interface ----------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 - Qt's name
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        key, title = COLUMNS[section]
        if role == Qt.ItemDataRole.DisplayRole:
            if key in ("best", "final") and self.metric:
                return f"{title}\n{metric_title(self.metric)}"
            return title
        if role == Qt.ItemDataRole.ToolTipRole:
            return {
                "tick": "Tick runs to draw their curves on the Train tab's charts",
                "best": "The best epoch's validation figure", "final": "The last epoch's validation figure",
                "changes": "Settings of the run that differ from the project open now",
                "tags": "Comma-separated tags (double-click to edit)", "note": "A note (double-click to edit)",
                "name": "The run's name (double-click to rename; the folder keeps its name)",
                "trial": "The sweep (study) and trial number the run belongs to",
            }.get(key)
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        key = COLUMNS[index.column()][0]
        if key == "tick":
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        elif key in EDITABLE:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        summary, key = row.summary, COLUMNS[index.column()][0]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.display(row, key)
        if role == Qt.ItemDataRole.EditRole:
            return {"name": summary.name, "tags": ", ".join(summary.tags), "note": summary.note}.get(key)
        if role == SORT_ROLE:
            return self.sort_key(row, key)
        if role == PATH_ROLE:
            return row.path
        if role == Qt.ItemDataRole.CheckStateRole and key == "tick":
            return Qt.CheckState.Checked if row.path in self.ticked else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.DecorationRole and key == "tick" and row.path in self.colours:
            swatch = QPixmap(10, 10)
            swatch.fill(self.colours[row.path])
            return swatch
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(row, key)
        if role == Qt.ItemDataRole.ForegroundRole and not row.fits:
            return QBrush(QColor(UNFIT_COLOUR))
        if role == Qt.ItemDataRole.ForegroundRole and key == "status":
            return QBrush(QColor(STATUS_COLOURS.get(summary.status) or "#8b8b8b"))
        if role == Qt.ItemDataRole.FontRole and self.current is not None and row.path == self.current:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and key in ("duration", "epochs", "best", "final"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def display(self, row: RunRow, key: str) -> str:
        summary = row.summary
        if key == "name":
            return summary.name
        if key == "status":
            return summary.status
        if key == "trial":
            return trial_text(summary.sweep)
        if key == "started":
            return started_text(summary.started)
        if key == "duration":
            return format_duration(summary.duration_s) if summary.duration_s is not None else ""
        if key == "epochs":
            return f"{summary.epochs_completed}/{summary.epochs}" if summary.epochs else str(summary.epochs_completed)
        if key in ("best", "final"):
            text = metric_text(summary.metric, getattr(summary, key))
            return text if self.metric or not text else f"{text} ({metric_title(summary.metric)})"
        if key == "device":  # "cpu (2 cores, 1 threads)": the device, the rest in its tooltip
            return (summary.device or "").split(" (")[0]
        if key == "changes":
            return changes_text(row.changes)
        if key == "tags":
            return ", ".join(summary.tags)
        if key == "note":
            return summary.note.splitlines()[0] if summary.note else ""
        return ""

    def sort_key(self, row: RunRow, key: str) -> tuple:
        """What a column sorts by: a run without the figure sorts after those with it."""
        summary = row.summary
        value: Any
        if key == "tick":
            value = None
        elif key == "started":
            started = summary.started
            if started is not None and started.tzinfo is None:
                started = started.astimezone()  # a naive time is the local one
            value = started.timestamp() if started is not None else None
        elif key == "duration":
            value = summary.duration_s
        elif key == "epochs":
            value = summary.epochs_completed
        elif key in ("best", "final"):
            value = getattr(summary, key)
            value = value if value is not None and math.isfinite(value) else None
        elif key == "trial":
            sweep = summary.sweep if isinstance(summary.sweep, dict) else {}
            trial = sweep.get("trial")
            value = (str(sweep.get("study") or ""), trial if isinstance(trial, int) else -1) if sweep else None
        elif key == "status":
            value = STATUSES.index(summary.status) if summary.status in STATUSES else len(STATUSES)
        elif key == "changes":
            value = len(row.changes)
        else:
            value = self.display(row, key).casefold()
        return (value is None, value if value is not None else 0)

    def tooltip(self, row: RunRow, key: str) -> str | None:
        text = self._tooltip(row, key)
        if row.fits or key == "tick":
            return text
        return UNFIT if not text else f"{UNFIT}\n\n{text}"

    def _tooltip(self, row: RunRow, key: str) -> str | None:
        summary = row.summary
        if key == "status":
            return f"{summary.status}: {summary.cause}" if summary.cause else None
        if key == "changes":
            return "\n".join(row.changes) if row.changes else "The same settings as the project"
        if key == "name":
            lines = [str(row.path)]
            if self.current is not None and row.path == self.current:
                lines.append("The current run: Results, Evaluate, Export and Try use its model")
            return "\n".join(lines)
        if key == "note":
            return summary.note or None
        if key == "device":
            return summary.device or None
        if key in ("best", "final"):
            return f"{metric_title(summary.metric)}, {'best epoch' if key == 'best' else 'last epoch'}"
        if key == "trial" and isinstance(summary.sweep, dict):
            params = summary.sweep.get("params")
            if isinstance(params, dict) and params:
                return "\n".join(f"{name} = {value}" for name, value in params.items())
        if key == "started" and summary.started is not None:
            return _local(summary.started).isoformat(sep=" ", timespec="seconds")
        return None

    def setData(self, index: QModelIndex | QPersistentModelIndex, value: Any,  # noqa: N802 - Qt's name
                role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid():
            return False
        row, key = self.rows[index.row()], COLUMNS[index.column()][0]
        if key == "tick" and role == Qt.ItemDataRole.CheckStateRole:
            checked = Qt.CheckState(value) == Qt.CheckState.Checked
            ticked = [p for p in self.ticked if p != row.path] + ([row.path] if checked else [])
            self.ticked = ticked
            self.dataChanged.emit(index, index)
            self.ticked_changed.emit(list(ticked))
            return True
        if key in EDITABLE and role == Qt.ItemDataRole.EditRole:
            text = str(value).strip()
            if key == "tags":
                new: Any = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
            elif key == "name":
                new = text or None  # empty: the folder's name again
            else:
                new = str(value).strip()
            self.labels_edited.emit(row.path, {key: new})
            return True
        return False


class RunsFilter(QSortFilterProxyModel):
    """Rows whose name, tags, note or differences hold the filter text, of the chosen status."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.text = ""
        self.status = ""  # "" for every status
        self.fitting_only = False  # only the runs of the open project's model and data
        self.setSortRole(SORT_ROLE)

    def set_filter(self, text: str, status: str, fitting_only: bool = False) -> None:
        if not hasattr(self, "beginFilterChange"):  # Qt before 6.10
            self.text, self.status, self.fitting_only = text.strip().casefold(), status, fitting_only
            self.invalidateRowsFilter()
            return
        self.beginFilterChange()
        self.text, self.status, self.fitting_only = text.strip().casefold(), status, fitting_only
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        model: RunsModel = self.sourceModel()  # type: ignore[assignment]
        row = model.rows[source_row]
        summary = row.summary
        if self.status and summary.status != self.status:
            return False
        if self.fitting_only and not row.fits:
            return False
        if not self.text:
            return True
        haystack = " ".join([summary.name, Path(row.path).name, " ".join(summary.tags), summary.note,
                             trial_text(summary.sweep), *row.changes]).casefold()
        return all(word in haystack for word in self.text.split())

    def lessThan(self, left: QModelIndex | QPersistentModelIndex,  # noqa: N802 - Qt's name
                 right: QModelIndex | QPersistentModelIndex) -> bool:
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if isinstance(a, tuple) and isinstance(b, tuple) and a and b and a[0] != b[0]:
            # A run without the figure (failed, just started) goes last either way: sorting
            # the best figure from the top must not list the runs that have none first.
            return a[0] if self.sortOrder() == Qt.SortOrder.DescendingOrder else b[0]
        try:
            return a < b
        except TypeError:  # mixed kinds in one column: order by their text
            return str(a) < str(b)


class RunsPanel(QWidget):
    """The Runs tab: a filter line and a status filter, the table, and the
    buttons (also in the table's context menu)."""

    ticked_changed = Signal(list)
    make_current_requested = Signal(Path)
    open_project_requested = Signal(Path)
    compare_requested = Signal(list)
    show_folder_requested = Signal(Path)
    delete_requested = Signal(list)
    labels_edited = Signal(Path, dict)
    refresh_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = RunsModel(self)
        self.model.ticked_changed.connect(self.ticked_changed)
        self.model.ticked_changed.connect(self._update_buttons)  # Compare takes the ticked runs
        self.model.labels_edited.connect(self.labels_edited)
        self.proxy = RunsFilter(self)
        self.proxy.setSourceModel(self.model)

        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter by name, tag, note or setting (e.g. lr or Adam)…")
        self.filter.setClearButtonEnabled(True)
        self.status_filter = QComboBox()
        self.status_filter.addItem("All statuses", "")
        for status in STATUSES:
            self.status_filter.addItem(status.capitalize(), status)
        # Off by default: every run in the folder is listed, those of another model or
        # data dimmed (a project not saved yet shares the window's runs folder with others).
        self.this_model = QCheckBox("This model only")
        self.this_model.setToolTip("List only the runs that trained the open project's model on its data")
        self.filter.textChanged.connect(self._filter_changed)
        self.status_filter.currentIndexChanged.connect(self._filter_changed)
        self.this_model.toggled.connect(self._filter_changed)
        self.count = QLabel()
        self.count.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(self.status_filter)
        top.addWidget(self.this_model)
        top.addWidget(self.count)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COLUMN["started"], Qt.SortOrder.DescendingOrder)  # newest first
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        # Room for the tick box and a ticked run's colour, ticked or not: the columns never shift.
        header.setSectionResizeMode(COLUMN["tick"], QHeaderView.ResizeMode.Fixed)
        header.resizeSection(COLUMN["tick"], 44)
        header.setStretchLastSection(False)  # the user's widths stay; a wide window shows space
        self._fitting = False
        self._user_sized: set[int] = set()  # columns the user has resized: never fitted again
        header.sectionResized.connect(self._section_resized)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.empty = QLabel(EMPTY)
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setEnabled(False)  # drawn greyed, as a placeholder

        self.actions_: dict[str, QAction] = {}
        self.buttons_: dict[str, QPushButton] = {}
        buttons = QHBoxLayout()
        for key, text, tip, slot in (
            ("current", "Make &Current", "Its trained model becomes the window's: Results, Evaluate, Export and "
             "Try use it", self._make_current),
            ("project", "&Open This Run's Project", "Its exact settings become the project's (one undo step)",
             self._open_project),
            ("compare", "Com&pare…", "Settings and final figures side by side (the ticked runs, else the "
             "selected ones; two or more)", self._compare),
            ("folder", "Show in &Folder", "Open the run's folder in the file manager", self._show_folder),
            ("delete", "&Delete…", "Move the selected runs to the trash (or delete them, when asked)",
             self._delete),
        ):
            action = QAction(text, self)
            action.setToolTip(tip)
            action.setStatusTip(tip)
            action.triggered.connect(slot)
            self.actions_[key] = action
            button = QPushButton(text.replace("&", "").replace("…", "") + ("…" if "…" in text else ""))
            button.setToolTip(tip)
            button.clicked.connect(action.trigger)
            action.enabledChanged.connect(button.setEnabled)
            self.buttons_[key] = button
            buttons.addWidget(button)
        self._current_tip = self.actions_["current"].toolTip()
        delete = self.actions_["delete"]
        delete.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        # Only while the table has the focus: Del is Delete Layer's in the layer table (another
        # tab), and Qt fires neither of two shortcuts in context at once (tests/gui/test_shortcuts.py).
        delete.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.table.addAction(delete)
        buttons.addStretch(1)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("List the runs folder again")
        self.refresh_button.clicked.connect(self.refresh_requested)
        buttons.addWidget(self.refresh_button)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty, 1)
        layout.addLayout(buttons)
        self.folder: Path | None = None
        self.set_runs([], None, None)

    # -- filling ---------------------------------------------------------------------------

    def set_runs(self, rows: list[RunRow], current: Path | None, folder: Path | None) -> None:
        """Show ``rows``; ``current`` is the window's run (bold); ``folder`` the runs folder listed."""
        selected = self.selected()
        fit = folder != self.folder or (rows and not self.model.rows)
        # A new run, or the project edited (the differences change): widened to fit (cheap: texts
        # only). Never for a name, tag or note the user just typed: the column grew under the
        # mouse, and the next double-click, meant for the note beside it, edited the tags again.
        before = {r.path: r.changes for r in self.model.rows}
        grow = not fit and any(before.get(r.path) != r.changes or r.path not in before for r in rows)
        if folder != self.folder:
            self._user_sized.clear()
        self.folder = folder
        self.model.set_rows(rows, current)
        self._fitting = True  # hiding or showing a column resizes it: not the user's doing
        self.table.setColumnHidden(COLUMN["trial"], not any(r.summary.sweep for r in rows))
        self._fitting = False
        if fit or grow:  # a new run (the window's, named by its time) or a new tag is not cut short
            self.fit_columns(grow_only=not fit)
        self.select(selected)
        self.empty.setText(EMPTY)
        has_rows = bool(rows)
        self.table.setVisible(has_rows)
        self.empty.setVisible(not has_rows)
        self._update_count()
        self._update_buttons()

    def fit_columns(self, grow_only: bool = False) -> None:
        """Each column as wide as its contents, in bold too (the current run's
        row), at most ``MAX_COLUMN`` pixels; once per runs folder, then only
        widened for new runs, and never a column the user has sized."""
        header = self.table.horizontalHeader()
        self._fitting = True
        try:
            self._fit_columns(header, grow_only)
        finally:
            self._fitting = False

    @Slot(int, int, int)
    def _section_resized(self, column: int, _old: int, _new: int) -> None:
        if not self._fitting:
            self._user_sized.add(column)

    def _fit_columns(self, header: QHeaderView, grow_only: bool) -> None:
        bold = QFont(self.table.font())
        bold.setBold(True)
        metrics = QFontMetrics(bold)
        for column, (key, _) in enumerate(COLUMNS):
            if key == "tick" or self.table.isColumnHidden(column) or (grow_only and column in self._user_sized):
                continue
            # Measured here rather than by resizeColumnToContents, which asks the
            # model for every cell's size hint again: slow with hundreds of runs.
            texts = {self.model.display(row, key) for row in self.model.rows}
            widest = max((metrics.horizontalAdvance(text) for text in texts), default=0) + 12
            title = header.sectionSizeFromContents(column).width()
            width = min(max(title, widest), MAX_CHANGES_COLUMN if key == "changes" else MAX_COLUMN)
            if not grow_only or width > header.sectionSize(column):
                header.resizeSection(column, width)

    def set_placeholder(self, text: str) -> None:
        """What the tab says while it has no runs to show (PyTorch loading, say)."""
        self.empty.setText(text)

    def set_ticked(self, paths: list[Path], colours: dict[Path, QColor] | None = None) -> None:
        self.model.set_ticked(paths, colours)
        self._update_buttons()  # Compare takes the ticked runs

    def ticked(self) -> list[Path]:
        return list(self.model.ticked)

    # -- selection -------------------------------------------------------------------------

    def selected(self) -> list[Path]:
        """The selected runs' folders, top to bottom as shown."""
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.proxy.index(row, 0).data(PATH_ROLE) for row in rows]

    def select(self, paths: list[Path]) -> None:
        selection = self.table.selectionModel()
        selection.clearSelection()
        for path in paths:
            source = self.model.row_of(path)
            if source < 0:
                continue
            index = self.proxy.mapFromSource(self.model.index(source, 0))
            if index.isValid():
                selection.select(index, selection.SelectionFlag.Select | selection.SelectionFlag.Rows)

    def _for_compare(self) -> list[Path]:
        ticked = self.ticked()
        return ticked if len(ticked) >= 2 else self.selected()

    @Slot()
    def _update_buttons(self) -> None:
        selected = self.selected()
        one = len(selected) == 1
        for key in ("project", "folder"):
            self.actions_[key].setEnabled(one)
        row = self.model.row_of(selected[0]) if one else -1
        fits = row >= 0 and self.model.rows[row].fits
        self.actions_["current"].setEnabled(fits)
        tip = self._current_tip if fits or not one else UNFIT
        self.actions_["current"].setToolTip(tip)
        self.buttons_["current"].setToolTip(tip)
        self.actions_["compare"].setEnabled(len(self._for_compare()) >= 2)
        self.actions_["delete"].setEnabled(bool(selected))

    @Slot()
    def _filter_changed(self) -> None:
        self.proxy.set_filter(self.filter.text(), self.status_filter.currentData() or "",
                              self.this_model.isChecked())
        self._update_count()
        self._update_buttons()

    def _update_count(self) -> None:
        total, shown = self.model.rowCount(), self.proxy.rowCount()
        text = f"{total} run{'s' if total != 1 else ''}" if shown == total else f"{shown} of {total} runs"
        self.count.setText(text)
        self.count.setToolTip(f"Runs folder: {self.folder}" if self.folder else "")

    # -- the commands ------------------------------------------------------------------------

    def _context_menu(self, point: QPoint) -> None:
        index = self.table.indexAt(point)
        if index.isValid() and index.row() not in {i.row() for i in self.table.selectionModel().selectedRows()}:
            self.table.selectRow(index.row())
        menu = QMenu(self)
        for key in ("current", "project", "compare", "folder"):
            menu.addAction(self.actions_[key])
        menu.addSeparator()
        menu.addAction(self.actions_["delete"])
        menu.exec(self.table.viewport().mapToGlobal(point))

    def _one(self) -> Path | None:
        selected = self.selected()
        return selected[0] if len(selected) == 1 else None

    @Slot()
    def _make_current(self) -> None:
        if (path := self._one()) is not None:
            self.make_current_requested.emit(path)

    @Slot()
    def _open_project(self) -> None:
        if (path := self._one()) is not None:
            self.open_project_requested.emit(path)

    @Slot()
    def _compare(self) -> None:
        paths = self._for_compare()
        if len(paths) >= 2:
            self.compare_requested.emit(paths)

    @Slot()
    def _show_folder(self) -> None:
        if (path := self._one()) is not None:
            self.show_folder_requested.emit(path)

    @Slot()
    def _delete(self) -> None:
        if selected := self.selected():
            self.delete_requested.emit(selected)
