"""Losses, optimizers and schedulers from their project-file configs.

Only names from the registry's catalogues are looked up, and only in
``torch.nn`` / ``torch.optim`` / ``torch.optim.lr_scheduler``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch
from torch import nn

from ..registry import LOSSES, OPTIMIZERS, SCHEDULERS, Catalogue, Entry
from ..spec import Component

LOSS_CLASSES = {name: getattr(nn, name) for name in LOSSES.names()}
OPTIMIZER_CLASSES = {name: getattr(torch.optim, name) for name in OPTIMIZERS.names()}
SCHEDULER_CLASSES = {name: getattr(torch.optim.lr_scheduler, name) for name in SCHEDULERS.names()}


def _kwargs(catalogue: Catalogue, config: Component | Mapping[str, Any]) -> tuple[Entry, dict[str, Any]]:
    if isinstance(config, Component):
        config = {"type": config.type, "params": config.params}
    entry = catalogue.get(config)
    params = dict(config.get("params") or {})
    problems = entry.check_params(params)
    if problems:
        raise ValueError("; ".join(f"{entry.name}.{name}: {message}" for name, message in problems))
    kwargs = {}
    for name, value in params.items():
        kwargs[name] = tuple(value) if isinstance(value, list) and entry.param(name).kind != "int_list" else value
    return entry, kwargs


def make_loss(config: Component | Mapping[str, Any]) -> nn.Module:
    entry, kwargs = _kwargs(LOSSES, config)
    return LOSS_CLASSES[entry.name](**kwargs)


def make_optimizer(config: Component | Mapping[str, Any],
                   parameters: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]], *,
                   fused: bool = False) -> torch.optim.Optimizer:
    """The optimizer, over parameters or parameter groups (dicts with
    ``params`` and their own ``lr``). With ``fused``, torch's fused
    implementation (one kernel per step for all parameters, on the CPU as on
    GPUs) is used where this optimizer has one: the same update, computed in
    fewer, larger operations."""
    entry, kwargs = _kwargs(OPTIMIZERS, config)
    cls = OPTIMIZER_CLASSES[entry.name]
    parameters = list(parameters)
    flat = [p for item in parameters for p in (item["params"] if isinstance(item, dict) else [item])]
    if fused and _can_fuse(cls, flat, kwargs):
        try:
            return cls(parameters, **kwargs, fused=True)
        except (RuntimeError, ValueError, TypeError):
            pass  # e.g. an option the fused kernel lacks: the standard implementation
    return cls(parameters, **kwargs)


def _can_fuse(cls: type, parameters: list[torch.nn.Parameter], kwargs: dict[str, Any]) -> bool:
    import inspect

    if "fused" not in inspect.signature(cls).parameters:  # the catalogue offers no fused/foreach
        return False
    # Fused kernels are checked here only on the CPU and CUDA (torch reports a
    # missing kernel at the first step, too late to fall back).
    return not kwargs.get("differentiable") and all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in parameters)


def make_scheduler(config: Component | Mapping[str, Any] | None, optimizer: torch.optim.Optimizer, *,
                   epochs: int, steps_per_epoch: int):
    """The scheduler, or ``None``. Sizes that follow from the training run
    (OneCycleLR's ``total_steps``) are filled in from ``epochs`` and
    ``steps_per_epoch``."""
    if config is None:
        return None
    entry, kwargs = _kwargs(SCHEDULERS, config)
    if entry.name == "OneCycleLR" and kwargs.get("total_steps") is None:
        kwargs["total_steps"] = max(1, epochs * steps_per_epoch)
    if entry.name == "OneCycleLR" and len(optimizer.param_groups) > 1:
        # One max_lr would set every group's rate alike: each group keeps its
        # share of the optimizer's rate (a layer's lr_multiplier, fine-tuning).
        base = optimizer.defaults["lr"]
        kwargs["max_lr"] = [kwargs["max_lr"] * group["lr"] / base for group in optimizer.param_groups]
    return SCHEDULER_CLASSES[entry.name](optimizer, **kwargs)
