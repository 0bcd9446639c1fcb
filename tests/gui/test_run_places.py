"""Where the window's runs go: the app's data folder (once "guidl"), beside a
saved project, and never inside a run folder."""

from pathlib import Path

from guidl import spec
from guidl.engine.callbacks import RunFolder
from guidl.engine.trainer import Trainer
from guidl.qt.main_window import data_folder
from helpers import small_project


def test_the_windows_data_folder_names_guidl_once(qapp, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    names = qapp.applicationName(), qapp.organizationName()
    qapp.setApplicationName("guidl")  # as guidl.qt.app sets them
    qapp.setOrganizationName("guidl")
    try:
        assert data_folder() == tmp_path / "guidl"  # Qt's AppDataLocation said guidl/guidl
    finally:
        qapp.setApplicationName(names[0])
        qapp.setOrganizationName(names[1])


def test_an_unsaved_projects_runs_go_to_the_state_folder(window):
    window.document.set_project(small_project(), None)
    run = window.training._new_run_dir()  # what Train claims
    assert run.parent == window.state_dir / "runs" and run.name.startswith("boring-")


def test_a_saved_projects_runs_go_beside_it(window, tmp_path):
    path = tmp_path / "work" / "boring.guidl.json"
    path.parent.mkdir()
    spec.save(small_project(), path)
    assert window.open_path(path, ask=False)
    assert window.training._new_run_dir().parent == tmp_path / "work" / "runs"


def test_a_project_opened_from_a_run_folder_trains_beside_that_run(window, qtbot, tmp_path):
    runs = tmp_path / "runs"
    Trainer(small_project(training__epochs=1), callbacks=[RunFolder(runs / "boring-1")]).fit()
    assert window.open_path(runs / "boring-1" / "project.guidl.json", ask=False)
    qtbot.waitUntil(lambda: window.evaluation.thread is None, timeout=60_000)  # its model, reopened
    window.train_action.trigger()
    qtbot.waitUntil(lambda: window.thread is None, timeout=60_000)
    assert window.run_dir.parent == runs  # not runs/boring-1/runs/...
    assert not (runs / "boring-1" / "runs").exists()
    assert Path(window.run_dir, "model.safetensors").exists()
