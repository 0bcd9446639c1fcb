"""The model stack: an input row, one row per layer, an output row.

Each row shows the layer with its key parameters, its output shape and its
parameter count; a layer that does not fit is marked on its row with the
message and the fix. Layers are dropped in from the palette and dragged to
reorder; both go through ``LayerEdits`` and so are undoable.
"""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QMimeData, QModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPalette
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from ..formatting import format_shape
from ..registry import LAYERS
from .document import LayerEdits, ProjectDocument
from .icons import category_icon, icon
from .palette import LAYER_MIME

ROW_MIME = "application/x-guidl-row"
COLUMNS = ("#", "Layer", "Output shape", "Params")


def _batched(shape) -> str:
    return "?" if shape is None else format_shape(shape)


class LayerTableModel(QAbstractTableModel):
    def __init__(self, document: ProjectDocument, parent=None):
        super().__init__(parent)
        self.document = document
        self.edits = LayerEdits(document)
        document.report_changed.connect(self._reset)

    def _reset(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    @property
    def layer_count(self) -> int:
        return len(self.document.project.model.layers)

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else self.layer_count + 2

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def layer_index(self, row: int) -> int | None:
        """Index into the layer list for a table row (None for input/output)."""
        return row - 1 if 1 <= row <= self.layer_count else None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        report = self.document.report
        row, column = index.row(), index.column()
        layer_i = self.layer_index(row)
        if layer_i is None:
            return self._edge_data(row == 0, column, role)
        layer = report.layers[layer_i] if report and layer_i < len(report.layers) else None
        spec_layer = self.document.project.model.layers[layer_i]
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return str(layer_i)
            if column == 1:
                return layer.label if layer else spec_layer.type
            if column == 2:
                return _batched(layer.output_shape if layer else None)
            if column == 3:
                return f"{layer.param_count:,}" if layer and layer.output_shape else ""
        if role == Qt.ItemDataRole.DecorationRole and column == 1:
            if layer is not None and layer.error:
                return icon("error")
            if layer is not None and layer.warnings:
                return icon("warning")
            return category_icon(LAYERS.get(spec_layer.type).category)
        if role == Qt.ItemDataRole.ToolTipRole:
            if layer is not None and layer.error:
                return f"Layer {layer_i} ({spec_layer.type}): {layer.message}"
            if layer is not None and layer.warnings:
                return "\n".join(layer.warnings)
            return LAYERS.get(spec_layer.type).help
        if role == Qt.ItemDataRole.BackgroundRole and layer is not None and layer.error:
            return QBrush(QColor(220, 38, 38, 60))
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (0, 3):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _edge_data(self, is_input: bool, column: int, role):
        report = self.document.report
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 1:
                if is_input:
                    dtype = report.input_dtype if report else "float32"
                    return "Input" + (" (token ids)" if dtype == "int64" else "")
                return "Output"
            if column == 2:
                shape = (report.input_shape if is_input else report.output_shape) if report else None
                return _batched(shape)
        if role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setItalic(True)
            return font
        if role == Qt.ItemDataRole.ForegroundRole:
            return QPalette().brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        if role == Qt.ItemDataRole.ToolTipRole:
            return ("The shape of one sample from the dataset (the batch dimension is left out)"
                    if is_input else "What the model gives for one sample")
        return None

    def flags(self, index: QModelIndex):
        base = Qt.ItemFlag.ItemIsDropEnabled
        if not index.isValid():
            return base
        flags = base | Qt.ItemFlag.ItemIsEnabled
        if self.layer_index(index.row()) is not None:
            flags |= Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
        return flags

    # -- drag and drop -------------------------------------------------------------------

    def supportedDropActions(self):
        return Qt.DropAction.CopyAction | Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [LAYER_MIME, ROW_MIME]

    def mimeData(self, indexes) -> QMimeData:
        data = QMimeData()
        rows = sorted({i.row() for i in indexes if self.layer_index(i.row()) is not None})
        if rows:
            data.setData(ROW_MIME, str(self.layer_index(rows[0])).encode())
        return data

    def drop_position(self, row: int, parent: QModelIndex) -> int:
        """Where in the layer list a drop at (row, parent) inserts."""
        if row < 0 and parent.isValid():
            row = parent.row()  # dropped onto a row: insert before it
        if row < 0:
            return self.layer_count
        return max(0, min(row - 1, self.layer_count)) if row > 0 else 0

    def canDropMimeData(self, data, action, row, column, parent) -> bool:
        return data.hasFormat(LAYER_MIME) or data.hasFormat(ROW_MIME)

    def dropMimeData(self, data, action, row, column, parent) -> bool:
        position = self.drop_position(row, parent)
        if data.hasFormat(LAYER_MIME):
            name = bytes(data.data(LAYER_MIME)).decode()
            if name in LAYERS:
                self.edits.insert(name, position)
                return True
            return False
        if data.hasFormat(ROW_MIME):
            source = int(bytes(data.data(ROW_MIME)).decode())
            target = position if position <= source else position - 1
            self.edits.move(source, target)
            return True
        return False


class ModelStackView(QTableView):
    """Emits ``layer_selected(index or -1)``."""

    layer_selected = Signal(int)

    def __init__(self, document: ProjectDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.table = LayerTableModel(document, self)
        self.setModel(self.table)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setDragDropOverwriteMode(False)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self._selected = -1
        self.table.modelReset.connect(self._restore_selection)
        document.selection_requested.connect(self.select_layer)
        self.selectionModel().selectionChanged.connect(self._selection_changed)

    def selected_layer(self) -> int:
        rows = self.selectionModel().selectedRows()
        if not rows:
            return -1
        index = self.table.layer_index(rows[0].row())
        return -1 if index is None else index

    def select_layer(self, index: int) -> None:
        self._selected = index
        if 0 <= index < self.table.layer_count:
            self.selectRow(index + 1)
        else:
            self.clearSelection()
        self.layer_selected.emit(self.selected_layer())

    def _restore_selection(self) -> None:
        if 0 <= self._selected < self.table.layer_count:
            self.selectRow(self._selected + 1)
        self.layer_selected.emit(self.selected_layer())

    def _selection_changed(self, *args) -> None:
        self._selected = self.selected_layer()
        self.layer_selected.emit(self._selected)
