"""The model stack: an input row, one row per layer, an output row.

Each row shows the layer with its key parameters (and its id, when it has
one), its output shape, its parameter count and, for a graph, what it takes
("Connected to" as Keras prints it; empty: the layer above it). Rows are in
the file's order, which is a topological order of the graph. A frozen
layer (its parameters do not train) shows a snowflake, and one click in the
Frozen column freezes or unfreezes it (one undo step). A layer that
does not fit is marked on its row with the message and the fix. Layers are
dropped in from the palette and dragged to reorder; both go through
``LayerEdits`` and so are undoable.

Scoped to a block (``block="ResidualBlock"``), the rows are the block's own
layers, with the shapes and parameter counts of its first use (the first
repetition); without a use there is nothing to measure, and they show "—".
"""

from __future__ import annotations

from PySide6.QtCore import (
    QAbstractTableModel, QItemSelection, QItemSelectionModel, QMimeData, QModelIndex, Qt, Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont, QPalette
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from ..formatting import format_shape
from ..registry import LAYERS, Entry, UnknownNameError
from ..spec.graph import Wiring, entry_for, resolve_inputs
from .document import LayerEdits, ProjectDocument
from .icons import category_icon, icon
from .palette import LAYER_MIME

ROW_MIME = "application/x-guidl-row"
COLUMNS = ("#", "Layer", "Output shape", "Params", "Frozen", "Inputs")
INPUTS_COLUMN = COLUMNS.index("Inputs")
#: One click on a row's cell here freezes the layer (its parameters stop training) or unfreezes it.
FROZEN_COLUMN = COLUMNS.index("Frozen")
FROZEN_TIP = ("Frozen: the layer's parameters do not train (BatchNorm inside keeps its statistics). "
              "Click to freeze or unfreeze")
#: How a frozen layer's row reads: the ice blue of its snowflake.
FROZEN_COLOR = QColor(2, 132, 199)
INPUTS_TIP = ("What the layer takes (the ids of those layers, #index for one without an id); "
              "empty: the layer above it")


def _batched(shape) -> str:
    return "?" if shape is None else format_shape(shape)


def _value_text(value) -> str:
    if isinstance(value, list):
        return "x".join(map(str, value)) if all(isinstance(v, int) for v in value) else str(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def spec_label(entry: Entry, params: dict) -> str:
    """``ResidualBlock(32, 1)``: the type and its key parameters as the file
    (or the defaults) give them, for rows the analysis has not labelled."""
    defaults = {p.name: p.default for p in entry.params if not p.required}
    values = [params.get(k, defaults.get(k)) for k in entry.info.get("key_params", [])]
    values = [v for v in values if v is not None]
    return f"{entry.name}(" + ", ".join(map(_value_text, values)) + ")" if values else entry.name


def inputs_text(wiring: Wiring, layers, index: int) -> str:
    """What layer ``index`` takes, as the Inputs column shows it."""
    if layers[index].inputs is None:
        return ""  # the layer above it, as in a plain stack
    names = []
    for source in wiring.inputs[index]:
        names.append("input" if source < 0 else layers[source].id or f"#{source}")
    return ", ".join(names)


NOT_USED = "—"


def first_use_report(report, block: str):
    """The report of the first repetition of the first use of ``block``
    (searched through blocks used in blocks too), or None when nothing uses it."""
    if report is None:
        return None
    for layer in report.layers:
        if layer.blocks:
            if layer.type == block:
                return layer.blocks[0]
            found = first_use_report(layer.blocks[0], block)
            if found is not None:
                return found
    return None


class LayerTableModel(QAbstractTableModel):
    #: A drop added (or moved) a layer to this index: a block's view selects it
    #: (the model's view is told by the document's ``selection_requested``).
    inserted = Signal(int)

    def __init__(self, document: ProjectDocument, parent=None, block: str | None = None):
        super().__init__(parent)
        self.document = document
        #: The block whose layers the rows are (None: the model's).
        self.block = block
        self.edits = LayerEdits(document)
        self.wiring = resolve_inputs(self.layers)
        document.report_changed.connect(self._reset)
        if block is not None:
            document.changed.connect(self._reset)  # undo of a layout edit brings no new report

    @property
    def layers(self):
        model = self.document.model
        if self.block is None:
            return model.layers
        return model.blocks[self.block].layers if self.block in model.blocks else []

    def scoped_report(self):
        """The report the rows show: the model's, or the block's first use's."""
        if self.block is None:
            return self.document.report
        return first_use_report(self.document.report, self.block)

    def _reset(self) -> None:
        self.beginResetModel()
        self.wiring = resolve_inputs(self.layers)
        self.endResetModel()

    def is_graph(self) -> bool:
        """Whether any layer names its inputs (else the table is a plain stack's)."""
        return any(layer.inputs is not None for layer in self.layers)

    def entry(self, type_: str) -> Entry | None:
        try:
            return entry_for(self.document.model, type_)
        except UnknownNameError:
            return None

    def label(self, layer_i: int) -> str:
        """``stem: Conv2d(32, 3)``, ``ResidualBlock(32, 1) ×2``."""
        report = self.scoped_report()
        spec_layer = self.layers[layer_i]
        entry = self.entry(spec_layer.type)
        info = report.layers[layer_i] if report and layer_i < len(report.layers) else None
        if entry is None:
            text = spec_layer.type
        elif (info is not None and info.type == spec_layer.type and spec_layer.type in LAYERS
              and self.block is None):  # a block's layers show their "$name" references
            text = info.label
        else:
            text = spec_label(entry, spec_layer.params)
        if spec_layer.repeat != 1:
            text += f" ×{spec_layer.repeat}"
        if self.is_code_layer(layer_i):
            text += "  · code"
        return f"{spec_layer.id}: {text}" if spec_layer.id else text

    def is_code_layer(self, layer_i: int) -> bool:
        """Whether the layer is an autoencoder's code (its bottleneck): the
        encoder ends there, the decoder starts after it."""
        project = self.document.project
        if self.block is not None or self.document.network != "model" or project.task_type != "reconstruction":
            return False
        code = project.task_params().get("code_layer")
        return code is not None and self.layers[layer_i].id == code

    @staticmethod
    def options_text(layer) -> str:
        """The Frozen cell's text: a learning-rate multiplier other than 1 (``lr ×0.1``)."""
        return f"lr ×{layer.lr_multiplier:g}" if layer.lr_multiplier != 1 else ""

    @staticmethod
    def options_tip(layer) -> str:
        state = ("Frozen: its parameters do not train. Click to unfreeze" if layer.frozen
                 else "Trains. Click to freeze it (its parameters stop training)")
        if layer.lr_multiplier != 1:
            state += f"\nLearns at the optimizer's rate × {layer.lr_multiplier:g}"
        return state

    def toggle_frozen(self, layer_i: int) -> None:
        """Freeze layer ``layer_i`` or unfreeze it: one undo step."""
        self.edits.toggle_frozen(layer_i, block=self.block)

    @property
    def layer_count(self) -> int:
        return len(self.layers)

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else self.layer_count + 2

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return {INPUTS_COLUMN: INPUTS_TIP, FROZEN_COLUMN: FROZEN_TIP}.get(section)
        return None

    def layer_index(self, row: int) -> int | None:
        """Index into the layer list for a table row (None for input/output)."""
        return row - 1 if 1 <= row <= self.layer_count else None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        report = self.scoped_report()
        row, column = index.row(), index.column()
        layer_i = self.layer_index(row)
        if layer_i is None:
            return self._edge_data(row == 0, column, role)
        layer = report.layers[layer_i] if report and layer_i < len(report.layers) else None
        spec_layer = self.layers[layer_i]
        unused = self.block is not None and report is None and self.document.report is not None
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return str(layer_i)
            if column == 1:
                return self.label(layer_i)
            if column in (2, 3) and unused:
                return NOT_USED
            if column == 2:
                return _batched(layer.output_shape if layer else None)
            if column == 3:
                return f"{layer.param_count:,}" if layer and layer.output_shape else ""
            if column == FROZEN_COLUMN:
                return self.options_text(spec_layer)
            if column == INPUTS_COLUMN and layer_i < len(self.wiring.inputs):
                return inputs_text(self.wiring, self.layers, layer_i)
        if role == Qt.ItemDataRole.CheckStateRole and column == FROZEN_COLUMN:
            return Qt.CheckState.Checked if spec_layer.frozen else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.DecorationRole and column == FROZEN_COLUMN and spec_layer.frozen:
            return icon("frozen")
        if role == Qt.ItemDataRole.ForegroundRole and spec_layer.frozen and column in (1, 3):
            return QBrush(FROZEN_COLOR)
        if role == Qt.ItemDataRole.DecorationRole and column == 1:
            if layer is not None and layer.error:
                return icon("error")
            if layer is not None and layer.warnings:
                return icon("warning")
            entry = self.entry(spec_layer.type)
            return category_icon(entry.category) if entry else icon("error")
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == INPUTS_COLUMN:
                return INPUTS_TIP
            if column == FROZEN_COLUMN:
                return self.options_tip(spec_layer)
            if column == 3 and spec_layer.frozen and layer is not None:
                return f"{layer.param_count:,} parameters, frozen: they do not train"
            if layer is not None and layer.error:
                return f"Layer {layer_i} ({spec_layer.type}): {layer.message}"
            if layer is not None and layer.warnings:
                return "\n".join(layer.warnings)
            if self.is_code_layer(layer_i):
                return ("The autoencoder's code (task parameter code_layer): the encoder ends here, "
                        "the decoder starts after it")
            entry = self.entry(spec_layer.type)
            return entry.help if entry else None
        if role == Qt.ItemDataRole.BackgroundRole and layer is not None and layer.error:
            return QBrush(QColor(220, 38, 38, 60))
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (0, 3):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _edge_data(self, is_input: bool, column: int, role):
        report = self.scoped_report()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 1 and self.block is not None:
                return "Block input" if is_input else "Block output"
            if column == 2 and self.block is not None and report is None and self.document.report is not None:
                return NOT_USED
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
        if role == Qt.ItemDataRole.ToolTipRole and self.block is not None:
            return ("What the block takes (\"input\" in its layers' inputs), at its first use"
                    if is_input else "What the block gives (its last layer), at its first use")
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
            if name in LAYERS or name in self.document.model.blocks:
                inserted = self.edits.insert(name, position, block=self.block)
                if inserted is not None:
                    self.inserted.emit(inserted)
                return True
            return False
        if data.hasFormat(ROW_MIME):
            source = int(bytes(data.data(ROW_MIME)).decode())
            target = position if position <= source else position - 1
            moved = self.edits.move(source, target, block=self.block)
            if moved is not None and self.block is not None:
                self.inserted.emit(moved)
            return True
        return False


class ModelStackView(QTableView):
    """Emits ``layer_selected(index or -1)``."""

    layer_selected = Signal(int)

    def __init__(self, document: ProjectDocument, parent: QWidget | None = None, block: str | None = None):
        super().__init__(parent)
        self.document = document
        self.table = LayerTableModel(document, self, block)
        self.setModel(self.table)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        # Several layers at once: copy, delete, make a block of them.
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
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
        header.setSectionResizeMode(INPUTS_COLUMN, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(FROZEN_COLUMN, QHeaderView.ResizeMode.ResizeToContents)
        # Widths from the rows on screen and some around them, not every row: re-showing a
        # model of hundreds of layers after each edit stays fast.
        header.setResizeContentsPrecision(50)
        self.setColumnHidden(INPUTS_COLUMN, not self.table.is_graph())  # a plain stack looks as it always did
        self._selected = -1
        self._selected_rows: list[int] = []
        self.table.modelReset.connect(self._restore_selection)
        if block is None:  # the document's selection requests name the model's layers
            document.selection_requested.connect(self.select_layer)
        else:
            self.table.inserted.connect(self.select_layer)
        self.selectionModel().selectionChanged.connect(self._selection_changed)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        # One click anywhere in a row's Frozen cell toggles it, not only on the tiny box.
        index = self.indexAt(event.position().toPoint())
        if (event.button() == Qt.MouseButton.LeftButton and index.isValid()
                and index.column() == FROZEN_COLUMN and self.table.layer_index(index.row()) is not None):
            self.table.toggle_frozen(self.table.layer_index(index.row()))
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 - Qt's name
        # Two quick clicks on the Frozen cell are two toggles, as on a check box.
        index = self.indexAt(event.position().toPoint())
        if index.isValid() and index.column() == FROZEN_COLUMN:
            self.mousePressEvent(event)
            return
        super().mouseDoubleClickEvent(event)

    def selected_layers(self) -> list[int]:
        """The selected layers' indexes, in order."""
        found = (self.table.layer_index(index.row()) for index in self.selectionModel().selectedRows())
        return sorted(index for index in found if index is not None)

    def selected_layer(self) -> int:
        """The selected layer, -1 for none (or for several: the form edits one)."""
        selected = self.selected_layers()
        return selected[0] if len(selected) == 1 else -1

    def select_layer(self, index: int) -> None:
        self.select_layers([index] if index >= 0 else [])

    def select_layers(self, indexes: list[int]) -> None:
        self._selected_rows = [i for i in indexes if 0 <= i < self.table.layer_count]
        self._select_rows(scroll=True)
        self._selection_changed()

    def _select_rows(self, scroll: bool = False) -> None:
        selection = QItemSelection()
        last = self.table.columnCount() - 1
        for index in self._selected_rows:
            selection.select(self.table.index(index + 1, 0), self.table.index(index + 1, last))
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.selectionModel().select(selection, flags)
        if self._selected_rows:
            self.selectionModel().setCurrentIndex(self.table.index(self._selected_rows[0] + 1, 1),
                                                  QItemSelectionModel.SelectionFlag.NoUpdate)
            if scroll:
                self.scrollTo(self.table.index(self._selected_rows[0] + 1, 1))

    def _restore_selection(self) -> None:
        self.setColumnHidden(INPUTS_COLUMN, not self.table.is_graph())
        self._selected_rows = [i for i in self._selected_rows if 0 <= i < self.table.layer_count]
        self._select_rows()
        self._selection_changed()

    def _selection_changed(self, *args) -> None:
        self._selected_rows = self.selected_layers()
        self._selected = self.selected_layer()
        self.layer_selected.emit(self._selected)
