"""Whatever the catalogues' schemas accept for a loss, an optimizer or a
scheduler, torch accepts too: a project that passes validation (and so
`guidl summary`) is not refused when training builds it."""

import pytest
import torch

from guidl.engine.components import make_loss, make_optimizer, make_scheduler
from guidl.registry import LOSSES, OPTIMIZERS, SCHEDULERS


def _edges(param):
    values = []
    if param.kind in ("float", "int"):
        for bound in (param.minimum, param.maximum):
            if bound is not None:
                values += [bound, bound + (1e-9 if param.kind == "float" else 1),
                           bound - (1e-9 if param.kind == "float" else 1)]
        values += [0, 1, 0.5, 2] if param.kind == "float" else [0, 1, 2]
    elif param.kind == "float_list":
        values += [[a, b] for a in (0.0, 0.5, 0.999999, 1.0) for b in (0.0, 0.999, 1.0)]
    elif param.kind == "bool":
        values += [True, False]
    elif param.kind == "str" and param.choices:
        values += list(param.choices)
    elif param.kind == "int_list":
        values += [[0], [3, 1], [1, 1], [5, 10]]
    return [v for v in values if param.check(v) is None]


def _cases(catalogue):
    return [(entry, param.name, value) for entry in catalogue for param in entry.params
            for value in _edges(param)
            # The trainer checks OneCycleLR's plan against the run's length.
            if (entry.name, param.name) != ("OneCycleLR", "total_steps")]


def _valid(entry, params):
    return not entry.check_params(params)


@pytest.mark.parametrize("entry, name, value", _cases(OPTIMIZERS), ids=str)
def test_optimizers_take_what_validation_accepts(entry, name, value):
    params = {name: value}
    if name == "nesterov" and value:
        params["momentum"] = 0.9
    assert _valid(entry, params)
    weight = torch.nn.Parameter(torch.zeros(3))
    weight.grad = torch.ones(3)
    make_optimizer({"type": entry.name, "params": params}, [weight], fused=True).step()


@pytest.mark.parametrize("entry, name, value", _cases(SCHEDULERS), ids=str)
def test_schedulers_take_what_validation_accepts(entry, name, value):
    params = {**entry.initial_params(), name: value}
    assert _valid(entry, params)
    weight = torch.nn.Parameter(torch.zeros(3))
    weight.grad = torch.ones(3)
    optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    scheduler = make_scheduler({"type": entry.name, "params": params}, optimizer, epochs=3,
                               steps_per_epoch=4)
    for _ in range(3):
        optimizer.step()
        scheduler.step(1.0) if entry.name == "ReduceLROnPlateau" else scheduler.step()


@pytest.mark.parametrize("entry, name, value", _cases(LOSSES), ids=str)
def test_losses_take_what_validation_accepts(entry, name, value):
    loss = make_loss({"type": entry.name, "params": {name: value}})
    if entry.info["targets"] == "class_index":
        loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 1]))
    else:
        loss(torch.rand(4, 1), torch.rand(4, 1))


def test_what_torch_would_refuse_is_a_problem_with_the_reason():
    assert OPTIMIZERS.get("SGD").check_params({"nesterov": True}) == [
        ("nesterov", "needs momentum > 0 and dampening == 0 (momentum is 0)")]
    assert OPTIMIZERS.get("Adam").check_params({"betas": [0.9, 1.0]}) == [
        ("betas", "each item must be a number >= 0 and < 1, got 1.0")]
    assert SCHEDULERS.get("ReduceLROnPlateau").check_params({"factor": 1}) == [
        ("factor", "must be a number > 0 and < 1, got 1")]
    assert SCHEDULERS.get("OneCycleLR").check_params({"max_lr": 0.1, "pct_start": 1.0}) == [
        ("pct_start", "must be a number > 0 and < 1, got 1.0")]
