""""Sweep this…": a property field's context menu entry that opens the Sweep
dialog on the field's JSON path (``training.optimizer.params.lr``,
``model.layers[4].params.out_features``, ``data.batch_size``).

Only numeric and choice fields get it, and only in a window that has a
sweeps controller (``window.sweeps.open_dialog(path)``): a form shown
elsewhere (the block editor, a test without a window) keeps its menus as
they are. Text fields and spin boxes keep Qt's own menu (undo, copy, paste,
step up...): the entry is added to it just before it shows, not instead of it.
Combo boxes and check boxes have no menu of their own: they get one with the
entry alone.
"""

from __future__ import annotations

import copy
from typing import Callable

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QMenu, QWidget,
)

from ..registry import Param
from ..spec.paths import PathError, get_path, set_path

SWEEP_TEXT = "Sweep this\u2026"
#: The name Qt gives the menu of a line edit (and so of a spin box's).
EDIT_MENU = "qt_edit_menu"
#: Parameter kinds a sweep can vary: numbers (a number per dimension too, as
#: kernel_size's 3 or 5) and booleans; a ``str`` parameter only with choices.
SWEEPABLE_KINDS = ("int", "float", "ints", "floats", "bool")


def sweepable(param: Param) -> bool:
    """Whether a schema parameter is a setting a sweep can vary: a number or
    a choice the user sets (not a size guidl infers, a file path or free text)."""
    return param.inferred is None and (param.kind in SWEEPABLE_KINDS or param.choices is not None)


def settable(doc: dict, path: str) -> bool:
    """Whether ``path`` names a value of the project ``doc`` that a sweep can
    set: one it has, or a key the schema checks where it is missing (an
    optimizer's weight_decay left at its default), as ``spec.paths.set_path``
    decides."""
    try:
        value = get_path(doc, path)
    except PathError:
        value = None
    if isinstance(value, (dict, list)):
        return False
    try:
        set_path(copy.deepcopy(doc), path, value)
    except PathError:
        return False
    return True


def sweeps_of(widget: QWidget):
    """The sweeps controller of the window ``widget`` is in, or None."""
    controller = getattr(widget.window(), "sweeps", None)
    return controller if callable(getattr(controller, "open_dialog", None)) else None


class SweepThis(QObject):
    """Gives ``field`` a "Sweep this…" entry that calls the window's
    ``sweeps.open_dialog(path)``. ``path()`` is asked when the menu opens (a
    form shows one layer after another): None, or a path the project cannot
    take (``project()``, its dict), offers nothing."""

    def __init__(self, field: QWidget, path: Callable[[], str | None], project: Callable[[], dict]):
        super().__init__(field)  # lives as long as its field
        self.field, self.path, self.project = field, path, project
        self.edit: QLineEdit | None = (field.lineEdit() if isinstance(field, QAbstractSpinBox)
                                       else field if isinstance(field, QLineEdit) else None)
        if self.edit is not None:
            # Qt makes the field's own menu as a child of its line edit: caught when polished.
            self.edit.installEventFilter(self)
        else:
            field.installEventFilter(self)

    def target(self) -> str | None:
        """The path the entry would sweep now, or None when it is not offered."""
        if sweeps_of(self.field) is None or not self.field.isEnabled():
            return None
        path = self.path()
        if not path:
            return None
        try:
            return path if settable(self.project(), path) else None
        except Exception:  # noqa: BLE001 - a project that cannot be written out offers nothing
            return None

    def action(self, menu: QMenu) -> QAction | None:
        """Add the entry to ``menu`` (after a separator); None when not offered."""
        path = self.target()
        if path is None or menu.findChild(QAction, "sweep_this") is not None:
            return None
        actions = menu.actions()
        if actions and not actions[-1].isSeparator():
            menu.addSeparator()
        action = menu.addAction(SWEEP_TEXT)
        action.setObjectName("sweep_this")
        action.setToolTip(f"Open the Sweep dialog to try several values of {path}")
        action.setStatusTip(action.toolTip())
        action.triggered.connect(lambda: self.open(path))
        return action

    def open(self, path: str) -> None:
        controller = sweeps_of(self.field)
        if controller is not None:
            controller.open_dialog(path)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        if kind == QEvent.Type.ChildPolished and watched is self.edit:
            menu = event.child()
            if isinstance(menu, QMenu) and menu.objectName() == EDIT_MENU:
                # Qt fills the menu (undo, copy, paste, a spin box's steps) and then
                # shows it: the entry goes last, as it is about to show.
                if not menu.property("guidl_sweep_this"):  # Qt may polish it again (a style change)
                    menu.setProperty("guidl_sweep_this", True)
                    menu.aboutToShow.connect(lambda menu=menu: self.action(menu))
        elif kind == QEvent.Type.ContextMenu and watched is self.field and \
                isinstance(self.field, (QComboBox, QAbstractButton)):
            menu = QMenu(self.field)
            if self.action(menu) is not None:
                menu.exec(event.globalPos())
                menu.deleteLater()
                return True
            menu.deleteLater()
        return False


def add_sweep_entry(field: QWidget, path: Callable[[], str | None], project: Callable[[], dict]) -> SweepThis:
    """Give ``field`` the "Sweep this…" entry (see ``SweepThis``)."""
    return SweepThis(field, path, project)
