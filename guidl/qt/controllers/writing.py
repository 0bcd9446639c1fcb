"""Write: a text generation model's trained weights write from a prompt, in
the background (ten thousand characters are ten thousand forward passes)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QMainWindow

from ..jobs import Task


class WritingController(QObject):
    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self.window = window
        self.thread = None
        self._serial = 0  # only the latest request's text is shown
        window.write_panel.write_requested.connect(self.write)

    @property
    def running(self) -> bool:
        return self.thread is not None

    def sync(self) -> None:
        """Write is possible once a trained model is held and no run trains."""
        window = self.window
        if window.training.running:
            window.write_panel.set_available(False, "Training: the text written after each epoch "
                                                    "shows here.")
        elif window.session.trainer is None:
            window.write_panel.set_available(False)
        else:
            window.write_panel.set_available(True)

    @Slot(str, int, float)
    def write(self, prompt: str, length: int, temperature: float) -> None:
        window = self.window
        trainer = window.session.trainer
        if trainer is None or window.training.running or self.running:
            return
        from ...engine.data import expected_input

        shape, _ = expected_input(window.document.project, trainer.info)
        if not shape:
            window.write_panel.show_failure("the model's input length is not known")
            return
        module, seq_len = trainer.model, int(shape[0])
        self._serial += 1
        serial, seed = self._serial, self._serial  # another press, other text (each reproducible)

        def writing():
            from ...engine.writing import write

            return serial, prompt, write(module, prompt, length, temperature, seq_len, seed)

        task = Task(writing)
        task.done.connect(self._written)
        task.error.connect(self._failed)
        window.write_panel.set_busy(True)
        self.thread = window.jobs.start(task, self._thread_finished)

    @Slot(object)
    def _written(self, outcome: tuple) -> None:
        serial, prompt, text = outcome
        if serial == self._serial:
            self.window.write_panel.show_text(prompt, text, f"Written by the trained model "
                                                            f"({len(text):,} characters).")

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.window.write_panel.show_failure(message)

    @Slot()
    def _thread_finished(self) -> None:
        self.thread = None
        self.window.write_panel.set_busy(False)
        self.sync()
