"""Training from the window: charts, progress, results, pause, resume, stop,
and closing the window mid-training."""

import os
import signal
import time

from PySide6.QtCore import Qt

from guidl.qt.worker import TRAINING_NICE
from guidl.spec import Data
from helpers import small_project


def train_small(window, epochs=2, batch_size=64, **changes):
    project = small_project(training__epochs=epochs, data__batch_size=batch_size, **changes)
    window.document.set_project(project, None)
    assert window.train_action.isEnabled(), window.train_action.toolTip()
    window.train_action.trigger()


def test_train_from_the_window_fills_charts_progress_and_results(window, qtbot):
    train_small(window)
    assert window.thread is not None and not window.train_action.isEnabled()
    assert window.stop_action.isEnabled() and window.pause_action.isEnabled()
    values = []
    qtbot.waitUntil(lambda: values.append(window.progress.value()) or window.last_result is not None,
                    timeout=120_000)
    qtbot.waitUntil(lambda: window.thread is None, timeout=10_000)
    assert max(values) > 0
    charts = window.charts
    assert charts.series["batch"].size == 2 * 23  # 1,438 samples in batches of 64, two epochs
    assert charts.series["val_metric"].size == 2 and charts.series["lr"].size == 2
    charts.refresh()
    assert len(charts.curves["batch"].getData()[0]) > 0
    results = window.results
    assert results.table.rowCount() == 11  # ten digits and the macro average
    assert "accuracy" in results.headline.text()
    assert window.last_result.history[-1].val_accuracy > 0.8
    assert results.samples_layout.count() == 24
    # The confusion matrix's counts, one per cell, add up to the evaluated samples.
    counts = [int(text) for _, _, text, _ in results.counts.cells]
    assert len(counts) == 100 and sum(counts) == sum(window.last_result.evaluation.support)
    assert window.train_action.isEnabled() and window.evaluate_action.isEnabled()
    assert (window.run_dir / "checkpoint.pt").exists() and (window.run_dir / "model.safetensors").exists()


def test_pause_resume_and_stop(window, qtbot):
    window.document.set_project(small_project(training__epochs=2, data__batch_size=16), None)
    window.setup.epochs.setValue(200)  # an edit through the form: undoable
    assert window.undo_action.isEnabled() and window.document.project.training.epochs == 200
    window.train_action.trigger()
    assert not window.undo_action.isEnabled() and window.document.undo_stack.canUndo()
    qtbot.waitUntil(lambda: window.charts.series["batch"].size > 5, timeout=60_000)
    window.pause_action.trigger()
    qtbot.waitUntil(lambda: window.pause_action.text() == "&Resume", timeout=5_000)
    qtbot.wait(300)
    assert window.status_text.text().endswith(" · paused") and window.status_text.text().count("paused") == 1
    step = window.worker.step
    qtbot.wait(500)
    assert window.worker.step == step, "a paused run must not take steps"
    window.pause_action.trigger()
    qtbot.waitUntil(lambda: window.worker.step > step, timeout=10_000)
    window.stop_action.trigger()
    qtbot.waitUntil(lambda: window.thread is None, timeout=30_000)
    assert window.last_result.stopped and window.last_result.stop_reason == "stopped by the user"
    assert "stopped by the user" in window.status_text.text()
    assert window.undo_action.isEnabled()


def test_closing_the_window_mid_training_stops_cleanly(window, qtbot, capfd, answer):
    from PySide6.QtWidgets import QMessageBox

    train_small(window, epochs=200, batch_size=16)
    qtbot.waitUntil(lambda: window.charts.series["batch"].size > 3, timeout=60_000)
    answer["button"] = QMessageBox.StandardButton.No
    window.close()
    assert window.isVisible() and window.thread is not None  # "No" keeps training
    answer["button"] = QMessageBox.StandardButton.Yes
    started = time.perf_counter()
    assert window.close()
    assert not window.isVisible()
    assert window.thread is None and window.jobs.count == 0
    assert time.perf_counter() - started < 30
    assert "QThread: Destroyed" not in capfd.readouterr().err


def test_a_dataset_problem_is_explained_in_place(window, qtbot):
    project = small_project(data=Data("csv", {"path": "/nowhere/table.csv"}))
    window.document.set_project(project, None)
    window.load_data_action.trigger()
    qtbot.waitUntil(lambda: window.data_panel.message.isVisibleTo(window)
                    and "no such file" in window.data_panel.message.text(), timeout=30_000)
    assert window.tabs.currentWidget() is window.data_panel
    window.train_action.trigger()
    qtbot.waitUntil(lambda: window.thread is None and window.train_message.text() != "", timeout=30_000)
    assert "csv: no such file" in window.train_message.text()


def test_loading_data_shows_a_preview_and_the_class_balance(window, qtbot):
    window.document.set_project(small_project(), None)
    window.load_data()
    qtbot.waitUntil(lambda: window.document.data_info is not None, timeout=60_000)
    panel = window.data_panel
    assert panel.preview.currentWidget() is panel.image_grid
    assert panel.grid_layout.count() == 24
    assert "1,438 training, 359 validation" in panel.summary.text()


def test_a_changed_dataset_parameter_drops_the_loaded_shape(window, qtbot, root):
    from guidl import spec

    project = spec.load(root / "examples/char_lstm.guidl.json")
    project.data.params.update(max_samples=300)
    project.model.input_shape = None  # the data supplies it
    window.document.set_project(project, None)
    window.load_data()
    qtbot.waitUntil(lambda: window.document.data_info is not None, timeout=60_000)
    assert window.document.report.input_shape == (64,)
    window.document.apply(lambda p: p.data.params.update(seq_len=16), "Set seq_len")
    assert window.document.report.input_shape == (16,)


def test_closing_while_data_loads_is_quick_and_clean(window, qtbot, capfd):
    window.document.set_project(small_project(), None)
    window.load_data()
    started = time.perf_counter()
    assert window.close()
    assert time.perf_counter() - started < 20 and window.jobs.count == 0
    assert "QThread: Destroyed" not in capfd.readouterr().err


def test_export_from_the_window(window, qtbot, tmp_path):
    import onnxruntime

    train_small(window, epochs=1)
    qtbot.waitUntil(lambda: window.thread is None and window.trainer is not None, timeout=120_000)
    assert window.export_action.isEnabled()
    from guidl.engine.export import TrainedModel

    window.export_to(TrainedModel.from_trainer(window.trainer), "onnx", tmp_path / "digits")
    qtbot.waitUntil(lambda: window._exporter is None, timeout=120_000)
    assert window.last_export.path == tmp_path / "digits.onnx"
    assert window.last_export.max_difference <= 1e-4
    assert "Exported" in window.status_text.text()
    session = onnxruntime.InferenceSession(str(tmp_path / "digits.onnx"))
    assert session.run(None, {"input": window.trainer.data.val.x[:3].numpy()})[0].shape == (3, 10)


def test_an_export_failing_while_the_window_closes_opens_no_modal_box(window, qtbot, answer, monkeypatch):
    from guidl.engine import export

    def failing(*args, **kwargs):
        time.sleep(0.3)
        raise ValueError("the disk is full")

    monkeypatch.setattr(export, "export", failing)
    window.export_to(None, "onnx", window.state_dir / "model")
    assert window.close()  # waits for the export, whose failure arrives meanwhile
    assert "warned" not in answer  # a modal box would have run a loop inside closeEvent
    assert window.exports.failure_box.text() == "the disk is full"
    assert window.exports.failure_box.windowModality() == Qt.WindowModality.WindowModal


def test_training_runs_in_a_process_of_its_own(window, qtbot):
    train_small(window, epochs=200, batch_size=16)
    qtbot.waitUntil(lambda: window.worker.step > 0, timeout=60_000)
    child = window.worker.process.process
    assert window.worker.where == "process" and child.is_alive() and child.pid != os.getpid()
    job = window.worker.process.job
    # Every core, less those other programs hold (the window's own load
    # aside), at a niceness that lets the window paint the moment it needs to.
    assert job.tune_threads and job.window_pid == os.getpid() and job.nice == TRAINING_NICE > 0
    if hasattr(os, "getpriority"):
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == os.getpriority(os.PRIO_PROCESS, 0) + TRAINING_NICE
    qtbot.waitUntil(lambda: window.charts.series["val_metric"].size >= 1, timeout=60_000)
    window.stop_action.trigger()
    qtbot.waitUntil(lambda: window.thread is None, timeout=30_000)
    assert not child.is_alive() and child.exitcode == 0
    # The trained model is here, in the window's process, for results and export.
    assert window.trainer is not None and window.trainer.step > 0
    assert window.last_result.stopped and window.results.table.rowCount() == 11


def test_a_crashed_training_process_is_reported_and_the_window_lives_on(window, qtbot):
    train_small(window, epochs=200, batch_size=16)
    qtbot.waitUntil(lambda: window.worker is not None and window.worker.step > 0, timeout=60_000)
    os.kill(window.worker.process.process.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: window.thread is None, timeout=30_000)
    assert window.train_message.isVisibleTo(window)
    assert "ended unexpectedly" in window.train_message.text()
    assert "SIGKILL" in window.train_message.text()
    assert window.train_action.isEnabled()
    train_small(window, epochs=1)  # and training again works
    qtbot.waitUntil(lambda: window.thread is None, timeout=120_000)
    assert window.last_result is not None and window.last_result.history[-1].val_accuracy > 0.5


def test_without_a_child_process_training_runs_in_the_window_process(window, qtbot, monkeypatch):
    from guidl.engine.training_process import TrainingProcess

    def refuse(self):
        raise OSError("no processes here")

    monkeypatch.setattr(TrainingProcess, "start", refuse)
    train_small(window)
    worker = window.worker  # kept: a quick run ends, and the window lets go of its worker, between two polls
    qtbot.waitUntil(lambda: window.thread is None, timeout=120_000)
    assert worker.where == "thread"
    assert window.last_result.history[-1].val_accuracy > 0.8
    assert window.charts.series["batch"].size == 2 * 23
    assert window.train_message.isVisibleTo(window) and "no training process could be started (OSError: " \
        "no processes here)" in window.train_message.text()


def test_results_stand_when_the_window_cannot_load_the_trained_model(window, qtbot, monkeypatch):
    from guidl.engine.trainer import Trainer

    def no_memory(self):
        raise MemoryError("cannot allocate memory")

    monkeypatch.setattr(Trainer, "setup", no_memory)  # in the window's process only
    train_small(window)
    qtbot.waitUntil(lambda: window.thread is None, timeout=120_000)
    assert window.last_result.history[-1].val_accuracy > 0.8
    assert window.results.table.rowCount() == 11 and window.trainer is None
    assert "could not be loaded in the window" in window.train_message.text()
    assert not window.export_action.isEnabled()
    assert (window.run_dir / "model.safetensors").exists()


def test_a_training_process_that_does_not_stop_is_ended_when_the_window_closes(window, qtbot, answer):
    from PySide6.QtWidgets import QMessageBox

    train_small(window, epochs=200, batch_size=16)
    qtbot.waitUntil(lambda: window.worker is not None and window.worker.step > 0, timeout=60_000)
    child = window.worker.process.process
    os.kill(child.pid, signal.SIGSTOP)  # as if stuck in a kernel: it cannot hear "stop"
    window.close_timeout_s = 1
    answer["button"] = QMessageBox.StandardButton.Yes
    assert window.close()
    assert window.thread is None and not child.is_alive() and child.exitcode == -signal.SIGKILL
    assert "warned" not in answer
