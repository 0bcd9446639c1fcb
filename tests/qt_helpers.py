"""Helpers for the GUI tests that need Qt (``helpers`` stays free of it)."""

from PySide6.QtCore import Qt


def type_text(qtbot, editor, text: str, enter: bool = True) -> None:
    """Type ``text`` over an editor's contents as a user does, then Enter."""
    editor.setFocus()
    editor.selectAll()
    qtbot.keyClicks(editor, text)
    if enter:
        qtbot.keyClick(editor, Qt.Key.Key_Return)
