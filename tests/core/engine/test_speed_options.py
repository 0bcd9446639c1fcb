"""Speed options change how training runs, never what it computes: fused
optimizers, channels-last images and torch.compile."""

from __future__ import annotations

import pytest
import torch

from guidl import spec
from guidl.engine.components import make_optimizer
from guidl.engine.export import TrainedModel
from guidl.engine.trainer import Trainer


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "Adagrad"])
def test_fused_optimizers_step_as_the_standard_ones(name):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    twin = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    twin.load_state_dict(model.state_dict())
    config = {"type": name, "params": {"lr": 0.05}}
    fused = make_optimizer(config, model.parameters(), fused=True)
    plain = make_optimizer(config, twin.parameters())
    assert fused.defaults.get("fused") is True and not plain.defaults.get("fused")
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    for _ in range(20):
        for net, optimizer in ((model, fused), (twin, plain)):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            optimizer.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_an_optimizer_without_a_fused_kernel_is_the_standard_one():
    model = torch.nn.Linear(3, 2)
    optimizer = make_optimizer({"type": "RMSprop", "params": {"lr": 0.01}}, model.parameters(), fused=True)
    assert isinstance(optimizer, torch.optim.RMSprop) and not optimizer.defaults.get("fused")


def _digits_cnn(**training) -> spec.Project:
    project = spec.loads("""{"format": "guidl-project", "version": 1, "name": "tiny cnn",
      "model": {"layers": [{"type": "Conv2d", "params": {"out_channels": 8, "kernel_size": 3}},
        {"type": "ReLU"}, {"type": "Conv2d", "params": {"out_channels": 8, "kernel_size": 3}},
        {"type": "ReLU"}, {"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 10}}]},
      "data": {"dataset": "digits", "batch_size": 64},
      "training": {"epochs": 3, "device": "cpu", "optimizer": {"type": "Adam", "params": {"lr": 0.01}}}}""")
    for key, value in training.items():
        setattr(project.training, key, value)
    return project


def test_channels_last_trains_the_same_model():
    plain = Trainer(_digits_cnn()).fit()
    trainer = Trainer(_digits_cnn(channels_last=True))
    result = trainer.fit()
    conv = trainer.model[2].weight  # 8 input channels: the layouts differ
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert result.evaluation.accuracy > 0.9
    assert abs(result.evaluation.accuracy - plain.evaluation.accuracy) < 0.03
    # Exported weights are in the standard layout again.
    exported = TrainedModel.from_trainer(trainer).module[2].weight
    assert exported.is_contiguous()
    torch.testing.assert_close(exported, conv.detach().cpu())


def test_channels_last_on_data_that_are_no_images_is_a_note():
    from pathlib import Path

    project = spec.load(Path(__file__).parents[3] / "examples" / "moons_mlp.guidl.json")
    project.training.channels_last = True
    project.training.epochs = 1
    trainer = Trainer(project)
    trainer.fit()
    assert any("channels_last applies to images" in note for note in trainer.notes)


def test_compiled_training_learns_and_keeps_plain_weights():
    """torch.compile on the CPU (inductor and the C compiler): slow to compile,
    so one small model, two epochs."""
    trainer = Trainer(_digits_cnn(compile=True, epochs=2))
    result = trainer.fit()
    assert not any("could not compile" in note for note in trainer.notes), trainer.notes
    assert result.evaluation.accuracy > 0.85
    assert type(trainer._train_model).__name__ == "OptimizedModule"
    assert all(not key.startswith("_orig_mod") for key in trainer.state_dict()["model"])
