"""The Write tab of a text generation model: a prompt, a length and a
temperature, and the text the model writes from them. During training it
shows what the trainer wrote after each epoch; afterwards Write asks the
trained model for new text (the writing itself runs in a controller's
background task, see ``controllers.writing``)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QFont, QTextCharFormat
from PySide6.QtWidgets import (
    QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QTextEdit,
    QVBoxLayout, QWidget,
)

MAX_LENGTH = 10_000
NOT_TRAINED = "Train the model to let it write."


class WritePanel(QWidget):
    #: prompt, length, temperature
    write_requested = Signal(str, int, float)
    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.prompt = QLineEdit("The ")
        self.prompt.setPlaceholderText("the text the model goes on from (may be empty)")
        self.prompt.returnPressed.connect(self._write)
        form.addRow("Prompt", self.prompt)
        row = QHBoxLayout()
        self.length = QSpinBox()
        self.length.setRange(1, MAX_LENGTH)
        self.length.setValue(200)
        self.length.setSuffix(" characters")
        self.length.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # the wheel only once focused
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.05, 5.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setDecimals(2)
        self.temperature.setValue(0.8)
        self.temperature.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.temperature.setToolTip("Below 1: safer, more repetitive text; above 1: bolder, "
                                    "more mistakes")
        row.addWidget(self.length)
        row.addWidget(QLabel("Temperature"))
        row.addWidget(self.temperature)
        self.button = QPushButton("Write")
        self.button.clicked.connect(self._write)
        row.addWidget(self.button)
        # Stop is a button of its own: when it took Write's place, a click on Stop
        # just after the text was done started another text.
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop writing after the piece being written")
        self.stop_button.clicked.connect(self._stop)
        row.addWidget(self.stop_button)
        row.addStretch(1)
        form.addRow("Length", row)
        layout.addLayout(form)
        self.status = QLabel(NOT_TRAINED)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.output = QTextEdit()
        self.output.setReadOnly(True)
        self.output.setFont(QFont("monospace"))
        layout.addWidget(self.output, 1)
        self.written = ""  # the characters the model wrote (after the prompt)
        self.busy = False
        self.can_write = False
        self._update_button()

    def set_defaults(self, params: dict) -> None:
        """The task's prompt, length and temperature (a project just opened)."""
        self.prompt.setText(str(params.get("prompt", "The ")))
        self.length.setValue(int(params.get("length", 200)))
        self.temperature.setValue(float(params.get("temperature", 0.8)))

    def set_available(self, available: bool, reason: str = NOT_TRAINED) -> None:
        """Whether a trained model is there to write; ``reason`` says why not."""
        self.can_write = available
        if not available:
            self.status.setText(reason)
        elif self.status.text() in (NOT_TRAINED, reason):
            self.status.setText("The trained model writes from the prompt.")
        self._update_button()

    def clear(self) -> None:
        """No text shown (another task, another project)."""
        self.written = ""
        self.output.clear()
        if not self.busy:
            self.status.setText(NOT_TRAINED if not self.can_write else
                                "The trained model writes from the prompt.")

    def set_busy(self, busy: bool) -> None:
        """While writing, Write waits and Stop ends it (after the piece being written)."""
        self.busy = busy
        if busy:
            self.status.setText(f"Writing {self.length.value():,} characters…")
        self._update_button()

    def _update_button(self) -> None:
        self.button.setEnabled(self.can_write and not self.busy)
        self.stop_button.setEnabled(self.busy)

    @Slot()
    def _write(self) -> None:
        if not self.busy and self.button.isEnabled():
            self.write_requested.emit(self.prompt.text(), self.length.value(), self.temperature.value())

    @Slot()
    def _stop(self) -> None:
        if self.busy:
            self.stop_requested.emit()

    def show_text(self, prompt: str, written: str, what: str) -> None:
        """``written`` after ``prompt`` (the prompt in bold); ``what`` says where it came from."""
        self.written = written
        self.status.setText(what)
        self.output.clear()
        cursor = self.output.textCursor()
        bold, plain = QTextCharFormat(), QTextCharFormat()
        bold.setFontWeight(QFont.Weight.Bold)
        cursor.insertText(prompt, bold)
        cursor.insertText(written, plain)

    @Slot(int, object)
    def show_epoch_samples(self, epoch: int, samples: dict) -> None:
        """What the trainer wrote after ``epoch`` (a samples event of kind ``text``)."""
        if samples.get("kind") != "text":
            return
        self.show_text(samples["prompt"], samples["text"],
                       f"Written by the model after epoch {epoch} (temperature "
                       f"{samples['temperature']:g}); the Samples pane of the Train tab keeps every epoch's.")

    def show_failure(self, message: str) -> None:
        self.status.setText(f"Could not write: {message}")
