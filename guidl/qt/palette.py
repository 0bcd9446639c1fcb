"""The layer palette: layers grouped by category, searchable, draggable,
and the project's own blocks under "Blocks" (they follow the document)."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtWidgets import QLineEdit, QMenu, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from ..registry import LAYERS
from ..spec.graph import block_entry
from .icons import category_icon

BLOCKS_CATEGORY = "Blocks"

LAYER_MIME = "application/x-guidl-layer"


class _Tree(QTreeWidget):
    def mimeData(self, items) -> QMimeData:
        data = QMimeData()
        names = [item.data(0, Qt.ItemDataRole.UserRole) for item in items]
        names = [n for n in names if n]
        if names:
            data.setData(LAYER_MIME, names[0].encode())
            data.setText(names[0])
        return data

    def mimeTypes(self) -> list[str]:
        return [LAYER_MIME]


def palette_mime(name: str) -> QMimeData:
    """What a drag from the palette carries (a drop and a test share it)."""
    data = QMimeData()
    data.setData(LAYER_MIME, name.encode())
    data.setText(name)
    return data


class LayerPalette(QWidget):
    """Emits ``layer_requested(name)`` on double-click or Enter; drags carry
    ``LAYER_MIME``. A block's context menu offers to edit its definition
    (``block_edit_requested(name)``)."""

    layer_requested = Signal(str)
    block_edit_requested = Signal(str)

    def __init__(self, document=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search layers")
        self.search.setClearButtonEnabled(True)
        self.tree = _Tree()
        self.tree.setHeaderHidden(True)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QTreeWidget.DragDropMode.DragOnly)
        self.tree.setRootIsDecorated(True)
        layout.addWidget(self.search)
        layout.addWidget(self.tree)
        self.items: dict[str, QTreeWidgetItem] = {}
        for category, entries in LAYERS.categories().items():
            group = self._group(category)
            for entry in entries:
                self._add_item(group, entry)
        # The project's blocks: hidden while it has none.
        self.blocks_group = self._group(BLOCKS_CATEGORY)
        self.blocks_group.setHidden(True)
        self._blocks_shown: list[tuple[str, str]] = []
        self.tree.expandAll()
        self.tree.itemActivated.connect(self._activated)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.search.textChanged.connect(self._filter)
        self.search.returnPressed.connect(self._first_match)
        if document is not None:
            document.changed.connect(self.sync_blocks)
            self.sync_blocks()

    def _group(self, category: str) -> QTreeWidgetItem:
        group = QTreeWidgetItem([category])
        group.setFlags(Qt.ItemFlag.ItemIsEnabled)
        group.setIcon(0, category_icon(category))
        font = group.font(0)
        font.setBold(True)
        group.setFont(0, font)
        self.tree.addTopLevelItem(group)
        return group

    def _add_item(self, group: QTreeWidgetItem, entry) -> QTreeWidgetItem:
        item = QTreeWidgetItem([entry.name])
        item.setData(0, Qt.ItemDataRole.UserRole, entry.name)
        item.setToolTip(0, entry.help)
        item.setStatusTip(0, entry.help)
        item.setIcon(0, category_icon(group.text(0)))
        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                      | Qt.ItemFlag.ItemIsDragEnabled)
        group.addChild(item)
        self.items[entry.name] = item
        return item

    def sync_blocks(self) -> None:
        """List the project's blocks (rebuilt only when they changed)."""
        blocks = self.document.model.blocks
        entries = [block_entry(name, block) for name, block in blocks.items() if name not in LAYERS]
        shown = [(entry.name, entry.help) for entry in entries]
        if shown == self._blocks_shown:
            return
        self._blocks_shown = shown
        for index in reversed(range(self.blocks_group.childCount())):
            child = self.blocks_group.takeChild(index)
            self.items.pop(child.data(0, Qt.ItemDataRole.UserRole), None)
        for entry in entries:
            self._add_item(self.blocks_group, entry)
        self.blocks_group.setExpanded(True)
        self._filter(self.search.text())

    def block_names(self) -> list[str]:
        return [self.blocks_group.child(i).data(0, Qt.ItemDataRole.UserRole)
                for i in range(self.blocks_group.childCount())]

    def _activated(self, item: QTreeWidgetItem) -> None:
        name = item.data(0, Qt.ItemDataRole.UserRole)
        if name:
            self.layer_requested.emit(name)

    def block_menu(self, name: str) -> QMenu:
        """The context menu of the block ``name`` in the palette."""
        menu = QMenu(self)
        menu.addAction("Add to the Model", lambda: self.layer_requested.emit(name))
        menu.addAction("Edit Block Definition…", lambda: self.block_edit_requested.emit(name))
        return menu

    def _context_menu(self, point) -> None:
        item = self.tree.itemAt(point)
        if item is None or item.parent() is not self.blocks_group:
            return
        menu = self.block_menu(item.data(0, Qt.ItemDataRole.UserRole))
        menu.exec(self.tree.viewport().mapToGlobal(point))
        menu.deleteLater()

    def _filter(self, text: str) -> None:
        text = text.strip().lower()
        for index in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(index)
            visible = 0
            for child_index in range(group.childCount()):
                child = group.child(child_index)
                name = child.data(0, Qt.ItemDataRole.UserRole)
                shown = not text or text in name.lower() or text in child.toolTip(0).lower()
                child.setHidden(not shown)
                visible += shown
            group.setHidden(visible == 0)

    def _first_match(self) -> None:
        for name, item in self.items.items():
            if not item.isHidden() and not item.parent().isHidden():
                self.layer_requested.emit(name)
                return
