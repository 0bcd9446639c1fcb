"""The Data and Training tabs: forms that edit the project through the
document (so every change is undoable) and previews of the data."""

from __future__ import annotations

import copy

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QImage, QPalette, QPixmap
from PySide6.QtWidgets import (
    QCheckBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget,
    QPushButton, QScrollArea, QStackedWidget, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

from ..registry import (
    AUGMENT, DATASETS, DEFAULT_DISCRIMINATOR_OPTIMIZER, EARLY_STOPPING, LOSSES, OPTIMIZERS, PRECISIONS, SCHEDULERS,
    Catalogue,
)
from ..registry.backbones import BACKBONES, preprocessing_for, usable_weights
from ..spec import Component
from ..spec.templates import input_backbone
from .charts import PALETTE_EVENTS, CategoryAxis, follow_palette, visible_text
from .document import ProjectDocument
from .fine_tune_form import FineTuneForm
from .sweep_this import add_sweep_entry
from .task_panel import TaskPanel
from .param_form import (
    ComboBox, DoubleSpinBox, ParamForm, SpinBox, TextField, apply_param, format_value,
)

# How a message_label says a problem, or a warning (one place for every view and controller).
ERROR_STYLE = "color: #dc2626;"
WARNING_STYLE = "color: #b45309;"
WARNING_COLOR = "#b45309"
#: ``data.balance``'s choices as the Data tab offers them.
BALANCE_CHOICES = (
    ("none", "as they are", "Every sample once per epoch; the loss treats all classes alike"),
    ("class_weights", "class weights in the loss",
     "Each class's loss weighs n / (classes × its count): a rare class's mistakes cost more"),
    ("sampler", "balanced sampler",
     "Each epoch draws samples so that every class comes up about as often (with replacement)"),
)
#: Classes this many times apart in count are uneven enough to mention.
IMBALANCE_RATIO = 1.5
SOURCE_TITLES = {"builtin": "Built-in (offline)", "torchvision": "torchvision (downloads)",
                 "user": "Your data"}


def _numbers(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def preprocessing_text(project) -> str | None:
    """How the pretrained backbone that takes the model's input wants its
    images, and from which weights: None without one."""
    layer = input_backbone(project.model)
    if layer is None:
        return None
    name, params = layer.type, layer.params
    weights = usable_weights(name, params.get("weights", BACKBONES[name]["default_weights"]))
    values = preprocessing_for(name, weights)
    if params.get("weights_file"):
        source = f"{name}'s own weights file (ImageNet preprocessing, as torchvision's weights)"
    elif weights == "none":
        source = (f"as for {name}'s {BACKBONES[name]['default_weights']} weights; "
                  "this layer starts from random weights")
    else:
        source = f"from {name}'s {weights} weights"
    return (f"<b>Preprocessing</b> ({source}): resize {values['resize']} · center crop {values['crop']} · "
            f"mean {_numbers(values['mean'])} · std {_numbers(values['std'])}"
            + (f" · {values['interpolation']}" if values.get("interpolation") != "bilinear" else "")
            + (". The dataset's image_size and grayscale give way to it (their fields are off)."
               if project.data.dataset == "image_folder" else ""))


#: image_folder's parameters that a backbone taking the model's input overrides
#: (its preprocessing resizes and crops, and it takes colour images).
BACKBONE_DECIDES = ("image_size", "grayscale")


def message_label() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


def image_pixmap(array: np.ndarray, size: int = 56) -> QPixmap:
    """A uint8 (H, W) or (H, W, 3) array as a pixmap scaled to ``size``."""
    array = np.ascontiguousarray(array)
    if array.ndim == 2:
        image = QImage(array.data, array.shape[1], array.shape[0], array.strides[0],
                       QImage.Format.Format_Grayscale8)
    else:
        image = QImage(array.data, array.shape[1], array.shape[0], array.strides[0],
                       QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy()).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                                  Qt.TransformationMode.FastTransformation)


def _block(widget, setter, value) -> None:
    widget.blockSignals(True)
    setter(value)
    widget.blockSignals(False)


class ComponentEditor(QGroupBox):
    """A combo box of one catalogue (loss, optimizer, scheduler) and the form of
    the chosen entry's parameters. ``default``: what the project's None means
    (a GAN's discriminator optimizer); shown, and the start of the first edit."""

    def __init__(self, title: str, catalogue: Catalogue, document: ProjectDocument, key: str,
                 optional: bool = False, default: dict | None = None):
        super().__init__(title)
        self.catalogue, self.document, self.key = catalogue, document, key
        self.default = Component(default["type"], dict(default.get("params", {}))) if default else None
        layout = QVBoxLayout(self)
        self.combo = ComboBox()
        if optional:
            self.combo.addItem("None", None)
        for entry in catalogue:
            self.combo.addItem(entry.name, entry.name)
            self.combo.setItemData(self.combo.count() - 1, entry.help, Qt.ItemDataRole.ToolTipRole)
        self.help = QLabel()
        self.help.setWordWrap(True)
        self.help.setEnabled(False)
        self.form = ParamForm()
        self.form.bind(document, f"training.{key}.")
        # "Sweep this…" on the type and the parameters, once the project has the component.
        self.form.set_sweep_prefix(lambda: f"training.{key}.params." if self._has_component() else None)
        add_sweep_entry(self.combo, lambda: f"training.{key}.type" if self._has_component() else None,
                        lambda: document.project.to_dict())
        layout.addWidget(self.combo)
        layout.addWidget(self.help)
        layout.addWidget(self.form)
        self.combo.currentIndexChanged.connect(self._type_changed)
        self.form.param_changed.connect(self._param_changed)

    def _has_component(self) -> bool:
        return getattr(self.document.project.training, self.key) is not None

    def component(self) -> Component | None:
        return getattr(self.document.project.training, self.key) or self.default

    def sync(self) -> None:
        component = self.component()
        _block(self.combo, self.combo.setCurrentIndex,
               self.combo.findData(component.type) if component else 0)
        entry = self.catalogue.get(component.type) if component else None
        self.help.setText(entry.help if entry else "No learning-rate schedule: the rate stays fixed.")
        self.form.set_entry(entry, component.params if component else {})

    def _type_changed(self, index: int) -> None:
        name = self.combo.itemData(index)
        entry = self.catalogue.get(name) if name else None

        def edit(project) -> None:
            setattr(project.training, self.key,
                    Component(entry.name, entry.initial_params()) if entry else None)

        self.document.apply(edit, f"Set {self.key} to {name or 'none'}")

    def _param_changed(self, name: str, value) -> None:
        def edit(project) -> None:
            if getattr(project.training, self.key) is None and self.default is not None:
                setattr(project.training, self.key, copy.deepcopy(self.default))
            apply_param(getattr(project.training, self.key).params, name, value)

        self.document.apply(edit, f"Set {self.key}.{name}", merge_key=f"{self.key}.{name}")


def _parse_grad_clip(text: str) -> tuple[float | None, str | None]:
    text = text.strip()
    try:
        value = float(text) if text else None
    except ValueError:
        value = -1.0
    if value is not None and not (0 < value < float("inf")):
        return None, "must be a positive number (empty: no clipping)"
    return value, None


class TrainingSetup(QWidget):
    """The task, loss, optimizer(s), scheduler, epochs, device, seed, early
    stopping, precision. A GAN shows its discriminator's optimizer and hides
    what it cannot use (a schedule, early stopping)."""

    def __init__(self, document: ProjectDocument, devices: list[str] | None = None):
        super().__init__()
        self.document = document
        self.devices = devices  # None until torch has looked for GPUs
        layout = QVBoxLayout(self)
        self.task = TaskPanel(document)
        self.loss = ComponentEditor("Loss", LOSSES, document, "loss")
        self.optimizer = ComponentEditor("Optimizer", OPTIMIZERS, document, "optimizer")
        self.discriminator_optimizer = ComponentEditor(
            "Discriminator optimizer", OPTIMIZERS, document, "discriminator_optimizer",
            default=DEFAULT_DISCRIMINATOR_OPTIMIZER)
        self.discriminator_optimizer.hide()
        self.scheduler = ComponentEditor("Learning-rate schedule", SCHEDULERS, document, "scheduler",
                                         optional=True)
        run = QGroupBox("Run")
        form = QFormLayout(run)
        self.epochs = SpinBox()
        self.epochs.setRange(1, 1_000_000)
        self.batch_size = SpinBox()
        self.batch_size.setRange(1, 1 << 20)
        self.device = ComboBox()
        self._fill_devices()
        self.seed = SpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.precision = ComboBox()
        for name in PRECISIONS:
            self.precision.addItem(name, name)
        self.precision.setToolTip("16-bit formats use mixed precision on CUDA GPUs")
        self.grad_clip_field = TextField(document, "training.grad_clip", _parse_grad_clip,
                                         lambda value: self._set("grad_clip", value))
        self.grad_clip, self.grad_clip_note = self.grad_clip_field.edit, self.grad_clip_field.note
        self.grad_clip.setPlaceholderText("off")
        self.grad_clip.setToolTip("largest gradient norm; empty for no clipping")
        form.addRow("Epochs", self.epochs)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Device", self.device)
        form.addRow("Seed", self.seed)
        form.addRow("Precision", self.precision)
        form.addRow("Gradient clipping", self.grad_clip_field.widget)
        self.channels_last = QCheckBox("Channels-last images")
        self.channels_last.setToolTip("Store images and convolution weights as NHWC: faster "
                                      "convolutions on GPUs, above all with bf16 or fp16")
        self.compile = QCheckBox("torch.compile")
        self.compile.setToolTip("Faster steps once compiled; the first batches wait for the "
                                "compiler (seconds to a minute)")
        form.addRow("", self.channels_last)
        form.addRow("", self.compile)
        self.early = QGroupBox("Early stopping")
        self.early.setCheckable(True)
        early_layout = QVBoxLayout(self.early)
        self.early_form = ParamForm()
        self.early_form.bind(document, "training.early_stopping.")
        self.early_form.set_sweep_prefix(
            lambda: "training.early_stopping." if document.project.training.early_stopping is not None else None)
        self.task.form.set_sweep_prefix(lambda: "task.params." if document.project.task is not None else None)
        for field, path in ((self.epochs, "training.epochs"), (self.batch_size, "data.batch_size"),
                            (self.seed, "training.seed"), (self.grad_clip, "training.grad_clip")):
            add_sweep_entry(field, lambda path=path: path, lambda: document.project.to_dict())
        early_layout.addWidget(self.early_form)
        # Transfer learning: the head first, then the frozen layers at a lower rate.
        self.fine_tune = FineTuneForm(document)
        for widget in (self.task, self.loss, self.optimizer, self.discriminator_optimizer, self.scheduler,
                       run, self.fine_tune, self.early):
            layout.addWidget(widget)
        layout.addStretch(1)
        self.epochs.valueChanged.connect(lambda v: self._set("epochs", v))
        self.batch_size.valueChanged.connect(lambda v: self._set_data("batch_size", v))
        self.seed.valueChanged.connect(lambda v: self._set("seed", v))
        self.device.currentIndexChanged.connect(lambda i: self._set("device", self.device.itemData(i)))
        self.precision.currentIndexChanged.connect(
            lambda i: self._set("precision", self.precision.itemData(i)))
        document.commit_requested.connect(self._commit_edits)
        self.channels_last.toggled.connect(lambda on: self._set("channels_last", on))
        self.compile.toggled.connect(lambda on: self._set("compile", on))
        self.early.toggled.connect(self._early_toggled)
        self.early_form.param_changed.connect(self._early_param)

    def _set(self, key: str, value) -> None:
        self.document.apply(lambda p: setattr(p.training, key, value), f"Set {key}",
                            merge_key=f"training.{key}")

    def _set_data(self, key: str, value) -> None:
        self.document.apply(lambda p: setattr(p.data, key, value), f"Set {key}",
                            merge_key=f"data.{key}")

    def _commit_edits(self) -> None:
        for spin in (self.epochs, self.batch_size, self.seed):
            spin.interpretText()

    def _early_toggled(self, on: bool) -> None:
        value = EARLY_STOPPING.resolve({}) if on else None
        self.document.apply(lambda p: setattr(p.training, "early_stopping", value),
                            "Turn early stopping " + ("on" if on else "off"))

    def _early_param(self, name: str, value) -> None:
        def edit(project) -> None:
            settings = project.training.early_stopping or EARLY_STOPPING.resolve({})
            settings[name] = value if value is not None else EARLY_STOPPING.param(name).default
            project.training.early_stopping = settings

        self.document.apply(edit, f"Set early stopping {name}", merge_key=f"early.{name}")

    def set_devices(self, devices: list[str]) -> None:
        self.devices = devices
        self._fill_devices()
        self.sync()

    def _fill_devices(self) -> None:
        self.device.blockSignals(True)
        self.device.clear()
        for name in ["auto", *(self.devices if self.devices is not None else ["cpu"])]:
            self.device.addItem(name, name)
        self.device.blockSignals(False)
        self.device.setToolTip("" if self.devices is not None else "Looking for GPUs while PyTorch loads…")

    def sync(self) -> None:
        training = self.document.project.training
        gan = self.document.project.task_type == "gan"
        self.task.sync()
        for editor in (self.loss, self.optimizer, self.scheduler):
            editor.sync()
        self.optimizer.setTitle("Generator optimizer" if gan else "Optimizer")
        self.discriminator_optimizer.setVisible(gan)
        if gan:
            self.discriminator_optimizer.sync()
        else:  # out of sight: a refused value typed there must not keep Train waiting
            self.discriminator_optimizer.form.discard_edits()
        # A GAN has two optimizers and no validation loss: a schedule or early
        # stopping it cannot use stays out of sight (unless a file set one: then
        # it shows, with the project's problem saying to turn it off).
        self.scheduler.setVisible(not gan or training.scheduler is not None)
        self.early.setVisible(not gan or training.early_stopping is not None)
        self.fine_tune.setVisible(not gan or training.fine_tune is not None)
        self.fine_tune.sync()
        _block(self.epochs, self.epochs.setValue, training.epochs)
        _block(self.batch_size, self.batch_size.setValue, self.document.project.data.batch_size)
        _block(self.seed, self.seed.setValue, min(training.seed, 2**31 - 1))
        index = self.device.findData(training.device)
        if index < 0:
            found = "not found here" if self.devices is not None else "looking for devices…"
            self.device.addItem(f"{training.device} ({found})", training.device)
            index = self.device.count() - 1
        _block(self.device, self.device.setCurrentIndex, index)
        _block(self.precision, self.precision.setCurrentIndex, self.precision.findData(training.precision))
        _block(self.channels_last, self.channels_last.setChecked, training.channels_last)
        _block(self.compile, self.compile.setChecked, training.compile)
        self.grad_clip_field.show(format_value(training.grad_clip))  # unless the user's text is not applied
        _block(self.early, self.early.setChecked, training.early_stopping is not None)
        if training.early_stopping is None:  # turned off (or undone): a refused value typed there goes too
            self.early_form.discard_edits()
        self.early_form.set_entry(EARLY_STOPPING, training.early_stopping or {})
        self.early_form.setEnabled(training.early_stopping is not None)


class DataPanel(QWidget):
    """Dataset picker and parameters, split and augmentation settings, and a
    preview: images with their class names, a scatter plot of points, a table
    of rows, text samples; the class balance; problems explained in place."""

    load_requested = Signal()

    def __init__(self, document: ProjectDocument):
        super().__init__()
        self.document = document
        outer = QHBoxLayout(self)
        left = QWidget()
        left.setMaximumWidth(420)
        left_layout = QVBoxLayout(left)
        self.dataset = ComboBox()
        by_source: dict[str, list] = {}
        for entry in DATASETS:
            by_source.setdefault(entry.info["source"], []).append(entry)
        model = self.dataset.model()
        for source, entries in by_source.items():
            self.dataset.addItem(SOURCE_TITLES[source], None)
            model.item(self.dataset.count() - 1).setEnabled(False)
            for entry in entries:
                self.dataset.addItem(f"   {entry.name}", entry.name)
                self.dataset.setItemData(self.dataset.count() - 1, entry.help, Qt.ItemDataRole.ToolTipRole)
        self.help = QLabel()
        self.help.setWordWrap(True)
        self.form = ParamForm()
        self.form.bind(document, "data.params.")
        box = QGroupBox("Dataset")
        box_layout = QVBoxLayout(box)
        box_layout.addWidget(self.dataset)
        box_layout.addWidget(self.help)
        box_layout.addWidget(self.form)
        split = QGroupBox("Split")
        split_form = QFormLayout(split)
        self.val_fraction = DoubleSpinBox()
        self.val_fraction.setRange(0.0, 0.9)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setDecimals(2)
        split_form.addRow("Validation fraction", self.val_fraction)
        # Uneven classes: weights in the loss, or batches drawn evenly (``data.balance``).
        self.balance_choice = ComboBox()
        for name, text, tip in BALANCE_CHOICES:
            self.balance_choice.addItem(text, name)
            self.balance_choice.setItemData(self.balance_choice.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.balance_choice.setToolTip("How classes with fewer samples get their share of the training")
        split_form.addRow("Uneven classes", self.balance_choice)
        self.augment = QGroupBox("Augmentation (images, training only)")
        self.augment.setCheckable(True)
        # Every AUGMENT parameter, from its Entry: a key the form had no field for
        # would be dropped by the next edit.
        self.augment_form = ParamForm()
        self.augment_form.bind(document, "data.augment.")
        QVBoxLayout(self.augment).addWidget(self.augment_form)
        self.load_button = QPushButton("Load and preview")
        self.message = message_label()
        for widget in (box, split, self.augment, self.load_button, self.message):
            left_layout.addWidget(widget)
        left_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(left)
        scroll.setMaximumWidth(440)
        outer.addWidget(scroll)

        right = QVBoxLayout()
        self.summary = QLabel("Load the data to see samples.")
        self.summary.setWordWrap(True)
        #: How a pretrained backbone wants its images (resize, crop, mean and std).
        self.preprocessing = QLabel()
        self.preprocessing.setWordWrap(True)
        self.preprocessing.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.preprocessing.hide()
        #: Files of an image folder that were not images (or could not be read).
        self.skipped = message_label()
        self.preview = QStackedWidget()
        self.image_grid = QWidget()
        self.grid_layout = QGridLayout(self.image_grid)
        self.grid_layout.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.scatter = pg.PlotWidget()
        self.scatter.setBackground(self.palette().color(QPalette.ColorRole.Base))
        self.table = QTableWidget()
        self.text_list = QListWidget()
        for widget in (self.image_grid, self.scatter, self.table, self.text_list):
            self.preview.addWidget(widget)
        self.balance = pg.PlotWidget(title="Class balance (training split)",
                                     axisItems={"bottom": CategoryAxis("bottom")})
        self.balance.setBackground(self.palette().color(QPalette.ColorRole.Base))
        self.balance.setMaximumHeight(180)
        # One bar item, fed with setOpts: emptied (with the axis's names) when the preview clears.
        self.balance_bars = pg.BarGraphItem(x=np.zeros(0), height=np.zeros(0), width=0.8,
                                            brush=(59, 130, 246))
        self.balance.addItem(self.balance_bars)
        for plot in (self.scatter, self.balance):
            follow_palette(plot, self.palette())
        # Each class's count in numbers beside the bars: what the bars cannot say exactly.
        self.class_table = QTableWidget(0, 3)
        self.class_table.setHorizontalHeaderLabels(["Class", "Samples", "Share"])
        self.class_table.setToolTip("Samples of each class in the training split")
        self.class_table.verticalHeader().hide()
        self.class_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.class_table.setMaximumHeight(180)
        self.class_table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.class_table.setWordWrap(False)
        self._clear_balance()  # shown with data that has classes
        classes = QHBoxLayout()
        classes.addWidget(self.balance, 1)
        classes.addWidget(self.class_table)
        right.addWidget(self.summary)
        right.addWidget(self.preprocessing)
        right.addWidget(self.skipped)
        right.addWidget(self.preview, 3)
        right.addLayout(classes, 1)
        outer.addLayout(right, 1)

        self.dataset.currentIndexChanged.connect(self._dataset_changed)
        self.form.param_changed.connect(self._param_changed)
        self.val_fraction.valueChanged.connect(
            lambda v: document.apply(lambda p: setattr(p.data, "val_fraction", round(v, 4)),
                                     "Set validation fraction", merge_key="data.val_fraction"))
        self.augment.toggled.connect(self._augment_toggled)
        self.augment_form.param_changed.connect(self._augment_param_changed)
        self.load_button.clicked.connect(self.load_requested)
        self.balance_choice.currentIndexChanged.connect(self._balance_changed)
        document.commit_requested.connect(self._commit_edits)

    def _commit_edits(self) -> None:
        self.val_fraction.interpretText()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in PALETTE_EVENTS:
            for plot in (self.scatter, self.balance):
                follow_palette(plot, self.palette())

    def _dataset_changed(self, index: int) -> None:
        name = self.dataset.itemData(index)
        if name is None:
            return
        entry = DATASETS.get(name)

        def edit(project) -> None:
            project.data.dataset = name
            project.data.params = entry.initial_params()
            project.model.input_shape = None  # the new dataset supplies it

        self.document.apply(edit, f"Use dataset {name}")

    def _param_changed(self, name: str, value) -> None:
        def edit(project) -> None:
            apply_param(project.data.params, name, value)

        self.document.apply(edit, f"Set dataset {name}", merge_key=f"data.params.{name}")

    def _balance_changed(self, index: int) -> None:
        value = self.balance_choice.itemData(index)
        self.document.apply(lambda p: setattr(p.data, "balance", value), f"Set class balance to {value}")

    def _show_backbone_decides(self, entry) -> None:
        """image_folder's image_size and grayscale are off while a pretrained
        backbone takes the model's input: its preprocessing decides them."""
        found = input_backbone(self.document.project.model) if entry.name == "image_folder" else None
        for name in BACKBONE_DECIDES:
            param = entry.param(name) if any(p.name == name for p in entry.params) else None
            if param is None:
                continue
            widget = self.form.editor(name)
            label = self.form.layout_.labelForField(widget.parentWidget())  # the row's name
            tip = (f"{param.help}\nDefault: {format_value(param.default)}" if found is None else
                   f"Not used: the model starts with {found.type}, whose preprocessing resizes and "
                   f"crops the images and takes them in colour (see Preprocessing)")
            for item in (widget, label):
                if item is not None:
                    item.setEnabled(found is None)
                    item.setToolTip(tip)

    def _augment_toggled(self, on: bool) -> None:
        """On: every setting at its default (an empty ``data.augment``); off: None."""
        self.document.apply(lambda p: setattr(p.data, "augment", {} if on else None),
                            "Turn augmentation " + ("on" if on else "off"))

    def _augment_param_changed(self, name: str, value) -> None:
        """Only the key edited changes: the others stay as the project has them."""
        def edit(project) -> None:
            settings = dict(project.data.augment or {})
            apply_param(settings, name, value)
            project.data.augment = settings

        self.document.apply(edit, f"Set augmentation {name}", merge_key=f"data.augment.{name}")

    def sync(self) -> None:
        data = self.document.project.data
        _block(self.dataset, self.dataset.setCurrentIndex, self.dataset.findData(data.dataset))
        entry = DATASETS.get(data.dataset)
        self.help.setText(entry.help)
        self.form.set_entry(entry, data.params)
        self._show_backbone_decides(entry)
        _block(self.val_fraction, self.val_fraction.setValue, data.val_fraction)
        _block(self.augment, self.augment.setChecked, data.augment is not None)
        if data.augment is None:  # turned off (or undone): a refused value typed there goes too
            self.augment_form.discard_edits()
        self.augment_form.set_entry(AUGMENT, data.augment or {})
        self.augment.setEnabled(entry.info.get("modality") in ("image", "array"))
        _block(self.balance_choice, self.balance_choice.setCurrentIndex,
               max(0, self.balance_choice.findData(data.balance)))
        # Regression has no classes to even out (a value set in the file stays changeable).
        self.balance_choice.setEnabled(entry.info.get("task") != "regression" or data.balance != "none")
        text = preprocessing_text(self.document.project)
        self.preprocessing.setText(text or "")
        self.preprocessing.setVisible(bool(text))

    # -- showing data ------------------------------------------------------------------------

    def show_loading(self) -> None:
        self.message.setStyleSheet("")
        self.message.setText("Loading…")
        self.message.show()
        self.load_button.setEnabled(False)

    def show_error(self, text: str) -> None:
        self.load_button.setEnabled(True)
        self.message.setStyleSheet(ERROR_STYLE)
        self.message.setText(text)
        self.message.show()
        self.summary.setText("The data could not be loaded: see the message on the left.")

    def clear_preview(self) -> None:
        """No preview: the project's data settings are no longer those shown."""
        self.message.hide()
        self.summary.setText("Load the data to see samples.")
        self._clear_grid()
        self.scatter.clear()
        self.table.setRowCount(0)
        self.text_list.clear()
        self._clear_balance()
        self.skipped.hide()
        self.preview.setCurrentWidget(self.image_grid)

    def _clear_balance(self) -> None:
        """No bars, no class names, no range: nothing of the previous data's
        class balance (its 0..400 and "class 0 / class 1" stayed on the empty
        chart after New), and the chart hidden until data with classes shows."""
        self.balance_bars.setOpts(x=np.zeros(0), height=np.zeros(0))
        self.balance.getAxis("bottom").set_names([])
        self.balance.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.balance.hide()
        self.class_table.setRowCount(0)
        self.class_table.hide()

    def show_data(self, data) -> None:
        self.load_button.setEnabled(True)
        self.message.hide()
        info = data.info
        sizes = info.sizes
        task = (f"{info.num_classes} classes" if info.task == "classification"
                else f"regression, {info.num_outputs} value(s) per sample")
        self.summary.setText(
            f"<b>{info.title}</b>: {sizes['train']:,} training, {sizes['val']:,} validation"
            + (f", {sizes['test']:,} test" if sizes.get("test") else "")
            + f" samples · input {tuple(info.input_shape)} {info.input_dtype} · {task}")
        previews = data.preview(24)
        if info.modality == "image":
            self._show_images(previews)
        elif info.modality == "points":
            self._show_points(data)
        elif info.modality == "text":
            self.text_list.clear()
            for text, label in previews:
                self.text_list.addItem(f"{text!r} → {visible_text(label)}")
            self.preview.setCurrentWidget(self.text_list)
        else:
            self._show_table(previews)
        self._clear_balance()
        if info.class_counts:
            counts = np.array(info.class_counts)
            self.balance_bars.setOpts(x=np.arange(len(counts)), height=counts)
            self.balance.getAxis("bottom").set_names(
                info.class_names or [str(i) for i in range(len(counts))])
            self.balance.enableAutoRange()
            self.balance.show()
            self._show_class_counts(list(info.class_counts), info.class_names)
        skipped = int(getattr(info, "skipped", 0) or 0)
        self.skipped.setStyleSheet(WARNING_STYLE)
        self.skipped.setText(f"{skipped:,} file{'s' if skipped != 1 else ''} skipped: not images, "
                             "or images that could not be read")
        self.skipped.setVisible(skipped > 0)

    def _show_class_counts(self, counts: list[int], names: list[str] | None) -> None:
        """Each class's training samples and share; the rarest and the commonest marked
        when they differ enough for the balance options to matter."""
        total = sum(counts) or 1
        self.class_table.setRowCount(len(counts))
        low, high = min(counts), max(counts)
        uneven = low * IMBALANCE_RATIO < high
        for row, count in enumerate(counts):
            name = names[row] if names and row < len(names) else str(row)
            cells = [name, f"{count:,}", f"{100 * count / total:.1f}%"]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if uneven and count == low:
                    item.setToolTip(f"The rarest class: {high / max(low, 1):.1f}× fewer samples than the "
                                    "commonest (see Uneven classes, left)")
                    item.setForeground(QColor(WARNING_COLOR))
                self.class_table.setItem(row, column, item)
        self.class_table.resizeColumnsToContents()
        header = self.class_table.horizontalHeader()
        names = min(header.sectionSize(0), 220)  # a long class name elides rather than pushing the bars away
        header.resizeSection(0, names)
        width = sum(header.sectionSize(c) for c in range(3)) + 2 * self.class_table.frameWidth()
        scroll = self.class_table.verticalScrollBar().sizeHint().width()
        self.class_table.setFixedWidth(width + scroll + 4)
        self.class_table.show()

    def _clear_grid(self) -> None:
        while self.grid_layout.count():
            item = self.grid_layout.takeAt(0)
            if item.widget():
                item.widget().deleteLater()

    def _show_images(self, previews) -> None:
        self._clear_grid()
        columns = 8
        for i, (image, label) in enumerate(previews):
            cell = QLabel()
            cell.setPixmap(image_pixmap(image, 64))
            cell.setAlignment(Qt.AlignmentFlag.AlignCenter)
            caption = QLabel(label)
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            holder = QWidget()
            holder_layout = QVBoxLayout(holder)
            holder_layout.setContentsMargins(2, 2, 2, 2)
            holder_layout.addWidget(cell)
            holder_layout.addWidget(caption)
            self.grid_layout.addWidget(holder, i // columns, i % columns)
        self.preview.setCurrentWidget(self.image_grid)

    def _show_points(self, data) -> None:
        self.scatter.clear()
        x = data.normalization.invert(data.train.x.cpu()).numpy() if data.normalization else data.train.x.numpy()
        y = data.train.y.cpu().numpy()
        colors = [(59, 130, 246), (234, 88, 12), (22, 163, 74), (147, 51, 234), (219, 39, 119),
                  (8, 145, 178), (202, 138, 4), (100, 116, 139), (220, 38, 38), (5, 150, 105)]
        for label in np.unique(y):
            mask = y == label
            self.scatter.addItem(pg.ScatterPlotItem(x[mask, 0], x[mask, 1], size=5, pen=None,
                                                    brush=colors[int(label) % len(colors)]))
        self.preview.setCurrentWidget(self.scatter)

    def _show_table(self, previews) -> None:
        width = max((len(np.atleast_1d(values)) for values, _ in previews), default=0)
        self.table.setColumnCount(min(width, 20) + 1)
        self.table.setRowCount(len(previews))
        self.table.setHorizontalHeaderLabels([f"x{i}" for i in range(min(width, 20))] + ["target"])
        for row, (values, label) in enumerate(previews):
            for column, value in enumerate(np.atleast_1d(values).flatten()[:20]):
                self.table.setItem(row, column, QTableWidgetItem(f"{float(value):.4g}"))
            self.table.setItem(row, min(width, 20), QTableWidgetItem(label))
        self.preview.setCurrentWidget(self.table)
