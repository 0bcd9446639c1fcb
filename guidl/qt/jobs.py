"""Work off the GUI thread: a ``Task`` runs one function in its own thread,
``Jobs`` keeps every such thread and its worker alive until it has ended.

Nothing here imports torch: a task may import the engine inside its
function, which then waits for the background import without holding up
the window (see ``engine_loader``).
"""

from __future__ import annotations

import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from ..spec import ProjectError


def error_message(error: BaseException) -> str:
    """The one line a task's failure is shown with; a traceback is printed
    only for errors guidl did not foresee."""
    from ..engine.data import DatasetError
    from ..engine.trainer import TrainingError, describe_error

    if isinstance(error, (ProjectError, DatasetError, TrainingError)):
        return describe_error(error)
    if isinstance(error, ValueError):  # ExportError, PredictError: their messages say it all
        return str(error)
    traceback.print_exc()
    return describe_error(error)


class Task(QObject):
    """Runs ``function()`` in its own thread; ``done(result)`` or ``error(message)``."""

    done = Signal(object)
    error = Signal(str)

    def __init__(self, function: Callable[[], Any]):
        super().__init__()
        self.function = function

    @Slot()
    def run(self) -> None:
        try:
            self.done.emit(self.function())
        except Exception as error:  # noqa: BLE001 - shown in place, never a crash
            self.error.emit(error_message(error))


class Jobs(QObject):
    """Runs workers in their own threads and keeps both alive until the thread
    has ended. A QObject whose Python wrapper is collected while its thread
    still runs is deleted under that thread's feet, so the references are
    dropped only here, on the GUI thread, after the thread finished."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._running: dict[QThread, QObject] = {}

    def start(self, worker: QObject, on_finished: Callable[[], None] | None = None) -> QThread:
        """Move ``worker`` to a new thread and call its ``run``; the thread ends
        when the worker emits ``finished``, ``failed``, ``done`` or ``error``.
        ``on_finished`` (a slot) runs on the GUI thread once the thread is over."""
        thread = QThread()
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        for name in ("finished", "failed", "done", "error"):
            signal = getattr(worker, name, None)
            if signal is not None:
                # Direct: QThread.quit is thread-safe, and a queued call would wait
                # for a GUI thread that may itself be waiting for this thread.
                signal.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.finished.connect(self._finished)
        if on_finished is not None:
            thread.finished.connect(on_finished)  # connected before start: no race
        self._running[thread] = worker
        thread.start()
        return thread

    def wait_all(self, timeout_s: float = 60.0) -> bool:
        """Wait for every thread to end, keeping the GUI alive; True when all did."""
        deadline = time.monotonic() + timeout_s
        while any(t.isRunning() for t in self._running) and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            for thread in list(self._running):
                thread.wait(20)
        QCoreApplication.processEvents()
        return not any(t.isRunning() for t in self._running)

    @Slot()
    def _finished(self) -> None:
        thread = self.sender()
        if isinstance(thread, QThread) and thread in self._running:
            thread.wait()
            del self._running[thread]

    @property
    def count(self) -> int:
        return len(self._running)
