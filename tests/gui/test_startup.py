"""The window is usable before torch has loaded, and says so."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

from guidl import spec
from guidl.examples import example_path
from guidl.qt.engine_loader import EngineLoader


class SlowEngine(EngineLoader):
    """An engine whose import finishes when the test says so."""

    def __init__(self):
        super().__init__()
        self.loaded = False
        self.started = False

    @property
    def is_ready(self) -> bool:
        return self.loaded

    def start(self) -> None:
        self.started = True

    def finish(self) -> None:
        self.loaded = True
        self.ready.emit()


def test_the_window_edits_while_torch_loads_then_catches_up(qtbot, tmp_path, answer):
    from PySide6.QtCore import QSettings

    from guidl.qt.main_window import MainWindow

    engine = SlowEngine()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, state_dir=tmp_path / "state", engine=engine)
    qtbot.addWidget(window)
    window.document.set_project(spec.load(example_path("mnist_cnn")), None)
    window.show()
    qtbot.waitUntil(lambda: engine.started)  # asked for once the window was painted
    # Loading: no shapes yet, Train says why it waits, editing works.
    assert window.document.report is None
    assert "PyTorch is still loading" in window.train_action.toolTip()
    assert not window.train_action.isEnabled()
    assert window.status_text.text() == "Loading PyTorch…" and window.progress.isVisible()
    assert "as soon as PyTorch has loaded" in window.summary.text()
    assert [window.setup.device.itemData(i) for i in range(window.setup.device.count())] == ["auto", "cpu"]
    window.edits.insert("ReLU")
    assert window.document.project.model.layers[-1].type == "ReLU"
    window.load_data()
    assert window.jobs.count == 0  # waits for torch instead of blocking the window

    engine.finish()
    # Ready: shapes and counts appear, the devices are listed, the data asked for loads.
    report = window.document.report
    assert report is not None and report.total_params == 693_962
    assert "693,962" in window.summary.text()
    assert window.train_action.isEnabled()
    assert window.setup.device.findData("cpu") >= 0
    qtbot.waitUntil(lambda: window.cached_data() is not None, timeout=60_000)
    assert window.data_panel.isEnabled()


def test_the_collector_runs_on_the_gui_thread(qtbot, garbage_on_the_gui_thread):
    assert not gc.isenabled()

    class Cycle:
        pass

    for _ in range(5_000):
        a, b = Cycle(), Cycle()
        a.other, b.other = b, a
    assert gc.get_count()[0] > gc.get_threshold()[0]
    qtbot.waitUntil(lambda: gc.get_count()[0] < gc.get_threshold()[0], timeout=3_000)


def test_the_real_app_shows_its_window_and_loads_torch_behind_it(tmp_path):
    report = tmp_path / "startup.json"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "GUIDL_STARTUP_REPORT": str(report),
           "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "guidl"], env=env, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    stamps = json.loads(report.read_text())
    assert stamps["paint"] <= stamps["shown"] <= stamps["engine_ready"]


class BrokenEngine(SlowEngine):
    """torch cannot be imported at all."""

    def fail(self) -> None:
        self.error = "PyTorch could not be loaded (ImportError: no torch)."
        self.failed.emit(self.error)


def _slow_window(qtbot, tmp_path, engine):
    from PySide6.QtCore import QSettings

    from guidl.qt.main_window import MainWindow

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, state_dir=tmp_path / "state", engine=engine)
    qtbot.addWidget(window)
    window.document.set_project(spec.load(example_path("mnist_cnn")), None)
    window.show()
    return window


def test_without_torch_the_window_says_so_and_nothing_waits_forever(qtbot, tmp_path, answer):
    engine = BrokenEngine()
    window = _slow_window(qtbot, tmp_path, engine)
    window.load_data()  # asked for while loading...
    engine.fail()
    # ...and answered once loading failed: the data panel shows why, not "Loading…".
    assert "no torch" in window.data_panel.message.text()
    assert window.data_panel.load_button.isEnabled()
    assert "no torch" in window.model_message.text()
    assert "PyTorch" in window.train_action.toolTip() and not window.train_action.isEnabled()
    window.load_data()
    assert "no torch" in window.data_panel.message.text()


def test_a_bundle_from_the_command_line_gives_way_to_the_users_own_choice(qtbot, tmp_path, answer):
    engine = SlowEngine()
    window = _slow_window(qtbot, tmp_path, engine)
    window.open_when_ready(tmp_path / "trained.guidl")
    window.new_project("mlp")  # the user chose something else meanwhile
    engine.finish()
    assert window.document.project.name == "MLP" and window.bundle is None
