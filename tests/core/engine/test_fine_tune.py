"""The fine-tune schedule: the frozen layers unfreeze exactly at the start of
epoch head_epochs + 1, at lr * lr_factor (following the scheduler), the
epoch is marked on the metrics and in metrics.csv, and a checkpoint from
before or after the unfreeze resumes to the uninterrupted run's weights."""

from __future__ import annotations

import csv
import io

import pytest
import torch

from guidl.engine.callbacks import Callback, RunFolder
from guidl.engine.trainer import EpochMetrics, Trainer
from guidl.spec import Layer
from helpers import small_project

FROZEN = 2080  # Linear(64 -> 32)


def _project(epochs=3, **fine_tune):
    project = small_project(training__epochs=epochs)  # Adam lr 0.005, StepLR(step_size 2, gamma 0.5)
    project.model.layers[1].frozen = True
    project.training.fine_tune = {"head_epochs": 1, "lr_factor": 0.1, **fine_tune}
    return project


class _Watch(Callback):
    """Per epoch: whether the frozen layer trains, the groups' rates, and its weights after."""

    def __init__(self):
        self.trains, self.rates, self.weights = [], [], []

    def on_epoch_start(self, trainer, epoch):
        self.trains.append(trainer.model[1].weight.requires_grad)
        self.rates.append([round(group["lr"], 9) for group in trainer.optimizer.param_groups])

    def on_epoch_end(self, trainer, metrics):
        self.weights.append(trainer.model[1].weight.detach().clone())


def _saved(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.fixture(scope="module")
def whole(digits_data, tmp_path_factory):
    watch = _Watch()
    trainer = Trainer(_project(), data=digits_data,
                      callbacks=[watch, RunFolder(tmp_path_factory.mktemp("run"))])
    trainer.setup()
    start = trainer.model[1].weight.detach().clone()
    return trainer, trainer.fit(), watch, start


def test_the_frozen_layer_unfreezes_at_the_start_of_epoch_head_epochs_plus_one(whole):
    trainer, result, watch, start = whole
    assert watch.trains == [False, True, True]
    # Its group is planned from the start at lr * lr_factor and follows StepLR with the rest.
    assert watch.rates == [[0.005, 0.0005], [0.005, 0.0005], [0.0025, 0.00025]]
    assert torch.equal(watch.weights[0], start)  # epoch 1: bit for bit as it was
    assert not torch.equal(watch.weights[1], watch.weights[0])
    assert not torch.equal(watch.weights[2], watch.weights[1])
    assert [m.unfrozen for m in result.history] == [None, FROZEN, None]
    assert "epoch 2: unfroze layer 1 (Linear) (2.1k parameters) at lr 0.0005" in trainer.notes


def test_metrics_csv_and_epoch_metrics_carry_the_unfreeze(whole):
    trainer, result, _, _ = whole
    run = next(c for c in trainer.callbacks if isinstance(c, RunFolder)).path
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["unfrozen"] for row in rows] == ["", str(FROZEN), ""]
    assert EpochMetrics.from_dict(result.history[1].to_dict()) == result.history[1]


@pytest.mark.parametrize("stop_after", [1, 2])
def test_a_checkpoint_before_or_after_the_unfreeze_resumes_exactly(whole, digits_data, stop_after):
    expected_trainer, expected, _, _ = whole
    first = Trainer(_project(epochs=stop_after), data=digits_data)
    first.fit()
    resumed = Trainer(_project(), data=digits_data)
    resumed.load_state_dict(_saved(first.state_dict()))
    result = resumed.fit()
    assert [(m.train_loss, m.val_loss, m.lr, m.unfrozen) for m in result.history] == \
           [(m.train_loss, m.val_loss, m.lr, m.unfrozen) for m in expected.history]
    for (key, a), (other, b) in zip(expected_trainer.model.state_dict().items(),
                                    resumed.model.state_dict().items()):
        assert key == other and torch.equal(a, b), key
    assert resumed.model[1].weight.requires_grad


def test_schedules_that_unfreeze_nothing_say_so(digits_data):
    late = Trainer(_project(epochs=2, head_epochs=2), data=digits_data)
    late.setup()
    assert ("training.fine_tune: head_epochs is 2 and the run has 2 epochs, so nothing will be "
            "unfrozen") in late.notes
    project = _project()
    project.model.layers[1].frozen = False
    idle = Trainer(project, data=digits_data)
    idle.setup()
    assert any("no layer is frozen, so there is nothing to unfreeze" in note for note in idle.notes)
    assert len(idle.optimizer.param_groups) == 1


def test_unfreeze_counts_units_from_the_end(digits_data):
    project = _project(unfreeze=1)
    project.model.layers[4].frozen = True  # two frozen layers: only the last one unfreezes
    project.model.layers[4].lr_multiplier = 2.0  # the note says the rate it really gets
    project.model.layers.insert(4, Layer("Linear", {"out_features": 16}))
    trainer = Trainer(project, data=digits_data)
    trainer.setup()
    assert [len(g["params"]) for g in trainer.optimizer.param_groups] == [2, 2]
    assert trainer.optimizer.param_groups[1]["params"][0] is trainer.model[5].weight
    assert trainer.fine_tune.unfreeze(0.005, trainer.optimizer)[1] == (
        "epoch 2: unfroze the last 1 frozen part (170 parameters) at lr 0.001")
    assert trainer.model[5].weight.requires_grad and not trainer.model[1].weight.requires_grad
    project.training.fine_tune["unfreeze"] = "all"
    both = Trainer(project, data=digits_data)
    both.setup()
    assert both.fine_tune.unfreeze(0.005, both.optimizer)[1] == (
        "epoch 2: unfroze all frozen layers (2.2k parameters) at lr 0.0005 and 0.001")


def test_distributed_training_wraps_the_model_again_so_unfrozen_gradients_are_reduced(
        digits_data, monkeypatch):
    import socket

    from guidl.engine.distributed import DistributedContext

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))

    class Reduced(Callback):
        """How many gradient values DistributedDataParallel reduces per step, per epoch."""

        def __init__(self):
            self.sizes: dict[int, int] = {}

        def on_epoch_start(self, trainer, epoch):
            from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

            def hook(state, bucket):
                self.sizes[epoch] = self.sizes.get(epoch, 0) + bucket.buffer().numel()
                return allreduce_hook(None, bucket)

            self.sizes[epoch] = 0
            if epoch == 0 or trainer._train_model is not first_wrapper[0]:
                trainer._train_model.register_comm_hook(None, hook)
            first_wrapper[0] = trainer._train_model

    first_wrapper = [None]
    reduced = Reduced()
    context = DistributedContext(0, 0, 1, 1, "gloo", torch.device("cpu"))
    context.start()
    try:
        trainer = Trainer(_project(epochs=2), data=digits_data, distributed=context, callbacks=[reduced])
        result = trainer.fit()
    finally:
        context.close()
    # Summed over the epoch's steps: the head alone (330 per step), then with the unfrozen layer.
    steps = trainer.batches_per_epoch
    assert reduced.sizes == {0: 330 * steps, 1: (330 + FROZEN) * steps}
    assert [m.unfrozen for m in result.history] == [None, FROZEN]


def test_a_frozen_resnet_unfreezes_its_last_stages_keeping_their_batchnorm_statistics():
    from guidl.engine.build import build
    from guidl.engine.freezing import FineTune, apply_freezing, frozen_modes
    from guidl.spec import Model, Project

    project = Project(model=Model([Layer("resnet18", {"weights": "none"}, frozen=True),
                                   Layer("Linear", {"out_features": 3})], input_shape=[3, 32, 32]))
    project.training.fine_tune = {"head_epochs": 1, "unfreeze": 2}
    built = build(project)
    net = built.module[0].net
    assert built.report.frozen_params == sum(p.numel() for p in net.parameters())
    freezing = apply_freezing(built.module, project)
    assert len(freezing.units()) == 5  # the stem, layer1 .. layer4
    schedule = FineTune(freezing, project, epochs=3)
    count, note = schedule.unfreeze(0.001)
    assert count == sum(p.numel() for p in [*net.layer3.parameters(), *net.layer4.parameters()])
    assert note == f"epoch 2: unfroze the last 2 stages of resnet18 ({count / 1e6:.1f}M parameters) at lr 0.0001"
    built.module.train()
    frozen_modes(built.module)
    # Unfrozen, a stage's BatchNorm learns its scale and shift but keeps its statistics.
    assert not net.bn1.training and not net.layer2[0].bn1.training and not net.layer3[0].bn1.training
    assert net.layer3[0].bn1.weight.requires_grad and built.module[1].training
    assert not net.layer2[0].conv1.weight.requires_grad and net.layer4[1].conv2.weight.requires_grad


def test_a_checkpoint_from_before_a_layer_was_frozen_names_the_change(whole, digits_data):
    from guidl.engine.checkpoint_checks import CheckpointError

    plain = small_project(training__epochs=1)
    first = Trainer(plain, data=digits_data)
    first.fit()
    resumed = Trainer(_project(), data=digits_data)  # one group more: the layer to unfreeze
    with pytest.raises(CheckpointError, match="the checkpoint's optimizer has 1 parameter group and this "
                                              "project's has 2: frozen layers, lr multipliers or the "
                                              "fine-tune schedule changed"):
        resumed.load_state_dict(_saved(first.state_dict()))
        resumed.setup()


def _with_multipliers(**multipliers):
    project = small_project(training__epochs=1)
    for index, value in multipliers.items():
        project.model.layers[int(index[1:])].lr_multiplier = value
    return project


def test_a_checkpoint_whose_multiplier_moved_or_changed_names_it(digits_data):
    from guidl.engine.checkpoint_checks import CheckpointError

    first = Trainer(_with_multipliers(l1=0.1), data=digits_data)
    first.fit()
    saved = first.state_dict()
    # Moved to the other Linear (as many groups and parameters) or onto both (groups of 0 and 4).
    for edited in (_with_multipliers(l4=0.1), _with_multipliers(l1=0.1, l4=0.1)):
        resumed = Trainer(edited, data=digits_data)
        with pytest.raises(CheckpointError, match="frozen layers, lr multipliers or the fine-tune schedule "
                                                  "changed since the run was saved") as caught:
            resumed.load_state_dict(_saved(saved))
            resumed.setup()
        assert "damaged" not in str(caught.value)
    # Only its value changed: the run resumes at the saved rates, and says so.
    resumed = Trainer(_with_multipliers(l1=0.5), data=digits_data)
    resumed.load_state_dict(_saved(saved))
    resumed.setup()
    assert [group["lr"] for group in resumed.optimizer.param_groups] == pytest.approx([0.005, 0.0005])
    assert any("resuming keeps the checkpoint's learning rates: its layer groups learn at 0.1x the "
               "optimizer's rate, where the project's lr multipliers now give 0.5x" in note
               for note in resumed.notes), resumed.notes
    same = Trainer(_with_multipliers(l1=0.1), data=digits_data)
    same.load_state_dict(_saved(saved))
    same.setup()
    assert not any("resuming keeps" in note for note in same.notes)


def test_batchnorm_unfrozen_by_the_schedule_trains_its_scale_but_keeps_its_statistics(digits_data):
    project = small_project(training__epochs=2)
    project.model.layers.insert(2, Layer("BatchNorm1d", frozen=True))
    project.model.layers[1].frozen = True
    project.training.fine_tune = {"head_epochs": 1, "unfreeze": "all", "lr_factor": 0.5}
    trainer = Trainer(project, data=digits_data)
    trainer.setup()
    norm = trainer.model[2]
    norm.running_mean.fill_(0.25)  # as a pretrained network's statistics would be
    statistics = norm.running_mean.clone(), norm.running_var.clone()
    scale = norm.weight.detach().clone()
    trainer.fit()
    assert norm.weight.requires_grad and not torch.equal(norm.weight.detach(), scale)
    assert torch.equal(norm.running_mean, statistics[0]) and torch.equal(norm.running_var, statistics[1])
