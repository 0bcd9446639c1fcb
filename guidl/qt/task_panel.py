"""The task form: what the project trains its model to do (the dataset's
labels, reconstruction, a GAN, text generation) and the task's parameters.

Choosing a task is one undoable edit that leaves a project that can train:
a GAN gets a discriminator made for the data, the loss it needs and, when
the model cannot turn noise into samples, a DCGAN-style generator; text
generation gets the text dataset and a character model. What changed is said
in the status bar (``task_changed``), and Undo brings back all of it.

``switch_task`` and the default networks need no Qt: they are plain edits of
a ``Project``.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QVBoxLayout, QWidget

from ..registry import DATASETS, DEFAULT_DISCRIMINATOR_OPTIMIZER, TASKS
from ..spec import Component, Layer, Model, Project
from ..spec.graph import fresh_id
from .document import ProjectDocument
from .param_form import ComboBox, ParamForm, apply_param

#: The combo's entry for a project without ``task``.
LABELS_TITLE = "Labels from the dataset (classification / regression)"
LABELS_HELP = ("The model learns the dataset's labels: a class per sample (classification) or "
               "values (regression), as the dataset says.")
#: Losses a task sets when the project's loss does not fit it.
TASK_LOSSES = {"reconstruction": "MSELoss", "gan": "BCEWithLogitsLoss", "text_generation": "CrossEntropyLoss"}
#: Losses that learn classes from labels (the rest learn values).
CLASS_LOSSES = ("CrossEntropyLoss", "NLLLoss")


def task_title(task_type: str | None) -> str:
    return LABELS_TITLE if task_type is None else TASKS.get(task_type).info.get("title", task_type)


#: Task names for sentences (the combo's titles are long).
SHORT_TASK_NAMES = {None: "labels", "gan": "GAN", "reconstruction": "reconstruction",
                    "text_generation": "text generation"}


def short_task_name(task_type: str | None) -> str:
    return SHORT_TASK_NAMES.get(task_type) or task_title(task_type)


def _layer(type_: str, **params) -> Layer:
    return Layer(type_, params)


def default_discriminator(sample_shape: tuple[int, ...] | None) -> Model:
    """A discriminator for samples of ``sample_shape``: two strided
    convolutions for images (DCGAN's), an MLP for vectors; one score (a
    logit) per sample. Its input size is inferred from the data."""
    if sample_shape is not None and len(sample_shape) == 3 and min(sample_shape[1:]) >= 4:
        layers = [_layer("Conv2d", out_channels=64, kernel_size=4, stride=2, padding=1),
                  _layer("LeakyReLU", negative_slope=0.2),
                  _layer("Conv2d", out_channels=128, kernel_size=4, stride=2, padding=1),
                  _layer("BatchNorm2d"),
                  _layer("LeakyReLU", negative_slope=0.2),
                  _layer("Flatten"),
                  _layer("Linear", out_features=1)]
    else:
        layers = [_layer("Flatten"),
                  _layer("Linear", out_features=256), _layer("LeakyReLU", negative_slope=0.2),
                  _layer("Linear", out_features=128), _layer("LeakyReLU", negative_slope=0.2),
                  _layer("Linear", out_features=1)]
    return Model(layers=layers)


def _output_activation(pixel_range: str, image: bool) -> list[Layer]:
    if not image or pixel_range == "standardized":
        return []
    return [_layer("Tanh" if pixel_range == "symmetric" else "Sigmoid")]


def default_generator(sample_shape: tuple[int, ...], pixel_range: str = "symmetric") -> Model:
    """A generator from the noise to samples of ``sample_shape``: for images
    whose sides divide by 4, DCGAN's Linear -> Unflatten -> two transposed
    convolutions that double the size; else an MLP and an Unflatten. It ends
    in the activation that reaches ``pixel_range`` (Tanh for -1..1)."""
    image = len(sample_shape) == 3
    end = _output_activation(pixel_range, image)
    if image and sample_shape[1] % 4 == 0 and sample_shape[2] % 4 == 0 and min(sample_shape[1:]) >= 4:
        channels, height, width = sample_shape
        small = [128, height // 4, width // 4]
        layers = [_layer("Linear", out_features=small[0] * small[1] * small[2]),
                  _layer("BatchNorm1d"), _layer("ReLU"),
                  _layer("Unflatten", dim=1, unflattened_size=small),
                  _layer("ConvTranspose2d", out_channels=64, kernel_size=4, stride=2, padding=1),
                  _layer("BatchNorm2d"), _layer("ReLU"),
                  _layer("ConvTranspose2d", out_channels=channels, kernel_size=4, stride=2, padding=1)]
        return Model(layers=layers + end)
    size = 1
    for side in sample_shape:
        size *= side
    layers = [_layer("Linear", out_features=256), _layer("ReLU"),
              _layer("Linear", out_features=256), _layer("ReLU"),
              _layer("Linear", out_features=size)]
    if len(sample_shape) > 1:
        layers.append(_layer("Unflatten", dim=1, unflattened_size=list(sample_shape)))
    return Model(layers=layers + end)


def default_classifier(sample_shape: tuple[int, ...] | None, outputs: int) -> Model:
    """A small model that learns the dataset's labels: a CNN for images
    (two convolutions), else an MLP; ``outputs`` values (classes) at the end."""
    if sample_shape is not None and len(sample_shape) == 3 and min(sample_shape[1:]) >= 8:
        layers = [_layer("Conv2d", out_channels=16, kernel_size=3, padding=1), _layer("ReLU"),
                  _layer("MaxPool2d", kernel_size=2),
                  _layer("Conv2d", out_channels=32, kernel_size=3, padding=1), _layer("ReLU"),
                  _layer("MaxPool2d", kernel_size=2),
                  _layer("Flatten"), _layer("Linear", out_features=128), _layer("ReLU"),
                  _layer("Linear", out_features=outputs)]
    else:
        layers = [_layer("Flatten"), _layer("Linear", out_features=128), _layer("ReLU"),
                  _layer("Linear", out_features=outputs)]
    return Model(layers=layers)


#: The id of the code layer of the default autoencoder (``task.params.code_layer``).
CODE_ID = "code"


def default_autoencoder(sample_shape: tuple[int, ...], pixel_range: str = "unit", code: int = 16) -> Model:
    """A small autoencoder for samples of ``sample_shape`` with a ``code``
    layer in the middle: two strided convolutions and their transposes for
    images whose sides divide by 4, else an MLP."""
    image = len(sample_shape) == 3
    end = _output_activation(pixel_range, image)
    size = 1
    for side in sample_shape:
        size *= side
    if image and sample_shape[1] % 4 == 0 and sample_shape[2] % 4 == 0 and min(sample_shape[1:]) >= 8:
        channels, height, width = sample_shape
        small = [32, height // 4, width // 4]
        layers = [_layer("Conv2d", out_channels=16, kernel_size=3, stride=2, padding=1), _layer("ReLU"),
                  _layer("Conv2d", out_channels=32, kernel_size=3, stride=2, padding=1), _layer("ReLU"),
                  _layer("Flatten"), Layer("Linear", {"out_features": code}, id=CODE_ID),
                  _layer("Linear", out_features=small[0] * small[1] * small[2]), _layer("ReLU"),
                  _layer("Unflatten", dim=1, unflattened_size=small),
                  _layer("ConvTranspose2d", out_channels=16, kernel_size=4, stride=2, padding=1), _layer("ReLU"),
                  _layer("ConvTranspose2d", out_channels=channels, kernel_size=4, stride=2, padding=1)]
        return Model(layers=layers + end)
    layers = [_layer("Flatten"), _layer("Linear", out_features=128), _layer("ReLU"),
              Layer("Linear", {"out_features": min(code, size)}, id=CODE_ID),
              _layer("Linear", out_features=128), _layer("ReLU"), _layer("Linear", out_features=size)]
    if len(sample_shape) > 1:
        layers.append(_layer("Unflatten", dim=1, unflattened_size=list(sample_shape)))
    return Model(layers=layers + end)


def char_model() -> Model:
    """The character LSTM of the examples (Embedding -> LSTM -> Linear)."""
    from .. import spec
    from ..examples import example_path

    return copy.deepcopy(spec.load(example_path("char_lstm")).model)


#: Tasks whose choice may replace the model (a GAN's generator, text generation's LSTM).
REPLACING_TASKS = ("gan", "text_generation")


def _is_char_model(model: Model) -> bool:
    return bool(model.layers) and model.layers[0].type == "Embedding"


def switch_task(project: Project, task_type: str | None, sample_shape: tuple[int, ...] | None,
                generator_fits: Callable[[Model, tuple[int, ...], tuple[int, ...]], bool | None]
                = lambda model, noise, sample: None, *, before: Project | None = None,
                outputs: int | None = None,
                model_fits: Callable[[Model, str | None], bool | None] = lambda model, task: None) -> list[str]:
    """Make ``project`` train for ``task_type`` (None: the dataset's labels)
    and fit it as far as one step can: the loss, a GAN's networks, text
    generation's data. ``sample_shape``: one data sample's shape (None when
    only loading can tell); ``generator_fits(model, noise_shape, sample_shape)``
    says whether a model turns noise into such samples (None: cannot tell).

    Leaving a GAN or text generation: ``before`` is the project as it was
    before that task was chosen (in this window session), whose model,
    data and optimizer come back; without it, a model made for the old task
    (a generator, a character LSTM on other data) is replaced by a small
    default one for the new task (``outputs``: the classes or values the
    labels have). ``model_fits(model, task)`` says whether a model fits the
    new task and the data (None: cannot tell).
    Returns what changed besides the task, as sentences for the user."""
    said: list[str] = []
    old = project.task_type
    training = project.training
    project.task = None if task_type is None else Component(task_type, TASKS.get(task_type).initial_params())
    if old == "gan" and task_type != "gan" and project.discriminator is not None:
        project.discriminator = None
        said.append("removed the discriminator")
    if old == "gan" and task_type != "gan":
        training.discriminator_optimizer = None  # it trained the discriminator, gone now
    if old in REPLACING_TASKS and task_type not in REPLACING_TASKS:
        said[:0] = _leave_task(project, old, task_type, sample_shape, before, outputs, model_fits)
    if task_type is None:
        dataset = DATASETS.get(project.data.dataset) if project.data.dataset in DATASETS else None
        learns = dataset.info.get("task") if dataset is not None else "auto"
        loss = training.loss.type if training.loss is not None else None
        if old in ("reconstruction", "gan") and learns == "classification" and loss not in CLASS_LOSSES:
            training.loss = Component("CrossEntropyLoss", {})
            said.append("loss CrossEntropyLoss")
        return said
    entry = TASKS.get(task_type)
    loss = training.loss.type if training.loss is not None else None
    # A loss the last task set (a GAN's BCEWithLogitsLoss) is not the user's choice for this one.
    if loss not in entry.info["losses"] or (old not in (None, task_type) and loss == TASK_LOSSES.get(old)):
        training.loss = Component(TASK_LOSSES[task_type], {})
        said.append(f"loss {TASK_LOSSES[task_type]}")
    if task_type == "gan":
        params = project.task_params()
        dcgan = Component(DEFAULT_DISCRIMINATOR_OPTIMIZER["type"],
                          copy.deepcopy(DEFAULT_DISCRIMINATOR_OPTIMIZER["params"]))
        if training.optimizer != dcgan:
            # A classifier's rate (often 1e-3 or more) lets the generator run away from the
            # discriminator: both start with DCGAN's settings.
            training.optimizer = dcgan
            said.append("DCGAN's Adam (lr 0.0002) for both networks")
        if training.scheduler is not None:
            training.scheduler = None
            said.append("no learning-rate schedule")
        if training.early_stopping is not None:
            training.early_stopping = None
            said.append("no early stopping")
        if project.discriminator is None:
            project.discriminator = default_discriminator(sample_shape)
            said.append("added a discriminator")
        if sample_shape is not None:
            noise = (int(params["noise_dim"]),)
            fits = generator_fits(project.model, noise, tuple(sample_shape)) if project.model.layers else False
            if fits:
                project.model.input_shape = None  # the noise gives it
            else:
                project.model = default_generator(tuple(sample_shape), params["pixel_range"])
                said.append(f"new DCGAN-style generator (noise {noise[0]} → {'x'.join(map(str, sample_shape))})")
        else:
            said.append("the model stays the generator (load the data to check that it makes "
                        "samples of its shape)")
    elif task_type == "text_generation":
        if project.data.dataset != "text":
            project.data.dataset = "text"
            project.data.params = DATASETS.get("text").initial_params()
            project.data.augment = None
            said.append("dataset text")
            project.model.input_shape = None  # the text's sequences give it
        layers = project.model.layers
        if not layers or layers[0].type != "Embedding":
            project.model = char_model()
            said.append("new character LSTM model")
    return said


def _leave_task(project: Project, old: str, task_type: str | None, sample_shape, before: Project | None,
                outputs: int | None, model_fits) -> list[str]:
    """A model that fits ``task_type`` after a GAN or text generation: the
    one from before that task (with its data and optimizer), else a default."""
    said: list[str] = []
    training = project.training
    if before is not None:
        back: list[str] = []
        note = ""
        if before.model != project.model and (before.task_type == task_type
                                               or model_fits(before.model, task_type)):
            project.model = copy.deepcopy(before.model)
            back.append("model")
        if before.data != project.data:
            project.data = copy.deepcopy(before.data)
            back.append(f"dataset ({project.data.dataset})")
        for name, text in (("optimizer", "optimizer"), ("scheduler", "learning-rate schedule"),
                           ("early_stopping", "early stopping")):
            earlier = getattr(before.training, name)
            if earlier != getattr(training, name):
                setattr(training, name, copy.deepcopy(earlier))
                if earlier is not None:
                    back.append(text)
                    note = f" ({_describe(earlier)})" if name == "optimizer" else note
        if back:
            listed = back[0] if len(back) == 1 else ", ".join(back[:-1]) + " and " + back[-1]
            said.append(f"the {listed} from before the {short_task_name(old)}{note}")
        if "model" in back:
            return said
    made_for_old = (old == "gan" or (old == "text_generation" and _is_char_model(project.model)
                                     and project.data.dataset != "text"))
    if not made_for_old or model_fits(project.model, task_type):
        return said
    shape = tuple(sample_shape) if sample_shape else None
    if task_type == "reconstruction" and shape is not None:
        pixel_range = project.task_params().get("pixel_range", "unit")
        project.model = default_autoencoder(shape, pixel_range)
        project.task.params["code_layer"] = CODE_ID
        said.append(f"new convolutional autoencoder (code layer '{CODE_ID}')" if len(shape) == 3
                    else f"new autoencoder (code layer '{CODE_ID}')")
    else:
        project.model = default_classifier(shape, outputs or 10)
        said.append(f"new {'CNN' if shape is not None and len(shape) == 3 else 'MLP'} classifier "
                    f"({outputs or 10} outputs) in place of the "
                    f"{'generator' if old == 'gan' else 'character model'}")
    plain = Component("Adam", {"lr": 0.001})
    if old == "gan" and training.optimizer != plain:
        # A GAN's rate and betas (DCGAN's 0.0002 and 0.5) are not a classifier's.
        training.optimizer = plain
        said.append("Adam lr 0.001")
    return said


def _describe(component: Component) -> str:
    params = ", ".join(f"{key} {value}" for key, value in component.params.items())
    return f"{component.type} {params}".strip()


class TaskPanel(QGroupBox):
    """The task and its parameters. Emits ``task_changed(sentence)`` after the
    user chose a task, saying what changed (for the status bar)."""

    task_changed = Signal(str)

    def __init__(self, document: ProjectDocument):
        super().__init__("Task")
        self.document = document
        layout = QVBoxLayout(self)
        self.combo = ComboBox()
        self.combo.addItem(LABELS_TITLE, None)
        self.combo.setItemData(0, LABELS_HELP, Qt.ItemDataRole.ToolTipRole)
        for entry in TASKS:
            self.combo.addItem(task_title(entry.name), entry.name)
            self.combo.setItemData(self.combo.count() - 1, entry.help, Qt.ItemDataRole.ToolTipRole)
        self.combo.setToolTip("What the model learns to do")
        self.help = QLabel()
        self.help.setWordWrap(True)
        self.help.setEnabled(False)
        self.form = ParamForm()
        self.form.bind(document, "task.params.")
        # An autoencoder's code: one of the model's layers, picked from a list
        # (the form's own text field would ask for an id the layer may not have).
        self.code_layer = ComboBox()
        self.code_layer.setToolTip(TASKS.get("reconstruction").param("code_layer").help
                                   + ". A layer without an id gets one.")
        self.code_row = QWidget()
        code_form = QFormLayout(self.code_row)
        code_form.setContentsMargins(0, 0, 0, 0)
        self.code_label = QLabel("code_layer")
        code_form.addRow(self.code_label, self.code_layer)
        layout.addWidget(self.combo)
        layout.addWidget(self.help)
        layout.addWidget(self.form)
        layout.addWidget(self.code_row)
        self.combo.currentIndexChanged.connect(self._task_chosen)
        #: The project as it was before a GAN or text generation was chosen in this
        #: session, by that task: leaving the task brings its model back.
        self._before: dict[str, Project] = {}
        document.project_replaced.connect(self._before.clear)
        self.form.param_changed.connect(self._param_changed)
        self.code_layer.activated.connect(self._code_layer_chosen)

    def sync(self) -> None:
        project = self.document.project
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(max(0, self.combo.findData(project.task_type)))
        self.combo.blockSignals(False)
        task = project.task
        if task is None or task.type not in TASKS:
            self.help.setText(LABELS_HELP)
            self.form.set_entry(None, {})
            self.form.hide()
            self.code_row.hide()
            return
        entry = TASKS.get(task.type)
        self.help.setText(entry.help)
        has_code = any(param.name == "code_layer" for param in entry.params)
        if has_code:
            entry = dataclasses.replace(entry, params=tuple(p for p in entry.params if p.name != "code_layer"))
            self._fill_code_layers(task.params.get("code_layer"))
        self.code_row.setVisible(has_code)
        self.form.set_entry(entry, task.params)
        self.form.show()
        if has_code:  # in line with the form's fields above it
            rows = self.form.layout_
            labels = [rows.itemAt(row, QFormLayout.ItemRole.LabelRole) for row in range(rows.rowCount())]
            self.code_label.setMinimumWidth(max((item.widget().sizeHint().width() for item in labels
                                                 if item is not None and item.widget() is not None), default=0))

    def _fill_code_layers(self, current: str | None) -> None:
        """None, then every layer of the model but the last (the code comes before the decoder)."""
        layers = self.document.project.model.layers
        report = self.document.reports.get("model")
        combo = self.code_layer
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("none (no code layer)", None)
        for index, layer in enumerate(layers[:-1]):
            info = report.layers[index] if report is not None and index < len(report.layers) else None
            label = info.label if info is not None and info.type == layer.type else layer.type
            shape = f"  → {'x'.join(map(str, info.output_shape))}" if info is not None and info.output_shape else ""
            combo.addItem(f"#{index} {layer.id + ': ' if layer.id else ''}{label}{shape}", index)
        ids = [layer.id for layer in layers[:-1]]
        if current is None:
            combo.setCurrentIndex(0)
        elif current in ids:
            combo.setCurrentIndex(ids.index(current) + 1)
        else:  # the file names a layer the model does not have (the project's problem says so)
            combo.addItem(f"{current} (not a layer of the model)", current)
            combo.setCurrentIndex(combo.count() - 1)
        combo.blockSignals(False)

    # -- edits ---------------------------------------------------------------------------------

    def choose(self, task_type: str | None) -> list[str]:
        """Make the project train for ``task_type`` (one undo step); returns
        what changed besides the task."""
        document = self.document
        if task_type == document.project.task_type:
            return []
        sample = data_sample_shape(document)
        title = task_title(task_type)
        old = document.project.task_type
        earlier = copy.deepcopy(document.project)
        remembered = self._before.get(old) if old in REPLACING_TASKS else None
        outputs = data_outputs(document)
        said = document.apply(
            lambda project: switch_task(project, task_type, sample, self._generator_fits, before=remembered,
                                        outputs=outputs,
                                        model_fits=lambda model, task: self._model_fits(model, task, sample, outputs)),
            f"Set task to {title}")
        if task_type in REPLACING_TASKS and document.project.task_type == task_type:
            # Leaving it again brings back this model, data and optimizer (this session only).
            self._before[task_type] = earlier
        # Short: the status bar's permanent text (the last run's result) sits right of it
        # and cuts off what does not fit.
        message = f"Task: {short_task_name(task_type)}" + (
            ": " + "; ".join(said) + ". Undo brings back all of it." if said else "")
        self.task_changed.emit(message)
        return said

    def _task_chosen(self, index: int) -> None:
        self.choose(self.combo.itemData(index))

    def _param_changed(self, name: str, value) -> None:
        def edit(project) -> None:
            apply_param(project.task.params, name, value)

        if self.document.project.task is not None:
            self.document.apply(edit, f"Set task {name}", merge_key=f"task.params.{name}")

    def _code_layer_chosen(self, row: int) -> None:
        index = self.code_layer.itemData(row)
        if isinstance(index, str) or self.document.project.task_type != "reconstruction":
            return  # the unknown name shown as it is: nothing to set

        def edit(project) -> None:
            if index is None:
                project.task.params.pop("code_layer", None)
                return
            layer = project.model.layers[index]
            if not layer.id:
                layer.id = fresh_id((other.id for other in project.model.layers if other.id), layer.type)
            project.task.params["code_layer"] = layer.id

        self.document.apply(edit, "Set code layer")

    def _model_fits(self, model: Model, task_type: str | None, sample: tuple[int, ...] | None,
                    outputs: int | None) -> bool | None:
        """Whether ``model`` takes the data's samples and gives what ``task_type``
        needs (the labels' values; the sample itself for reconstruction)."""
        if sample is None or not self.document.engine_ready():
            return None
        from ..engine.build import analyze

        work = copy.deepcopy(model)
        work.input_shape = None
        report = analyze(work, tuple(sample))
        if report.problems() or report.output_shape is None:
            return False
        given = tuple(report.output_shape)
        if task_type == "reconstruction":
            return given == tuple(sample)
        return given == (outputs,) if outputs else None

    def _generator_fits(self, model: Model, noise: tuple[int, ...], sample: tuple[int, ...]) -> bool | None:
        if not self.document.engine_ready():
            return None
        from ..engine.build import analyze

        work = copy.deepcopy(model)
        work.input_dtype = "float32"
        report = analyze(work, noise)
        return not report.problems() and report.output_shape is not None \
            and tuple(report.output_shape) == tuple(sample)


def data_outputs(document: ProjectDocument) -> int | None:
    """How many values the dataset's labels have per sample (its classes),
    as far as known without loading it."""
    info = document.loaded_info()
    if info is None and document.engine_ready():
        from ..engine.checks import catalogue_info

        info = catalogue_info(document.project)
    if info is None:
        return None
    return info.num_classes or info.num_outputs


def data_sample_shape(document: ProjectDocument) -> tuple[int, ...] | None:
    """One sample's shape of the project's data, as far as known without
    loading it: the loaded data's, the catalogue's, else the shape the
    project gives its data-fed network."""
    info = document.loaded_info()
    if info is not None:
        return tuple(info.input_shape)
    project = document.project
    entry = DATASETS.get(project.data.dataset) if project.data.dataset in DATASETS else None
    if entry is not None and "input_shape" in entry.info:
        return tuple(entry.info["input_shape"])
    fed = project.discriminator if project.task_type == "gan" else project.model
    if fed is not None and fed.input_shape:
        return tuple(fed.input_shape)
    return None
