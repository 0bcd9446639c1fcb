"""Frozen layers, per-layer learning rates and the fine-tune schedule.

A layer of the project (a model layer, a block use, or a layer inside a
block's definition) may be ``frozen`` (its parameters do not train and the
BatchNorm inside it keeps its running statistics) and may carry an
``lr_multiplier`` (its parameters learn at the optimizer's rate times it).
Multipliers multiply down the nesting: a layer with 0.1 inside a block use
with 0.5 learns at 0.05 times the rate; a frozen block use freezes all of it.

Spec layers are paired with their built modules by position through
``layer_modules`` (an ``nn.Sequential``'s children, a ``GraphModel``'s layers
by the report's keys, a repeated block's repetitions), the same walk the
builder made, never by guessing from names or shapes.

The optimizer gets one parameter group per distinct rate. Layers that the
fine-tune schedule will unfreeze get their group from the start, while
frozen: torch's optimizers skip a parameter without a gradient (no update,
no weight decay, no state), so a frozen parameter in a group is untouched,
and when it unfreezes its group already has its rate and the scheduler
already steps it. Groups never change during a run, so a checkpoint taken
before or after the unfreeze resumes with the same optimizer state. Layers
that stay frozen for the whole run are not in the optimizer at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from torch import nn

from ..registry import LAYERS
from ..spec import Model, Project, ProjectError
from ..spec.errors import Problem
from .graph import GraphModel, layer_modules

#: Marks a module whose BatchNorm layers stay in eval mode (see ``frozen_modes``):
#: frozen, and still after a fine-tune schedule unfroze its parameters.
FROZEN_MARK = "guidl_frozen"


@dataclass
class Unit:
    """What the fine-tune schedule unfreezes at once: one frozen layer or
    block use, or one stage of a frozen pretrained backbone."""

    title: str
    parameters: list[nn.Parameter]
    #: The modules marked frozen for it (their BatchNorm stays in eval mode).
    modules: list[nn.Module]
    #: The backbone's type when the unit is one of its stages.
    backbone: str | None = None

    @property
    def size(self) -> int:
        return sum(p.numel() for p in self.parameters)


@dataclass
class _Part:
    """One spec layer with its built module and its settings, nesting applied."""

    title: str
    module: nn.Module
    scale: float
    type: str
    #: Whether it is frozen itself, and whether a block use around it is.
    own_frozen: bool
    inside_frozen: bool
    children: list["_Part"] = field(default_factory=list)

    @property
    def frozen(self) -> bool:
        return self.own_frozen or self.inside_frozen


def _parts(layers, modules: list[nn.Module], blocks, scale: float = 1.0, frozen: bool = False,
           where: str = "layer") -> list[_Part]:
    if len(layers) != len(modules):
        raise ValueError(f"the built model has {len(modules)} layers where the project has "
                         f"{len(layers)}: build it from this project")
    parts = []
    for index, (layer, module) in enumerate(zip(layers, modules)):
        title = f"{where} {index} ({layer.type})"
        part = _Part(title, module, scale * layer.lr_multiplier, layer.type, layer.frozen, frozen)
        if layer.type in blocks and layer.type not in LAYERS:
            repetitions = [module] if isinstance(module, GraphModel) else list(module)
            for number, repetition in enumerate(repetitions):
                inside = f"{title}" + (f" repetition {number + 1}," if len(repetitions) > 1 else "")
                part.children += _parts(blocks[layer.type].layers, layer_modules(repetition), blocks,
                                        part.scale, part.frozen, f"{inside} layer")
        parts.append(part)
    return parts


def _walk(parts: list[_Part]) -> Iterator[_Part]:
    for part in parts:
        yield part
        yield from _walk(part.children)


class Freezing:
    """The frozen layers and learning-rate multipliers of one built network.

    ``model`` is the plain built module (not a DDP or compiled wrapper) and
    ``network`` the project's section it was built from."""

    def __init__(self, model: nn.Module, network: Model):
        self.model = model
        self.parts = _parts(network.layers, layer_modules(model), network.blocks)
        # Outer parts first, inner ones after: the innermost setting wins.
        self.scale: dict[int, float] = {}
        self.frozen: dict[int, bool] = {}
        for part in _walk(self.parts):
            for parameter in part.module.parameters():
                self.scale[id(parameter)] = part.scale
                self.frozen[id(parameter)] = part.frozen
        self.parameters = list(model.parameters())

    @property
    def used(self) -> bool:
        """Whether any layer is frozen or has its own learning rate."""
        return any(self.frozen.values()) or any(s != 1 for s in self.scale.values())

    def apply(self) -> None:
        """Freeze: ``requires_grad`` False on frozen layers' parameters, and
        their modules marked so that ``frozen_modes`` keeps BatchNorm in eval."""
        for unit in self.units():
            for parameter in unit.parameters:
                parameter.requires_grad_(False)
            for module in unit.modules:
                setattr(module, FROZEN_MARK, True)

    def units(self) -> list[Unit]:
        """The frozen parts, in model order: a frozen layer or block use (a
        frozen pretrained backbone: each of its stages), and inside a block
        use that is not frozen, each frozen layer of each repetition."""
        found: list[Unit] = []

        def visit(parts: list[_Part]) -> None:
            for part in parts:
                if part.own_frozen and not part.inside_frozen:
                    found.extend(_units_of(part))
                elif not part.frozen:
                    visit(part.children)

        visit(self.parts)
        return found


def _units_of(part: _Part) -> list[Unit]:
    stages = getattr(part.module, "stages", None)
    if not callable(stages):
        return [Unit(part.title, list(part.module.parameters()), [part.module])]
    groups = [list(stage) for stage in stages()]
    if not groups:
        return [Unit(part.title, list(part.module.parameters()), [part.module])]
    # A parameter outside every stage (a ViT's class token, a final norm)
    # goes with the stage of the parameter before it, in the module's order.
    owner: dict[int, int] = {}
    for number, modules in enumerate(groups):
        for module in modules:
            for parameter in module.parameters():
                owner.setdefault(id(parameter), number)
    per_stage: list[list[nn.Parameter]] = [[] for _ in groups]
    stage_modules: list[list[nn.Module]] = [list(modules) for modules in groups]
    current = 0
    seen: set[int] = set()
    for name, parameter in part.module.named_parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        current = owner.get(id(parameter), current)
        per_stage[current].append(parameter)
        if id(parameter) not in owner:
            holder = part.module.get_submodule(name.rpartition(".")[0]) if "." in name else None
            if holder is not None and not list(holder.children()):
                stage_modules[current].append(holder)
    for name, module in part.module.named_modules():
        # BatchNorm outside every stage (no parameters of its own to place it
        # by) stays frozen with the first stage.
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                module is m or any(module is sub for sub in m.modules())
                for modules in stage_modules for m in modules):
            stage_modules[0].append(module)
    return [Unit(f"stage {number + 1} of {part.type} ({part.title})", per_stage[number],
                 stage_modules[number], backbone=part.type) for number in range(len(groups))]


def _count(number: int) -> str:
    """8.4M, 12.3k, 950: a parameter count in a note."""
    if number >= 1_000_000:
        return f"{number / 1e6:.1f}M"
    if number >= 1_000:
        return f"{number / 1e3:.1f}k"
    return str(number)


def apply_freezing(model: nn.Module, project: Project, network: str = "model") -> Freezing:
    """Freeze the frozen layers of ``project``'s ``network`` in ``model`` (built
    from it): ``requires_grad`` False and the modules marked (see ``frozen_modes``)."""
    freezing = Freezing(model, project.network(network))
    freezing.apply()
    return freezing


def frozen_modes(model: nn.Module) -> None:
    """BatchNorm inside frozen parts (and parts a fine-tune schedule unfroze:
    their scale and shift train, their statistics do not) back to eval mode:
    call it after every ``.train()`` of a model with frozen parts."""
    for module in model.modules():
        if getattr(module, FROZEN_MARK, False):
            for inner in module.modules():
                if isinstance(inner, nn.modules.batchnorm._BatchNorm):
                    inner.eval()


def _groups_by_scale(parameters: list[nn.Parameter], scale: dict[int, float], base_lr: float,
                     factor: float = 1.0) -> list[dict]:
    groups: dict[float, list[nn.Parameter]] = {}
    for parameter in parameters:
        groups.setdefault(scale.get(id(parameter), 1.0) * factor, []).append(parameter)
    return [{"params": params, "lr": base_lr * s} for s, params in groups.items()]


def _base_first(groups: list[dict], base_lr: float) -> list[dict]:
    if not any(group["lr"] == base_lr for group in groups):
        groups.insert(0, {"params": [], "lr": base_lr})
    groups.sort(key=lambda group: group["lr"] != base_lr)  # stable: the base rate first
    return groups


def param_groups(model: nn.Module, project: Project, base_lr: float,
                 freezing: Freezing | None = None) -> list[dict]:
    """The optimizer's parameter groups: the first at ``base_lr`` (the
    optimizer's rate, possibly empty: the rate the charts show), then one
    per other multiplier, then those the fine-tune schedule unfreezes (at
    ``base_lr * lr_factor * multiplier``). Parameters that stay frozen are
    left out. Raises ``ProjectError`` when nothing would train."""
    freezing = freezing or Freezing(model, project.model)
    schedule = FineTune(freezing, project, epochs=project.training.epochs)
    later = {id(p) for unit in schedule.to_unfreeze for p in unit.parameters}
    training = [p for p in freezing.parameters if not freezing.frozen.get(id(p))]
    if freezing.parameters and not training:
        fine_tune = project.training.fine_tune
        if fine_tune is None:
            raise ProjectError(Problem("model.layers", (
                "every layer is frozen: nothing would train; unfreeze the head (the layers after "
                "the pretrained part) or set training.fine_tune to unfreeze the frozen layers later")))
        raise ProjectError(Problem("model.layers", (
            f"every layer is frozen: the first {fine_tune.get('head_epochs', 3)} epochs "
            "(training.fine_tune.head_epochs) would train nothing; unfreeze the head (the layers "
            "after the pretrained part)")))
    groups = _base_first(_groups_by_scale(training, freezing.scale, base_lr), base_lr)
    unfrozen = [p for p in freezing.parameters if id(p) in later]
    groups += _groups_by_scale(unfrozen, freezing.scale, base_lr, schedule.lr_factor)
    return groups


class FineTune:
    """``training.fine_tune``: epochs 1..head_epochs train with the frozen
    layers frozen; at the start of epoch head_epochs + 1 the last
    ``unfreeze`` units (or all) train too, at ``lr * lr_factor``."""

    def __init__(self, freezing: Freezing, project: Project, epochs: int):
        settings = project.training.fine_tune
        self.freezing = freezing
        self.settings = settings
        self.epochs = epochs
        self.to_unfreeze: list[Unit] = []
        self.head_epochs = 0
        self.lr_factor = 1.0
        self.done = False
        if settings is None:
            return
        from ..registry import FINE_TUNE

        resolved = FINE_TUNE.resolve(settings)
        self.head_epochs = int(resolved["head_epochs"])
        self.lr_factor = float(resolved["lr_factor"])
        units = freezing.units()
        count = resolved["unfreeze"]
        self.to_unfreeze = units if count == "all" else units[max(0, len(units) - int(count)):]

    @property
    def active(self) -> bool:
        return self.settings is not None

    def warnings(self) -> list[str]:
        """What the schedule will not do as asked, said before training."""
        if not self.active:
            return []
        if not self.to_unfreeze:
            return ["training.fine_tune: no layer is frozen, so there is nothing to unfreeze; "
                    "freeze the pretrained layers to train the head first"]
        if self.head_epochs >= self.epochs:
            return [f"training.fine_tune: head_epochs is {self.head_epochs} and the run has "
                    f"{self.epochs} epochs, so nothing will be unfrozen"]
        return []

    def due(self, epoch_index: int) -> bool:
        """Whether the layers are unfrozen for the epoch ``epoch_index`` (0-based)."""
        return self.active and bool(self.to_unfreeze) and epoch_index >= self.head_epochs

    def unfreeze(self, base_lr: float, optimizer=None) -> tuple[int, str]:
        """Unfreeze the units: the number of parameters and a note for the run.
        The note's rates are those of ``optimizer``'s groups that hold them
        (without one: ``base_lr * lr_factor`` times each layer's multiplier)."""
        self.done = True
        count = 0
        for unit in self.to_unfreeze:
            for parameter in unit.parameters:
                parameter.requires_grad_(True)
                count += parameter.numel()
            # The modules keep their mark: BatchNorm inside stays in eval mode, its
            # running statistics those it was trained with, as Keras advises for
            # fine-tuning (a few batches of new data would otherwise replace the
            # statistics the next layers were trained on, in a few steps).
        return count, self._note(count, self._rates(base_lr, optimizer))

    def _rates(self, base_lr: float, optimizer) -> list[float]:
        unfrozen = {id(p) for unit in self.to_unfreeze for p in unit.parameters}
        if optimizer is not None:
            rates = {group["lr"] for group in optimizer.param_groups
                     if any(id(p) in unfrozen for p in group["params"])}
            if rates:
                return sorted(rates)
        return sorted({base_lr * self.lr_factor * self.freezing.scale.get(key, 1.0) for key in unfrozen}
                      or {base_lr * self.lr_factor})

    def _note(self, count: int, rates: list[float]) -> str:
        units = self.to_unfreeze
        backbones = {unit.backbone for unit in units}
        everything = len(units) == len(self.freezing.units())
        if len(backbones) == 1 and None not in backbones:
            name = units[0].backbone
            what = (f"all {len(units)} stages of {name}" if everything else
                    f"the last {len(units)} stage{'s' if len(units) != 1 else ''} of {name}")
        elif everything:
            what = "all frozen layers" if len(units) != 1 else units[0].title
        else:
            what = f"the last {len(units)} frozen part{'s' if len(units) != 1 else ''}"
        if len(rates) <= 2:
            rate = " and ".join(f"{r:.3g}" for r in rates)
        else:  # many multipliers: the range
            rate = f"{rates[0]:.3g} to {rates[-1]:.3g}"
        return (f"epoch {self.head_epochs + 1}: unfroze {what} ({_count(count)} parameters) "
                f"at lr {rate}")


# -- the trainer's side ---------------------------------------------------------------------------

def _sets_training(network: Model) -> bool:
    """Whether a layer of ``network`` (or of its blocks) is frozen or has its own rate."""
    layers = [*network.layers, *(layer for block in network.blocks.values() for layer in block.layers)]
    return any(layer.frozen or layer.lr_multiplier != 1 for layer in layers)


def setup_training(trainer) -> list:
    """Freeze ``trainer.model``'s frozen layers and plan the fine-tune
    schedule; the parameters (or groups) for its optimizer. Notes what the
    schedule will not do."""
    from ..registry import OPTIMIZERS

    project = trainer.project
    trainer.unfrozen_now = None
    if project.training.fine_tune is None and not _sets_training(project.model):
        trainer.freezing = trainer.fine_tune = None  # as before these settings existed
        return list(trainer.model.parameters())
    trainer.freezing = apply_freezing(trainer.model, project)
    trainer.fine_tune = FineTune(trainer.freezing, project, trainer.epochs)
    trainer.notes += [note for note in trainer.fine_tune.warnings() if note not in trainer.notes]
    if not trainer.freezing.used and not trainer.fine_tune.active:
        return list(trainer.model.parameters())
    optimizer = project.training.optimizer
    base_lr = float(OPTIMIZERS.get(optimizer.type).resolve(optimizer.params)["lr"])
    return param_groups(trainer.model, project, base_lr, trainer.freezing)


def start_epoch(trainer, epoch_index: int) -> None:
    """Before epoch ``epoch_index`` (0-based) begins: unfreeze when the
    schedule says so (again after a resume past it), so that the epoch's
    callbacks already see it; ``trainer.unfrozen_now`` is the number of
    parameters unfrozen at this epoch (None at any other)."""
    trainer.unfrozen_now = None
    schedule = getattr(trainer, "fine_tune", None)
    if schedule is None or schedule.done or not schedule.due(epoch_index):
        return
    count, note = schedule.unfreeze(trainer.optimizer.param_groups[0]["lr"], trainer.optimizer)
    if epoch_index == schedule.head_epochs:
        trainer.unfrozen_now = count
        trainer.notes.append(note)
    if trainer.distributed is not None:
        # DDP reduces only the gradients of parameters that trained when it
        # was wrapped: wrapped again, it reduces the unfrozen ones too.
        trainer._train_model = trainer.distributed.wrap(trainer.model)
        trainer._eager_model = trainer._train_model
        if trainer.project.training.compile and not trainer.task.own_step:
            import torch

            trainer._train_model = torch.compile(trainer._train_model)


def discriminator_parameters(trainer, discriminator: nn.Module, optimizer) -> tuple[list, bool]:
    """A GAN's discriminator, frozen as its section says: the parameters (or
    groups, at its optimizer's rate times each multiplier) for its optimizer,
    and whether it has frozen parts (``frozen_modes`` after each ``.train()``).
    Its frozen layers stay frozen for the whole run: the fine-tune schedule
    unfreezes the generator's."""
    from ..registry import OPTIMIZERS

    project = trainer.project
    if project.discriminator is None or not _sets_training(project.discriminator):
        return list(discriminator.parameters()), False
    freezing = apply_freezing(discriminator, project, "discriminator")
    training = [p for p in freezing.parameters if not freezing.frozen.get(id(p))]
    if freezing.parameters and not training:
        raise ProjectError(Problem("discriminator.layers", (
            "every layer of the discriminator is frozen: it would not learn, and the generator "
            "learns only against it; unfreeze its last layers")))
    if project.training.fine_tune is not None and freezing.units():
        note = ("training.fine_tune unfreezes the generator's frozen layers; the discriminator's stay "
                "frozen for the whole run")
        if note not in trainer.notes:
            trainer.notes.append(note)
    base_lr = float(OPTIMIZERS.get(optimizer.type).resolve(optimizer.params)["lr"])
    return _base_first(_groups_by_scale(training, freezing.scale, base_lr), base_lr), bool(freezing.units())
