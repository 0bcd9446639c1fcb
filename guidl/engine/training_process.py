"""Training in a process of its own, reporting to the window as it goes.

Training in a thread of the window's process shares one interpreter lock
with the window: every chart repaint, every slot, holds it, and a small
model's training loop (mostly Python between short kernels) waits. On two
cores the MLP trained at 0.7x its headless speed that way. A child process
has its own interpreter, so the window costs it nothing but a core.

- The child is forked from a *fork server* that has already imported torch
  and the engine (``guidl.engine.training_server``; ``warm_up`` starts it
  once torch is loaded in the window),
  so a run starts in a fraction of a second, in a fresh process each time.
  Elsewhere than on Linux a spawned child imports torch itself.
- The data travel as shared memory (no copy); the window keeps its own
  reference and needs nothing back but the weights.
- Events (``"started"``, ``"batches"``, ``"epoch"``, ``"paused"``,
  ``"resumed"``, ``"finished"``, ``"failed"``) come back through a pipe as
  plain values; commands (``pause``, ``resume``, ``stop``) go the other way.
  A closed command pipe (the window gone, even killed) stops the run after
  its current batch, with the checkpoint kept.
- A child that dies (the system out of memory, a crash in a kernel) is
  reported as such; the window lives on.

This module imports no Qt: the fork server imports it.
"""

from __future__ import annotations

import gc
import io
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..spec import Project, ProjectError
from .backbones import WeightsError
from .callbacks import Callback, EarlyStopping, RunFolder
from .data import DatasetError, PreparedData, Split, decode_text
from .eta import EtaEstimator
from .metrics import to_probabilities
from .runs import RunBusyError, RunExistsError, RunWriteError
from .threads import ThreadTuner
from .trainer import FitResult, TrainControl, Trainer, TrainingError, describe_error

#: Batch losses are gathered and sent at most this many times a second, so
#: a fast model never floods the window, and no value is lost.
BATCH_EVENTS_PER_S = 25

Send = Callable[..., None]


class EventBridge(Callback):
    """Turns the trainer's hooks into events ``send(kind, *values)``, batch
    losses in bundles. Used in the child process and by in-thread training."""

    def __init__(self, send: Send):
        self.send = send
        self.pending_x: list[float] = []
        self.pending_loss: list[float] = []
        self.last_emit = 0.0
        self.started = 0.0
        self.paused_at: float | None = None
        self.paused_for = 0.0  # seconds spent paused: not training time
        self.done_batches = 0
        self.batch = -1  # the last batch trained in the current epoch (0-based)
        self.speed = EtaEstimator()

    def on_fit_start(self, trainer) -> None:
        self.started = time.perf_counter()
        self.speed = EtaEstimator()
        self.send("started", {
            "epochs": trainer.epochs, "batches": trainer.batches_per_epoch,
            "start_epoch": trainer.epoch, "task": trainer.info.task,
            "device": str(trainer.device), "notes": list(trainer.notes),
            "history": [m.to_dict() for m in trainer.history], "threads": torch.get_num_threads(),
        })

    def on_epoch_start(self, trainer, epoch_index: int) -> None:
        self.batch = -1  # none of this epoch's batches trained yet

    def on_train_batch_end(self, trainer, batch: int, loss: float) -> None:
        self.batch = batch
        self.pending_x.append(trainer.epoch + (batch + 1) / trainer.batches_per_epoch)
        self.pending_loss.append(loss)
        self.done_batches += 1
        now = time.perf_counter()
        self.speed.update(self.done_batches, now - self.started - self.paused_for)
        if now - self.last_emit >= 1 / BATCH_EVENTS_PER_S:
            self._flush(trainer, trainer.epoch, batch, now)

    def _flush(self, trainer, epoch: int, batch: int, now: float) -> None:
        """Send the pending losses; ``epoch`` (0-based) and ``batch`` are where
        the last of them was trained."""
        if not self.pending_x:
            return
        elapsed = max(now - self.started - self.paused_for, 1e-9)
        total = (trainer.epochs - epoch) * trainer.batches_per_epoch - (batch + 1)
        # The steady speed once known (the first batches warm up); till then the average so far.
        rate = self.speed.rate or self.done_batches / elapsed
        self.send("batches", np.array(self.pending_x), np.array(self.pending_loss), {
            "epoch": epoch, "batch": batch + 1, "batches": trainer.batches_per_epoch,
            "epochs": trainer.epochs, "step": trainer.step, "eta": self.speed.eta(total),
            "samples_per_s": rate * trainer.batch_size})
        self.pending_x, self.pending_loss = [], []
        self.last_emit = now

    def on_epoch_end(self, trainer, metrics) -> None:
        # The trainer counts the epoch as done by now: these losses are its last.
        self._flush(trainer, metrics.epoch - 1, trainer.batches_per_epoch - 1, time.perf_counter())
        self.send("epoch", metrics.to_dict())

    def on_samples(self, trainer, epoch: int, samples: dict) -> None:
        # Plain values and arrays: they cross the pipe as they are.
        self.send("samples", epoch, samples)

    def on_pause(self, trainer) -> None:
        self.paused_at = time.perf_counter()
        self._flush(trainer, trainer.epoch, self.batch, self.paused_at)
        self.send("paused", trainer.step)

    def on_resume(self, trainer) -> None:
        if self.paused_at is not None:
            self.paused_for += time.perf_counter() - self.paused_at
            self.paused_at = None
        self.send("resumed")


#: Failures a run can end with that its message explains in full; any other
#: is a bug, and its traceback is printed too.
EXPLAINED_FAILURES = (ProjectError, DatasetError, TrainingError, MemoryError, RunWriteError, RunExistsError,
                      RunBusyError, WeightsError)


def failure_message(error: BaseException) -> str:
    """The line the window shows for a run that ended with ``error`` (for a
    bug, its traceback goes to stderr as well)."""
    if isinstance(error, EXPLAINED_FAILURES):
        return describe_error(error)
    traceback.print_exception(error)
    return f"training failed: {describe_error(error)}"


def training_callbacks(project: Project, send: Send, run_dir: Path | None) -> list[Any]:
    callbacks: list[Any] = [EventBridge(send)]
    if run_dir is not None:
        callbacks.append(RunFolder(run_dir))
    if project.training.early_stopping is not None:
        callbacks.append(EarlyStopping(**project.training.early_stopping))
    return callbacks


def sample_predictions(trainer: Trainer, result: FitResult, count: int = 24) -> list[dict]:
    """Samples of the evaluated split with their predictions for the Results
    grid: the worst-classified first, then others."""
    evaluation = result.evaluation
    if evaluation is not None and trainer.project.task_type == "reconstruction":
        return worst_reconstructions(trainer, result, count)
    if evaluation is None or trainer.info.task != "classification" \
            or trainer.project.task_type not in (None, "text_generation"):
        return []
    split: Split = {"test": trainer.data.test, "val": trainer.data.val,
                    "train": trainer.data.train}[result.evaluation_split]
    worst = [w["index"] for w in evaluation.worst[: count // 2]]
    others = [i for i in range(len(split)) if i not in set(worst)][: count - len(worst)]
    indices = torch.tensor(worst + others, dtype=torch.long)
    if not len(indices):
        return []
    x = split.take(indices).to(trainer.device)
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


def worst_reconstructions(trainer: Trainer, result: FitResult, count: int = 24) -> list[dict]:
    """The worst-reconstructed samples of the evaluated split, worst first:
    ``{"index", "error", "image", "noisy", "output"}`` (pixels; ``noisy``: the
    denoising autoencoder's input, else None) or ``"values"``."""
    from .generation import to_pixels

    split: Split = {"test": trainer.data.test, "val": trainer.data.val,
                    "train": trainer.data.train}[result.evaluation_split]
    worst = result.evaluation.worst[:count]
    if not worst:
        return []
    indices = torch.tensor([w["index"] for w in worst], dtype=torch.long, device=split.x.device)
    x = split.x[indices]
    inputs = trainer.task.inputs_for(split)[indices]
    outputs = trainer.predict(inputs)
    shown_in, shown_out = (to_pixels(t, trainer.data.normalization) for t in (x, outputs))
    # A denoising autoencoder was given the noisy input: shown, its error makes sense.
    noisy = None if torch.equal(inputs, x) else to_pixels(inputs, trainer.data.normalization)
    samples = []
    for row, entry in enumerate(worst):
        sample = {"index": entry["index"], "error": entry["error"]}
        if shown_in.dtype == np.uint8:
            sample["image"], sample["output"] = shown_in[row], shown_out[row]
            sample["noisy"] = noisy[row] if noisy is not None else None
        else:
            sample["values"] = [round(float(v), 4) for v in shown_in[row].flatten()[:8]]
            sample["output_values"] = [round(float(v), 4) for v in shown_out[row].flatten()[:8]]
        samples.append(sample)
    return samples


# -- the child's side ---------------------------------------------------------------------------


@dataclass
class Job:
    """What a child process trains: sent to it once, at its start."""

    project: Project
    data: PreparedData | None  # None: the child prepares the project's data itself
    run_dir: Path | None
    #: ``torch.save`` bytes of a state dict to start from (a bundle's), or
    #: None. Bytes, not tensors: each shared tensor would travel as a file
    #: descriptor, and a deep model's few hundred of them exceed what one
    #: process start may pass.
    initial_weights: bytes | None
    #: torch's threads in the child; None keeps torch's choice (a thread per
    #: core), the most that ``tune_threads`` uses.
    threads: int | None = None
    #: Fewer threads while other programs keep cores busy
    #: (``threads.ThreadTuner``), not counting ``window_pid``'s own load.
    tune_threads: bool = False
    window_pid: int | None = None
    #: Niceness added to the child's (Unix): the window, painting its charts,
    #: then gets a core the moment it wants one.
    nice: int = 0


def _listen(commands, control: TrainControl) -> None:
    """Apply the window's commands; when the window closes the pipe (or is
    gone), stop after the current batch."""
    try:
        while True:
            command = commands.recv()
            if command == "pause":
                control.pause()
            elif command == "resume":
                control.resume()
            elif command == "stop":
                control.request_stop()
    except (EOFError, OSError):
        control.request_stop()


def run_job(events, commands, job: Job) -> None:
    """The child process: train ``job``, reporting through ``events``."""
    # The window's Ctrl+C reaches its whole process group: the window itself
    # decides, and asks this process to stop through the command pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The objects torch created on import are permanent: out of the cyclic
    # collector's sight, its full collections no longer walk a million of
    # them while the model trains (nor touch the pages shared with the server).
    gc.freeze()
    if job.threads:
        torch.set_num_threads(job.threads)
    if job.nice and hasattr(os, "nice"):
        os.nice(job.nice)  # before torch starts its threads here: they inherit it
    lost = threading.Event()  # the window stopped listening

    def send(kind: str, *values: Any) -> None:
        if lost.is_set():
            return
        try:
            events.send((kind, *values))
        except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
            lost.set()
            control.request_stop()

    control = TrainControl()
    threading.Thread(target=_listen, args=(commands, control), name="guidl-commands",
                     daemon=True).start()
    callbacks = training_callbacks(job.project, send, job.run_dir)
    tuner = ThreadTuner(ignore=(job.window_pid,) if job.window_pid else ()) if job.tune_threads else None
    if tuner is not None:
        callbacks.append(tuner)
    try:
        trainer = Trainer(job.project, data=job.data, control=control, callbacks=callbacks,
                          initial_weights=(load_weights(job.initial_weights)
                                           if job.initial_weights is not None else None))
        result = trainer.fit()
        samples = sample_predictions(trainer, result)
        send("finished", {"result": result, "samples": samples,
                          "weights": save_weights(trainer.model.state_dict()),
                          "notes": list(trainer.notes), "device": str(trainer.device),
                          "step": trainer.step,
                          "threads": {"most": tuner.most, "decisions": tuner.decisions}
                          if tuner is not None and tuner.enabled else None})
    except BaseException as error:  # noqa: BLE001 - every failure is reported to the window
        send("failed", failure_message(error))
    finally:
        events.close()


# -- the window's side --------------------------------------------------------------------------

_context_lock = threading.Lock()
_context: multiprocessing.context.BaseContext | None = None


def context() -> multiprocessing.context.BaseContext:
    """The multiprocessing context children start from: a fork server that
    has imported this module (and so torch), where the system has one."""
    global _context
    with _context_lock:
        if _context is None:
            # Linux only: on macOS, forking a process that has loaded Apple's
            # frameworks is unsafe (why Python starts processes there by spawning).
            if sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods():
                _context = multiprocessing.get_context("forkserver")
                _context.set_forkserver_preload(["guidl.engine.training_server"])
            else:
                _context = multiprocessing.get_context("spawn")
        return _context


def warm_engine() -> None:
    """Work out one small model's shapes, so that what torch imports on its
    first model (its symbolic-shapes stack: sympy, decompositions; one to two
    seconds) is imported now, not when a model is built."""
    try:
        from ..spec import Layer, Model
        from .build import analyze

        analyze(Model(layers=[Layer("Flatten"), Layer("Linear", {"out_features": 2})]), (1, 4, 4))
    except Exception:  # noqa: BLE001 - a warm-up only: the real analysis reports problems
        pass


def warm_up() -> None:
    """Start the fork server now (it imports torch, seconds of one core), so
    that the first run starts at once. Blocks until it has been launched."""
    ctx = context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def shm_free_bytes() -> int | None:
    """Free space for shared memory, where the system tells (``/dev/shm``)."""
    try:
        stat = os.statvfs("/dev/shm")
    except (OSError, AttributeError):
        return None
    return stat.f_bavail * stat.f_frsize


def share(data: PreparedData, *, in_place: bool = False) -> PreparedData | None:
    """``data`` with its tensors in shared memory, so that a child process
    maps them instead of receiving a copy; None when there is not room for
    them (a container's small ``/dev/shm``): the child then prepares the data
    itself.

    Tensors already shared are used as they are. Others are copied, unless
    ``in_place`` (for data nothing else has seen yet): moving a tensor into
    shared memory frees its old buffer, under any NumPy view of it."""
    splits = [s for s in (data.train, data.val, data.test) if s is not None]
    tensors = [t for s in splits for t in s.tensors() if t.device.type == "cpu"]
    needed = sum(t.untyped_storage().nbytes() for t in tensors if not t.is_shared())
    if not needed:
        return data
    free = shm_free_bytes()
    if free is not None and needed > free * 0.8:
        return None
    if in_place:
        for tensor in tensors:
            tensor.share_memory_()
        return data

    def shared(t: torch.Tensor) -> torch.Tensor:
        if t.device.type != "cpu" or t.is_shared():
            return t
        return torch.empty_like(t, memory_format=torch.preserve_format).share_memory_().copy_(t)

    def split(s: Split | None) -> Split | None:
        # An image folder shares its 8-bit cache; a streamed one only its
        # labels: the child opens the files again from its list.
        return None if s is None else s.map_tensors(shared)

    return PreparedData(data.info, split(data.train), split(data.val), split(data.test),
                        data.normalization, data.preprocessing)


def describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        cause = (" — the system may have run out of memory" if name == "SIGKILL" else "")
        return f"killed by {name}{cause}"
    return f"exit code {exitcode}"


class TrainingProcess:
    """A training run in a child process, seen from the window's side.

    ``events()`` yields ``(kind, *values)`` until ``"finished"`` or
    ``"failed"`` (a child that dies unannounced becomes ``"failed"``).
    ``pause``, ``resume`` and ``stop`` may be called from any thread.
    """

    def __init__(self, job: Job):
        self.job = job
        self.process = None
        self._commands = None
        self._events = None
        self._lock = threading.Lock()

    def start(self) -> None:
        ctx = context()
        events_r, events_w = ctx.Pipe(duplex=False)
        commands_r, commands_w = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=run_job, args=(events_w, commands_r, self.job),
                                   name="guidl-training", daemon=True)
        try:
            self.process.start()
        except BaseException:
            events_r.close()
            commands_w.close()
            raise
        finally:
            events_w.close()
            commands_r.close()
        self._events, self._commands = events_r, commands_w

    def command(self, name: str) -> None:
        with self._lock:
            if self._commands is None:
                return
            try:
                self._commands.send(name)
            except (BrokenPipeError, OSError):  # the child has ended: nothing to command
                pass

    def pause(self) -> None:
        self.command("pause")

    def resume(self) -> None:
        self.command("resume")

    def stop(self) -> None:
        self.command("stop")

    def events(self) -> Iterator[tuple]:
        while True:
            try:
                event = self._events.recv()
            except (EOFError, OSError):
                self.process.join(5)
                ended = f"the training process ended unexpectedly ({describe_exit(self.process.exitcode)})"
                if self.job.run_dir is not None:
                    RunFolder.mark_failed(self.job.run_dir, ended)
                yield ("failed", f"training failed: {ended}; {self._kept()}")
                return
            yield event
            if event[0] in ("finished", "failed"):
                return

    def _kept(self) -> str:
        run_dir = self.job.run_dir
        if run_dir is not None and (Path(run_dir) / RunFolder.CHECKPOINT).exists():
            return f"the last epoch's checkpoint is kept in {run_dir}"
        return "no epoch had ended, so there is no checkpoint to go on from"

    def close(self, timeout_s: float = 30) -> None:
        """Let the child end (it does once it has reported) and release the
        pipes. A child still training stops after its batch and saves its run:
        both pipes are closed first, so it cannot wait on a report nobody reads."""
        with self._lock:
            if self._commands is not None:
                self._commands.close()
                self._commands = None
        if self._events is not None:
            self._events.close()
            self._events = None
        if self.process is not None:
            self.process.join(timeout_s)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(5)


def save_weights(state: dict[str, torch.Tensor]) -> bytes:
    """A state dict as bytes, to cross between processes."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buffer)
    return buffer.getvalue()


def load_weights(payload: bytes) -> dict[str, torch.Tensor]:
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
