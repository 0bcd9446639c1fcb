"""Keyboard shortcuts: Redo answers Ctrl+Shift+Z and Ctrl+Y on every
platform, and no two actions of the window share a key."""

import json
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QWidget

from guidl import spec
from guidl.examples import example_path

from guidl.qt.controllers import actions

CTRL_SHIFT_Z, CTRL_Y = QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")


def _edit_and_undo(window) -> int:
    count = len(window.document.project.model.layers)
    window.edits.remove(0)
    window.document.undo_stack.undo()
    assert len(window.document.project.model.layers) == count
    window.tabs.setFocus()  # no text field that takes the keys for its own undo
    return count


def test_ctrl_shift_z_and_ctrl_y_redo(window, qtbot):
    window.activateWindow()  # window shortcuts act in the active window
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    count = _edit_and_undo(window)
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert len(window.document.project.model.layers) == count - 1
    window.document.undo_stack.undo()
    qtbot.keyClick(window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert len(window.document.project.model.layers) == count - 1
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(window.document.project.model.layers) == count


def _scopes(action: QAction, context=None) -> list[tuple[QWidget, bool]]:
    """Where the focus must be for ``action``'s shortcut to fire, as Qt's
    correctActionContext decides: (widget, children too) per widget the action
    is on; an action in a menu is in context where the menu's own action is, in
    the action's context (a WidgetWithChildrenShortcut in the menu bar's menu:
    while the menu bar has the focus)."""
    context = action.shortcutContext() if context is None else context
    if context in (Qt.ShortcutContext.WindowShortcut, Qt.ShortcutContext.ApplicationShortcut):
        return [(action.parent().window(), True)]  # (more than Qt: it also asks for a visible widget)
    scopes = []
    for widget in action.associatedObjects():
        if isinstance(widget, QMenu):
            scopes += _scopes(widget.menuAction(), context)
        elif isinstance(widget, QWidget):
            scopes.append((widget, context == Qt.ShortcutContext.WidgetWithChildrenShortcut))
    return scopes


def _clash(a: QAction, b: QAction) -> bool:
    """Some one focus widget puts both in context: Qt then fires neither
    ("Ambiguous shortcut overload")."""
    return any(wa is wb or (ca and wa.isAncestorOf(wb)) or (cb and wb.isAncestorOf(wa))
               for wa, ca in _scopes(a) for wb, cb in _scopes(b))


def _clashes(window) -> list[str]:
    by_key: dict[str, list[QAction]] = {}
    for action in window.findChildren(QAction):
        for key in action.shortcuts():
            if not key.isEmpty():
                by_key.setdefault(key.toString(), []).append(action)
    return [f"{key}: {a.text()} / {b.text()}" for key, actions_ in by_key.items()
            for i, a in enumerate(actions_) for b in actions_[i + 1:] if _clash(a, b)]


def test_no_two_actions_of_the_window_share_a_shortcut(window):
    assert window.findChildren(QAction) and _clashes(window) == []
    # Del is Delete Layer's in the layer table and the Runs tab's Delete in its table: never both.
    assert sorted(a.text() for a in window.findChildren(QAction)
                  if QKeySequence("Del") in a.shortcuts()) == ["&Delete Layer", "&Delete…"]
    scopes = _scopes(window.actions["delete"])
    assert (window.stack, True) in scopes and (window.menuBar(), True) in scopes  # the table, the Edit menu
    assert _scopes(window.runs.panel.actions_["delete"]) == [(window.runs.panel.table, False)]
    anywhere = QAction("Anywhere", window)
    anywhere.setShortcut(QKeySequence("Del"))
    window.addAction(anywhere)  # a window-wide Del would clash with both
    assert len(_clashes(window)) == 2
    window.removeAction(anywhere)
    assert set(window.redo_action.shortcuts()) >= {CTRL_SHIFT_Z, CTRL_Y}
    # The menu shows the first: the platform's own (Ctrl+Y offscreen, as on Windows; Ctrl+Shift+Z on X11).
    assert window.redo_action.shortcut() == actions.key_bindings(QKeySequence.StandardKey.Redo)[0]


def test_redo_has_each_key_once_whatever_the_platform_binds(monkeypatch):
    # X11 desktops bind Redo to Ctrl+Shift+Z only (under Xvfb the window tests
    # above fail without the fix); the offscreen platform binds Windows' keys.
    for platform in (["Ctrl+Shift+Z", "Redo"], ["Ctrl+Y", "Alt+Shift+Backspace", "Ctrl+Shift+Z", "Redo"],
                     ["Ctrl+Shift+Z"], []):
        monkeypatch.setattr(actions, "key_bindings", lambda key, p=platform: [QKeySequence(k) for k in p])
        spec = next(s for s in actions.ACTIONS if s.id == "redo")
        keys = actions.shortcut_sequences(spec.shortcut)
        assert keys.count(CTRL_SHIFT_Z) == 1 and keys.count(CTRL_Y) == 1, platform
        assert len(keys) == len(set(k.toString() for k in keys)), platform


def _run(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True)
    spec.save(spec.load(example_path("moons_mlp")), path / "project.guidl.json")
    (path / "metrics.csv").write_text("epoch,train_loss,val_loss,val_accuracy,lr\n1,0.5,0.6,0.7,0.1\n")
    (path / "run.json").write_text(json.dumps({
        "format": "guidl-run", "version": 1, "status": "finished", "project": "Two moons MLP",
        "started": "2026-01-01T10:00:00+00:00", "updated": "2026-01-01T10:00:00+00:00", "epochs": 1,
        "device": "cpu", "epochs_completed": 1, "seed": 0}))
    return path


def test_delete_deletes_the_run_in_the_runs_table_and_the_layer_in_the_layer_table(window, qtbot, qtlog, tmp_path):
    window.activateWindow()  # widget shortcuts act in the active window
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    project = tmp_path / "moons.guidl.json"
    spec.save(spec.load(example_path("moons_mlp")), project)
    assert window.open_path(project)
    runs = window.runs
    first, second = _run(runs.runs_folder(), "first"), _run(runs.runs_folder(), "second")
    runs.refresh()
    trashed: list[Path] = []
    runs.trash = trashed.append  # the desktop's trash is not the test's to fill

    window.tabs.setCurrentWidget(window.tabs.widget(
        [window.tabs.tabText(i) for i in range(window.tabs.count())].index("Runs")))
    panel = runs.panel
    panel.select([second])
    panel.table.setFocus()
    qtbot.waitUntil(panel.table.hasFocus, timeout=5_000)
    layers = len(window.document.project.model.layers)
    qtbot.keyClick(panel.table, Qt.Key.Key_Delete)
    assert trashed == [second] and len(window.document.project.model.layers) == layers

    window.tabs.setCurrentIndex(0)  # the Model tab
    window.stack.select_layer(0)
    window.stack.setFocus()
    qtbot.waitUntil(window.stack.hasFocus, timeout=5_000)
    qtbot.keyClick(window.stack, Qt.Key.Key_Delete)
    assert len(window.document.project.model.layers) == layers - 1 and trashed == [second]
    assert first.is_dir()
    assert not [r for r in qtlog.records if "mbiguous" in r.message]

    # What the scopes spare us: a window-wide Del beside Delete Layer, and Qt fires neither.
    anywhere = QAction("Anywhere", window)
    anywhere.setShortcut(QKeySequence("Del"))
    window.addAction(anywhere)
    qtbot.keyClick(window.stack, Qt.Key.Key_Delete)
    assert len(window.document.project.model.layers) == layers - 1
    assert [r for r in qtlog.records if "Ambiguous shortcut overload" in r.message]
