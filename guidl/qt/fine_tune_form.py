"""The Train tab's fine-tune schedule (``training.fine_tune``): train the new
head for some epochs with the frozen layers frozen, then unfreeze the last K
of them (or all) at a lower learning rate, in the same run.

Every change writes the whole schedule as one undoable edit, built from the
project's value and the one setting changed. What the fields show is what
the project holds: a number typed and not yet confirmed is applied when Train
asks the forms to commit (``commit_requested``), and a refused one keeps Train
waiting, marked, while the project keeps its last valid value.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QFormLayout, QGroupBox, QHBoxLayout, QLabel, QWidget

from ..registry import FINE_TUNE
from .param_form import ComboBox, SpinBox, TextField, format_value

ALL = "all"
UNFREEZE_TIP = ("What joins training after the head epochs, counted from the end of the model: "
                "a frozen backbone's stages (a ResNet has 4 and its stem), then other frozen layers")


def frozen_parts(count: int) -> str:
    """What ``unfreeze: count`` counts, as the notes call them."""
    return ("1 frozen part (a backbone stage or a frozen layer)" if count == 1 else
            f"{count} frozen parts (backbone stages or frozen layers)")


def parse_lr_factor(text: str) -> tuple[object, str | None]:
    """The factor typed (empty: the default 0.1), or why it is refused."""
    text = text.strip()
    if not text:
        return FINE_TUNE.param("lr_factor").default, None
    try:
        value = float(text)
    except ValueError:
        return None, "a number above 0 and at most 1, such as 0.1"
    problem = FINE_TUNE.param("lr_factor").check(value)
    return (None, "must be above 0 and at most 1 (the unfrozen layers' rate is the optimizer's times it)") \
        if problem else (value, None)


class FineTuneForm(QGroupBox):
    """A checkable group: off (no schedule) or on, with head epochs, what to
    unfreeze (all, or the last K units) and the learning-rate factor."""

    def __init__(self, document):
        super().__init__("Fine-tune: train the head, then unfreeze")
        self.document = document
        self.setCheckable(True)
        self.setToolTip("Train with the frozen layers frozen for the head epochs, then unfreeze them "
                        "(or the last few) and train on at a lower learning rate, in one run")
        form = QFormLayout(self)
        self.head_epochs = SpinBox()
        self.head_epochs.setRange(1, 1_000_000)
        self.head_epochs.setToolTip(FINE_TUNE.param("head_epochs").help)
        self.unfreeze = ComboBox()
        self.unfreeze.addItem("all frozen layers", ALL)
        self.unfreeze.addItem("the last", "last")
        self.unfreeze.setToolTip(UNFREEZE_TIP)
        self.units = SpinBox()
        self.units.setRange(1, 1_000_000)
        # Beside the box, not its suffix: a suffix changed while typing would move the cursor.
        self.units_name = QLabel("frozen parts")
        self.units_name.setToolTip(UNFREEZE_TIP)
        self.units.setToolTip(UNFREEZE_TIP)
        unfreeze_row = QWidget()
        row = QHBoxLayout(unfreeze_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.unfreeze, 1)
        row.addWidget(self.units)
        row.addWidget(self.units_name)
        self.lr_field = TextField(document, "training.fine_tune.lr_factor", parse_lr_factor,
                                  lambda value: self._set("lr_factor", value))
        self.lr_factor = self.lr_field.edit
        self.lr_factor.setPlaceholderText("0.1")
        self.lr_factor.setToolTip(FINE_TUNE.param("lr_factor").help)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setEnabled(False)  # quieter: it says what the settings mean
        form.addRow("Head epochs", self.head_epochs)
        form.addRow("Then unfreeze", unfreeze_row)
        form.addRow("Learning-rate factor", self.lr_field.widget)
        form.addRow(self.note)
        self.toggled.connect(self._toggled)
        self.head_epochs.valueChanged.connect(lambda value: self._set("head_epochs", value))
        self.unfreeze.currentIndexChanged.connect(lambda _index: self._unfreeze_changed())
        self.units.valueChanged.connect(lambda _value: self._unfreeze_changed())
        self.units.valueChanged.connect(self._show_units_suffix)
        for spin in (self.head_epochs, self.units):
            spin.editingFinished.connect(lambda spin=spin: spin.lineEdit().setModified(False))
        document.commit_requested.connect(self._commit_edits)

    def schedule(self) -> dict | None:
        return self.document.project.training.fine_tune

    def _toggled(self, on: bool) -> None:
        value = FINE_TUNE.resolve({}) if on else None
        self.document.apply(lambda p: setattr(p.training, "fine_tune", value),
                            "Turn fine-tuning " + ("on" if on else "off"))

    def _set(self, key: str, value) -> None:
        if self.schedule() is None:
            return  # the group is off: its fields are out of play

        def edit(project) -> None:
            settings = dict(project.training.fine_tune or FINE_TUNE.resolve({}))
            settings[key] = value
            project.training.fine_tune = settings

        self.document.apply(edit, f"Set fine-tune {key}", merge_key=f"training.fine_tune.{key}")

    def _unfreeze_changed(self) -> None:
        last = self.unfreeze.currentData() == "last"
        self.units.setEnabled(last)
        self.units_name.setEnabled(last)
        self._set("unfreeze", self.units.value() if last else ALL)

    def _show_units_suffix(self, value: int) -> None:
        self.units_name.setText("frozen part" if value == 1 else "frozen parts")

    def _commit_edits(self) -> None:
        for spin in (self.head_epochs, self.units):
            if spin.lineEdit().isModified():
                spin.interpretText()
                spin.lineEdit().setModified(False)

    @staticmethod
    def _show_spin(spin, value: int) -> None:
        """The project's value, unless the box holds a number typed and not yet
        applied: another setting's edit must not put the old one back over it
        (Train, or Enter, or leaving the box applies it)."""
        if spin.lineEdit().isModified() and spin.isEnabled():
            return
        with QSignalBlocker(spin):
            spin.setValue(value)

    def sync(self) -> None:
        settings = self.schedule()
        with QSignalBlocker(self):
            self.setChecked(settings is not None)
        if settings is None:
            self.lr_field.discard()
            self.document.set_field_problem(self.lr_field.key, None)
        values = settings or FINE_TUNE.resolve({})
        unfreeze = values.get("unfreeze", ALL)
        if settings is None:  # off: nothing typed stays to be applied later
            for spin in (self.head_epochs, self.units):
                spin.lineEdit().setModified(False)
        self._show_spin(self.head_epochs, int(values.get("head_epochs", 3)))
        with QSignalBlocker(self.unfreeze):
            self.unfreeze.setCurrentIndex(0 if unfreeze == ALL else 1)
        if unfreeze != ALL:
            self._show_spin(self.units, int(unfreeze))
        self._show_units_suffix(self.units.value())
        self.units.setEnabled(unfreeze != ALL)
        self.units_name.setEnabled(unfreeze != ALL)
        self.lr_field.show(format_value(values.get("lr_factor", 0.1)))
        self.note.setText(self.explain(settings))

    def explain(self, settings: dict | None) -> str:
        """What the schedule does with these settings, in one or two sentences."""
        project = self.document.project
        if settings is None:
            return ""
        epochs, head = project.training.epochs, int(settings["head_epochs"])
        unfreeze = settings["unfreeze"]
        what = "all frozen layers" if unfreeze == ALL else f"the last {frozen_parts(int(unfreeze))}"
        frozen = any(layer.frozen for model in project.networks().values()
                     for layer in [*model.layers, *(x for b in model.blocks.values() for x in b.layers)])
        first = "Epoch 1 trains" if head == 1 else f"Epochs 1–{head} train"
        text = (f"{first} only the layers that are not frozen (the new head); from epoch {head + 1} {what} "
                f"train{'s' if unfreeze == 1 else ''} too, at the learning rate × "
                f"{format_value(settings['lr_factor'])}.")
        if head >= epochs:
            text += f" The run has {epochs} epochs: it ends before anything is unfrozen."
        if not frozen:
            text += " No layer is frozen yet: freeze the backbone (Model tab) for this to unfreeze it."
        return text
