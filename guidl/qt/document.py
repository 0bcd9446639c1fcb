"""The open project: its state, undo stack, file and model analysis.

Every edit goes through ``ProjectDocument.apply`` as a ``ProjectEditCommand``
on one ``QUndoStack``, so undo/redo, the Edit menu and the window's modified
mark come for free. Commands hold whole-project snapshots: projects are small,
and a snapshot can never get out of step with the code that edits it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QSaveFile, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from .. import spec
from .param_form import apply_param
from ..spec import Project


class ProjectEditCommand(QUndoCommand):
    def __init__(self, document: "ProjectDocument", before: Project, after: Project, text: str,
                 merge_key: str | None = None, select: int | None = None,
                 select_before: int | None = None):
        super().__init__(text)
        self.document = document
        self.before, self.after = before, after
        self.merge_key = merge_key
        self.select, self.select_before = select, select_before

    def redo(self) -> None:
        self.document._restore(self.after, self.select)

    def undo(self) -> None:
        self.document._restore(self.before, self.select_before)

    def id(self) -> int:
        return 1 if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        # Consecutive edits of one field (typing in a spin box) undo as one step.
        if not isinstance(other, ProjectEditCommand) or other.merge_key != self.merge_key:
            return False
        self.after, self.select = other.after, other.select
        if self.after == self.before:
            self.setObsolete(True)  # typed back to where it was: no step at all
        return True


class ProjectDocument(QObject):
    """Holds the project being edited. ``changed`` fires after every edit,
    undo or redo, and when ``field_problems`` change; ``report_changed`` when
    the model analysis is new."""

    changed = Signal()
    report_changed = Signal()
    path_changed = Signal()
    selection_requested = Signal(int)
    #: A new project replaced the old one (New, Open): forms drop what is typed.
    project_replaced = Signal()
    #: Forms apply what is typed and valid but not yet applied (``commit_edits``).
    commit_requested = Signal()
    #: A form's field holds a refused value, or no longer: what Train waits on.
    #: Not ``changed``: the project itself is as it was, and views need no re-sync.
    field_problems_changed = Signal()

    def __init__(self, parent: QObject | None = None,
                 engine_ready: Callable[[], bool] = lambda: True):
        super().__init__(parent)
        #: Shapes are worked out with torch: until it is loaded, ``report`` stays None.
        self.engine_ready = engine_ready
        self.project = Project()
        self.path: Path | None = None
        self.undo_stack = QUndoStack(self)
        self.report = None
        self.data_info = None  # DatasetInfo of the loaded data, when known
        self.data_info_key: str | None = None  # the data settings it was loaded with
        self._field_problems: dict[str, str] = {}

    # -- editing -------------------------------------------------------------------

    def apply(self, edit: Callable[[Project], None], text: str, merge_key: str | None = None,
              select: int | None = None, select_before: int | None = None) -> None:
        """Run ``edit`` on a copy of the project and push the result as one
        undoable step."""
        before = copy.deepcopy(self.project)
        after = copy.deepcopy(self.project)
        edit(after)
        if after == before:
            return
        self.undo_stack.push(ProjectEditCommand(self, before, after, text, merge_key, select,
                                                select_before))

    # -- values typed into forms and refused ------------------------------------------------

    def field_problems(self) -> dict[str, str]:
        """Fields of the forms that hold a value the project cannot take
        (``"layer 3 · p"``, ``"training.grad_clip"``, ...) -> the reason. The
        project keeps its last valid values meanwhile; Train waits for these."""
        return dict(self._field_problems)

    def set_field_problem(self, key: str, reason: str | None) -> None:
        """A form's field ``key`` holds a refused value (``reason``), or no longer (None)."""
        if reason is None:
            if self._field_problems.pop(key, None) is None:
                return
        elif self._field_problems.get(key) == reason:
            return
        else:
            self._field_problems[key] = reason
        self.field_problems_changed.emit()

    def commit_edits(self) -> None:
        """Have the forms apply what is typed and valid but not yet applied
        (their fields apply on Enter or focus out): call before using the
        project, e.g. when Train is pressed from the toolbar."""
        self.commit_requested.emit()

    def _restore(self, project: Project, select: int | None) -> None:
        self.project = copy.deepcopy(project)
        self._changed()
        if select is not None:
            self.selection_requested.emit(select)

    def set_project(self, project: Project, path: Path | None) -> None:
        """Replace the whole project (New, Open): a fresh undo history."""
        self.project = copy.deepcopy(project)
        self.path = path
        self.data_info = None
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self._field_problems.clear()
        self.project_replaced.emit()
        self._changed()
        self.path_changed.emit()

    def _changed(self) -> None:
        self.analyze()
        self.changed.emit()

    # -- analysis ------------------------------------------------------------------

    def input_shape_and_dtype(self) -> tuple[tuple[int, ...] | None, str]:
        if not self.engine_ready():
            return None, "float32"
        from ..engine.data import expected_input

        info = self.data_info if self.data_info_key == self.data_key() else None
        return expected_input(self.project, info)

    def data_key(self) -> str:
        """Identifies loaded data: the data settings and the seed (the split)."""
        import json

        data = {k: v for k, v in self.project.data.to_dict().items() if k not in ("batch_size", "augment")}
        return json.dumps({"data": data, "seed": self.project.training.seed}, sort_keys=True)

    def analyze(self) -> None:
        if not self.engine_ready():
            self.report = None
            self.report_changed.emit()
            return
        from ..engine.build import analyze
        from ..engine.checks import catalogue_info, report_compatibility

        shape, dtype = self.input_shape_and_dtype()
        model = copy.deepcopy(self.project.model)
        model.input_dtype = dtype
        self.report = analyze(model, shape)
        # Does the output fit the data and the loss (a last Linear of 128 for two
        # classes)? Said on the layer now, not when Train is pressed.
        loaded = self.data_info if self.data_info_key == self.data_key() else None
        report_compatibility(self.project, self.report, loaded or catalogue_info(self.project))
        self.report_changed.emit()

    def refresh(self) -> None:
        """Work the shapes out again (once torch is loaded)."""
        self._changed()

    def set_data_info(self, info, key: str) -> None:
        self.data_info, self.data_info_key = info, key
        self.analyze()
        self.changed.emit()

    # -- files -------------------------------------------------------------------------

    @property
    def modified(self) -> bool:
        return not self.undo_stack.isClean()

    @property
    def title(self) -> str:
        return self.path.name if self.path else f"{self.project.name or 'Untitled'} (unsaved)"

    def save(self, path: Path) -> None:
        """Write atomically with ``QSaveFile``; ``OSError`` when it fails."""
        handle = QSaveFile(str(path))
        if not handle.open(QSaveFile.OpenModeFlag.WriteOnly):
            raise OSError(handle.errorString())
        handle.write(spec.dumps(self.project).encode("utf-8"))
        if not handle.commit():
            raise OSError(handle.errorString())
        self.path = Path(path)
        self.undo_stack.setClean()
        self.path_changed.emit()

    def load(self, path: Path) -> None:
        """Open a project; ``spec.ProjectError`` says what is wrong with it."""
        self.set_project(spec.load(path), Path(path))


# -- layer edits: the ones the palette, the stack and the menus share ----------------


class LayerEdits:
    """Undoable layer operations on a document (every entry point uses these)."""

    def __init__(self, document: ProjectDocument):
        self.document = document

    @property
    def layers(self):
        return self.document.project.model.layers

    def insert(self, type_name: str, position: int | None = None) -> None:
        from ..registry import LAYERS

        entry = LAYERS.get(type_name)
        position = len(self.layers) if position is None else max(0, min(position, len(self.layers)))

        def edit(project: Project) -> None:
            project.model.layers.insert(position, spec.Layer(entry.name, entry.initial_params()))

        self.document.apply(edit, f"Add {entry.name}", select=position)

    def remove(self, index: int) -> None:
        if not 0 <= index < len(self.layers):
            return
        name = self.layers[index].type
        self.document.apply(lambda p: p.model.layers.pop(index), f"Delete {name}",
                            select=min(index, len(self.layers) - 2), select_before=index)

    def duplicate(self, index: int) -> None:
        if not 0 <= index < len(self.layers):
            return
        layer = self.layers[index]

        def edit(project: Project) -> None:
            copy_ = copy.deepcopy(project.model.layers[index])
            copy_.id = None  # ids stay unique
            project.model.layers.insert(index + 1, copy_)

        self.document.apply(edit, f"Duplicate {layer.type}", select=index + 1, select_before=index)

    def move(self, source: int, target: int) -> None:
        """Move layer ``source`` so that it ends up at index ``target``."""
        count = len(self.layers)
        if not 0 <= source < count:
            return
        target = max(0, min(target, count - 1))
        if target == source:
            return
        name = self.layers[source].type

        def edit(project: Project) -> None:
            layer = project.model.layers.pop(source)
            project.model.layers.insert(target, layer)

        self.document.apply(edit, f"Move {name}", select=target, select_before=source)

    def set_param(self, index: int, name: str, value) -> None:
        if not 0 <= index < len(self.layers):
            return
        layer_type = self.layers[index].type

        def edit(project: Project) -> None:
            apply_param(project.model.layers[index].params, name, value)

        self.document.apply(edit, f"Set {layer_type}.{name}", merge_key=f"layer{index}.{name}",
                            select=index, select_before=index)
