"""Training and data loading off the GUI thread.

``TrainingWorker`` lives in a ``QThread``; a bridge callback turns engine
events into Qt signals (queued across threads by Qt). Batch losses are
gathered and sent at most ``BATCH_SIGNALS_PER_S`` times a second, so a fast
model never floods the event loop, and no value is lost. Pause, resume and
stop are the trainer's own flags, safe to set from the GUI thread.
"""

from __future__ import annotations

import os
import time
import traceback
from typing import Any

import numpy as np
import torch
from PySide6.QtCore import QObject, Signal, Slot

from ..engine.callbacks import Callback, EarlyStopping, RunFolder
from ..engine.data import DatasetError, PreparedData
from ..engine.trainer import TrainControl, Trainer, TrainingError, describe_error
from ..spec import Project, ProjectError

BATCH_SIGNALS_PER_S = 25


class _Bridge(Callback):
    def __init__(self, worker: "TrainingWorker"):
        self.worker = worker
        self.pending_x: list[float] = []
        self.pending_loss: list[float] = []
        self.last_emit = 0.0
        self.started = 0.0
        self.done_batches = 0

    def on_fit_start(self, trainer) -> None:
        self.started = time.perf_counter()
        self.worker.fit_started.emit({
            "epochs": trainer.epochs, "batches": trainer.batches_per_epoch,
            "start_epoch": trainer.epoch, "task": trainer.info.task,
            "device": str(trainer.device), "notes": list(trainer.notes),
            "history": [m.to_dict() for m in trainer.history],
        })

    def on_train_batch_end(self, trainer, batch: int, loss: float) -> None:
        self.pending_x.append(trainer.epoch + (batch + 1) / trainer.batches_per_epoch)
        self.pending_loss.append(loss)
        self.done_batches += 1
        now = time.perf_counter()
        if now - self.last_emit >= 1 / BATCH_SIGNALS_PER_S:
            self._flush(trainer, batch, now)

    def _flush(self, trainer, batch: int, now: float) -> None:
        if not self.pending_x:
            return
        elapsed = max(now - self.started, 1e-9)
        total = (trainer.epochs - trainer.epoch) * trainer.batches_per_epoch - (batch + 1)
        rate = self.done_batches / elapsed
        self.worker.batches_ended.emit(
            np.array(self.pending_x), np.array(self.pending_loss),
            {"epoch": trainer.epoch, "batch": batch + 1, "batches": trainer.batches_per_epoch,
             "epochs": trainer.epochs, "eta": total / rate if rate else 0.0,
             "samples_per_s": rate * trainer.batch_size})
        self.pending_x, self.pending_loss = [], []
        self.last_emit = now

    def on_epoch_end(self, trainer, metrics) -> None:
        self._flush(trainer, trainer.batches_per_epoch - 1, time.perf_counter())
        self.worker.epoch_ended.emit(metrics.to_dict())

    def on_pause(self, trainer) -> None:
        self._flush(trainer, 0, time.perf_counter())
        self.worker.paused.emit()

    def on_resume(self, trainer) -> None:
        self.worker.resumed.emit()


def training_threads() -> int:
    """Threads for torch's parallel sections when training from the window:
    all cores but one, which the window keeps for itself."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), cores - 1))


class TrainingWorker(QObject):
    # Payloads travel as Python objects (``object``), never as ``dict``: PySide
    # converts a dict signal argument to a QVariantMap, and None values inside
    # it have crashed the interpreter when sent across threads.
    fit_started = Signal(object)  # dict
    batches_ended = Signal(object, object, object)  # x (fractional epochs), losses, progress dict
    epoch_ended = Signal(object)  # dict of EpochMetrics
    paused = Signal()
    resumed = Signal()
    finished = Signal(object)  # a dict: the result, the trainer, sample predictions
    failed = Signal(str)

    def __init__(self, project: Project, data: PreparedData | None, run_dir=None, initial_weights=None):
        super().__init__()
        self.project = project
        self.data = data
        self.run_dir = run_dir
        self.control = TrainControl()
        self.trainer: Trainer | None = None
        self.initial_weights = initial_weights

    @Slot()
    def run(self) -> None:
        threads = torch.get_num_threads()
        try:
            self._run()
        finally:
            torch.set_num_threads(threads)  # MKL's share of the setting is process-wide

    def _run(self) -> None:
        try:
            # One core stays with the window. torch's parallel sections wait
            # for all of their threads: with a thread per core, every paint of
            # the window stalled a whole batch, and training from the window
            # ran at half its headless speed on two cores. (Set here, in the
            # training thread: the setting belongs to the thread.)
            torch.set_num_threads(training_threads())
            if self.project.training.compile:
                # The compiler collects garbage on the thread it compiles on; here
                # that may destroy Qt objects off the GUI thread (see app.py).
                from torch import _dynamo

                if hasattr(_dynamo.config, "run_gc_after_compile"):
                    _dynamo.config.run_gc_after_compile = False
            callbacks: list[Any] = [_Bridge(self)]
            if self.run_dir is not None:
                callbacks.append(RunFolder(self.run_dir))
            if self.project.training.early_stopping is not None:
                callbacks.append(EarlyStopping(**self.project.training.early_stopping))
            self.trainer = Trainer(self.project, data=self.data, callbacks=callbacks,
                                   control=self.control, initial_weights=self.initial_weights)
            result = self.trainer.fit()
            samples = sample_predictions(self.trainer, result)
            self.finished.emit({"result": result, "trainer": self.trainer, "samples": samples,
                                "run_dir": self.run_dir})
        except (ProjectError, DatasetError, TrainingError) as error:
            self.failed.emit(describe_error(error))
        except MemoryError as error:
            self.failed.emit(describe_error(error))
        except Exception as error:  # noqa: BLE001 - the window shows every failure, never crashes
            message = describe_error(error)
            traceback.print_exc()
            self.failed.emit(f"training failed: {message}")


def evaluate_weights(project: Project, weights, data: PreparedData | None = None) -> dict:
    """Evaluate saved weights (a bundle's) on the project's data, as a finished
    training run would report them."""
    from ..engine.trainer import FitResult

    trainer = Trainer(project, data=data, initial_weights=weights)
    trainer.setup()
    split, _ = trainer.data.evaluation_split
    result = FitResult([], evaluation=trainer.evaluate(split), evaluation_split=split)
    return {"result": result, "trainer": trainer, "samples": sample_predictions(trainer, result),
            "evaluated_only": True}


def sample_predictions(trainer: Trainer, result, count: int = 24) -> list[dict]:
    """Samples of the evaluated split with their predictions for the Results
    grid: the worst-classified first, then others."""
    import torch

    from ..engine.data import decode_text
    from ..engine.metrics import to_probabilities

    evaluation = result.evaluation
    if evaluation is None or trainer.info.task != "classification":
        return []
    split_name = result.evaluation_split
    split = {"test": trainer.data.test, "val": trainer.data.val, "train": trainer.data.train}[split_name]
    worst = [w["index"] for w in evaluation.worst[: count // 2]]
    others = [i for i in range(len(split)) if i not in set(worst)][: count - len(worst)]
    indices = torch.tensor(worst + others, dtype=torch.long)
    if not len(indices):
        return []
    x = split.x[indices.to(split.x.device)]
    probabilities = to_probabilities(trainer.predict(x).cpu(), trainer.loss_entry.info["output"])
    predicted = probabilities.argmax(1)
    names = trainer.info.class_names or [str(i) for i in range(trainer.info.num_classes)]
    samples = []
    for row, index in enumerate(indices.tolist()):
        true = int(split.y[index])
        sample = {"true": names[true], "predicted": names[int(predicted[row])],
                  "probability": float(probabilities[row, predicted[row]]),
                  "wrong": int(predicted[row]) != true}
        item = x[row:row + 1].cpu()
        if trainer.info.modality == "image" and trainer.data.normalization is not None:
            pixels = trainer.data.normalization.invert(item)[0].clamp(0, 255).round().byte().numpy()
            sample["image"] = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
        elif trainer.info.modality == "text":
            sample["text"] = decode_text(item[0].tolist())
        else:
            values = trainer.data.normalization.invert(item)[0] if trainer.data.normalization else item[0]
            sample["values"] = [round(float(v), 4) for v in values.flatten()[:8]]
        samples.append(sample)
    return samples
