"""A run's figures, each named: the status line's last epoch's validation
figure and the final weights' one that Results shows."""

from types import SimpleNamespace

from guidl.engine.trainer import EpochMetrics, FitResult
from guidl.qt.controllers.evaluation import run_figures
from helpers import small_project


def _result(epoch_accuracy: float, final_accuracy: float, split="val", stopped=True) -> FitResult:
    evaluation = {"task": "classification", "accuracy": final_accuracy, "macro_precision": 0.9,
                  "macro_recall": 0.9, "macro_f1": 0.9, "loss": 0.2, "class_names": ["a", "b"],
                  "precision": [0.9, 0.9], "recall": [0.9, 0.9], "f1": [0.9, 0.9], "support": [5, 5],
                  "confusion": [[4, 1], [0, 5]]}
    history = [EpochMetrics(1, 0.3, 0.25, 0.001, 1.0, 100.0, 0.9, epoch_accuracy)]
    return FitResult(history, stopped=stopped, stop_reason="stopped by the user" if stopped else None,
                     evaluation=SimpleNamespace(to_dict=lambda: evaluation), evaluation_split=split,
                     elapsed=3.0)


def test_a_stopped_runs_two_accuracies_are_named():
    assert run_figures(_result(0.952, 0.964)) == (" · last epoch's validation accuracy 95.20% · "
                                                  "final weights 96.40%")
    assert run_figures(_result(0.952, 0.964, split="test")) == (
        " · last epoch's validation accuracy 95.20% · final weights 96.40% on the test split")
    assert run_figures(_result(0.952, 0.952, stopped=False)) == " · validation accuracy 95.20%"  # one figure


def test_the_status_line_and_results_say_what_they_measured(window, tmp_path):
    outcome = {"result": _result(0.952, 0.964), "samples": [], "trainer": None, "notes": [],
               "run_dir": tmp_path / "run"}
    window.evaluation.show_outcome(outcome, None)
    status = window.status_text.text()
    assert "last epoch's validation accuracy 95.20% · final weights 96.40%" in status
    assert window.results.headline.text().startswith(
        "<b>Final weights on the validation split</b>: accuracy <b>96.40%</b>")


def test_a_stopped_run_from_the_window_names_its_figures(window, qtbot):
    window.document.set_project(small_project(training__epochs=4, data__batch_size=16), None)
    window.train_action.trigger()
    qtbot.waitUntil(lambda: window.charts.series["val_metric"].size >= 1
                    and window.charts.series["batch"].size > 95, timeout=60_000)  # into epoch 2
    window.stop_action.trigger()
    qtbot.waitUntil(lambda: window.thread is None, timeout=30_000)
    result = window.last_result
    assert result.stopped and len(result.history) >= 1
    epoch, final = f"{result.final.val_accuracy:.2%}", f"{result.evaluation.accuracy:.2%}"
    status = window.status_text.text()
    if epoch != final:
        assert f"last epoch's validation accuracy {epoch} · final weights {final}" in status
    else:
        assert f"validation accuracy {epoch}" in status
    assert f"<b>Final weights on the validation split</b>: accuracy <b>{final}</b>" in window.results.headline.text()
