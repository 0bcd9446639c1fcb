"""Callbacks: everything that watches or steers training.

Hooks, in the order the trainer calls them::

    on_fit_start(trainer)
      on_epoch_start(trainer, epoch_index)          # 0-based
        on_train_batch_end(trainer, batch, loss)    # loss as a float
        on_pause(trainer) / on_resume(trainer)      # around a pause
      on_validation_end(trainer, metrics)
      on_epoch_end(trainer, metrics)                # metrics.epoch is 1-based
      on_checkpoint(trainer, metrics)               # after every on_epoch_end: save state here
    on_train_end(trainer, result)                   # before the final evaluation
    on_fit_end(trainer, result)
    on_exception(trainer, error)                    # instead of the end hooks

A callback implements only the hooks it needs. One that keeps state across a
resume sets ``state_key`` and provides ``state_dict`` / ``load_state_dict``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np
import torch

from .. import __version__
from ..formatting import format_duration
from ..spec import save as save_project
from ..spec.io import atomic_path, atomic_write_bytes, atomic_write_text
from .eta import EtaEstimator
from .runs import (
    HEARTBEAT_S, RunError, RunExistsError, RunWriteError, claim_run_dir, lock_run_dir, mark_failed,
    process_identity, read_run, remove_stale_temporaries, unlock_run_dir,
)


class Callback:
    """Base class with every hook as a no-op."""

    def on_fit_start(self, trainer) -> None: ...
    def on_epoch_start(self, trainer, epoch_index: int) -> None: ...
    def on_train_batch_end(self, trainer, batch: int, loss: float) -> None: ...
    def on_pause(self, trainer) -> None: ...
    def on_resume(self, trainer) -> None: ...
    def on_validation_end(self, trainer, metrics) -> None: ...
    def on_epoch_end(self, trainer, metrics) -> None: ...
    def on_checkpoint(self, trainer, metrics) -> None: ...
    def on_samples(self, trainer, epoch: int, samples: dict) -> None: ...
    def on_train_end(self, trainer, result) -> None: ...
    def on_fit_end(self, trainer, result) -> None: ...
    def on_exception(self, trainer, error: BaseException) -> None: ...


class EarlyStopping(Callback):
    """Stops when ``monitor`` has not improved for ``patience`` epochs, and
    optionally ends with the best epoch's weights."""

    state_key = "early_stopping"

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 restore_best: bool = True):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.restore_best = restore_best
        self.maximize = monitor.endswith("accuracy")
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best + self.min_delta if self.maximize else value < self.best - self.min_delta

    def on_epoch_end(self, trainer, metrics) -> None:
        value = metrics.get(self.monitor)
        if value is None:
            note = f"early stopping watches {self.monitor}, which this run does not have"
            if note not in trainer.notes:
                trainer.notes.append(note)
            return
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, metrics.epoch, 0
            if self.restore_best:
                self.best_state = {k: v.detach().to("cpu", copy=True)
                                   for k, v in trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            trainer.stop_training = True
            trainer.stop_reason = (f"early stopping: {self.monitor} has not improved for {self.wait} "
                                   f"epoch(s); best {self.best:.4g} at epoch {self.best_epoch}")

    def on_train_end(self, trainer, result) -> None:
        if self.restore_best and self.best_state is not None and self.best_epoch != trainer.epoch:
            trainer.model.load_state_dict(self.best_state)
            trainer.notes.append(f"restored the weights of epoch {self.best_epoch} "
                                 f"(best {self.monitor} {self.best:.4g})")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.wait, self.best_state = state["wait"], state["best_state"]


#: The figures of the tasks beyond labels, as progress lines show them.
_TASK_FIGURES = (("train_mse", "train_mse", ".4g"), ("val_mse", "val_mse", ".4g"),
                 ("val_psnr", "val_psnr", ".2f"), ("d_loss", "d_loss", ".4f"),
                 ("g_loss", "g_loss", ".4f"), ("d_real", "D(x)", ".3f"), ("d_fake", "D(G(z))", ".3f"),
                 ("judge_confidence", "judge_conf", ".2%"), ("judge_coverage", "judge_cover", ".0%"),
                 ("sample_diversity", "diversity", ".2f"))


def format_metrics(metrics) -> str:
    parts = [f"train_loss {metrics.train_loss:.4f}"]
    if metrics.train_accuracy is not None:
        parts.append(f"train_acc {metrics.train_accuracy:.2%}")
    if metrics.train_mae is not None:
        parts.append(f"train_mae {metrics.train_mae:.4g}")
    if metrics.val_loss is not None:
        parts.append(f"val_loss {metrics.val_loss:.4f}")
    if metrics.val_accuracy is not None:
        parts.append(f"val_acc {metrics.val_accuracy:.2%}")
    if metrics.val_mae is not None:
        parts.append(f"val_mae {metrics.val_mae:.4g}")
    for name, label, form in _TASK_FIGURES:
        value = getattr(metrics, name, None)
        if value is not None:
            parts.append(f"{label} {value:{form}}")
    parts += [f"lr {metrics.lr:.3g}", f"{metrics.epoch_time:.1f}s",
              f"{metrics.samples_per_s:,.0f} samples/s"]
    return "  ".join(parts)


class ProgressBar(Callback):
    """A one-line progress bar with ETA on a terminal (redrawn at most 10 times
    a second), and one line per finished epoch."""

    def __init__(self, bar: IO[str] | None = None, lines: IO[str] | None = None,
                 interval: float = 0.1):
        self.bar = bar if bar is not None else sys.stderr
        self.lines = lines if lines is not None else sys.stdout
        self.interactive = bool(getattr(self.bar, "isatty", lambda: False)())
        self.interval = interval
        self._last = 0.0
        self._fit_start = 0.0
        self._batches_done = 0
        self._speed = EtaEstimator()
        self._width = 0

    def on_fit_start(self, trainer) -> None:
        self._fit_start = time.perf_counter()
        self._batches_done = 0
        self._speed = EtaEstimator()

    def on_train_batch_end(self, trainer, batch: int, loss: float) -> None:
        self._batches_done += 1
        now = time.perf_counter()
        self._speed.update(self._batches_done, now - self._fit_start)
        if not self.interactive or now - self._last < self.interval:
            return
        self._last = now
        total = trainer.batches_per_epoch
        done = (batch + 1) / total
        filled = int(done * 20)
        remaining_batches = (trainer.epochs - trainer.epoch) * total - (batch + 1)
        # The steady speed once known (the first batches warm up); till then the average so far.
        rate = self._speed.rate or self._batches_done / max(now - self._fit_start, 1e-9)
        eta = self._speed.eta(remaining_batches)
        text = (f"epoch {trainer.epoch + 1}/{trainer.epochs} [{'#' * filled}{'.' * (20 - filled)}] "
                f"{done:4.0%} {batch + 1}/{total}  loss {loss:.4f}  "
                f"{rate * trainer.batch_size * getattr(trainer, 'world_size', 1):,.0f} samples/s  "
                f"ETA {format_duration(eta) if eta is not None else '…'}")
        self._width = max(self._width, len(text))
        self.bar.write("\r" + text.ljust(self._width))
        self.bar.flush()

    def _clear(self) -> None:
        if self.interactive and self._width:
            self.bar.write("\r" + " " * self._width + "\r")
            self.bar.flush()
            self._width = 0

    def on_epoch_end(self, trainer, metrics) -> None:
        self._clear()
        print(f"epoch {metrics.epoch}/{trainer.epochs}  {format_metrics(metrics)}", file=self.lines,
              flush=True)

    def on_fit_end(self, trainer, result) -> None:
        self._clear()

    def on_exception(self, trainer, error) -> None:
        self._clear()


def versions() -> dict[str, str]:
    import numpy

    try:
        import torchvision

        vision = torchvision.__version__
    except ImportError:  # pragma: no cover - a declared dependency
        vision = "missing"
    return {"guidl": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": vision, "numpy": numpy.__version__, "platform": platform.platform(),
            "cuda": torch.version.cuda or "none"}


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    return str(device)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


METRIC_COLUMNS = ["epoch", "train_loss", "train_accuracy", "train_mae", "val_loss", "val_accuracy",
                  "val_mae", "lr", "epoch_time", "samples_per_s"]
#: Columns a task adds after those (only the ones its epochs have).
TASK_METRIC_COLUMNS = [name for name, _, _ in _TASK_FIGURES]


class RunFolder(Callback):
    """Writes a run folder: ``project.guidl.json``, ``metrics.csv``,
    ``checkpoint.pt`` (every epoch, full state), ``model.safetensors`` (final
    weights) and ``run.json`` (status, versions, seed, device, figures, and the
    process writing it: see ``runs``).

    A new run claims its folder exclusively (``runs.claim_run_dir``): a folder
    that holds anything is refused with ``RunExistsError``, never written
    over. ``resume=True`` goes on in an existing run's folder.

    Every write is atomic (a temporary file beside the target, flushed to disk,
    renamed over it), so a kill at any moment leaves the previous complete
    file. A write that fails (a full disk, a read-only folder) ends the run
    with ``RunWriteError`` and, where the folder still takes it, a run.json
    that says failed and why.
    """

    PROJECT, METRICS, CHECKPOINT, WEIGHTS, RUN = (
        "project.guidl.json", "metrics.csv", "checkpoint.pt", "model.safetensors", "run.json")
    #: A GAN's discriminator's final weights; what each epoch made (samples/epoch_0001.png or .txt).
    DISCRIMINATOR, SAMPLES = "discriminator.safetensors", "samples"

    def __init__(self, path: str | os.PathLike[str], resume: bool = False,
                 source: str | os.PathLike[str] | None = None, extra: dict[str, Any] | None = None):
        self.path = Path(path)
        self.resume = resume
        # Merged into every run.json write: a sweep's trial says which study and trial it is.
        self.extra = dict(extra or {})
        # The project file trained from, so a project finds its own runs (runs.latest_trained_run).
        self.source = str(Path(source).absolute()) if source is not None else None
        self.started = _now()
        self._identity: dict[str, Any] = {}
        self._beat = 0.0
        self._claimed = False
        self._lock: int | None = None

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except RunExistsError:
            raise
        except OSError as error:
            raise RunWriteError(self.path, error) from error
        except RuntimeError as error:
            # torch.save hides the OSError of a full disk behind the RuntimeError its
            # zip writer raises while closing ("unexpected pos"): find it in the chain.
            cause = _os_error_in_chain(error)
            if cause is None:
                raise
            raise RunWriteError(self.path, cause) from error

    def _write_run(self, trainer, status: str, **extra: Any) -> None:
        data = trainer.data
        distributed = getattr(trainer, "distributed", None)
        record = {
            "format": "guidl-run", "version": 1, "status": status,
            "project": trainer.project.name, "started": self.started, "updated": _now(),
            **self._identity, "source": self.source,
            "seed": trainer.seed, "device": device_description(trainer.device),
            "precision": getattr(trainer, "precision", trainer.project.training.precision),
            "epochs": trainer.epochs,
            "epochs_completed": trainer.epoch, "batch_size": trainer.batch_size,
            # Several processes (torchrun): batch_size is per process.
            "processes": getattr(trainer, "world_size", 1),
            "backend": distributed.backend if distributed is not None else None,
            "versions": versions(),
            "dataset": data.info.to_dict(),
            "normalization": data.normalization.to_dict() if data.normalization else None,
            "preprocessing": getattr(data, "preprocessing", None),
            "input_shape": list(data.info.input_shape), "input_dtype": data.info.input_dtype,
            "total_params": trainer.built.report.total_params if hasattr(trainer, "built") else None,
            "final": trainer.history[-1].to_dict() if trainer.history else None,
            "task": trainer.project.task.to_dict() if trainer.project.task is not None else None,
            "notes": list(trainer.notes),
            **self.extra,
            **extra,
        }
        atomic_write_text(self.path / self.RUN, json.dumps(_finite(record), indent=2,
                                                           allow_nan=False) + "\n")
        self._beat = time.monotonic()

    def on_fit_start(self, trainer) -> None:
        with self._writing():
            if self.resume:
                # Held for the whole run: a second resume of the folder is refused
                # (RunBusyError) before it reads the record or removes temporary files.
                self._lock = lock_run_dir(self.path)
                try:
                    earlier = read_run(self.path)
                    self.started = earlier.get("started") or self.started
                    self.source = self.source or earlier.get("source")
                    # A resumed sweep trial stays its study's trial.
                    self.extra = {**({"sweep": earlier["sweep"]} if "sweep" in earlier else {}),
                                  **self.extra}
                except RunError:
                    pass  # a damaged record is written anew
                remove_stale_temporaries(self.path)
            else:
                claim_run_dir(self.path)
                self._lock = lock_run_dir(self.path)
            self._claimed = True
            self._identity = process_identity()
            save_project(trainer.project, self.path / self.PROJECT)
            self._write_run(trainer, "running")

    def on_train_batch_end(self, trainer, batch: int, loss: float) -> None:
        # The heartbeat that tells a reader on another machine the run lives (see runs).
        if time.monotonic() - self._beat >= HEARTBEAT_S:
            self._beat = time.monotonic()
            try:
                os.utime(self.path / self.RUN)
            except OSError:
                pass  # the next checkpoint's write reports a folder that cannot be written

    def on_checkpoint(self, trainer, metrics) -> None:
        buffer = io.StringIO()
        rows = [row.to_dict() for row in trainer.history]
        columns = METRIC_COLUMNS + [name for name in TASK_METRIC_COLUMNS + ["unfrozen"]
                                    if any(row.get(name) is not None for row in rows)]
        writer = csv.DictWriter(buffer, columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        with self._writing():
            remove_stale_temporaries(self.path)
            atomic_write_text(self.path / self.METRICS, buffer.getvalue())
            # checkpoint.pt changes only by an atomic rename of a complete,
            # fsynced file: it always holds the last finished epoch whole, and a
            # temporary file is never one to resume from (it is either being
            # written or was abandoned mid-write). Trusting a temporary file
            # instead would mean proving it complete; keeping the rename atomic
            # makes that question never arise. A run killed inside epoch 1's
            # write has no checkpoint, as a run killed in epoch 1 has none.
            with atomic_path(self.path / self.CHECKPOINT) as tmp:
                with open(tmp, "wb") as handle:  # a file object: a full disk raises OSError
                    torch.save(trainer.state_dict(), handle)
                    handle.flush()
                    os.fsync(handle.fileno())
            self._write_run(trainer, "running")

    def on_samples(self, trainer, epoch: int, samples: dict) -> None:
        from .generation import save_grid

        folder = self.path / self.SAMPLES
        name = f"epoch_{epoch:04d}"
        with self._writing():
            folder.mkdir(exist_ok=True)
            if samples["kind"] == "text":
                atomic_write_text(folder / f"{name}.txt", samples["prompt"] + samples["text"])
                return
            if samples["kind"] == "images":
                images = samples["images"]
            elif samples["kind"] == "reconstructions" and samples["inputs"].dtype == np.uint8:
                # One row pair per sample: the input (the noisy one too), then what came back.
                rows = [samples["inputs"]] + ([samples["noisy"]] if samples.get("noisy") is not None
                                              else []) + [samples["outputs"]]
                images = np.concatenate(rows)
            else:
                return  # numbers, not pictures: metrics.csv holds the figures
            if images.dtype != np.uint8:
                return
            columns = len(samples["inputs"]) if samples["kind"] == "reconstructions" else None
            save_grid(images, folder / f"{name}.png", columns)

    def on_fit_end(self, trainer, result) -> None:
        weights = {k: v.detach().contiguous().cpu() for k, v in trainer.model.state_dict().items()}
        try:
            self._write_final(trainer, result, weights)
        finally:
            self._unlock()

    def _unlock(self) -> None:
        unlock_run_dir(self._lock)
        self._lock = None

    def _write_final(self, trainer, result, weights) -> None:
        from .safetensors_io import save  # a reproducible header

        task = getattr(trainer, "task", None)
        files = {self.WEIGHTS: weights}
        if getattr(task, "discriminator", None) is not None:
            files[self.DISCRIMINATOR] = {k: v.detach().contiguous().cpu()
                                         for k, v in task.discriminator.state_dict().items()}
        extra = {}
        if hasattr(task, "code_stats") and trainer.history:
            extra["code_stats"] = task.code_stats()
        with self._writing():
            for name, tensors in files.items():
                atomic_write_bytes(self.path / name, save(tensors, metadata={
                    "format": "guidl-weights", "project": trainer.project.name}))
            # A callback that ended the run for a reason of its own (a sweep's pruner) says
            # so in trainer.outcome: such a run is not one the user stopped.
            outcome = getattr(trainer, "outcome", None)
            self._write_run(
                trainer, outcome if outcome in ("pruned",) else "stopped" if result.stopped else "finished",
                stop_reason=result.stop_reason, elapsed_s=result.elapsed,
                evaluation_split=result.evaluation_split,
                evaluation=result.evaluation.to_dict() if result.evaluation else None, **extra)

    @classmethod
    def mark_failed(cls, path: str | os.PathLike[str], error: str) -> bool:
        """Record in a run folder whose process died mid-run (and so could not
        say it) that the run failed; True when there was such a run to mark."""
        return mark_failed(path, error) is not None

    def on_exception(self, trainer, error: BaseException) -> None:
        try:
            self._record_failure(trainer, error)
        finally:
            self._unlock()

    def _record_failure(self, trainer, error: BaseException) -> None:
        if not self._claimed or not hasattr(trainer, "data"):
            return  # failed before the run folder was ours: there is nothing to record
        from .trainer import describe_error

        status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        try:
            self._write_run(trainer, status, error=str(error) if isinstance(error, RunWriteError)
                            else describe_error(error))
        except OSError:
            pass  # the folder takes no more writes: the error itself tells the user


def _os_error_in_chain(error: BaseException) -> OSError | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write null for them."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class TensorBoardLogger(Callback):
    """Event files for TensorBoard (needs the ``tensorboard`` package).

    The writer (which makes its folder) starts with the fit, after a
    ``RunFolder`` listed before it has claimed the run's folder."""

    def __init__(self, path: str | os.PathLike[str], batch_every: int = 10):
        from torch.utils.tensorboard import SummaryWriter  # ImportError without tensorboard

        self._make_writer = lambda: SummaryWriter(str(path))
        self.writer = None
        self.batch_every = batch_every

    def on_fit_start(self, trainer) -> None:
        self.writer = self._make_writer()

    def on_train_batch_end(self, trainer, batch: int, loss: float) -> None:
        if self.writer is not None and trainer.step % self.batch_every == 0:
            self.writer.add_scalar("batch/loss", loss, trainer.step)

    def on_epoch_end(self, trainer, metrics) -> None:
        if self.writer is None:
            return
        for key, value in metrics.to_dict().items():
            if key != "epoch" and value is not None:
                self.writer.add_scalar(f"epoch/{key}", value, metrics.epoch)
        self.writer.flush()

    def on_fit_end(self, trainer, result) -> None:
        if self.writer is not None:
            self.writer.close()

    def on_exception(self, trainer, error) -> None:
        if self.writer is not None:
            self.writer.close()
