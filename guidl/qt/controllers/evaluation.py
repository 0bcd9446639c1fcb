"""Results: a finished run's or a measured model's outcome shown in the
Results tab, and Evaluate for weights the window did not train itself (an
opened bundle's)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QMainWindow

from ..jobs import Task

WARNING_STYLE = "color: #b45309;"


class EvaluationController(QObject):
    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self.window = window
        self.thread = None  # the evaluation running in the background
        self._data_key: str | None = None

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

        window = self.window
        project = window.document.project.copy()
        self._data_key = window.document.data_key()
        data = window.session.cached_data(self._data_key)
        window.status_text.setText(status)
        task = Task(lambda: evaluate_weights(project, weights, data))
        task.done.connect(self._evaluated)
        task.error.connect(self._failed)
        self.thread = window.jobs.start(task, self._thread_finished)
        window.update_actions()

    @Slot(object)
    def _evaluated(self, outcome: dict) -> None:
        self.show_outcome(outcome, self._data_key)

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.window.training.show_failure(message)

    @Slot()
    def _thread_finished(self) -> None:
        self.thread = None
        self.window.show_tab("results")
        self.window.update_actions()

    def show_outcome(self, outcome: dict, data_key: str | None) -> None:
        """A finished run's or an evaluation's outcome: the session keeps the
        model, Results shows it, the status bar says what it was."""
        window = self.window
        result = outcome["result"]
        window.session.adopt(outcome, data_key)
        window.results.show_result(result, outcome["samples"])
        if outcome.get("evaluated_only"):  # saved weights measured, nothing trained
            evaluation = result.evaluation.to_dict() if result.evaluation else {}
            score = (f"accuracy {evaluation['accuracy']:.2%}" if "accuracy" in evaluation
                     else f"MAE {evaluation.get('mae', float('nan')):.4g}")
            window.status_text.setText(f"Evaluated the model on the {result.evaluation_split} split: {score}")
        else:
            final = result.final
            what = result.stop_reason if result.stopped else "finished"
            figure = ""
            if final is not None and final.val_accuracy is not None:
                figure = f" · validation accuracy {final.val_accuracy:.2%}"
            elif final is not None and final.val_loss is not None:
                figure = f" · validation loss {final.val_loss:.4f}"
            window.status_text.setText(f"Training {what} in {result.elapsed:.1f}s{figure} · run folder "
                                       f"{outcome.get('run_dir')}")
        if outcome["notes"]:
            window.show_train_message("\n".join(outcome["notes"]), WARNING_STYLE)
        window.update_actions()
