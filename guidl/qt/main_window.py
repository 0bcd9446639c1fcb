"""The main window: palette, model, data, training with live charts, and
results, with the menus, toolbar and status bar around them.

The window builds the widgets and wires the controllers together; what the
window does lives in the controllers (``guidl.qt.controllers``): files and
recovery, data, training, evaluation and export, with the session they share.
"""

from __future__ import annotations

import platform
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QObject, QSettings, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent
from PySide6.QtWidgets import (
    QApplication, QDockWidget, QFrame, QLabel, QMainWindow, QMenu, QMessageBox, QProgressBar, QScrollArea, QSplitter,
    QTabWidget, QToolBar, QVBoxLayout, QWidget,
)
from shiboken6 import isValid

from .. import __version__
from ..examples import examples
from .block_editor import BlockEditors
from .charts import TrainingCharts
from .controllers.actions import MENUS, WindowState, build_actions, fill_menus, update_actions
from .controllers.data import DataController
from .controllers.evaluation import EvaluationController
from .controllers.export import ExportController
from .controllers.files import FilesController
from .controllers.graph import GraphController
from .controllers.pretrained import PretrainedController
from .controllers.runs import RunsController
from .controllers.session import Session
from .controllers.sweeps import SweepsController
from .controllers.training import TrainingController
from .controllers.writing import WritingController
from .document import LayerEdits, ProjectDocument
from .engine_loader import EngineLoader
from .icons import icon
from .jobs import Jobs
from .model_tab import ModelTab
from .palette import LayerPalette
from .panels import DataPanel, TrainingSetup, message_label
from .results import ResultsPanel
from .samples_view import SamplesView
from .theme import apply_theme
from .write_panel import WritePanel


def default_settings() -> QSettings:
    return QSettings("guidl", "guidl")


def data_folder() -> Path:
    """The window's own files (autosaves, the runs of unsaved projects):
    guidl's per-user data folder, the one that holds its datasets
    (``~/.local/share/guidl`` on Linux). Not Qt's AppDataLocation, which adds
    the organization to the application's name: ``guidl/guidl``."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("guidl", appauthor=False))


def _forward(owner: str, name: str) -> property:
    """An attribute of the window that lives on one of its controllers."""
    return property(lambda self: getattr(getattr(self, owner), name),
                    lambda self, value: setattr(getattr(self, owner), name, value))


class _FirstPaint(QObject):
    """Calls ``then`` once, just after ``window`` has first been painted."""

    def __init__(self, window: QWidget, then) -> None:
        super().__init__(window)
        self.then = then
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Paint:
            watched.removeEventFilter(self)
            QTimer.singleShot(0, self, self._run)
        return False

    @Slot()
    def _run(self) -> None:
        self.then()


class MainWindow(QMainWindow):
    # What the controllers hold, reachable from the window as before.
    trainer = _forward("session", "trainer")
    last_result = _forward("session", "last_result")
    bundle = _forward("session", "bundle")
    run_dir = _forward("session", "run_dir")
    worker = _forward("training", "worker")
    thread = _forward("training", "thread")
    close_timeout_s = _forward("training", "close_timeout_s")
    start_training = _forward("training", "start")
    shutdown_training = _forward("training", "shutdown")
    load_data = _forward("data", "load_data")
    cached_data = _forward("data", "cached_data")
    _evaluator = _forward("evaluation", "thread")
    export_to = _forward("exports", "export_to")
    last_export = _forward("exports", "last_export")
    _exporter = _forward("exports", "thread")
    new_project = _forward("files", "new_project")
    open_path = _forward("files", "open_path")
    open_when_ready = _forward("files", "open_when_ready")
    _save_to = _forward("files", "save_to")
    _recent = _forward("files", "recent")
    autosave = _forward("files", "autosave")
    recovery_file = _forward("files", "recovery_file")
    offer_recovery = _forward("files", "offer_recovery")

    def __init__(self, settings: QSettings | None = None, state_dir: Path | None = None,
                 engine: EngineLoader | None = None):
        super().__init__()
        self.settings = settings or default_settings()
        self.state_dir = Path(state_dir) if state_dir else data_folder()
        # PyTorch may still be loading: until it is, shapes, data and training wait.
        self.engine = engine or EngineLoader(self)
        self.document = ProjectDocument(self, engine_ready=lambda: self.engine.is_ready)
        self.edits = LayerEdits(self.document)
        self.devices: list[str] = []  # found once torch is loaded
        self.session = Session()
        self.siblings: list[MainWindow] = []  # windows opened from this one (restored autosaves)
        self.jobs = Jobs(self)
        self.setWindowIcon(icon("guidl"))
        self.setAcceptDrops(False)
        self._build_widgets()
        self.files = FilesController(self)
        self.data = DataController(self)
        self.training = TrainingController(self)
        self.evaluation = EvaluationController(self)
        self.exports = ExportController(self)
        self.writing = WritingController(self)
        self.graph_edits = GraphController(self)
        self.pretrained = PretrainedController(self)
        self.runs = RunsController(self)  # the Runs tab
        self.sweeps = SweepsController(self)  # sweeps, races and watched studies (guidl sweep processes)
        self.block_editors = BlockEditors(self)
        # A block editor edits a block of the network shown: another network, other blocks.
        self.document.network_changed.connect(self._close_block_editors)
        self._build_actions()
        self.document.changed.connect(self._sync)
        self.document.field_problems_changed.connect(self.update_actions)
        self.document.edit_refused.connect(lambda text: self.statusBar().showMessage(text, 10_000))
        self.document.path_changed.connect(self.update_title)
        self.document.undo_stack.cleanChanged.connect(self.update_title)
        self.resize(1400, 880)
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        self._sync()
        self.update_title()
        self.engine.ready.connect(self.on_engine_ready)
        self.engine.failed.connect(self._engine_failed)
        if self.engine.is_ready:
            self.on_engine_ready()
        else:
            self.status_text.setText("Loading PyTorch…")
            self.progress.setRange(0, 0)
            self.progress.show()
            # Import torch once the window is on screen: the import holds the
            # interpreter much of the time and would slow the first paint.
            self._first_paint = _FirstPaint(self, self.engine.start)
            # A window that is never exposed (another workspace) loads it anyway.
            QTimer.singleShot(3000, self, self.engine.start)

    def engine_now(self, title: str) -> bool:
        """PyTorch loaded now, for work that cannot wait for the background
        import (a bundle's weights, a weights file): False, said in a box
        titled ``title``, when it cannot load."""
        if self.engine.is_ready:
            return True
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            self.engine.start()
            self.engine.wait()
        finally:
            QApplication.restoreOverrideCursor()
        if self.engine.error:
            QMessageBox.warning(self, title, self.engine.error)
            return False
        self.on_engine_ready()
        return True

    @Slot()
    def on_engine_ready(self) -> None:
        """PyTorch is loaded: find the devices, work out the shapes, open and
        load what was asked for meanwhile."""
        from ..engine.trainer import available_devices

        if self.devices:
            return  # already done
        self.devices = available_devices()
        self.setup.set_devices(self.devices)
        if not self.training.running:
            self.progress.hide()
            self.status_text.setText("")
        self.document.refresh()
        self.files.engine_ready()
        self.data.engine_ready()
        self.evaluation.engine_ready()

    @Slot(str)
    def _engine_failed(self, message: str) -> None:
        self.progress.hide()
        self.status_text.setText("PyTorch could not be loaded")
        self.model_tab.show_engine_error(message)
        self.data.engine_failed(message)
        self.files.engine_failed(message)
        self.update_actions()

    # -- construction ---------------------------------------------------------------------

    def _build_widgets(self) -> None:
        self.palette_widget = LayerPalette(self.document)
        self.palette_widget.layer_requested.connect(self._append_layer)
        self.palette_dock = QDockWidget("Layers", self)
        self.palette_dock.setObjectName("palette")
        self.palette_dock.setWidget(self.palette_widget)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.palette_dock)

        self.model_tab = ModelTab(self.document, self.edits, lambda: self.engine.is_ready)
        for name in ("stack", "project_name", "input_shape", "summary", "model_message", "properties",
                     "layer_help", "layer_form", "layer_message"):
            setattr(self, name, getattr(self.model_tab, name))
        self.stack.layer_selected.connect(self.update_actions)
        #: The graph canvas of the Model tab (None in a window without one).
        self.canvas = getattr(self.model_tab, "canvas", None)

        self.data_panel = DataPanel(self.document)
        self.data_panel.load_requested.connect(lambda: self.data.load_data())

        # Train tab: the set-up on the left, the live charts on the right.
        self.setup = TrainingSetup(self.document)
        # Choosing a task may add or replace networks and set the loss: the status bar says what.
        self.setup.task.task_changed.connect(lambda text: self.statusBar().showMessage(text, 20_000))
        setup_scroll = QScrollArea()
        setup_scroll.setWidgetResizable(True)
        setup_scroll.setWidget(self.setup)
        setup_scroll.setMaximumWidth(420)
        self.charts = TrainingCharts()
        self.train_message = message_label()
        charts_holder = QWidget()
        charts_layout = QVBoxLayout(charts_holder)
        charts_layout.addWidget(self.train_message)
        # A generating model's samples beside the charts (hidden for other tasks).
        self.samples_view = SamplesView()
        self.samples_view.hide()
        charts_split = QSplitter(Qt.Orientation.Horizontal)
        charts_split.addWidget(self.charts)
        charts_split.addWidget(self.samples_view)
        charts_split.setSizes([520, 480])
        charts_layout.addWidget(charts_split, 1)
        train_tab = QSplitter(Qt.Orientation.Horizontal)
        train_tab.addWidget(setup_scroll)
        train_tab.addWidget(charts_holder)
        train_tab.setSizes([400, 900])

        self.results = ResultsPanel()
        self.write_panel = WritePanel()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tab_pages = {"model": self.model_tab, "data": self.data_panel, "train": train_tab,
                          "results": self.results, "write": self.write_panel}
        for name, page in self.tab_pages.items():
            self.tabs.addTab(page, name.capitalize())
        self.tabs.setTabVisible(self.tabs.indexOf(self.write_panel), False)  # text generation only
        self.setCentralWidget(self.tabs)

        status = self.statusBar()
        self.status_text = QLabel()
        # Framed, so a long temporary message beside it never reads as one sentence with it.
        self.status_text.setFrameShape(QFrame.Shape.StyledPanel)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setTextVisible(True)
        self.progress.hide()
        status.addPermanentWidget(self.status_text)
        status.addPermanentWidget(self.progress)

    def _build_actions(self) -> None:
        self.actions = build_actions(self, {"stack": self.stack, "model": self.model_tab})
        stack = self.document.undo_stack
        for signal in (stack.canUndoChanged, stack.canRedoChanged, stack.undoTextChanged, stack.redoTextChanged):
            signal.connect(self.update_actions)
        for name, action in self.actions.items():
            setattr(self, f"{name}_action", action)
        # The table's context menu offers the graph commands too.
        separator = QAction(self.stack)
        separator.setSeparator(True)
        self.stack.addActions([separator] + [self.actions[name] for name in (
            "copy", "paste", "add_skip", "wrap_residual", "make_block", "expand_block", "edit_block")])
        self.toolbar = QToolBar("Main")
        self.toolbar.setObjectName("main-toolbar")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBar(self.toolbar)
        menus = {key: self.menuBar().addMenu(title) for key, title in MENUS.items()}
        fill_menus(menus, self.toolbar, self.actions)
        file_menu = menus["file"]
        self.examples_menu = QMenu("New from &Example", file_menu)
        for name, title in examples():
            self.examples_menu.addAction(title, lambda checked=False, n=name: self.files.new_project(n))
        file_menu.insertMenu(self.open_action, self.examples_menu)
        self.recent_menu = QMenu("Open &Recent", file_menu)
        self.recent_menu.aboutToShow.connect(lambda: self.files.fill_recent(self.recent_menu))
        after_open = file_menu.actions()[file_menu.actions().index(self.open_action) + 1]
        file_menu.insertMenu(after_open, self.recent_menu)
        view_menu = menus["view"]
        view_menu.addAction(self.palette_dock.toggleViewAction())
        view_menu.addAction(self.toolbar.toggleViewAction())
        theme_menu = view_menu.addMenu("&Theme")
        group = QActionGroup(self)
        current = self.settings.value("view/theme", "system")
        for name in ("system", "light", "dark"):
            action = theme_menu.addAction(name.capitalize(), lambda checked=False, n=name: self.set_theme(n))
            action.setCheckable(True)
            action.setChecked(name == current)
            group.addAction(action)

    # -- keeping the widgets in step ---------------------------------------------------------

    @Slot()
    def _sync(self) -> None:
        self.update_title()  # an unsaved project's title is its name
        self.model_tab.sync()
        self.data_panel.sync()
        self.setup.sync()
        self.update_actions()

    @Slot()
    def update_title(self) -> None:
        self.setWindowTitle(f"{self.document.title}[*] — guidl")
        self.setWindowModified(self.document.modified)

    def state(self) -> WindowState:
        """Everything the actions depend on, from the controllers' own state."""
        session, stack = self.session, self.document.undo_stack
        train_blocker = self.training.blocker()
        return WindowState(
            running=self.training.running, paused=self.training.paused,
            train_blocker=train_blocker, has_model=session.trainer is not None,
            can_evaluate=session.trainer is not None or session.bundle is not None,
            evaluating=self.evaluation.running, exporting=self.exports.running,
            layer=self.stack.selected_layer(), layers=len(self.document.model.layers),
            selected=len(self.graph_edits.selection()), block_use=self.graph_edits.is_block_use(),
            wires=len(self.graph_edits.selected_wires()),
            can_undo=stack.canUndo(), can_redo=stack.canRedo(),
            sweeping=self.sweeps.running, sweep_blocker=self.sweeps.blocker(train_blocker))

    @Slot()
    def update_actions(self) -> None:
        state = self.state()
        update_actions(self.actions, state)
        tip = ("Train the model (F5)" if state.train_blocker is None
               else f"Cannot train: {state.train_blocker}")
        self.train_action.setToolTip(tip)
        self.train_action.setStatusTip(tip)  # the status bar says it on hover, too
        stack = self.document.undo_stack
        self.undo_action.setText(f"&Undo {stack.undoText()}".strip())
        self.redo_action.setText(f"&Redo {stack.redoText()}".strip())
        self.pause_action.setText("&Resume" if state.paused else "&Pause")
        self.pause_action.setIcon(icon("train" if state.paused else "pause"))
        # The run belongs to the project it started with: no other project meanwhile.
        for menu in (self.recent_menu, self.examples_menu):
            menu.menuAction().setEnabled(not state.running)
        for widget in (self.stack, self.palette_widget, self.properties, self.data_panel, self.setup):
            widget.setEnabled(not state.running)
        if hasattr(self, "block_editors"):
            self.block_editors.set_enabled(not state.running)
        if hasattr(self, "writing"):
            self.writing.sync()

    def reset_session(self) -> None:
        """Another project: forget the trained model and clear the views of it."""
        self.session.reset()
        self.results.clear()
        self.charts.clear()
        self.samples_view.clear()
        self.train_message.hide()  # said of the last project's runs
        if not self.training.running:
            self.status_text.setText("")
        self.update_actions()

    def show_tab(self, name: str) -> None:
        self.tabs.setCurrentWidget(self.tab_pages[name])

    def show_train_message(self, text: str, style: str) -> None:
        self.train_message.setStyleSheet(style)
        self.train_message.setText(text)
        self.train_message.show()

    # -- the model tab's actions --------------------------------------------------------------

    def _append_layer(self, name: str) -> None:
        selected = self.stack.selected_layer()
        self.edits.insert(name, selected + 1 if selected >= 0 else None)
        self.show_tab("model")

    def delete_layer(self) -> None:
        self.edits.remove_layers(self.graph_edits.selection())

    def duplicate_layer(self) -> None:
        self.edits.duplicate(self.stack.selected_layer())

    def toggle_frozen(self) -> None:
        """Freeze the selected layers, or unfreeze them when all are frozen: one undo step."""
        self.edits.toggle_frozen(self.graph_edits.selection())

    def move_layer_up(self) -> None:
        self._move(-1)

    def move_layer_down(self) -> None:
        self._move(1)

    def _move(self, step: int) -> None:
        index = self.stack.selected_layer()
        if index >= 0:
            self.edits.move(index, index + step)

    @Slot(str)
    def _close_block_editors(self, _network: str = "") -> None:
        for editor in list(self.block_editors.editors.values()):
            if isValid(editor):
                editor.close()

    def focus_palette(self) -> None:
        self.palette_dock.show()
        self.palette_widget.search.setFocus()
        self.palette_widget.search.selectAll()

    # -- misc ------------------------------------------------------------------------------------------

    def set_theme(self, name: str) -> None:
        self.settings.setValue("view/theme", name)
        apply_theme(QApplication.instance(), name)

    def about(self) -> None:
        import PySide6
        import pyqtgraph

        if self.engine.is_ready:
            import torch

            torch_version = torch.__version__
            devices = ", ".join(self.devices)
            if torch.cuda.is_available():
                devices += " (" + ", ".join(torch.cuda.get_device_name(i)
                                            for i in range(torch.cuda.device_count())) + ")"
        else:
            torch_version = devices = self.engine.error or "still loading"
        QMessageBox.about(self, "About guidl", (
            f"<h3>guidl {__version__}</h3><p>Design, train and export neural networks.</p>"
            f"<p>Python {platform.python_version()} · PyTorch {torch_version} · "
            f"Qt {PySide6.QtCore.qVersion()} (PySide6 {PySide6.__version__}) · "
            f"pyqtgraph {pyqtgraph.__version__}</p><p>Devices: {devices}</p>"))

    # -- closing: ask first, then stop, then close ---------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._ask_to_close() and self._stop_for_close():
            self._closed()
            event.accept()
        else:
            event.ignore()

    def _ask_to_close(self) -> bool:
        """Every question comes before anything stops: Cancel leaves all as it was."""
        return self.training.confirm_close() and self.sweeps.confirm_close() and self.files.maybe_save()

    def _stop_for_close(self) -> bool:
        self.writing.stop()
        if self.sweeps.stop_for_close() and self.training.stop_for_close():
            return True
        QMessageBox.warning(self, "Still busy", "guidl is still finishing a task; try closing again in a moment.")
        return False

    def _closed(self) -> None:
        self.files.window_closed()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.charts.timer.stop()
