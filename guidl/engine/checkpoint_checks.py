"""Checks of a checkpoint's contents before a run resumes from it.

``torch.load(..., weights_only=True)`` guarantees only that nothing in the
file runs; what it returns may still be anything a file can hold (a list, a
string where a number belongs, tensors of other shapes) or the state of
another setup (the run's project edited to another optimizer). Each check
raises ``CheckpointError`` with one clear sentence instead of letting torch
fail somewhere in the middle of a resume.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import MISSING, fields
from typing import Any, Mapping

import torch

from ..formatting import first_line, quote, shorten
from ..registry import OPTIMIZERS, SCHEDULERS, Entry

#: Keys of the training state every checkpoint has, with what they hold.
_REQUIRED = {
    "epoch": "a whole number", "step": "a whole number", "model": "the weights",
    "optimizer": "the optimizer's state", "rng": "the random generators' states",
    "history": "the list of epochs",
}


#: A checkpoint holds the weights, the optimizer's state (up to three copies of
#: them), the best weights early stopping keeps and the scaler's: within this
#: many times the weights' bytes, plus ``CHECKPOINT_ROOM`` for the rest.
CHECKPOINT_COPIES = 8
#: The random generators' states, the epochs' history and the pickle's own bytes.
CHECKPOINT_ROOM = 64 * 2**20


def checkpoint_size_limit(project) -> int:
    """The most bytes a checkpoint of ``project``'s model may hold (larger, it
    is not one of this model's: it is refused before it is read). Without a
    shape known before the data loads, the machine's memory."""
    from .build import analyze, physical_memory_bytes
    from .data import expected_input

    copy = project.copy()
    shape, dtype = expected_input(copy)
    if shape is not None:
        copy.model.input_dtype = dtype
        report = analyze(copy.model, shape)
        if report.ok:
            return CHECKPOINT_COPIES * report.weight_bytes + CHECKPOINT_ROOM
    return physical_memory_bytes()


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: damaged, crafted, or made with
    another setup than the project's. The message says which."""


def kind(value: Any) -> str:
    """What a value is, in words: ``a list``, ``a string``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, torch.Tensor):
        return f"a tensor {tuple(value.shape)} of {str(value.dtype).removeprefix('torch.')}"
    for types, words in ((int, "a whole number"), (float, "a number"), (str, "a string"),
                         ((list, tuple), "a list"), (dict, "an object")):
        if isinstance(value, types):
            return words
    return type(value).__name__


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_structure(state: Any, metrics: type) -> None:
    """The parts every checkpoint has, of the types they must have
    (``metrics``: the dataclass of an epoch of ``history``)."""
    known = {f.name for f in fields(metrics)}
    required = {f.name for f in fields(metrics) if f.default is MISSING}
    if not isinstance(state, dict):
        raise CheckpointError(f"not a guidl checkpoint: it holds {kind(state)}, not a training state")
    missing = [key for key in _REQUIRED if key not in state]
    if missing:
        raise CheckpointError("damaged checkpoint: " + ", ".join(
            f"{key!r} ({_REQUIRED[key]})" for key in missing) + " missing")

    def bad(key: str, wants: str, value: Any) -> CheckpointError:
        return CheckpointError(f"damaged checkpoint: {key!r} must be {wants}, got {kind(value)}")

    for key in ("epoch", "step"):
        if not _whole(state[key]):
            raise bad(key, "a whole number >= 0", state[key])
    weights = state["model"]
    if not isinstance(weights, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise bad("model", "an object of named tensors", weights)
    optimizer = state["optimizer"]
    if (not isinstance(optimizer, dict) or not isinstance(optimizer.get("state"), dict)
            or not isinstance(optimizer.get("param_groups"), list)
            or not all(isinstance(g, dict) and isinstance(g.get("params"), list)
                       for g in optimizer["param_groups"])):
        raise bad("optimizer", "an optimizer's state (state and param_groups)", optimizer)
    rng = state["rng"]
    if (not isinstance(rng, dict) or not all(_byte_tensor(rng.get(k)) for k in ("torch", "data"))
            or not isinstance(rng.get("cuda", []), list)
            or not all(_byte_tensor(r) for r in rng.get("cuda", []))):
        raise bad("rng", "the generators' states (byte tensors)", rng)
    history = state["history"]
    if not isinstance(history, list):
        raise bad("history", "a list of epochs", history)
    for index, epoch in enumerate(history):
        if not isinstance(epoch, dict) or not required <= set(epoch) <= known or not all(
                value is None or _number(value) for value in epoch.values()) \
                or not _whole(epoch.get("epoch")):
            raise bad(f"history[{index}]", "an epoch's figures (numbers)", epoch)
    for key, check, wants in (
            ("stop_training", lambda v: isinstance(v, bool), "true or false"),
            ("stop_reason", lambda v: v is None or isinstance(v, str), "a string or null"),
            ("callbacks", lambda v: isinstance(v, dict), "an object"),
            ("scheduler", lambda v: v is None or isinstance(v, dict), "a scheduler's state or null"),
            ("scaler", lambda v: v is None or isinstance(v, dict), "a gradient scaler's state or null"),
            ("optimizer_type", lambda v: isinstance(v, str), "an optimizer name"),
            ("scheduler_type", lambda v: v is None or isinstance(v, str), "a scheduler name or null")):
        if key in state and not check(state[key]):
            raise bad(key, wants, state[key])


def _byte_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.ndim == 1


def check_weights(saved: Mapping[str, torch.Tensor], current: Mapping[str, torch.Tensor],
                  what: str = "the checkpoint") -> None:
    """Same names, shapes and kinds (floating or not) as the model's own."""
    missing = [k for k in current if k not in saved]
    extra = [k for k in saved if k not in current]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks {_names(missing)}")
        if extra:
            parts.append(f"has {_names(extra)}, which the model does not")
        raise CheckpointError(f"{what} does not match this model (was the project changed?): it "
                              + " and ".join(parts))
    for name, tensor in current.items():
        other = saved[name]
        if tuple(other.shape) != tuple(tensor.shape) or other.is_floating_point() != tensor.is_floating_point():
            raise CheckpointError(
                f"{what} does not match this model (was the project changed?): {name} is "
                f"{kind(other)} there but {kind(tensor)} in the model")
        if other.is_floating_point() and not bool(torch.isfinite(other).all()):
            raise CheckpointError(f"damaged checkpoint: {name} in {what} holds non-finite values")


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def check_optimizer(saved: Mapping[str, Any], optimizer: torch.optim.Optimizer, saved_type: str | None,
                    current_type: str, catalogue: Mapping[str, type]) -> list[str]:
    """The saved state is the state of this optimizer type over these
    parameters. ``saved_type`` is the type the checkpoint names (older
    checkpoints name none: it is then recognised from its settings).
    Returns notes for the run: learning-rate multipliers edited since."""
    current = optimizer.state_dict()
    groups, own_groups = saved["param_groups"], current["param_groups"]
    if saved_type is None:
        matches = _recognise(groups, catalogue)
        saved_type = current_type if current_type in matches else next(iter(matches), None)
    # The type a checkpoint names is its text: said as a name when it is one, else quoted, cut.
    made_with = None if saved_type is None else (
        saved_type if isinstance(saved_type, str) and saved_type in catalogue else quote(saved_type))
    if made_with is not None and made_with != current_type or made_with is None and any(
            set(g) != set(own) for g, own in zip(groups, own_groups)):
        raise CheckpointError(
            f"the checkpoint was made with {made_with or 'another optimizer'}; the project now says "
            f"{current_type}: a run resumes with the optimizer it was made with, so set "
            f"training.optimizer back to {made_with or 'it'} to resume, or start a new run from the "
            "edited project")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if len(groups) != len(own_groups) and all(isinstance(g, Mapping) and isinstance(g.get("params"), list)
                                              for g in groups):
        # Each distinct learning rate of the model's layers is a group of its own.
        raise CheckpointError(_regrouped(
            f"the checkpoint's optimizer has {len(groups)} parameter group{'s' if len(groups) != 1 else ''} "
            f"and this project's has {len(own_groups)}"))
    sizes, own_sizes = [len(g["params"]) for g in groups], [len(own["params"]) for own in own_groups]
    if sizes != own_sizes and sum(sizes) == sum(own_sizes):
        # As many parameters in all, shared out otherwise: a multiplier or a
        # frozen layer moved to another layer.
        raise CheckpointError(_regrouped(
            f"the checkpoint's optimizer groups hold {', '.join(map(str, sizes))} parameters and this "
            f"project's {', '.join(map(str, own_sizes))}"))
    if len(groups) != len(own_groups) or any(len(g["params"]) != len(own["params"])
                                             for g, own in zip(groups, own_groups)):
        raise CheckpointError("damaged checkpoint: the optimizer's state covers "
                              f"{sum(len(g['params']) for g in groups)} parameters, the model has "
                              f"{len(params)}")
    for group, own in zip(groups, own_groups):
        _check_settings(group, own, OPTIMIZERS.get(current_type))
    # torch pairs the saved ids with the model's parameters in order.
    ids = [i for g in groups for i in g["params"]]
    if not all(_whole(i) for i in ids) or len(set(ids)) != len(ids):
        raise CheckpointError("damaged checkpoint: the optimizer's parameter ids must be distinct "
                              "whole numbers")
    by_id = dict(zip(ids, params))
    expected = _expected_state(type(optimizer), groups[0] if groups else optimizer.defaults)
    for index, entry in saved["state"].items():
        if index not in by_id or not isinstance(entry, dict):
            raise CheckpointError(f"damaged checkpoint: the optimizer's state has an entry {quote(index)} "
                                  "that is no parameter of the model")
        shape = tuple(by_id[index].shape)
        if expected is not None and set(entry) != set(expected):
            raise CheckpointError(f"damaged checkpoint: the optimizer's state of a parameter holds "
                                  f"{shorten(', '.join(map(str, sorted(entry, key=str)))) or 'nothing'}; "
                                  f"{type(optimizer).__name__} keeps {', '.join(sorted(expected))}")
        for key, value in entry.items():
            wants = (expected or {}).get(key, "scalar" if key == "step" else "parameter")
            if wants == "none":
                ok = value is None
            elif wants == "scalar":
                ok = (_number(value) or isinstance(value, torch.Tensor) and value.ndim == 0
                      and (value.is_floating_point() or not value.is_complex())) \
                    and not (key == "step" and not float(value) >= 0)
            else:
                ok = isinstance(value, torch.Tensor) and tuple(value.shape) == shape \
                    and value.is_floating_point()
            if not ok and wants == "parameter" and len(groups) > 1 and isinstance(value, torch.Tensor) \
                    and value.is_floating_point() and value.ndim:
                # The weights fit (checked first): the groups pair the state with other layers.
                raise CheckpointError(_regrouped(
                    f"the checkpoint's optimizer state of a parameter {shape} is {kind(value)}, so its "
                    "groups hold other layers than this project's"))
            if not ok:
                words = {"none": "nothing", "scalar": "a number >= 0" if key == "step" else "a number",
                         "parameter": f"a tensor {shape} like its parameter"}[wants]
                raise CheckpointError(f"damaged checkpoint: the optimizer's {key} of a parameter "
                                      f"{shape} must be {words}, got {kind(value)}")
            if isinstance(value, torch.Tensor) and value.is_floating_point() \
                    and not bool(torch.isfinite(value).all()):
                raise CheckpointError(f"damaged checkpoint: the optimizer's {key} of a parameter "
                                      f"{shape} holds non-finite values")
    return _rate_notes(groups, own_groups)


def _regrouped(what: str) -> str:
    return (f"{what}: frozen layers, lr multipliers or the fine-tune schedule changed since the run "
            "was saved; undo that to resume, or start a new run from the edited project")


def _rate_notes(groups: list[Mapping[str, Any]], own_groups: list[Mapping[str, Any]]) -> list[str]:
    """A note when the groups' rates relative to the first (the lr
    multipliers) differ from the project's: torch's load keeps the saved
    rates, so the run goes on as it was saved."""
    def shares(items) -> list[float] | None:
        rates = [item.get("initial_lr", item.get("lr")) for item in items]
        if not all(_number(rate) for rate in rates) or not rates or not rates[0] > 0:
            return None
        return [rate / rates[0] for rate in rates]

    saved, own = shares(groups), shares(own_groups)
    if saved is None or own is None or len(saved) != len(own) or all(
            math.isclose(a, b, rel_tol=1e-6) for a, b in zip(saved, own)):
        return []

    def said(values: list[float]) -> str:
        return ", ".join(f"{value:.3g}x" for value in values[1:])
    return [f"resuming keeps the checkpoint's learning rates: its layer groups learn at {said(saved)} "
            f"the optimizer's rate, where the project's lr multipliers now give {said(own)}; a resumed "
            "run goes on exactly as it was saved, so the edited multipliers apply from a new run"]


def _check_settings(group: Mapping[str, Any], own: Mapping[str, Any], entry: Entry) -> None:
    """A saved parameter group's settings replace the project's when torch
    loads it: each must be one the project could have given (the catalogue's
    schema), a switch (true, false or null) where the optimizer has one, or a
    scheduler's number (``initial_lr``...)."""
    for key, value in group.items():
        if key == "params":
            continue
        if key in entry.param_names:
            given = list(value) if isinstance(value, tuple) else value
            param = entry.param(key)
            problem = (f"{param.expects()}, got {kind(value)}" if isinstance(value, torch.Tensor)
                       else param.check(given))
        elif key in own and (isinstance(own[key], bool) or own[key] is None):
            problem = None if value is None or isinstance(value, bool) else \
                f"must be true, false or null, got {kind(value)}"
        else:
            problem = None if _number(value) and 0 <= value < float("inf") else \
                f"must be a number >= 0, got {kind(value)}"
        if problem:
            raise CheckpointError(f"damaged checkpoint: the optimizer's {key} {problem}")


def _expected_state(cls: type, settings: Mapping[str, Any]) -> dict[str, str]:
    """What an optimizer of ``cls`` with the saved ``settings`` keeps per
    parameter after a step (``"scalar"``, ``"parameter"``-shaped or
    ``"none"``), found by stepping one on a probe parameter."""
    probe = torch.nn.Parameter(torch.zeros(2, 3))
    probe.grad = torch.ones(2, 3)
    accepted = inspect.signature(cls).parameters
    try:
        copy = cls([probe], **{k: v for k, v in settings.items() if k in accepted and k != "params"})
        copy.step()
    except Exception as error:  # noqa: BLE001 - torch's own checks of the settings
        raise CheckpointError(f"damaged checkpoint: the optimizer's settings cannot be used "
                              f"({first_line(error)})") from None
    state = copy.state[probe]
    return {key: "none" if value is None else "parameter" if isinstance(value, torch.Tensor)
            and value.shape == probe.shape else "scalar" for key, value in state.items()}


def _recognise(groups: list[dict[str, Any]], catalogue: Mapping[str, type]) -> list[str]:
    """The optimizers of the catalogue whose settings' names are all in the
    saved ones (a scheduler adds its own, such as ``initial_lr``) with the
    most of them; Adam and AdamW share theirs."""
    if not groups:
        return []
    keys = set(groups[0])
    probe = [torch.nn.Parameter(torch.zeros(1))]
    own = {name: set(cls(probe).param_groups[0]) for name, cls in catalogue.items()}
    fitting = [name for name in own if own[name] <= keys]
    most = max((len(own[name]) for name in fitting), default=0)
    return [name for name in fitting if len(own[name]) == most]


def _mismatch(saved: Any, own: Any) -> str:
    """Words for how ``saved`` differs from the kind of ``own``."""
    if isinstance(saved, (list, tuple)) and isinstance(own, (list, tuple)):
        bad = next(a for a, b in zip(saved, own) if not _same_kind(a, b))
        return f"holds {kind(bad)} where {kind(own[0])}s belong"
    return f"is {kind(saved)}, not {kind(own)}"


def _same_kind(saved: Any, own: Any) -> bool:
    """Compatible values: numbers with numbers (not NaN), lists with lists...
    Where the fresh object holds ``None`` anything fits; a switch may be unset."""
    if own is None:
        return True
    if isinstance(own, bool):
        return saved is None or isinstance(saved, bool)
    if _number(own):
        return _number(saved) and saved == saved or isinstance(saved, torch.Tensor) and saved.numel() == 1
    if isinstance(own, torch.Tensor):
        return isinstance(saved, torch.Tensor) or _number(saved)
    if isinstance(own, (list, tuple)):
        return isinstance(saved, (list, tuple)) and all(_same_kind(a, b) for a, b in zip(saved, own))
    if isinstance(own, dict):
        return isinstance(saved, dict) and all(_same_kind(saved.get(k), v) for k, v in own.items())
    return isinstance(saved, type(own))


def check_scheduler(saved: Mapping[str, Any] | None, scheduler: Any, saved_type: str | None,
                    current_type: str | None) -> None:
    """The checkpoint's scheduler is the project's (or both have none)."""
    if saved is None and scheduler is None:
        return
    if saved_type is None and saved is not None and scheduler is not None:
        # Older checkpoints do not name it: the same settings mean the same type.
        own = scheduler.state_dict()
        saved_type = current_type if set(saved) == set(own) else "another scheduler"
    if (saved is None) != (scheduler is None) or saved_type != current_type:
        made = "no scheduler" if saved is None else saved_type if isinstance(saved_type, str) and (
            saved_type == "another scheduler" or saved_type in SCHEDULERS) else quote(saved_type)
        now = "none" if scheduler is None else current_type
        raise CheckpointError(
            f"the checkpoint was made with {made}; the project now says {now}: a run resumes with "
            "the scheduler it was made with, so set training.scheduler back to resume, or start a "
            "new run from the edited project")
    own = scheduler.state_dict()
    for key, value in own.items():
        if key in saved and not _same_kind(saved[key], value):
            raise CheckpointError(f"damaged checkpoint: the scheduler's {key} "
                                  f"{_mismatch(saved[key], value)}")


def check_state_like(saved: Any, own: Mapping[str, Any], what: str) -> None:
    """A small state (a gradient scaler's, a callback's) with the keys and
    kinds of values of ``own``, the fresh object's."""
    if not isinstance(saved, dict):
        raise CheckpointError(f"damaged checkpoint: {what} is {kind(saved)}, not an object")
    for key, value in own.items():
        if key not in saved:
            raise CheckpointError(f"damaged checkpoint: {what} lacks {key!r}")
        if not _same_kind(saved[key], value):
            raise CheckpointError(f"damaged checkpoint: {what}'s {key} {_mismatch(saved[key], value)}")


#: What the saved state of a callback holds, where a fresh callback's own
#: state (``None`` before the first epoch) cannot tell: name -> (kind, nullable).
CALLBACK_FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "early_stopping": {"best": ("number", True), "best_epoch": ("whole", False),
                       "wait": ("whole", False), "best_state": ("weights", True)},
}
_FIELD_TESTS = {
    "number": (_number, "a number"),
    "whole": (_whole, "a whole number >= 0"),
    "weights": (lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items()), "the model's weights"),
}


def check_fields(saved: Mapping[str, Any], spec: Mapping[str, tuple[str, bool]], what: str) -> None:
    for name, (field_kind, nullable) in spec.items():
        value = saved.get(name)
        test, words = _FIELD_TESTS[field_kind]
        if not (value is None and nullable or test(value)):
            raise CheckpointError(f"damaged checkpoint: {what}'s {name} must be {words}"
                                  + (" or null" if nullable else "") + f", got {kind(value)}")


def check_rng(rng: Mapping[str, Any], torch_state: torch.Tensor, data_state: torch.Tensor) -> None:
    for key, own in (("torch", torch_state), ("data", data_state)):
        if rng[key].numel() != own.numel():
            raise CheckpointError(f"damaged checkpoint: the {key} generator's state has "
                                  f"{rng[key].numel()} bytes, not {own.numel()}")
