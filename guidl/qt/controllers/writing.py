"""Write: a text generation model's trained weights write from a prompt, in
the background. Ten thousand characters are ten thousand forward passes
(over a minute for the example LSTM on two cores), so the text is written
in pieces: it appears as it grows, and Stop ends it after the current piece."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QMainWindow

from ..jobs import error_message

#: Characters written per piece: about a second of the example LSTM.
PIECE = 100


class WritingJob(QObject):
    """Writes ``length`` characters after ``prompt`` in pieces of ``PIECE``,
    each piece going on from all the text before it (the model sees its last
    ``seq_len`` characters) with a seed of its own drawn from ``seed``: the
    same request writes the same text."""

    grown = Signal(str)  # the text written so far
    done = Signal(object)  # (text, stopped)
    error = Signal(str)

    def __init__(self, module, prompt: str, length: int, temperature: float, seq_len: int, seed: int):
        super().__init__()
        self.module, self.prompt, self.length = module, prompt, length
        self.temperature, self.seq_len, self.seed = temperature, seq_len, seed
        self.stop = threading.Event()

    @Slot()
    def run(self) -> None:
        import torch

        threads = torch.get_num_threads()
        try:
            from ...engine.writing import write

            # One sample at a time is all waiting on kernels too small to share: on two
            # busy cores one thread wrote 300 characters in 0.2 s, two threads in 22 s.
            torch.set_num_threads(1)
            text, piece = "", 0
            while len(text) < self.length and not self.stop.is_set():
                count = min(PIECE, self.length - len(text))
                text += write(self.module, self.prompt + text, count, self.temperature, self.seq_len,
                              seed=self.seed * 100_003 + piece)
                piece += 1
                self.grown.emit(text)
            self.done.emit((text, self.stop.is_set()))
        except Exception as error:  # noqa: BLE001 - said in the panel, never a crash
            self.error.emit(error_message(error))
        finally:
            torch.set_num_threads(threads)


class WritingController(QObject):
    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self.window = window
        self.thread = None
        self.job: WritingJob | None = None
        self._serial = 0  # each press writes with a seed of its own: other text, each reproducible
        window.write_panel.write_requested.connect(self.write)
        window.write_panel.stop_requested.connect(self.stop)

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
        # The length the model was trained on, even if the project's seq_len changed since.
        shape = tuple(trainer.info.input_shape)
        if not shape:
            window.write_panel.show_failure("the model's input length is not known")
            return
        self._serial += 1
        self.job = WritingJob(trainer.model, prompt, length, temperature, int(shape[0]), self._serial)
        self.job.grown.connect(self._grown)
        self.job.done.connect(self._written)
        self.job.error.connect(self._failed)
        window.write_panel.set_busy(True)
        self.thread = window.jobs.start(self.job, self._thread_finished)

    @Slot()
    def stop(self) -> None:
        if self.job is not None:
            self.job.stop.set()

    @Slot(str)
    def _grown(self, text: str) -> None:
        job = self.job
        if job is not None:
            self.window.write_panel.show_text(job.prompt, text, f"Writing… {len(text):,} of "
                                                                f"{job.length:,} characters")

    @Slot(object)
    def _written(self, outcome: tuple) -> None:
        text, stopped = outcome
        job = self.job
        if job is not None:
            what = (f"Stopped: the trained model wrote {len(text):,} of {job.length:,} characters."
                    if stopped else f"The trained model wrote {len(text):,} characters.")
            self.window.write_panel.show_text(job.prompt, text, what)

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.window.write_panel.show_failure(message)

    @Slot()
    def _thread_finished(self) -> None:
        self.thread = None
        self.job = None
        self.window.write_panel.set_busy(False)
        self.sync()

    def stop_for_close(self) -> None:
        """The window closes: the writing ends after its current piece."""
        self.stop()
