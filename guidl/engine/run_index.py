"""What a runs folder holds, one summary per run: what the Runs panel and
``guidl runs`` show.

Every figure comes from the run folder's own files (``run.json``,
``metrics.csv``, ``labels.json`` and the project copy), read as text, never
executed; a file that is missing or damaged leaves its figures blank rather
than hiding the run. Like ``runs``, this module imports neither torch nor Qt.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .. import spec
from ..spec import paths, sweep
from .runs import (
    RunError, RunLabels, is_run_dir, list_runs, read_labels, read_run, runs_root,
)

METRICS_FILE = "metrics.csv"
PROJECT_FILE = "project.guidl.json"
#: metrics.csv grows by one short line an epoch: 10,000 epochs of every figure
#: stay far below this; a larger file is not one of ours.
MAX_METRICS_BYTES = 32 * 1024 * 1024


def metric_direction(metric: str) -> str:
    """``"maximize"`` or ``"minimize"``: which way ``metric`` gets better
    (``spec.sweep.METRICS``; a figure it does not know is a loss)."""
    try:
        return sweep.metric_direction(metric)
    except ValueError:
        return "minimize"


@dataclass
class RunSummary:
    """One run as a list shows it."""

    path: Path
    record: dict[str, Any]
    labels: RunLabels
    name: str                      # labels.name or the folder's name
    status: str                    # run.json status
    cause: str | None              # the error, or why it stopped
    started: datetime | None       # timezone-aware
    duration_s: float | None
    epochs_completed: int
    epochs: int
    device: str | None
    metric: str                    # the main figure (see main_metric)
    direction: str                 # "minimize" | "maximize"
    best: float | None             # of ``metric`` over the epochs
    best_epoch: int | None
    final: float | None            # the last epoch's ``metric``
    final_metrics: dict[str, Any] = field(default_factory=dict)   # run.json "final"
    sweep: dict[str, Any] | None = None                           # run.json "sweep"
    tags: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def project_name(self) -> str | None:
        return self.record.get("project")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: paths and times as strings, absent figures as null."""
        return {
            "path": str(self.path), "folder": self.path.name, "name": self.name,
            "project": self.project_name, "status": self.status, "cause": self.cause,
            "started": self.started.isoformat() if self.started is not None else None,
            "duration_s": self.duration_s, "epochs_completed": self.epochs_completed,
            "epochs": self.epochs, "device": self.device, "seed": self.record.get("seed"),
            "metric": self.metric, "direction": self.direction, "best": self.best,
            "best_epoch": self.best_epoch, "final": self.final,
            "final_metrics": {k: v for k, v in self.final_metrics.items() if v is not None},
            "sweep": self.sweep, "tags": list(self.tags), "note": self.note,
        }


def read_metric_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The run folder ``path``'s ``metrics.csv`` as one dict per epoch
    (numbers; None where a figure is blank or not a number); rows that are not
    an epoch's (no epoch or learning rate) are skipped rather than drawn
    wrong. [] when the file is missing, unreadable, too large or not CSV."""
    try:
        with spec.open_regular_file(Path(path) / METRICS_FILE, MAX_METRICS_BYTES, "a metrics file") as handle:
            raw = handle.read(MAX_METRICS_BYTES + 1)
        if len(raw) > MAX_METRICS_BYTES:
            return []
        reader = csv.DictReader(io.StringIO(raw.decode("utf-8"), newline=""))
        rows = []
        for row in reader:
            metrics: dict[str, Any] = {}
            for name, text in row.items():
                if not isinstance(name, str) or not isinstance(text, str):
                    continue  # a row longer or shorter than the header
                try:
                    metrics[name] = float(text) if text else None
                except ValueError:
                    metrics[name] = None
            epoch, lr = metrics.get("epoch"), metrics.get("lr")
            if epoch is None or lr is None or not math.isfinite(epoch):
                continue
            metrics["epoch"] = int(epoch)
            rows.append(metrics)
        return rows
    except (OSError, ValueError, csv.Error):  # UnreadableFileError and UnicodeDecodeError are ValueErrors
        return []


def read_metrics(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The run folder ``path``'s ``metrics.csv`` by column: one float array
    per column, an entry per epoch, NaN where a figure is blank. {} when the
    file is missing or damaged (see ``read_metric_rows``)."""
    rows = read_metric_rows(path)
    names = list(dict.fromkeys(name for row in rows for name in row))
    return {name: np.array([np.nan if row.get(name) is None else row[name] for row in rows], dtype=float)
            for name in names}


def run_project(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The project the run in ``path`` trained, as ``Project.to_dict()``
    (read as JSON and validated, never executed); None when its copy is
    missing or damaged."""
    try:
        return spec.load(Path(path) / PROJECT_FILE).to_dict()
    except (ValueError, OSError, RecursionError):
        return None


def settings_diff(run_project: dict[str, Any], current: dict[str, Any]) -> list[paths.Change]:
    """What a run's settings are, where they differ from the current
    project's, path by path: each change's ``before`` is the current project's
    value and ``after`` the run's (``optimizer.params.lr 0.001 -> 0.01``: this
    run used 0.01). Layout (node positions) and the project's name are not
    settings and are left out."""
    return paths.diff(current, run_project)


def runs_folder_of(arg: str | os.PathLike[str] | None) -> Path:
    """The runs folder ``guidl runs ARG`` lists: a project file's (``runs``
    beside it; a run's project copy: the folder holding that run), a run
    folder's parent, a project folder's ``runs`` (a folder holding no run but
    a ``runs`` folder), any other folder itself; ``./runs`` for None. The
    folder need not exist."""
    if arg is None:
        return Path.cwd() / "runs"
    path = Path(arg).absolute()
    if path.is_dir():
        if is_run_dir(path):
            return path.parent
        try:
            holds_runs = any(is_run_dir(child) for child in path.iterdir() if child.is_dir())
        except OSError:
            holds_runs = False
        if not holds_runs and (path / "runs").is_dir():
            return path / "runs"
        return path
    return runs_root(path, Path.cwd())


def _task(record: dict[str, Any], project: dict[str, Any] | None) -> str | None:
    task = record.get("task")
    if not isinstance(task, dict) and project is not None:
        task = project.get("task")
    if isinstance(task, dict) and isinstance(task.get("type"), str):
        return task["type"]
    dataset = record.get("dataset")
    if isinstance(dataset, dict) and dataset.get("task") in ("classification", "regression"):
        return dataset["task"]
    return None


def main_metric(record: dict[str, Any], columns: dict[str, np.ndarray],
                project: dict[str, Any] | None = None) -> str:
    """The figure that says how good the run is, by its task: the first of
    ``spec.sweep.TASK_METRICS`` its epochs have values for (so a list of
    runs and a sweep rank by the same figure; a run without a validation
    split falls back on its training figures, a GAN without a judge on its
    generator's loss; an unknown task: ``ANY_TASK_METRICS``)."""
    candidates = sweep.TASK_METRICS.get(_task(record, project) or "", sweep.ANY_TASK_METRICS)
    final = record.get("final") if isinstance(record.get("final"), dict) else {}
    for name in candidates:
        values = columns.get(name)
        if values is not None and np.isfinite(values).any():
            return name
        if values is None and _number(final.get(name)) is not None:
            return name
    return candidates[0]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.astimezone()  # naive: local time


def summarize(path: str | os.PathLike[str], record: dict[str, Any] | None = None) -> RunSummary:
    """The summary of the run folder ``path`` (``record``: its run.json when
    already read); ``RunError`` when its run.json cannot be read."""
    path = Path(path)
    if record is None:
        record = read_run(path)
    labels = read_labels(path)
    columns = read_metrics(path)
    metric = main_metric(record, columns)
    direction = metric_direction(metric)
    final_metrics = record.get("final") or {}
    best = final = best_epoch = None
    values = columns.get(metric)
    if values is not None and np.isfinite(values).any():
        finite = np.flatnonzero(np.isfinite(values))
        at = finite[np.argmax(values[finite]) if direction == "maximize" else np.argmin(values[finite])]
        best, final = float(values[at]), float(values[finite[-1]])
        epochs = columns.get("epoch")
        best_epoch = int(epochs[at]) if epochs is not None and np.isfinite(epochs[at]) else int(at) + 1
    elif _number(final_metrics.get(metric)) is not None:  # no metrics.csv: run.json's last epoch
        best = final = _number(final_metrics[metric])
        best_epoch = _number(final_metrics.get("epoch"))
        best_epoch = int(best_epoch) if best_epoch is not None else None
    started, updated = _time(record.get("started")), _time(record.get("updated"))
    duration = _number(record.get("elapsed_s"))
    if duration is None and started is not None:
        if record["status"] == "running":
            duration = max(0.0, time.time() - started.timestamp())
        elif updated is not None:
            duration = max(0.0, (updated - started).total_seconds())
    status = record["status"]
    cause = record.get("error") if status == "failed" else record.get("stop_reason")
    cause = cause or record.get("error") or None
    device = record.get("device")
    return RunSummary(
        path=path, record=record, labels=labels, name=labels.name or path.name, status=status,
        cause=cause, started=started, duration_s=duration,
        epochs_completed=record.get("epochs_completed") or 0, epochs=record.get("epochs") or 0,
        device=device if isinstance(device, str) else None, metric=metric, direction=direction,
        best=best, best_epoch=best_epoch, final=final, final_metrics=dict(final_metrics),
        sweep=record.get("sweep"), tags=list(labels.tags), note=labels.note)


def list_summaries(root: str | os.PathLike[str], skipped: list[Path] | None = None) -> list[RunSummary]:
    """The runs directly under ``root``, oldest first; folders whose run.json
    cannot be read are skipped (see ``runs.list_runs``) and appended to
    ``skipped`` when given, so a caller can say so."""
    summaries = []
    for path, record in list_runs(root, skipped):
        try:
            summaries.append(summarize(path, record))
        except RunError:
            if skipped is not None:
                skipped.append(path)
            continue
    return summaries


def unplaced(value: Any) -> Any:
    """A project's (or model's) dict without its nodes' canvas positions: where
    the canvas shows a node is no part of the model."""
    if isinstance(value, dict):
        return {k: (v if k == "params" else unplaced(v)) for k, v in value.items() if k != "position"}
    if isinstance(value, list):
        return [unplaced(v) for v in value]
    return value


def same_model_and_data(trained: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether a run's project ``trained`` (a project dict) trained the model of
    ``current`` on its data, node positions aside: its weights then fit, and
    measuring them on the current data means something."""
    data, was = current.get("data") or {}, trained.get("data") or {}
    return unplaced(trained.get("model")) == unplaced(current.get("model")) and (
        was.get("dataset"), was.get("params")) == (data.get("dataset"), data.get("params"))


def run_fits(run: str | os.PathLike[str], project: spec.Project) -> bool:
    """Whether the run trained ``project``'s model on its data (see
    ``same_model_and_data``)."""
    try:
        trained = spec.load(Path(run) / PROJECT_FILE)
    except (OSError, ValueError, RecursionError):
        return False
    return same_model_and_data(trained.to_dict(), project.to_dict())


def latest_run_of(path: str | os.PathLike[str] | None, project: spec.Project,
                  state_dir: str | os.PathLike[str]) -> Path | None:
    """The run a project opened from ``path`` starts with: the latest that
    trained its model on its data and ended with its weights (finished, or
    stopped by the user). The run folder ``path`` lies in (a run's own project
    copy); else, in the project's runs folder and then the window's own (where
    the runs of a project go while it is not saved yet): the newest run whose
    settings are the project's exactly, then the newest trained from this very
    file (run.json's source), of this name, or any that fits (see
    ``run_fits``). Settings first: a sweep's trials record the project file
    as their source too, each with other values than the file's."""
    from .runs import holds_trained_model, latest_trained_run

    folder = Path(path).absolute().parent if path is not None else None
    if folder is not None and is_run_dir(folder):
        try:
            if holds_trained_model(folder, read_run(folder)) and run_fits(folder, project):
                return folder
        except RunError:
            pass
    roots = list(dict.fromkeys((runs_root(path, state_dir), Path(state_dir) / "runs")))
    current = project.to_dict()
    for root in roots:
        for run, record in reversed(list_runs(root)):
            if holds_trained_model(run, record):
                trained = run_project(run)
                if trained is not None and not settings_diff(trained, current):
                    return run
    for root in roots:
        candidates = [latest_trained_run(root, project.name)]
        if path is not None:
            candidates.insert(0, latest_trained_run(root, source=path))
        for latest in candidates:
            if latest is not None and run_fits(latest, project):
                return latest
        for run, record in reversed(list_runs(root)):  # renamed since, say
            if holds_trained_model(run, record) and run_fits(run, project):
                return run
    return None
