"""The training loop shared by the window and ``guidl train``.

The loop reports only through callbacks (``guidl.engine.callbacks``). Stop,
pause and resume are flags on a ``TrainControl`` that the loop checks between
batches, so any thread may set them and the loop always halts at a clean
point. Data lives in memory as tensors (on the training device when it fits)
and is sliced per batch.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch import nn

from ..formatting import first_line, warning_text
from ..registry import LOSSES, SCHEDULERS
from ..spec import Problem, Project, ProjectError
from .augment import augment_batch
from .backbones import WeightsError, load_backbone_weights
from .build import BuiltModel, analyze, build, check_training_memory, needs_two_per_batch
from .checkpoint_checks import (
    CALLBACK_FIELDS, CheckpointError, check_fields, check_optimizer, check_rng, check_scheduler,
    check_state_like, check_structure, check_weights, kind,
)
from .checks import Compatibility, check_compatibility
from .components import OPTIMIZER_CLASSES, make_loss, make_optimizer, make_scheduler
from .freezing import frozen_modes, setup_training, start_epoch
from .data import DatasetError, PreparedData, Split, fits_on_device, prepare
from .distributed import DistributedContext, shard, shard_size
from .graph import layer_modules
from .metrics import ClassificationReport, RegressionReport, classification_report, regression_report
from .runs import RunBusyError, RunExistsError, RunWriteError
from .tasks import Labels, TaskLogic, input_shapes, collapse_warning, make_task

CHECKPOINT_FORMAT = "guidl-checkpoint"
#: 2: a task's own state (a GAN's discriminator and its optimizer) in
#: ``task_state``. Version 1 checkpoints (labels only) still resume.
CHECKPOINT_VERSION = 2
READABLE_CHECKPOINT_VERSIONS = (1, 2)


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to do."""


class NonFiniteLossError(TrainingError):
    def __init__(self, message: str, epoch: int, batch: int, layer: int | None):
        super().__init__(message)
        self.epoch, self.batch, self.layer = epoch, batch, layer


class TrainControl:
    """Stop / pause / resume flags, safe to set from any thread."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def request_stop(self) -> None:
        self._stop.set()
        self._running.set()  # a paused loop must wake up to stop

    def pause(self) -> None:
        if not self._stop.is_set():
            self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self) -> None:
        self._running.wait()


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; an unavailable device is
    an error that lists what there is."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"device {name!r} is not available: this machine has no usable CUDA "
                                f"GPU; choose 'auto' or 'cpu' ({available_devices_text()})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainingError(f"device {name!r} is not available: there are "
                                f"{torch.cuda.device_count()} CUDA device(s) ({available_devices_text()})")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None)
                                     and torch.backends.mps.is_available()):
        raise TrainingError(f"device 'mps' is not available here ({available_devices_text()})")
    return device


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def available_devices_text() -> str:
    return "available: " + ", ".join(available_devices())


@dataclass
class EpochMetrics:
    epoch: int  # 1-based: the number of epochs completed
    train_loss: float
    val_loss: float | None
    lr: float
    epoch_time: float
    samples_per_s: float
    train_accuracy: float | None = None
    val_accuracy: float | None = None
    train_mae: float | None = None
    val_mae: float | None = None
    # Reconstruction: per-sample mean squared error and PSNR (dB), in the scaled range.
    train_mse: float | None = None
    val_mse: float | None = None
    val_psnr: float | None = None
    # GAN: the two losses, the discriminator's mean belief in real and in
    # generated samples, and the classifier-based judgement of the samples.
    d_loss: float | None = None
    g_loss: float | None = None
    d_real: float | None = None
    d_fake: float | None = None
    judge_confidence: float | None = None
    judge_coverage: float | None = None
    sample_diversity: float | None = None
    #: Parameters the fine-tune schedule unfroze at the start of this epoch.
    unfrozen: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EpochMetrics":
        return cls(**data)

    def get(self, name: str) -> float | None:
        return getattr(self, name, None)


@dataclass
class FitResult:
    history: list[EpochMetrics]
    stopped: bool = False
    stop_reason: str | None = None
    #: A ``ClassificationReport``, ``RegressionReport``, ``ReconstructionReport`` or ``GanReport``.
    evaluation: Any = None
    evaluation_split: str | None = None
    elapsed: float = 0.0

    @property
    def final(self) -> EpochMetrics | None:
        return self.history[-1] if self.history else None


class Trainer:
    """Trains a project's model on its data.

    ``data`` may be passed in (already prepared) to share it between runs;
    otherwise it is loaded from the project. ``epochs``, ``batch_size`` and
    ``device`` override the project's values.

    With ``distributed`` (several processes started by torchrun, see
    ``guidl.engine.distributed``) the model trains in DistributedDataParallel
    on this process's shard of each epoch, ``batch_size`` is per process, and
    the epoch's figures and every stop decision are agreed on by all
    processes, so they hold the same history. ``model`` stays the plain
    module (its ``state_dict`` has no ``module.`` prefixes).
    """

    def __init__(self, project: Project, *, data: PreparedData | None = None,
                 callbacks: Iterable[Any] = (), control: TrainControl | None = None,
                 epochs: int | None = None, batch_size: int | None = None,
                 device: str | None = None, sync_every: int | None = None,
                 initial_weights: dict[str, torch.Tensor] | None = None,
                 distributed: DistributedContext | None = None):
        self.project = project
        self.distributed = distributed
        self.rank = distributed.rank if distributed is not None else 0
        self.world_size = distributed.world_size if distributed is not None else 1
        self.callbacks = list(callbacks)
        self.control = control or TrainControl()
        self.epochs = epochs if epochs is not None else project.training.epochs
        self.batch_size = batch_size if batch_size is not None else project.data.batch_size
        self.device_name = device if device is not None else project.training.device
        self._data = data
        self._sync_every = sync_every
        self.initial_weights = initial_weights  # e.g. a bundle's, to go on training it
        self.seed = project.training.seed
        self.history: list[EpochMetrics] = []
        self.epoch = 0  # completed epochs
        self.step = 0  # optimizer steps taken
        self.batches_per_epoch = 0
        self.stop_training = False  # set by callbacks such as early stopping
        self.stop_reason: str | None = None
        self.notes: list[str] = []
        self._resume_state: dict[str, Any] | None = None
        self._ready = False
        self._stop_agreed = False  # distributed: all processes agreed to stop

    # -- set-up ------------------------------------------------------------------

    def setup(self) -> None:
        """Load the data, build the model and the optimizer; raise a
        ``ProjectError``, ``DatasetError`` or ``TrainingError`` that explains
        any mismatch before the first batch."""
        if self._ready:
            return
        if self.distributed is not None:
            self.distributed.start()  # joins the other processes, unless done already
            self.device = self.distributed.device
            self.notes += [n for n in self.distributed.notes if n not in self.notes]
        else:
            self.device = resolve_device(self.device_name)
        data = self._data if self._data is not None else self._prepare_data()
        self.info = data.info
        self.notes += [note for note in data.info.notes if note not in self.notes]
        task = self.project.task_type
        if task == "gan" and self.distributed is not None:
            raise TrainingError("a GAN trains in one process: several processes (torchrun) are not "
                                "supported for it yet; train it with plain `guidl train`")
        self.input_shapes = input_shapes(self.project, data.info)
        input_shape = self.input_shapes["model"]
        model_spec = self.project.model
        if model_spec.input_shape is not None and tuple(model_spec.input_shape) != input_shape:
            source = ("the generator's noise" + (" and class" if len(input_shape) == 1 and
                                                 self.project.task_params().get("conditional") else "")
                      if task == "gan" else f"dataset {data.info.name!r}")
            raise ProjectError(Problem("model.input_shape", (
                f"is {list(model_spec.input_shape)} but {source} gives "
                f"{list(input_shape)}: remove model.input_shape or set it to "
                f"{list(input_shape)}")))
        spec = self.project.copy()
        spec.model.input_dtype = "float32" if task == "gan" else data.info.input_dtype
        spec.data.batch_size = self.batch_size
        # Before any weight is allocated: a model that cannot train here is
        # refused with its figures, instead of exhausting the memory mid-run.
        report = analyze(spec.model, input_shape)
        memory = check_training_memory(spec, report, self.device)
        if memory is not None:
            raise ProjectError(memory)
        self.notes += [note for note in (f"{layer_title(layer)}: {warning}"
                                         for layer in report.layers for warning in layer.warnings)
                       if note not in self.notes]
        torch.manual_seed(self.seed)
        self.built: BuiltModel = build(spec, input_shape, device="cpu", report=report)
        self.compatibility: Compatibility = self._check_task(data)
        if self.compatibility.problems:
            raise ProjectError(self.compatibility.problems)
        self.notes += self.compatibility.warnings
        self._check_token_ids(data)
        self.loss_entry = LOSSES.get(self.project.training.loss.type)
        if self.initial_weights is None and self._resume_state is None:  # else it has its weights
            self.notes += load_backbone_weights(self.built.module)
        if self.initial_weights is not None:
            try:
                self.built.module.load_state_dict(self.initial_weights)
            except RuntimeError as error:
                raise TrainingError("the saved weights do not fit this model (was it changed?): "
                                    f"{first_line(error)}") from None
        self.model = self.built.module.to(self.device)
        # Channels-last: images and convolution weights as NHWC, which GPU
        # convolution kernels (above all with 16-bit precision) run fastest on.
        self.channels_last = bool(self.project.training.channels_last) and len(input_shape) == 3
        if self.project.training.channels_last and task == "gan":
            self.notes.append("channels_last applies to a model that takes images; a GAN's "
                              "generator takes noise, so it trains without it")
        elif self.project.training.channels_last and not self.channels_last:
            self.notes.append("channels_last applies to images (channels, height, width); "
                              f"dataset {data.info.name!r} is not stored that way")
        if self.channels_last and any(p.dim() == 5 for p in self.model.parameters()):
            # torch has no channels-last layout for the 5-D weights of Conv3d.
            self.channels_last = False
            self.notes.append("channels_last applies to 2-D images; this model's 3-D convolutions "
                              "keep the standard layout, so it trains without it")
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if not fits_on_device(data, self.device):
            raise TrainingError(f"the dataset does not fit in the memory of {self.device}; "
                                "use a smaller dataset or train on the CPU")
        self.data = data.to(self.device)
        self.batches_per_epoch = max(1, math.ceil(
            shard_size(len(self.data.train), self.world_size) / self.batch_size))
        self._avoid_batches_of_one(shard_size(len(self.data.train), self.world_size))
        training = self.project.training
        parameters = setup_training(self)  # frozen layers, lr multipliers, fine-tune schedule
        # torch checks some arguments only when it builds the object (Nesterov
        # without momentum, a beta of 1, OneCycleLR on an optimizer without
        # momentum): say which part of the project is wrong.
        for key, make in (("loss", lambda: make_loss(training.loss)),
                          ("optimizer", lambda: make_optimizer(training.optimizer, parameters,
                                                               fused=True)),
                          ("scheduler", lambda: make_scheduler(
                              training.scheduler, self.optimizer, epochs=self.epochs,
                              steps_per_epoch=self.batches_per_epoch))):
            try:
                setattr(self, {"loss": "loss_fn"}.get(key, key), make())
            except (ValueError, TypeError, KeyError) as error:
                component = getattr(training, key)
                raise ProjectError(Problem(f"training.{key}", (
                    f"{component.type} cannot be used with these parameters: "
                    f"{first_line(error)}"))) from None
        self._check_schedule()
        self._balance_loss()
        self.scheduler_step = (SCHEDULERS.get(self.project.training.scheduler.type).info["step"]
                               if self.project.training.scheduler else None)
        self.precision = self.project.training.precision
        if self.precision != "fp32" and self.device.type != "cuda":
            self.notes.append(f"precision {self.precision} applies on CUDA only; training in fp32 "
                              f"on {self.device.type}")
            self.precision = "fp32"
        if self.precision == "bf16" and not torch.cuda.is_bf16_supported():
            self.notes.append("this GPU has no bfloat16 support; training in fp16 with a gradient scaler")
            self.precision = "fp16"
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.generator = torch.Generator().manual_seed(self.seed)
        # Distributed, the processes also agree on stopping whenever losses are
        # read (a collective costs about as much as a small model's step).
        self.sync_every = self._sync_every or (
            1 if self.device.type == "cpu" and self.distributed is None else 16)
        self.augment = (self.project.data.augment
                        if self.project.data.augment and data.info.modality == "image" else None)
        if self.project.data.augment and data.info.modality != "image":
            self.notes.append(f"augmentation applies to images only; dataset {data.info.name!r} "
                              "is not augmented")
        elif self.augment and not data.train.augments and any(
                self.augment.get(key) for key in ("random_resized_crop", "color_jitter")):
            self.notes.append("random_resized_crop and color_jitter apply to image folders; dataset "
                              f"{data.info.name!r} gets the other augmentations only")
        # The module the training steps run through: DistributedDataParallel
        # around the model when distributed (it averages the gradients), else
        # the model itself.
        self._train_model: nn.Module = self.model
        if self.distributed is not None:
            self._train_model = self.distributed.wrap(self.model)
            # Each process draws its own random numbers (dropout, augmentation)
            # from a seed of its own, set again every epoch (see _run_epoch).
            self._rank_generator = torch.Generator()
        self._eager_model = self._train_model
        self.task: TaskLogic = make_task(self)
        self.task.setup()
        if getattr(self.task, "d_report", None) is not None:
            self._avoid_batches_of_one(shard_size(len(self.data.train), self.world_size),
                                       self.task.d_report, "the discriminator's ")
        if self.project.training.compile and self.task.own_step:
            self.notes.append("torch.compile is not used for GANs: both networks train eagerly")
        elif self.project.training.compile:
            # Compiled on the first batches (and again for a smaller last one);
            # the weights stay those of self.model. Evaluation runs eagerly.
            self._train_model = torch.compile(self._train_model)
        self._ready = True
        if self._resume_state is not None:
            self._apply_state(self._resume_state)
            self._resume_state = None

    def _check_task(self, data: PreparedData) -> Compatibility:
        """Whether the networks fit the data and the task, before the first
        batch: labels are checked as always; the other tasks by task_checks."""
        if self.project.task_type is None:
            return check_compatibility(self.project, self.built.report, data.info)
        from .task_checks import check_task, network_problems, task_reports

        reports = task_reports(self.project, data.info)
        reports["model"] = self.built.report
        bad = [problem for name, report in reports.items() if name != "model"
               for problem in network_problems(name, report)]
        if bad:  # the discriminator's own layers do not fit together
            raise ProjectError(bad)
        # Text generation is checked as the classifier of characters it trains as.
        return check_task(self.project, reports, data.info)

    def _avoid_batches_of_one(self, samples: int, report=None, whose: str = "") -> None:
        """A layer that normalises over the batch cannot train on a batch of
        one sample: refuse a batch size of 1, and skip an epoch's last batch
        when it would hold a single sample (a different random one each
        epoch), as DataLoader's drop_last would."""
        report = report if report is not None else self.built.report
        layer = needs_two_per_batch(report)
        if layer is None:
            return
        here = (f"{whose}{_nested_title(report, layer)} normalises over the batch and needs at least 2 "
                "samples per batch in training")
        if self.batch_size < 2:
            raise ProjectError(Problem("data.batch_size", f"is 1, but {here}: set it to 2 or more"))
        if samples < 2:
            raise ProjectError(Problem("data", f"the training split holds {samples} sample(s), but "
                                               f"{here}: use more data or a smaller val_fraction"))
        if samples % self.batch_size == 1:
            if not getattr(self, "_skips_last_batch", False):  # a GAN asks for both networks
                self.batches_per_epoch -= 1
                self._skips_last_batch = True
            self.notes.append(f"each epoch skips its last batch, which would hold 1 sample: {here}")

    def _prepare_data(self) -> PreparedData:
        """The project's data. With several processes, the first on each
        machine prepares it alone (so a download is written once) before the
        others read it; a failure there stops all of them."""
        if self.distributed is None:
            return prepare(self.project, seed=self.seed)
        context = self.distributed
        data, failure = None, None
        if context.local_rank == 0:
            try:
                data = prepare(self.project, seed=self.seed)
            except BaseException as error:  # noqa: BLE001 - raised below, once the others know
                failure = error
        code = 0 if failure is None else 1 if isinstance(failure, (DatasetError, ProjectError)) else 2
        worst = context.all_reduce([code], "max")[0]
        if failure is not None:
            raise failure
        if worst:
            error = (DatasetError if worst == 1 else TrainingError)(
                "another process could not prepare the dataset (its message says why)")
            error.from_peer = True  # that process reports it; this one stays quiet
            raise error
        return data if data is not None else prepare(self.project, seed=self.seed)

    def _check_schedule(self) -> None:
        """OneCycleLR plans a fixed number of steps; a run longer than the plan
        would crash in its middle, so refuse it before the first batch."""
        scheduler = self.scheduler
        if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
            needed = self.epochs * self.batches_per_epoch
            if scheduler.total_steps < needed:
                raise ProjectError(Problem("training.scheduler.params.total_steps", (
                    f"OneCycleLR plans {scheduler.total_steps} steps but {self.epochs} epochs of "
                    f"{self.batches_per_epoch} batches take {needed}: leave total_steps out "
                    "(it then covers the whole run) or train fewer epochs")))

    def _check_token_ids(self, data: PreparedData) -> None:
        """Every Embedding that takes the model's input (in a graph there may
        be several, inside a block too) must have a row for each token id."""
        if data.info.input_dtype != "int64":
            return
        embeddings = input_embeddings(self.built.report, self.project.model.blocks)
        if not embeddings:
            return
        largest = int(data.train.x.max())
        for path, layer in embeddings:
            if largest >= layer.params["num_embeddings"]:
                raise ProjectError(Problem(f"{path}.params.num_embeddings", (
                    f"is {layer.params['num_embeddings']} but the data holds token ids up to "
                    f"{largest}: set it to at least {largest + 1}")))

    # -- checkpoints ---------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly, as tensors and plain values
        (loadable with ``torch.load(..., weights_only=True)``)."""
        state = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "epoch": self.epoch,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "data": self.generator.get_state(),
            },
            "history": [m.to_dict() for m in self.history],
            "stop_training": self.stop_training,
            "stop_reason": self.stop_reason,
            "callbacks": {},
            # Named so that a resume with an edited project says what changed.
            "optimizer_type": self.project.training.optimizer.type,
            "scheduler_type": (self.project.training.scheduler.type
                               if self.project.training.scheduler is not None else None),
            "task": self.project.task_type,
            "task_state": self.task.state_dict(),
        }
        for callback in self.callbacks:
            key = getattr(callback, "state_key", None)
            if key and hasattr(callback, "state_dict"):
                state["callbacks"][key] = callback.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state_dict()``; applied at set-up when not set up yet.
        A checkpoint that cannot be resumed (damaged, crafted, or made with
        another optimizer or scheduler than the project's) raises
        ``CheckpointError`` before anything is changed."""
        if not isinstance(state, dict) or not isinstance(state.get("format"), str) \
                or state["format"] != CHECKPOINT_FORMAT:
            raise CheckpointError("not a guidl checkpoint"
                                  + ("" if isinstance(state, dict) else f" (it holds {kind(state)})"))
        version = state.get("version")
        if isinstance(version, bool) or not isinstance(version, int) \
                or version not in READABLE_CHECKPOINT_VERSIONS:
            shown = repr(version) if isinstance(version, (int, str)) and len(repr(version)) < 20 \
                else kind(version)
            raise CheckpointError(f"checkpoint version {shown} is not supported (this guidl reads "
                                  f"version {CHECKPOINT_VERSION})")
        check_structure(state, EpochMetrics)
        if self._ready:
            self._apply_state(state)
        else:
            self._resume_state = state

    def _check_state(self, state: dict[str, Any]) -> None:
        """What ``check_structure`` cannot know before set-up: that the state
        is this model's, optimizer's, scheduler's and callbacks'."""
        training = self.project.training
        check_weights(state["model"], self.model.state_dict())
        self.notes += check_optimizer(state["optimizer"], self.optimizer, state.get("optimizer_type"),
                                      training.optimizer.type, OPTIMIZER_CLASSES)
        check_scheduler(state.get("scheduler"), self.scheduler, state.get("scheduler_type"),
                        training.scheduler.type if training.scheduler is not None else None)
        if self.scaler is not None and state.get("scaler") is not None:
            check_state_like(state["scaler"], self.scaler.state_dict(), "the gradient scaler's state")
        check_rng(state["rng"], torch.get_rng_state(), self.generator.get_state())
        saved_task = state.get("task")
        if saved_task is not None and not isinstance(saved_task, str):
            raise CheckpointError(f"damaged checkpoint: 'task' must be a task name, got {kind(saved_task)}")
        if saved_task != self.project.task_type and "task" in state:
            raise CheckpointError(f"the checkpoint was made for task {saved_task or 'labels'!r}; the "
                                  f"project now says {self.project.task_type or 'labels'!r}: start a "
                                  "new run from the edited project")
        task_state = state.get("task_state")
        task_state = {} if task_state is None else task_state
        if not isinstance(task_state, dict):
            raise CheckpointError(f"damaged checkpoint: 'task_state' must be an object, got {kind(task_state)}")
        self.task.check_state(task_state)
        for callback in self.callbacks:
            key = getattr(callback, "state_key", None)
            saved = state.get("callbacks", {}).get(key) if key else None
            if saved is None or not hasattr(callback, "state_dict"):
                continue
            what = f"the state of {key.replace('_', ' ')}"
            check_state_like(saved, callback.state_dict(), what)
            fields = CALLBACK_FIELDS.get(key, {})
            check_fields(saved, fields, what)
            for name, (field_kind, _) in fields.items():
                if field_kind == "weights" and saved.get(name) is not None:
                    check_weights(saved[name], self.model.state_dict(), f"{what} ({name})")

    def _apply_state(self, state: dict[str, Any]) -> None:
        self._check_state(state)
        try:
            self._load_state(state)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
            if isinstance(error, TrainingError):
                raise
            # Whatever the checks above did not foresee: still one clear line.
            raise CheckpointError(f"the checkpoint cannot be resumed ({type(error).__name__}: "
                                  f"{first_line(error)})") from None

    def _load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
            try:
                self._check_schedule()
            except ProjectError as error:
                raise TrainingError(f"this run cannot go on for {self.epochs} epochs: "
                                    f"{error.problems[0].message}") from None
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        if torch.cuda.is_available() and state["rng"]["cuda"]:
            # A checkpoint from a machine with more GPUs still resumes here.
            for index, rng in enumerate(state["rng"]["cuda"][: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(rng, index)
        self.generator.set_state(state["rng"]["data"])
        self.task.load_state_dict(state.get("task_state") if state.get("task_state") is not None else {})
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.history = [EpochMetrics.from_dict(m) for m in state["history"]]
        self.stop_training = bool(state.get("stop_training", False))
        self.stop_reason = state.get("stop_reason")
        if self.stop_training and self.epoch < self.epochs:
            # Resuming asks for more epochs: an earlier early stop no longer applies.
            self.stop_training, self.stop_reason = False, None
        for callback in self.callbacks:
            key = getattr(callback, "state_key", None)
            if key and key in state.get("callbacks", {}) and hasattr(callback, "load_state_dict"):
                callback.load_state_dict(state["callbacks"][key])

    # -- the loop --------------------------------------------------------------------

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(self, *args)

    def _targets(self, y: torch.Tensor) -> torch.Tensor:
        form = self.compatibility.target_form
        if form == "binary":
            return y.to(torch.float32).unsqueeze(1)
        if form == "one_hot":
            return nn.functional.one_hot(y, self.info.num_classes).to(torch.float32)
        return y

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def fit(self) -> FitResult:
        """Train from the current epoch up to ``epochs``; returns the history
        and the evaluation of the trained model."""
        start = time.perf_counter()
        try:
            with warnings_as_notes(self.notes):
                self.setup()
                self._call("on_fit_start")
                while self.epoch < self.epochs and not self._should_stop():
                    self._run_epoch()
                if self.distributed is not None:
                    self._agree([], [], self.epoch)  # a stop asked for after the last batch counts too
                if self.control.stop_requested and self.stop_reason is None:
                    self.stop_reason = "stopped by the user"
                result = FitResult(list(self.history), stopped=self.stop_reason is not None,
                                   stop_reason=self.stop_reason)
                self._call("on_train_end", result)  # e.g. early stopping restores its best weights
                split_name, _ = self.data.evaluation_split
                result.evaluation = self.evaluate(split_name) if self.history else None
                result.evaluation_split = split_name
                result.elapsed = time.perf_counter() - start
                self._call("on_fit_end", result)
                return result
        except BaseException as error:
            self._call("on_exception", error)
            raise

    def _should_stop(self) -> bool:
        if self.distributed is not None:
            # A signal reaches the processes at different batches: they stop
            # where they agreed to (in _flush), all at the same one.
            return self.stop_training or self._stop_agreed
        return self.stop_training or self.control.stop_requested

    def _run_epoch(self) -> None:
        epoch_index = self.epoch  # 0-based index of the epoch being trained
        start_epoch(self, epoch_index)  # the fine-tune schedule unfreezes before the epoch's hooks
        self._call("on_epoch_start", epoch_index)
        self._train_model.train()
        frozen_modes(self.model)
        train = self.data.train
        n = len(train)
        if self.distributed is None:
            order = self._epoch_order(n).to(self.device)
            augment_generator = self.generator
        else:
            order = self._shard_order(n, epoch_index)
            augment_generator = self._rank_generator
        loss_sum = 0.0
        self.task.epoch_start()
        score = _EpochScore(self, len(order))
        seen = 0
        # Losses reach the host in groups (every batch on the CPU, where that is
        # free; every few batches on a GPU, so the device never waits, and
        # with several processes, which agree on stopping then).
        pending: list[tuple[int, torch.Tensor, int]] = []
        started = time.perf_counter()
        completed = True
        batches = train.batches(order[:self.batches_per_epoch * self.batch_size], self.batch_size,
                                train=True, epoch=epoch_index, device=self.device)
        for batch in range(self.batches_per_epoch):
            if self.control.paused:
                pause_start = time.perf_counter()
                self._call("on_pause")
                self.control.wait_while_paused()
                started += time.perf_counter() - pause_start  # paused time is not training time
                self._call("on_resume")
            if self._should_stop():
                completed = False
                break
            x, y = next(batches)
            if self.augment and not train.augments:
                x = augment_batch(x, self.augment, augment_generator)
            loss, output = self._train_step(x, y)
            if output is not None:
                # Reconstruction is scored against its input, labels against labels.
                score.add(output.detach(), y if self.task.scores_labels else x, batch * self.batch_size)
            seen += len(y)
            pending.append((batch, loss.detach(), len(y)))
            if len(pending) >= self.sync_every:
                loss_sum += self._flush(pending, epoch_index)
                pending = []
        batches.close()
        if pending:
            loss_sum += self._flush(pending, epoch_index)
        if not completed or seen == 0:
            if seen:
                kept = (f"checkpoint.pt holds the end of epoch {epoch_index}" if epoch_index else
                        "no epoch had finished, so there is no checkpoint to resume from")
                self.notes.append(
                    f"stopped during epoch {epoch_index + 1} after {batch} of {self.batches_per_epoch} "
                    f"batches: the final weights include them; {kept}")
            return  # a stopped epoch leaves no half-counted metrics behind
        elapsed = time.perf_counter() - started
        if self.distributed is None:
            train_loss = loss_sum / seen
            train_metric = score.result(train.y, order, seen) if not self.task.own_step else None
        else:  # every process holds the figures of the whole epoch
            loss_sum, metric_sum, seen = self.distributed.all_reduce(
                [loss_sum, score.total(train.y, order, seen), seen])
            elapsed = self.distributed.all_reduce([elapsed], "max")[0]
            train_loss, train_metric = loss_sum / seen, metric_sum / seen
        lr = self.optimizer.param_groups[0]["lr"]
        metrics = EpochMetrics(epoch=epoch_index + 1, train_loss=train_loss, val_loss=None, lr=lr,
                               epoch_time=elapsed, samples_per_s=seen / max(elapsed, 1e-9),
                               unfrozen=self.unfrozen_now)
        classification = self.info.task == "classification"
        if not self.task.scores_labels:
            self.task.finish_epoch(metrics, train_metric)
        elif classification:
            metrics.train_accuracy = train_metric
        else:
            metrics.train_mae = train_metric
        if self.task.scores_labels and self.data.val is not None:
            val_loss, val_metric = self._validate(self.data.val)
            metrics.val_loss = val_loss
            if classification:
                metrics.val_accuracy = val_metric
            else:
                metrics.val_mae = val_metric
        self._call("on_validation_end", metrics)
        if self.scheduler is not None and self.scheduler_step == "epoch":
            self.scheduler.step()
        elif self.scheduler is not None and self.scheduler_step == "metric":
            self.scheduler.step(self._plateau_metric(metrics))
        self.epoch = epoch_index + 1
        self.history.append(metrics)
        warning = collapse_warning(self.history)
        if warning and not any(note.startswith("GAN collapse") for note in self.notes):
            self.notes.append(f"GAN collapse at epoch {self.epoch}: {warning}")
        self._call("on_epoch_end", metrics)
        samples = self.task.samples(self.epoch)
        if samples is not None:
            self._call("on_samples", self.epoch, samples)
        # After every callback has updated its state (early stopping above all),
        # so that a checkpoint resumes exactly.
        self._call("on_checkpoint", metrics)

    def _shard_order(self, n: int, epoch_index: int) -> torch.Tensor:
        """Distributed: this process's part of the epoch's permutation, which
        all processes draw alike from the shared generator. Also seeds this
        process's own random numbers for the epoch (dropout masks and
        augmentation differ between processes, and a resumed run draws what
        the uninterrupted one did)."""
        order = self._epoch_order(n)
        seed = self.seed + self.rank + self.world_size * epoch_index
        torch.manual_seed(seed)
        self._rank_generator.manual_seed(seed)
        return shard(order, self.rank, self.world_size).to(self.device)

    def _epoch_order(self, n: int) -> torch.Tensor:
        """The epoch's order of training samples: a permutation, or with
        data.balance 'sampler' as many draws (with replacement) that give
        each class the same chance."""
        if self.balance == "sampler":
            labels = self.data.train.y.cpu()
            counts = torch.bincount(labels, minlength=self.info.num_classes or 0).clamp(min=1)
            weights = (1.0 / counts.to(torch.float64))[labels]
            return torch.multinomial(weights, n, replacement=True, generator=self.generator)
        return torch.randperm(n, generator=self.generator)

    def _balance_loss(self) -> None:
        """data.balance 'class_weights': the loss weighs each class by
        n / (classes * count), so rare classes count as much as common ones."""
        balance = self.balance = self.project.data.balance
        if balance == "none":
            return
        if self.info.task != "classification":
            self.balance = "none"
            self.notes.append(f"data.balance {balance!r} applies to classification only")
            return
        if balance == "sampler":
            return
        if not isinstance(self.loss_fn, (nn.CrossEntropyLoss, nn.NLLLoss)):
            self.notes.append(f"data.balance 'class_weights' applies to CrossEntropyLoss and NLLLoss; "
                              f"{type(self.loss_fn).__name__} trains unweighted")
            return
        counts = torch.bincount(self.data.train.y.cpu(), minlength=self.info.num_classes or 0)
        weight = len(self.data.train) / (len(counts) * counts.clamp(min=1).to(torch.float32))
        self.loss_fn.weight = weight.to(self.device)

    @torch.no_grad()
    def _outputs(self, split) -> torch.Tensor:
        """The model's outputs for every sample of ``split``, in order."""
        if isinstance(split, Split):
            return self.predict(split.x)
        self.model.eval()
        pixels = max(1, math.prod(self.info.input_shape))
        size = max(self.batch_size, min(512, 2**22 // pixels))
        outputs = []
        for x, _ in split.batches(torch.arange(len(split)), size, train=False, epoch=0,
                                  device=self.device):
            with self._autocast():
                outputs.append(self.model(x).float())
        return torch.cat(outputs) if outputs else torch.empty(0)

    def _plateau_metric(self, metrics: EpochMetrics) -> float:
        """ReduceLROnPlateau watches the validation loss, or in mode 'max' the
        validation accuracy."""
        mode = self.project.training.scheduler.params.get("mode", "min")
        if mode == "max":
            value = metrics.val_accuracy if metrics.val_accuracy is not None else metrics.train_accuracy
            if value is not None:
                return value
        return metrics.val_loss if metrics.val_loss is not None else metrics.train_loss

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.task.own_step:
            return self.task.train_step(x, y), None
        if self._train_model is self._eager_model:
            return self._step(x, y)
        try:
            return self._step(x, y)
        except Exception as error:  # noqa: BLE001 - a compiler failure: train on without it
            # Forward or backward (compiled on the first backward): the optimizer
            # has not stepped, so the step is simply done again, eagerly.
            if not _is_compile_error(error):
                raise
            self._train_model = self._eager_model
            self.notes.append("torch.compile could not compile this model, so it trains without "
                              f"compiling ({type(error).__name__}: "
                              f"{first_line(error)})")
            return self._step(x, y)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        inputs, targets = self.task.batch(x, y)
        with self._autocast():
            output = self._train_model(inputs)
            loss = self.loss_fn(output, targets)
        clip = self.project.training.grad_clip
        stepped = True
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            stepped = self.scaler.get_scale() >= scale  # a lowered scale means a skipped step
        else:
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.optimizer.step()
        self.step += 1
        if self.scheduler is not None and self.scheduler_step == "batch" and stepped:
            self.scheduler.step()
        return loss, output

    def _predicted_classes(self, output: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        if output.ndim == 2 and output.shape[1] == 1:
            threshold = 0.0 if self.loss_entry.info["output"] == "logits" else 0.5
            return torch.gt(output[:, 0], threshold, out=out)
        return torch.argmax(output, dim=1, out=out)

    def _batch_metric(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Sum over the batch of correct predictions (classification) or of
        absolute errors (regression), kept on the device."""
        if not self.task.scores_labels:  # reconstruction: squared error against the input
            error = (output.float() - y.view_as(output).float()) ** 2
            return error.reshape(len(error), -1).mean(dim=1).sum()
        if self.info.task == "classification":
            return (self._predicted_classes(output).to(torch.int64) == y).sum()
        error = (output.float() - y.view_as(output)).abs()
        return error.reshape(len(error), -1).mean(dim=1).sum()

    def _flush(self, pending: list[tuple[int, torch.Tensor, int]], epoch_index: int) -> float:
        """Report the pending batch losses; returns their sum weighted by batch size."""
        if len(pending) == 1:
            values = [pending[0][1].item()]
        else:
            values = torch.stack([loss for _, loss, _ in pending]).float().tolist()
        if self.distributed is not None:
            self._agree(pending, values, epoch_index)
        total = 0.0
        for (batch, _, size), value in zip(pending, values):
            if not math.isfinite(value):
                self._non_finite(epoch_index, batch, value)
            self._call("on_train_batch_end", batch, value)
            total += value * size
        return total

    def _agree(self, pending: list[tuple[int, torch.Tensor, int]], values: list[float],
               epoch_index: int) -> None:
        """Distributed: tell every process whether any of them saw a
        non-finite loss or was asked to stop, so that all of them raise the
        same error, or stop after the same batch, instead of one leaving while
        the others wait for it."""
        bad = next((i for i, value in enumerate(values) if not math.isfinite(value)), None)
        stop, any_bad = self.distributed.all_reduce(
            [float(self.control.stop_requested), float(bad is not None)], "max")
        if stop and not self._stop_agreed:
            self._stop_agreed = True
            self.control.request_stop()
        if any_bad:
            # The first bad batch of any process, and whether it was nan, inf or -inf.
            kinds = [math.nan, math.inf, -math.inf]
            mine = math.inf
            if bad is not None:
                value = values[bad]
                mine = pending[bad][0] * 3 + (0 if math.isnan(value) else 1 if value > 0 else 2)
            batch, kind = divmod(int(self.distributed.all_reduce([mine], "min")[0]), 3)
            self._non_finite(epoch_index, batch, kinds[kind])

    def _non_finite(self, epoch_index: int, batch: int, value: float) -> None:
        found = self._first_non_finite_layer()
        layer, title = found if found is not None else (None, None)
        where = (f"{title} is the first to produce non-finite values" if found is not None else
                 "no layer's output was non-finite on a fresh batch; the loss itself overflowed")
        message = (f"the loss became {value} at epoch {epoch_index + 1}, batch {batch + 1}: {where}. "
                   "Lower the learning rate, add gradient clipping (training.grad_clip) or "
                   "normalisation layers."
                   + (f" The checkpoint of epoch {epoch_index} is kept." if epoch_index else
                      " No epoch had finished, so there is no checkpoint to go back to."))
        raise NonFiniteLossError(message, epoch_index + 1, batch + 1, layer)

    def _first_non_finite_layer(self) -> tuple[int, str] | None:
        """The index of the first layer (in the order they run) whose output
        or weights are not finite, and its name (for a block use, with the
        layer inside it that was first)."""
        found: list[tuple[int, str]] = []
        hooks = []
        watched = list(_layers_with_titles(self.model, self.built.report))
        for index, module, title, _ in watched:
            # An inner layer's hook fires before its block's: the innermost is found.
            def hook(_module, _inputs, output, index=index, title=title):
                if not found and isinstance(output, torch.Tensor) and output.is_floating_point() \
                        and not torch.isfinite(output).all():
                    found.append((index, title))
            hooks.append(module.register_forward_hook(hook))
        was_training = self.model.training
        self.model.eval()  # no running statistics change while looking
        try:
            with torch.no_grad(), self._autocast():
                self.model(self.task.probe_input())
        finally:
            self.model.train(was_training)
            for handle in hooks:
                handle.remove()
        if found:
            return found[0]
        for index, module, title, is_block in watched:
            # The layers inside a block use are watched themselves: the innermost is named.
            if not is_block and any(not torch.isfinite(p).all() for p in module.parameters()):
                return index, title
        return None

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """The model's outputs for ``x`` (already normalised), batched."""
        self.model.eval()
        size = batch_size or max(self.batch_size, 512)
        outputs = []
        for start in range(0, len(x), size):
            with self._autocast():
                outputs.append(self.model(x[start:start + size]).float())
        return torch.cat(outputs) if outputs else torch.empty(0)

    def _validate(self, split: Split) -> tuple[float, float]:
        output = self._outputs(split)
        loss = float(self.loss_fn(output, self._targets(split.y)))
        metric = float(self._batch_metric(output, split.y)) / max(len(split), 1)
        return loss, metric

    def evaluate(self, split: str = "test") -> ClassificationReport | RegressionReport:
        """Full metrics on ``split`` (``"test"``, ``"val"`` or ``"train"``)."""
        self.setup()
        data = {"test": self.data.test, "val": self.data.val, "train": self.data.train}[split]
        if data is None:
            raise TrainingError(f"dataset {self.info.name!r} has no {split} split")
        if not isinstance(self.task, Labels):
            return self.task.evaluate(split, data)
        output = self._outputs(data)
        loss = float(self.loss_fn(output, self._targets(data.y)))
        if self.info.task == "classification":
            return classification_report(output, data.y, self.info.num_classes,
                                         output=self.loss_entry.info["output"],
                                         class_names=self.info.class_names, loss=loss)
        return regression_report(output, data.y, loss=loss)


def layer_title(layer) -> str:
    """``layer 3 'conv1' (Conv2d)``, or ``layer 3 (Conv2d)`` for a layer without an id."""
    name = f" {layer.id!r}" if layer.id else ""
    return f"layer {layer.index}{name} ({layer.type})"


def _layers_with_titles(module: nn.Module, report, top: int | None = None, prefix: str = ""):
    """``(top-level index, module, name, is a block use)`` of every layer of a
    built model, the layers inside block uses too (after their use's entry)."""
    for layer, child in zip(report.layers, layer_modules(module)):
        index = layer.index if top is None else top
        title = prefix + layer_title(layer)
        yield index, child, title, bool(layer.blocks)
        if layer.blocks:
            repetitions = [child] if len(layer.blocks) == 1 else list(child)
            for number, (nested, part) in enumerate(zip(layer.blocks, repetitions), start=1):
                again = f", repetition {number}" if len(layer.blocks) > 1 else ""
                yield from _layers_with_titles(part, nested, index, f"{title}{again}, its ")


def _nested_title(report, wanted) -> str:
    """``layer_title`` of ``wanted``, found anywhere in ``report``; a layer
    inside a block use is named with the use: ``layer 2 'stage1' (ResidualBlock),
    its layer 1 (BatchNorm2d)``."""
    for layer in report.layers:
        if layer is wanted:
            return layer_title(layer)
        for block in layer.blocks:
            if any(inner is wanted for inner in block.all_layers()):
                return f"{layer_title(layer)}, its {_nested_title(block, wanted)}"
    return layer_title(wanted)


def input_embeddings(report, blocks=None, path: str = "model") -> list[tuple[str, Any]]:
    """``(JSON path, LayerReport)`` of every Embedding that takes the model's
    input: the first layer of a stack; in a graph, each layer wired to the
    input, followed into a block use's first repetition."""
    found = []
    for layer in report.layers:
        if -1 not in layer.inputs:
            continue
        where = f"{path}.layers[{layer.index}]"
        if layer.type == "Embedding":
            found.append((where, layer))
        elif layer.blocks:
            found += input_embeddings(layer.blocks[0], blocks, f"model.blocks.{layer.type}")
    return found


class _EpochScore:
    """Training accuracy (or MAE) of one epoch at the cost of one small op per
    batch: predicted classes are written into a buffer and compared with the
    targets once, when the epoch ends."""

    def __init__(self, trainer: Trainer, n: int):
        self.trainer = trainer
        self.classification = trainer.info.task == "classification" and trainer.task.scores_labels
        binary = trainer.compatibility.target_form == "binary"
        if self.classification:
            self.predictions = torch.empty(n, device=trainer.device,
                                           dtype=torch.bool if binary else torch.int64)
        else:
            self.error_sum = torch.zeros((), device=trainer.device, dtype=torch.float64)

    def add(self, output: torch.Tensor, y: torch.Tensor, start: int) -> None:
        if self.classification:
            self.trainer._predicted_classes(output, out=self.predictions[start:start + len(output)])
        else:
            self.error_sum += self.trainer._batch_metric(output, y)

    def result(self, targets: torch.Tensor, order: torch.Tensor, seen: int) -> float:
        return self.total(targets, order, seen) / seen

    def total(self, targets: torch.Tensor, order: torch.Tensor, seen: int) -> float:
        """The sum behind ``result``: correct predictions, or absolute errors."""
        if not self.classification:
            return float(self.error_sum)
        predicted = self.predictions[:seen].to(torch.int64)
        return float((predicted == targets[order[:seen]]).sum())


def describe_error(error: BaseException) -> str:
    """One clear line for any error training can end with."""
    if isinstance(error, ProjectError):
        return "; ".join(str(p) for p in error.problems)
    if isinstance(error, (DatasetError, TrainingError, RunWriteError, RunExistsError, RunBusyError,
                          CheckpointError, WeightsError)):
        return str(error)
    if is_out_of_memory(error):
        return ("out of memory: lower data.batch_size, make the model smaller, or train on the CPU "
                f"({first_line(error)})")
    text = first_line(error)
    return type(error).__name__ if text == type(error).__name__ else f"{type(error).__name__}: {text}"


#: How torch's allocators word a failed allocation (CUDA's also raises
#: torch.OutOfMemoryError; the CPU allocator and MPS raise a RuntimeError).
_ALLOCATOR_MESSAGES = ("CUDA out of memory", "DefaultCPUAllocator: can't allocate memory",
                       "MPS backend out of memory")


def is_out_of_memory(error: BaseException) -> bool:
    """A real allocation failure, told by its type or by an allocator's own
    words, never by a message that merely mentions memory (bad data can)."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    first_line = str(error).split("\n", 1)[0]
    return type(error) is RuntimeError and any(words in first_line for words in _ALLOCATOR_MESSAGES)


@contextlib.contextmanager
def warnings_as_notes(notes: list[str]):
    """Warnings raised while the block runs (torch's, NumPy's...) become
    one short line each in ``notes``, without the source path and line that
    Python would print, and each only once."""
    def note(message, category, filename, lineno, file=None, line=None):
        text = warning_text(message, category, filename)
        if text not in notes:
            notes.append(text)

    with warnings.catch_warnings():
        warnings.showwarning = note
        yield


def _is_compile_error(error: BaseException) -> bool:
    """An error raised by torch.compile's machinery (dynamo, inductor, the C
    compiler it calls), as opposed to one in the model itself."""
    module = type(error).__module__ or ""
    return module.startswith(("torch._dynamo", "torch._inductor")) or "BackendCompilerFailed" in type(error).__name__
