"""Training from the window: start, pause, resume and stop a run, follow its
progress in the charts and the status bar, and stop it when the window closes."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QMainWindow, QMessageBox

from ...formatting import format_duration
from ..panels import ERROR_STYLE, WARNING_STYLE

STATUS_HZ = 4  # status-bar updates a second while training
#: Tasks whose model makes something to look at after every epoch.
SAMPLE_TASKS = ("gan", "reconstruction", "text_generation")


class TrainingController(QObject):
    #: A run started (its folder is made); a run's thread ended (finished, stopped or failed).
    run_started = Signal()
    run_ended = Signal()

    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self.window = window
        self.worker = None  # a TrainingWorker while training runs
        self.thread = None
        self.paused = False
        self.close_timeout_s = 120  # how long closing waits for tasks (and a training) to end
        self._status_at = 0.0  # when the status bar last showed training progress
        self._line = ""  # the run's status line, without its ETA
        self._eta: str | None = None
        self._data_key: str | None = None  # the data settings the run trains on
        #: The project as it was when a run failed: the failure is shown until it changes.
        self._failed_with = None
        self._task = None  # the task of the run started last
        self._views_for: tuple | None = None  # the task (and its parameters) the views were set up for
        window.document.changed.connect(self._follow_document)
        self.sync_task_views()

    @property
    def running(self) -> bool:
        return self.thread is not None

    def blocker(self) -> str | None:
        """Why Train is disabled, or None when the project can be trained."""
        window = self.window
        document = window.document
        if self.running:
            return "training is running"
        if getattr(window, "sweeps", None) is not None and window.sweeps.running:
            return "a sweep is running (it trains on the same cores)"
        if not window.engine.is_ready:
            return window.engine.error or "PyTorch is still loading"
        # A field holding a value that is not valid: the model keeps its last valid one.
        fields = document.field_problems()
        if fields:
            field, reason = next(iter(fields.items()))
            return f"{field}: {reason}"
        problems = document.project_problems()
        if problems:
            return f"the project has a problem: {problems[0]}"
        # An unknown input shape is no blocker: training loads the data, which supplies it.
        model_problems = [p for p in document.model_problems() if not p.path.endswith("input_shape")]
        if model_problems:
            return f"fix the model first: {model_problems[0]}"
        if not document.project.model.layers:
            return "the model has no layers: add some from the palette"
        return None

    def _new_run_dir(self) -> Path:
        """A new, empty run folder beside the project (never inside a run's folder)."""
        from ...engine.runs import create_run_dir, runs_root

        document = self.window.document
        stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in document.project.name) or "run"
        return create_run_dir(runs_root(document.path, self.window.state_dir), stem)

    # -- the status line: said from this controller's own state, never read back ------------

    def _say(self, line: str, eta: float | None = None) -> None:
        self._failed_with = None  # said something else since
        self._line = line
        self._eta = None if eta is None else format_duration(eta)
        self._show_line()

    def _show_line(self) -> None:
        if self.paused:  # no ETA while paused: the run is not getting any nearer its end
            text = f"{self._line} · paused"
        else:
            text = self._line + (f" · ETA {self._eta}" if self._eta else "")
        self.window.status_text.setText(text)

    def _set_paused(self, paused: bool) -> None:
        if paused == self.paused:
            return  # said once, whether the button or the run's report comes first
        self.paused = paused
        self._show_line()
        self.window.update_actions()

    # -- the run -------------------------------------------------------------------------

    @Slot()
    def start(self) -> None:
        window = self.window
        window.document.commit_edits()  # a value typed but not yet applied (focus still in its field)
        blocker = self.blocker()
        if blocker is not None:
            window.statusBar().showMessage(f"Cannot train: {blocker}", 8000)
            return
        if window.pretrained.fetch_first(self.start):  # a backbone's weights are downloaded first
            return
        project = window.document.project.copy()
        try:
            window.session.run_dir = self._new_run_dir()
        except OSError as error:
            self.show_failure(f"Cannot make the run folder: {error.strerror or error} ({error.filename})")
            return
        # A reopened project's last run still being measured: the new run wins,
        # whatever ends first (the user does not wait for the measurement).
        window.evaluation.supersede()
        self._data_key = window.document.data_key()
        weights = window.session.weights_for(project)  # an opened bundle's or run's: go on from them
        from ..worker import TrainingWorker

        data = window.session.cached_data(self._data_key)
        self.worker = TrainingWorker(project, data, window.session.run_dir, initial_weights=weights)
        self.worker.fit_started.connect(self._fit_started)
        self.worker.batches_ended.connect(self._batches_ended)
        self.worker.epoch_ended.connect(window.charts.add_epoch)
        self.worker.epoch_ended.connect(window.samples_view.add_epoch_metrics)
        self.worker.samples_ready.connect(window.samples_view.add_samples)
        self.worker.samples_ready.connect(window.write_panel.show_epoch_samples)
        self.worker.paused.connect(self._paused)
        self.worker.resumed.connect(self._resumed)
        self.worker.finished.connect(self._finished)
        self.worker.failed.connect(self.show_failure)
        window.charts.clear()
        window.samples_view.clear()
        self._task = project.task_type
        window.train_message.hide()
        window.show_tab("train")
        window.progress.setRange(0, 0)
        window.progress.show()
        self.paused = False
        self._say("Preparing data and model…")
        self.thread = window.jobs.start(self.worker, self._thread_finished)
        window.update_actions()
        self.run_started.emit()

    # Every slot a worker signal reaches is a declared @Slot: cross-thread
    # signals into plain methods or lambdas are unsafe in PySide6 6.8+.
    @Slot(object)
    def _fit_started(self, info: dict) -> None:
        window = self.window
        window.charts.set_task(self._task or info["task"], window.document.project.task_params())
        window.charts.plan(info["epochs"])
        for metrics in info["history"]:
            window.charts.add_epoch(metrics)
            window.samples_view.add_epoch_metrics(metrics)
        window.progress.setRange(0, info["epochs"] * info["batches"])
        window.progress.setValue(info["start_epoch"] * info["batches"])
        self._say(f"Training on {info['device']}…")
        if info["notes"]:
            window.show_train_message("\n".join(info["notes"]), WARNING_STYLE)

    @Slot(object, object, object)
    def _batches_ended(self, xs, losses, progress: dict) -> None:
        self.window.charts.add_batches(xs, losses)
        # The status line is read, not watched: a few updates a second. (A
        # progress bar repaints at once when its value changes, holding the
        # interpreter the training thread needs.)
        now = time.monotonic()
        if now - self._status_at < 1 / STATUS_HZ and progress["batch"] < progress["batches"]:
            return
        self._status_at = now
        # A GAN's batch losses are its generator's (the discriminator's come once an epoch).
        loss_name = "generator loss" if self._task == "gan" else "loss"
        self.window.progress.setValue(progress["epoch"] * progress["batches"] + progress["batch"])
        self._say(f"Epoch {progress['epoch'] + 1}/{progress['epochs']} · batch {progress['batch']}/"
                  f"{progress['batches']} · {loss_name} {float(losses[-1]):.4f} · "
                  f"{progress['samples_per_s']:,.0f} samples/s", progress["eta"])

    @Slot()
    def _paused(self) -> None:
        self._set_paused(True)

    @Slot()
    def _resumed(self) -> None:
        self._set_paused(False)

    @Slot()
    def pause_or_resume(self) -> None:
        if self.worker is None:
            return
        control = self.worker.control
        if control.paused:
            control.resume()
            self._set_paused(False)
        else:
            control.pause()
            self._set_paused(True)

    @Slot()
    def stop(self) -> None:
        if self.worker is not None:
            self.worker.control.request_stop()
            self.paused = False
            self._say("Stopping after the current batch…")

    @Slot(object)
    def _finished(self, outcome: dict) -> None:
        self.window.evaluation.show_outcome(outcome, self._data_key)

    @Slot(str)
    def show_failure(self, message: str) -> None:
        self.window.show_train_message(message, ERROR_STYLE)
        self.window.status_text.setText("Training failed: see the message above the charts")
        self.window.show_tab("train")
        self._failed_with = self.window.document.project.copy()

    @Slot()
    def _follow_document(self) -> None:
        """A failure is said of the project it happened with: once the project
        is edited (the layer fixed, say) or replaced, it is no longer shown."""
        if self._failed_with is not None and self.window.document.project != self._failed_with:
            self._failed_with = None
            self.window.train_message.hide()
            self.window.status_text.setText("")
        self.sync_task_views()

    def sync_task_views(self) -> None:
        """The views the project's task has: its samples beside the charts (a
        GAN, an autoencoder, a text generation model) and the Write tab (text
        generation, with the task's prompt, length and temperature)."""
        window = self.window
        project = window.document.project
        task = project.task_type
        wanted = (task, project.task_params())
        if wanted == self._views_for:
            return
        before, self._views_for = self._views_for, wanted
        if self.running:  # the run's views stay as they are; they follow the project once it ends
            self._views_for = before
            return
        if before is not None and before[0] != task:
            # Another task: the last run's curves, samples and text are not of this one.
            window.charts.clear()
            window.samples_view.clear()
            window.write_panel.clear()
            window.train_message.hide()  # said of the last run (a failure, a note)
        window.charts.set_task(task or self._dataset_task(), wanted[1])
        window.samples_view.setVisible(task in SAMPLE_TASKS)
        window.samples_view.sample_count = wanted[1].get("samples") if task == "gan" else None
        window.tabs.setTabVisible(window.tabs.indexOf(window.write_panel), task == "text_generation")
        if task == "text_generation":
            window.write_panel.set_defaults(wanted[1])

    def _dataset_task(self) -> str:
        """A project without a task learns its dataset's labels: classes, or values."""
        info = self.window.document.loaded_info()
        return getattr(info, "task", None) or "classification"

    @Slot()
    def _thread_finished(self) -> None:
        self.thread = None
        self.worker = None
        self.window.progress.hide()
        self.paused = False
        self.sync_task_views()  # the task changed while the run trained (undone, say)
        self.window.update_actions()
        self.run_ended.emit()

    # -- closing -------------------------------------------------------------------------

    def confirm_close(self) -> bool:
        """Asked first when the window closes: False keeps the run (and the window)."""
        if not self.running:
            return True
        answer = QMessageBox.question(
            self.window, "Training is running",
            "Stop training and close? The last checkpoint is kept in the run folder.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def stop_for_close(self) -> bool:
        """Stop the run and wait for every task; True when all have ended."""
        if self.worker is not None:
            self.worker.control.request_stop()
        return self.window.jobs.wait_all(timeout_s=self.close_timeout_s) or self._end_training_process()

    def _end_training_process(self) -> bool:
        """A training process that has not stopped within two minutes of being
        asked (stuck in a kernel, say) is ended, so that the window can close;
        True when every task has then finished."""
        process = self.worker.process if self.worker is not None else None
        if process is None or process.process is None or not process.process.is_alive():
            return False
        process.process.kill()  # its last checkpoint is on disk already
        return self.window.jobs.wait_all(timeout_s=15)

    def shutdown(self, timeout_s: float = 60) -> None:
        """Stop the worker and wait for every thread to end (checkpoint kept)."""
        if self.worker is not None:
            self.worker.control.request_stop()
        self.window.jobs.wait_all(timeout_s)
