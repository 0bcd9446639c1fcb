"""Projects: save and reopen, recent files, bad files, autosave and recovery."""

import json
import signal
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from guidl import spec
from helpers import small_project


def crash(window) -> None:
    """As if the window's process died: it never closes, and its lock is left
    behind by a process that no longer exists."""
    files = window.files
    lock_path = files.recovery_lock.fileName()
    files.autosave_timer.stop()
    files.recovery_lock.unlock()
    files.recovery_lock = None
    code = ("import os, signal, sys; from PySide6.QtCore import QLockFile; "
            f"lock = QLockFile({lock_path!r}); lock.tryLock(0) or sys.exit(3); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == -signal.SIGKILL
    assert Path(lock_path).exists()


def new_window(qtbot, tmp_path, name: str):
    from guidl.qt.main_window import MainWindow

    window = MainWindow(settings=QSettings(str(tmp_path / f"{name}.ini"), QSettings.Format.IniFormat),
                        state_dir=tmp_path / "state")
    qtbot.addWidget(window)
    return window


def test_save_and_reopen_gives_the_same_model(window, tmp_path, qtbot):
    window.stack.select_layer(4)
    window.layer_form.editor("out_features").setValue(64)
    assert window.isWindowModified()
    path = tmp_path / "mine.guidl.json"
    assert window._save_to(path)
    assert not window.isWindowModified() and "mine.guidl.json" in window.windowTitle()
    assert spec.load(path) == window.document.project
    from guidl.qt.main_window import MainWindow

    other = MainWindow(settings=window.settings, state_dir=tmp_path / "other")
    qtbot.addWidget(other)
    assert other.open_path(path)
    assert other.document.project == window.document.project
    assert other.document.report.total_params == window.document.report.total_params
    assert other._recent()[0] == str(path)


def test_a_bad_file_is_explained_and_the_open_project_stays(window, tmp_path, answer):
    bad = tmp_path / "bad.guidl.json"
    bad.write_text('{"format": "guidl-project", "version": 1, "model": {"layers": [{"type": "Nope"}]}}')
    before = window.document.project
    assert not window.open_path(bad, ask=False)
    title, text = answer["warned"]
    assert title == "Cannot open the project" and "unknown layer 'Nope'" in text
    assert window.document.project == before


def test_autosave_and_recovery_after_a_crash(window, tmp_path, qtbot, answer):
    window.stack.select_layer(0)
    window.delete_action.trigger()
    window.autosave()
    saved = json.loads(window.recovery_file.read_text())
    assert len(saved["model"]["layers"]) == 6 and saved["guidl_recovery"]["path"] is None
    crash(window)
    answer["button"] = QMessageBox.StandardButton.Yes
    reborn = new_window(qtbot, tmp_path, "s2")
    assert reborn.offer_recovery()
    assert len(reborn.document.project.model.layers) == 6
    assert reborn.document.modified
    answer["button"] = QMessageBox.StandardButton.Discard
    reborn.close()
    assert not reborn.recovery_file.exists()


def test_a_bundle_opens_to_evaluate_and_to_go_on_training(window, qtbot, tmp_path):
    from guidl.engine.callbacks import RunFolder
    from guidl.engine.export import export, load_trained
    from guidl.engine.trainer import Trainer
    from helpers import small_project

    run = tmp_path / "run"
    first = Trainer(small_project(training__epochs=2), callbacks=[RunFolder(run)])
    first.fit()
    export(load_trained(run), "bundle", tmp_path / "digits.guidl")
    assert window.open_path(tmp_path / "digits.guidl", ask=False)
    assert window.evaluate_action.isEnabled() and window.document.path is None
    window.evaluate_action.trigger()
    qtbot.waitUntil(lambda: window._evaluator is None and window.last_result is not None, timeout=60_000)
    accuracy = first.evaluate("val").accuracy
    assert window.last_result.evaluation.accuracy == accuracy
    assert f"accuracy {accuracy:.2%}" in window.status_text.text()
    window.train_action.trigger()  # goes on from the bundle's weights
    qtbot.waitUntil(lambda: window.worker is not None and window.worker.step > 0, timeout=60_000)
    assert window.worker.initial_weights is not None
    window.stop_action.trigger()
    qtbot.waitUntil(lambda: window.thread is None, timeout=60_000)
    assert window.worker is None and window.trainer is not None


def test_each_window_autosaves_to_its_own_file_and_a_crashed_ones_work_is_offered(window, tmp_path, qtbot,
                                                                                   answer, monkeypatch):
    second = new_window(qtbot, tmp_path, "second")
    second.document.set_project(small_project(name="second"), None)
    window.stack.select_layer(0)
    window.delete_action.trigger()
    second.edits.insert("ReLU")
    window.autosave()
    second.autosave()
    # Two files: the second window's autosave leaves the first's alone.
    assert window.recovery_file != second.recovery_file
    assert len(json.loads(window.recovery_file.read_text())["model"]["layers"]) == 6
    assert json.loads(second.recovery_file.read_text())["name"] == "second"
    # Nothing is offered while both windows live.
    assert new_window(qtbot, tmp_path, "meanwhile").files.orphans() == []
    crash(window)
    assert second.files.save_to(tmp_path / "second.guidl.json")
    assert second.close() and not second.recovery_file.exists()
    offered = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *args, **kwargs: offered.append(args[2]) or QMessageBox.StandardButton.Yes)
    third = new_window(qtbot, tmp_path, "third")
    assert third.offer_recovery()
    assert len(offered) == 1 and "MNIST CNN" in offered[0]
    assert len(third.document.project.model.layers) == 6 and third.document.modified
    # The work lives on in the third window's own autosave; the orphan is gone.
    assert not window.recovery_file.exists()
    assert len(json.loads(third.recovery_file.read_text())["model"]["layers"]) == 6
    assert new_window(qtbot, tmp_path, "fourth").files.orphans() == []


def test_every_orphan_is_offered_one_after_another(qtbot, tmp_path, answer, monkeypatch):
    crashed = []
    for name in ("first", "second"):
        window = new_window(qtbot, tmp_path, name)
        window.document.set_project(small_project(name=name), None)
        window.edits.insert("ReLU")
        window.autosave()
        crash(window)
        crashed.append(window)
    offered = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *args, **kwargs: offered.append(args[2]) or QMessageBox.StandardButton.Yes)
    restorer = new_window(qtbot, tmp_path, "restorer")
    assert restorer.offer_recovery()
    assert len(offered) == 2 and "(1 of 2)" in offered[0] and "(2 of 2)" in offered[1]
    names = {restorer.document.project.name} | {w.document.project.name for w in restorer.siblings}
    assert names == {"first", "second"} and len(restorer.siblings) == 1
    for sibling in restorer.siblings:
        qtbot.addWidget(sibling)


def test_a_trained_model_comes_back_when_its_project_is_opened(window, qtbot, tmp_path):
    from guidl.engine.export import TrainedModel

    window.document.set_project(small_project(training__epochs=1), None)
    window.train_action.trigger()
    qtbot.waitUntil(lambda: window.thread is None and window.last_result is not None, timeout=120_000)
    accuracy = window.last_result.evaluation.accuracy
    run = window.run_dir
    # Results names the run it shows: the one just trained, with the project's settings.
    line = window.results.run_line
    assert not line.isHidden() and f"Run <b>{run.name}</b> · finished · started " in line.text()
    assert line.text().endswith(" · the project's settings")
    # Never saved, the project's run stays in reach: File > Open Recent lists its project copy.
    assert window.files.recent()[0] == str(run / "project.guidl.json")
    path = tmp_path / "boring.guidl.json"
    assert window.files.save_to(path)
    for opened in (path, run / "project.guidl.json"):  # the project, and the run's own copy of it
        other = new_window(qtbot, tmp_path, "other")
        assert not other.export_action.isEnabled()
        assert other.open_path(opened)
        qtbot.waitUntil(lambda: other.evaluation.thread is None and other.trainer is not None, timeout=120_000)
        assert other.export_action.isEnabled() and other.evaluate_action.isEnabled()
        assert other.last_result.evaluation.accuracy == accuracy
        assert f"accuracy <b>{accuracy:.2%}</b>" in other.results.headline.text()
        assert run.name in other.status_text.text() and f"{accuracy:.2%}" in other.status_text.text()
        assert other.run_dir == run
    other.export_to(TrainedModel.from_trainer(other.trainer), "safetensors", tmp_path / "weights")
    qtbot.waitUntil(lambda: other._exporter is None, timeout=60_000)
    assert other.last_export.path == tmp_path / "weights.safetensors"


def test_a_stopped_runs_model_comes_back_too(window, qtbot, tmp_path):
    """A run the user stopped wrote its final weights: reopening its project
    must bring that model back as it does a finished one's."""
    from guidl.engine.callbacks import Callback, RunFolder
    from guidl.engine.trainer import TrainControl, Trainer

    path = tmp_path / "boring.guidl.json"
    project = small_project(training__epochs=3)
    spec.save(project, path)
    control = TrainControl()

    class StopAfterOneBatch(Callback):
        def on_train_batch_end(self, trainer, batch, loss):
            control.request_stop()

    run = tmp_path / "runs" / "boring-20260101-120000"
    result = Trainer(project, callbacks=[RunFolder(run, source=path), StopAfterOneBatch()],
                     control=control).fit()
    assert result.stopped and json.loads((run / "run.json").read_text())["status"] == "stopped"
    assert window.open_path(path)
    qtbot.waitUntil(lambda: window.evaluation.thread is None and window.trainer is not None, timeout=120_000)
    assert window.run_dir == run
    assert window.export_action.isEnabled() and window.evaluate_action.isEnabled()


def test_an_edited_model_does_not_take_an_old_runs_weights(window, qtbot, tmp_path):
    window.document.set_project(small_project(training__epochs=1), None)
    window.train_action.trigger()
    qtbot.waitUntil(lambda: window.thread is None and window.last_result is not None, timeout=120_000)
    changed = small_project(training__epochs=1)
    changed.model.layers[1].params["out_features"] = 16  # another model than the one trained
    spec.save(changed, tmp_path / "boring.guidl.json")
    other = new_window(qtbot, tmp_path, "other")
    assert other.open_path(tmp_path / "boring.guidl.json")
    qtbot.waitUntil(lambda: other.evaluation.thread is None, timeout=60_000)
    assert other.trainer is None and not other.export_action.isEnabled()
    assert "run" not in other.status_text.text()  # not tried (and failed) on weights of another shape


def _trained_project(tmp_path) -> tuple[Path, object]:
    """A project file with a finished run in the runs folder beside it."""
    from guidl.engine.callbacks import RunFolder
    from guidl.engine.trainer import Trainer

    project = small_project(training__epochs=1)
    path = tmp_path / "boring.guidl.json"
    spec.save(project, path)
    trainer = Trainer(project, callbacks=[RunFolder(tmp_path / "runs" / "boring-1", source=path)])
    trainer.fit()
    return path, trainer


def test_a_model_that_comes_back_after_another_project_was_opened_is_dropped(window, qtbot, tmp_path):
    path, _ = _trained_project(tmp_path)
    assert window.open_path(path, ask=False)
    assert window.evaluation.running
    window.new_project("mlp")  # before the run's model has come back
    qtbot.waitUntil(lambda: window.jobs.count == 0, timeout=60_000)
    assert window.trainer is None and window.last_result is None and not window.evaluation.running
    assert window.document.project.name == "MLP" and not window.export_action.isEnabled()


def test_a_project_opened_while_torch_loads_gets_its_model_once_torch_is_ready(qtbot, tmp_path, answer):
    from guidl.qt.engine_loader import EngineLoader
    from guidl.qt.main_window import MainWindow

    class SlowEngine(EngineLoader):
        loaded = False

        @property
        def is_ready(self) -> bool:
            return self.loaded

        def start(self) -> None:
            pass

    path, trainer = _trained_project(tmp_path)
    engine = SlowEngine()
    window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat),
                        state_dir=tmp_path / "state", engine=engine)
    qtbot.addWidget(window)
    assert window.open_path(path, ask=False)  # as from the command line, at start-up
    assert window.jobs.count == 0 and window.trainer is None  # nothing waits for torch meanwhile
    engine.loaded = True
    engine.ready.emit()
    qtbot.waitUntil(lambda: window.evaluation.thread is None and window.trainer is not None, timeout=60_000)
    assert window.last_result.evaluation.accuracy == trainer.evaluate("val").accuracy
    assert "boring-1" in window.status_text.text() and window.export_action.isEnabled()


def test_an_orphan_stays_until_its_work_is_autosaved_again(window, tmp_path, qtbot, answer, monkeypatch):
    window.edits.insert("ReLU")
    window.autosave()
    orphan = window.recovery_file
    crash(window)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    write = spec.atomic_write_text
    monkeypatch.setattr(spec, "atomic_write_text", full_disk)
    answer["button"] = QMessageBox.StandardButton.Yes
    reborn = new_window(qtbot, tmp_path, "reborn")
    assert reborn.offer_recovery() and reborn.document.modified
    assert orphan.exists()  # the restored work is on disk nowhere else yet
    monkeypatch.setattr(spec, "atomic_write_text", write)
    answer["button"] = QMessageBox.StandardButton.Discard
    assert len(new_window(qtbot, tmp_path, "later").files.orphans()) == 1


class HeldMeasurement:
    """``evaluate_weights`` held until released: a reopened run's measurement
    that takes its time. Raises ``error`` instead when one is given."""

    def __init__(self, monkeypatch, error: Exception | None = None, calls: int = 1):
        import threading

        from guidl.qt import worker

        self.release = threading.Event()
        self.entered = threading.Event()  # a held measurement has begun
        self.real = worker.evaluate_weights
        self.error = error
        self.held = calls  # the first ``calls`` measurements are held, later ones pass
        monkeypatch.setattr(worker, "evaluate_weights", self)

    def __call__(self, *args, **kwargs):
        if self.held > 0:
            self.held -= 1
            self.entered.set()
            assert self.release.wait(60)
            if self.error is not None:
                raise self.error
        return self.real(*args, **kwargs)


def test_a_run_started_while_the_reopened_model_is_measured_keeps_its_own_results(window, qtbot, tmp_path,
                                                                                  monkeypatch):
    path, _ = _trained_project(tmp_path)
    held = HeldMeasurement(monkeypatch)
    try:
        assert window.open_path(path, ask=False) and window.evaluation.running
        assert window.train_action.isEnabled()  # nobody waits for the measurement
        window.train_action.trigger()
        qtbot.waitUntil(lambda: window.thread is None and window.last_result is not None, timeout=120_000)
        trainer, result, run, status = window.trainer, window.last_result, window.run_dir, window.status_text.text()
        assert run.name != "boring-1" and "Training finished" in status
    finally:
        held.release.set()
    qtbot.waitUntil(lambda: window.jobs.count == 0, timeout=60_000)
    qtbot.wait(50)
    assert window.trainer is trainer and window.last_result is result and window.run_dir == run
    assert window.status_text.text() == status and window.results.headline.text()


def test_a_measurement_that_fails_after_another_project_was_opened_says_nothing_of_it(window, qtbot, tmp_path,
                                                                                      monkeypatch):
    first, _ = _trained_project(tmp_path)
    (tmp_path / "b").mkdir()
    second, trainer = _trained_project(tmp_path / "b")
    held = HeldMeasurement(monkeypatch, error=ValueError("the first project's weights are broken"))
    try:
        assert window.open_path(first, ask=False)
        qtbot.waitUntil(held.entered.is_set, timeout=60_000)
        assert window.open_path(second, ask=False)
        qtbot.waitUntil(lambda: window.trainer is not None, timeout=60_000)  # the second's model is back
    finally:
        held.release.set()
    qtbot.waitUntil(lambda: window.jobs.count == 0, timeout=60_000)
    qtbot.wait(50)
    assert "broken" not in window.status_text.text() and "broken" not in window.train_message.text()
    assert "boring-1" in window.status_text.text()
    assert window.last_result.evaluation.accuracy == trainer.evaluate("val").accuracy


def test_an_autosave_this_guidl_cannot_read_is_kept_and_one_that_is_not_json_is_removed(qtbot, tmp_path,
                                                                                         answer):
    folder = tmp_path / "state" / "recovery"
    folder.mkdir(parents=True)
    newer = small_project().to_dict()
    newer["version"] = 999  # written by a newer guidl
    (folder / "newer.guidl.json").write_text(json.dumps(newer))
    (folder / "garbage.guidl.json").write_bytes(b"\x00\x01 not json")
    window = new_window(qtbot, tmp_path, "older")
    assert not window.offer_recovery()
    assert (folder / "newer.guidl.json").exists() and not (folder / "garbage.guidl.json").exists()
    message = window.statusBar().currentMessage()
    assert "kept" in message and "newer than this guidl understands" in message
    # Its lock released: offered again, to a guidl that can read it.
    assert [path.name for path, _ in new_window(qtbot, tmp_path, "newer").files.orphans()] == ["newer.guidl.json"]


def test_a_clean_document_leaves_no_recovery_file(window, qtbot):
    window.edits.insert("ReLU")
    window.autosave()
    assert window.recovery_file.exists()
    window.undo_action.trigger()  # back to the state last saved: nothing to recover
    assert not window.document.modified
    window.autosave()
    assert not window.recovery_file.exists()


def test_a_restored_saved_project_gets_its_trained_model_back(qtbot, tmp_path, answer):
    path, trainer = _trained_project(tmp_path)
    crashed = new_window(qtbot, tmp_path, "crashed")
    assert crashed.open_path(path, ask=False)
    crashed.setup.epochs.setValue(3)  # an edit that leaves the model and its data as trained
    crashed.autosave()
    qtbot.waitUntil(lambda: crashed.jobs.count == 0, timeout=60_000)
    crash(crashed)
    answer["button"] = QMessageBox.StandardButton.Yes
    reborn = new_window(qtbot, tmp_path, "reborn")
    assert reborn.offer_recovery() and reborn.document.path == path
    qtbot.waitUntil(lambda: reborn.evaluation.thread is None and reborn.trainer is not None, timeout=60_000)
    assert reborn.last_result.evaluation.accuracy == trainer.evaluate("val").accuracy


def test_a_project_named_at_start_opens_beside_a_restored_autosave(qtbot, tmp_path, answer):
    from guidl.qt.app import open_at_start

    crashed = new_window(qtbot, tmp_path, "crashed")
    crashed.document.set_project(small_project(name="unsaved work"), None)
    crashed.edits.insert("ReLU")
    crashed.autosave()
    crash(crashed)
    path = tmp_path / "named.guidl.json"
    spec.save(small_project(name="named"), path)
    answer["button"] = QMessageBox.StandardButton.Yes
    window = new_window(qtbot, tmp_path, "started")
    open_at_start(window, path)
    assert window.document.project.name == "unsaved work"
    assert [(w.document.project.name, w.document.path) for w in window.siblings] == [("named", path)]
    for sibling in window.siblings:
        qtbot.addWidget(sibling)


def test_the_export_format_is_the_typed_suffix_else_the_filter():
    from pathlib import Path

    from guidl.qt.controllers.export import EXPORT_FILTERS, export_format

    assert export_format("", Path("model.safetensors")) == "safetensors"
    assert export_format("", Path("model")) == "onnx"
    # Typing model.py under the ONNX filter wrote model.onnx: what the user typed wins.
    assert export_format(EXPORT_FILTERS["onnx"], Path("model.py")) == "python"
    assert export_format(EXPORT_FILTERS["python"], Path("model")) == "python"


def test_an_export_never_replaces_a_file_the_dialog_did_not_ask_about(window, qtbot, tmp_path, monkeypatch):
    """The dialog asks about the name typed; when a suffix is added, the file
    that name then names is only replaced after asking."""
    from PySide6.QtWidgets import QFileDialog

    from guidl.qt.controllers import export as export_module

    window.session.trainer = object()  # a trained model to export (never built: the export is faked)
    monkeypatch.setattr("guidl.engine.export.TrainedModel.from_trainer",
                        classmethod(lambda cls, trainer: object()))
    monkeypatch.setattr("guidl.engine.export.default_filename", lambda model, fmt: "model.onnx")
    existing = tmp_path / "model.py"
    existing.write_text("kept")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(
        lambda *args, **kwargs: (str(tmp_path / "model"), export_module.EXPORT_FILTERS["python"])))
    asked, exported = [], []
    monkeypatch.setattr(export_module.QMessageBox, "question", staticmethod(
        lambda *args, **kwargs: asked.append(args[2]) or export_module.QMessageBox.StandardButton.No))
    monkeypatch.setattr(window.exports, "export_to", lambda model, fmt, path: exported.append((fmt, path)))
    window.exports.export_dialog()
    assert asked == ["model.py exists. Replace it?"] and exported == []
    assert existing.read_text() == "kept"
