"""Frozen layers and per-layer learning rates: what does not train stays bit
for bit as it was (BatchNorm statistics included), the optimizer's groups
carry each layer's rate, and the report and summary count frozen parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from guidl.engine.build import analyze, build
from guidl.engine.components import make_optimizer, make_scheduler
from guidl.engine.freezing import FROZEN_MARK, Freezing, apply_freezing, frozen_modes, param_groups
from guidl.engine.summary import summary_text
from guidl.engine.trainer import Trainer
from guidl.spec import Component, Layer, Model, ProjectError
from helpers import small_graph_project, small_project


def _groups(trainer) -> list[tuple[float, int]]:
    return [(round(group["lr"], 12), sum(p.numel() for p in group["params"]))
            for group in trainer.optimizer.param_groups]


def test_a_frozen_block_use_keeps_its_weights_and_batchnorm_statistics(digits_data):
    project = small_graph_project(training__epochs=1)
    project.model.layers[2].frozen = True  # "res": a residual block with two BatchNorms
    trainer = Trainer(project, data=digits_data)
    trainer.setup()
    before = {key: value.clone() for key, value in trainer.model.state_dict().items()}
    assert any(key.startswith("res.") and key.endswith("running_mean") for key in before)
    trainer.fit()
    after = trainer.model.state_dict()
    for key, value in before.items():
        if key.startswith("res."):  # weights, running means and variances, batch counts
            assert torch.equal(value, after[key]), key
        elif key.endswith(("weight", "bias")):
            assert not torch.equal(value, after[key]), key
    assert all(not p.requires_grad for p in trainer.model.res.parameters())
    assert all(p.requires_grad for p in trainer.model.head.parameters())
    # The frozen block's parameters are in no group: the optimizer never sees them.
    frozen = {id(p) for p in trainer.model.res.parameters()}
    assert not any(id(p) in frozen for group in trainer.optimizer.param_groups for p in group["params"])


def test_frozen_modes_keeps_batchnorm_of_frozen_parts_in_eval_after_train():
    project = small_graph_project()
    project.model.blocks["ResidualBlock"].layers[1].frozen = True  # the first BatchNorm, in every use
    built = build(project, (1, 8, 8))
    apply_freezing(built.module, project)
    built.module.train()
    frozen_modes(built.module)
    norms = [m for m in built.module.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [norm.training for norm in norms] == [False, True]
    assert getattr(norms[0], FROZEN_MARK) and not hasattr(norms[1], FROZEN_MARK)
    assert not norms[0].weight.requires_grad and norms[1].weight.requires_grad


def test_lr_multipliers_give_groups_at_their_rates_and_multiply_down_blocks(digits_data):
    project = small_graph_project(training__epochs=1)
    layers = project.model.layers
    layers[0].lr_multiplier = 0.1  # stem
    layers[2].lr_multiplier = 0.5  # the block use "res" ...
    project.model.blocks["ResidualBlock"].layers[0].lr_multiplier = 4.0  # ... and its first conv: 2.0
    layers[-1].frozen = True  # the head: left out of the optimizer
    trainer = Trainer(project, data=digits_data)
    trainer.setup()
    lr = 0.005
    model = trainer.model
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    groups = _groups(trainer)
    # In the order the model first holds each rate: the block's first conv comes before the rest.
    assert [rate for rate, _ in groups] == [lr, lr * 0.1, lr * 2.0, lr * 0.5]
    assert groups[1][1] == count(model.stem)
    first_conv = next(m for m in model.res.modules() if isinstance(m, nn.Conv2d))
    assert groups[2][1] == count(first_conv) and groups[2][1] + groups[3][1] == count(model.res)
    assert sum(size for _, size in groups) == count(model) - count(model.head)
    # The charts' rate is the optimizer's own: the first group's.
    assert trainer.optimizer.param_groups[0]["lr"] == lr


def test_one_cycle_keeps_each_groups_share_of_the_rate():
    weights = [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))]
    optimizer = make_optimizer(Component("SGD", {"lr": 0.1, "momentum": 0.9}),
                               [{"params": [weights[0]], "lr": 0.1}, {"params": [weights[1]], "lr": 0.01}])
    scheduler = make_scheduler(Component("OneCycleLR", {"max_lr": 1.0}), optimizer, epochs=1,
                               steps_per_epoch=10)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    first, second = (group["lr"] for group in optimizer.param_groups)
    assert second == pytest.approx(first / 10) and first != 0.1


def test_every_layer_frozen_is_refused_with_what_to_do(digits_data):
    project = small_project(training__epochs=1)
    for layer in project.model.layers:
        layer.frozen = True
    with pytest.raises(ProjectError, match="every layer is frozen: nothing would train; unfreeze the head"):
        Trainer(project, data=digits_data).setup()
    project.training.fine_tune = {"head_epochs": 2}
    with pytest.raises(ProjectError, match=r"the first 2 epochs \(training.fine_tune.head_epochs\) "
                                           "would train nothing"):
        Trainer(project, data=digits_data).setup()


def test_the_report_and_summary_count_frozen_parameters():
    project = small_project()
    project.model.layers[1].frozen = True
    report = analyze(project.model, (1, 8, 8))
    assert (report.total_params, report.trainable_params, report.frozen_params) == (2410, 330, 2080)
    assert report.layers[1].trainable_count == 0 and report.layers[4].trainable_count == 330
    assert report.to_dict()["frozen_params"] == 2080
    text = summary_text(report, "m")
    assert "Trainable params: 330 (1.29 KB)" in text
    assert "Frozen params: 2,080 in #1 (Linear) (they do not train)" in text
    assert [line for line in text.splitlines() if "[frozen]" in line][0].lstrip().startswith("1  Linear(32)")
    # A frozen layer inside a block: the use is partly frozen, in each repetition.
    graph = small_graph_project(repeat=2)
    graph.model.blocks["ResidualBlock"].layers[0].frozen = True
    report = analyze(graph.model, (1, 8, 8))
    res = report.layers[2]
    conv = res.blocks[0].layers[0].param_count
    assert res.trainable_count == res.param_count - 2 * conv and 0 < res.trainable_count
    assert "[partly frozen]" in summary_text(report)
    assert analyze(small_project().model, (1, 8, 8)).frozen_params == 0


class _Staged(nn.Module):
    """A stand-in for a pretrained backbone: stages, a loose parameter
    before them and a norm after them."""

    def __init__(self):
        super().__init__()
        self.token = nn.Parameter(torch.zeros(3))
        self.blocks = nn.ModuleList([nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 3)])
        self.norm = nn.BatchNorm1d(3)

    def stages(self):
        return [[self.blocks[0]], [self.blocks[1]], [self.blocks[2]]]

    def forward(self, x):
        return self.norm(self.blocks[2](self.blocks[1](self.blocks[0](x + self.token))))


def test_a_frozen_backbone_unfreezes_by_stage_and_a_stack_by_layer():
    spec = Model([Layer("resnet18", frozen=True), Layer("Linear", {"out_features": 3}, frozen=True),
                  Layer("Linear", {"out_features": 2})])
    model = nn.Sequential(_Staged(), nn.Linear(3, 3), nn.Linear(3, 2))
    units = Freezing(model, spec).units()
    staged = model[0]
    assert [unit.title for unit in units] == [
        "stage 1 of resnet18 (layer 0 (resnet18))", "stage 2 of resnet18 (layer 0 (resnet18))",
        "stage 3 of resnet18 (layer 0 (resnet18))", "layer 1 (Linear)"]
    # The loose token goes with the first stage, the norm after the last stage with the last.
    assert [id(p) for p in units[0].parameters] == [id(staged.token), *map(id, staged.blocks[0].parameters())]
    assert {id(p) for p in units[2].parameters} == {id(p) for p in [*staged.blocks[2].parameters(),
                                                                    *staged.norm.parameters()]}
    assert staged.norm in units[2].modules
    assert sum(unit.size for unit in units) == sum(p.numel() for p in model[:2].parameters())
    with pytest.raises(ValueError, match="the built model has 3 layers where the project has 2"):
        Freezing(model, Model(spec.layers[:2]))


def test_param_groups_leave_out_what_stays_frozen_and_plan_what_unfreezes():
    project = small_project()
    project.model.layers[1].frozen = True
    built = build(project, (1, 8, 8))
    freezing = apply_freezing(built.module, project)
    assert [len(g["params"]) for g in param_groups(built.module, project, 0.01, freezing)] == [2]
    project.training.fine_tune = {"head_epochs": 1, "lr_factor": 0.2}
    groups = param_groups(built.module, project, 0.01, freezing)
    assert [(g["lr"], len(g["params"])) for g in groups] == [(0.01, 2), (pytest.approx(0.002), 2)]
    assert groups[1]["params"][0] is built.module[1].weight and not built.module[1].weight.requires_grad


def test_training_memory_counts_frozen_layers_only_when_a_schedule_unfreezes_them():
    from guidl.engine.build import check_training_memory, training_memory

    project = small_project()
    project.model.layers[1].frozen = True
    report = analyze(project.model, (1, 8, 8))
    plain = training_memory(report, project.training.optimizer, 64)
    assert plain.gradients == 330 * 4 and plain.optimizer_state == 2 * 330 * 4  # Adam: two copies
    need = lambda: check_training_memory(project, report, "cpu", available=1)  # noqa: E731
    assert "gradients 1.29 KB, Adam state 2.58 KB" in need().message
    project.training.fine_tune = {"head_epochs": 1}
    assert "gradients 9.41 KB, Adam state 18.83 KB" in need().message


def test_a_gans_frozen_discriminator_layers_do_not_train_and_its_multipliers_apply():
    from guidl.spec import Project

    adam = {"type": "Adam", "params": {"lr": 0.001, "betas": [0.5, 0.999]}}
    project = Project.from_dict({
        "format": "guidl-project", "version": 4, "name": "gan",
        "task": {"type": "gan", "params": {"noise_dim": 8, "samples": 16}},
        "model": {"layers": [{"type": "Linear", "params": {"out_features": 64}}, {"type": "Tanh"},
                             {"type": "Unflatten", "params": {"dim": 1, "unflattened_size": [1, 8, 8]}}]},
        "discriminator": {"layers": [
            {"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 32}, "frozen": True},
            {"type": "BatchNorm1d", "frozen": True}, {"type": "LeakyReLU", "params": {"negative_slope": 0.2}},
            {"type": "Linear", "params": {"out_features": 16}, "lr_multiplier": 0.5},
            {"type": "Linear", "params": {"out_features": 1}}]},
        "data": {"dataset": "digits", "params": {}, "val_fraction": 0.1, "batch_size": 128},
        "training": {"loss": {"type": "BCEWithLogitsLoss", "params": {}}, "optimizer": adam,
                     "discriminator_optimizer": adam, "scheduler": None, "epochs": 1, "device": "cpu",
                     "seed": 0}})
    trainer = Trainer(project)
    trainer.setup()
    discriminator = trainer.task.discriminator
    before = {k: v.clone() for k, v in discriminator.state_dict().items()}
    groups = [(group["lr"], sum(p.numel() for p in group["params"]))
              for group in trainer.task.d_optimizer.param_groups]
    assert groups == [(0.001, 16 + 1), (0.0005, 32 * 16 + 16)]  # the frozen layers in no group
    trainer.fit()
    after = discriminator.state_dict()
    for key in ("1.weight", "1.bias", "2.weight", "2.bias", "2.running_mean", "2.running_var"):
        assert torch.equal(after[key], before[key]), key  # BatchNorm's statistics included
    assert not torch.equal(after["4.weight"], before["4.weight"])
    assert not any("not applied" in note for note in trainer.notes)
