"""What differs between the tasks a model can learn, for the one training loop.

The trainer (``trainer.Trainer``) owns epochs, batches, pause and stop,
checkpoints and callbacks. A task supplies what differs, as a Lightning
module does: the networks' input shapes, the batch's inputs and targets (an
autoencoder's target is its input), a training step of its own where it
needs two optimizers (a GAN), its epoch figures, its samples (a grid of
generated images, reconstructions, written text) and its evaluation.

- ``Labels``: classification and regression, as the dataset says (no ``task``).
- ``TextGeneration``: a next-character classifier that also writes.
- ``Reconstruction``: the target is the input (with noise on the input only).
- ``Gan``: a generator (the project's model) and a discriminator, alternating.
"""

from __future__ import annotations

from typing import Any, TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..registry import DEFAULT_DISCRIMINATOR_OPTIMIZER
from ..spec import Component, Project
from .generation import noise, to_pixels
from .metrics import GanReport, ReconstructionReport, psnr

if TYPE_CHECKING:
    from .data import DatasetInfo, PreparedData, Split
    from .trainer import EpochMetrics, Trainer

#: Reconstructions shown after each epoch (the first validation samples).
RECONSTRUCTIONS_SHOWN = 16
#: Generated samples the final evaluation judges.
EVALUATION_SAMPLES = 1000


def task_name(project: Project, info: "DatasetInfo | None" = None) -> str:
    """``reconstruction``, ``gan``, ``text_generation``, or without a task the
    dataset's own ``classification`` / ``regression``."""
    if project.task is not None:
        return project.task.type
    return info.task if info is not None else "classification"


def conditional_classes(project: Project, info: "DatasetInfo") -> int:
    """Classes a conditional GAN is given (0 when it is not conditional)."""
    if project.task_type != "gan" or not project.task_params().get("conditional"):
        return 0
    return int(info.num_classes or 0) if info.task == "classification" else 0


def input_shapes(project: Project, info: "DatasetInfo") -> dict[str, tuple[int, ...]]:
    """Each network's input shape (without the batch): the data's sample
    shape, except a GAN's generator (the noise, then the one-hot class when
    conditional) and a conditional discriminator (the class as extra
    channels of an image, extra values of a vector)."""
    sample = tuple(info.input_shape)
    if project.task_type != "gan":
        return {"model": sample}
    params = project.task_params()
    classes = conditional_classes(project, info)
    shapes = {"model": (int(params["noise_dim"]) + classes,)}
    if project.discriminator is not None:
        shapes["discriminator"] = (sample[0] + classes,) + sample[1:]
    return shapes


def expected_outputs(project: Project, info: "DatasetInfo") -> dict[str, tuple[int, ...]]:
    """What each network must give per sample, where the task decides it: an
    autoencoder its input's shape, a generator the data's sample shape, a
    discriminator one score. (Classification and regression: see checks.)"""
    sample = tuple(info.input_shape)
    task = project.task_type
    if task == "reconstruction":
        return {"model": sample}
    if task == "gan":
        return {"model": sample, "discriminator": (1,)}
    return {}


def collapse_warning(history: list[Any]) -> str | None:
    """A GAN's training has likely collapsed: the discriminator wins outright
    for several epochs, or the samples are all alike. ``history``: epoch
    figures (``EpochMetrics`` or their dicts)."""
    def get(epoch, name):
        return epoch.get(name) if isinstance(epoch, dict) else getattr(epoch, name, None)

    recent = [get(epoch, "d_loss") for epoch in history[-3:]]
    if len(recent) == 3 and all(v is not None and v < 0.05 for v in recent):
        return (f"the discriminator's loss has stayed near 0 for 3 epochs ({recent[-1]:.3g}): it wins "
                "outright and the generator learns nothing; lower the discriminator's learning rate, "
                "raise label_smoothing, or make the discriminator smaller")
    coverage = [get(epoch, "judge_coverage") for epoch in history[-2:]]
    if len(coverage) == 2 and all(v is not None and v <= 0.2 for v in coverage):
        return (f"the judge sees only {coverage[-1]:.0%} of the classes among the samples for 2 epochs: "
                "the generator makes one or two kinds of sample (mode collapse); lower its learning "
                "rate, raise label_smoothing, or restart with another seed")
    diversity = get(history[-1], "sample_diversity") if history else None
    if diversity is not None and diversity < 0.1:
        return (f"the generated samples are nearly all alike (diversity {diversity:.2f} of the real "
                "data's): the generator has collapsed to a few outputs; lower its learning rate or "
                "restart with another seed")
    return None


def peak_to_peak(data: "PreparedData") -> float:
    """The span of the scaled values reconstruction errors are measured in."""
    norm = data.normalization
    if norm is not None and data.info.modality == "image" and norm.scale != 1.0:
        # 8-bit pixels span 0..255 in every channel; the widest scaled channel sets the peak.
        return float(max(255 * norm.scale / std for std in norm.std))
    x = data.train.x
    return float(x.max() - x.min()) or 1.0


def spread_picks(length: int, count: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``count`` indices evenly spread over ``length`` samples (all of them
    when there are fewer): a fair look at data stored sorted by class."""
    if length <= count:
        return torch.arange(length, device=device)
    return torch.linspace(0, length - 1, count).round().long().to(device)


def black_level(data: "PreparedData", ndim: int) -> torch.Tensor:
    """The scaled value of a 0 pixel per channel, shaped to broadcast over a
    batch (0 for data that is not 8-bit images: its mean, once standardized)."""
    norm = data.normalization
    if norm is None or data.info.modality != "image" or norm.scale == 1.0:
        return torch.zeros(())
    low = torch.tensor([-mean / std for mean, std in zip(norm.mean, norm.std)])
    return low.view(1, -1, *([1] * (ndim - 2)))


def make_task(trainer: "Trainer") -> "TaskLogic":
    name = trainer.project.task_type
    if name == "reconstruction":
        return Reconstruction(trainer)
    if name == "gan":
        return Gan(trainer)
    if name == "text_generation":
        return TextGeneration(trainer)
    return Labels(trainer)


class TaskLogic:
    """The default: what the trainer does for labels. Subclasses override."""

    #: True: the task trains with ``train_step`` (its own optimizers).
    own_step = False
    #: True: epoch figures are accuracy/MAE from the trainer's _EpochScore.
    scores_labels = True

    def __init__(self, trainer: "Trainer"):
        self.trainer = trainer

    def setup(self) -> None:
        """After the model, the optimizer and the data are in place."""

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's inputs and the loss's targets for one training batch."""
        return x, self.trainer._targets(y)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def epoch_start(self) -> None:
        """Before the first batch of an epoch."""

    def finish_epoch(self, metrics: "EpochMetrics", train_metric: float | None) -> None:
        """Fill the epoch's figures (the trainer has set loss, lr, times)."""

    def samples(self, epoch: int) -> dict[str, Any] | None:
        """What the model makes after ``epoch`` (1-based), for people to see."""
        return None

    def evaluate(self, split: str, data: "Split"):  # pragma: no cover - Labels uses the trainer's
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def check_state(self, state: dict[str, Any]) -> None:
        """Raise ``CheckpointError`` when ``state`` (a checkpoint) is not this task's."""

    def probe_input(self) -> torch.Tensor:
        """A batch of the model's input, to find where values turn non-finite."""
        return self.trainer.data.train.x[: self.trainer.batch_size]


class Labels(TaskLogic):
    """Classification or regression on the dataset's labels: the trainer's own path."""


class TextGeneration(Labels):
    """A next-character classifier that writes after every epoch."""

    def samples(self, epoch: int) -> dict[str, Any] | None:
        from .writing import one_thread, write

        trainer = self.trainer
        params = trainer.project.task_params()
        with one_thread():
            text = write(trainer.model, params["prompt"], params["length"], params["temperature"],
                         int(trainer.info.input_shape[0]), seed=trainer.seed + epoch)
        return {"kind": "text", "prompt": params["prompt"], "text": text,
                "temperature": params["temperature"]}


class Reconstruction(TaskLogic):
    """The target is the input; noise, when asked for, is added to the input only."""

    scores_labels = False

    def setup(self) -> None:
        trainer = self.trainer
        self.params = trainer.project.task_params()
        self.peak = peak_to_peak(trainer.data)
        self.black = black_level(trainer.data, trainer.data.train.x.ndim)
        # Validation noise is drawn once, from its own seed: every epoch (and a
        # resumed run) is measured on the same noisy inputs.
        self.val_inputs: dict[int, torch.Tensor] = {}

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        kind, strength = self.params["noise"], float(self.params["noise_strength"])
        if kind == "none" or strength == 0:
            return x
        if kind == "gaussian":
            draw = torch.randn(x.shape, generator=generator, device="cpu" if generator else x.device)
            return x + strength * draw.to(x.device, x.dtype)
        keep = torch.rand(x.shape, generator=generator, device="cpu" if generator else x.device)
        keep = (keep.to(x.device) >= strength).to(x.dtype)
        # A masked value becomes the range's black (0 of 'unit', -1 of 'symmetric').
        return x * keep + self.black.to(x.device, x.dtype) * (1 - keep)

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.corrupt(x), x

    def inputs_for(self, split: "Split") -> torch.Tensor:
        key = id(split.x)
        if key not in self.val_inputs:
            generator = torch.Generator().manual_seed(self.trainer.seed + 1)
            self.val_inputs[key] = self.corrupt(split.x, generator)
        return self.val_inputs[key]

    def errors(self, split: "Split") -> tuple[torch.Tensor, torch.Tensor, float]:
        """Outputs, per-sample MSE and the loss over ``split``."""
        trainer = self.trainer
        output = trainer.predict(self.inputs_for(split))
        loss = float(trainer.loss_fn(output, split.x.float()))
        per_sample = ((output.float() - split.x.float()) ** 2).reshape(len(output), -1).mean(dim=1)
        return output, per_sample, loss

    def finish_epoch(self, metrics: "EpochMetrics", train_metric: float | None) -> None:
        metrics.train_mse = train_metric
        val = self.trainer.data.val
        if val is not None and len(val):
            _, per_sample, loss = self.errors(val)
            metrics.val_loss = loss
            metrics.val_mse = float(per_sample.mean())
            metrics.val_psnr = psnr(metrics.val_mse, self.peak)

    def samples(self, epoch: int) -> dict[str, Any] | None:
        trainer = self.trainer
        split = trainer.data.val if trainer.data.val is not None else trainer.data.train
        # Spread over the split (data sorted by class would show one class only).
        picks = spread_picks(len(split), RECONSTRUCTIONS_SHOWN, split.x.device)
        x = split.x[picks]
        noisy = self.inputs_for(split)[picks]
        output = trainer.predict(noisy)
        norm = trainer.data.normalization
        shown_noisy = None if self.params["noise"] == "none" else to_pixels(noisy, norm)
        return {"kind": "reconstructions", "inputs": to_pixels(x, norm), "noisy": shown_noisy,
                "outputs": to_pixels(output, norm)}

    def code_layer(self) -> tuple[int, nn.Module] | None:
        from .graph import layer_modules

        code = self.params.get("code_layer")
        if code is None:
            return None
        ids = [layer.id for layer in self.trainer.project.model.layers]
        if code not in ids:
            return None
        index = ids.index(code)
        return index, list(layer_modules(self.trainer.model))[index]

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor | None:
        """The code layer's output for ``x``, flattened per sample."""
        found = self.code_layer()
        if found is None:
            return None
        _, module = found
        captured: list[torch.Tensor] = []
        handle = module.register_forward_hook(
            lambda _m, _i, out: captured.append(out.detach().float().reshape(len(out), -1).cpu()))
        try:
            self.trainer.predict(x)
        finally:
            handle.remove()
        return torch.cat(captured) if captured else None

    def code_stats(self) -> dict[str, list[float]] | None:
        """Mean and deviation of each code value over the training split (a
        decoder samples new codes from them)."""
        codes = self.codes(self.trainer.data.train.x)
        if codes is None:
            return None
        return {"mean": codes.mean(dim=0).tolist(), "std": codes.std(dim=0).tolist()}

    def evaluate(self, split: str, data: "Split") -> ReconstructionReport:
        trainer = self.trainer
        _, per_sample, loss = self.errors(data)
        mean_image = trainer.data.train.x.float().mean(dim=0, keepdim=True)
        baseline = float(((data.x.float() - mean_image) ** 2).mean())
        mse = float(per_sample.mean())
        order = per_sample.argsort(descending=True)[:64]
        worst = [{"index": int(i), "error": float(per_sample[i])} for i in order]
        shown = spread_picks(len(data), 2000, data.x.device)
        codes = self.codes(data.x[shown])
        labelled = trainer.info.task == "classification"
        two_d = codes is not None and codes.shape[1] == 2
        return ReconstructionReport(
            mse, psnr(mse, self.peak), baseline, loss, worst,
            codes.tolist() if two_d else None,
            data.y[shown].tolist() if two_d and labelled else None,
            trainer.info.class_names if labelled else None)


class Gan(TaskLogic):
    """A generator (the project's model) against a discriminator: per batch,
    ``d_steps`` discriminator steps on real samples (labelled 1 minus
    label_smoothing) and generated ones (0), then one generator step with the
    non-saturating loss (generated samples labelled 1)."""

    own_step = True
    scores_labels = False

    def setup(self) -> None:
        from .build import analyze, build
        from .components import make_optimizer
        from .freezing import discriminator_parameters

        trainer = self.trainer
        project = trainer.project
        self.params = project.task_params()
        self.classes = conditional_classes(project, trainer.info)
        shape = input_shapes(project, trainer.info)["discriminator"]
        spec = project.copy()
        spec.model = spec.discriminator  # the copy's: the project stays as it is
        spec.model.input_dtype = "float32"
        report = analyze(spec.model, shape)
        self.d_report = report
        self.d_built = build(spec, shape, device="cpu", report=report)
        self.discriminator = self.d_built.module.to(trainer.device)
        component = project.training.discriminator_optimizer or Component(
            DEFAULT_DISCRIMINATOR_OPTIMIZER["type"], dict(DEFAULT_DISCRIMINATOR_OPTIMIZER["params"]))
        self.d_optimizer_type = component.type
        parameters, self.d_frozen = discriminator_parameters(trainer, self.discriminator, component)
        self.d_optimizer = make_optimizer(component, parameters, fused=True)
        self.d_scaler = torch.amp.GradScaler("cuda") if trainer.scaler is not None else None
        self.bce = nn.BCEWithLogitsLoss()
        n = int(self.params["samples"])
        self.fixed_noise, self.fixed_labels = noise(self.params, n, self.classes or None,
                                                    seed=trainer.seed + 7)
        self.judge, self.judge_accuracy = self._train_judge()
        # Real samples spread over the split (data sorted by class would look less diverse).
        spread = spread_picks(len(trainer.data.train), n, trainer.data.train.x.device)
        self.real_diversity = float(trainer.data.train.x[spread].float().std(dim=0).mean()) or 1.0
        self._sums: torch.Tensor | None = None
        self._seen = 0
        self.last_images: np.ndarray | None = None

    # -- the judge ---------------------------------------------------------------

    def _train_judge(self) -> tuple[nn.Module | None, float | None]:
        """A small classifier of the real data, trained once at set-up from
        its own seed (the training's random numbers are left as they were, so
        a resumed run trains the same judge), to judge the samples."""
        trainer = self.trainer
        info, data = trainer.info, trainer.data
        if info.task != "classification" or not info.num_classes or info.num_classes < 2:
            return None, None
        features = int(np.prod(info.input_shape))
        devices = [trainer.device] if trainer.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(trainer.seed + 11)
            judge = nn.Sequential(nn.Flatten(), nn.Linear(features, 256), nn.ReLU(),
                                  nn.Linear(256, info.num_classes)).to(trainer.device)
            optimizer = torch.optim.Adam(judge.parameters(), lr=1e-3)
            x, y = data.train.x, data.train.y
            generator = torch.Generator().manual_seed(trainer.seed + 11)
            for _ in range(3):
                order = torch.randperm(len(x), generator=generator).to(x.device)
                for start in range(0, len(x), 128):
                    index = order[start:start + 128]
                    optimizer.zero_grad(set_to_none=True)
                    nn.functional.cross_entropy(judge(x[index].float()), y[index]).backward()
                    optimizer.step()
        judge.eval()
        check = data.val if data.val is not None and len(data.val) else data.train
        with torch.no_grad():
            accuracy = float((judge(check.x.float()).argmax(dim=1) == check.y).float().mean())
        return judge, accuracy

    @torch.no_grad()
    def judge_samples(self, fake: torch.Tensor, labels: torch.Tensor | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sample_diversity": float(fake.float().std(dim=0).mean()) / self.real_diversity}
        if self.judge is None:
            return out
        probabilities = torch.softmax(self.judge(fake.float()), dim=1)
        confidence, predicted = probabilities.max(dim=1)
        classes = self.trainer.info.num_classes
        counts = torch.bincount(predicted.cpu(), minlength=classes)
        out.update(judge_confidence=float(confidence.mean()),
                   judge_coverage=float((counts > 0).sum()) / classes,
                   class_counts=counts.tolist())
        if labels is not None:
            out["judge_agreement"] = float((predicted.cpu() == labels.cpu()).float().mean())
        return out

    # -- training ------------------------------------------------------------------

    def condition(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The discriminator's input: the sample, and for a conditional GAN its
        class as extra channels (images) or values (vectors)."""
        if not self.classes:
            return x
        one_hot = nn.functional.one_hot(labels, self.classes).to(x.dtype)
        if x.ndim > 2:
            one_hot = one_hot.view(*one_hot.shape, *([1] * (x.ndim - 2))).expand(
                -1, -1, *x.shape[2:])
        return torch.cat([x, one_hot], dim=1)

    def probe_input(self) -> torch.Tensor:
        return self.fixed_noise[: self.trainer.batch_size].to(self.trainer.device)

    def latent(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        z = torch.randn(n, int(self.params["noise_dim"]), device=self.trainer.device)
        if not self.classes:
            return z
        return torch.cat([z, nn.functional.one_hot(labels, self.classes).to(z.dtype)], dim=1)

    def _backward(self, loss: torch.Tensor, optimizer, scaler, parameters) -> None:
        clip = self.trainer.project.training.grad_clip
        if scaler is not None:
            scaler.scale(loss).backward()
            if clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(parameters, clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(parameters, clip)
            optimizer.step()

    def epoch_start(self) -> None:
        # d_loss, g_loss, D(x), D(G(z)), each summed over samples, on the device.
        self._sums = torch.zeros(4, device=self.trainer.device, dtype=torch.float64)
        self._seen = 0
        self.discriminator.train()
        if self.d_frozen:
            from .freezing import frozen_modes

            frozen_modes(self.discriminator)  # BatchNorm of its frozen layers keeps its statistics

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        trainer = self.trainer
        generator, discriminator = trainer._train_model, self.discriminator
        n = len(x)
        labels = y if self.classes else None
        real_target = torch.full((n, 1), 1.0 - float(self.params["label_smoothing"]), device=x.device)
        fake_target = torch.zeros((n, 1), device=x.device)
        if trainer.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for _ in range(int(self.params["d_steps"])):
            self.d_optimizer.zero_grad(set_to_none=True)
            with trainer._autocast():
                with torch.no_grad():
                    fake = generator(self.latent(n, labels))
                real_scores = discriminator(self.condition(x, labels))
                fake_scores = discriminator(self.condition(fake.detach(), labels))
                d_loss = self.bce(real_scores.float(), real_target) + self.bce(fake_scores.float(), fake_target)
            self._backward(d_loss, self.d_optimizer, self.d_scaler, discriminator.parameters())
        trainer.optimizer.zero_grad(set_to_none=True)
        with trainer._autocast():
            fake = generator(self.latent(n, labels))
            g_scores = discriminator(self.condition(fake, labels))
            g_loss = self.bce(g_scores.float(), torch.ones((n, 1), device=x.device))
        self._backward(g_loss, trainer.optimizer, trainer.scaler, trainer.model.parameters())
        # Only the generator steps here; the discriminator's gradients of this
        # step are dropped by its next zero_grad.
        with torch.no_grad():
            self._sums += torch.stack([
                d_loss.detach().double() * n, g_loss.detach().double() * n,
                torch.sigmoid(real_scores.detach().float()).mean().double() * n,
                torch.sigmoid(fake_scores.detach().float()).mean().double() * n])
        self._seen += n
        trainer.step += 1
        return g_loss.detach()

    @torch.no_grad()
    def _fixed_samples(self) -> torch.Tensor:
        trainer = self.trainer
        generator = trainer.model
        was_training = generator.training
        generator.eval()
        try:
            with trainer._autocast():
                return generator(self.fixed_noise.to(trainer.device)).float()
        finally:
            generator.train(was_training)

    def finish_epoch(self, metrics: "EpochMetrics", train_metric: float | None) -> None:
        trainer = self.trainer
        sums = self._sums.tolist() if self._sums is not None else [0.0] * 4
        seen = self._seen
        if trainer.distributed is not None:  # pragma: no cover - refused at set-up
            sums = trainer.distributed.all_reduce(sums + [seen])
            seen = sums.pop()
        seen = max(seen, 1)
        metrics.d_loss, metrics.g_loss, metrics.d_real, metrics.d_fake = (v / seen for v in sums)
        fake = self._fixed_samples()
        judged = self.judge_samples(fake, self.fixed_labels)
        metrics.sample_diversity = judged["sample_diversity"]
        metrics.judge_confidence = judged.get("judge_confidence")
        metrics.judge_coverage = judged.get("judge_coverage")
        self.last_images = to_pixels(fake, trainer.data.normalization)

    def samples(self, epoch: int) -> dict[str, Any] | None:
        if self.last_images is None:
            self.last_images = to_pixels(self._fixed_samples(), self.trainer.data.normalization)
        names = self.trainer.info.class_names
        labels = None
        if self.fixed_labels is not None:
            labels = [names[i] if names and i < len(names) else str(i) for i in self.fixed_labels.tolist()]
        return {"kind": "images", "images": self.last_images, "labels": labels}

    @torch.no_grad()
    def evaluate(self, split: str, data: "Split") -> GanReport:
        trainer = self.trainer
        generator = trainer.model
        z, labels = noise(self.params, EVALUATION_SAMPLES, self.classes or None, seed=trainer.seed + 13)
        was_training = generator.training
        generator.eval()
        try:
            fake = torch.cat([generator(z[i:i + 256].to(trainer.device)).float()
                              for i in range(0, len(z), 256)])
        finally:
            generator.train(was_training)
        judged = self.judge_samples(fake, labels)
        last = trainer.history[-1] if trainer.history else None
        return GanReport(
            len(fake), judged.get("judge_confidence"), judged.get("judge_coverage"),
            self.judge_accuracy, judged["sample_diversity"],
            last.d_real if last else None, last.d_fake if last else None,
            judged.get("class_counts"), trainer.info.class_names, last.epoch if last else None)

    # -- checkpoints ---------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"discriminator": self.discriminator.state_dict(),
                "discriminator_optimizer": self.d_optimizer.state_dict(),
                "discriminator_optimizer_type": self.d_optimizer_type,
                "discriminator_scaler": self.d_scaler.state_dict() if self.d_scaler else None}

    def check_state(self, state: dict[str, Any]) -> None:
        from .checkpoint_checks import CheckpointError, check_optimizer, check_state_like, check_weights
        from .components import OPTIMIZER_CLASSES

        if not isinstance(state.get("discriminator"), dict) \
                or not isinstance(state.get("discriminator_optimizer"), dict):
            raise CheckpointError("the checkpoint holds no discriminator and its optimizer: it is "
                                  "not a GAN's (start a new run)")
        check_weights(state["discriminator"], self.discriminator.state_dict(),
                      "the checkpoint's discriminator")
        self.trainer.notes += check_optimizer(state.get("discriminator_optimizer"), self.d_optimizer,
                                              state.get("discriminator_optimizer_type"),
                                              self.d_optimizer_type, OPTIMIZER_CLASSES)
        if self.d_scaler is not None and state.get("discriminator_scaler") is not None:
            check_state_like(state["discriminator_scaler"], self.d_scaler.state_dict(),
                             "the discriminator's gradient scaler's state")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.d_optimizer.load_state_dict(state["discriminator_optimizer"])
        if self.d_scaler is not None and state.get("discriminator_scaler"):
            self.d_scaler.load_state_dict(state["discriminator_scaler"])

