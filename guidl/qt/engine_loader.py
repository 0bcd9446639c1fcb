"""Importing PyTorch while the window is already on screen.

Importing torch takes several seconds, far longer than building the window.
``EngineLoader`` imports the engine in a background thread and says when it
is ready; until then the window edits projects (the project file and the
catalogues need no torch) and shows that shapes, data and training wait for
PyTorch. Code that runs in a worker thread may simply import the engine: the
import waits for the loader's without holding up the GUI.
"""

from __future__ import annotations

import gc
import sys
import threading
import time

from PySide6.QtCore import QObject, Signal

#: What the window needs from the engine, heaviest first.
ENGINE_MODULES = ("torch", "guidl.engine.build", "guidl.engine.data", "guidl.engine.trainer",
                  "guidl.engine.callbacks", "guidl.qt.worker")


def engine_loaded() -> bool:
    """True once every engine module has been imported (by anyone)."""
    return all(name in sys.modules for name in ENGINE_MODULES)


class EngineLoader(QObject):
    """``ready`` (on the GUI thread) once the engine is importable without
    waiting; ``failed(message)`` when torch cannot be imported at all."""

    ready = Signal()
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.seconds: float | None = None  # how long the import took
        self._done = False

    @property
    def is_ready(self) -> bool:
        return self._done or (self._thread is None and engine_loaded())

    def start(self) -> None:
        """Begin importing; ``ready`` is emitted even when the engine was already loaded."""
        if self._thread is not None:
            return
        if engine_loaded():
            self._done = True
        # A daemon thread: closing the window at once must not wait for torch.
        self._thread = threading.Thread(target=self._run, name="guidl-import-engine", daemon=True)
        self._thread.start()

    def wait(self, timeout_s: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.is_ready

    def _run(self) -> None:
        import importlib

        started = time.perf_counter()
        try:
            for name in ENGINE_MODULES:
                importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - a broken install is shown, not raised
            self.error = (f"PyTorch could not be loaded ({type(error).__name__}: "
                          f"{str(error).splitlines()[0] if str(error) else ''}). Editing works; "
                          "data, shapes and training need a working torch install "
                          "(pip install 'torch>=2.4,<2.15').")
            self._emit(self.failed, self.error)
            return
        from ..engine.training_process import warm_engine

        warm_engine()  # what torch imports on first use, here rather than on the GUI thread
        # torch leaves about a million long-lived objects: moved out of the
        # collector's sight, a full collection no longer walks them all
        # (which held the interpreter for a tenth of a second and more).
        gc.freeze()
        self.seconds = time.perf_counter() - started
        self._done = True
        self._emit(self.ready)
        _start_training_server()

    @staticmethod
    def _emit(signal, *args) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the loader was deleted with its window meanwhile
            pass


def _start_training_server() -> None:
    """Launch the process that training runs are forked from (it imports
    torch on its own, in the background), so that the first Train starts at
    once."""
    try:
        from ..engine.training_process import warm_up

        warm_up()
    except Exception:  # noqa: BLE001 - the first run starts it, or trains in this process
        pass
