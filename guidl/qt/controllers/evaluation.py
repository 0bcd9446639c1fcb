"""Results: a finished run's or a measured model's outcome shown in the
Results tab, and Evaluate for weights the window did not train itself (an
opened bundle's, or the latest run of a project that was opened)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QMainWindow

from ..jobs import Task, error_message
from ..panels import WARNING_STYLE



class EvaluationController(QObject):
    #: A run's or an evaluation's outcome became the session's (the Runs tab marks its run).
    outcome_shown = Signal()

    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self.window = window
        self.thread = None  # the evaluation the window waits for, running in the background
        #: Counts evaluations started: an evaluation's outcome carries its number,
        #: and only the latest one's, not superseded, is shown.
        self._serial = 0
        self._show_results = True  # Results comes to the front when the evaluation ends
        self._on_error = None  # how the evaluation the window waits for says its failure
        self.run_wanted: Path | None = None  # a project whose run to reopen once torch is ready

    @property
    def running(self) -> bool:
        return self.thread is not None

    @Slot()
    def evaluate(self) -> None:
        """Show the trained model's results; for an opened bundle, measure its
        weights on the project's data first (in the background)."""
        window, session = self.window, self.window.session
        if session.trainer is not None and session.last_result is not None:
            window.show_tab("results")
            return
        weights = session.weights_for(window.document.project)
        if weights is None:
            window.statusBar().showMessage("The model was changed since the bundle was opened: "
                                           "train it to see results", 8000)
            return
        self.measure(weights, "Evaluating the bundle's model…")

    def measure(self, weights, status: str) -> None:
        """Evaluate ``weights`` on the project's data, in the background."""
        from ..worker import evaluate_weights

        self._start(lambda project, data: evaluate_weights(project, weights, data), status, self._failed)

    def reopen_latest_run(self, path: Path) -> None:
        """The project just opened from ``path`` gets its trained model back:
        its latest finished run (see ``latest_run_of``), whose weights are
        measured on the project's data in the background. Nothing when it has
        no such run."""
        window = self.window
        if window.engine.error:
            return
        if not window.engine.is_ready:  # runs are read with the engine: once it is loaded
            self.run_wanted = path
            return
        self.run_wanted = None
        state_dir = window.state_dir
        self._start(lambda project, data: measure_latest_run(path, project, state_dir, data),
                    None, self._run_failed, show_results=False)

    def open_run(self, run: Path) -> None:
        """The run's final weights become the session's model, as a reopened
        project's latest run does (the Runs tab's Make Current): measured on
        the project's data in the background, then shown in Results."""
        run = Path(run)
        status = self.window.status_text
        self._start(lambda project, data: measure_run(run, project, data),
                    f"Opening the trained model of the run {run.name}…",
                    lambda message: status.setText(f"The run {run.name} could not be opened: {message}"))

    def engine_ready(self) -> None:
        if self.run_wanted is not None and self.window.document.path == self.run_wanted:
            self.reopen_latest_run(self.run_wanted)
        self.run_wanted = None

    def _start(self, measure, status: str | None, on_error, show_results: bool = True) -> None:
        window = self.window
        project = window.document.project.copy()
        key = window.document.data_key()
        self._serial += 1
        serial, generation = self._serial, window.session.generation
        self._show_results = show_results
        self._on_error = on_error
        data = window.session.cached_data(key)
        if status:
            window.status_text.setText(status)

        # The outcome, or the failure, carries what it was started for: another
        # project may have been opened, or a training started, since.
        def evaluation():
            try:
                return serial, generation, key, measure(project, data), None
            except Exception as error:  # noqa: BLE001 - said in place, never a crash
                return serial, generation, key, None, error_message(error)

        task = Task(evaluation)
        task.done.connect(self._ended)
        self.thread = window.jobs.start(task)
        window.update_actions()

    def supersede(self) -> None:
        """Training starts: the evaluation in flight (a reopened project's last
        run, say) no longer belongs to what the window shows. Nobody waits for
        it, and its outcome is dropped when it comes."""
        if self.thread is not None:
            self._serial += 1
            self.thread = None
            self.window.update_actions()

    @Slot(object)
    def _ended(self, ended: tuple) -> None:
        serial, generation, data_key, outcome, error = ended
        if serial != self._serial:
            return  # superseded, or an earlier evaluation's
        self.thread = None
        window = self.window
        if generation == window.session.generation and not window.training.running:
            if error is not None:
                self._on_error(error)
            elif outcome is not None:
                self.show_outcome(outcome, data_key)
                if self._show_results:
                    window.show_tab("results")
        window.update_actions()

    def _run_failed(self, message: str) -> None:
        self.window.status_text.setText(f"The project's latest run could not be opened: {message}")

    def _failed(self, message: str) -> None:
        self.window.training.show_failure(message)

    def show_outcome(self, outcome: dict, data_key: str | None) -> None:
        """A finished run's or an evaluation's outcome: the session keeps the
        model, Results shows it, the status bar says what it was."""
        window = self.window
        result = outcome["result"]
        window.session.adopt(outcome, data_key)
        measured = ("Final weights" if not outcome.get("evaluated_only")  # Results names what it measured
                    else "The run's final weights" if outcome.get("opened_run") else "The opened weights")
        if outcome.get("opened_run") is not None:  # its curves and the samples it saved after each epoch
            from ...engine.run_index import read_metric_rows  # the engine is loaded: a run was opened

            history = read_metric_rows(outcome["opened_run"])
            window.charts.clear()
            window.charts.set_task(window.document.project.task_type or result_task(result),
                                   window.document.project.task_params())
            for metrics in history:
                window.charts.add_epoch(metrics)
            window.samples_view.load_run(outcome["opened_run"], history)
        window.results.show_result(result, outcome["samples"], measured, grid=window.samples_view.newest_image())
        # Results names the run it shows (the Runs tab's controller writes the line, as it
        # keeps the runs' summaries and project copies): a trained, reopened or current run.
        run = outcome.get("opened_run") or outcome.get("run_dir")
        window.results.set_shown_run(Path(run) if run is not None and result.evaluation is not None else None)
        if outcome.get("evaluated_only"):  # saved weights measured, nothing trained
            evaluation = result.evaluation.to_dict() if result.evaluation else {}
            score = evaluation_score(evaluation)
            run = outcome.get("opened_run")
            if run is not None:
                window.session.run_dir = run
                window.status_text.setText(f"Opened the trained model of the run {_run_name(run)}: {score} "
                                           f"on the {result.evaluation_split} split")
            else:
                window.status_text.setText(f"Evaluated the model on the {result.evaluation_split} split: {score}")
        else:
            what = result.stop_reason if result.stopped else "finished"
            window.status_text.setText(f"Training {what} in {result.elapsed:.1f}s{run_figures(result)} · "
                                       f"run folder {outcome.get('run_dir')}")
            if not result.stopped and outcome.get("run_dir") is not None:
                window.files.remember_run(outcome["run_dir"])
        if outcome["notes"]:
            window.show_train_message("\n".join(outcome["notes"]), WARNING_STYLE)
        elif outcome.get("opened_run") is not None:
            # The Train tab now shows this run's curves: a note of the run shown before
            # ("other programs kept the CPU busy ...") is not this one's.
            window.train_message.hide()
        window.update_actions()
        self.outcome_shown.emit()


def result_task(result) -> str:
    """Classification or regression, as a (labels) evaluation says."""
    evaluation = result.evaluation.to_dict() if result.evaluation is not None else {}
    return evaluation.get("task") or "classification"


def evaluation_score(evaluation: dict) -> str:
    """The one figure the status line names for an evaluation's ``to_dict()``."""
    if "accuracy" in evaluation:
        return f"accuracy {evaluation['accuracy']:.2%}"
    if evaluation.get("kind") == "reconstruction":
        return f"PSNR {evaluation['psnr']:.2f} dB"
    if evaluation.get("kind") == "gan":
        if evaluation.get("judge_confidence") is None:
            return f"sample diversity {evaluation['sample_diversity']:.2f}"
        return (f"classifier-based score of {evaluation['samples']:,} samples: confidence "
                f"{evaluation['judge_confidence']:.0%}, coverage {evaluation['judge_coverage']:.0%}")
    return f"MAE {evaluation.get('mae', float('nan')):.4g}"


def run_figures(result) -> str:
    """The status line's figures of a run, each named: the last epoch's
    validation figure and, where they differ (a run stopped mid-epoch, a test
    split), the final weights' one that Results shows."""
    final = result.final
    evaluation = result.evaluation.to_dict() if result.evaluation is not None else {}
    if evaluation.get("kind") == "gan" or (final is not None and final.d_loss is not None):
        return f" · {evaluation_score(evaluation)}" if evaluation else ""
    if final is not None and final.val_psnr is not None:
        name, epoch, measured = "PSNR", f"{final.val_psnr:.2f} dB", evaluation.get("psnr")
        measured = None if measured is None else f"{measured:.2f} dB"
    elif final is not None and final.val_accuracy is not None:
        name, epoch, measured = "accuracy", f"{final.val_accuracy:.2%}", evaluation.get("accuracy")
        measured = None if measured is None else f"{measured:.2%}"
    elif final is not None and final.val_mae is not None:  # regression: its own figure, not the loss
        name, epoch, measured = "MAE", f"{final.val_mae:.4g}", evaluation.get("mae")
        measured = None if measured is None else f"{measured:.4g}"
    elif final is not None and final.val_loss is not None:
        name, epoch, measured = "loss", f"{final.val_loss:.4f}", evaluation.get("loss")
        measured = None if measured is None else f"{measured:.4f}"
    else:
        return ""
    split = result.evaluation_split or "val"
    if measured is None or (measured == epoch and split == "val"):
        return f" · validation {name} {epoch}"
    where = "" if split == "val" else f" on the {'test' if split == 'test' else 'training'} split"
    return f" · last epoch's validation {name} {epoch} · final weights {measured}{where}"


def _run_name(run: Path) -> str:
    """A run as the Runs tab names it: the name it was given, with its folder's."""
    from ...engine.runs import read_labels

    name = read_labels(run).name
    return f"{name} ({run.name})" if name and name != run.name else run.name


def latest_run_of(path: Path, project, state_dir: Path) -> Path | None:
    """The run the project opened from ``path`` starts with (see
    ``engine.run_index.latest_run_of``: the newest with the project's very
    settings, else the newest that fits)."""
    from ...engine.run_index import latest_run_of as latest

    return latest(path, project, state_dir)


def run_fits(run: Path, project) -> bool:
    """Whether the run trained ``project``'s model on its data (see
    ``engine.run_index.run_fits``)."""
    from ...engine.run_index import run_fits as fits

    return fits(run, project)


def measure_latest_run(path: Path, project, state_dir: Path, data) -> dict | None:
    """Load the latest run's weights (safetensors, never a pickle) and measure
    them as Evaluate does; None when the project has no finished run."""
    run = latest_run_of(path, project, state_dir)
    if run is None:
        return None
    return measure_run(run, project, data)


def measure_run(run: Path, project, data) -> dict:
    """Load the run's final weights (safetensors, never a pickle) and measure
    them on ``project``'s data as Evaluate does (see ``run_fits``)."""
    from ...engine.export import ExportError, load_trained
    from ..worker import evaluate_weights

    loaded = load_trained(run, samples=False)  # the weights only: the data is measured below
    if not loaded.trained:  # load_trained builds the untrained model then: never shown as trained
        raise ExportError(f"{run.name} has no final weights (its model.safetensors is missing)")
    weights = {k: v.detach().clone() for k, v in loaded.module.state_dict().items()}
    outcome = evaluate_weights(project, weights, data)
    # The Train tab's note is the run's own (what its training noted, in run.json), then
    # whatever measuring it noted besides.
    notes = run_notes(run)
    outcome.update(opened_run=run, run_dir=run, notes=notes + [n for n in outcome["notes"] if n not in notes])
    return outcome


def run_notes(run: Path) -> list[str]:
    """What the run's training noted (run.json ``notes``); [] when it cannot be read."""
    from ...engine.runs import RunError, read_run

    try:
        notes = read_run(run).get("notes") or []
    except (RunError, OSError):
        return []
    return [str(note) for note in notes]
