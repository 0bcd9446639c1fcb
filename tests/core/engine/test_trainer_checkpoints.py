"""A checkpoint is resumed only when it is one this project's run could
have written: crafted or damaged contents and a project edited to another
optimizer or scheduler are one clear ``CheckpointError``, never a torch
exception from the middle of a resume."""

import copy
import io

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guidl.engine.callbacks import EarlyStopping
from guidl.engine.checkpoint_checks import CheckpointError
from guidl.engine.trainer import NonFiniteLossError, Trainer, describe_error
from guidl.spec import Component
from helpers import small_project


@pytest.fixture(scope="module")
def saved(digits_data):
    """A real checkpoint after one epoch, as written to checkpoint.pt and read back."""
    trainer = Trainer(small_project(), data=digits_data, epochs=1, callbacks=[EarlyStopping(patience=3)])
    trainer.fit()
    buffer = io.BytesIO()
    torch.save(trainer.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def resume(state, data, **changes):
    trainer = Trainer(small_project(**changes), data=data, epochs=2,
                      callbacks=[EarlyStopping(patience=3)])
    trainer.load_state_dict(state)
    trainer.fit()
    return trainer


def changed(state, change):
    state = copy.deepcopy(state)
    change(state)
    return state


def _set(path, value):
    def change(state):
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _first_weight(state):
    return next(iter(state["model"]))


CRAFTED = {
    "a list": (lambda s: [s], "not a guidl checkpoint (it holds a list)"),
    "missing optimizer": (lambda s: changed(s, lambda d: d.pop("optimizer")),
                          "damaged checkpoint: 'optimizer' (the optimizer's state) missing"),
    "epoch as string": (lambda s: changed(s, _set(["epoch"], "1")),
                        "'epoch' must be a whole number >= 0, got a string"),
    "weights of another shape": (
        lambda s: changed(s, lambda d: d["model"].update({_first_weight(d): torch.zeros(3, 3)})),
        "does not match this model (was the project changed?): 1.weight is a tensor (3, 3)"),
    "a string for a weight": (lambda s: changed(s, lambda d: d["model"].update({_first_weight(d): "w"})),
                              "'model' must be an object of named tensors"),
    "a missing weight": (lambda s: changed(s, lambda d: d["model"].pop(_first_weight(d))),
                         "it lacks 1.weight"),
    "optimizer moment of another shape": (
        lambda s: changed(s, lambda d: d["optimizer"]["state"][0].update({"exp_avg": torch.zeros(7)})),
        "the optimizer's exp_avg of a parameter (32, 64) must be a tensor (32, 64) like its parameter, "
        "got a tensor (7,)"),
    "learning rate as string": (
        lambda s: changed(s, lambda d: d["optimizer"]["param_groups"][0].update({"lr": "fast"})),
        "the optimizer's lr must be a number > 0, got 'fast'"),
    "too few parameters": (
        lambda s: changed(s, lambda d: d["optimizer"]["param_groups"][0]["params"].pop()),
        "the optimizer's state covers 3 parameters, the model has 4"),
    "generator state cut": (lambda s: changed(s, lambda d: d["rng"].update({"torch": d["rng"]["torch"][:10]})),
                            "the torch generator's state has 10 bytes"),
    "generator state as string": (lambda s: changed(s, _set(["rng", "data"], "seed")),
                                  "'rng' must be the generators' states"),
    "history of strings": (lambda s: changed(s, _set(["history"], ["epoch one"])),
                           "'history[0]' must be an epoch's figures"),
    "history with unknown figures": (lambda s: changed(s, _set(["history", 0, "speed"], 1.0)),
                                     "'history[0]' must be an epoch's figures"),
    "scheduler step as string": (lambda s: changed(s, _set(["scheduler", "last_epoch"], "one")),
                                 "the scheduler's last_epoch is a string, not a whole number"),
    "early stopping best as string": (lambda s: changed(s, _set(["callbacks", "early_stopping", "best"], "x")),
                                      "the state of early stopping's best must be a number or null, got a string"),
    "early stopping weights of another model": (
        lambda s: changed(s, _set(["callbacks", "early_stopping", "best_state"], {"w": torch.zeros(1)})),
        "the state of early stopping (best_state) does not match this model"),
    "stop flag as string": (lambda s: changed(s, _set(["stop_training"], "yes")),
                            "'stop_training' must be true or false, got a string"),
    "another version": (lambda s: changed(s, _set(["version"], 99)), "checkpoint version 99 is not supported"),
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_a_crafted_checkpoint_is_one_clear_error(saved, digits_data, name):
    craft, words = CRAFTED[name]
    with pytest.raises(CheckpointError) as raised:
        resume(craft(saved), digits_data)
    assert words in str(raised.value)
    assert describe_error(raised.value) == str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_checkpoint_itself_resumes(saved, digits_data):
    trainer = resume(saved, digits_data)
    assert trainer.epoch == 2 and len(trainer.history) == 2


@pytest.mark.parametrize("named", [True, False], ids=["named", "older checkpoint"])
def test_resuming_after_the_optimizer_was_changed_says_so(saved, digits_data, named):
    state = saved if named else changed(saved, lambda d: d.pop("optimizer_type"))
    with pytest.raises(CheckpointError) as raised:
        resume(state, digits_data, training__optimizer=Component("SGD", {"lr": 0.1, "momentum": 0.9}))
    assert str(raised.value).startswith("the checkpoint was made with Adam; the project now says SGD: ")


def test_adam_and_adamw_are_told_apart_by_the_name_in_the_checkpoint(saved, digits_data):
    with pytest.raises(CheckpointError, match="made with Adam; the project now says AdamW"):
        resume(saved, digits_data, training__optimizer=Component("AdamW"))


def test_a_changed_or_removed_scheduler_says_so(saved, digits_data):
    with pytest.raises(CheckpointError, match="made with StepLR; the project now says ExponentialLR"):
        resume(saved, digits_data, training__scheduler=Component("ExponentialLR", {"gamma": 0.9}))
    with pytest.raises(CheckpointError, match="made with StepLR; the project now says none"):
        resume(saved, digits_data, training__scheduler=None)


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    yield path


JUNK = st.sampled_from(["text", None, -1, 2**70, 1.5, float("nan"), [], {}, [1, "a"], True,
                        torch.zeros(2, 3), torch.zeros(0), torch.tensor(1.0)])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_damaged_part_resumes_or_is_a_checkpoint_error(saved, digits_data, data):
    paths = [p for p in _leaves(saved) if p]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(JUNK)
    state = changed(saved, _set(list(path), value))
    try:
        resume(state, digits_data)
    except CheckpointError as error:
        assert "\n" not in str(error)
    except NonFiniteLossError:
        assert path[-1] == "lr"  # a huge learning rate, as a project may give


def test_a_megabyte_of_text_in_a_checkpoint_is_cut_in_the_message(saved, digits_data):
    huge = "A" * 2**20
    for key in ("optimizer_type", "scheduler_type"):
        with pytest.raises(CheckpointError) as raised:
            resume(changed(saved, lambda d: d.update({key: huge})), digits_data)
        message = str(raised.value)
        assert len(message) < 1000 and "(1,048,576 characters)" in message, message[:300]
    state = changed(saved, lambda d: d["optimizer"]["state"].update({huge: {}}))
    with pytest.raises(CheckpointError) as raised:
        resume(state, digits_data)
    assert len(str(raised.value)) < 1000 and "has an entry 'AAA" in str(raised.value)
    assert len(describe_error(RuntimeError(huge + "\nmore"))) < 1000
