"""The catalogues promise torch's names and defaults: check them against torch."""

import inspect

import pytest
import torch
from torch import nn

from guidl.engine.build import LAYER_FACTORIES
from guidl.engine.components import LOSS_CLASSES, OPTIMIZER_CLASSES, SCHEDULER_CLASSES
from guidl.registry import LAYERS, LOSSES, OPTIMIZERS, REQUIRED, SCHEDULERS
from guidl.registry.layers import GUIDL_DEFAULTS

RECURRENT = {"RNN", "LSTM", "GRU"}


def _signature(entry_name, cls):
    if entry_name in RECURRENT:
        # RNN classes take *args; their real signature is RNNBase's (plus RNN's nonlinearity).
        params = dict(inspect.signature(nn.RNNBase.__init__).parameters)
        params["nonlinearity"] = inspect.Parameter("nonlinearity", inspect.Parameter.KEYWORD_ONLY,
                                                   default="tanh")
        return params
    return dict(inspect.signature(cls).parameters)


def _same(ours, theirs):
    return ours == (list(theirs) if isinstance(theirs, tuple) else theirs)


# A layer that is not torch's (PositionalEmbedding, the merges) is checked against guidl's own class.
CASES = ([(LAYERS, e, getattr(nn, e.name, None) or LAYER_FACTORIES[e.name]) for e in LAYERS]
         + [(LOSSES, e, LOSS_CLASSES[e.name]) for e in LOSSES]
         + [(OPTIMIZERS, e, OPTIMIZER_CLASSES[e.name]) for e in OPTIMIZERS]
         + [(SCHEDULERS, e, SCHEDULER_CLASSES[e.name]) for e in SCHEDULERS])


@pytest.mark.parametrize("catalogue,entry,cls", CASES, ids=[e.name for _, e, _ in CASES])
def test_names_and_defaults_match_torch(catalogue, entry, cls):
    signature = _signature(entry.name, cls)
    guidl_only = set(entry.info.get("guidl_params", []))
    for param in entry.params:
        if param.name in guidl_only:
            continue
        assert param.name in signature, f"{entry.name} has no argument {param.name!r} in torch"
        theirs = signature[param.name].default
        if param.default is REQUIRED:
            continue
        if (entry.name, param.name) in GUIDL_DEFAULTS:
            assert param.default != theirs
            continue
        if theirs is inspect.Parameter.empty:
            pytest.fail(f"{entry.name}.{param.name}: torch requires it, the registry gives a default")
        assert _same(param.default, theirs), (entry.name, param.name, param.default, theirs)


def test_engine_knows_exactly_the_registry_layers():
    assert set(LAYER_FACTORIES) == set(LAYERS.names())


@pytest.mark.parametrize("entry", list(SCHEDULERS), ids=lambda e: e.name)
def test_every_scheduler_builds_from_its_initial_params(entry):
    from guidl.engine.components import make_optimizer, make_scheduler

    optimizer = make_optimizer({"type": "SGD", "params": {"lr": 0.1, "momentum": 0.9}},
                               [nn.Parameter(torch.zeros(2))])
    scheduler = make_scheduler({"type": entry.name, "params": entry.initial_params()}, optimizer,
                               epochs=3, steps_per_epoch=5)
    assert scheduler.optimizer is optimizer


@pytest.mark.parametrize("entry", list(OPTIMIZERS), ids=lambda e: e.name)
def test_every_optimizer_steps_from_its_defaults(entry):
    from guidl.engine.components import make_optimizer

    weight = nn.Parameter(torch.ones(3))
    optimizer = make_optimizer({"type": entry.name, "params": entry.initial_params()}, [weight])
    (weight ** 2).sum().backward()
    optimizer.step()
    assert torch.all(weight < 1), "a gradient step on x**2 must shrink x"


@pytest.mark.parametrize("entry", list(LOSSES), ids=lambda e: e.name)
def test_every_loss_computes_from_its_defaults(entry):
    from guidl.engine.components import make_loss

    loss = make_loss({"type": entry.name, "params": entry.initial_params()})
    torch.manual_seed(0)
    output = torch.randn(4, 3)
    if entry.info["targets"] == "class_index":
        target = torch.tensor([0, 1, 2, 1])
        if entry.info["output"] == "log_probs":
            output = output.log_softmax(-1)
    else:
        target = torch.rand(4, 3)
        if entry.info["output"] == "probabilities":
            output = output.sigmoid()
    value = loss(output, target)
    assert value.ndim == 0 and torch.isfinite(value) and value > 0
