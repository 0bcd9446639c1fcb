"""The Sweep dialog: its checks, a real grid sweep run as a guidl sweep
process from it, the best trial applied as one undo step, and Stop."""

import json
from pathlib import Path

import psutil
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from guidl import spec
from guidl.qt.sweep_dialog import SweepDialog

import helpers

LR = "training.optimizer.params.lr"
WIDTH = "model.layers[0].params.out_features"


def small_moons(epochs: int = 2) -> spec.Project:
    return helpers.small_moons(epochs)


@pytest.fixture
def moons_window(window, tmp_path, monkeypatch):
    from guidl.qt.controllers import sweeps

    monkeypatch.setattr(sweeps, "POLL_MS", 250)  # the study read back sooner: less waiting per test
    window.document.set_project(small_moons(), None)
    yield window
    window.sweeps.stop_for_close(timeout_s=20)


def test_dialog_refuses_a_bad_path_and_range_with_the_reason(qtbot):
    dialog = SweepDialog(small_moons())
    qtbot.addWidget(dialog)
    assert not dialog.start_button.isEnabled()  # nothing to vary yet
    row = dialog.add_param("model.layers[9].params.out_features", "8..32")
    reason = dialog.params_table.item(row, 2).text()
    assert "5 layers" in reason
    assert not dialog.start_button.isEnabled()
    assert reason in dialog.status.text()
    dialog.set_param_text(row, path=WIDTH)
    assert dialog.start_button.isEnabled()
    assert dialog.params_table.item(row, 2).text().startswith("✓")
    dialog.set_param_text(row, path=LR, values="log:0..0.1")  # a log range from zero
    assert "low > 0" in dialog.params_table.item(row, 2).text()
    assert not dialog.start_button.isEnabled()
    assert dialog.config() is None
    dialog.set_param_text(row, values="log:0.001..0.1")
    config = dialog.config()
    assert dialog.start_button.isEnabled() and config.params[0].kind == "log_range"
    # Opened on a field, the dialog suggests a search around the project's value.
    assert dialog.add_param(WIDTH) == 1 and dialog.rows()[1] == (WIDTH, "8..32")


def trial_states(window) -> list[str]:
    view = window.sweeps._last_view
    return [row["state"] for row in view.rows] if view is not None else []


def relative_csv_moons(folder: Path) -> spec.Project:
    """Moons as a CSV file named relative to ``folder`` (the window's working directory)."""
    import numpy as np

    rng = np.random.default_rng(0)
    angle, label = rng.uniform(0, np.pi, 200), rng.integers(0, 2, 200)
    x = np.where(label == 0, np.cos(angle), 1 - np.cos(angle)) + rng.normal(0, 0.1, 200)
    y = np.where(label == 0, np.sin(angle), 0.5 - np.sin(angle)) + rng.normal(0, 0.1, 200)
    (folder / "moons.csv").write_text("x,y,label\n" + "".join(f"{a:.4f},{b:.4f},{c}\n" for a, b, c in zip(x, y, label)))
    doc = small_moons().to_dict()
    doc["data"] = {**doc["data"], "dataset": "csv", "params": {"path": "moons.csv", "target": "label"}}
    return spec.Project.from_dict(doc)


def test_grid_sweep_from_the_dialog_and_apply_best_as_one_undo_step(moons_window, qtbot, tmp_path, monkeypatch):
    window = moons_window
    # The data file is named relative to the working directory, as the window reads it; the
    # sweep's project copy is in RUNS/sweeps, and its process must read the same file.
    monkeypatch.chdir(tmp_path)
    window.document.set_project(relative_csv_moons(tmp_path), None)
    assert not (window.sweeps.runs_root() / "sweeps" / "moons.csv").exists()
    dialog = window.sweeps.open_dialog(LR)
    assert dialog.rows() == [(LR, "log:0.001..0.1")]  # a log range around the project's 0.01
    dialog.set_param_text(0, values="0.001,0.05")
    dialog.add_param(WIDTH, "4,16")
    dialog.strategy.setCurrentIndex(dialog.strategy.findData("grid"))
    assert dialog.trials.value() == 4  # every point of the grid once
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    assert window.sweeps.running and not dialog.start_button.isEnabled()
    qtbot.waitUntil(lambda: not window.sweeps.running and window.sweeps.poller is None, timeout=240_000)
    assert trial_states(window) == ["complete"] * 4, dialog.status.text()
    rows = window.sweeps._last_view.rows
    folders = {Path(row["run_dir"]) for row in rows}
    assert len(folders) == 4 and all((folder / "run.json").is_file() for folder in folders)
    runs_root = window.sweeps.runs_root()
    assert all(folder.parent == runs_root for folder in folders)
    # Named as guidl sweep names an unsaved project's trials: the project's name made safe.
    assert all(folder.name.startswith("two_moons_mlp-sweep-") for folder in folders), folders
    assert {json.loads((f / "run.json").read_text())["status"] for f in folders} == {"finished"}
    assert dialog.trials_model.rowCount() == 4 and dialog.chart.scatters["complete"].data.size == 4

    best = window.sweeps._last_view.best
    assert best["value"] == max(row["value"] for row in rows)  # val_accuracy: maximised
    before = window.document.project.to_dict()
    steps = window.document.undo_stack.count()
    assert dialog.apply_button.isEnabled()
    qtbot.mouseClick(dialog.apply_button, Qt.MouseButton.LeftButton)
    doc = window.document.project.to_dict()
    assert doc["training"]["optimizer"]["params"]["lr"] == best["params"][LR]
    assert doc["model"]["layers"][0]["params"]["out_features"] == best["params"][WIDTH]
    assert window.document.undo_stack.count() == steps + 1
    window.document.undo_stack.undo()
    assert window.document.project.to_dict() == before


def test_stop_ends_a_running_sweep_which_can_continue(moons_window, qtbot, answer, monkeypatch):
    window = moons_window
    doc = window.document.project.to_dict()
    doc["training"]["epochs"] = 500  # far longer than the test waits
    window.document.set_project(spec.Project.from_dict(doc), None)
    dialog = window.sweeps.open_dialog(LR)
    dialog.strategy.setCurrentIndex(dialog.strategy.findData("random"))
    dialog.trials.setValue(3)
    dialog.start_button.click()
    pid = window.sweeps.process.processId()
    qtbot.waitUntil(lambda: "running" in trial_states(window), timeout=120_000)
    answer["button"] = QMessageBox.StandardButton.No  # closing the window asks first; No keeps the sweep
    assert not window.sweeps.confirm_close() and answer["asked"][0] == "A sweep is running"
    assert window.sweeps.running
    dialog.stop_button.click()
    qtbot.waitUntil(lambda: not window.sweeps.running and window.sweeps.poller is None, timeout=120_000)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    states = trial_states(window)
    assert states and "running" not in states and "complete" not in states
    assert "stopped" in dialog.status.text()
    # Continue runs the rest of the same study (Start New would train its points again).
    assert dialog.continue_button.isVisible() and dialog.start_button.text() == "Start New"
    launched = []
    monkeypatch.setattr(window.sweeps, "_start_process", lambda arguments: launched.append(arguments))
    dialog.continue_button.click()
    study, storage = window.sweeps.study, str(window.sweeps.storage_path)
    assert launched and launched[0][:3] == ["-m", "guidl", "sweep"] and "--param" not in launched[0]
    text = " ".join(launched[0])
    assert f"--study {study} --storage {storage} --runs-dir {window.sweeps.runs_root()}" in text
    assert not dialog.continue_button.isVisible()


SLOW_TO_STOP = """
import pathlib, signal, sys, time
def stop(*_):
    time.sleep(0.6)  # as trials finishing their batch
    sys.exit(130)
signal.signal(signal.SIGINT, stop if sys.argv[2] == 'stops' else signal.SIG_IGN)
pathlib.Path(sys.argv[1]).write_text('ready')
time.sleep(60)
"""


@pytest.mark.parametrize("child", ["stops", "ignores Ctrl+C"])
def test_closing_waits_for_the_sweep_process_with_the_window_painting(window, qtbot, tmp_path, child):
    from PySide6.QtCore import QTimer

    ready = tmp_path / "ready"
    process = window.sweeps._start_process(["-c", SLOW_TO_STOP, str(ready), child.split()[0]])
    qtbot.waitUntil(ready.exists, timeout=20_000)
    pid = process.processId()
    # Running, it is said in the status bar (a click shows the dialog), and Train waits for it.
    window.update_actions()
    assert window.sweeps.indicator.isVisible() and "Sweep running" in window.sweeps.indicator.text()
    assert not window.train_action.isEnabled() and "sweep is running" in window.training.blocker()
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    # A child that ignores Ctrl+C is killed after the timeout.
    assert window.sweeps.stop_for_close(timeout_s=20 if child == "stops" else 0.5)
    timer.stop()
    assert not window.sweeps.running and not window.sweeps.indicator.isVisible()
    assert window.training.blocker() is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert ticks, "the GUI thread handled no event while the sweep stopped"


def test_trial_chart_draws_running_and_stopped_trials_at_their_last_epoch(qtbot):
    from guidl.qt.sweep_dialog import TrialChart

    chart = TrialChart()
    qtbot.addWidget(chart)
    chart.set_rows([
        {"number": 0, "state": "complete", "value": 0.9, "intermediate": {1: 0.7, 2: 0.9}},
        {"number": 1, "state": "running", "value": None, "intermediate": {1: 0.6, 2: 0.8}},
        {"number": 2, "state": "stopped", "value": None, "intermediate": {1: 0.5}},
        {"number": 3, "state": "running", "value": None, "intermediate": {}},  # no epoch yet: no mark
    ], "val_accuracy", "maximize")

    def points(state):
        x, y = chart.scatters[state].getData()
        return list(zip(x.tolist(), y.tolist()))

    assert points("complete") == [(0, 0.9)]
    assert points("running") == [(1, 0.8)]
    assert points("stopped") == [(2, 0.5)]
    assert chart.best_line.getData()[1].tolist() == [0.9, 0.9]  # the best counts finished trials only


def test_the_trials_table_and_the_plots_name_a_setting_alike(qtbot):
    from guidl.qt.sweep_dialog import StudyView

    dialog = SweepDialog(small_moons())
    qtbot.addWidget(dialog)
    rows = [{"number": 0, "state": "complete", "value": 0.9, "params": {LR: 0.01, WIDTH: 8}}]
    dialog.show_study(StudyView(name="s", storage="s.journal", rows=rows, best=rows[0], params=[LR, WIDTH],
                                metric="val_accuracy", direction="maximize", trials=1))
    model = dialog.trials_model
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert headers[3:5] == ["optimizer.lr", "layers[0].out_features"] == list(dialog.parallel.names.values())
    assert "optimizer.lr = <b>0.01</b>" in dialog.best_label.text()


def test_races_can_start_while_pytorch_still_loads_but_not_on_a_broken_project(window, monkeypatch):
    from guidl.qt.engine_loader import EngineLoader

    window.document.set_project(small_moons(), None)
    window.update_actions()
    assert window.compare_optimizers_action.isEnabled()
    # The sweep's process loads PyTorch itself: loading here is no reason to wait (Train waits).
    monkeypatch.setattr(EngineLoader, "is_ready", property(lambda self: False))
    window.update_actions()
    assert not window.train_action.isEnabled()
    assert window.compare_optimizers_action.isEnabled() and window.compare_activations_action.isEnabled()
    monkeypatch.undo()
    doc = small_moons().to_dict()
    doc["model"]["layers"] = []
    window.document.set_project(spec.Project.from_dict(doc), None)
    window.update_actions()
    assert window.sweeps.blocker() and not window.compare_optimizers_action.isEnabled()


def test_the_empty_chart_reads_trials_and_the_metric_before_the_first_trial(qtbot):
    dialog = SweepDialog(small_moons())
    qtbot.addWidget(dialog)
    plot = dialog.chart.plot
    assert plot.getAxis("left").labelText == "val_accuracy"
    ticks = [v for _, values in plot.getAxis("bottom").tickValues(0, 1, 400) for v in values]
    assert ticks and all(float(v).is_integer() for v in ticks)  # trial 0, 1: never trial 0.2
    dialog.metric_box.setCurrentIndex(dialog.metric_box.findData("val_loss"))
    assert plot.getAxis("left").labelText == "val_loss" and dialog.direction.currentData() == "minimize"


def test_the_strategy_follows_the_rows_as_guidl_sweeps_default_until_the_user_picks_one(qtbot):
    dialog = SweepDialog(small_moons())
    qtbot.addWidget(dialog)
    dialog.add_param(LR, "0.001,0.01,0.1")  # values only: every combination
    assert dialog.strategy.currentData() == "grid" and dialog.trials.value() == 3
    dialog.add_param(WIDTH, "4,8")
    assert dialog.trials.value() == 6
    dialog.set_param_text(1, values="4..64")  # a range: TPE over guidl sweep's budget
    assert dialog.strategy.currentData() == "tpe" and dialog.trials.value() == 20
    dialog.strategy.setCurrentIndex(dialog.strategy.findData("random"))  # the user's choice stays
    dialog.set_param_text(1, values="4,8")
    assert dialog.strategy.currentData() == "random" and dialog.config().strategy == "random"


def test_trial_chart_shows_trials_that_all_scored_the_same_in_a_narrow_band(qtbot):
    from guidl.qt.sweep_dialog import TrialChart

    chart = TrialChart()
    qtbot.addWidget(chart)
    chart.show()  # autorange is applied as the chart is drawn
    chart.set_rows([{"number": n, "state": "complete", "value": 1.0} for n in range(3)], "val_accuracy", "maximize")
    low, high = chart.plot.viewRange()[1]
    assert 0.9 <= low < 1.0 < high <= 1.1  # not 0.5 .. 1.5
    chart.set_rows([{"number": 0, "state": "complete", "value": 0.5}, {"number": 1, "state": "complete", "value": 1.0}],
                   "val_accuracy", "maximize")
    qtbot.waitUntil(lambda: chart.plot.viewRange()[1][0] <= 0.5 and chart.plot.viewRange()[1][1] >= 1.0)


def test_a_queued_trial_reads_not_run_once_the_sweep_has_stopped(qtbot):
    from guidl.qt.sweep_dialog import StudyView

    dialog = SweepDialog(small_moons())
    qtbot.addWidget(dialog)
    rows = [{"number": 0, "state": "stopped", "params": {LR: 0.01}}, {"number": 1, "state": "waiting", "params": {}}]
    dialog.set_running(True)
    dialog.show_study(StudyView(name="s", storage="s.journal", rows=rows, params=[LR], trials=2))
    model = dialog.trials_model
    assert model.data(model.index(1, 1)) == "waiting"  # queued, to run next
    dialog.set_running(False)  # stopped: nothing will run it unless Continue
    assert model.data(model.index(1, 1)) == "not run"
    assert "Continue" in model.data(model.index(1, 1), Qt.ItemDataRole.ToolTipRole)


def test_a_watched_studys_best_trial_is_offered_when_its_settings_fit_the_project(window, qtbot):
    from guidl.qt.sweep_dialog import StudyView

    window.document.set_project(small_moons(), None)
    dialog = window.sweeps._new_dialog(watch=True, title="Study s")
    best = {"number": 0, "state": "complete", "value": 0.9, "params": {LR: 0.05}}
    dialog.show_study(StudyView(name="s", storage="s.journal", rows=[best], best=best, params=[LR],
                                metric="val_accuracy", direction="maximize", trials=1))
    assert dialog.apply_button.isVisibleTo(dialog) and dialog.apply_button.isEnabled()
    window.sweeps._last_view = dialog.view
    steps = window.document.undo_stack.count()
    dialog.apply_button.click()
    assert window.document.project.training.optimizer.params["lr"] == 0.05
    assert window.document.undo_stack.count() == steps + 1
    # Said in the watching dialog too, and kept there when the study is read again.
    assert dialog.applied_label.isVisibleTo(dialog) and dialog.applied_label.text().startswith("Applied trial #0: ")
    dialog.show_study(dialog.view)
    assert dialog.applied_label.text().startswith("Applied trial #0: ")
    other = dict(best, params={"model.layers[9].params.out_features": 8})  # another project's study
    dialog.show_study(StudyView(name="s", storage="s.journal", rows=[other], best=other, params=list(other["params"]),
                                metric="val_accuracy", direction="maximize", trials=1))
    assert not dialog.apply_button.isVisibleTo(dialog)


def test_best_trial_text_from_the_study_is_shown_as_typed_not_as_markup(qtbot):
    from guidl.qt.sweep_dialog import StudyView

    dialog = SweepDialog(small_moons())
    qtbot.addWidget(dialog)
    rows = [{"number": 0, "state": "complete", "value": 0.9, "variant": "<b>bold</b> & co",
             "run_dir": "/runs/<i>x", "params": {}}]
    dialog.show_study(StudyView(name="s", storage="s.journal", rows=rows, params=[], trials=1, best=rows[0],
                                variants=["<b>bold</b> & co"], metric="val_accuracy", direction="maximize"))
    text = dialog.best_label.text()
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in text and "&lt;i&gt;x" in text
    assert "<b>bold</b>" not in text and "<i>" not in text


def test_epochs_per_trial_with_a_swept_training_epochs_is_refused_at_once(qtbot):
    dialog = SweepDialog(small_moons())
    qtbot.addWidget(dialog)
    dialog.add_param("training.epochs", "1,2")
    assert dialog.start_button.isEnabled()
    dialog.epochs.setValue(3)  # overrides every trial's swept epochs: refused before Start
    assert not dialog.start_button.isEnabled()
    assert "Epochs per trial" in dialog.status.text() and "training.epochs" in dialog.status.text()
    assert dialog.config() is None
    dialog.epochs.setValue(0)  # "as the project"
    assert dialog.start_button.isEnabled() and dialog.config() is not None


@pytest.mark.parametrize("os_name, expected", [("posix", "SIGINT"), ("nt", "CTRL_BREAK_EVENT")])
def test_stop_asks_the_sweep_to_end_after_its_batch_on_each_system(window, monkeypatch, os_name, expected):
    import os
    import signal

    class Process:  # the running guidl sweep, as far as Stop looks at it
        def processId(self):
            return 4242

    monkeypatch.setattr(signal, "CTRL_BREAK_EVENT", 1, raising=False)  # Windows' value
    sent = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    controller = window.sweeps
    controller.process = Process()
    controller._stopping = False
    with monkeypatch.context() as m:
        m.setattr(os, "name", os_name)  # only while Stop runs: never a hard TerminateProcess on Windows
        controller.stop()
    controller._kill_timer.stop()
    controller.process = None
    assert sent == [(4242, getattr(signal, expected))]


def test_the_progress_line_counts_trials_by_the_studys_tally(qtbot):
    from guidl.engine.sweep import Tally
    from guidl.qt.sweep_dialog import StudyView

    dialog = SweepDialog(small_moons())
    qtbot.addWidget(dialog)
    rows = [{"number": n, "state": s, "params": {LR: 0.01}}
            for n, s in enumerate(("complete", "pruned", "failed", "complete", "running"))]
    tally = Tally(6, complete=1, pruned=1, failed=0, retried=1, running=1)  # #2 failed, retried as #3
    dialog.show_study(StudyView(name="s", storage="s.journal", rows=rows, params=[LR], trials=6, tally=tally))
    assert dialog.progress_text == "Study s · 2/6 trials done · 1 running · 1 pruned · 1 failed and retried"


def test_stop_on_windows_never_sends_ctrl_break_to_a_process_without_its_own_group(window, monkeypatch):
    import os
    import signal

    class Process:
        def processId(self):
            return 4242

    monkeypatch.setattr(signal, "CTRL_BREAK_EVENT", 1, raising=False)
    sent, killed = [], []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    controller = window.sweeps
    monkeypatch.setattr(controller, "_kill", lambda: killed.append(True))
    controller.process, controller._stopping, controller._own_group = Process(), False, False
    with monkeypatch.context() as m:
        m.setattr(os, "name", "nt")
        controller.stop()
    controller.process, controller._own_group = None, True
    assert sent == [] and killed == [True]  # Ctrl+Break would reach the window's console too


def test_a_grid_too_large_to_run_is_refused_before_start(qtbot):
    dialog = SweepDialog(small_moons())
    qtbot.addWidget(dialog)
    dialog.add_param(LR, ",".join(str(0.001 * n) for n in range(1, 101)))
    dialog.add_param(WIDTH, ",".join(str(n) for n in range(1, 101)))
    dialog.add_param("training.optimizer.params.weight_decay", "0,0.01")  # 20,000 points
    assert all(dialog.params_table.item(r, 2).text().startswith("✓") for r in range(3))
    assert not dialog.start_button.isEnabled() and "10,000" in dialog.status.text()
    dialog.set_param_text(2, values="0")  # 10,000 points: runs
    assert dialog.start_button.isEnabled()


def test_best_so_far_ends_at_the_last_trial_with_a_figure_not_at_trials_not_run(qtbot):
    from guidl.qt.sweep_dialog import TrialChart

    chart = TrialChart()
    qtbot.addWidget(chart)
    chart.set_rows([
        {"number": 0, "state": "complete", "value": 0.8},
        {"number": 1, "state": "complete", "value": 0.9},
        {"number": 2, "state": "stopped", "value": None, "intermediate": {1: 0.5}},
        {"number": 3, "state": "waiting", "value": None},  # not run after the Stop
        {"number": 4, "state": "waiting", "value": None},
    ], "val_accuracy", "maximize")
    xs, ys = chart.best_line.getData()
    assert xs.tolist() == [0, 1, 1, 2] and ys.tolist() == [0.8, 0.8, 0.9, 0.9]
