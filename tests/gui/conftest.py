import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from guidl import spec
from guidl.examples import example_path


@pytest.fixture
def answer(monkeypatch):
    """Answer every question box with the given button (no modal dialogs in tests)."""
    answers = {"button": QMessageBox.StandardButton.Discard}

    def question(*args, **kwargs):
        answers["asked"] = args[1:3]
        return answers["button"]

    monkeypatch.setattr(QMessageBox, "question", question)
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: answers.setdefault("warned", a[1:3]))
    return answers


@pytest.fixture
def window(qtbot, tmp_path, answer):
    from guidl.qt.main_window import MainWindow

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings, state_dir=tmp_path / "state")
    qtbot.addWidget(win)
    win.document.set_project(spec.load(example_path("mnist_cnn")), None)
    win.show()
    yield win
    if win.thread is not None:
        win.shutdown_training()
