"""A form generated from a registry entry's parameter schema.

Used for layers, losses, optimizers, schedulers and datasets alike: spin
boxes with the schema's bounds, combo boxes for choices, check boxes, text
fields for numbers, tuples and lists, read-only values for sizes guidl infers.

A value reaches the document only when it is valid, and only when the user
is done with it (Enter, focus out, a step of a spin box): an invalid text
stays in its field, marked, with the schema's reason beside it, while the
model keeps its last valid value. A form bound to the document
(``ParamForm.bind``) reports such fields as ``ProjectDocument.field_problems``,
which keep Train disabled.

Spin boxes and combo boxes here take the mouse wheel only when they have the
focus, so scrolling a form never changes a setting.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout,
    QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget,
)

from ..registry import REQUIRED, Entry, Param
from .sweep_this import add_sweep_entry, sweepable

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
NOTE_STYLE = "color: #dc2626;"


# -- widgets that leave the mouse wheel to the scroll area unless focused ----------------------


class _WheelWhenFocused:
    """Takes the mouse wheel only with the focus: an unfocused field passes
    the wheel on, so the form scrolls. A spin box's typing reaches
    ``valueChanged`` on Enter or focus out, not at every keystroke."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        if isinstance(self, QAbstractSpinBox):
            self.setKeyboardTracking(False)

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()


class SpinBox(_WheelWhenFocused, QSpinBox):
    """A spin box that steps with the wheel only when it has the focus."""


class DoubleSpinBox(_WheelWhenFocused, QDoubleSpinBox):
    """``SpinBox`` for floats."""


class ComboBox(_WheelWhenFocused, QComboBox):
    """A combo box that changes with the wheel only when it has the focus."""


# -- a field's problem, shown beside it ------------------------------------------------------------


def with_note(widget: QWidget) -> tuple[QWidget, QLabel]:
    """``widget`` with a (hidden) label under it for the reason its value is refused."""
    holder = QWidget()
    column = QVBoxLayout(holder)
    column.setContentsMargins(0, 0, 0, 0)
    column.setSpacing(1)
    column.addWidget(widget)
    note = QLabel()
    note.setWordWrap(True)
    note.setStyleSheet(NOTE_STYLE)
    note.hide()
    column.addWidget(note)
    return holder, note


def mark_field(widget: QWidget, note: QLabel, reason: str | None) -> None:
    """Mark ``widget`` as holding a refused value (``reason``), or clear the mark."""
    widget.setStyleSheet(INVALID_STYLE if reason else "")
    note.setText(reason or "")
    note.setVisible(bool(reason))


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
        self._notes: dict[str, QLabel] = {}
        self._lines: dict[str, QLineEdit] = {}
        #: Fields holding a refused value: name -> (document key, reason).
        self._problems: dict[str, tuple[str, str]] = {}
        self._document = None
        self._prefix: str | Callable[[], str] = ""
        self._target: str | None = None  # what the form edits (the prefix when it was filled)
        #: The JSON path of the thing edited, before a parameter's name
        #: (``training.optimizer.params.``): fields get "Sweep this…" with it.
        self._sweep_prefix: Callable[[], str | None] | None = None

    def editor(self, name: str) -> QWidget:
        """The editor widget of one parameter (tests drive the form through it)."""
        return self._widgets[name]

    def note(self, name: str) -> QLabel:
        """The label beside a parameter's editor that says why its value is refused."""
        return self._notes[name]

    def set_sweep_prefix(self, prefix: str | Callable[[], str | None] | None) -> None:
        """Give the numeric and choice fields a "Sweep this…" context menu
        entry for ``prefix + name`` (``"training.optimizer.params."``, or a
        callable for a form that edits one thing after another; it may return
        None: nothing to sweep now). Needs ``bind`` (the project is read to
        check that the path is one it can take)."""
        self._sweep_prefix = prefix if callable(prefix) or prefix is None else (lambda: prefix)

    def sweep_path(self, name: str) -> str | None:
        """The JSON path "Sweep this…" on parameter ``name``'s field names now."""
        if self._sweep_prefix is None or self.entry is None:
            return None
        if not any(param.name == name and sweepable(param) for param in self.entry.params):
            return None
        prefix = self._sweep_prefix()
        return None if prefix is None else prefix + name

    # -- problems --------------------------------------------------------------------------

    def bind(self, document, prefix: str | Callable[[], str]) -> None:
        """Report fields holding a refused value to ``document`` (a
        ``ProjectDocument``) as ``field_problems`` keyed ``prefix + name``;
        ``prefix`` may be a callable, for a form that edits one thing after
        another (``lambda: f"layer {index} · "``)."""
        self._document = document
        self._prefix = prefix
        self._target = self._current_target()
        document.project_replaced.connect(self.discard_edits)
        document.commit_requested.connect(self.commit_edits)

    def _current_target(self) -> str:
        return self._prefix() if callable(self._prefix) else self._prefix

    def problems(self) -> dict[str, str]:
        """The form's fields holding a refused value: name -> reason."""
        return {name: reason for name, (_, reason) in self._problems.items()}

    def _set_problem(self, name: str, reason: str | None) -> None:
        old = self._problems.get(name)
        if reason is None:
            if old is None:
                return
            del self._problems[name]
            if self._document is not None:
                self._document.set_field_problem(old[0], None)
            return
        key = old[0] if old else self._current_target() + name
        self._problems[name] = (key, reason)
        if self._document is not None:
            self._document.set_field_problem(key, reason)

    def discard_edits(self) -> None:
        """Drop what is typed and not applied (valid or not): the fields show
        the document's values at the next ``set_entry``."""
        for name, line in self._lines.items():
            line.setModified(False)
            mark_field(line, self._notes[name], None)
        for name in list(self._problems):
            self._set_problem(name, None)

    def commit_edits(self) -> None:
        """Apply what is typed and valid but not yet applied (for a caller about
        to use the project, e.g. Train pressed while a field has the focus)."""
        for widget in self._widgets.values():
            if isinstance(widget, QAbstractSpinBox):
                widget.interpretText()
        for line in self._lines.values():
            if line.isModified():
                line.editingFinished.emit()

    # -- filling the form ----------------------------------------------------------------------

    def set_entry(self, entry: Entry | None, params: dict[str, Any],
                  inferred: dict[str, Any] | None = None) -> None:
        target = self._current_target()
        if entry is None or self.entry is None or entry.name != self.entry.name or \
                entry.params != self.entry.params:
            self._rebuild(entry)
        elif target != self._target:
            self.discard_edits()  # another layer of the same type: its own values
        self._target = target
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
        self.discard_edits()
        while self.layout_.rowCount():
            self.layout_.removeRow(0)
        self._setters.clear()
        self._widgets.clear()
        self._notes.clear()
        self._lines.clear()
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
            holder, note = with_note(widget)
            self.layout_.addRow(label, holder)
            self._setters[param.name] = setter
            self._widgets[param.name] = widget
            if self._sweep_prefix is not None and self._document is not None and sweepable(param):
                document = self._document
                add_sweep_entry(widget, lambda name=param.name: self.sweep_path(name),
                                lambda: document.project.to_dict())
            self._notes[param.name] = note

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
            combo = ComboBox()
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
            spin = SpinBox()
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
        self._lines[param.name] = line
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

        def check(text: str) -> tuple[Any, str | None]:
            try:
                value = parse_value(param, text)
                if value is None and param.required:
                    raise ParseError(f"{param.name} is required")
                return value, (param.check(value) if value not in (None, NULL) else None)
            except ParseError as error:
                return None, str(error)

        def show(problem: str | None) -> None:
            mark_field(line, self._notes[param.name], problem)
            self._set_problem(param.name, problem)

        def edited(text: str) -> None:
            """As the user types: mark the field, apply nothing."""
            show(check(text)[1])

        def finished() -> None:
            """Enter or focus out: apply the value if it is valid."""
            if not line.isModified():
                return
            value, problem = check(line.text())
            show(problem)
            if problem is None:
                line.setModified(False)
                self._emit(param, value)

        line.textEdited.connect(edited)
        line.editingFinished.connect(finished)

        def set_text(value):
            if line.isModified():
                return  # the user's text, not applied yet (or refused): it stays
            line.setText("none" if value is NULL else format_value(value))

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
                    line.setModified(True)
                    finished()

            browse.clicked.connect(choose)
            holder.line = line  # for tests and focus handling
            return holder, set_text
        return line, set_text


class TextField(QObject):
    """A line edit whose text reaches the document when it is done (Enter,
    focus out, ``commit_edits``) and valid. Refused text stays in the field,
    marked, with the reason under it, and is the document's field problem
    ``key`` meanwhile (Train waits for it); the project keeps its last valid value."""

    def __init__(self, document, key: str, parse: Callable[[str], tuple[object, str | None]],
                 apply: Callable[[object], None]):
        super().__init__()
        self.document, self.key, self.parse, self.apply = document, key, parse, apply
        self.edit = QLineEdit()
        self.setParent(self.edit)  # lives as long as its field
        self.widget, self.note = with_note(self.edit)
        self.edit.textEdited.connect(self._edited)
        self.edit.editingFinished.connect(self.commit)
        document.commit_requested.connect(self.commit)
        document.project_replaced.connect(self.discard)

    def show(self, text: str) -> None:
        """The project's value, unless the field holds text not yet applied."""
        if not self.edit.isModified() and self.edit.text() != text:
            self.edit.setText(text)

    @Slot(str)
    def _edited(self, text: str) -> None:
        problem = self.parse(text)[1]
        mark_field(self.edit, self.note, problem)
        self.document.set_field_problem(self.key, problem)

    @Slot()
    def commit(self) -> None:
        if not self.edit.isModified():
            return
        value, problem = self.parse(self.edit.text())
        if problem is None:
            self.edit.setModified(False)
            self.apply(value)

    @Slot()
    def discard(self) -> None:
        self.edit.setModified(False)
        mark_field(self.edit, self.note, None)
