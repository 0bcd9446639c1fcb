"""The window's actions as one table, enabled from one state object.

Each row says what an action is (text, shortcut, icon), where it shows
(menu and group, toolbar group) and when it is enabled, as a function of a
``WindowState``. The window builds the actions once from the table and,
whenever something changes, computes one state and applies every row's
``enabled_when`` to it: no method enables actions one by one, and nothing is
read back from the widgets' texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QToolBar, QWidget

from ..icons import icon


@dataclass(frozen=True)
class WindowState:
    """What the actions depend on, computed fresh for each update."""

    running: bool = False  # a run is training (or paused)
    paused: bool = False
    train_blocker: str | None = None  # why Train is disabled, or None
    has_model: bool = False  # a trained model is in the window: Export
    can_evaluate: bool = False  # a trained model, or an opened bundle's or run's weights
    evaluating: bool = False
    exporting: bool = False
    layer: int = -1  # the selected layer, -1 for none
    layers: int = 0
    selected: int = 0  # how many layers are selected (in the view that has the focus)
    block_use: bool = False  # the one selected layer is a use of a block
    wires: int = 0  # wires selected on the canvas
    can_undo: bool = False
    can_redo: bool = False
    sweeping: bool = False  # a sweep's process runs (the window's own)
    sweep_blocker: str | None = None  # why a sweep cannot start (PyTorch loading here is no reason)


def _idle(state: WindowState) -> bool:
    # The run belongs to the project it started with: no other project, and no
    # edits by undo (the forms would show values the run does not use).
    return not state.running


@dataclass(frozen=True)
class ActionSpec:
    id: str  # the action is the window's ``<id>_action``
    text: str
    slot: str  # a dotted path from the window ("files.save")
    shortcut: object = None  # a QKeySequence.StandardKey, a string, or a tuple of either
    icon: str | None = None
    menu: str | None = None  # the menu's key in MENUS
    group: int = 0  # a separator goes between groups of a menu
    toolbar: int | None = None  # the toolbar's group; None: not on the toolbar
    tip: str | None = None
    icon_text: str | None = None  # shorter text for the toolbar
    #: "stack": the shortcut works while the layer stack has the focus; "model": anywhere in the
    #: Model tab (the table and the canvas; a text field keeps its own Ctrl+C).
    context: str | None = None
    enabled_when: Callable[[WindowState], bool] | None = None


S = QKeySequence.StandardKey
MENUS = {"file": "&File", "edit": "&Edit", "model": "&Model", "train": "&Train", "experiments": "E&xperiments",
         "view": "&View", "help": "&Help"}
ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("new", "&New", "files.new_project", S.New, "new", "file", 0, 0, "Start an empty project",
               enabled_when=_idle),
    ActionSpec("new_pretrained", "New from &Pretrained…", "pretrained.new_from_pretrained", menu="file",
               tip="Classify your own photos with a network pretrained on ImageNet", enabled_when=_idle),
    ActionSpec("open", "&Open…", "files.open_dialog", S.Open, "open", "file", 0, 0, "Open a project file",
               enabled_when=_idle),
    ActionSpec("save", "&Save", "files.save", S.Save, "save", "file", 1, 0, "Save the project"),
    ActionSpec("save_as", "Save &As…", "files.save_as", S.SaveAs, menu="file", group=1, enabled_when=_idle),
    ActionSpec("export", "&Export Model…", "exports.export_dialog", "Ctrl+E", menu="file", group=1,
               tip="Write the trained model as ONNX, torch.export, TorchScript, weights, Python "
                   "source or a bundle",
               enabled_when=lambda s: s.has_model and not s.running and not s.exporting),
    ActionSpec("import_weights", "&Import Weights File…", "pretrained.import_weights_file", menu="file", group=1,
               tip="Use pretrained weights downloaded elsewhere (torchvision's file, or your own)",
               enabled_when=_idle),
    ActionSpec("quit", "&Quit", "close", S.Quit, menu="file", group=2),
    # Plain actions, not QUndoStack's: Qt enables those itself whenever the stack can undo.
    ActionSpec("undo", "&Undo", "document.undo_stack.undo", S.Undo, "undo", "edit", 0, 1, icon_text="Undo",
               enabled_when=lambda s: s.can_undo and not s.running),
    # Redo answers both habits on every platform (X11 binds only Ctrl+Shift+Z).
    ActionSpec("redo", "&Redo", "document.undo_stack.redo", (S.Redo, "Ctrl+Shift+Z", "Ctrl+Y"), "redo", "edit", 0, 1,
               icon_text="Redo", enabled_when=lambda s: s.can_redo and not s.running),
    ActionSpec("delete", "&Delete Layer", "delete_layer", S.Delete, "delete", "edit", 1, context="stack",
               enabled_when=lambda s: (s.layer >= 0 or s.selected > 0) and not s.running),
    ActionSpec("duplicate", "D&uplicate Layer", "duplicate_layer", "Ctrl+D", "duplicate", "edit", 1,
               context="stack", enabled_when=lambda s: s.layer >= 0 and not s.running),
    ActionSpec("up", "Move &Up", "move_layer_up", "Alt+Up", "up", "edit", 1, context="stack",
               enabled_when=lambda s: s.layer > 0 and not s.running),
    ActionSpec("down", "Move Do&wn", "move_layer_down", "Alt+Down", "down", "edit", 1, context="stack",
               enabled_when=lambda s: 0 <= s.layer < s.layers - 1 and not s.running),
    ActionSpec("copy", "&Copy", "graph_edits.copy", S.Copy, None, "edit", 2, context="model",
               tip="Copy the selected layers with the wires between them",
               enabled_when=lambda s: s.selected > 0),
    ActionSpec("paste", "&Paste", "graph_edits.paste", S.Paste, None, "edit", 2, context="model",
               tip="Insert copied layers below the selected layer (or at the end)",
               enabled_when=_idle),
    ActionSpec("add_layer", "&Add Layer…", "focus_palette", "Ctrl+L", menu="model",
               tip="Search the layer palette"),
    ActionSpec("add_skip", "Add &Skip Connection", "graph_edits.add_skip_connection", menu="model", group=1,
               tip="Add the selected layers' input to their output (an Add after them)",
               enabled_when=lambda s: s.selected > 0 and not s.running),
    ActionSpec("wrap_residual", "&Wrap in Residual Block", "graph_edits.wrap_in_residual", menu="model",
               group=1, tip="Make a block of the selected layers with a shortcut around them",
               enabled_when=lambda s: s.selected > 0 and not s.running),
    ActionSpec("make_block", "&Make Block from Selection", "graph_edits.make_block", "Ctrl+G", menu="model",
               group=1, tip="Define a block made of the selected layers and use it in their place",
               enabled_when=lambda s: s.selected > 0 and not s.running),
    ActionSpec("expand_block", "E&xpand Block", "graph_edits.expand_block", "Ctrl+Shift+G", menu="model",
               group=1, tip="Put the selected block's layers in its place",
               enabled_when=lambda s: s.block_use and not s.running),
    ActionSpec("edit_block", "Edit Block &Definition…", "block_editors.open_selected", menu="model", group=1,
               tip="Edit the selected block's layers and parameters (every use follows)",
               enabled_when=lambda s: s.block_use and not s.running),
    ActionSpec("freeze", "&Freeze / Unfreeze Selected Layers", "toggle_frozen", "Ctrl+Shift+F", menu="model",
               group=1, context="model",
               tip="Freeze the selected layers (their parameters stop training), or unfreeze them when all are "
                   "frozen",
               enabled_when=lambda s: s.selected > 0 and not s.running),
    ActionSpec("delete_wire", "Delete &Wire", "graph_edits.delete_wire", menu="model", group=1,
               tip="Delete the wires selected on the canvas",
               enabled_when=lambda s: s.wires > 0 and not s.running),
    ActionSpec("load_data", "&Load Data", "data.load_data", "Ctrl+Shift+L", menu="train",
               tip="Load and preview the dataset", enabled_when=_idle),
    ActionSpec("train", "&Train", "training.start", "F5", "train", "train", toolbar=2,
               tip="Train the model (F5)", enabled_when=lambda s: s.train_blocker is None),
    ActionSpec("pause", "&Pause", "training.pause_or_resume", "F6", "pause", "train", toolbar=2,
               tip="Pause training after the current batch (F6)", enabled_when=lambda s: s.running),
    ActionSpec("stop", "S&top", "training.stop", "Shift+F5", "stop", "train", toolbar=2,
               tip="Stop training after the current batch", enabled_when=lambda s: s.running),
    ActionSpec("evaluate", "&Evaluate", "evaluation.evaluate", "F7", "evaluate", "train", toolbar=2,
               tip="Show the trained model's results",
               enabled_when=lambda s: s.can_evaluate and not s.running and not s.evaluating),
    ActionSpec("sweep", "&Sweep…", "sweeps.open_dialog", menu="experiments",
               tip="Train the model with several settings (Optuna: grid, random or TPE) and compare them"),
    ActionSpec("compare_optimizers", "Compare &Optimizers", "sweeps.compare_optimizers", menu="experiments",
               group=1, tip="Train with SGD, SGD with momentum, Adagrad, RMSprop and Adam from the same start "
                            "and overlay their curves",
               enabled_when=lambda s: not s.sweeping and s.sweep_blocker is None),
    ActionSpec("compare_activations", "Compare &Activations", "sweeps.compare_activations", menu="experiments",
               group=1, tip="Train with Sigmoid, Tanh and ReLU activations from the same start and overlay "
                            "their curves",
               enabled_when=lambda s: not s.sweeping and s.sweep_blocker is None),
    ActionSpec("open_study", "Open S&tudy…", "sweeps.open_study", menu="experiments", group=2,
               tip="Watch a study that guidl sweep processes run (here or on other machines)"),
    ActionSpec("about", "&About guidl", "about", menu="help"),
)


def key_bindings(key: QKeySequence.StandardKey) -> list[QKeySequence]:
    """The platform's keys for a standard action (its keyboard scheme decides)."""
    return QKeySequence.keyBindings(key)


def _items(shortcut) -> tuple:
    return () if shortcut is None else shortcut if isinstance(shortcut, tuple) else (shortcut,)


def shortcut_sequences(shortcut, taken=()) -> list[QKeySequence]:
    """A row's keys: each standard key as every key the platform binds it to
    (less those in ``taken``), and the keys named; each key once. A key given
    twice in a window is an "ambiguous shortcut overload" and triggers nothing."""
    sequences: list[QKeySequence] = []
    for item in _items(shortcut):
        if isinstance(item, QKeySequence.StandardKey):
            candidates = [key for key in key_bindings(item) if key not in taken]
        else:
            candidates = [QKeySequence(item)]
        sequences += [key for key in candidates if not key.isEmpty() and key not in sequences]
    return sequences


def build_actions(window: QWidget, contexts: dict[str, QWidget]) -> dict[str, QAction]:
    """One QAction per row of ``ACTIONS``, triggering the row's slot on ``window``."""
    actions: dict[str, QAction] = {}
    # A key a row names is that row's alone, whatever else the platform binds
    # it to (X11's Delete also takes Ctrl+D, Duplicate's).
    named = [QKeySequence(item) for spec in ACTIONS for item in _items(spec.shortcut)
             if not isinstance(item, QKeySequence.StandardKey)]
    used: list[QKeySequence] = []
    for spec in ACTIONS:
        action = QAction(spec.text, window)
        slot = attrgetter(spec.slot)(window)
        action.triggered.connect(lambda _checked=False, slot=slot: slot())
        if spec.icon:
            action.setIcon(icon(spec.icon))
        if spec.icon_text:
            action.setIconText(spec.icon_text)
        own = [QKeySequence(item) for item in _items(spec.shortcut)]  # in the platform's order, first shown
        keys = shortcut_sequences(spec.shortcut, taken=[key for key in named if key not in own] + used)
        used += keys
        action.setShortcuts(keys)
        if spec.tip:
            action.setStatusTip(spec.tip)
            action.setToolTip(spec.tip)
        if spec.context:
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            contexts[spec.context].addAction(action)
        actions[spec.id] = action
    return actions


def fill_menus(menus: dict[str, QMenu], toolbar: QToolBar, actions: dict[str, QAction]) -> None:
    """Put the actions in their menus and on the toolbar, with separators between groups."""
    menu_groups: dict[str, int] = {}
    toolbar_group = None
    for spec in ACTIONS:
        action = actions[spec.id]
        if spec.menu is not None:
            if menu_groups.setdefault(spec.menu, spec.group) != spec.group:
                menus[spec.menu].addSeparator()
                menu_groups[spec.menu] = spec.group
            menus[spec.menu].addAction(action)
        if spec.toolbar is not None:
            if toolbar_group is not None and toolbar_group != spec.toolbar:
                toolbar.addSeparator()
            toolbar_group = spec.toolbar
            toolbar.addAction(action)


def update_actions(actions: dict[str, QAction], state: WindowState) -> None:
    for spec in ACTIONS:
        if spec.enabled_when is not None:
            actions[spec.id].setEnabled(spec.enabled_when(state))
