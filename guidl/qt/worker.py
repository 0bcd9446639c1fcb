"""Training and evaluation off the GUI thread.

``TrainingWorker`` lives in a ``QThread`` and turns a run's events into Qt
signals (queued across threads by Qt). The run itself trains in a child
process (see ``guidl.engine.training_process``): the window's painting then
never holds the interpreter the training loop needs. Where no child process
can be started, it trains in the worker's thread instead, with the same
signals. Pause, resume and stop are safe to ask for from the GUI thread at
any moment, even before the run has started.
"""

from __future__ import annotations

import os
import threading
import traceback

import torch
from PySide6.QtCore import QObject, Signal, Slot

from ..engine.data import PreparedData, prepare
from ..engine.threads import can_follow_load, cores, threads_set_by_user
from ..engine.trainer import FitResult, TrainControl, Trainer, describe_error
from ..engine.training_process import (Job, TrainingProcess, failure_message, load_weights,
                                       sample_predictions, save_weights, share, training_callbacks)
from ..spec import Project

#: Train in a child process (the default). Set the environment variable
#: ``GUIDL_TRAIN_IN_THREAD=1`` to train in the window's process instead.
TRAIN_IN_THREAD = os.environ.get("GUIDL_TRAIN_IN_THREAD", "") not in ("", "0")


#: Niceness of the training process: the window gets a core the moment it
#: has something to paint, and the run has every cycle the window leaves.
#: (With two threads on two cores, the probe timer's 99th percentile delay
#: was 9-20 ms at niceness 0 and 4-10 ms at 10.)
TRAINING_NICE = 10


def training_threads() -> int:
    """Threads for torch's parallel sections where the window cannot see what
    else keeps the cores busy (in its own process, or without Linux's /proc):
    all cores but one, left to the window and other programs (see
    ``guidl.engine.threads``)."""
    return max(1, min(torch.get_num_threads(), cores() - 1))


def process_threads() -> dict:
    """How a training process started from the window sets its threads (the
    ``Job`` fields): at ``TRAINING_NICE``, every core but those other programs
    keep busy; the user's ``OMP_NUM_THREADS``, as ``guidl train`` keeps it; or,
    where the load of other programs cannot be seen, all cores but one."""
    if threads_set_by_user():
        return {"nice": TRAINING_NICE}
    if can_follow_load():
        return {"tune_threads": True, "window_pid": os.getpid(), "nice": TRAINING_NICE}
    return {"threads": training_threads()}


class RunControl:
    """Pause / resume / stop for a run wherever it trains: the flags are kept
    here (so a request made before the child exists is not lost) and passed
    on to the child process once it runs."""

    def __init__(self) -> None:
        self.local = TrainControl()  # the flags; an in-thread run's own control
        self._process: TrainingProcess | None = None
        self._lock = threading.Lock()

    def attach(self, process: TrainingProcess) -> None:
        with self._lock:
            self._process = process
            if self.local.stop_requested:
                process.stop()
            elif self.local.paused:
                process.pause()

    def _tell(self, command: str) -> None:
        with self._lock:
            if self._process is not None:
                self._process.command(command)

    def request_stop(self) -> None:
        self.local.request_stop()
        self._tell("stop")

    def pause(self) -> None:
        self.local.pause()
        if self.local.paused:
            self._tell("pause")

    def resume(self) -> None:
        self.local.resume()
        self._tell("resume")

    @property
    def stop_requested(self) -> bool:
        return self.local.stop_requested

    @property
    def paused(self) -> bool:
        return self.local.paused


class TrainingWorker(QObject):
    # Payloads travel as Python objects (``object``), never as ``dict``: PySide
    # converts a dict signal argument to a QVariantMap, and None values inside
    # it have crashed the interpreter when sent across threads.
    fit_started = Signal(object)  # dict
    batches_ended = Signal(object, object, object)  # x (fractional epochs), losses, progress dict
    epoch_ended = Signal(object)  # dict of EpochMetrics
    samples_ready = Signal(int, object)  # epoch (1-based), the samples dict the trainer made
    paused = Signal()
    resumed = Signal()
    finished = Signal(object)  # a dict: the result, the trainer, sample predictions
    failed = Signal(str)

    def __init__(self, project: Project, data: PreparedData | None, run_dir=None, initial_weights=None,
                 in_process: bool | None = None):
        super().__init__()
        self.project = project
        self.data = data
        self.run_dir = run_dir
        self.initial_weights = initial_weights
        self.in_process = (not TRAIN_IN_THREAD) if in_process is None else in_process
        self.control = RunControl()
        #: The trained model's trainer: the run's own when it trains in this
        #: process; else rebuilt here from the child's weights when it ends.
        self.trainer: Trainer | None = None
        self.process: TrainingProcess | None = None
        self._step = 0
        self.where = ""  # "process" or "thread" once the run has started
        #: a training process's threads: {"most": n, "decisions": [(s, epoch, n), ...]}
        self.threads: dict | None = None
        self._note = ""  # why a run meant for a process trains in this thread

    @property
    def step(self) -> int:
        """Optimizer steps taken so far (as last reported by a child process)."""
        if self.where == "thread" and self.trainer is not None:
            return self.trainer.step
        return self._step

    def _send(self, kind: str, *values) -> None:
        """One event of the run, as a signal."""
        if kind == "started":
            self.fit_started.emit(values[0])
        elif kind == "batches":
            self._step = values[2].get("step", self._step)
            self.batches_ended.emit(*values)
        elif kind == "epoch":
            self.epoch_ended.emit(values[0])
        elif kind == "samples":
            self.samples_ready.emit(int(values[0]), values[1])
        elif kind == "paused":
            self._step = values[0] if values else self._step
            self.paused.emit()
        elif kind == "resumed":
            self.resumed.emit()

    @Slot()
    def run(self) -> None:
        try:
            data = self.data
            if self.in_process:
                if data is None:  # prepared here once: the window keeps it for results and export
                    data = self.data = prepare_shared(self.project)
                try:
                    data = self._start_process(data)
                except Exception as error:  # noqa: BLE001 - no child process: train in this thread
                    traceback.print_exc()
                    self.process = None
                    self._note = ("trained in the window's process: no training process could be "
                                  f"started ({describe_error(error)})")
            if self.process is not None:
                self.where = "process"
                self._follow_process(data)
            else:
                self.where = "thread"
                self._run_in_thread()
        except Exception as error:  # noqa: BLE001 - the window shows every failure, never crashes
            self.failed.emit(failure_message(error))
        finally:
            if self.process is not None:
                self.process.close()

    def _start_process(self, data: PreparedData) -> PreparedData:
        """Start the child; returns the data as the child sees it (shared)."""
        shared = share(data)  # None: too big to share here, the child loads the data itself
        weights = save_weights(self.initial_weights) if self.initial_weights is not None else None
        job = Job(self.project, shared, self.run_dir, weights, **process_threads())
        process = TrainingProcess(job)
        process.start()
        self.process = process
        self.control.attach(process)
        return shared if shared is not None else data

    def _follow_process(self, data: PreparedData) -> None:
        for event in self.process.events():
            kind = event[0]
            if kind == "failed":
                self.failed.emit(event[1])
                return
            if kind != "finished":
                self._send(*event)
                continue
            outcome = event[1]
            result: FitResult = outcome["result"]
            self._step = outcome["step"]
            self.threads = outcome["threads"]
            notes = list(outcome["notes"])
            # The trained model, here: evaluation was done by the child; this
            # trainer serves Export and Evaluate. Should it fail (memory), the
            # run's results are still shown, and its run folder has the model.
            try:
                trainer = Trainer(self.project, data=data, device="cpu",
                                  initial_weights=load_weights(outcome["weights"]))
                trainer.setup()
                trainer.history = list(result.history)
                trainer.epoch, trainer.step = len(result.history), outcome["step"]
                trainer.notes = notes
                self.trainer = trainer
            except Exception as error:  # noqa: BLE001 - the results stand without it
                notes.append(f"the trained model could not be loaded in the window "
                             f"({describe_error(error)}): Export and Evaluate are unavailable; "
                             "the run folder holds the model")
            self.finished.emit({"result": result, "trainer": self.trainer, "samples": outcome["samples"],
                                "run_dir": self.run_dir, "device": outcome["device"], "notes": notes,
                                "data": data})
            return

    def _run_in_thread(self) -> None:
        threads = torch.get_num_threads()
        try:
            # One core stays with the window. torch's parallel sections wait
            # for all of their threads: with a thread per core, every paint of
            # the window stalled a whole batch. (Set here, in the training
            # thread: the setting belongs to the thread.)
            torch.set_num_threads(training_threads())
            if self.project.training.compile:
                # The compiler collects garbage on the thread it compiles on; here
                # that may destroy Qt objects off the GUI thread (see app.py).
                from torch import _dynamo

                if hasattr(_dynamo.config, "run_gc_after_compile"):
                    _dynamo.config.run_gc_after_compile = False
            self.trainer = Trainer(self.project, data=self.data, control=self.control.local,
                                   callbacks=training_callbacks(self.project, self._send, self.run_dir),
                                   initial_weights=self.initial_weights)
            if self._note:
                self.trainer.notes.append(self._note)
            result = self.trainer.fit()
            samples = sample_predictions(self.trainer, result)
            self.finished.emit({"result": result, "trainer": self.trainer, "samples": samples,
                                "run_dir": self.run_dir, "device": str(self.trainer.device),
                                "notes": self.trainer.notes,
                                "data": self.trainer.data if self.trainer.device.type == "cpu" else None})
        finally:
            torch.set_num_threads(threads)  # MKL's share of the setting is process-wide


def prepare_shared(project: Project) -> PreparedData:
    """The project's data, in shared memory where there is room, so that the
    training processes map it rather than receive a copy. (Moved there in
    place: nothing else has seen it yet.)"""
    data = prepare(project, seed=project.training.seed)
    return share(data, in_place=True) or data


def evaluate_weights(project: Project, weights, data: PreparedData | None = None) -> dict:
    """Evaluate saved weights (a bundle's) on the project's data, as a finished
    training run would report them."""
    trainer = Trainer(project, data=data, initial_weights=weights)
    trainer.setup()
    split, _ = trainer.data.evaluation_split
    result = FitResult([], evaluation=trainer.evaluate(split), evaluation_split=split)
    return {"result": result, "trainer": trainer, "samples": sample_predictions(trainer, result),
            "evaluated_only": True, "notes": trainer.notes,
            "data": trainer.data if trainer.device.type == "cpu" else None}
