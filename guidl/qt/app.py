"""Starting the desktop application."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QApplication

from .theme import apply_theme


class MainThreadGarbageCollector(QObject):
    """Runs Python's cyclic garbage collector on the GUI thread only.

    Left automatic, the collector runs in whichever thread happens to
    allocate: a worker thread may then destroy a Qt object and wait for a Qt
    lock that the GUI thread holds while it waits for the interpreter, and
    both hang. Automatic collection is switched off and done here on a timer,
    generation by generation with the interpreter's own thresholds.
    """

    def __init__(self, parent: QObject | None = None, interval_ms: int = 500):
        super().__init__(parent)
        gc.disable()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.collect)
        self.timer.start()

    @Slot()
    def collect(self) -> None:
        if gc.isenabled():  # some library switched it back on (extension modules may)
            gc.disable()
        counts, thresholds = gc.get_count(), gc.get_threshold()
        for generation in (2, 1, 0):  # the oldest due generation collects the younger ones too
            if counts[generation] > thresholds[generation]:
                gc.collect(generation)
                return

    def stop(self) -> None:
        self.timer.stop()
        gc.enable()


def create_app(argv: list[str] | None = None) -> QApplication:
    # Qt's raster painter hands large fills and image draws to a pool of
    # threads and waits for them. While a model trains on the other cores,
    # those threads wait for a core, and the window with them (15% of the GUI
    # thread's time was spent so while the MLP trained): it paints alone.
    os.environ.setdefault("QT_NO_GUI_THREADPOOL", "1")
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("guidl")
    app.setOrganizationName("guidl")
    app.setApplicationDisplayName("guidl")
    app.setDesktopFileName("guidl")
    app.setStyle("Fusion")
    if app.findChild(MainThreadGarbageCollector) is None:
        MainThreadGarbageCollector(app)
    return app


def main(project: str | None = None) -> int:
    """Open the main window with ``project`` (a path), or with the MNIST CNN
    example on the offline ``mnist_sample`` data.

    The window is shown before PyTorch is imported: the import runs in the
    background (``EngineLoader``) and the window says when it is ready.
    """
    app = create_app()
    from .engine_loader import EngineLoader
    from .icons import icon
    from .main_window import MainWindow, default_settings

    engine = EngineLoader()  # the window starts it once it is on screen
    app.setWindowIcon(icon("guidl"))
    apply_theme(app, str(default_settings().value("view/theme", "system")))
    window = MainWindow(engine=engine)
    report = os.environ.get("GUIDL_STARTUP_REPORT")
    if report:
        _report_startup(app, window, engine, Path(report))
    window.show()

    open_at_start(window, Path(project) if project else None)
    status = app.exec()
    # Closed while torch was still loading: the interpreter must not shut down
    # under the import (torch's threads abort the process then).
    engine.wait()
    return status


def open_at_start(window, project: Path | None) -> None:
    """What a new window opens: the autosaves a crash left (offered), and the
    project named on the command line, in a window of its own when an
    autosave was restored; else the MNIST CNN example."""
    from .. import spec
    from ..examples import DEFAULT, example_path

    restored = window.offer_recovery()
    if project is None:
        if not restored:
            window.document.set_project(spec.load(example_path(DEFAULT)), None)
        return
    target = window.files.new_window() if restored else window
    if project.suffix == ".guidl" and not target.engine.is_ready:
        # A bundle holds weights, which need torch: it opens once torch is
        # loaded, with the window already on screen.
        target.document.set_project(spec.load(example_path(DEFAULT)), None)
        target.open_when_ready(project)
    elif not target.open_path(project, ask=False):  # said in a message box
        if restored:
            target.close()
        else:
            window.document.set_project(spec.load(example_path(DEFAULT)), None)


def _report_startup(app: QApplication, window, engine, path: Path) -> None:
    """For ``benchmarks/startup.py``: write when the window was first painted
    and when the engine was ready (``time.time()`` stamps), then quit."""
    import json
    import time

    from PySide6.QtCore import QEvent, QObject, QTimer, Slot

    class Probe(QObject):
        def __init__(self, parent) -> None:
            super().__init__(parent)
            self.stamps: dict[str, float] = {}

        def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Paint and not self.stamps:
                self.stamps["paint"] = time.time()
                QTimer.singleShot(0, self, self.painted)  # after the whole frame
            return False

        @Slot()
        def painted(self) -> None:
            self.stamps["shown"] = time.time()
            if engine.is_ready:
                self.engine_ready()
            else:
                engine.ready.connect(self.engine_ready)
                engine.failed.connect(self.engine_ready)

        @Slot()
        @Slot(str)
        def engine_ready(self, error: str | None = None) -> None:
            self.stamps["engine_ready"] = time.time()
            if error:
                self.stamps["error"] = error
            path.write_text(json.dumps(self.stamps), encoding="utf-8")
            QTimer.singleShot(0, app.quit)

    probe = Probe(window)
    window.installEventFilter(probe)
