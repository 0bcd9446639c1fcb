"""Keyboard shortcuts: Redo answers Ctrl+Shift+Z and Ctrl+Y on every
platform, and no two actions of the window share a key."""

from collections import Counter

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence

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


def test_no_two_actions_of_the_window_share_a_shortcut(window):
    keys = Counter(key.toString() for action in window.findChildren(QAction)
                   for key in action.shortcuts() if not key.isEmpty())
    assert keys and [key for key, n in keys.items() if n > 1] == []
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
