"""A form generated from a registry entry's parameter schema.

Used for layers, losses, optimizers, schedulers and datasets alike: spin
boxes with the schema's bounds, combo boxes for choices, check boxes, text
fields for numbers, tuples and lists (checked as you type, with the schema's
own message), read-only values for sizes guidl infers.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton,
    QSpinBox, QWidget,
)

from ..registry import REQUIRED, Entry, Param

INT_LIMIT = 2**31 - 1


class _Null:
    """An explicit JSON null, for parameters whose default is not null
    (BatchNorm's momentum: None means a cumulative average)."""

    def __repr__(self) -> str:
        return "NULL"


NULL = _Null()


def apply_param(params: dict, name: str, value: Any) -> None:
    """What a form's ``param_changed`` means for a params dict."""
    if value is None:
        params.pop(name, None)
    elif value is NULL:
        params[name] = None
    else:
        params[name] = value


INVALID_STYLE = "border: 1px solid #dc2626; border-radius: 3px; padding: 1px;"


def format_value(value: Any) -> str:
    if value is None or value is REQUIRED:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same number
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


class ParseError(ValueError):
    pass


def _number(text: str, integer: bool) -> int | float:
    try:
        if integer:
            return int(text)
        value = float(text)
    except ValueError:
        raise ParseError(f"{text!r} is not {'an integer' if integer else 'a number'}") from None
    if not math.isfinite(value):
        raise ParseError("must be a finite number")
    return value


def parse_value(param: Param, text: str) -> Any:
    """The JSON value typed as ``text`` for ``param`` (``None`` for empty)."""
    text = text.strip()
    if not text:
        return None
    if text.lower() in ("none", "null") and param.nullable:
        return NULL
    if text in param.keywords:
        return text
    kind = param.kind
    if kind == "str":
        return text
    items = [t.strip() for t in text.strip("[]()").split(",") if t.strip()]
    if kind == "str_list":
        return items
    integer = kind in ("int", "ints", "int_list")
    if kind in ("int", "float"):
        return _number(text, integer)
    values = [_number(t, integer) for t in items]
    if kind in ("ints", "floats") and len(values) == 1:
        return values[0]
    return values


class ParamForm(QWidget):
    """Emits ``param_changed(name, value)`` for each valid edit; ``value`` is
    ``None`` to drop the parameter (its default applies)."""

    param_changed = Signal(str, object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.layout_ = QFormLayout(self)
        self.layout_.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.entry: Entry | None = None
        self._setters: dict[str, Callable[[Any], None]] = {}
        self._widgets: dict[str, QWidget] = {}

    def editor(self, name: str) -> QWidget:
        """The editor widget of one parameter (tests drive the form through it)."""
        return self._widgets[name]

    def set_entry(self, entry: Entry | None, params: dict[str, Any],
                  inferred: dict[str, Any] | None = None) -> None:
        if entry is None or self.entry is None or entry.name != self.entry.name or \
                entry.params != self.entry.params:
            self._rebuild(entry)
        for name, setter in self._setters.items():
            param = entry.param(name)
            if param.inferred is not None:
                value = (inferred or {}).get(name)
            elif name in params and params[name] is None and param.default is not None:
                value = NULL
            else:
                value = params.get(name, None if param.default is REQUIRED else param.default)
            setter(value)

    def _rebuild(self, entry: Entry | None) -> None:
        while self.layout_.rowCount():
            self.layout_.removeRow(0)
        self._setters.clear()
        self._widgets.clear()
        self.entry = entry
        if entry is None:
            return
        if not entry.params:
            note = QLabel("No parameters.")
            note.setEnabled(False)
            self.layout_.addRow(note)
        for param in entry.params:
            widget, setter = self._make_editor(param)
            label = QLabel(param.name + ("" if param.inferred is None else " (inferred)"))
            label.setToolTip(param.help)
            widget.setToolTip(param.help + (f"\nDefault: {format_value(param.default)}"
                                            if param.default not in (REQUIRED, None) else ""))
            self.layout_.addRow(label, widget)
            self._setters[param.name] = setter
            self._widgets[param.name] = widget

    def _emit(self, param: Param, value: Any) -> None:
        if value is None and not param.nullable and param.default is not REQUIRED:
            self.param_changed.emit(param.name, None)
        elif value is not None and value is not NULL and not param.required and value == param.default:
            self.param_changed.emit(param.name, None)  # keep files lean: the default applies
        else:
            self.param_changed.emit(param.name, value)

    def _make_editor(self, param: Param) -> tuple[QWidget, Callable[[Any], None]]:
        if param.inferred is not None:
            label = QLabel()
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setEnabled(False)
            return label, lambda value: label.setText(format_value(value) or "from the layer before")
        if param.kind == "bool" and not param.nullable:
            box = QCheckBox()
            box.toggled.connect(lambda checked: self._emit(param, checked))

            def set_bool(value):
                box.blockSignals(True)
                box.setChecked(bool(value))
                box.blockSignals(False)
            return box, set_bool
        if param.choices is not None or (param.kind == "bool" and param.nullable):
            combo = QComboBox()
            options: list[Any] = list(param.choices) if param.choices is not None else [True, False]
            if param.nullable:
                options = [None] + options
            for option in options:
                combo.addItem("default" if option is None else format_value(option), option)
            combo.currentIndexChanged.connect(lambda index: self._emit(param, combo.itemData(index)))

            def set_choice(value):
                combo.blockSignals(True)
                index = combo.findData(value)
                combo.setCurrentIndex(max(index, 0))
                combo.blockSignals(False)
            return combo, set_choice
        if param.kind == "int" and not param.nullable:
            spin = QSpinBox()
            low = int(param.minimum) if param.minimum is not None else -INT_LIMIT
            high = int(param.maximum) if param.maximum is not None else INT_LIMIT
            if param.exclusive_minimum:
                low += 1
            spin.setRange(max(low, -INT_LIMIT), min(high, INT_LIMIT))
            spin.setAccelerated(True)
            spin.valueChanged.connect(lambda value: self._emit(param, value))

            def set_int(value):
                spin.blockSignals(True)
                spin.setValue(int(value) if isinstance(value, int) else spin.minimum())
                spin.blockSignals(False)
            return spin, set_int
        return self._line_editor(param)

    def _line_editor(self, param: Param) -> tuple[QWidget, Callable[[Any], None]]:
        line = QLineEdit()
        if param.default not in (REQUIRED, None):
            line.setPlaceholderText(format_value(param.default)
                                    + (" (type none for null)" if param.nullable else ""))
        elif param.nullable:
            line.setPlaceholderText("none")
        hint = {"ints": "a number, or one per dimension: 3, 5", "floats": "a number, or one per dimension",
                "int_list": "integers separated by commas", "float_list": "numbers separated by commas",
                "str_list": "names separated by commas"}.get(param.kind)
        if hint:
            line.setStatusTip(hint)

        def edited(text: str) -> None:
            try:
                value = parse_value(param, text)
                if value is None and param.required:
                    raise ParseError(f"{param.name} is required")
                problem = param.check(value) if value not in (None, NULL) else None
            except ParseError as error:
                problem = str(error)
                value = None
            if problem:
                line.setStyleSheet(INVALID_STYLE)
                line.setToolTip(f"{param.name}: {problem}")
                return
            line.setStyleSheet("")
            line.setToolTip(param.help)
            self._emit(param, value)

        line.textEdited.connect(edited)

        def set_text(value):
            if line.hasFocus():
                if line.styleSheet():
                    return  # keep what the user is typing, even while it is invalid
                try:
                    if parse_value(param, line.text()) == (None if value is NULL else value):
                        return  # "3, " already means 3: leave the text as typed
                except ParseError:
                    pass
            line.setText("none" if value is NULL else format_value(value))
            line.setStyleSheet("")

        if param.name == "path" and param.kind == "str":
            holder = QWidget()
            row = QHBoxLayout(holder)
            row.setContentsMargins(0, 0, 0, 0)
            row.addWidget(line)
            browse = QPushButton("Browse…")
            row.addWidget(browse)

            def choose() -> None:
                folder = self.entry is not None and self.entry.name == "image_folder"
                chosen = (QFileDialog.getExistingDirectory(self, "Choose the image folder") if folder
                          else QFileDialog.getOpenFileName(self, "Choose the data file")[0])
                if chosen:
                    line.setText(chosen)
                    edited(chosen)

            browse.clicked.connect(choose)
            holder.line = line  # for tests and focus handling
            return holder, set_text
        return line, set_text
