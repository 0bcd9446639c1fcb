"""Runs: the project's runs folder in the Runs tab, kept up to date; runs
ticked for the charts' overlay; a run made current (its model becomes the
window's) or its project opened; labels, comparison and deletion.

Listing is in the GUI thread, so it is kept cheap: a run is read again only
when one of its files changed (their sizes and modification times are
compared), or while it says ``running`` (its process may have died). The
folder is watched (a new run folder, a run.json replaced: every run file is
written by renaming a temporary file, which changes the run's folder) rather
than polled, and a slow timer runs only while some run is running.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QFile, QFileSystemWatcher, QObject, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QColor, QDesktopServices
from PySide6.QtWidgets import QMainWindow, QMessageBox

from ..runs_panel import RunRow, RunsPanel

#: How often runs that say ``running`` are read again (ms): their epochs and
#: figures, and whether their process still lives.
RUNNING_POLL_MS = 3000
#: Changes in the runs folder are taken together (ms): a run's end renames several files.
SETTLE_MS = 250
#: Files whose change makes a run's summary stale.
_WATCHED_FILES = ("run.json", "metrics.csv", "labels.json", "project.guidl.json")


def _stamp(path: Path) -> tuple:
    """What changes when a run's files do: each file's size and modification time."""
    stamp = []
    for name in _WATCHED_FILES:
        try:
            info = os.stat(path / name)
            stamp.append((info.st_size, info.st_mtime_ns))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


def move_to_trash(path: Path) -> None:
    """Move ``path`` to the platform's trash; ``OSError`` when there is none
    (or it refuses): the caller then asks before deleting for good."""
    if not QFile.moveToTrash(str(path)):
        raise OSError(f"{path.name} could not be moved to the trash")


class RunsController(QObject):
    #: The runs ticked for the charts' overlay changed: their folders, in the order ticked.
    ticked_changed = Signal(list)

    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self.window = window
        self.panel = RunsPanel()
        window.tab_pages["runs"] = self.panel
        window.tabs.addTab(self.panel, "Runs")
        self.root: Path | None = None
        #: run folder -> (stamp, summary) of the runs read; reused while their files are unchanged.
        self._cache: dict[Path, tuple[tuple, object]] = {}
        #: run folder -> (its project copy's stamp, its differences from ``_diffs_against``).
        self._diffs: dict[Path, tuple[object, list[str], bool]] = {}
        #: run folder -> (its project copy's stamp, the copy as a dict, None when damaged): an
        #: edit of the open project diffs against these rather than reading every copy again.
        self._projects: dict[Path, tuple[object, dict | None]] = {}
        self._diffs_against: dict | None = None  # the project the diffs are computed against
        #: (folder, stamp, summary) of a run Results shows that is not in the runs folder listed.
        self._outside: tuple | None = None
        self._ticked: list[Path] = []
        self._overlay_stamps: dict[Path, tuple] = {}
        self.summaries: list = []
        #: Moves a folder to the trash (``OSError`` when there is none); tests may swap it.
        self.trash = move_to_trash

        self.watcher = QFileSystemWatcher(self)
        self.watcher.directoryChanged.connect(self._folder_changed)
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self.refresh)
        self.poll = QTimer(self)
        self.poll.setInterval(RUNNING_POLL_MS)
        self.poll.timeout.connect(self.refresh)
        # The diffs follow the project as it is edited: recomputed once typing settles.
        self._diff_timer = QTimer(self)
        self._diff_timer.setSingleShot(True)
        self._diff_timer.setInterval(400)
        self._diff_timer.timeout.connect(self._show)

        panel = self.panel
        panel.ticked_changed.connect(self._ticks_changed)
        panel.make_current_requested.connect(self.make_current)
        panel.open_project_requested.connect(self.open_run_project)
        panel.compare_requested.connect(self.compare)
        panel.show_folder_requested.connect(self.show_folder)
        panel.delete_requested.connect(self.delete)
        panel.labels_edited.connect(self.set_labels)
        panel.refresh_requested.connect(self.refresh)
        window.document.path_changed.connect(self.refresh)
        window.document.changed.connect(self._diff_timer.start)
        window.training.run_started.connect(self.refresh)
        window.training.run_ended.connect(self.refresh)
        window.evaluation.outcome_shown.connect(self.refresh)  # the window's current run changed
        # Run folders are read with the engine's modules, which import torch: listed once it is loaded.
        window.engine.ready.connect(self.refresh)
        window.engine.failed.connect(lambda message: self.panel.set_placeholder(
            f"Runs are listed with PyTorch, which could not be loaded: {message}"))
        if window.engine.is_ready:
            self.refresh()
        else:
            self.panel.set_placeholder("Loading PyTorch: the runs are listed once it is ready…")

    # -- listing -----------------------------------------------------------------------------

    def runs_folder(self) -> Path:
        from ...engine.runs import runs_root

        return runs_root(self.window.document.path, self.window.state_dir)

    @Slot()
    def refresh(self) -> None:
        """List the runs folder again, reading only the runs whose files changed."""
        if not self.window.engine.is_ready:
            return  # listed once it is (see __init__)
        from ...engine.run_index import summarize
        from ...engine.runs import RunError, is_run_dir

        root = self.runs_folder()
        if root != self.root:
            self.root = root
            self._cache.clear()
            self._diffs.clear()
            self._projects.clear()
            if self._ticked:  # another project's runs: their curves go
                self._ticked = []
                self._ticks_changed([])
        try:
            children = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and is_run_dir(p)]
        except OSError:
            children = []
        summaries, unreadable = [], []
        for path in children:
            stamp = _stamp(path)
            cached = self._cache.get(path)
            if cached is not None and cached[0] == stamp and cached[1].status != "running":
                summaries.append(cached[1])
                continue
            try:
                summary = summarize(path)
            except (RunError, OSError, ValueError):
                # A run just starting has an empty run.json for a moment: watched until it is written.
                self._cache.pop(path, None)
                unreadable.append(path)
                continue
            # The stamp taken before reading: a file rewritten meanwhile is read again next time.
            self._cache[path] = (stamp, summary)
            summaries.append(summary)
        for gone in set(self._cache) - set(children):
            del self._cache[gone]
        for gone in set(self._projects) - set(self._cache):
            del self._projects[gone]
        for gone in set(self._diffs) - set(self._cache):  # a deleted run's diffs go with it
            del self._diffs[gone]
        summaries.sort(key=lambda s: (s.started.timestamp() if s.started else 0.0, s.path.name))
        self.summaries = summaries
        self._watch(root, [s.path for s in summaries if s.status == "running"] + unreadable)
        if not any(s.status == "running" for s in summaries):
            self.poll.stop()
        elif not self.poll.isActive():
            self.poll.start()
        self._show()
        self._refresh_overlays()

    def _watch(self, root: Path, folders: list[Path]) -> None:
        """Watch the runs folder (a run added or removed) and ``folders`` (runs
        whose files change: running ones, and ones not yet readable)."""
        wanted = [str(p) for p in ([root] if root.is_dir() else []) + folders]
        if not root.is_dir() and root.parent.is_dir():
            wanted.append(str(root.parent))  # the runs folder appears with the first run
        watched = self.watcher.directories()
        stale = [d for d in watched if d not in wanted]
        if stale:
            self.watcher.removePaths(stale)
        new = [d for d in wanted if d not in watched]
        if new:
            self.watcher.addPaths(new)

    @Slot(str)
    def _folder_changed(self, _path: str) -> None:
        self._settle.start()

    def _changes(self, summary, current: dict) -> list[str]:
        """The run's settings that differ from the open project's, one line each
        (kept while neither the run's project copy nor the project changed)."""
        return self._compared(summary, current)[0]

    def _compared(self, summary, current: dict) -> tuple[list[str], bool]:
        """``_changes``, and whether the run trained the open project's model on
        its data (``run_fits``, from the cached project copy: no file read per edit)."""
        from ...engine.run_index import run_project, same_model_and_data, settings_diff
        from ...spec.paths import format_change

        path = summary.path
        cached_summary = self._cache.get(path)
        stamp = cached_summary[0][3] if cached_summary is not None else _stamp(path)[3]
        cached = self._diffs.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
        read = self._projects.get(path)
        if read is None or read[0] != stamp:
            read = self._projects[path] = (stamp, run_project(path))
        project = read[1]
        changes = [] if project is None else [format_change(c) for c in settings_diff(project, current)]
        # As engine.run_index.run_fits judges it (Make Current asks that), on the cached dicts.
        fits = project is not None and same_model_and_data(project, current)
        self._diffs[path] = (stamp, changes, fits)
        return changes, fits

    @Slot()
    def _show(self) -> None:
        if self.root is None:
            return  # nothing listed yet (PyTorch is loading)
        from ...spec.paths import diff

        current = self.window.document.project.to_dict()
        if current != self._diffs_against:
            # Another project, or an edit of a setting: every diff is new. A layout
            # edit (a node dragged) changes none: one diff says so, not one per run.
            if self._diffs_against is None or diff(self._diffs_against, current):
                self._diffs.clear()
            self._diffs_against = current
        rows = [RunRow(s, *self._compared(s, current)) for s in self.summaries]
        run = self.window.session.run_dir
        self.panel.set_runs(rows, Path(run) if run is not None else None, self.root)
        self._show_results_run(current)

    def _shown_summary(self, path: Path):
        """The summary of the run Results shows: the listed one, else (a run outside
        the runs folder) read once per change of its files; None when unreadable."""
        listed = next((s for s in self.summaries if s.path == path), None)
        if listed is not None:
            return listed
        from ...engine.run_index import summarize
        from ...engine.runs import RunError

        stamp = _stamp(path)
        if self._outside is not None and self._outside[0] == path and self._outside[1] == stamp:
            return self._outside[2]
        try:
            summary = summarize(path)
        except (RunError, OSError, ValueError):
            summary = None
        self._outside = (path, stamp, summary)
        return summary

    def _show_results_run(self, current: dict) -> None:
        """Results' line naming the run it shows, as this tab names it, and whether
        the open project still has its settings. Follows edits of the project from
        the cached project copies (see ``_changes``): no file is read per edit."""
        import html

        from ..panels import WARNING_COLOR
        from ..runs_panel import changes_text, started_text

        results = self.window.results
        path = results.shown_run
        if path is None:
            results.show_run_line(None)
            return
        path = Path(path)
        summary = self._shown_summary(path)
        if summary is None:
            results.show_run_line(f"Run <b>{html.escape(path.name)}</b> · its folder is gone or cannot be read",
                                  str(path))
            return
        parts = [f"Run <b>{html.escape(summary.name)}</b>", html.escape(summary.status)]
        if summary.started is not None:
            parts.append(f"started {started_text(summary.started)}")
        changes = self._changes(summary, current)
        tooltip = [str(path)]
        if self._projects.get(path, (None, None))[1] is None:
            parts.append(f"<span style='color: {WARNING_COLOR}'>its settings are unknown (its "
                         "project.guidl.json is missing or damaged)</span>")
        elif changes:
            parts.append(f"<span style='color: {WARNING_COLOR}'>settings differ from the project: "
                         f"{html.escape(changes_text(changes))}</span>")
            tooltip += ["The run's settings that differ (the project's -> the run's):", *changes]
        else:
            parts.append("the project's settings")
        results.show_run_line(" · ".join(parts), "\n".join(tooltip))

    # -- labels --------------------------------------------------------------------------------

    @Slot(Path, dict)
    def set_labels(self, path: Path, changes: dict) -> None:
        """Rename, tag or note a run: written to its labels.json."""
        from ...engine.runs import RunError, read_labels, write_labels

        labels = read_labels(path)
        for key, value in changes.items():
            setattr(labels, key, value)
        try:
            write_labels(path, labels)
        except (ValueError, RunError, OSError) as error:  # RunError is a ValueError
            reason = getattr(error, "strerror", None) or error
            self._say(f"The run {path.name} keeps its labels: {reason}")
        self.refresh()

    # -- ticks and the charts' overlay --------------------------------------------------------

    def ticked(self) -> list[Path]:
        return list(self._ticked)

    def tick(self, paths: list[Path]) -> None:
        """Tick exactly ``paths`` (runs of the folder listed), for the charts' overlay."""
        known = {s.path for s in self.summaries}
        self._ticks_changed([Path(p) for p in paths if Path(p) in known])

    @Slot(list)
    def _ticks_changed(self, paths: list) -> None:
        self._ticked = [Path(p) for p in paths]
        self._overlay_stamps.clear()
        self._refresh_overlays(force=True)
        self.ticked_changed.emit(list(self._ticked))

    @staticmethod
    def _colour(index: int) -> QColor:
        from ..charts import overlay_colour

        return QColor(overlay_colour(index))

    def _refresh_overlays(self, force: bool = False) -> None:
        """Give the charts the ticked runs' curves, read again only when a run's files changed."""
        known = {s.path: s for s in self.summaries}
        ticked = [p for p in self._ticked if p in known]
        stamps = {p: _stamp(p) for p in ticked}
        dropped = ticked != self._ticked  # a ticked run was deleted
        if dropped:
            self._ticked = ticked
            force = True
        if not force and stamps == self._overlay_stamps:
            return
        self._overlay_stamps = stamps
        colours = {p: self._colour(i) for i, p in enumerate(ticked)}
        self.panel.set_ticked(ticked, colours)
        from ...engine.run_index import read_metrics
        from ..charts import OverlayRun

        self.window.charts.set_overlays([OverlayRun(known[p].name, colours[p], read_metrics(p)) for p in ticked])
        if dropped:
            self.ticked_changed.emit(list(ticked))

    # -- making a run the window's --------------------------------------------------------------

    def _say(self, text: str, ms: int = 10_000) -> None:
        self.window.statusBar().showMessage(text, ms)

    def _summary(self, path: Path):
        from ...engine.run_index import summarize
        from ...engine.runs import RunError

        try:
            return summarize(path)
        except (RunError, OSError, ValueError) as error:
            self._say(f"Cannot read the run {Path(path).name}: {error}")
            return None

    def _holds_weights(self, summary) -> bool:
        from ...engine.runs import holds_trained_model

        return holds_trained_model(summary.path, summary.record) and (summary.path / "model.safetensors").is_file()

    @Slot(Path)
    def make_current(self, path: Path) -> bool:
        """The run's final weights become the window's model, as reopening a
        project does (measured on the project's data in the background):
        Results, Evaluate, Export and Try then use them. False, said in the
        status bar, for a run without weights or of another model."""
        window = self.window
        path = Path(path)
        summary = self._summary(path)
        if summary is None:
            return False
        name = summary.name
        if window.training.running:
            self._say(f"Training is running: the run {name} can be made current once it ends")
            return False
        if not self._holds_weights(summary):
            why = {"running": "it is still training", "failed": "it failed",
                   "pruned": "it was pruned", "interrupted": "it was interrupted"}.get(
                summary.status, "it ended without its final weights")
            self._say(f"The run {name} has no trained model to use: {why}")
            return False
        from .evaluation import run_fits

        if not run_fits(path, window.document.project):
            self._say(f"The run {name} trained another model or on other data: use “Open This Run's "
                      "Project” to work with it")
            return False
        if not window.engine.is_ready:
            self._say("PyTorch is still loading: try again in a moment")
            return False
        window.evaluation.open_run(path)
        self._say(f"Opening the trained model of the run {name}…", 5000)
        return True

    @Slot(Path)
    def open_run_project(self, path: Path) -> bool:
        """The run's exact settings become the project's (one undo step; the
        project keeps its file), and the run becomes current when it holds weights."""
        from ... import spec

        window = self.window
        path = Path(path)
        if window.training.running:
            self._say("Training is running: its project cannot change until it ends")
            return False
        summary = self._summary(path)
        if summary is None:
            return False
        try:
            project = spec.load(path / "project.guidl.json")
        except (spec.ProjectError, OSError, ValueError) as error:
            lines = error.lines() if isinstance(error, spec.ProjectError) else [str(error)]
            self._say(f"The run {summary.name}'s project cannot be opened: {lines[0]}")
            return False

        def replace(edited) -> None:
            import dataclasses

            for field in dataclasses.fields(edited):
                setattr(edited, field.name, getattr(project, field.name))

        window.document.commit_edits()
        before = window.document.project.copy()
        window.document.apply(replace, f"Settings of the run {summary.name}")
        if window.document.project == before:
            self._say(f"The project already has the settings of the run {summary.name}")
        else:
            self._say(f"The project now has the settings of the run {summary.name} (Undo brings "
                      "the previous ones back)")
        if self._holds_weights(summary) and window.engine.is_ready:
            if Path(window.session.run_dir or "") != path:
                window.evaluation.open_run(path)
        self._show()
        return True

    # -- comparing, showing, deleting ----------------------------------------------------------

    @Slot(list)
    def compare(self, paths: list) -> None:
        try:
            from ..run_compare import RunCompareDialog
        except ImportError:
            self._say("Comparing runs is not available in this version")
            return
        dialog = RunCompareDialog([Path(p) for p in paths], self.window.document.project.to_dict(), self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self.compare_dialog = dialog

    @Slot(Path)
    def show_folder(self, path: Path) -> None:
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
            self._say(f"No file manager could open {path}")

    @Slot(list)
    def delete(self, paths: list) -> None:
        """Move the runs to the trash; where there is none, delete them for
        good once the user agrees. A run that is training is refused."""
        from ...engine.runs import RunBusyError, RunError, delete_run

        window = self.window
        paths = [Path(p) for p in paths]
        summaries = {s.path: s for s in self.summaries}
        training = Path(window.session.run_dir) if window.training.running and window.session.run_dir else None
        busy = [p for p in paths if p == training or getattr(summaries.get(p), "status", None) == "running"]
        paths = [p for p in paths if p not in busy]
        said: list[str] = []
        if busy:
            said.append(f"{_names(busy, summaries)} {'is' if len(busy) == 1 else 'are'} training: not deleted")
        no_trash: list[Path] = []
        trashed = 0
        for path in paths:
            try:
                delete_run(path, remove=self.trash)
                trashed += 1
            except RunBusyError:
                said.append(f"{_names([path], summaries)} is training: not deleted")
            except RunError as error:
                said.append(str(error))
            except OSError:
                no_trash.append(path)
        if trashed:
            said.insert(0, f"Moved {trashed} run{'s' if trashed != 1 else ''} to the trash")
        if no_trash:
            answer = QMessageBox.question(
                window, "Delete runs",
                f"There is no trash to move {_names(no_trash, summaries)} to. Delete "
                f"{'it' if len(no_trash) == 1 else f'these {len(no_trash)} runs'} for good (weights, "
                "checkpoints and curves)?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer == QMessageBox.StandardButton.Yes:
                deleted = 0
                for path in no_trash:
                    try:
                        delete_run(path)
                        deleted += 1
                    except RunBusyError:
                        said.append(f"{_names([path], summaries)} is training: not deleted")
                    except (RunError, OSError) as error:
                        said.append(f"{path.name}: {getattr(error, 'strerror', None) or error}")
                if deleted:
                    said.insert(0, f"Deleted {deleted} run{'s' if deleted != 1 else ''}")
        if said:
            self._say(" · ".join(said), 15_000)
        self.refresh()


def _names(paths: list[Path], summaries: dict) -> str:
    names = [getattr(summaries.get(p), "name", p.name) for p in paths]
    if len(names) <= 3:
        return ", ".join(f"“{n}”" for n in names)
    return f"{len(names)} runs"
