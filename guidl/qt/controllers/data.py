"""Loading the project's data in the background for the Data tab's preview
(and for training, which takes the loaded data rather than loading it again)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QMainWindow

from ..jobs import Task


class DataController(QObject):
    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self.window = window
        self.thread = None  # the loading running in the background
        self.wanted = False  # Load Data was asked for before torch was ready
        self.shown_key: str | None = None  # the data settings the Data tab's preview shows
        # The preview follows the document: other data settings (another
        # project, another dataset) and it no longer shows the project's data.
        window.document.changed.connect(self._follow_document)
        window.document.project_replaced.connect(self._project_replaced)
        self._loading_key: str | None = None

    def cached_data(self):
        """The project's data, when it has been loaded with the current settings."""
        return self.window.session.cached_data(self.window.document.data_key())

    @Slot()
    def load_data(self) -> None:
        window = self.window
        if self.thread is not None:
            return
        if window.engine.error:
            window.data_panel.show_error(window.engine.error)
            return
        if not window.engine.is_ready:
            self.wanted = True
            window.data_panel.show_loading()
            window.status_text.setText("Loading PyTorch…")
            return
        from ..worker import prepare_shared

        key = window.document.data_key()
        cached = self.cached_data()
        if cached is not None:
            self._loaded((key, cached))
            return
        project = window.document.project.copy()
        problems = window.document.project_problems()  # the copy holds the same project
        if problems:
            window.data_panel.show_error("; ".join(str(p) for p in problems))
            self.shown_key = key
            return
        window.data_panel.show_loading()
        window.status_text.setText("Loading data…")
        self._loading_key = key
        task = Task(lambda: (key, prepare_shared(project)))
        task.done.connect(self._loaded)
        task.error.connect(self._failed)
        self.thread = window.jobs.start(task, self._thread_finished)

    def engine_ready(self) -> None:
        if self.wanted:
            self.wanted = False
            self.load_data()

    def engine_failed(self, message: str) -> None:
        if self.wanted:
            self.wanted = False
            self.window.data_panel.show_error(message)

    @Slot()
    def _follow_document(self) -> None:
        if self.shown_key is not None and self.shown_key != self.window.document.data_key():
            self._project_replaced()

    @Slot()
    def _project_replaced(self) -> None:
        if self.shown_key is not None:
            self.shown_key = None
            self.window.data_panel.clear_preview()

    @Slot()
    def _thread_finished(self) -> None:
        self.thread = None

    @Slot(object)
    def _loaded(self, loaded) -> None:
        window = self.window
        key, data = loaded
        window.session.keep_data(key, data)
        window.status_text.setText("")
        if key != window.document.data_key():
            window.data_panel.clear_preview()  # no "Loading…" left behind
            window.data_panel.load_button.setEnabled(True)
            return  # the project changed while loading: keep the data, show nothing stale
        window.data_panel.show_data(data)
        self.shown_key = key
        window.document.set_data_info(data.info, key)

    @Slot(str)
    def _failed(self, message: str) -> None:
        window = self.window
        window.status_text.setText("")
        if self._loading_key != window.document.data_key():  # said of settings no longer the project's
            window.data_panel.clear_preview()
            window.data_panel.load_button.setEnabled(True)
            return
        window.data_panel.show_error(message)
        self.shown_key = self._loading_key
        self.window.show_tab("data")
