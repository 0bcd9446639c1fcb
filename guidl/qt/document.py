"""The open project: its state, undo stack, file and model analysis.

Every edit goes through ``ProjectDocument.apply`` as a ``ProjectEditCommand``
on one ``QUndoStack``, so undo/redo, the Edit menu and the window's modified
mark come for free. Commands hold whole-project snapshots: projects are small,
and a snapshot can never get out of step with the code that edits it.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from PySide6.QtCore import QObject, QSaveFile, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from .. import spec
from ..spec import Model, edits
from .param_form import apply_param
from ..spec import Project

#: The networks a project can hold, as the window names them for a GAN.
NETWORK_TITLES = {"model": "Generator", "discriminator": "Discriminator"}


class ProjectEditCommand(QUndoCommand):
    def __init__(self, document: "ProjectDocument", before: Project, after: Project, text: str,
                 merge_key: str | None = None, select: int | None = None,
                 select_before: int | None = None, layout_only: bool = False, network: str | None = None):
        super().__init__(text)
        self.document = document
        self.before, self.after = before, after
        self.merge_key = merge_key
        self.select, self.select_before = select, select_before
        #: Only node positions change: the shapes stay as they are (no analysis).
        self.layout_only = layout_only
        #: The network a layer edit changed ("model", "discriminator"; None: not a
        #: layer edit). Undo and redo show that network again, so the selection
        #: they restore names its layers, whichever network is shown meanwhile.
        self.network = network

    def redo(self) -> None:
        self.document._restore(self.after, self.select, self.layout_only, self.network)

    def undo(self) -> None:
        self.document._restore(self.before, self.select_before, self.layout_only, self.network)

    def id(self) -> int:
        return 1 if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        # Consecutive edits of one field (typing in a spin box) undo as one step.
        if not isinstance(other, ProjectEditCommand) or other.merge_key != self.merge_key \
                or other.network != self.network:
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
    #: An edit was refused (``LayerEdits``): the sentence saying why, for the status bar.
    edit_refused = Signal(str)
    #: The network the layer views show and edit ("model" or "discriminator") is
    #: another one now (the user switched, an undo went back to the other one, the
    #: project lost its discriminator). ``changed`` and ``report_changed`` follow.
    network_changed = Signal(str)

    def __init__(self, parent: QObject | None = None,
                 engine_ready: Callable[[], bool] = lambda: True):
        super().__init__(parent)
        #: Shapes are worked out with torch: until it is loaded, ``report`` stays None.
        self.engine_ready = engine_ready
        self.project = Project()
        self.path: Path | None = None
        self.undo_stack = QUndoStack(self)
        self.report = None  # the shown network's analysis
        #: Every network's analysis by name ("model", and a GAN's "discriminator").
        self.reports: dict = {}
        #: What the task's checks warn of (a Sigmoid before BCEWithLogitsLoss, ...).
        self.task_warnings: list[str] = []
        #: The network the layer views show and ``LayerEdits`` change.
        self.network = "model"
        self.data_info = None  # DatasetInfo of the loaded data, when known
        self.data_info_key: str | None = None  # the data settings it was loaded with
        self._field_problems: dict[str, str] = {}

    # -- editing -------------------------------------------------------------------

    def apply(self, edit: Callable[[Project], Any], text: str, merge_key: str | None = None,
              select: int | Callable[[Any], int | None] | None = None, select_before: int | None = None,
              layout_only: bool = False, network: str | None = None) -> Any:
        """Run ``edit`` on a copy of the project and push the result as one
        undoable step; returns what ``edit`` returned. ``select`` may be a
        function of that result (the index of a layer the edit added).
        ``layout_only``: the edit moves nodes only, so the model's analysis
        is not run again (neither on undo nor redo). ``network``: the network
        a layer edit changes (undo and redo show it again). An exception from
        ``edit`` leaves the project as it was."""
        before = copy.deepcopy(self.project)
        after = copy.deepcopy(self.project)
        result = edit(after)
        if after == before:
            return result
        if callable(select):
            select = select(result)
        if merge_key is not None and network not in (None, "model"):
            merge_key = f"{network}.{merge_key}"
        self.undo_stack.push(ProjectEditCommand(self, before, after, text, merge_key, select,
                                                select_before, layout_only, network))
        return result

    # -- the network shown (a GAN has two) ----------------------------------------------------

    @property
    def model(self) -> Model:
        """The network the layer views show and edit: ``project.model``, or a
        GAN's discriminator when that is the one shown."""
        if self.network == "discriminator" and "discriminator" in self.networks():
            return self.project.discriminator
        return self.project.model

    def networks(self) -> list[str]:
        """The networks the window shows and edits: a GAN's generator ("model")
        and discriminator; for any other task the model alone."""
        if self.project.task_type == "gan" and self.project.discriminator is not None:
            return ["model", "discriminator"]
        return ["model"]

    def set_network(self, name: str) -> None:
        """Show and edit network ``name`` ("model" or "discriminator"). Not an
        edit of the project: no undo step, nothing to save."""
        if name not in self.networks() or name == self.network:
            return
        self.network = name
        self.report = self.reports.get(name)
        self.network_changed.emit(name)
        self.report_changed.emit()
        self.changed.emit()

    def _follow_network(self, wanted: str | None) -> None:
        """After the project changed: show ``wanted`` (an undone layer edit's
        network), or the generator when the discriminator is gone."""
        name = wanted if wanted is not None else self.network
        if name not in self.networks():
            name = "model"
        if name != self.network:
            self.network = name
            self.network_changed.emit(name)

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

    def _restore(self, project: Project, select: int | None, layout_only: bool = False,
                 network: str | None = None) -> None:
        self.project = copy.deepcopy(project)
        shown = self.network
        self._follow_network(network)
        if layout_only and self.network != shown:
            self.report = self.reports.get(self.network)
            self.report_changed.emit()
        if layout_only:
            self.changed.emit()
        else:
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
        self._follow_network("model")
        self.project_replaced.emit()
        self._changed()
        self.path_changed.emit()

    def _changed(self) -> None:
        self.analyze()
        self.changed.emit()

    def project_problems(self):
        """``project.problems()``, worked out once per state of the project:
        the actions ask for it several times after each edit, and validating a
        200-layer graph each time is what made an edit feel slow. Every edit
        replaces ``project`` with a new object, so that object is the key."""
        cached = getattr(self, "_problems_of", None)
        if cached is None or cached[0] is not self.project:
            cached = (self.project, self.project.problems())
            self._problems_of = cached
        return list(cached[1])

    # -- analysis ------------------------------------------------------------------

    def input_shape_and_dtype(self) -> tuple[tuple[int, ...] | None, str]:
        if not self.engine_ready():
            return None, "float32"
        from ..engine.data import expected_input

        info = self.data_info if self.data_info_key == self.data_key() else None
        return expected_input(self.project, info)

    def data_key(self) -> str:
        """Identifies loaded data: the data settings, the seed (the split) and
        how the task scales images (a GAN's -1..1, an autoencoder's 0..1)."""
        import json

        data = {k: v for k, v in self.project.data.to_dict().items() if k not in ("batch_size", "augment")}
        scaling = self.project.task_params().get("pixel_range", "standardized")
        return json.dumps({"data": data, "seed": self.project.training.seed, "scaling": scaling},
                          sort_keys=True)

    def loaded_info(self):
        """The loaded data's ``DatasetInfo`` when it is the project's data now, else None."""
        return self.data_info if self.data_info_key == self.data_key() else None

    def network_inputs(self) -> dict[str, tuple[tuple[int, ...] | None, str]]:
        """Each network's input ``(shape, dtype)``: a GAN's generator takes the
        noise, its discriminator the data (``engine.tasks.input_shapes``); any
        other model takes the data, or the shape the project gives it."""
        shape, dtype = self.input_shape_and_dtype()
        project = self.project
        if "discriminator" not in self.networks() or not self.engine_ready():
            return {"model": (shape, dtype)}
        from ..engine.checks import catalogue_info
        from ..engine.data import DatasetInfo, expected_input
        from ..engine.tasks import input_shapes

        info = self.loaded_info() or catalogue_info(project)
        if info is None or not info.input_shape:
            # The catalogue does not know the data's task (or its shape): the shape is enough.
            data_only = dataclasses.replace(project, model=dataclasses.replace(project.model, input_shape=None))
            sample, _ = expected_input(data_only, info)
            info = None if sample is None else (dataclasses.replace(info, input_shape=sample) if info else DatasetInfo(
                project.data.dataset, project.data.dataset, "unknown", "auto", tuple(sample), "float32",
                None, None, None))
        if info is None:
            noise = int(project.task_params()["noise_dim"])
            return {"model": ((noise,), "float32"), "discriminator": (None, "float32")}
        return {name: (tuple(found), "float32") for name, found in input_shapes(project, info).items()}
    def model_problems(self) -> list:
        """The problems of every network the window edits (a GAN's two), each
        path under its network's key (``discriminator.layers[3]``)."""
        if len(self.reports) < 2:
            return self.report.problems() if self.report is not None else []
        from ..engine.task_checks import network_problems

        return [p for name, report in self.reports.items() for p in network_problems(name, report)]

    def network_input(self) -> tuple[tuple[int, ...] | None, str]:
        """The shown network's input ``(shape, dtype)``."""
        return self.network_inputs().get(self.network, (None, "float32"))

    def analyze(self) -> None:
        if not self.engine_ready():
            self.report, self.reports = None, {}
            self.report_changed.emit()
            return
        from ..engine.build import analyze
        from ..engine.checks import catalogue_info, report_compatibility

        project = self.project
        inputs = self.network_inputs()
        reports = {}
        for name in self.networks():
            network = project.network(name)
            shape, dtype = inputs.get(name, (None, "float32"))
            model = copy.deepcopy(network)
            model.input_dtype = dtype
            reports[name] = analyze(model, shape)
        # Does the output fit the data, the loss and the task (a last Linear of 128
        # for two classes, a generator that does not make images of the data's
        # size)? Said on the layer now, not when Train is pressed.
        info = self.loaded_info() or catalogue_info(project)
        self.task_warnings = []
        if project.task_type in ("reconstruction", "gan"):
            self._check_task(reports, info)
        else:  # the dataset's labels (text generation trains on them too)
            report_compatibility(project, reports["model"], info)
        self.reports = reports
        self.report = reports.get(self.network, reports["model"])
        self.report_changed.emit()

    def _check_task(self, reports: dict, info) -> None:
        """``engine.task_checks``' findings on the layers that fix them, in the
        network they belong to; the rest as problems of the network their path
        names (of the generator, or the model, otherwise)."""
        from ..engine.task_checks import check_task

        result = check_task(self.project, reports, info)
        self.task_warnings = list(result.warnings)
        on_layers = []
        for fix in result.layer_fixes:
            report = reports.get(getattr(fix, "network", "model"))
            if report is None or not 0 <= fix.index < len(report.layers):
                continue
            layer = report.layers[fix.index]
            if layer.error is None:
                layer.error, layer.fix = fix.error, fix.fix
                layer.fix_action = fix.action
                on_layers.append(fix.problem)
        for problem in result.problems:
            if any(problem is shown for shown in on_layers):
                continue
            name = "discriminator" if str(problem.path).startswith("discriminator") else "model"
            reports.get(name, reports["model"]).model_errors.append(problem)

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


# -- layer edits: the ones the palette, the stack, the canvas and the menus share ----------------


class LayerEdits:
    """Undoable layer and graph operations on a document (every entry point
    uses these). Each is one undo step; the work is done by ``spec.edits``.
    An edit that cannot be made changes nothing and says why through the
    document's ``edit_refused``; such a method returns None.

    ``block``: the name of a block of the model whose definition to edit
    instead of the model's own layers (every use of the block follows).

    Every edit changes the network the document shows (``document.network``:
    a GAN's generator or discriminator); its undo step remembers which."""

    def __init__(self, document: ProjectDocument):
        self.document = document

    @property
    def layers(self):
        return self.document.model.layers

    def _layers(self, block: str | None):
        model = self.document.model
        return model.layers if block is None else model.blocks[block].layers if block in model.blocks else []

    def _run(self, edit: Callable[[Project], Any], text: str, **options) -> Any:
        network = self.document.network
        if network != "model":
            text = f"{text} ({NETWORK_TITLES.get(network, network).lower()})"
        try:
            return self.document.apply(edit, text, network=network, **options)
        except edits.EditError as error:
            self.document.edit_refused.emit(f"{text}: {error}")
            return None

    def _model_edit(self, function: Callable, text: str, *args, block: str | None = None, **options) -> Any:
        kwargs = {"block": block} if block is not None else {}
        network = self.document.network
        return self._run(lambda project: function(project.network(network), *args, **kwargs), text, **options)

    @staticmethod
    def _first(result) -> int | None:
        return result[0] if result else None

    # -- layers -----------------------------------------------------------------------------

    def insert(self, type_name: str, position: int | None = None, block: str | None = None) -> int | None:
        """Add a layer (or a use of a block) at ``position`` (default: the end)."""
        return self._model_edit(edits.insert, f"Add {type_name}", type_name, position, block=block,
                                select=None if block else (lambda index: index))

    def remove(self, index: int, block: str | None = None) -> list[int] | None:
        """Delete a layer; what took its output takes its input (see ``remove_layers``)."""
        layers = self._layers(block)
        if not 0 <= index < len(layers):
            return None
        return self.remove_layers([index], block=block)

    def remove_layers(self, indexes: Iterable[int], block: str | None = None) -> list[int] | None:
        """Delete layers and heal their wires: what took a deleted layer takes
        its input; a merge left with one input goes too."""
        layers = self._layers(block)
        indexes = sorted({i for i in indexes if 0 <= i < len(layers)})
        if not indexes:
            return None
        text = f"Delete {layers[indexes[0]].type}" if len(indexes) == 1 else f"Delete {len(indexes)} layers"
        remaining = len(layers) - len(indexes)
        return self._model_edit(edits.remove, text, indexes, block=block,
                                select=None if block else min(indexes[0], remaining - 1),
                                select_before=None if block else indexes[0])

    def duplicate(self, index: int, block: str | None = None) -> int | None:
        layers = self._layers(block)
        if not 0 <= index < len(layers):
            return None
        return self._model_edit(edits.duplicate, f"Duplicate {layers[index].type}", index, block=block,
                                select=None if block else index + 1,
                                select_before=None if block else index)

    def move(self, source: int, target: int, block: str | None = None) -> int | None:
        """Move layer ``source`` so that it ends up at index ``target``; refused
        (with the reason) when a layer would come before a layer it takes."""
        layers = self._layers(block)
        if not 0 <= source < len(layers):
            return None
        target = max(0, min(target, len(layers) - 1))
        if target == source:
            return None
        return self._model_edit(edits.move, f"Move {layers[source].type}", source, target, block=block,
                                select=None if block else target,
                                select_before=None if block else source)

    def set_param(self, index: int, name: str, value, block: str | None = None) -> None:
        layers = self._layers(block)
        if not 0 <= index < len(layers):
            return
        layer_type = layers[index].type
        if block is not None and isinstance(value, str) and value.startswith("$"):
            # A reference to a parameter of the block: checked against its declared parameters.
            self._model_edit(edits.set_param, f"Set {block}.{layer_type}.{name}", index, name, value,
                             block=block)
            return

        network = self.document.network

        def edit(project: Project) -> None:
            model = project.network(network)
            target = model.layers if block is None else model.blocks[block].layers
            apply_param(target[index].params, name, value)

        where = f"{block}." if block else ""
        self._run(edit, f"Set {where}{layer_type}.{name}", merge_key=f"{where}layer{index}.{name}",
                  select=None if block else index, select_before=None if block else index)

    def set_option(self, index: int | list[int], key: str, value, block: str | None = None) -> None:
        """Freeze or unfreeze a layer (or several: one step), or set its
        learning-rate multiplier (``edits.LAYER_OPTIONS``)."""
        layers = self._layers(block)
        indexes = [i for i in ([index] if isinstance(index, int) else index) if 0 <= i < len(layers)]
        if indexes:
            what = layers[indexes[0]].type if len(indexes) == 1 else f"{len(indexes)} layers"
            text = (("Freeze " if value else "Unfreeze ") if key == "frozen" else f"Set {key} of ") + what
            one = indexes[0] if len(indexes) == 1 and block is None else None
            self._model_edit(edits.set_layer_option, text, indexes, key, value, block=block,
                             select=one, select_before=one)

    def toggle_frozen(self, index: int | list[int], block: str | None = None) -> None:
        """Freeze the layers, or unfreeze them when all are frozen already
        (the snowflake, the Frozen column, Model > Freeze): one undo step."""
        layers = self._layers(block)
        indexes = [i for i in ([index] if isinstance(index, int) else index) if 0 <= i < len(layers)]
        if indexes:
            self.set_option(indexes, "frozen", not all(layers[i].frozen for i in indexes), block=block)

    # -- wires ----------------------------------------------------------------------------------

    def connect(self, source: int, target: int, block: str | None = None) -> None:
        """Layer ``target`` takes the output of ``source`` (-1: the input); ids
        are given as needed. A merge adds it; another layer takes it instead."""
        self._model_edit(edits.connect, "Connect layers", source, target, block=block)

    def disconnect(self, source: int, target: int, block: str | None = None) -> None:
        """Delete the wire from ``source`` to ``target`` (a merge left with one
        input goes, and what took it takes that input)."""
        self._model_edit(edits.disconnect, "Delete wire", source, target, block=block)

    def set_inputs(self, index: int, ids: list[str] | None, block: str | None = None) -> None:
        """Set what layer ``index`` takes (ids; None: the layer above it)."""
        self._model_edit(edits.set_inputs, "Set inputs", index, ids, block=block,
                         select=None if block else index, select_before=None if block else index)

    def insert_on_wire(self, type_name: str, source: int, target: int, block: str | None = None) -> int | None:
        """A new layer on the wire from ``source`` to ``target``."""
        return self._model_edit(edits.insert_on_wire, f"Insert {type_name}", type_name, source, target,
                                block=block, select=None if block else (lambda index: index))

    def add_skip_connection(self, first: int, last: int, block: str | None = None) -> int | None:
        """An Add merging the output of ``last`` with the input of ``first``."""
        return self._model_edit(edits.add_skip_connection, "Add skip connection", first, last,
                                block=block, select=None if block else (lambda index: index))

    def rename_id(self, index: int, new_id: str | None, block: str | None = None) -> None:
        """Give a layer another id (None: none); every reference follows."""
        self._model_edit(edits.rename_id, "Rename layer", index, new_id or None, block=block,
                         select=None if block else index, select_before=None if block else index)

    # -- blocks -----------------------------------------------------------------------------------

    def make_block(self, indexes: Iterable[int], name: str | None = None) -> int | None:
        """The selected layers become a block (defined once) and one use of it."""
        return self._model_edit(edits.make_block, "Make block", sorted(indexes), name,
                                select=lambda index: index)

    def wrap_in_residual(self, indexes: Iterable[int], name: str | None = None) -> int | None:
        """The selected layers become a residual block (with an Add around them)."""
        return self._model_edit(edits.wrap_in_residual, "Wrap in residual block", sorted(indexes), name,
                                select=lambda index: index)

    def expand_block(self, index: int) -> list[int] | None:
        """A block's use becomes its layers, inline."""
        return self._model_edit(edits.expand_block, "Expand block", index, select=self._first)

    def set_repeat(self, index: int, repeat: int, block: str | None = None) -> None:
        where = f"{block}." if block else ""
        self._model_edit(edits.set_repeat, "Set repeat", index, repeat, block=block,
                         merge_key=f"{where}layer{index}.repeat",
                         select=None if block else index, select_before=None if block else index)

    def rename_block(self, old: str, new: str) -> None:
        """Rename a block; every use follows."""
        self._model_edit(edits.rename_block, f"Rename block {old}", old, new)

    def remove_block(self, name: str) -> None:
        self._model_edit(edits.remove_block, f"Delete block {name}", name)

    def add_block_param(self, block: str, config: Mapping[str, Any]) -> None:
        self._model_edit(edits.add_block_param, f"Add parameter to {block}", block, config)

    def remove_block_param(self, block: str, name: str) -> None:
        self._model_edit(edits.remove_block_param, f"Remove {block}.{name}", block, name)

    def rename_block_param(self, block: str, old: str, new: str) -> None:
        self._model_edit(edits.rename_block_param, f"Rename {block}.{old}", block, old, new)

    def set_block_param(self, block: str, name: str, config: Mapping[str, Any]) -> None:
        """Declare a block's parameter anew (kind, default, bounds, choices, help)."""
        self._model_edit(edits.set_block_param, f"Set {block}.{name}", block, name, dict(config))

    def set_block_help(self, block: str, text: str) -> None:
        self._model_edit(edits.set_block_help, f"Set the help of {block}", block, text,
                         merge_key=f"block {block}.help")

    # -- copy and paste ------------------------------------------------------------------------------

    def copy(self, indexes: Iterable[int], block: str | None = None) -> str | None:
        """The layers as JSON text with their inner wires (nothing changes)."""
        try:
            return edits.copy_layers(self.document.model, indexes, block=block)
        except edits.EditError as error:
            self.document.edit_refused.emit(f"Copy: {error}")
            return None

    def paste(self, text: str, position: int | None = None, block: str | None = None) -> list[int] | None:
        """Insert copied layers at ``position`` (default: the end), into the chain."""
        return self._model_edit(edits.paste, "Paste", text, position, block=block,
                                select=None if block else self._first)

    # -- layout (no analysis) ---------------------------------------------------------------------------

    def set_position(self, index: int, x: float, y: float, block: str | None = None) -> None:
        self.set_positions({index: (x, y)}, block=block)

    def set_positions(self, positions: Mapping[int, tuple[float, float]], block: str | None = None) -> None:
        """Where the canvas shows nodes: one undo step, and no new analysis."""
        text = "Move node" if len(positions) == 1 else "Move nodes"
        self._model_edit(edits.set_positions, text, dict(positions), block=block, layout_only=True)

    def clear_positions(self, block: str | None = None) -> None:
        """Forget the nodes' positions: the canvas lays the graph out again."""
        self._model_edit(edits.clear_positions, "Lay out again", block=block, layout_only=True)

    # -- fixes ---------------------------------------------------------------------------------------

    def apply_fix(self, fix) -> None:
        """Apply a fix the model's analysis proposed (``spec.fixes``)."""
        index = getattr(fix, "index", None) if getattr(fix, "block", None) is None else None
        network = self.document.network

        def edit(project: Project) -> None:
            if network == "model":
                edits.apply_fix(project, fix)
                return
            # The fixes name layers of ``project.model``: the discriminator stands in for it.
            view = copy.copy(project)
            view.model = project.network(network)
            edits.apply_fix(view, fix)
            setattr(project, network, view.model)

        self._run(edit, "Apply fix", select=index)
