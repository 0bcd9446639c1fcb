"""The project's name: asked about by it, taken from the file on Save As,
and renamed in the window as an undoable edit."""

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from guidl import spec
from helpers import small_project
from qt_helpers import type_text


def test_the_unsaved_changes_question_names_the_project(window, answer):
    window.document.set_project(spec.Project(), None)
    window.edits.insert("Flatten")
    answer["button"] = QMessageBox.StandardButton.Cancel
    assert not window.files.maybe_save()
    assert answer["asked"] == ("Unsaved changes", "Save the changes to “Untitled”?")


def test_the_unsaved_changes_question_names_a_saved_projects_file(window, answer, tmp_path):
    path = tmp_path / "moons.guidl.json"
    spec.save(small_project(), path)
    window.open_path(path, ask=False)
    window.edits.insert("Flatten")
    answer["button"] = QMessageBox.StandardButton.Cancel
    window.files.maybe_save()
    assert answer["asked"][1] == "Save the changes to “moons.guidl.json”?"


def _save_as(window, monkeypatch, path: Path) -> None:
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(path), ""))
    assert window.files.save_as()


def test_save_as_names_an_untitled_project_after_its_file(window, monkeypatch, tmp_path):
    window.document.set_project(small_project(name="Untitled"), None)
    _save_as(window, monkeypatch, tmp_path / "moons.guidl.json")
    assert window.document.project.name == "moons"
    assert spec.load(tmp_path / "moons.guidl.json").name == "moons"
    assert not window.document.modified
    assert window.training._new_run_dir().name.startswith("moons-")  # runs and exports take the name


def test_save_as_keeps_a_name_the_user_gave(window, monkeypatch, tmp_path):
    window.document.set_project(small_project(name="Digits MLP"), None)
    _save_as(window, monkeypatch, tmp_path / "copy.guidl.json")
    assert window.document.project.name == "Digits MLP"


def test_the_project_is_renamed_in_the_window_as_an_undoable_edit(window, qtbot):
    window.document.set_project(small_project(name="Untitled"), None)
    field = window.project_name
    assert field.text() == "Untitled"
    type_text(qtbot, field, "Moons", enter=False)
    assert window.document.project.name == "Untitled"  # still typing
    qtbot.keyClick(field, Qt.Key.Key_Return)
    assert window.document.project.name == "Moons"
    assert window.document.undo_stack.undoText() == "Rename the project"
    assert window.windowTitle().startswith("Moons (unsaved)")
    assert window.training._new_run_dir().name.startswith("Moons-")
    window.undo_action.trigger()
    assert window.document.project.name == "Untitled" and field.text() == "Untitled"


def test_an_empty_name_is_refused_in_place_and_keeps_train_waiting(window, qtbot):
    type_text(qtbot, window.project_name, "   ")
    assert window.document.project.name == "MNIST CNN"
    assert window.model_tab.name_field.note.isVisibleTo(window)
    assert not window.train_action.isEnabled()
    assert window.train_action.toolTip().startswith("Cannot train: name: a project needs a name")
    type_text(qtbot, window.project_name, "MNIST small")
    assert window.document.project.name == "MNIST small" and window.train_action.isEnabled()
