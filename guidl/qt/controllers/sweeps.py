"""Sweeps from the window: the Sweep dialog, the optimizer and activation
races, and watching a study other processes run.

A sweep is a ``guidl sweep`` child process (a QProcess), run on a copy of the
project as the window has it (unsaved edits included), with its study in a
journal file in the runs folder. The window never trains a trial itself: it
reads the study back every second, off the GUI thread (a large journal or a
remote database takes time to read), and shows it in the dialog. Stop asks
the process to stop as Ctrl+C does; one that does not end is killed with its
workers.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QProcess, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QMainWindow,
    QMessageBox, QPushButton, QVBoxLayout, QWidget,
)

from ...formatting import shorten
from ..jobs import Task
from ..panels import ERROR_STYLE, WARNING_STYLE
from ..sweep_dialog import OK_STYLE, StudyView, SweepDialog, best_settings, trials_done

POLL_MS = 1000  # how often the dialog reads the study back
STOP_TIMEOUT_S = 30  # how long Stop waits for the trials to end before killing the process
_ASK = object()  # an argument not given
COMPARE_TITLES = {"optimizers": "Compare Optimizers", "activations": "Compare Activations"}


# -- reading a study (in a worker thread) ---------------------------------------------------------


def journal_file(url: str | None) -> Path | None:
    """The file of a journal storage URL (a path, or journal:PATH); None for a database."""
    if not url:
        return None
    text = url.strip()
    if text.startswith("journal:"):
        return Path(text[len("journal:"):])
    if "://" not in text and Path(text).suffix.lower() in (".journal", ".log"):
        return Path(text)
    return None


def _no_journal(url: str | None) -> str | None:
    """Why a journal storage cannot be watched: its file is missing (opening it
    would make an empty one)."""
    path = journal_file(url)
    if path is not None and not path.is_file():
        return f"{path}: no such journal file"
    return None



def interrupt_signal() -> int:
    """What Stop sends the sweep process: Ctrl+C's SIGINT, or on Windows
    CTRL_BREAK_EVENT to its process group (guidl sweep treats SIGBREAK as
    SIGINT): both end the trials after their current batch."""
    return signal.CTRL_BREAK_EVENT if os.name == "nt" else signal.SIGINT


def _new_process_group(arguments) -> None:
    """QProcess's CreateProcess arguments with CREATE_NEW_PROCESS_GROUP (Windows only)."""
    arguments.flags |= getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)

class StudyReader:
    """Reads one study again and again. The storage is opened once and kept:
    a journal storage then reads only what was appended since. One read at a
    time (the poller never starts a second while one runs)."""

    def __init__(self, storage_url: str | None, runs_root: Path, study: str, watching: bool = False):
        self.watching = watching  # another's study: one not made by guidl sweep is an error, not a wait
        self.storage_url = storage_url
        self.runs_root = Path(runs_root)
        self.study = study
        self._storage = None
        self._shown_url = storage_url or ""
        self._importances: tuple[int, dict] = (-1, {})  # computed again only when a trial finished

    def read(self) -> StudyView | None:
        """The study as it is now; None while it does not exist yet."""
        import optuna

        from ...engine import sweep

        if self._storage is None:
            missing = _no_journal(self.storage_url)
            if missing is not None:
                if self.watching:
                    raise sweep.SweepError(missing)
                return None  # the sweep's process has not written it yet
            self._storage, self._shown_url = sweep.open_storage(self.storage_url, self.runs_root, self.study)
        try:
            study = optuna.load_study(study_name=self.study, storage=self._storage)
        except KeyError:  # the process has not made it yet
            return None
        attrs = study.user_attrs
        if not attrs.get(sweep.READY_ATTR):  # made, but its maker is still storing its settings
            if self.watching and sweep.CONFIG_ATTR not in attrs:
                sweep.study_config(study)  # says it was not made by guidl sweep
            return None
        config, project = sweep.study_config(study)
        rows = sweep.trial_rows(study)
        finished = sum(1 for r in rows if r.get("state") == "complete")
        if finished != self._importances[0]:
            try:
                self._importances = (finished, sweep.importances(study))
            except Exception:  # noqa: BLE001 - an importance that cannot be computed is left out
                self._importances = (finished, {})
        return StudyView(
            name=self.study, storage=self._shown_url, rows=rows, best=sweep.best_row(study),
            importances=self._importances[1], params=[p.path for p in config.params], metric=config.metric,
            direction=config.resolved_direction, trials=config.budget(),
            variants=list(config.variants or {}), config=config, project=project, tally=sweep.tally(study, config),
            log_params=[p.path for p in config.params if p.kind == "log_range"])


def study_names(storage_url: str, runs_root: Path) -> list[str]:
    """The studies a storage holds (run in a worker thread: a database may be far)."""
    import optuna

    from ...engine import sweep

    missing = _no_journal(storage_url)
    if missing is not None:
        raise sweep.SweepError(missing)
    storage, _ = sweep.open_storage(storage_url, runs_root, "_")
    return sorted(optuna.study.get_all_study_names(storage))


class StudyPoller(QObject):
    """Reads a study every ``POLL_MS`` in the window's jobs and reports each
    read with ``read`` (or ``failed``), on the GUI thread."""

    # Each signal names its poller: a read of a study no longer followed is told apart.
    study_read = Signal(QObject, object)  # a StudyView, or None while the study does not exist
    failed = Signal(QObject, str)
    #: The read asked for by ``finish``: begun after the sweep's process ended.
    last_read = Signal(QObject, object)

    def __init__(self, window: QMainWindow, reader: StudyReader):
        super().__init__(window)
        self.window = window
        self.reader = reader
        self.busy = False
        self._finishing = False  # a last read is wanted once the one in flight is over
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)

    def start(self) -> None:
        self.poll()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def finish(self) -> None:
        """Stop polling after one more read, begun now or, when a read is in
        flight (it may have begun before the process's last write), after it."""
        self.timer.stop()
        self._finishing = True
        if not self.busy:
            self._read()

    @Slot()
    def poll(self) -> None:
        if self.busy:  # the last read is still going (a big journal): skip this beat
            return
        self._read()

    def _read(self) -> None:
        # One read at a time: the reader and its storage are used by one thread at once.
        self.busy = True
        final = self._finishing
        task = Task(self.reader.read)
        task.done.connect(self._last_done if final else self._done)
        task.error.connect(self._failed)
        self.window.jobs.start(task)

    @Slot(object)
    def _done(self, view) -> None:
        self.busy = False
        if self._finishing:  # this read may be older than the process's end: read again
            self._read()
            return
        self.study_read.emit(self, view)

    @Slot(object)
    def _last_done(self, view) -> None:
        self.busy = False
        self._finishing = False
        self.last_read.emit(self, view)

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.busy = False
        if self._finishing:
            self._finishing = False
            self.last_read.emit(self, None)
        self.failed.emit(self, message)


# -- the open-study dialog --------------------------------------------------------------------------


class OpenStudyDialog(QDialog):
    """A storage (a database URL or a journal file) and one of its studies."""

    def __init__(self, window: QMainWindow, runs_root: Path):
        super().__init__(window)
        self.window = window
        self.runs_root = runs_root
        self._listing: str | None = None  # the storage being read
        self.setWindowTitle("Open Study")
        self.resize(620, 180)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.storage = QLineEdit()
        self.storage.setPlaceholderText("sqlite:///studies.db, postgresql://host/db, or a .journal file")
        journals = sorted((runs_root / "sweeps").glob("*.journal")) if (runs_root / "sweeps").is_dir() else []
        if journals:
            self.storage.setText(str(max(journals, key=lambda p: p.stat().st_mtime)))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.storage, 1)
        row.addWidget(browse)
        holder = QWidget()
        holder.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        form.addRow("Storage", holder)
        self.study = QComboBox()
        self.study.setEditable(True)
        self.study.lineEdit().setPlaceholderText("the study's name")
        find = QPushButton("List Studies")
        find.clicked.connect(self.list_studies)
        study_row = QHBoxLayout()
        study_row.setContentsMargins(0, 0, 0, 0)
        study_row.addWidget(self.study, 1)
        study_row.addWidget(find)
        study_holder = QWidget()
        study_holder.setLayout(study_row)
        form.addRow("Study", study_holder)
        layout.addLayout(form)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.storage.editingFinished.connect(self.list_studies)
        if self.storage.text():
            self.list_studies()

    @Slot()
    def _browse(self) -> None:
        start = str(self.runs_root / "sweeps") if (self.runs_root / "sweeps").is_dir() else str(self.runs_root)
        path, _ = QFileDialog.getOpenFileName(self, "Open Study Storage", start,
                                              "Study storages (*.journal *.log *.db *.sqlite);;All files (*)")
        if path:
            self.storage.setText(path if not path.endswith((".db", ".sqlite")) else f"sqlite:///{path}")
            self.list_studies()

    def storage_url(self) -> str:
        return self.storage.text().strip()

    @Slot()
    def list_studies(self) -> None:
        url = self.storage_url()
        if not url:
            return
        if url == self._listing:
            return  # already being read
        self._listing = url
        self.message.setStyleSheet("")
        self.message.setText("Reading the storage…")
        task = Task(lambda: (url, study_names(url, self.runs_root)))
        task.done.connect(self._listed)
        task.error.connect(self._list_failed)
        self.window.jobs.start(task)

    @Slot(object)
    def _listed(self, result: tuple) -> None:
        url, names = result
        if url != self.storage_url():
            return  # the answer for a storage typed before this one
        self._listing = None
        current = self.study.currentText()
        self.study.clear()
        self.study.addItems(names)
        if current in names:
            self.study.setCurrentText(current)
        self.message.setStyleSheet("" if names else WARNING_STYLE)
        self.message.setText(f"{len(names)} stud{'ies' if len(names) != 1 else 'y'} in this storage."
                             if names else "This storage holds no study yet.")

    @Slot(str)
    def _list_failed(self, message: str) -> None:
        self._listing = None
        self.message.setStyleSheet(ERROR_STYLE)
        self.message.setText(message)

    @Slot()
    def _accept(self) -> None:
        if not self.storage_url() or not self.study.currentText().strip():
            self.message.setStyleSheet(ERROR_STYLE)
            self.message.setText("Give the storage and the study's name.")
            return
        self.accept()


# -- the controller -------------------------------------------------------------------------------


class SweepsController(QObject):
    """``window.sweeps``: one sweep at a time, as a ``guidl sweep`` process."""

    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self.window = window
        self.dialog: SweepDialog | None = None
        self.process: QProcess | None = None
        #: Whether Stop may signal the process: on Windows only when it has its own process group.
        self._own_group = True
        self.poller: StudyPoller | None = None
        self.study: str | None = None
        self.storage_path: Path | None = None
        self.project_file: Path | None = None
        self.compare_kind: str | None = None
        self._runs_dir: Path | None = None  # where the last sweep's trials go
        self.stop_timeout_s = STOP_TIMEOUT_S
        self._stopping = False
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)
        self._stderr = ""
        self._last_view: StudyView | None = None
        window.document.changed.connect(self._follow_document)
        # While the window's sweep runs, the status bar says so (the dialog may be closed): a click reopens it.
        self.indicator = QPushButton()
        self.indicator.setFlat(True)
        self.indicator.setToolTip("A sweep is running: click to show it")
        self.indicator.clicked.connect(lambda: self.open_dialog())
        self.indicator.hide()
        window.statusBar().addPermanentWidget(self.indicator)

    @property
    def running(self) -> bool:
        return self.process is not None

    def _drop_poller(self) -> None:
        """No more reads of the study; a read in flight is ignored when it ends."""
        if self.poller is not None:
            self.poller.stop()
            self.poller.deleteLater()  # after its read's signal (queued before) has been delivered
            self.poller = None

    def runs_root(self) -> Path:
        from ...engine.runs import runs_root

        return runs_root(self.window.document.path, self.window.state_dir)

    # -- the dialog ------------------------------------------------------------------------------

    def _new_dialog(self, watch: bool = False, title: str | None = None) -> SweepDialog:
        if self.dialog is not None and not self.running:
            self._close_dialog()
        dialog = SweepDialog(self.window.document.project.copy(), self.window, watch=watch, title=title)
        dialog.start_requested.connect(self.start)
        dialog.stop_requested.connect(self.stop)
        dialog.continue_requested.connect(self.resume)
        dialog.apply_requested.connect(self.apply_best)
        dialog.finished.connect(self._dialog_closed)
        self.dialog = dialog
        return dialog

    def _close_dialog(self) -> None:
        if self.poller is not None:
            self._drop_poller()
        if self.dialog is not None:
            self.dialog.deleteLater()
            self.dialog = None

    @Slot(int)
    def _dialog_closed(self, _result: int) -> None:
        # A running sweep goes on (the dialog opens again on it); a watched study stops being read.
        if not self.running and self.poller is not None:
            self._drop_poller()

    @Slot()
    def open_dialog(self, path: str | None = None) -> SweepDialog:
        """The Sweep dialog; ``path``: a setting to vary, with a range around its value."""
        self.window.document.commit_edits()
        if self.running and self.dialog is not None:
            self.dialog.show()
            self.dialog.raise_()
            self.dialog.activateWindow()
            return self.dialog
        if self.dialog is not None and not self.dialog.watch and self.dialog.isVisible():
            dialog = self.dialog  # the set-up so far stays; the field asked for is added
        else:
            dialog = self._new_dialog()
        if path and path not in [row[0].strip() for row in dialog.rows()]:
            dialog.add_param(path)
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    @Slot()
    def _follow_document(self) -> None:
        if self.dialog is not None and (self.dialog.watch or not self.running):
            self.dialog.set_project(self.window.document.project.copy())

    # -- running a sweep -------------------------------------------------------------------------

    def blocker(self, train_blocker: object = _ASK) -> str | None:
        """Why a sweep cannot start now, or None. What keeps Train from starting
        keeps a sweep from it; but a training run is no reason, nor PyTorch still
        loading here (the sweep's process loads its own and checks the model).
        ``train_blocker``: Train's reason when the caller has it already."""
        window = self.window
        if self.running:
            return "a sweep is running"
        if window.engine.is_ready and not window.training.running:
            return window.training.blocker() if train_blocker is _ASK else train_blocker
        return None

    @Slot(object)
    def start(self, config) -> bool:
        """Run ``config`` on the project as the window has it now."""
        window = self.window
        if self.running:
            return False
        dialog = self.dialog
        window.document.commit_edits()
        project = window.document.project.copy()
        blocker = self.blocker()
        problems = config.problems(project) if config.compare is None else []
        if blocker is not None or problems:
            self._say(f"Cannot start the sweep: {blocker or problems[0]}", ERROR_STYLE)
            return False
        root = self.runs_root()
        name = f"{config.compare or 'sweep'}-{time.strftime('%Y%m%d-%H%M%S')}"
        # The trials' run folders are named as guidl sweep names them (STEM, the project
        # file's name up to its first dot): the copy keeps the project's own stem before it.
        from ...engine.sweep import run_stem

        stem = run_stem(window.document.path, project)
        folder = root / "sweeps"
        if (folder / f"{name}.journal").exists():  # two sweeps started within a second
            name += f"-{sum(1 for _ in folder.glob(name + '*.journal')) + 1}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            project_file = folder / f"{stem or 'sweep'}.{name}.guidl.json"
            from ... import spec

            spec.save(project, project_file)
        except OSError as error:
            self._say(f"Cannot write the sweep's project file: {error.strerror or error} "
                      f"({error.filename or folder})", ERROR_STYLE)
            return False
        self.study, self.project_file = name, project_file
        self.storage_path = folder / f"{name}.journal"
        self.compare_kind = config.compare
        arguments = ["-m", "guidl", "sweep", str(project_file)]
        if config.compare:
            arguments += ["--compare", config.compare]
        else:
            for param in config.params:
                arguments += ["--param", f"{param.path}={param.spec_text()}"]
            arguments += ["--strategy", config.strategy, "--trials", str(config.trials), "--metric", config.metric]
            if config.direction:
                arguments += ["--direction", config.direction]
            if not config.pruner:
                arguments.append("--no-pruner")
        if config.epochs:
            arguments += ["--epochs", str(config.epochs)]
        jobs = dialog.jobs.value() if dialog is not None and not dialog.watch else 1
        if dialog is not None and not config.compare and dialog.tensorboard.isChecked():
            arguments.append("--tensorboard")
        arguments += ["--jobs", str(jobs), "--runs-dir", str(root), "--storage", str(self.storage_path),
                      "--study", name]
        self._runs_dir = root
        if dialog is not None:
            dialog.clear_study()
        self._launch(arguments, f"Sweep {name} started: trials go to {root}")
        return True

    @Slot()
    def resume(self) -> bool:
        """Run the rest of the last study (after a Stop or a failure): its
        process joins it, as ``guidl sweep --study NAME`` does, so the finished
        trials stay and its queued grid points run."""
        if self.running or self.study is None or self.storage_path is None or self._runs_dir is None:
            return False
        dialog = self.dialog
        jobs = dialog.jobs.value() if dialog is not None and not dialog.watch else 1
        arguments = ["-m", "guidl", "sweep", "--study", self.study, "--storage", str(self.storage_path),
                     "--runs-dir", str(self._runs_dir), "--jobs", str(jobs)]
        if dialog is not None and dialog.tensorboard.isChecked():
            arguments.append("--tensorboard")
        self._launch(arguments, f"Sweep {self.study} continues: trials go to {self._runs_dir}")
        return True

    def _launch(self, arguments: list[str], said: str) -> None:
        """The sweep's process, and the study read back as it runs."""
        self._start_process(arguments)
        self.poller = StudyPoller(self.window, StudyReader(str(self.storage_path), self._runs_dir, self.study))
        self.poller.study_read.connect(self._study_read)
        self.poller.failed.connect(self._poll_failed)
        self.poller.start()
        if self.dialog is not None:
            self.dialog.set_running(True)
        self._say(said, "")
        self.window.update_actions()

    def _start_process(self, arguments: list[str]) -> QProcess:
        """``python ARGUMENTS`` as the sweep's process, followed by this controller."""
        process = QProcess(self)
        process.setProgram(sys.executable)
        process.setArguments(arguments)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._process_finished)
        process.errorOccurred.connect(self._process_error)
        self._own_group = os.name != "nt"
        if os.name == "nt" and hasattr(process, "setCreateProcessArgumentsModifier"):
            # Its own process group, so Stop can send it CTRL_BREAK_EVENT (Windows has no SIGINT
            # to send another process: os.kill(pid, SIGINT) there is TerminateProcess, a hard kill).
            process.setCreateProcessArgumentsModifier(_new_process_group)
            self._own_group = True
        self._stderr = ""
        self._stopping = False
        self._last_view = None
        self.process = process
        process.start()
        self.indicator.setText("Sweep running…")
        self.indicator.show()
        return process

    def _say(self, text: str, style: str) -> None:
        if self.dialog is not None:
            self.dialog.set_status(text, style)
        self.window.statusBar().showMessage(shorten(text, 300), 10_000)

    @Slot()
    def _read_stdout(self) -> None:
        if self.process is None:
            return
        text = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
        lines = [line for line in text.splitlines() if line.strip()]
        if lines and self.dialog is not None and self._last_view is None:
            self.dialog.set_status(shorten(lines[-1], 300), "")

    @Slot()
    def _read_stderr(self) -> None:
        if self.process is None:
            return
        # Kept to say why the process failed (its last lines), never shown raw as it comes.
        self._stderr = (self._stderr + bytes(self.process.readAllStandardError()).decode("utf-8", "replace"))[-20_000:]

    @Slot(QObject, object)
    def _study_read(self, poller: QObject, view: StudyView | None) -> None:
        if poller is not self.poller:
            return  # a read of a study no longer followed
        if view is None:
            if self.dialog is not None and self.running:
                self.dialog.set_status("Starting the sweep…", "")
            return
        self._last_view = view
        if self.dialog is not None:
            self.dialog.show_study(view)
        self.indicator.setText(f"Sweep running: {trials_done(view)}/{view.trials} trials")

    @Slot(QObject, str)
    def _poll_failed(self, poller: QObject, message: str) -> None:
        if poller is not self.poller:
            return
        if self.dialog is not None:
            self.dialog.set_status(f"Cannot read the study: {message}", ERROR_STYLE)
        if not self.running and self.poller is not None:  # watching: a storage that cannot be read
            self.poller.stop()

    @Slot()
    def stop(self) -> None:
        """Stop as Ctrl+C does (the trials end after their current batch);
        kill the process and its workers if it has not ended in time."""
        process = self.process
        if process is None or self._stopping:
            return
        self._stopping = True
        pid = process.processId()
        if not self._own_group:
            # Windows, and no process group of its own: CTRL_BREAK_EVENT would reach every
            # process on this console, the window too. Ended as when it does not stop in time.
            self._kill()
            return
        if pid:
            try:
                os.kill(pid, interrupt_signal())
            except OSError:
                pass
        self._kill_timer.start(int(self.stop_timeout_s * 1000))
        self._say("Stopping the sweep after the current batch…", WARNING_STYLE)
        if self.dialog is not None:
            self.dialog.stop_button.setEnabled(False)

    @Slot()
    def _kill(self) -> None:
        """The process (and the workers it started) did not stop when asked: end them."""
        process = self.process
        if process is None:
            return
        pid = process.processId()
        try:
            import psutil

            children = psutil.Process(pid).children(recursive=True) if pid else []
        except Exception:  # noqa: BLE001 - already gone
            children = []
        for child in children:
            try:
                child.kill()
            except Exception:  # noqa: BLE001 - ended meanwhile
                pass
        process.kill()

    @Slot(int, QProcess.ExitStatus)
    def _process_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        self.indicator.hide()
        process, self.process = self.process, None
        if process is not None:
            self._read_stderr_from(process)
            process.deleteLater()
        stopped = self._stopping
        self._stopping = False
        if self.poller is not None:
            # One last read: the last trial's end is in the study now.
            self.poller.last_read.connect(self._final_read)
            self.poller.finish()
        if self.dialog is not None:
            self.dialog.set_running(False)
        if stopped:
            self._say(f"Sweep {self.study} stopped.", WARNING_STYLE)
        elif status == QProcess.ExitStatus.CrashExit or code != 0:
            self._say(f"The sweep failed: {self._cause(code)}", ERROR_STYLE)
        else:
            self._say(f"Sweep {self.study} finished.", OK_STYLE)
        self.window.update_actions()

    def _read_stderr_from(self, process: QProcess) -> None:
        rest = bytes(process.readAllStandardError()).decode("utf-8", "replace")
        self._stderr = (self._stderr + rest)[-20_000:]

    def _cause(self, code: int) -> str:
        lines = [line.strip() for line in self._stderr.splitlines() if line.strip()]
        # guidl's own messages come as "guidl: error: ..." / "error: ..." lines; else the last line.
        said = [line for line in lines if "error" in line.lower()]
        return shorten((said or lines or [f"the process ended with exit code {code}"])[-1], 500)

    @Slot(QObject, object)
    def _final_read(self, poller: QObject, view: StudyView | None) -> None:
        if poller is self.poller:
            self._drop_poller()
        if view is not None:
            self._last_view = view
            if self.dialog is not None:
                self.dialog.show_study(view)
                status = self.dialog.status.text()
                self.dialog.set_status(f"{status} {self.dialog.progress_text}.", self.dialog.status.styleSheet())
                done = sum(1 for row in view.rows if row.get("state") in ("complete", "pruned"))
                self.dialog.set_can_continue(not self.running and done < view.trials)
        if self.compare_kind and view is not None:
            self._overlay(view)

    @Slot(QProcess.ProcessError)
    def _process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self.process is not None:
            self._say(f"Cannot start guidl sweep: {self.process.errorString()}", ERROR_STYLE)
            process, self.process = self.process, None
            process.deleteLater()
            self.indicator.hide()
            if self.poller is not None:
                self._drop_poller()
            if self.dialog is not None:
                self.dialog.set_running(False)
            self.window.update_actions()

    # -- comparisons -----------------------------------------------------------------------------

    @Slot()
    def compare(self, kind: str) -> bool:
        """Train the model with each optimizer (or activation) of the race from
        the same start, then overlay their curves on the Train tab."""
        from ...spec.comparisons import comparison_config

        window = self.window
        if self.running:
            self.open_dialog()
            window.statusBar().showMessage("A sweep is running: stop it first.", 8000)
            return False
        window.document.commit_edits()
        try:
            config = comparison_config(window.document.project, kind)
        except ValueError as error:
            QMessageBox.information(window, COMPARE_TITLES.get(kind, "Compare"), str(error))
            return False
        dialog = self._new_dialog(title=COMPARE_TITLES.get(kind))
        dialog.setup_box.hide()
        dialog.start_button.hide()
        dialog.show()
        return self.start(config)

    @Slot()
    def compare_optimizers(self) -> bool:
        return self.compare("optimizers")

    @Slot()
    def compare_activations(self) -> bool:
        return self.compare("activations")

    def _overlay(self, view: StudyView) -> None:
        """A race's runs, named by their variant (the legend and the Runs tab say
        "Adam", not a folder's name), ticked so the Train tab overlays them."""
        from ...engine.runs import RunError, read_labels, write_labels

        rows = [r for r in sorted(view.rows, key=lambda r: r["number"])
                if r.get("run_dir") and Path(r["run_dir"]).is_dir()]
        for row in rows:
            try:
                labels = read_labels(row["run_dir"])
                if labels.name is None and row.get("variant"):
                    labels.name = str(row["variant"])
                    labels.tags = [*labels.tags, f"{self.compare_kind} race"]
                    write_labels(row["run_dir"], labels)
            except (OSError, ValueError, RunError):
                pass  # a name is a convenience: the run is ticked all the same
        paths = [Path(r["run_dir"]) for r in rows]
        runs = getattr(self.window, "runs", None)
        if not paths or runs is None:
            return
        runs.refresh()
        runs.tick(paths)
        self.window.show_tab("train")

    # -- watching a study other processes run ---------------------------------------------------

    @Slot()
    def open_study(self) -> SweepDialog | None:
        root = self.runs_root()
        chooser = OpenStudyDialog(self.window, root)
        if chooser.exec() != QDialog.DialogCode.Accepted:
            return None
        return self.watch(chooser.storage_url(), chooser.study.currentText().strip())

    def watch(self, storage_url: str, study: str) -> SweepDialog:
        """Follow ``study`` in ``storage_url`` read-only, as it runs elsewhere."""
        if self.running:
            self.open_dialog()
            self.window.statusBar().showMessage("A sweep is running: stop it first.", 8000)
            return self.dialog
        dialog = self._new_dialog(watch=True, title=f"Study {study}")
        self.poller = StudyPoller(self.window, StudyReader(storage_url, self.runs_root(), study, watching=True))
        self.poller.study_read.connect(self._watched)
        self.poller.failed.connect(self._poll_failed)
        dialog.set_status(f"Reading {study}…", "")
        dialog.show()
        self.poller.start()
        return dialog

    @Slot(QObject, object)
    def _watched(self, poller: QObject, view: StudyView | None) -> None:
        if poller is not self.poller or self.dialog is None or not self.dialog.watch:
            return
        if view is None:
            self.dialog.set_status("No study by that name in this storage (yet): waiting for it…", WARNING_STYLE)
            return
        self._last_view = view
        self.dialog.show_study(view)

    # -- the best trial --------------------------------------------------------------------------

    @Slot(object)
    def apply_best(self, best: dict) -> None:
        """The best trial's settings into the project: one undo step."""
        from ...spec import ProjectError
        from ...spec.paths import diff, format_change

        window = self.window
        document = window.document
        before = document.project
        try:
            after = best_settings(before, self._last_view, best)
        except (ProjectError, ValueError, KeyError) as error:
            self._say_applied(f"Cannot apply trial #{best.get('number')}: {error}", ERROR_STYLE)
            return
        changes = diff(before.to_dict(), after.to_dict())
        if not changes:
            self._say_applied(f"The project already has trial #{best['number']}'s settings.", "")
            return

        def edit(project) -> None:
            for item in dataclasses.fields(after):
                setattr(project, item.name, getattr(after, item.name))

        document.apply(edit, f"Apply sweep trial #{best['number']}")
        text = f"Applied trial #{best['number']}: " + "; ".join(format_change(c) for c in changes)
        self._say_applied(text, OK_STYLE)

    def _say_applied(self, text: str, style: str) -> None:
        """What Apply Best did: in the status bar, and under the button in the
        dialog (the Sweep's or a watched study's) it was pressed in."""
        self.window.statusBar().showMessage(shorten(text, 400), 20_000)
        if self.dialog is not None:
            self.dialog.set_applied(text, style)

    # -- closing ---------------------------------------------------------------------------------

    def confirm_close(self) -> bool:
        """Asked first when the window closes: False keeps the sweep (and the window)."""
        if not self.running:
            return True
        answer = QMessageBox.question(
            self.window, "A sweep is running",
            "Stop the sweep and close? Finished trials stay in the runs folder; the running ones stop.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def stop_for_close(self, timeout_s: float | None = None) -> bool:
        """Stop the sweep and wait for its process, the window still painting
        meanwhile; True once it has ended."""
        self._drop_poller()  # closing: no last read of the study to wait for
        process = self.process
        if process is None:
            return True
        self.stop()
        timeout = self.stop_timeout_s if timeout_s is None else timeout_s
        if not self._wait_for(process, timeout):
            self._kill()
            self._wait_for(process, 5)
        if self.process is not process:  # its finished slot ran during the wait
            return True
        finished = process.state() == QProcess.ProcessState.NotRunning
        if finished:
            self._process_finished(process.exitCode(), process.exitStatus())
        return finished

    def _wait_for(self, process: QProcess, timeout_s: float) -> bool:
        """Wait for ``process`` to end, handling events (waitForFinished alone
        freezes the window for as long as the trials take to stop)."""
        deadline = time.monotonic() + timeout_s
        while self.process is process and process.state() != QProcess.ProcessState.NotRunning:
            if time.monotonic() >= deadline:
                return False
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            if self.process is process:  # not ended (and deleted later) by a slot just run
                process.waitForFinished(20)
        return True
