"""Projects: save and reopen, recent files, bad files, autosave and recovery."""

import json

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from guidl import spec


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
    from guidl.qt.main_window import MainWindow

    answer["button"] = QMessageBox.StandardButton.Yes
    reborn = MainWindow(settings=QSettings(str(tmp_path / "s2.ini"), QSettings.Format.IniFormat),
                        state_dir=tmp_path / "state")
    qtbot.addWidget(reborn)
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
