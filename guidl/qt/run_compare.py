"""Runs side by side: what each achieved and the settings that set them apart.

One column per run (in the order given: the first is the one the others are
measured against), rows of results (status, time, epochs, the main figure's
best, the last epoch's figures, the test evaluation) and then every setting,
by JSON path, whose value is not the same in all the runs. Cells that differ
from the first run are highlighted; the best figure of a row is bold. With
exactly two runs a second tab lists their project files' differences path by
path (``training.optimizer.params.lr 0.001 -> 0.01``).

Run folders are read as JSON and CSV text only (``engine.run_index``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QBrush, QColor, QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView, QLabel, QListWidget, QListWidgetItem,
    QPushButton, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget,
)

from ..formatting import first_line, format_duration
from ..spec import paths
from .runs_panel import STATUS_COLOURS, metric_text, metric_title

#: The last epoch's figures (run.json "final") a row is given to, in this
#: order, when any of the runs has one; validation first, as people compare.
FINAL_FIGURES = ("val_loss", "val_accuracy", "val_mae", "val_mse", "val_psnr", "train_loss",
                 "train_accuracy", "train_mae", "train_mse", "d_loss", "g_loss", "d_real", "d_fake",
                 "judge_confidence", "judge_coverage", "sample_diversity", "lr")
#: Lower is better for these test evaluation figures; higher for its others. An
#: epoch's figure goes the way spec.sweep.METRICS says (lr and the
#: discriminator's figures: neither).
_LOWER_IS_BETTER = {"loss", "mae", "mse", "rmse"}
_NEITHER = {"lr", "d_loss", "d_real", "d_fake"}
#: The test evaluation's scalar figures (run.json "evaluation") worth a row.
EVALUATION_FIGURES = ("loss", "accuracy", "macro_f1", "mae", "mse", "rmse", "r2", "psnr")
#: A settings cell's value is cut at this many characters (the tooltip has it all).
CELL_CHARS = 48


@dataclass
class _Run:
    path: Path
    summary: Any  # engine.run_index.RunSummary
    project: dict | None  # its project copy, None when missing or damaged


@dataclass
class _Row:
    """A row of the table: a title and one text per column (None: blank), or
    a section heading (``cells`` None)."""

    title: str
    cells: list[str | None] | None = None
    values: list[Any] | None = None  # for highlighting: what is compared
    best: str | None = None  # "min" | "max": bold the best value of the row
    tooltips: list[str | None] | None = None
    colours: list[str | None] | None = None
    highlight: bool = False  # mark the cells whose value is not the first run's


class RunCompareDialog(QDialog):
    """The runs ``paths`` side by side; ``current_project`` (the open
    project's dict, or None) adds a column of its settings for reference."""

    def __init__(self, paths_: list[Path | str], current_project: dict | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Compare runs")
        self.current_project = current_project
        self.runs: list[_Run] = []
        self.unreadable: list[str] = []
        self._read([Path(p) for p in paths_])
        #: The paths of the settings that differ between the runs, in document order.
        self.differing: list[str] = self._differing_paths()
        #: (first, second) project diff, with exactly two runs that both have their project copy.
        self.changes: list[paths.Change] | None = None
        self.rows = self._rows()

        layout = QVBoxLayout(self)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)  # run names as typed
        self.note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.note)
        self.tabs = QTabWidget()
        layout.addWidget(self.tabs, 1)
        self.table = self._table()
        self.tabs.addTab(self.table, "Side by side")
        self.differences: QListWidget | None = None
        if len(self.runs) == 2:
            self.differences = self._differences_list()
            self.tabs.addTab(self.differences, "Differences")
        self._say()

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = QPushButton("Copy as Text")
        self.copy_button.setToolTip("Copy the table shown (tab-separated, for a spreadsheet) or the "
                                    "list of differences to the clipboard")
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self.copy)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._fit()

    # -- reading --------------------------------------------------------------------------------

    def _read(self, folders: list[Path]) -> None:
        from ..engine.run_index import run_project, summarize
        from ..engine.runs import RunError

        for path in folders:
            try:
                summary = summarize(path)
            except (RunError, OSError, ValueError) as error:
                self.unreadable.append(f"{path.name}: {first_line(error)}")
                continue
            self.runs.append(_Run(path, summary, run_project(path)))

    def _differing_paths(self) -> list[str]:
        """Every path whose value is not the same in all the runs with a
        project copy: those where some run differs from the first (if none
        did, all would be the same)."""
        projects = [run.project for run in self.runs if run.project is not None]
        found: dict[str, None] = {}
        for other in projects[1:]:
            for change in paths.diff(projects[0], other):
                found.setdefault(change.path)
        # In document order (the model, then data, then training): each key where
        # it first appears among the runs' projects, list items by index.
        ranks: dict[tuple, dict[str, int]] = {}
        for project in projects:
            for leaf in paths.flatten(project):
                parts = paths.parse_path(leaf)
                for depth, part in enumerate(parts):
                    if isinstance(part, str):
                        keys = ranks.setdefault(tuple(parts[:depth]), {})
                        keys.setdefault(part, len(keys))

        def place(path: str) -> tuple[int, ...]:
            parts = paths.parse_path(path)
            return tuple(part if isinstance(part, int) else ranks.get(tuple(parts[:depth]), {}).get(part, 10**9)
                         for depth, part in enumerate(parts))

        return sorted(found, key=place)

    # -- the table ------------------------------------------------------------------------------

    @property
    def columns(self) -> list[str]:
        """The column headings: each run's name, then "Open project" when one was given."""
        names = [run.summary.name for run in self.runs]
        return names + (["Open project"] if self.current_project is not None else [])

    def _rows(self) -> list[_Row]:
        runs = [run.summary for run in self.runs]
        extra = [None] if self.current_project is not None else []  # the project's results: none
        rows = [_Row("Results")]
        rows.append(_Row("status", [s.status for s in runs] + extra, [s.status for s in runs] + extra,
                         tooltips=[s.cause for s in runs] + extra,
                         colours=[STATUS_COLOURS.get(s.status) for s in runs] + extra, highlight=True))
        rows.append(_Row("started", [s.started.astimezone().strftime("%Y-%m-%d %H:%M") if s.started else None
                                     for s in runs] + extra))
        rows.append(_Row("duration", [format_duration(s.duration_s) if s.duration_s is not None else None
                                      for s in runs] + extra, [s.duration_s for s in runs] + extra))
        rows.append(_Row("epochs", [f"{s.epochs_completed} of {s.epochs}" if s.epochs else str(s.epochs_completed)
                                    for s in runs] + extra, [s.epochs_completed for s in runs] + extra,
                         highlight=True))
        metrics = {s.metric for s in runs}
        if len(metrics) == 1:
            metric = metrics.pop()
            rows.append(_Row(f"best {metric_title(metric)}", [
                None if s.best is None else metric_text(metric, s.best)
                + (f" (epoch {s.best_epoch})" if s.best_epoch is not None else "") for s in runs] + extra,
                [s.best for s in runs] + extra, best="max" if runs[0].direction == "maximize" else "min"))
        else:  # runs of different tasks: each its own main figure
            rows.append(_Row("best", [None if s.best is None else
                                      f"{metric_title(s.metric)} {metric_text(s.metric, s.best)}"
                                      for s in runs] + extra))
        for name in FINAL_FIGURES:
            values = [_number(s.final_metrics.get(name)) for s in runs]
            if any(v is not None for v in values):
                rows.append(_Row(f"final {metric_title(name)}",
                                 [None if v is None else metric_text(name, v) for v in values] + extra,
                                 values + extra, best=_best_of(name)))
        speed = [_number(s.final_metrics.get("samples_per_s")) for s in runs]
        if any(v is not None for v in speed):
            rows.append(_Row("samples/s", [None if v is None else f"{v:,.0f}" for v in speed] + extra,
                             speed + extra))
        rows += self._evaluation_rows(extra)
        rows.append(_Row("device", [s.device for s in runs] + extra, [s.device for s in runs] + extra,
                         highlight=True))

        if not self.differing:
            same = ("The runs' settings are the same." if sum(r.project is not None for r in self.runs) > 1
                    else "Settings: fewer than two runs have a readable project copy.")
            rows.append(_Row(same))
            return rows
        rows.append(_Row(f"Settings that differ ({len(self.differing)})"))
        documents = [run.project for run in self.runs] + (
            [self.current_project] if self.current_project is not None else [])
        for path in self.differing:
            values = [_value(doc, path) for doc in documents]
            defaults = [_default_value(doc, path, documents) if v is paths.MISSING and doc is not None
                        else paths.MISSING for doc, v in zip(documents, values)]
            values = [d if d is not paths.MISSING else v for v, d in zip(values, defaults)]
            # A parameter one run left out trained at its catalogue default: "0.001 (default)".
            cells, tips = [], []
            for doc, value, default in zip(documents, values, defaults):
                note = " (default)" if default is not paths.MISSING else ""
                cells.append(None if doc is None else paths.format_value(value, CELL_CHARS) + note)
                tips.append(None if doc is None else paths.format_value(value, 2000) + note)
            rows.append(_Row(path, cells, values, tooltips=tips, highlight=True))
        return rows

    def _evaluation_rows(self, extra: list) -> list[_Row]:
        """The final model's evaluation (run.json "evaluation", on the split it
        names): on the validation split its loss and accuracy are the last
        epoch's again, so only what the epochs lack (macro F1, ...) is shown."""
        records = [run.summary.record for run in self.runs]
        evaluations = [r.get("evaluation") if isinstance(r.get("evaluation"), dict) else {} for r in records]
        splits = {r.get("evaluation_split") for r, e in zip(records, evaluations) if e}
        split = splits.pop() if len(splits) == 1 else None
        rows = []
        for name in EVALUATION_FIGURES:
            if split == "val" and f"val_{name}" in FINAL_FIGURES:
                continue
            values = [_number(e.get(name)) for e in evaluations]
            if any(v is not None for v in values):
                title = f"{split} {metric_title(name)} (evaluated)" if isinstance(split, str) \
                    else f"evaluated {metric_title(name)}"
                rows.append(_Row(title, [None if v is None else metric_text(name, v) for v in values] + extra,
                                 values + extra, best=_best_of(name)))
        return rows

    def _table(self) -> QTableWidget:
        table = QTableWidget(len(self.rows), 1 + len(self.columns))
        table.setHorizontalHeaderLabels([""] + self.columns)
        for column, run in enumerate(self.runs, start=1):
            table.horizontalHeaderItem(column).setToolTip(str(run.path))
        if self.current_project is not None:
            table.horizontalHeaderItem(len(self.columns)).setToolTip(
                "The open project's settings, as they are now (unsaved edits included)")
        table.verticalHeader().hide()
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.ContiguousSelection)
        table.setWordWrap(False)
        highlight = self.palette().color(QPalette.ColorRole.Highlight)
        highlight.setAlpha(70)
        section = self.palette().color(QPalette.ColorRole.AlternateBase)
        bold = QFont(table.font())
        bold.setBold(True)
        for number, row in enumerate(self.rows):
            title = QTableWidgetItem(row.title)
            table.setItem(number, 0, title)
            if row.cells is None:  # a heading across the whole row
                title.setFont(bold)
                title.setBackground(QBrush(section))
                table.setSpan(number, 0, 1, table.columnCount())
                continue
            title.setToolTip(row.title)
            best = _best_index(row.values or [], row.best, len(self.runs))
            for column, text in enumerate(row.cells, start=1):
                item = QTableWidgetItem("" if text is None else text)
                if row.highlight and column > 1 and text is not None and row.cells[0] is not None \
                        and not _same(row.values[column - 1], row.values[0]):
                    item.setBackground(QBrush(highlight))  # not as in the first run
                if column - 1 == best:
                    item.setFont(bold)
                tip = (row.tooltips or [None] * len(row.cells))[column - 1]
                if tip:
                    item.setToolTip(tip)
                colour = (row.colours or [None] * len(row.cells))[column - 1]
                if colour:
                    item.setForeground(QBrush(QColor(colour)))
                table.setItem(number, column, item)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 10)
        table.resizeColumnsToContents()
        for column in range(table.columnCount()):  # a very long value is cut, not the dialog widened
            table.setColumnWidth(column, min(table.columnWidth(column), 360))
        return table

    def _differences_list(self) -> QListWidget:
        """The second run's project against the first's, path by path."""
        listing = QListWidget()
        listing.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        first, second = self.runs
        if first.project is None or second.project is None:
            missing = first if first.project is None else second
            listing.addItem(f"{missing.summary.name} has no readable project copy "
                            f"({missing.path / 'project.guidl.json'}): nothing to compare.")
            return listing
        self.changes = paths.diff(first.project, second.project)
        for change in self.changes:
            item = QListWidgetItem(paths.format_change(change))
            item.setToolTip(f"{change.path}\n{first.summary.name}: {paths.format_side(change, 'before', 2000)}\n"
                            f"{second.summary.name}: {paths.format_side(change, 'after', 2000)}")
            listing.addItem(item)
        if not self.changes:
            listing.addItem("The two runs' project files have the same settings.")
        return listing

    def _say(self) -> None:
        parts = []
        if self.runs:
            parts.append(f"{len(self.runs)} runs; highlighted: a value not as in the first run "
                         f"({self.runs[0].summary.name}); bold: the best of a row.")
        if len(self.runs) == 2 and self.changes is not None:
            parts.append(f"Differences: how {self.runs[1].summary.name}'s project differs from "
                         f"{self.runs[0].summary.name}'s ({len(self.changes)}).")
        if self.unreadable:
            parts.append("Left out (unreadable): " + "; ".join(self.unreadable))
        if not self.runs:
            parts.append("None of these runs could be read.")
        self.note.setText(" ".join(parts))

    def _fit(self) -> None:
        table = self.table
        width = sum(table.columnWidth(c) for c in range(table.columnCount())) + 60
        height = sum(table.rowHeight(r) for r in range(table.rowCount())) + 180
        screen = self.screen().availableGeometry() if self.screen() else None
        limit_w, limit_h = (screen.width() * 0.9, screen.height() * 0.85) if screen else (1200, 800)
        self.resize(int(min(max(width, 520), limit_w)), int(min(max(height, 360), limit_h)))

    # -- copying --------------------------------------------------------------------------------

    def table_text(self) -> str:
        """The table as tab-separated lines (a heading row, then one per row)."""
        lines = ["\t".join(["run"] + self.columns)]
        for row in self.rows:
            cells = [] if row.cells is None else ["" if c is None else c for c in row.cells]
            lines.append("\t".join([row.title] + cells))
        return "\n".join(lines) + "\n"

    def differences_text(self) -> str:
        if self.differences is None:
            return ""
        return "\n".join(self.differences.item(i).text() for i in range(self.differences.count())) + "\n"

    @Slot()
    def copy(self) -> None:
        """Copy what the current tab shows."""
        shown = self.tabs.currentWidget()
        text = self.differences_text() if shown is self.differences else self.table_text()
        QGuiApplication.clipboard().setText(text)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _value(doc: dict | None, path: str) -> Any:
    if doc is None:
        return paths.MISSING
    try:
        return paths.get_path(doc, path)
    except paths.PathError:
        return paths.MISSING


def _default_value(doc: dict, path: str, documents: list) -> Any:
    """The value ``doc`` trained with at ``path`` it leaves out: the catalogue
    default ``paths.diff`` fills in against a run that sets it (MISSING when the
    path has no default there, e.g. a whole scheduler left out)."""
    for other in documents:
        if other is None or other is doc or _value(other, path) is paths.MISSING:
            continue
        changes = paths.diff(other, doc)
        for change in changes:
            if change.path == path:
                return change.after if change.after_default else paths.MISSING
        if any(path.startswith(c.path + ".") or path.startswith(c.path + "[") for c in changes):
            return paths.MISSING  # an enclosing setting differs: nothing to fill
        return _value(other, path)  # no change here: the left-out default equals this value
    return paths.MISSING


def _same(a: Any, b: Any) -> bool:
    """As ``paths.diff`` judges: 1 and 1.0 alike, an absent params like an empty one."""
    if a is paths.MISSING or b is paths.MISSING:
        return a is b
    return not paths.diff({"v": a}, {"v": b})


def _best_of(name: str) -> str | None:
    from ..spec.sweep import METRICS

    if name in _NEITHER:
        return None
    if name in METRICS:
        return "min" if METRICS[name] == "minimize" else "max"
    return "min" if name in _LOWER_IS_BETTER else "max"


def _best_index(values: list, best: str | None, count: int) -> int | None:
    """The column of the row's best run (None: no direction, fewer than two
    figures, or all the same)."""
    numbers = [(v, i) for i, v in enumerate(values[:count]) if isinstance(v, float)]
    if best is None or len(numbers) < 2 or len({v for v, _ in numbers}) == 1:
        return None
    return (min(numbers) if best == "min" else max(numbers))[1]
