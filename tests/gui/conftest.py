import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from guidl import spec
from guidl.examples import example_path
from guidl.qt.engine_loader import ENGINE_MODULES

# The window imports torch in the background; tests want it ready at once
# (test_startup.py covers the window while torch is still loading).
for _name in ENGINE_MODULES:
    __import__(_name)


@pytest.fixture(scope="session", autouse=True)
def garbage_on_the_gui_thread(qapp):
    """As in the app: Qt objects are collected on the GUI thread only
    (collected in a worker thread, they can deadlock against it)."""
    from guidl.qt.app import MainThreadGarbageCollector

    collector = MainThreadGarbageCollector(qapp)
    yield collector
    collector.stop()


@pytest.fixture(autouse=True)
def no_garbage_between_tests(garbage_on_the_gui_thread):
    """Each test starts with the collector off and leaves no Qt garbage for
    the next test's worker threads to find."""
    import gc

    gc.disable()
    yield
    gc.collect()


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
