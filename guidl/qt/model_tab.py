"""The Model tab: the layer stack with the input shape and the model's
summary, and the selected layer's properties. A view of the document: it
changes the project only through the document's undoable edits."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QScrollArea, QSplitter, QTabBar,
    QVBoxLayout, QWidget,
)

from ..formatting import format_bytes, format_shape
from ..registry import Param, UnknownNameError
from ..spec.graph import MAX_REPEAT, block_name_problem, entry_for
from .document import NETWORK_TITLES, LayerEdits, ProjectDocument
from .graph_canvas import GraphPanel
from .layer_fields import WiringFields
from .model_stack import ModelStackView
from .panels import ERROR_STYLE, WARNING_STYLE, message_label
from .param_form import ParamForm, SpinBox, TextField, parse_value

NO_LAYER_HELP = ("Select a layer to edit it, or add one from the palette "
                 "(double-click, Enter, or drag it onto the model).")
SEVERAL_LAYERS_HELP = ("{count} layers selected: copy them, delete them, make a block of them "
                       "or wrap them in a residual block (Edit and Model menus).")


def _parse_name(text: str) -> tuple[str, str | None]:
    name = text.strip()
    return name, None if name else "a project needs a name (runs and exports are named after it)"


def _parse_input_shape(text: str) -> tuple[object, str | None]:
    param = Param("input_shape", "int_list", None, minimum=1, nullable=True)
    try:
        value = parse_value(param, text)
        return value, param.check(value)
    except ValueError as error:
        return None, str(error)


#: The graph's share (percent) of the height it shares with the layer table, at first.
GRAPH_SHARE = 78


class ModelTab(QSplitter):
    #: "Edit Definition…" beside a block use's name: open the block's editor.
    edit_block_requested = Signal(str)

    def __init__(self, document: ProjectDocument, edits: LayerEdits, engine_ready: Callable[[], bool]):
        super().__init__(Qt.Orientation.Horizontal)
        self.document, self.edits, self.engine_ready = document, edits, engine_ready
        self.stack = ModelStackView(document)
        self.stack.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.stack.layer_selected.connect(self.show_layer)
        # The graph and the table: two views of the same layers, selecting together.
        self.graph = GraphPanel(document, edits)
        self.canvas = self.graph.canvas
        # Several selected (Ctrl+click, a rubber band, Shift in the table) show as several in both.
        self.canvas.layers_selected.connect(self.stack.select_layers)
        self.stack.layer_selected.connect(lambda _index: self.canvas.follow_selection(self.stack.selected_layers()))
        # New, Open: nothing of the old project stays selected (its indexes are other layers now).
        document.project_replaced.connect(lambda: self.stack.select_layers([]))
        # A GAN's two networks: the views show and edit the one chosen here.
        self.network_tabs = QTabBar()
        self.network_tabs.setDocumentMode(True)
        self.network_tabs.setExpanding(False)
        self.network_tabs.setDrawBase(False)
        self.network_names = list(NETWORK_TITLES)
        for name in self.network_names:
            self.network_tabs.addTab(NETWORK_TITLES[name])
        self.network_tabs.setTabToolTip(0, "The generator (the project's model): turns noise into samples")
        self.network_tabs.setTabToolTip(1, "The discriminator: scores each sample real (high) or generated (low)")
        self.network_tabs.currentChanged.connect(lambda i: document.set_network(self.network_names[i]))
        self.network_note = QLabel()
        self.network_note.setEnabled(False)  # quieter: it says what the tab shows
        self.network_bar = QWidget()
        bar_layout = QHBoxLayout(self.network_bar)
        bar_layout.setContentsMargins(0, 0, 0, 0)
        bar_layout.addWidget(QLabel("<b>Network:</b>"))
        bar_layout.addWidget(self.network_tabs)
        bar_layout.addWidget(self.network_note, 1)
        self.network_bar.hide()
        document.network_changed.connect(self._network_changed)
        self.views = QSplitter(Qt.Orientation.Vertical)
        self.views.addWidget(self.graph)
        self.views.addWidget(self.stack)
        # The graph is what the tab is about: most of the height; the table a few rows below it.
        self.views.setStretchFactor(0, 4)
        self.views.setStretchFactor(1, 1)
        self.views.setChildrenCollapsible(False)
        self.views.setSizes([GRAPH_SHARE * 100, (100 - GRAPH_SHARE) * 100])
        # The project's name: its runs' folders and its exports are named after it.
        self.name_field = TextField(document, "name", _parse_name, lambda name: document.apply(
            lambda p: setattr(p, "name", name), "Rename the project"))
        self.project_name = self.name_field.edit
        self.project_name.setToolTip("The project's name: its runs and exports are named after it")
        self.shape_field = TextField(document, "model.input_shape", _parse_input_shape, self._set_input_shape)
        self.input_shape = self.shape_field.edit
        self.shape_tip = ("One sample's shape without the batch, such as 1, 28, 28. "
                          "Leave empty to take it from the dataset.")
        self.input_shape.setToolTip(self.shape_tip)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.model_message = message_label()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        fields = QFormLayout()
        fields.addRow("Project name", self.name_field.widget)
        fields.addRow("Input shape", self.shape_field.widget)
        left_layout.addLayout(fields)
        left_layout.addWidget(self.network_bar)
        left_layout.addWidget(self.views, 1)
        left_layout.addWidget(self.model_message)
        left_layout.addWidget(self.summary)

        self.properties = QGroupBox("Layer properties")
        properties_layout = QVBoxLayout(self.properties)
        self.layer_help = QLabel(NO_LAYER_HELP)
        self.layer_help.setWordWrap(True)
        # The layer's place in the graph: its id, what it takes, and a block's repeat.
        self.wiring = WiringFields(document, "layer", lambda: document.model.layers,
                                   self.stack.selected_layer, self.edits.rename_id, self.edits.set_inputs,
                                   self.edits.set_option)
        self.id_field, self.inputs_field = self.wiring.id_field, self.wiring.inputs_field
        self.repeat = SpinBox()
        self.repeat.setRange(1, MAX_REPEAT)
        self.repeat.setToolTip("How many times the block is applied in sequence, each time with its own weights")
        self.repeat.valueChanged.connect(self._repeat_changed)
        # A block use: the block's name (renaming it renames every use).
        self.block_field = TextField(document, "layer · block", self._parse_block_name, self._rename_block)
        self.block_field.edit.setToolTip("The block's name; renaming it renames every use of it")
        self.wiring_form = QWidget()
        wiring_layout = QFormLayout(self.wiring_form)
        wiring_layout.setContentsMargins(0, 0, 0, 0)
        wiring_layout.addRow("id", self.id_field.widget)
        wiring_layout.addRow("inputs", self.inputs_field.widget)
        wiring_layout.addRow("block", self.block_field.widget)
        wiring_layout.addRow("repeat", self.repeat)
        wiring_layout.addRow("frozen", self.wiring.frozen)
        wiring_layout.addRow("lr multiplier", self.wiring.lr_field.widget)
        self.edit_block_button = QPushButton("Edit Definition…")
        self.edit_block_button.setToolTip("Edit the block's layers and parameters (every use follows)")
        self.edit_block_button.clicked.connect(self._edit_block)
        wiring_layout.addRow("", self.edit_block_button)
        self.block_only = [self.repeat, wiring_layout.labelForField(self.repeat), self.block_field.widget,
                           wiring_layout.labelForField(self.block_field.widget), self.edit_block_button]
        self._shown_layer = -1
        self.layer_form = ParamForm()
        # A refused value is the selected layer's field problem (Train waits for it).
        self.layer_form.bind(document, lambda: f"layer {self.stack.selected_layer()} · ")
        self.layer_form.param_changed.connect(self._layer_param_changed)
        self.layer_form.set_sweep_prefix(self._layer_path)
        self.layer_message = message_label()
        properties_layout.addWidget(self.layer_help)
        properties_layout.addWidget(self.wiring_form)
        properties_layout.addWidget(self.layer_form)
        properties_layout.addWidget(self.layer_message)
        # The analysis proposes an edit that fixes the layer: one click, one undo step.
        self.fix_button = QPushButton("Apply fix")
        self.fix_button.clicked.connect(self._apply_fix)
        self.fix_button.hide()
        properties_layout.addWidget(self.fix_button)
        properties_layout.addStretch(1)
        properties_scroll = QScrollArea()
        properties_scroll.setWidgetResizable(True)
        properties_scroll.setWidget(self.properties)
        self.addWidget(left)
        self.addWidget(properties_scroll)
        self.setSizes([800, 380])

    def sync(self) -> None:
        """Follow the document: input shape, summary, the model's problems, the selected layer."""
        project, report = self.document.project, self.document.report
        self.name_field.show(project.name)
        self._sync_network()
        gan = project.task_type == "gan"
        self.shape_field.show("" if gan else ", ".join(map(str, self.document.model.input_shape or [])))
        shape, _ = self.document.network_input()
        source = "the noise" if gan and self.document.network == "model" else "the dataset"
        self.input_shape.setPlaceholderText(
            f"from {source}: {', '.join(map(str, shape))}" if shape else "e.g. 1, 28, 28")
        # A GAN's inputs follow from the task: the noise's size (Train tab) and the data.
        self.input_shape.setReadOnly(gan)
        self.input_shape.setToolTip(
            "A GAN's generator takes the noise (its size is the task's noise_dim, in the Train tab); "
            "its discriminator takes the data's samples" if gan else self.shape_tip)
        if report is None and not self.engine_ready():
            self.summary.setText("Output shapes and parameter counts appear as soon as PyTorch "
                                 "has loaded (a few seconds after start-up).")
        if report is not None:
            batch = project.data.batch_size
            which = (f"<b>{NETWORK_TITLES[self.document.network]}</b> · "
                     if len(self.document.networks()) > 1 else "")
            self.summary.setText(
                which + f"<b>Total params:</b> {report.total_params:,} · trainable {report.trainable_params:,} · "
                f"frozen {report.frozen_params:,} · "
                f"<b>weights</b> {format_bytes(report.weight_bytes)} · <b>one batch of {batch}</b>: "
                f"activations {format_bytes(report.activation_bytes(batch))}")
            problems = report.problems()
            if self.document.network != "model":
                from ..engine.task_checks import network_problems  # loaded with torch: report is not None

                problems = network_problems(self.document.network, report)
            if problems:
                self._show(self.model_message, "\n".join(str(p) for p in problems[:4]), ERROR_STYLE)
            elif self.document.task_warnings:
                self._show(self.model_message, "\n".join(self.document.task_warnings[:4]), WARNING_STYLE)
            else:
                self.model_message.hide()
        self.show_layer(self.stack.selected_layer())

    # -- a GAN's two networks -----------------------------------------------------------------

    def _sync_network(self) -> None:
        """The switch shows when the project has a discriminator (a GAN), on the network shown."""
        document = self.document
        several = len(document.networks()) > 1
        self.network_bar.setVisible(several)
        with QSignalBlocker(self.network_tabs):
            self.network_tabs.setCurrentIndex(self.network_names.index(document.network))
        if several:
            shape, _ = document.network_input()
            report = document.report
            given = format_shape(report.output_shape) if report is not None and report.output_shape else "?"
            taken = format_shape(shape) if shape else "?"
            params = document.project.task_params()
            noise = int(params.get("noise_dim", 0) or 0)
            if document.network == "model" and params.get("conditional") and shape and len(shape) == 1 \
                    and shape[0] > noise:
                # What the input's size is made of: the noise and the class asked for (one-hot).
                self.network_note.setText(f"noise {noise} + class {shape[0] - noise} → {taken} → samples {given}")
            elif document.network == "model":
                self.network_note.setText(f"noise {taken} → samples {given}")
            else:
                self.network_note.setText(f"samples {taken} → score {given} (real or generated)")

    def show_network(self, name: str) -> None:
        """Show and edit network ``name`` ("model": the generator; "discriminator")."""
        self.document.set_network(name)

    @Slot(str)
    def _network_changed(self, name: str) -> None:
        # The indexes selected were the other network's layers.
        self.stack.select_layers([])
        for field in (self.shape_field, self.id_field, self.inputs_field, self.block_field):
            field.discard()
            self.document.set_field_problem(field.key, None)
        # The canvas fits the other graph once it has drawn it (it follows ``changed``, next).
        QTimer.singleShot(0, self, lambda: self.canvas.fit_to_view(keep_auto=True))

    def _set_input_shape(self, shape) -> None:
        network = self.document.network
        self.document.apply(lambda p: setattr(p.network(network), "input_shape", shape), "Set input shape",
                            network=network)

    def show_engine_error(self, message: str) -> None:
        self._show(self.model_message, message, ERROR_STYLE)
        self.summary.setText("Output shapes and parameter counts need PyTorch.")

    @staticmethod
    def _show(label: QLabel, text: str, style: str) -> None:
        label.setStyleSheet(style)
        label.setText(text)
        label.show()

    @Slot(int)
    def show_layer(self, index: int) -> None:
        model = self.document.model
        layers = model.layers
        if index != self._shown_layer:
            # Another layer: what was typed for the last one is dropped.
            for field in (*self.wiring.fields(), self.block_field):
                field.discard()
                self.document.set_field_problem(field.key, None)
            self._shown_layer = index
        try:
            entry = entry_for(model, layers[index].type) if 0 <= index < len(layers) else None
        except UnknownNameError:
            entry = None
        if entry is None:
            count = len(self.stack.selected_layers())
            self.properties.setTitle("Layer properties" if count < 2 else f"{count} layers")
            self.layer_help.setText(NO_LAYER_HELP if count < 2 else SEVERAL_LAYERS_HELP.format(count=count))
            self.wiring_form.hide()
            self.layer_form.set_entry(None, {})
            self.layer_message.hide()
            self.fix_button.hide()
            return
        layer = layers[index]
        report = self.document.report
        info = report.layers[index] if report and index < len(report.layers) else None
        block = entry.info.get("block", False)
        self.properties.setTitle(f"Layer {index}: {layer.type}" + (" (block)" if block else ""))
        self.layer_help.setText(entry.help)
        self.wiring_form.show()
        self.wiring.show(layer)
        for widget in self.block_only:
            widget.setVisible(block)
        if block:
            self.block_field.show(layer.type)
        with QSignalBlocker(self.repeat):
            self.repeat.setValue(layer.repeat)
        inferred = ({p.name: info.params.get(p.name) for p in entry.params if p.inferred}
                    if info and not block else {})
        self.layer_form.set_entry(entry, layer.params, inferred)
        if info is not None and info.error:
            self._show(self.layer_message, info.message, ERROR_STYLE)
        elif info is not None and info.warnings:
            self._show(self.layer_message, "\n".join(info.warnings), WARNING_STYLE)
        else:
            self.layer_message.hide()
        fix = getattr(info, "fix_action", None) if info is not None and info.error else None
        self.fix_button.setVisible(fix is not None)
        if fix is not None:
            self.fix_button.setToolTip(f"Fix: {info.fix}")

    def _apply_fix(self) -> None:
        index, report = self.stack.selected_layer(), self.document.report
        if report is not None and 0 <= index < len(report.layers):
            fix = getattr(report.layers[index], "fix_action", None)
            if fix is not None:
                self.edits.apply_fix(fix)

    def _parse_block_name(self, text: str) -> tuple[object, str | None]:
        name = text.strip()
        layers = self.document.model.layers
        index = self.stack.selected_layer()
        if not 0 <= index < len(layers) or name == layers[index].type:
            return name, None
        if name in self.document.model.blocks:
            return None, f"the project has a block named {name!r} already"
        return name, block_name_problem(name)

    def _edit_block(self) -> None:
        index = self.stack.selected_layer()
        layers = self.document.model.layers
        if 0 <= index < len(layers):
            self.edit_block_requested.emit(layers[index].type)

    def _rename_block(self, name: str) -> None:
        index = self.stack.selected_layer()
        layers = self.document.model.layers
        if 0 <= index < len(layers) and name != layers[index].type:
            self.edits.rename_block(layers[index].type, name)

    def _layer_path(self) -> str | None:
        """The selected layer's parameters' JSON path (``discriminator.layers[2].params.``
        for a GAN's discriminator), for "Sweep this…"; None without one."""
        index = self.stack.selected_layer()
        if not 0 <= index < len(self.document.model.layers):
            return None
        return f"{self.document.network}.layers[{index}].params."

    def _layer_param_changed(self, name: str, value) -> None:
        self.edits.set_param(self.stack.selected_layer(), name, value)

    def _repeat_changed(self, value: int) -> None:
        index = self.stack.selected_layer()
        if index >= 0:
            self.edits.set_repeat(index, value)
