"""The memory a model takes to train (weights, gradients, optimizer state,
one batch of activations) is checked against what is available before any
weight is allocated: summary warns, training refuses, with the figures."""

import sys

import pytest
import torch

from guidl.engine.build import (
    analyze, available_memory_bytes, check_training_memory, physical_memory_bytes, training_memory,
)
from guidl.engine.components import OPTIMIZER_CLASSES
from guidl.engine.trainer import Trainer
from guidl.registry import OPTIMIZERS
from guidl.spec import Component, Layer, Model, ProjectError
from helpers import small_project

SETTINGS = [(entry.name, {}) for entry in OPTIMIZERS] + [
    (entry.name, {name: 0.9 if name == "momentum" else True}) for entry in OPTIMIZERS
    for name in entry.info["state_if"]]


@pytest.mark.parametrize("name, params", SETTINGS, ids=lambda x: str(x))
def test_the_optimizer_state_estimate_is_what_torch_keeps(name, params):
    weight = torch.nn.Parameter(torch.zeros(1000))
    weight.grad = torch.ones(1000)
    optimizer = OPTIMIZER_CLASSES[name]([weight], **params)
    optimizer.step()
    kept = sum(v.numel() * v.element_size() for v in optimizer.state[weight].values()
               if isinstance(v, torch.Tensor) and v.numel() > 1)
    report = analyze(Model([Layer("Linear", {"out_features": 10, "bias": False})], [100]))
    estimate = training_memory(report, Component(name, params), 1)
    assert estimate.optimizer_state == kept  # 1000 parameters as 1000 float32 weights


def test_the_parts_of_the_estimate():
    report = analyze(Model([Layer("Linear", {"out_features": 1000})], [1000]))
    memory = training_memory(report, Component("Adam"), 64)
    weights = 1_001_000 * 4
    assert (memory.weights, memory.gradients, memory.optimizer_state) == (weights, weights, 2 * weights)
    assert memory.activations == (1000 + 1000) * 4 * 64
    assert memory.total == 4 * weights + memory.activations


def test_the_issue_case_a_19_gb_linear_on_a_23_gb_machine():
    # Passes the weights-only check against physical memory, cannot train.
    model = Model([Layer("Linear", {"out_features": 70_000}), Layer("Linear", {"out_features": 70_000}),
                   Layer("Linear", {"out_features": 2})], [2])
    report = analyze(model, memory_limit=23 * 2**30)
    assert report.ok
    project = small_project()
    project.model = model
    problem = check_training_memory(project, report, "cpu", available=21 * 2**30)
    assert problem is not None and problem.path == "model"
    assert problem.message == (
        "training needs about 73.06 GB (weights 18.26 GB, gradients 18.26 GB, Adam state 36.51 GB, "
        "activations 34.18 MB for a batch of 64); 21.00 GB is available on this machine: make the "
        "model smaller, or use an optimizer that keeps less state (SGD without momentum keeps none)")
    project.training.optimizer = Component("SGD")
    assert check_training_memory(project, report, "cpu", available=40 * 2**30) is None


def test_what_is_available_is_measured():
    available = available_memory_bytes("cpu")
    assert 0 < available <= physical_memory_bytes()


def test_training_refuses_before_allocating_a_weight(monkeypatch, digits_data):
    monkeypatch.setattr(sys.modules["guidl.engine.build"], "available_memory_bytes", lambda device="cpu": 10_000)
    built = []
    monkeypatch.setattr("guidl.engine.trainer.build", lambda *a, **k: built.append(1))
    with pytest.raises(ProjectError) as raised:
        Trainer(small_project(), data=digits_data).setup()
    assert str(raised.value).startswith("model: training needs about ")
    assert "9.77 KB is available on this machine" in str(raised.value)
    assert not built


def test_a_cgroup_limit_does_not_count_its_reclaimable_file_cache(tmp_path, monkeypatch):
    # memory.current counts the page cache; the inactive part of it is given back
    # before anything is killed: counted as used, it refused trainings that fit.
    import psutil
    from types import SimpleNamespace

    from guidl.engine import memory

    mib = 2**20
    (tmp_path / "memory.max").write_text(f"{1000 * mib}\n")
    (tmp_path / "memory.current").write_text(f"{900 * mib}\n")
    (tmp_path / "memory.stat").write_text(f"anon {250 * mib}\nfile {640 * mib}\n"
                                          f"active_file {40 * mib}\ninactive_file {600 * mib}\n")
    monkeypatch.setattr(memory, "CGROUP", tmp_path)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=64 * 2**30))
    assert available_memory_bytes("cpu") == 700 * mib
    (tmp_path / "memory.stat").unlink()  # no figure: all of memory.current is used
    assert available_memory_bytes("cpu") == 100 * mib
    (tmp_path / "memory.max").write_text("max\n")
    assert available_memory_bytes("cpu") == 64 * 2**30
