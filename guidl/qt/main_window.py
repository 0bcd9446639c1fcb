"""The main window: palette, model stack, property editor, data, training,
live charts and results, with the menus, toolbar and status bar around them."""

from __future__ import annotations

import json
import platform
import time
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QObject, QSettings, QStandardPaths, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication, QDockWidget, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QMainWindow,
    QMessageBox, QProgressBar, QScrollArea, QSplitter, QTabWidget, QToolBar, QVBoxLayout, QWidget,
)

from .. import __version__, spec
from ..examples import example_path, examples
from ..formatting import format_bytes, format_duration
from ..registry import LAYERS
from .charts import TrainingCharts
from .document import LayerEdits, ProjectDocument
from .engine_loader import EngineLoader
from .icons import icon
from .model_stack import ModelStackView
from .palette import LayerPalette
from .panels import DataPanel, TrainingSetup, message_label
from .param_form import ParamForm, parse_value
from .results import ResultsPanel
from .jobs import Jobs, Task

MAX_RECENT = 8
AUTOSAVE_MS = 30_000
STATUS_HZ = 4  # status-bar updates a second while training
PROJECT_FILTER = ("guidl projects and bundles (*.guidl.json *.guidl);;guidl projects (*.guidl.json);;"
                  "guidl bundles, trained models (*.guidl);;All files (*)")


def default_settings() -> QSettings:
    return QSettings("guidl", "guidl")


def data_folder() -> Path:
    location = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(location or Path.home() / ".guidl")


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
        self._status_at = 0.0  # when the status bar last showed training progress
        self._data_wanted = False  # Load Data was asked for before torch was ready
        self._open_pending: Path | None = None  # a bundle to open once torch is ready
        self.worker = None  # a TrainingWorker while training runs
        self.thread = None
        self.trainer = None  # the last trained model's trainer, for evaluation
        self.close_timeout_s = 120  # how long closing waits for tasks (and a training) to end
        self.last_result = None
        self._data_cache: tuple[str, object] | None = None
        self._loader = None
        self._exporter = None
        self._evaluator = None
        self.bundle = None  # (project as opened, weights) of an opened .guidl bundle
        self.jobs = Jobs(self)
        self.setWindowIcon(icon("guidl"))
        self.setAcceptDrops(False)
        self._build_widgets()
        self._build_actions()
        self._build_menus()
        self.document.changed.connect(self._sync)
        self.document.path_changed.connect(self._update_title)
        self.document.undo_stack.cleanChanged.connect(self._update_title)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()
        self.resize(1400, 880)
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        self._sync()
        self._update_title()
        self.engine.ready.connect(self._engine_ready)
        self.engine.failed.connect(self._engine_failed)
        if self.engine.is_ready:
            self._engine_ready()
        else:
            self.status_text.setText("Loading PyTorch…")
            self.progress.setRange(0, 0)
            self.progress.show()
            # Import torch once the window is on screen: the import holds the
            # interpreter much of the time and would slow the first paint.
            self._first_paint = _FirstPaint(self, self.engine.start)
            # A window that is never exposed (another workspace) loads it anyway.
            QTimer.singleShot(3000, self, self.engine.start)

    @Slot()
    def _engine_ready(self) -> None:
        """PyTorch is loaded: find the devices, work out the shapes, load
        data that was asked for meanwhile."""
        from ..engine.trainer import available_devices

        if self.devices:
            return  # already done
        self.devices = available_devices()
        self.setup.set_devices(self.devices)
        if self.thread is None:
            self.progress.hide()
            self.status_text.setText("")
        self.document.refresh()
        if self._open_pending is not None:
            # Asks first when the project was edited meanwhile.
            path, self._open_pending = self._open_pending, None
            self.open_path(path, ask=True)
        if self._data_wanted:
            self._data_wanted = False
            self.load_data()

    def open_when_ready(self, path: Path) -> None:
        """Open ``path`` (a bundle, which needs torch) as soon as torch is loaded."""
        if self.engine.is_ready:
            self.open_path(path, ask=False)
        else:
            self._open_pending = path
            self.status_text.setText(f"Loading PyTorch to open {path.name}…")

    @Slot(str)
    def _engine_failed(self, message: str) -> None:
        self.progress.hide()
        self.status_text.setText("PyTorch could not be loaded")
        self.model_message.setStyleSheet("color: #dc2626;")
        self.model_message.setText(message)
        self.model_message.show()
        self.summary.setText("Output shapes and parameter counts need PyTorch.")
        if self._data_wanted:
            self._data_wanted = False
            self.data_panel.show_error(message)
        if self._open_pending is not None:
            path, self._open_pending = self._open_pending, None
            QMessageBox.warning(self, "Cannot open the bundle", f"{path.name} needs PyTorch: {message}")
        self._update_actions()

    # -- construction ---------------------------------------------------------------------

    def _build_widgets(self) -> None:
        self.palette_widget = LayerPalette()
        self.palette_widget.layer_requested.connect(self._append_layer)
        self.palette_dock = QDockWidget("Layers", self)
        self.palette_dock.setObjectName("palette")
        self.palette_dock.setWidget(self.palette_widget)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.palette_dock)

        # Model tab: the stack with its summary, and the property editor.
        self.stack = ModelStackView(self.document)
        self.stack.layer_selected.connect(self._layer_selected)
        self.stack.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.input_shape = QLineEdit()
        self.input_shape.setToolTip("One sample's shape without the batch, such as 1, 28, 28. "
                                    "Leave empty to take it from the dataset.")
        self.input_shape.textEdited.connect(self._input_shape_edited)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.model_message = message_label()
        model_left = QWidget()
        left_layout = QVBoxLayout(model_left)
        shape_row = QHBoxLayout()
        shape_row.addWidget(QLabel("Input shape"))
        shape_row.addWidget(self.input_shape, 1)
        left_layout.addLayout(shape_row)
        left_layout.addWidget(self.stack, 1)
        left_layout.addWidget(self.model_message)
        left_layout.addWidget(self.summary)
        self.properties = QGroupBox("Layer properties")
        properties_layout = QVBoxLayout(self.properties)
        self.layer_help = QLabel("Select a layer to edit it, or add one from the palette "
                                 "(double-click, Enter, or drag it onto the model).")
        self.layer_help.setWordWrap(True)
        self.layer_form = ParamForm()
        self.layer_form.param_changed.connect(self._layer_param_changed)
        self.layer_message = message_label()
        properties_layout.addWidget(self.layer_help)
        properties_layout.addWidget(self.layer_form)
        properties_layout.addWidget(self.layer_message)
        properties_layout.addStretch(1)
        properties_scroll = QScrollArea()
        properties_scroll.setWidgetResizable(True)
        properties_scroll.setWidget(self.properties)
        model_tab = QSplitter(Qt.Orientation.Horizontal)
        model_tab.addWidget(model_left)
        model_tab.addWidget(properties_scroll)
        model_tab.setSizes([800, 380])

        self.data_panel = DataPanel(self.document)
        self.data_panel.load_requested.connect(self.load_data)

        # Train tab: the set-up on the left, the live charts on the right.
        self.setup = TrainingSetup(self.document)
        setup_scroll = QScrollArea()
        setup_scroll.setWidgetResizable(True)
        setup_scroll.setWidget(self.setup)
        setup_scroll.setMaximumWidth(420)
        self.charts = TrainingCharts()
        self.train_message = message_label()
        charts_holder = QWidget()
        charts_layout = QVBoxLayout(charts_holder)
        charts_layout.addWidget(self.train_message)
        charts_layout.addWidget(self.charts, 1)
        train_tab = QSplitter(Qt.Orientation.Horizontal)
        train_tab.addWidget(setup_scroll)
        train_tab.addWidget(charts_holder)
        train_tab.setSizes([400, 900])

        self.results = ResultsPanel()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(model_tab, "Model")
        self.tabs.addTab(self.data_panel, "Data")
        self.tabs.addTab(train_tab, "Train")
        self.tabs.addTab(self.results, "Results")
        self.setCentralWidget(self.tabs)

        status = self.statusBar()
        self.status_text = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setTextVisible(True)
        self.progress.hide()
        status.addPermanentWidget(self.status_text)
        status.addPermanentWidget(self.progress)

    def _action(self, text: str, slot, shortcut=None, icon_name: str | None = None,
                tip: str | None = None) -> QAction:
        action = QAction(text, self)
        if icon_name:
            action.setIcon(icon(icon_name))
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        S = QKeySequence.StandardKey
        self.new_action = self._action("&New", self.new_project, S.New, "new", "Start an empty project")
        self.open_action = self._action("&Open…", self.open_dialog, S.Open, "open", "Open a project file")
        self.save_action = self._action("&Save", self.save, S.Save, "save", "Save the project")
        self.save_as_action = self._action("Save &As…", self.save_as, S.SaveAs)
        self.quit_action = self._action("&Quit", self.close, S.Quit)
        self.undo_action = self.document.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence(S.Undo))
        self.undo_action.setIcon(icon("undo"))
        self.undo_action.setIconText("Undo")  # the menu says what; the toolbar stays short
        self.redo_action = self.document.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence(S.Redo), QKeySequence("Ctrl+Shift+Z")])
        self.redo_action.setIcon(icon("redo"))
        self.redo_action.setIconText("Redo")
        self.delete_action = self._action("&Delete Layer", lambda: self.edits.remove(self.stack.selected_layer()),
                                          S.Delete, "delete")
        self.duplicate_action = self._action("D&uplicate Layer",
                                             lambda: self.edits.duplicate(self.stack.selected_layer()),
                                             "Ctrl+D", "duplicate")
        self.up_action = self._action("Move &Up", lambda: self._move(-1), "Alt+Up", "up")
        self.down_action = self._action("Move Do&wn", lambda: self._move(1), "Alt+Down", "down")
        for action in (self.delete_action, self.duplicate_action, self.up_action, self.down_action):
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.stack.addAction(action)
        self.add_layer_action = self._action("&Add Layer…", self._focus_palette, "Ctrl+L",
                                             tip="Search the layer palette")
        self.train_action = self._action("&Train", self.start_training, "F5", "train",
                                         "Train the model (F5)")
        self.pause_action = self._action("&Pause", self.pause_or_resume, "F6", "pause",
                                         "Pause training after the current batch (F6)")
        self.stop_action = self._action("S&top", self.stop_training, "Shift+F5", "stop",
                                        "Stop training after the current batch")
        self.evaluate_action = self._action("&Evaluate", self.evaluate, "F7", "evaluate",
                                            "Show the trained model's results")
        self.load_data_action = self._action("&Load Data", self.load_data, "Ctrl+Shift+L",
                                             tip="Load and preview the dataset")
        self.export_action = self._action("&Export Model…", self.export_dialog, "Ctrl+E",
                                          tip="Write the trained model as ONNX, torch.export, "
                                              "TorchScript, weights, Python source or a bundle")
        self.about_action = self._action("&About guidl", self.about)
        toolbar = QToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (self.new_action, self.open_action, self.save_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addAction(self.undo_action)
        toolbar.addAction(self.redo_action)
        toolbar.addSeparator()
        for action in (self.train_action, self.pause_action, self.stop_action, self.evaluate_action):
            toolbar.addAction(action)
        self.addToolBar(toolbar)
        self.toolbar = toolbar

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.new_action)
        self.examples_menu = file_menu.addMenu("New from &Example")
        for name, title in examples():
            self.examples_menu.addAction(title, lambda checked=False, n=name: self.new_project(n))
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        file_menu.addAction(self.save_action)
        file_menu.addAction(self.save_as_action)
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = bar.addMenu("&Edit")
        for action in (self.undo_action, self.redo_action):
            edit_menu.addAction(action)
        edit_menu.addSeparator()
        for action in (self.delete_action, self.duplicate_action, self.up_action, self.down_action):
            edit_menu.addAction(action)
        model_menu = bar.addMenu("&Model")
        model_menu.addAction(self.add_layer_action)
        train_menu = bar.addMenu("&Train")
        for action in (self.load_data_action, self.train_action, self.pause_action, self.stop_action,
                       self.evaluate_action):
            train_menu.addAction(action)
        view_menu = bar.addMenu("&View")
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
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.about_action)

    # -- keeping the widgets in step with the document --------------------------------------

    @Slot()
    def _sync(self) -> None:
        project = self.document.project
        report = self.document.report
        if not self.input_shape.hasFocus():
            self.input_shape.setText(", ".join(map(str, project.model.input_shape or [])))
            shape, _ = self.document.input_shape_and_dtype()
            self.input_shape.setPlaceholderText(
                f"from the dataset: {', '.join(map(str, shape))}" if shape else "e.g. 1, 28, 28")
        if report is None and not self.engine.is_ready:
            self.summary.setText("Output shapes and parameter counts appear as soon as PyTorch "
                                 "has loaded (a few seconds after start-up).")
        if report is not None:
            batch = project.data.batch_size
            self.summary.setText(
                f"<b>Total params:</b> {report.total_params:,} · trainable {report.trainable_params:,} · "
                f"non-trainable {report.total_params - report.trainable_params:,} · "
                f"<b>weights</b> {format_bytes(report.weight_bytes)} · <b>one batch of {batch}</b>: "
                f"activations {format_bytes(report.activation_bytes(batch))}")
            problems = report.problems()
            if problems:
                self.model_message.setStyleSheet("color: #dc2626;")
                self.model_message.setText("\n".join(str(p) for p in problems[:4]))
                self.model_message.show()
            else:
                self.model_message.hide()
        self._layer_selected(self.stack.selected_layer())
        self.data_panel.sync()
        self.setup.sync()
        self._update_actions()

    def _update_title(self) -> None:
        self.setWindowTitle(f"{self.document.title}[*] — guidl")
        self.setWindowModified(self.document.modified)

    def train_blocker(self) -> str | None:
        """Why Train is disabled, or None when the project can be trained."""
        if self.thread is not None:
            return "training is running"
        if not self.engine.is_ready:
            return self.engine.error or "PyTorch is still loading"
        problems = self.document.project.problems()
        if problems:
            return f"the project has a problem: {problems[0]}"
        report = self.document.report
        # An unknown input shape is no blocker: training loads the data, which supplies it.
        model_problems = [p for p in (report.problems() if report else [])
                          if p.path != "model.input_shape"]
        if model_problems:
            return f"fix the model first: {model_problems[0]}"
        if not self.document.project.model.layers:
            return "the model has no layers: add some from the palette"
        return None

    def _update_actions(self) -> None:
        running = self.thread is not None
        blocker = self.train_blocker()
        self.train_action.setEnabled(blocker is None)
        self.train_action.setToolTip("Train the model (F5)" if blocker is None
                                     else f"Cannot train: {blocker}")
        self.pause_action.setEnabled(running)
        self.stop_action.setEnabled(running)
        # The run belongs to the project it started with: no other project meanwhile.
        for action in (self.new_action, self.open_action, self.recent_menu.menuAction(),
                       self.examples_menu.menuAction()):
            action.setEnabled(not running)
        # Nor edits by undo: the form would show values the run does not use.
        # (The stack enables these actions itself; it changes nothing while editing is locked.)
        self.undo_action.setEnabled(self.document.undo_stack.canUndo() and not running)
        self.redo_action.setEnabled(self.document.undo_stack.canRedo() and not running)
        self.evaluate_action.setEnabled((self.trainer is not None or self.bundle is not None)
                                        and not running and self._evaluator is None)
        self.export_action.setEnabled(self.trainer is not None and not running and self._exporter is None)
        layer = self.stack.selected_layer()
        count = len(self.document.project.model.layers)
        for action in (self.delete_action, self.duplicate_action):
            action.setEnabled(layer >= 0 and not running)
        self.up_action.setEnabled(layer > 0 and not running)
        self.down_action.setEnabled(0 <= layer < count - 1 and not running)
        for widget in (self.stack, self.palette_widget, self.properties, self.data_panel, self.setup):
            widget.setEnabled(not running)

    # -- the model tab --------------------------------------------------------------------------

    def _append_layer(self, name: str) -> None:
        selected = self.stack.selected_layer()
        position = selected + 1 if selected >= 0 else None
        self.edits.insert(name, position)
        self.tabs.setCurrentIndex(0)

    def _move(self, step: int) -> None:
        index = self.stack.selected_layer()
        if index >= 0:
            self.edits.move(index, index + step)

    def _focus_palette(self) -> None:
        self.palette_dock.show()
        self.palette_widget.search.setFocus()
        self.palette_widget.search.selectAll()

    def _layer_selected(self, index: int) -> None:
        layers = self.document.project.model.layers
        if not 0 <= index < len(layers):
            self.properties.setTitle("Layer properties")
            self.layer_help.setText("Select a layer to edit it, or add one from the palette "
                                    "(double-click, Enter, or drag it onto the model).")
            self.layer_form.set_entry(None, {})
            self.layer_message.hide()
            self._update_actions()
            return
        layer = layers[index]
        entry = LAYERS.get(layer.type)
        report = self.document.report
        info = report.layers[index] if report and index < len(report.layers) else None
        self.properties.setTitle(f"Layer {index}: {layer.type}")
        self.layer_help.setText(entry.help)
        inferred = {p.name: info.params.get(p.name) for p in entry.params if p.inferred} if info else {}
        self.layer_form.set_entry(entry, layer.params, inferred)
        if info is not None and info.error:
            self.layer_message.setStyleSheet("color: #dc2626;")
            self.layer_message.setText(info.message)
            self.layer_message.show()
        elif info is not None and info.warnings:
            self.layer_message.setStyleSheet("color: #b45309;")
            self.layer_message.setText("\n".join(info.warnings))
            self.layer_message.show()
        else:
            self.layer_message.hide()
        self._update_actions()

    def _layer_param_changed(self, name: str, value) -> None:
        self.edits.set_param(self.stack.selected_layer(), name, value)

    def _input_shape_edited(self, text: str) -> None:
        from ..registry import Param

        param = Param("input_shape", "int_list", None, minimum=1, nullable=True)
        try:
            value = parse_value(param, text)
            problem = param.check(value)
        except ValueError as error:
            value, problem = None, str(error)
        if problem:
            self.input_shape.setStyleSheet("border: 1px solid #dc2626;")
            return
        self.input_shape.setStyleSheet("")
        self.document.apply(lambda p: setattr(p.model, "input_shape", value), "Set input shape",
                            merge_key="model.input_shape")

    # -- data ------------------------------------------------------------------------------------

    def cached_data(self):
        if self._data_cache and self._data_cache[0] == self.document.data_key():
            return self._data_cache[1]
        return None

    @Slot()
    def load_data(self) -> None:
        if self._loader is not None:
            return
        if self.engine.error:
            self.data_panel.show_error(self.engine.error)
            return
        if not self.engine.is_ready:
            self._data_wanted = True
            self.data_panel.show_loading()
            self.status_text.setText("Loading PyTorch…")
            return
        from .worker import prepare_shared

        cached = self.cached_data()
        if cached is not None:
            self._data_loaded((self.document.data_key(), cached))
            return
        project = self.document.project.copy()
        key = self.document.data_key()
        if project.problems():
            self.data_panel.show_error("; ".join(str(p) for p in project.problems()))
            return
        self.data_panel.show_loading()
        self.status_text.setText("Loading data…")
        task = Task(lambda: (key, prepare_shared(project)))
        task.done.connect(self._data_loaded)
        task.error.connect(self._data_failed)
        self._loader = self.jobs.start(task, self._loader_finished)

    @Slot()
    def _loader_finished(self) -> None:
        self._loader = None

    @Slot(object)
    def _data_loaded(self, loaded) -> None:
        key, data = loaded
        self._data_cache = (key, data)
        self.status_text.setText("")
        if key != self.document.data_key():
            self.data_panel.load_button.setEnabled(True)
            return  # the project changed while loading: keep the data, show nothing stale
        self.data_panel.show_data(data)
        self.document.set_data_info(data.info, key)

    @Slot(str)
    def _data_failed(self, message: str) -> None:
        self.status_text.setText("")
        self.data_panel.show_error(message)
        self.tabs.setCurrentWidget(self.data_panel)

    # -- training ----------------------------------------------------------------------------------

    def _run_dir(self) -> Path:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        name = "".join(c if c.isalnum() or c in "-_" else "-" for c in self.document.project.name) or "run"
        base = self.document.path.parent / "runs" if self.document.path else self.state_dir / "runs"
        return base / f"{name}-{stamp}"

    @Slot()
    def start_training(self) -> None:
        blocker = self.train_blocker()
        if blocker is not None:
            self.statusBar().showMessage(f"Cannot train: {blocker}", 8000)
            return
        project = self.document.project.copy()
        self.run_dir = self._run_dir()
        self._training_key = self.document.data_key()  # the data this run trains on
        weights = self._bundle_weights()
        from .worker import TrainingWorker

        self.worker = TrainingWorker(project, self.cached_data(), self.run_dir, initial_weights=weights)
        self.worker.fit_started.connect(self._fit_started)
        self.worker.batches_ended.connect(self._batches_ended)
        self.worker.epoch_ended.connect(self.charts.add_epoch)
        self.worker.paused.connect(self._paused)
        self.worker.resumed.connect(self._resumed)
        self.worker.finished.connect(self._training_finished)
        self.worker.failed.connect(self._training_failed)
        self.charts.clear()
        self.train_message.hide()
        self.tabs.setCurrentIndex(2)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.status_text.setText("Preparing data and model…")
        self.thread = self.jobs.start(self.worker, self._thread_finished)
        self._update_actions()

    # Every slot a worker signal reaches is a declared @Slot: cross-thread
    # signals into plain methods or lambdas are unsafe in PySide6 6.8+.
    @Slot(object)
    def _fit_started(self, info: dict) -> None:
        self.charts.set_task(info["task"])
        self.charts.plan(info["epochs"])
        for metrics in info["history"]:
            self.charts.add_epoch(metrics)
        self.progress.setRange(0, info["epochs"] * info["batches"])
        self.progress.setValue(info["start_epoch"] * info["batches"])
        self.status_text.setText(f"Training on {info['device']}…")
        if info["notes"]:
            self.train_message.setStyleSheet("color: #b45309;")
            self.train_message.setText("\n".join(info["notes"]))
            self.train_message.show()

    @Slot(object, object, object)
    def _batches_ended(self, xs, losses, progress: dict) -> None:
        self.charts.add_batches(xs, losses)
        # The status line is read, not watched: a few updates a second. (A
        # progress bar repaints at once when its value changes, holding the
        # interpreter the training thread needs.)
        now = time.monotonic()
        if now - self._status_at < 1 / STATUS_HZ and progress["batch"] < progress["batches"]:
            return
        self._status_at = now
        done = progress["epoch"] * progress["batches"] + progress["batch"]
        self.progress.setValue(done)
        self.status_text.setText(
            f"Epoch {progress['epoch'] + 1}/{progress['epochs']} · batch {progress['batch']}/"
            f"{progress['batches']} · loss {float(losses[-1]):.4f} · "
            f"{progress['samples_per_s']:,.0f} samples/s · ETA {format_duration(progress['eta'])}")

    @Slot()
    def _paused(self) -> None:
        self._set_paused(True)

    @Slot()
    def _resumed(self) -> None:
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        self.pause_action.setText("&Resume" if paused else "&Pause")
        self.pause_action.setIcon(icon("train" if paused else "pause"))
        if paused:  # said once, whether the button or the run's report comes first
            text = self.status_text.text().split(" · ETA")[0]
            self.status_text.setText(text if text.endswith(" · paused") else text + " · paused")

    @Slot()
    def pause_or_resume(self) -> None:
        if self.worker is None:
            return
        control = self.worker.control
        if control.paused:
            control.resume()
            self._set_paused(False)
        else:
            control.pause()
            self._set_paused(True)

    @Slot()
    def stop_training(self) -> None:
        if self.worker is not None:
            self.worker.control.request_stop()
            self.status_text.setText("Stopping after the current batch…")

    @Slot(object)
    def _training_finished(self, outcome: dict) -> None:
        result = outcome["result"]
        self.trainer = outcome["trainer"]  # None when the model could not be loaded here
        self.last_result = result
        if outcome.get("data") is not None:  # the run's data, on the CPU: kept for the next
            self._data_cache = (self._training_key, outcome["data"])
        self.results.show_result(result, outcome["samples"])
        final = result.final
        what = result.stop_reason if result.stopped else "finished"
        figure = ""
        if final is not None and final.val_accuracy is not None:
            figure = f" · validation accuracy {final.val_accuracy:.2%}"
        elif final is not None and final.val_loss is not None:
            figure = f" · validation loss {final.val_loss:.4f}"
        if outcome.get("evaluated_only"):  # saved weights measured, nothing trained
            evaluation = result.evaluation.to_dict() if result.evaluation else {}
            score = (f"accuracy {evaluation['accuracy']:.2%}" if "accuracy" in evaluation
                     else f"MAE {evaluation.get('mae', float('nan')):.4g}")
            self.status_text.setText(f"Evaluated the model on the {result.evaluation_split} split: {score}")
        else:
            self.status_text.setText(f"Training {what} in {result.elapsed:.1f}s{figure} · run folder "
                                     f"{outcome.get('run_dir')}")
        if outcome["notes"]:
            self.train_message.setStyleSheet("color: #b45309;")
            self.train_message.setText("\n".join(outcome["notes"]))
            self.train_message.show()

    @Slot(str)
    def _training_failed(self, message: str) -> None:
        self.train_message.setStyleSheet("color: #dc2626;")
        self.train_message.setText(message)
        self.train_message.show()
        self.status_text.setText("Training failed: see the message above the charts")
        self.tabs.setCurrentIndex(2)

    @Slot()
    def _thread_finished(self) -> None:
        self.thread = None
        self.worker = None
        self.progress.hide()
        self._set_paused(False)
        self._update_actions()

    def _bundle_weights(self):
        """An opened bundle's weights while its model is unchanged: training
        then goes on from them, and Evaluate measures them."""
        if self.bundle is not None and self.bundle[0].model == self.document.project.model:
            return self.bundle[1]
        return None

    @Slot()
    def evaluate(self) -> None:
        """Show the trained model's results; for an opened bundle, measure its
        weights on the project's data first (in the background)."""
        if self.trainer is not None and self.last_result is not None:
            self.tabs.setCurrentWidget(self.results)
            return
        weights = self._bundle_weights()
        if weights is None:
            self.statusBar().showMessage("The model was changed since the bundle was opened: "
                                         "train it to see results", 8000)
            return
        from .worker import evaluate_weights

        project = self.document.project.copy()
        data = self.cached_data()
        self.status_text.setText("Evaluating the bundle's model…")
        task = Task(lambda: evaluate_weights(project, weights, data))
        task.done.connect(self._training_finished)
        task.error.connect(self._training_failed)
        self._evaluator = self.jobs.start(task, self._evaluator_finished)
        self._training_key = self.document.data_key()
        self._update_actions()

    @Slot()
    def _evaluator_finished(self) -> None:
        self._evaluator = None
        self.tabs.setCurrentWidget(self.results)
        self._update_actions()

    # -- export ----------------------------------------------------------------------------------------

    EXPORT_FILTERS = {
        "onnx": "ONNX model (*.onnx)", "pt2": "torch.export program (*.pt2)",
        "torchscript": "TorchScript for LibTorch (*.pt)", "safetensors": "Weights, safetensors (*.safetensors)",
        "state_dict": "Weights, PyTorch state_dict (*.pth)", "python": "Python source (*.py)",
        "bundle": "guidl bundle (*.guidl)",
    }

    def export_dialog(self) -> None:
        from ..engine.export import TrainedModel, default_filename

        if self.trainer is None:
            return
        model = TrainedModel.from_trainer(self.trainer)
        folder = self.document.path.parent if self.document.path else Path.home()
        filters = ";;".join(self.EXPORT_FILTERS.values())
        path, chosen = QFileDialog.getSaveFileName(self, "Export the trained model",
                                                   str(folder / default_filename(model, "onnx")), filters)
        if path:
            fmt = next(k for k, v in self.EXPORT_FILTERS.items() if v == chosen)
            self.export_to(model, fmt, Path(path))

    def export_to(self, model, fmt: str, path: Path) -> None:
        """Export in the background; the outcome lands in the status bar (or a
        message that names the layer the format cannot express)."""
        from ..engine.export import FORMATS, export

        if path.suffix != FORMATS[fmt]:
            path = path.with_name(path.name + FORMATS[fmt]) if not path.suffix else path.with_suffix(FORMATS[fmt])
        self.status_text.setText(f"Exporting to {path.name}…")
        task = Task(lambda: export(model, fmt, path))
        task.done.connect(self._exported)
        task.error.connect(self._export_failed)
        self._exporter = self.jobs.start(task, self._exporter_finished)
        self._update_actions()

    @Slot(object)
    def _exported(self, result) -> None:
        difference = ("" if result.max_difference is None
                      else f" · outputs match the model within {result.max_difference:.2g}")
        notes = "".join(f" · {note}" for note in result.notes)
        self.status_text.setText(f"Exported {result.path}{difference}{notes}")
        self.last_export = result

    @Slot(str)
    def _export_failed(self, message: str) -> None:
        self.status_text.setText("Export failed")
        QMessageBox.warning(self, "Cannot export", message)

    @Slot()
    def _exporter_finished(self) -> None:
        self._exporter = None
        self._update_actions()

    # -- files ----------------------------------------------------------------------------------------

    def new_project(self, example: str | None = None) -> None:
        if not self.maybe_save():
            return
        self._open_pending = None  # the user's own choice wins over the command line's
        if example:
            project = spec.load(example_path(example))
        else:
            project = spec.Project()
            project.model.layers = []
        self.document.set_project(project, None)
        self.results.clear()
        self.charts.clear()
        self.trainer = None
        self.bundle = None
        self._update_actions()

    def open_dialog(self) -> None:
        if not self.maybe_save():
            return
        start = str(self.document.path.parent) if self.document.path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open project", start, PROJECT_FILTER)
        if path:
            self.open_path(Path(path), ask=False)

    def open_path(self, path: Path, ask: bool = True) -> bool:
        if ask and not self.maybe_save():
            return False
        self._open_pending = None  # the user's own choice wins over the command line's
        if Path(path).suffix == ".guidl":
            if not self.engine.is_ready:  # a bundle holds weights: it needs torch now
                QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
                try:
                    self.engine.start()
                    self.engine.wait()
                finally:
                    QApplication.restoreOverrideCursor()
                if self.engine.error:
                    QMessageBox.warning(self, "Cannot open the bundle", self.engine.error)
                    return False
                self._engine_ready()
            return self._open_bundle(Path(path))
        try:
            project = spec.load(path)
        except spec.ProjectError as error:
            if not Path(path).exists():
                self.settings.setValue("recent", [p for p in self._recent() if p != str(path)])
            lines = error.lines()
            QMessageBox.warning(self, "Cannot open the project",
                                f"{path.name} cannot be opened:\n\n" + "\n".join(lines[:12])
                                + (f"\n… and {len(lines) - 12} more" if len(lines) > 12 else ""))
            return False
        self.document.set_project(project, path)
        self.results.clear()
        self.charts.clear()
        self.trainer = None
        self.bundle = None
        self._add_recent(path)
        self._update_actions()
        return True

    def _open_bundle(self, path: Path) -> bool:
        from ..engine.export import ExportError, load_bundle

        try:
            model = load_bundle(path)
        except (ExportError, spec.ProjectError) as error:
            QMessageBox.warning(self, "Cannot open the bundle", f"{path.name} cannot be opened:\n\n{error}")
            return False
        weights = {k: v.clone() for k, v in model.module.state_dict().items()}
        self.document.set_project(model.project, None)  # Save asks where: a bundle is no project file
        self.bundle = (model.project.copy(), weights)
        self.results.clear()
        self.charts.clear()
        self.trainer = None
        self.last_result = None
        self._add_recent(path)
        self.status_text.setText(f"Opened the trained model {path.name}: Evaluate shows its results, "
                                 "Train goes on training it")
        self._update_actions()
        return True

    def save(self) -> bool:
        if self.document.path is None:
            return self.save_as()
        return self._save_to(self.document.path)

    def save_as(self) -> bool:
        suggested = self.document.path or Path.home() / f"{self.document.project.name or 'model'}.guidl.json"
        path, _ = QFileDialog.getSaveFileName(self, "Save project", str(suggested), PROJECT_FILTER)
        if not path:
            return False
        if not path.endswith(".json"):
            path = path.removesuffix(".guidl") + ".guidl.json"
            # The dialog checked the name typed, not this one.
            if Path(path).exists() and QMessageBox.question(
                    self, "Replace the file?", f"{Path(path).name} exists. Replace it?",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                    QMessageBox.StandardButton.No) != QMessageBox.StandardButton.Yes:
                return False
        return self._save_to(Path(path))

    def _save_to(self, path: Path) -> bool:
        try:
            self.document.save(path)
        except OSError as error:
            QMessageBox.warning(self, "Cannot save", f"{path} could not be written: {error}")
            return False
        self._add_recent(path)
        self._remove_recovery()
        self.statusBar().showMessage(f"Saved {path}", 4000)
        return True

    def maybe_save(self) -> bool:
        """Ask about unsaved changes; False when the user cancels."""
        if not self.document.modified:
            return True
        answer = QMessageBox.question(
            self, "Unsaved changes", f"Save the changes to {self.document.title}?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def _recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [v for v in value or [] if isinstance(v, str)]

    def _add_recent(self, path: Path) -> None:
        recent = [str(path)] + [p for p in self._recent() if p != str(path)]
        self.settings.setValue("recent", recent[:MAX_RECENT])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self._recent()
        for entry in recent:
            self.recent_menu.addAction(entry, lambda checked=False, p=entry: self.open_path(Path(p)))
        if not recent:
            self.recent_menu.addAction("No recent projects").setEnabled(False)

    # -- recovery -----------------------------------------------------------------------------------

    @property
    def recovery_file(self) -> Path:
        return self.state_dir / "recovery" / "autosave.guidl.json"

    def autosave(self) -> None:
        if not self.document.modified:
            return
        try:
            self.recovery_file.parent.mkdir(parents=True, exist_ok=True)
            document = self.document.project.to_dict()
            document["guidl_recovery"] = {"path": str(self.document.path) if self.document.path else None,
                                          "saved": datetime.now().isoformat(timespec="seconds")}
            spec.atomic_write_text(self.recovery_file, json.dumps(document, indent=2) + "\n")
        except OSError as error:
            self.statusBar().showMessage(f"Autosave failed: {error}", 8000)

    def _remove_recovery(self) -> None:
        self.recovery_file.unlink(missing_ok=True)

    def offer_recovery(self) -> bool:
        """After a crash: offer the autosaved project. True when restored."""
        if not self.recovery_file.exists():
            return False
        try:
            text = self.recovery_file.read_text(encoding="utf-8")
            document = json.loads(text)
            origin = document.pop("guidl_recovery", {}) or {}
            project = spec.Project.from_dict(spec.upgrade(document))
        except (OSError, ValueError):
            self._remove_recovery()
            return False
        answer = QMessageBox.question(
            self, "Restore unsaved work?",
            f"guidl closed without saving “{project.name}” (autosaved {origin.get('saved', '')}). "
            "Restore it?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.Yes)
        if answer != QMessageBox.StandardButton.Yes:
            self._remove_recovery()
            return False
        path = Path(origin["path"]) if origin.get("path") else None
        self.document.set_project(project, path)
        self.document.undo_stack.resetClean()  # restored work is unsaved work
        self._update_title()
        return True

    # -- misc ------------------------------------------------------------------------------------------

    def set_theme(self, name: str) -> None:
        from .app import apply_theme

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

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.thread is not None:
            answer = QMessageBox.question(
                self, "Training is running",
                "Stop training and close? The last checkpoint is kept in the run folder.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        if not self.maybe_save():  # before stopping anything: Cancel leaves all as it was
            event.ignore()
            return
        if self.worker is not None:
            self.worker.control.request_stop()
        if not self.jobs.wait_all(timeout_s=self.close_timeout_s) and not self._end_training_process():
            QMessageBox.warning(self, "Still busy", "guidl is still finishing a task; "
                                "try closing again in a moment.")
            event.ignore()
            return
        self._remove_recovery()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.autosave_timer.stop()
        self.charts.timer.stop()
        event.accept()

    def _end_training_process(self) -> bool:
        """A training process that has not stopped within two minutes of being
        asked (stuck in a kernel, say) is ended, so that the window can close;
        True when every task has then finished."""
        process = self.worker.process if self.worker is not None else None
        if process is None or process.process is None or not process.process.is_alive():
            return False
        process.process.kill()  # its last checkpoint is on disk already
        return self.jobs.wait_all(timeout_s=15)

    def shutdown_training(self, timeout_s: float = 60) -> None:
        """Stop the worker and wait for every thread to end (checkpoint kept)."""
        if self.worker is not None:
            self.worker.control.request_stop()
        self.jobs.wait_all(timeout_s)

