"""The window's graph commands (Edit and Model menus): copy and paste layers,
add a skip connection, wrap in a residual block, make and expand blocks,
delete a wire. They act on the view that has the focus: the canvas's
selection when the canvas has it, else the layer table's."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QObject, Slot
from PySide6.QtWidgets import QApplication
from shiboken6 import isValid

from ...spec.edits import CLIPBOARD_MIME


class GraphController(QObject):
    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        # A wire selected on the canvas enables Delete Wire.
        scene = self.canvas.scene() if self.canvas is not None else None
        if scene is not None:
            scene.selectionChanged.connect(self._canvas_selection_changed)

    @Slot()
    def _canvas_selection_changed(self) -> None:
        # The scene also says so while the window is being torn down (its items go).
        if getattr(self.window, "actions", None) and isValid(self.window.stack):
            self.window.update_actions()

    @property
    def canvas(self):
        return getattr(self.window, "canvas", None)

    def _canvas_has_focus(self) -> bool:
        canvas = self.canvas
        if canvas is None:
            return False
        focus = QApplication.focusWidget()
        return focus is not None and (focus is canvas or canvas.isAncestorOf(focus))

    def selection(self) -> list[int]:
        """The selected layers of the view in use, in order."""
        canvas = self.canvas
        if self._canvas_has_focus() and hasattr(canvas, "selected_layers"):
            selected = canvas.selected_layers()
        else:
            selected = self.window.stack.selected_layers()
        # A view may still hold a replaced project's selection for a moment: only real layers.
        count = len(self.window.document.model.layers)
        return [index for index in selected if 0 <= index < count]

    def selected_wires(self) -> list[tuple[int, int]]:
        canvas = self.canvas
        if canvas is None or not hasattr(canvas, "selected_wires"):
            return []
        return [(wire.source, wire.target) for wire in canvas.selected_wires() if wire.target >= 0]

    def is_block_use(self) -> bool:
        selected = self.selection()
        model = self.window.document.model
        return (len(selected) == 1 and 0 <= selected[0] < len(model.layers)
                and model.layers[selected[0]].type in model.blocks)

    # -- commands ---------------------------------------------------------------------------------

    @Slot()
    def copy(self) -> None:
        """The selected layers and their inner wires onto the clipboard, as
        guidl's own type and as text (JSON)."""
        text = self.window.edits.copy(self.selection())
        if text is None:
            return
        data = QMimeData()
        data.setData(CLIPBOARD_MIME, text.encode("utf-8"))
        data.setText(text)
        QApplication.clipboard().setMimeData(data)
        self.window.statusBar().showMessage(f"Copied {len(self.selection())} layer(s)", 4000)

    @Slot()
    def paste(self) -> None:
        """The clipboard's layers below the selection (or at the end)."""
        data = QApplication.clipboard().mimeData()
        if data is None:
            return
        text = (bytes(data.data(CLIPBOARD_MIME)).decode("utf-8", "replace")
                if data.hasFormat(CLIPBOARD_MIME) else data.text())
        if not text.strip():
            self.window.statusBar().showMessage("Paste: the clipboard is empty", 4000)
            return
        selected = self.selection()
        pasted = self.window.edits.paste(text, selected[-1] + 1 if selected else None)
        if pasted:
            self.window.stack.select_layers(pasted)  # ready to move, copy or make a block of
            first, last = pasted[0], pasted[-1]
            where = f"layer {first}" if first == last else f"layers {first}–{last}"
            self.window.statusBar().showMessage(f"Pasted {len(pasted)} layer(s) as {where}", 4000)
        # Refused (not layers, say): the document's edit_refused says why in the status bar.

    @Slot()
    def add_skip_connection(self) -> None:
        """An Add around the selected layers: their output plus their input."""
        selected = self.selection()
        if selected:
            self.window.edits.add_skip_connection(selected[0], selected[-1])

    @Slot()
    def wrap_in_residual(self) -> None:
        selected = self.selection()
        if selected:
            self.window.edits.wrap_in_residual(selected)

    @Slot()
    def make_block(self) -> None:
        selected = self.selection()
        if selected:
            self.window.edits.make_block(selected)

    @Slot()
    def expand_block(self) -> None:
        selected = self.selection()
        if len(selected) == 1:
            self.window.edits.expand_block(selected[0])

    @Slot()
    def delete_wire(self) -> None:
        """Delete the wires selected on the canvas (one undo step)."""
        wires = self.selected_wires()
        if not wires:
            return
        edits, stack = self.window.edits, self.window.document.undo_stack
        if len(wires) == 1:
            edits.disconnect(*wires[0])
            return
        stack.beginMacro("Delete wires")
        try:
            # From the last target up: a merge removed with its last wire shifts only later rows.
            for source, target in sorted(wires, key=lambda wire: wire[1], reverse=True):
                edits.disconnect(source, target)
        finally:
            stack.endMacro()
