"""The block editor: a block's definition edited in a window of its own.

A block (``model.blocks["ResidualBlock"]``) is defined once and used many
times; this dialog edits the definition, so every use follows. It holds the
block's help text, its parameters (name, kind, default, bounds, choices,
help), its layers (the layer table scoped to the block, with the shapes of
its first use) and the selected layer's properties, where each parameter is
a value or a reference to one of the block's parameters (``"$channels"``).

Like every view of the window, it edits only through ``LayerEdits`` (one
undo step each, on the document's undo stack) and shows what the document
holds after every edit, undo or redo. A value the project cannot take stays
where it was typed, marked, with the reason (the document's field problems,
which Train waits on). One dialog per block: ``BlockEditors`` opens them,
raises the one that is open, follows a renamed block and closes the dialog
of a block that is gone.
"""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtCore import QObject, QSignalBlocker, Qt, Signal, Slot
from PySide6.QtGui import QAction, QBrush, QColor, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView, QCompleter, QDialog, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel,
    QLineEdit, QMenu, QPushButton, QScrollArea, QSplitter, QStackedWidget, QTableWidget,
    QTableWidgetItem, QToolButton, QVBoxLayout, QWidget,
)
from shiboken6 import isValid

from ..registry import LAYERS, Param, UnknownNameError
from ..registry.schema import KINDS
from ..spec import edits as spec_edits
from ..spec.graph import MAX_REPEAT, block_name_problem, block_params, entry_for, reference
from .controllers.actions import shortcut_sequences
from .document import LayerEdits, ProjectDocument
from .layer_fields import WiringFields
from .model_stack import ModelStackView, first_use_report
from .panels import ERROR_STYLE, WARNING_STYLE, message_label
from .param_form import (
    NOTE_STYLE, ComboBox, ParamForm, ParseError, SpinBox, TextField, format_value, parse_value,
)

PARAM_COLUMNS = ("name", "kind", "default", "minimum", "maximum", "choices", "help")
KIND_COLUMN = PARAM_COLUMNS.index("kind")
NUMERIC_KINDS = ("int", "float", "ints", "floats", "int_list", "float_list")
CHOICE_KINDS = ("int", "float", "str")
#: The block parameter kinds a layer parameter of each kind can refer to.
COMPATIBLE_KINDS = {
    "int": ("int",), "float": ("float", "int"), "bool": ("bool",), "str": ("str",),
    "ints": ("int", "ints"), "floats": ("float", "int", "floats", "ints"),
    "int_list": ("int_list",), "float_list": ("float_list", "int_list"), "str_list": ("str_list",),
}
#: A new parameter's default, and the default a kind falls back to when the old one does not fit.
FRESH_DEFAULTS = {"int": 1, "float": 1.0, "bool": False, "str": "", "ints": 1, "floats": 1.0,
                  "int_list": [1], "float_list": [1.0], "str_list": ["a"]}
PARAM_TIPS = {
    "name": "How the block's layers refer to it (\"$name\") and how its uses set it",
    "kind": "What values it takes",
    "default": "The value a use gets when it does not set one (every parameter has one)",
    "minimum": "The smallest value a use may give (numbers only; empty: none)",
    "maximum": "The largest value a use may give (numbers only; empty: none)",
    "choices": "The only values a use may give, separated by commas (empty: any)",
    "help": "What the parameter means, shown beside it in a use's form",
}
REFUSED_BRUSH = QBrush(QColor(220, 38, 38, 60))
NO_LAYER_TEXT = ("Select one of the block's layers to edit it. Drag layers from the palette onto the "
                 "list to add them, or type a layer's name below.")


def compatible(layer_param: Param, block_param: Param) -> bool:
    """Whether a layer's parameter can take the value of a block's parameter."""
    fits = block_param.kind in COMPATIBLE_KINDS.get(layer_param.kind, ()) or (
        block_param.kind == "str" and bool(layer_param.keywords))  # padding: "same"
    return fits and layer_param.check(block_param.default) is None


def converted(config: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Declarations of the parameter with another kind, best first: the old
    default (as a number of the new kind, or in a list), the bounds and
    choices where they still mean something, else the kind's fresh default."""
    base = {"name": config["name"], "kind": kind}
    if config.get("help"):
        base["help"] = config["help"]
    old = config.get("default")
    defaults: list[Any] = []
    if isinstance(old, (int, float)) and not isinstance(old, bool):
        defaults += {"int": [int(old)] if float(old).is_integer() else [], "float": [float(old)],
                     "ints": [int(old)] if float(old).is_integer() else [], "floats": [float(old)],
                     "int_list": [[int(old)]] if float(old).is_integer() else [],
                     "float_list": [[float(old)]]}.get(kind, [])
    if isinstance(old, str) and kind == "str_list" and old:
        defaults.append([old])
    defaults.append(FRESH_DEFAULTS[kind])
    candidates = []
    for default in defaults:
        with_bounds = dict(base, default=default)
        if kind in NUMERIC_KINDS and config.get("kind") in NUMERIC_KINDS:
            for key in ("minimum", "maximum"):
                if key in config:
                    with_bounds[key] = config[key]
        candidates += [with_bounds, dict(base, default=default)]
    return candidates


def _cell_text(config: dict[str, Any], column: str) -> str:
    if column == "choices":
        return ", ".join(format_value(c) for c in config.get("choices") or [])
    if column in ("default", "minimum", "maximum"):
        return format_value(config.get(column)) if column in config else ""
    return str(config.get(column, ""))


def parse_cell(config: dict[str, Any], column: str, text: str) -> tuple[dict[str, Any] | str | None, str | None]:
    """What typing ``text`` into a parameter's ``column`` makes of its
    declaration: (the new declaration, or the new name for "name"), or
    (None, why it is refused)."""
    kind = config.get("kind", "int")
    new = copy.deepcopy(config)
    text = text.strip()
    try:
        if column == "name":
            return text, None
        if column == "help":
            if text:
                new["help"] = text
            else:
                new.pop("help", None)
            return new, None
        if column == "default":
            if not text and kind != "str":
                return None, "every block parameter needs a default"
            new["default"] = text if kind == "str" else parse_value(Param("default", kind), text)
            return new, None
        if column in ("minimum", "maximum"):
            if not text:
                new.pop(column, None)
                return new, None
            integer = kind in ("int", "ints", "int_list")
            new[column] = parse_value(Param(column, "int" if integer else "float"), text)
            return new, None
        if column == "choices":
            if not text:
                new.pop("choices", None)
                return new, None
            if kind == "str":
                new["choices"] = [item.strip() for item in text.split(",") if item.strip()]
            else:
                new["choices"] = parse_value(Param("choices", "int_list" if kind == "int" else "float_list"), text)
            return new, None
    except (ParseError, ValueError) as error:
        return None, str(error)
    return None, f"{column} cannot be typed"


class LinkedParamForm(ParamForm):
    """A ``ParamForm`` where each parameter holds a value or refers to one of
    the block's parameters: the "$" button beside a field links it to a block
    parameter of a compatible kind ("$channels", then shown read-only) or
    back to a value."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        #: The block's parameters, as the links offer them.
        self.block_params: tuple[Param, ...] = ()
        self._links: dict[str, QToolButton] = {}
        self._references: dict[str, QLineEdit] = {}
        self._pages: dict[str, QStackedWidget] = {}

    def link_button(self, name: str) -> QToolButton:
        return self._links[name]

    def reference_field(self, name: str) -> QLineEdit:
        """The read-only field that shows a linked parameter's reference."""
        return self._references[name]

    def is_linked(self, name: str) -> bool:
        return self._pages[name].currentIndex() == 1

    def link_targets(self, name: str) -> list[str]:
        """The block's parameters the layer parameter ``name`` can refer to."""
        param = self.entry.param(name) if self.entry is not None else None
        return [p.name for p in self.block_params if param is not None and compatible(param, p)]

    def link(self, name: str, target: str | None) -> None:
        """Refer to the block's parameter ``target``; None: a value again (the
        block parameter's default where it fits, else the layer's default)."""
        param = self.entry.param(name)
        if target is not None:
            self.param_changed.emit(name, f"${target}")
            return
        current = reference(self._references[name].text())
        source = next((p for p in self.block_params if p.name == current), None)
        value = source.default if source is not None and param.check(source.default) is None else None
        if value is not None:
            self._emit(param, value)
        else:
            self.param_changed.emit(name, None)

    def _rebuild(self, entry) -> None:
        self._links.clear()
        self._references.clear()
        self._pages.clear()
        self._literal: dict[str, QWidget] = {}
        super()._rebuild(entry)
        # Tests and ``commit_edits`` reach the value's own editor.
        self._widgets.update(self._literal)

    def _make_editor(self, param: Param):
        widget, setter = super()._make_editor(param)
        if param.inferred is not None:
            return widget, setter
        self._literal[param.name] = widget
        pages = QStackedWidget()
        pages.addWidget(widget)
        shown = QLineEdit()
        shown.setReadOnly(True)
        shown.setStyleSheet("QLineEdit { font-style: italic; background: palette(window); }")
        shown.setToolTip("Refers to a parameter of the block: each use of the block gives its value")
        pages.addWidget(shown)
        pages.setSizePolicy(widget.sizePolicy())
        button = QToolButton()
        button.setText("$")
        button.setToolTip("Link to a parameter of the block, or back to a value")
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(button)
        menu.aboutToShow.connect(lambda: self._fill_menu(menu, param.name))
        button.setMenu(menu)
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        row.addWidget(pages, 1)
        row.addWidget(button)
        self._links[param.name] = button
        self._references[param.name] = shown
        self._pages[param.name] = pages

        def set_value(value: Any) -> None:
            target = reference(value)
            if target is not None:
                shown.setText(value)
                pages.setCurrentIndex(1)
                button.setDown(False)
            else:
                shown.clear()
                pages.setCurrentIndex(0)
                setter(value)
        return holder, set_value

    def _fill_menu(self, menu: QMenu, name: str) -> None:
        menu.clear()
        targets = self.link_targets(name)
        current = reference(self._references[name].text())
        for target in targets:
            action = menu.addAction(f"${target}", lambda t=target: self.link(name, t))
            action.setToolTip(next((p.help for p in self.block_params if p.name == target), ""))
            if target == current:  # the one it refers to now
                action.setCheckable(True)
                action.setChecked(True)
        if not targets:
            none = menu.addAction("No parameter of the block fits (add one under Parameters)")
            none.setEnabled(False)
        if current is not None:
            menu.addSeparator()
            menu.addAction("A value instead", lambda: self.link(name, None))


class BlockEditor(QDialog):
    """Edits the definition of the block ``block`` (see the module's doc)."""

    #: The block this dialog edits has a new name (the dialog follows it).
    renamed = Signal(str, str)

    def __init__(self, document: ProjectDocument, edits: LayerEdits, block: str,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.document, self.edits, self.block = document, edits, block
        self.setModal(False)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._definition = copy.deepcopy(document.model.blocks[block])
        #: Parameter cells holding refused text: (row, column) -> (text, reason, field-problem key).
        self._refused: dict[tuple[int, int], tuple[str, str]] = {}
        self._filling = False
        self._shown_layer = -1

        # The block's name (every use follows) and help.
        self.name_field = TextField(document, self._key("name"), self._parse_name,
                                    lambda name: self.edits.rename_block(self.block, name))
        self.name_field.edit.setToolTip("The block's name: renaming it renames every use of it")
        self.help_field = TextField(document, self._key("help"), lambda text: (text.strip(), None),
                                    lambda text: self.edits.set_block_help(self.block, text))
        self.help_field.edit.setPlaceholderText("What the block does (the palette's tooltip)")

        # Its parameters.
        self.params_table = QTableWidget(0, len(PARAM_COLUMNS))
        self.params_table.setHorizontalHeaderLabels([c.capitalize() for c in PARAM_COLUMNS])
        for column, name in enumerate(PARAM_COLUMNS):
            self.params_table.horizontalHeaderItem(column).setToolTip(PARAM_TIPS[name])
        self.params_table.verticalHeader().hide()
        self.params_table.setWordWrap(False)  # one line a parameter; a long help shows in full on hover
        self.params_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.params_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.params_table.horizontalHeader()
        for column in range(len(PARAM_COLUMNS) - 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(PARAM_COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.params_table.itemChanged.connect(self._cell_changed)
        self.params_table.itemSelectionChanged.connect(self._update_buttons)
        self.add_param_button = QPushButton("Add")
        self.add_param_button.setToolTip("Declare a new parameter of the block")
        self.add_param_button.clicked.connect(self.add_param)
        self.remove_param_button = QPushButton("Remove")
        self.remove_param_button.setToolTip("Remove the selected parameter: the layers that refer "
                                            "to it take its default value")
        self.remove_param_button.clicked.connect(self.remove_param)
        for button in (self.add_param_button, self.remove_param_button):
            button.setAutoDefault(False)  # Enter in a field applies the field, not a button
        self.params_message = QLabel()
        self.params_message.setWordWrap(True)
        self.params_message.setStyleSheet(NOTE_STYLE)
        self.params_message.hide()
        params_box = QGroupBox("Parameters")
        params_layout = QVBoxLayout(params_box)
        params_layout.addWidget(self.params_table)
        params_layout.addWidget(self.params_message)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_param_button)
        buttons.addWidget(self.remove_param_button)
        buttons.addStretch(1)
        params_layout.addLayout(buttons)

        # Its layers: the layer table, scoped to the block.
        self.stack = ModelStackView(document, block=block)
        self.stack.layer_selected.connect(self.show_layer)
        self.stack.doubleClicked.connect(self._open_nested)
        self.delete_action = self._action("Delete", self.delete_layers, "Del")
        self.duplicate_action = self._action("Duplicate", self.duplicate_layer, "Ctrl+D")
        self.up_action = self._action("Move Up", lambda: self.move_layer(-1), "Alt+Up")
        self.down_action = self._action("Move Down", lambda: self.move_layer(1), "Alt+Down")
        for action in (self.delete_action, self.duplicate_action, self.up_action, self.down_action):
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.stack.addAction(action)
        self.stack.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.add_layer_field = QLineEdit()
        self.add_layer_field.setPlaceholderText("Add a layer: type its name, Enter")
        self.add_layer_field.returnPressed.connect(self._add_typed_layer)
        self.layer_buttons = QHBoxLayout()
        for action in (self.delete_action, self.duplicate_action, self.up_action, self.down_action):
            button = QToolButton()
            button.setDefaultAction(action)
            self.layer_buttons.addWidget(button)
        self.layer_buttons.addWidget(self.add_layer_field, 1)
        self.layers_message = message_label()
        layers_box = QGroupBox("Layers")
        layers_layout = QVBoxLayout(layers_box)
        layers_layout.addWidget(self.stack, 1)
        layers_layout.addLayout(self.layer_buttons)
        layers_layout.addWidget(self.layers_message)

        # The selected layer's properties.
        self.properties = QGroupBox("Layer properties")
        properties_layout = QVBoxLayout(self.properties)
        self.layer_help = QLabel(NO_LAYER_TEXT)
        self.layer_help.setWordWrap(True)
        self.wiring = WiringFields(document, self._key("layer"), lambda: self.layers,
                                   self.stack.selected_layer,
                                   lambda index, value: self.edits.rename_id(index, value, block=self.block),
                                   lambda index, ids: self.edits.set_inputs(index, ids, block=self.block),
                                   lambda index, key, value: self.edits.set_option(index, key, value,
                                                                                   block=self.block))
        self.wiring.inputs_field.edit.setToolTip(self.wiring.inputs_field.edit.toolTip().replace(
            "the model's input", "the block's input"))
        self.wiring_form = QWidget()
        wiring_layout = QFormLayout(self.wiring_form)
        wiring_layout.setContentsMargins(0, 0, 0, 0)
        wiring_layout.addRow("id", self.wiring.id_field.widget)
        wiring_layout.addRow("inputs", self.wiring.inputs_field.widget)
        # A use of another block inside this one: how many times it repeats.
        self.repeat = SpinBox()
        self.repeat.setRange(1, MAX_REPEAT)
        self.repeat.setToolTip("How many times the block is applied in sequence, each time with its own weights")
        self.repeat.valueChanged.connect(self._repeat_changed)
        wiring_layout.addRow("repeat", self.repeat)
        self.repeat_row = [self.repeat, wiring_layout.labelForField(self.repeat)]
        wiring_layout.addRow("frozen", self.wiring.frozen)
        wiring_layout.addRow("lr multiplier", self.wiring.lr_field.widget)
        self.layer_form = LinkedParamForm()
        self.layer_form.bind(document, lambda: self._key(f"layer {self.stack.selected_layer()}") + " · ")
        self.layer_form.param_changed.connect(self._layer_param_changed)
        self.layer_message = message_label()
        properties_layout.addWidget(self.layer_help)
        properties_layout.addWidget(self.wiring_form)
        properties_layout.addWidget(self.layer_form)
        properties_layout.addWidget(self.layer_message)
        properties_layout.addStretch(1)
        properties_scroll = QScrollArea()
        properties_scroll.setWidgetResizable(True)
        properties_scroll.setWidget(self.properties)

        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(params_box)
        left.addWidget(layers_box)
        left.setSizes([200, 380])
        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(left)
        body.addWidget(properties_scroll)
        body.setSizes([620, 360])
        self.uses_label = QLabel()
        self.uses_label.setWordWrap(True)
        top = QFormLayout()
        top.addRow("Name", self.name_field.widget)
        top.addRow("Help", self.help_field.widget)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.uses_label)
        layout.addWidget(body, 1)

        # Undo and redo from here too: the dialog is a window of its own.
        undo = self._action("Undo", document.undo_stack.undo)
        undo.setShortcuts(shortcut_sequences(QKeySequence.StandardKey.Undo))
        redo = self._action("Redo", document.undo_stack.redo)
        # Each key once: a key given twice in a window triggers nothing.
        redo.setShortcuts(shortcut_sequences((QKeySequence.StandardKey.Redo, "Ctrl+Shift+Z", "Ctrl+Y")))
        self.addActions([undo, redo])
        self.undo_action, self.redo_action = undo, redo

        self._following = True
        document.changed.connect(self.sync)
        document.report_changed.connect(self._report_changed)
        document.project_replaced.connect(self.close)
        self.resize(1000, 640)
        self.sync()
        self.stack.setFocus()

    # -- helpers -----------------------------------------------------------------------------

    def _key(self, what: str) -> str:
        """A field-problem key of this dialog (says where the refused value is)."""
        return f"block {self.block} · {what}"

    def _action(self, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        action.triggered.connect(lambda _checked=False: slot())
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        return action

    @property
    def definition(self):
        return self.document.model.blocks.get(self.block)

    @property
    def layers(self):
        definition = self.definition
        return definition.layers if definition is not None else []

    # -- following the document ----------------------------------------------------------------

    @Slot()
    def sync(self) -> None:
        if not isValid(self):
            return
        blocks = self.document.model.blocks
        if self.block not in blocks:
            new = self._renamed_to(blocks)
            if new is None:
                self.close()  # deleted (or undone): nothing left to edit
                return
            self._follow(new)
        self._definition = copy.deepcopy(blocks[self.block])
        self.setWindowTitle(f"Block {self.block}")
        self.name_field.show(self.block)
        self.help_field.show(self.definition.help)
        self._fill_params()
        uses = [i for i, layer in enumerate(self.document.model.layers) if layer.type == self.block]
        inside = [name for name, b in blocks.items() if any(layer.type == self.block for layer in b.layers)]
        places = [f"{len(uses)} use(s) in the model"] + [f"used in {name}" for name in inside]
        self.uses_label.setText(f"Every use of {self.block} follows this definition: " + ", ".join(places)
                                + ("" if uses or inside else " (shapes appear once the model uses it)"))
        self.show_layer(self.stack.selected_layer())

    def _parse_name(self, text: str) -> tuple[object, str | None]:
        name = text.strip()
        if name == self.block:
            return name, None
        if name in self.document.model.blocks:
            return None, f"the project has a block named {name!r} already"
        return name, block_name_problem(name)

    def _renamed_to(self, blocks) -> str | None:
        """The block's new name, when another block now holds exactly its definition."""
        mine = self._definition.to_dict()
        same = [name for name, block in blocks.items() if block.to_dict() == mine]
        editors = getattr(self.parent(), "block_editors", None)
        open_ = set(editors.editors) if editors is not None else set()
        same = [name for name in same if name not in open_]
        return same[0] if len(same) == 1 else None

    def _follow(self, new: str) -> None:
        old = self.block
        for key in list(self.document.field_problems()):
            if key.startswith(f"block {old} · "):
                self.document.set_field_problem(key, None)
        self.block = new
        self.stack.table.block = new
        self.stack.table._reset()
        self.help_field.key, self.name_field.key = self._key("help"), self._key("name")
        self.wiring.id_field.key, self.wiring.inputs_field.key = self._key("layer · id"), self._key("layer · inputs")
        self.wiring.lr_field.key = self._key("layer · lr_multiplier")
        self._refused.clear()  # their field problems went with the old name's keys
        self.renamed.emit(old, new)

    def _report_changed(self) -> None:
        if isValid(self) and self.definition is not None:
            self.show_layer(self.stack.selected_layer())

    # -- parameters ----------------------------------------------------------------------------

    def _fill_params(self) -> None:
        params = self.definition.params
        for cell in [cell for cell in self._refused if cell[0] >= len(params)]:
            self._clear_refused(*cell)  # its parameter is gone (removed, undone)
        self._filling = True
        try:
            table = self.params_table
            if table.rowCount() != len(params):
                table.setRowCount(len(params))
            for row, config in enumerate(params):
                for column, name in enumerate(PARAM_COLUMNS):
                    if column == KIND_COLUMN:
                        self._kind_cell(row, config.get("kind"))
                        continue
                    item = table.item(row, column)
                    if item is None:
                        item = QTableWidgetItem()
                        table.setItem(row, column, item)
                    refused = self._refused.get((row, column))
                    item.setText(refused[0] if refused else _cell_text(config, name))
                    item.setBackground(REFUSED_BRUSH if refused else QBrush())
                    item.setToolTip(refused[1] if refused else
                                    item.text() if name == "help" and item.text() else PARAM_TIPS[name])
                    editable = (name not in ("minimum", "maximum") or config.get("kind") in NUMERIC_KINDS) and \
                               (name != "choices" or config.get("kind") in CHOICE_KINDS)
                    flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                    item.setFlags(flags | Qt.ItemFlag.ItemIsEditable if editable else flags)
        finally:
            self._filling = False
        self._show_refused()
        self._update_buttons()

    def _kind_cell(self, row: int, kind: str) -> None:
        combo = self.params_table.cellWidget(row, KIND_COLUMN)
        if combo is None:
            combo = ComboBox()
            combo.addItems(list(KINDS))
            combo.setToolTip(PARAM_TIPS["kind"])
            combo.currentTextChanged.connect(lambda text, c=combo: self._kind_changed(c, text))
            self.params_table.setCellWidget(row, KIND_COLUMN, combo)
        with QSignalBlocker(combo):
            combo.setCurrentText(kind)

    def kind_combo(self, row: int) -> ComboBox:
        return self.params_table.cellWidget(row, KIND_COLUMN)

    def _kind_changed(self, combo: ComboBox, kind: str) -> None:
        row = next((r for r in range(self.params_table.rowCount())
                    if self.params_table.cellWidget(r, KIND_COLUMN) is combo), -1)
        params = self.definition.params
        if not 0 <= row < len(params) or params[row].get("kind") == kind:
            return
        config = params[row]
        for candidate in converted(config, kind):
            if spec_edits.block_param_problem(self.document.model, self.block, config["name"],
                                              candidate) is None:
                self.edits.set_block_param(self.block, config["name"], candidate)
                return

    def set_cell(self, row: int, column: str, text: str) -> None:
        """Type ``text`` into a parameter's cell (what the user's edit does)."""
        self.params_table.item(row, PARAM_COLUMNS.index(column)).setText(text)

    def _cell_changed(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        row, column = item.row(), item.column()
        params = self.definition.params
        if not 0 <= row < len(params):
            return
        config, name = params[row], PARAM_COLUMNS[column]
        value, problem = parse_cell(config, name, item.text())
        if problem is None:
            problem = self._trial(config, name, value)
        if problem is not None:
            old = self._refused.get((row, column))
            key = old[2] if old else self._key(f"parameter {config['name']} · {name}")
            self._refused[(row, column)] = (item.text(), problem, key)
            self.document.set_field_problem(key, problem)
            self._fill_params()
            return
        self._clear_refused(row, column)
        if name == "name":
            if value != config["name"]:
                self.edits.rename_block_param(self.block, config["name"], value)
        elif value != config:
            self.edits.set_block_param(self.block, config["name"], value)
        self._fill_params()  # an edit that changed nothing (typed back) shows the value again

    def _trial(self, config: dict[str, Any], column: str, value: Any) -> str | None:
        """Why the document would refuse the edit, found on a copy of the model."""
        model = copy.deepcopy(self.document.model)
        try:
            if column == "name":
                spec_edits.rename_block_param(model, self.block, config["name"], value)
            else:
                spec_edits.set_block_param(model, self.block, config["name"], value)
        except spec_edits.EditError as error:
            return str(error)
        return None

    def _clear_refused(self, row: int, column: int) -> None:
        refused = self._refused.pop((row, column), None)
        if refused is not None:
            self.document.set_field_problem(refused[2], None)

    def _show_refused(self) -> None:
        if not self._refused:
            self.params_message.hide()
            return
        names = [config.get("name") for config in self.definition.params]
        lines = [f"{names[row]} · {PARAM_COLUMNS[column]}: {reason}"
                 for (row, column), (_, reason, _key) in sorted(self._refused.items())]
        self.params_message.setText("\n".join(lines) + "\n(the block keeps its last valid values)")
        self.params_message.show()

    def refused_cells(self) -> dict[tuple[int, str], tuple[str, str]]:
        """Cells holding refused text: (row, column name) -> (text, reason)."""
        return {(row, PARAM_COLUMNS[column]): value[:2] for (row, column), value in self._refused.items()}

    def add_param(self) -> None:
        names = {config.get("name") for config in self.definition.params}
        name = next(f"param{i}" if i else "param" for i in range(len(names) + 1)
                    if (f"param{i}" if i else "param") not in names)
        self.edits.add_block_param(self.block, {"name": name, "kind": "int", "default": 1})
        row = len(self.definition.params) - 1
        self.params_table.setCurrentCell(row, 0)
        self.params_table.editItem(self.params_table.item(row, 0))

    def remove_param(self) -> None:
        row = self.params_table.currentRow()
        params = self.definition.params
        if 0 <= row < len(params):
            for column in range(len(PARAM_COLUMNS)):
                self._clear_refused(row, column)
            self.edits.remove_block_param(self.block, params[row]["name"])

    def _update_buttons(self) -> None:
        self.remove_param_button.setEnabled(0 <= self.params_table.currentRow() < len(self.definition.params)
                                            if self.definition is not None else False)

    # -- layers --------------------------------------------------------------------------------

    def insert_layer(self, type_name: str, position: int | None = None) -> int | None:
        """Add a layer (or a use of another block) to the block, below the
        selected layer or at the end; the new layer is selected."""
        if position is None:
            selected = self.stack.selected_layer()
            position = selected + 1 if selected >= 0 else None
        index = self.edits.insert(type_name, position, block=self.block)
        if index is not None:
            self.stack.select_layer(index)
        return index

    def _add_typed_layer(self) -> None:
        text = self.add_layer_field.text().strip()
        model = self.document.model
        names = {name.lower(): name for name in [*LAYERS.names(), *model.blocks]}
        name = names.get(text.lower())
        if name is None:
            self._show(self.layers_message, f"{text!r} is neither a layer of the catalogue nor a block",
                       ERROR_STYLE)
            return
        self.layers_message.hide()
        if self.insert_layer(name) is not None:
            self.add_layer_field.clear()

    def delete_layers(self) -> None:
        selected = self.stack.selected_layers()
        if selected:
            self.edits.remove_layers(selected, block=self.block)

    def duplicate_layer(self) -> None:
        index = self.stack.selected_layer()
        if index >= 0:
            copy_index = self.edits.duplicate(index, block=self.block)
            if copy_index is not None:
                self.stack.select_layer(copy_index)

    def move_layer(self, step: int) -> None:
        index = self.stack.selected_layer()
        if index >= 0:
            moved = self.edits.move(index, index + step, block=self.block)
            if moved is not None:
                self.stack.select_layer(moved)

    def _open_nested(self, index) -> None:
        layer = self.stack.table.layer_index(index.row())
        editors = getattr(self.parent(), "block_editors", None)
        if layer is not None and editors is not None and self.layers[layer].type in self.document.model.blocks:
            editors.open(self.layers[layer].type)

    def _update_layer_actions(self) -> None:
        index, count = self.stack.selected_layer(), len(self.layers)
        self.delete_action.setEnabled(bool(self.stack.selected_layers()) and count > 1)
        self.duplicate_action.setEnabled(index >= 0)
        self.up_action.setEnabled(index > 0)
        self.down_action.setEnabled(0 <= index < count - 1)

    # -- the selected layer's properties ---------------------------------------------------------

    @Slot(int)
    def show_layer(self, index: int) -> None:
        if not isValid(self) or self.definition is None:
            return
        self._update_layer_actions()
        layers = self.layers
        if index != self._shown_layer:
            self.wiring.discard(self.document)
            self._shown_layer = index
        model = self.document.model
        try:
            entry = entry_for(model, layers[index].type) if 0 <= index < len(layers) else None
        except UnknownNameError:
            entry = None
        if entry is None:
            self.properties.setTitle("Layer properties")
            self.layer_help.setText(NO_LAYER_TEXT)
            self.wiring_form.hide()
            self.layer_form.set_entry(None, {})
            self.layer_message.hide()
            return
        layer = layers[index]
        self.properties.setTitle(f"Layer {index}: {layer.type}")
        self.layer_help.setText(entry.help + "\nThe $ beside a field links it to a parameter of the block.")
        self.wiring_form.show()
        self.wiring.show(layer)
        for widget in self.repeat_row:
            widget.setVisible(bool(entry.info.get("block")))
        with QSignalBlocker(self.repeat):
            self.repeat.setValue(layer.repeat)
        self.layer_form.block_params = block_params(self.definition)
        report = first_use_report(self.document.report, self.block)
        info = report.layers[index] if report is not None and index < len(report.layers) else None
        inferred = ({p.name: info.params.get(p.name) for p in entry.params if p.inferred}
                    if info is not None and not entry.info.get("block") else {})
        self.layer_form.set_entry(entry, layer.params, inferred)
        if info is not None and info.error:
            self._show(self.layer_message, f"At the first use: {info.message}", ERROR_STYLE)
        elif info is not None and info.warnings:
            self._show(self.layer_message, "\n".join(info.warnings), WARNING_STYLE)
        else:
            self.layer_message.hide()

    @staticmethod
    def _show(label: QLabel, text: str, style: str) -> None:
        label.setStyleSheet(style)
        label.setText(text)
        label.show()

    def _repeat_changed(self, value: int) -> None:
        index = self.stack.selected_layer()
        if index >= 0:
            self.edits.set_repeat(index, value, block=self.block)

    def _layer_param_changed(self, name: str, value) -> None:
        index = self.stack.selected_layer()
        if index >= 0:
            self.edits.set_param(index, name, value, block=self.block)

    # -- closing ---------------------------------------------------------------------------------

    def done(self, result: int) -> None:
        self._let_go()
        super().done(result)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._let_go()
        super().closeEvent(event)

    def _let_go(self) -> None:
        """Stop following the document; what is typed here and refused no
        longer holds Train back once the dialog is gone."""
        if not self._following:
            return
        self._following = False
        self.layer_form.discard_edits()
        for key in list(self.document.field_problems()):
            if key.startswith(f"block {self.block} · "):
                self.document.set_field_problem(key, None)
        self.document.changed.disconnect(self.sync)
        self.document.report_changed.disconnect(self._report_changed)
        self.document.project_replaced.disconnect(self.close)


class BlockEditors(QObject):
    """The window's block editors: one per block, opened from the Model menu,
    the layer table (double-click on a use, context menu) and the palette."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.editors: dict[str, BlockEditor] = {}
        window.stack.doubleClicked.connect(self._table_double_clicked)
        # A canvas that says when a node is activated (double-clicked) opens a use's block too.
        activated = getattr(getattr(window, "canvas", None), "layer_activated", None)
        if activated is not None:
            activated.connect(self.open_layer)
        window.model_tab.edit_block_requested.connect(self.open)
        palette = getattr(window, "palette_widget", None)
        if palette is not None and hasattr(palette, "block_edit_requested"):
            palette.block_edit_requested.connect(self.open)

    def open(self, name: str) -> BlockEditor | None:
        """Show the editor of block ``name`` (raising the one already open)."""
        if name not in self.window.document.model.blocks:
            return None
        editor = self.editors.get(name)
        if editor is None or not isValid(editor):
            editor = BlockEditor(self.window.document, self.window.edits, name, self.window)
            self.editors[name] = editor
            editor.renamed.connect(self._renamed)
            editor.finished.connect(lambda _result, e=editor: self._closed(e))
        editor.show()
        editor.raise_()
        editor.activateWindow()
        return editor

    @Slot()
    def open_selected(self) -> BlockEditor | None:
        """The editor of the block the selected layer uses."""
        selected = self.window.graph_edits.selection()
        return self.open_layer(selected[0]) if len(selected) == 1 else None

    @Slot(int)
    def open_layer(self, index: int) -> BlockEditor | None:
        """The editor of the block that layer ``index`` of the model uses (None: not a use)."""
        model = self.window.document.model
        if 0 <= index < len(model.layers) and model.layers[index].type in model.blocks:
            return self.open(model.layers[index].type)
        return None

    def _table_double_clicked(self, index) -> None:
        layer = self.window.stack.table.layer_index(index.row())
        if layer is not None:
            self.open_layer(layer)

    def set_enabled(self, enabled: bool) -> None:
        """No edits while a run trains the project as it was (as the window's own views)."""
        for editor in self.editors.values():
            if isValid(editor):
                editor.setEnabled(enabled)
                editor.undo_action.setEnabled(enabled)
                editor.redo_action.setEnabled(enabled)

    def _renamed(self, old: str, new: str) -> None:
        editor = self.editors.pop(old, None)
        if editor is not None:
            self.editors[new] = editor

    def _closed(self, editor: BlockEditor) -> None:
        for name, open_editor in list(self.editors.items()):
            if open_editor is editor:
                del self.editors[name]
