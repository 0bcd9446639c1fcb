import threading

import pytest
import torch

from guidl.engine.callbacks import Callback, EarlyStopping, RunFolder
from guidl.engine.trainer import (
    NonFiniteLossError, TrainControl, Trainer, TrainingError, resolve_device,
)
from guidl.registry import SCHEDULERS
from guidl.spec import Component, Layer, ProjectError

from helpers import small_project


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            calls = object.__getattribute__(self, "calls")
            return lambda trainer, *args: calls.append(name)
        return object.__getattribute__(self, name)


def test_hooks_are_called_in_order(digits_data):
    project = small_project(training__epochs=2, data__batch_size=1000)
    recorder = Recorder()
    Trainer(project, data=digits_data, callbacks=[recorder]).fit()
    # 1,437 training samples in batches of 1,000: two batches per epoch.
    epoch = ["on_epoch_start", "on_train_batch_end", "on_train_batch_end", "on_validation_end",
             "on_epoch_end", "on_checkpoint"]
    assert recorder.calls == ["on_fit_start", *epoch, *epoch, "on_train_end", "on_fit_end"]


def test_the_mnist_cnn_example_reaches_95_percent_in_3_epochs(mnist_project, mnist_data):
    result = Trainer(mnist_project, data=mnist_data, epochs=3, device="cpu").fit()
    assert len(result.history) == 3
    assert result.history[-1].val_accuracy >= 0.95, [m.val_accuracy for m in result.history]
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.evaluation_split == "val"  # mnist_sample has no test split of its own
    assert result.evaluation.accuracy == pytest.approx(result.history[-1].val_accuracy)
    assert len(result.evaluation.confusion) == 10
    assert sum(map(sum, result.evaluation.confusion)) == 500


def test_the_moons_example_reaches_95_percent(root):
    from guidl import spec

    result = Trainer(spec.load(root / "examples/moons_mlp.guidl.json"), device="cpu").fit()
    assert result.history[-1].val_accuracy >= 0.95


def test_the_lstm_example_loss_falls_within_one_epoch(root):
    from guidl import spec

    project = spec.load(root / "examples/char_lstm.guidl.json")
    project.data.params.update(max_samples=4000, stride=3)
    losses = []

    class Losses(Callback):
        def on_train_batch_end(self, trainer, batch, loss):
            losses.append(loss)

    Trainer(project, callbacks=[Losses()], epochs=1, device="cpu").fit()
    assert len(losses) == 57  # 3,600 training samples in batches of 64
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert first > 4.0 and last < 0.75 * first, (first, last)


def test_same_seed_same_numbers(digits_data):
    a = Trainer(small_project(training__epochs=2), data=digits_data).fit()
    b = Trainer(small_project(training__epochs=2), data=digits_data).fit()
    assert [m.train_loss for m in a.history] == [m.train_loss for m in b.history]
    c = Trainer(small_project(training__epochs=2, training__seed=4), data=digits_data).fit()
    assert c.history[-1].train_loss != a.history[-1].train_loss


def test_stop_halts_within_one_batch(digits_data):
    control = TrainControl()

    class StopAtThirdBatch(Callback):
        def on_train_batch_end(self, trainer, batch, loss):
            if batch == 2:
                control.request_stop()

    trainer = Trainer(small_project(data__batch_size=16), data=digits_data, control=control,
                      callbacks=[StopAtThirdBatch()])
    result = trainer.fit()
    assert trainer.step == 3
    assert result.stopped and result.stop_reason == "stopped by the user"
    assert result.history == []  # a stopped epoch leaves no half-counted metrics


def test_pause_and_resume_from_another_thread(digits_data):
    control = TrainControl()
    paused_at = threading.Event()

    class PauseOnce(Callback):
        def on_train_batch_end(self, trainer, batch, loss):
            if trainer.step == 5 and not paused_at.is_set():
                control.pause()
                paused_at.set()

    trainer = Trainer(small_project(training__epochs=1, data__batch_size=16), data=digits_data,
                      control=control, callbacks=[PauseOnce()])
    worker = threading.Thread(target=trainer.fit)
    worker.start()
    assert paused_at.wait(30)
    worker.join(0.3)
    assert worker.is_alive() and control.paused and trainer.step == 5
    control.resume()
    worker.join(30)
    assert not worker.is_alive()
    assert trainer.step == trainer.batches_per_epoch and len(trainer.history) == 1


def test_non_finite_loss_names_epoch_batch_and_layer_and_keeps_the_checkpoint(tmp_path, digits_data):
    class Explode(Callback):
        def on_epoch_start(self, trainer, epoch_index):
            if epoch_index == 1:
                for group in trainer.optimizer.param_groups:
                    group["lr"] = 1e30

    project = small_project(training__optimizer=Component("SGD", {"lr": 0.01}), training__scheduler=None)
    trainer = Trainer(project, data=digits_data, callbacks=[Explode(), RunFolder(tmp_path)])
    with pytest.raises(NonFiniteLossError) as caught:
        trainer.fit()
    error = caught.value
    assert error.epoch == 2 and error.batch >= 2
    assert f"at epoch 2, batch {error.batch}" in str(error)
    assert "Lower the learning rate" in str(error)
    assert "The checkpoint of epoch 1 is kept." in str(error)
    assert error.layer is not None and f"layer {error.layer} (" in str(error)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    import json

    run = json.loads((tmp_path / "run.json").read_text())
    assert run["status"] == "failed" and "epoch 2" in run["error"]


@pytest.mark.parametrize("changes,expected", [
    ({"model__layers": [Layer("Flatten"), Layer("Linear", {"out_features": 12})]},
     "CrossEntropyLoss needs one score per class, (10,), but the model gives (12,) for 10 classes: "
     "set out_features of layer 1 (Linear) to 10"),
    ({"training__loss": Component("MSELoss")},
     "MSELoss compares numbers, but dataset 'digits' has class labels: use CrossEntropyLoss"),
    ({"training__loss": Component("BCELoss")}, "BCELoss needs probabilities between 0 and 1"),
    ({"model__input_shape": [1, 28, 28]}, "model.input_shape: is [1, 28, 28] but dataset 'digits' gives [1, 8, 8]"),
])
def test_loss_model_and_data_are_checked_before_the_first_batch(digits_data, changes, expected):
    trainer = Trainer(small_project(**changes), data=digits_data)
    with pytest.raises(ProjectError) as caught:
        trainer.fit()
    assert any(expected in str(p) for p in caught.value.problems), caught.value.problems
    assert trainer.step == 0


def test_early_stopping_stops_and_restores_the_best_weights(digits_data):
    snapshots = {}

    class Snapshot(Callback):
        def on_epoch_end(self, trainer, metrics):
            snapshots[metrics.epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    # Demanding an improvement of 100% accuracy can only be met by the first epoch.
    stopper = EarlyStopping("val_accuracy", patience=2, min_delta=1.0, restore_best=True)
    trainer = Trainer(small_project(training__epochs=10), data=digits_data,
                      callbacks=[Snapshot(), stopper])
    result = trainer.fit()
    assert len(result.history) == 3 and result.stopped
    assert result.stop_reason.startswith("early stopping: val_accuracy has not improved for 2 epoch(s)")
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, snapshots[1][key])
    assert any("restored the weights of epoch 1" in note for note in trainer.notes)


@pytest.mark.parametrize("entry", list(SCHEDULERS), ids=lambda e: e.name)
def test_every_scheduler_trains_and_its_state_survives_a_safe_load(entry, digits_data, tmp_path):
    project = small_project(training__epochs=2, training__scheduler=Component(entry.name, entry.initial_params()))
    trainer = Trainer(project, data=digits_data)
    trainer.fit()
    torch.save(trainer.state_dict(), tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["scheduler"].keys() == trainer.scheduler.state_dict().keys()


def test_regression_on_a_csv_trains_and_reports_r2(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 0.1 * rng.normal(size=400)
    lines = ["a,b,c,target"] + [f"{r[0]:.5f},{r[1]:.5f},{r[2]:.5f},{t:.5f}" for r, t in zip(x, y)]
    (tmp_path / "table.csv").write_text("\n".join(lines) + "\n")
    from guidl.spec import Data, Model

    project = small_project(
        model=Model([Layer("Linear", {"out_features": 16}), Layer("ReLU"), Layer("Linear", {"out_features": 1})]),
        data=Data("csv", {"path": str(tmp_path / "table.csv")}, val_fraction=0.2, batch_size=32),
        training__loss=Component("MSELoss"), training__epochs=20, training__scheduler=None,
        training__optimizer=Component("Adam", {"lr": 0.01}))
    result = Trainer(project).fit()
    assert result.history[-1].val_mae is not None and result.history[-1].train_accuracy is None
    assert result.evaluation.r2 > 0.9


def test_unavailable_devices_are_explained():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(TrainingError, match=r"device 'cuda' is not available.*available: cpu"):
        resolve_device("cuda")
    assert resolve_device("auto").type in ("cpu", "mps")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cuda(digits_data, precision):
    result = Trainer(small_project(training__precision=precision, training__device="cuda"),
                     data=digits_data).fit()
    assert result.history[-1].val_accuracy > 0.85


def test_the_checkpoint_holds_early_stopping_state_after_its_update(tmp_path, digits_data):
    stopper = EarlyStopping("val_loss", patience=3)
    # RunFolder first: the checkpoint must still see early stopping's update of the same epoch.
    trainer = Trainer(small_project(training__epochs=2), data=digits_data,
                      callbacks=[RunFolder(tmp_path), stopper])
    trainer.fit()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["callbacks"]["early_stopping"]["best_epoch"] == stopper.best_epoch == 2


def test_torch_argument_errors_name_the_part_of_the_project(digits_data):
    # Validation cannot see this one: it depends on the optimizer the schedule drives.
    project = small_project(training__optimizer=Component("Adagrad", {"lr": 0.1}),
                            training__scheduler=Component("OneCycleLR", {"max_lr": 0.1}))
    assert not project.problems()
    with pytest.raises(ProjectError) as caught:
        Trainer(project, data=digits_data).fit()
    problem = caught.value.problems[0]
    assert problem.path == "training.scheduler"
    assert problem.message.startswith("OneCycleLR cannot be used with these parameters: optimizer "
                                      "must support momentum")


def test_a_one_cycle_schedule_shorter_than_the_run_is_refused(digits_data, tmp_path):
    project = small_project(training__scheduler=Component("OneCycleLR", {"max_lr": 0.01, "total_steps": 10}))
    with pytest.raises(ProjectError, match="OneCycleLR plans 10 steps but 4 epochs of 23 batches take 92"):
        Trainer(project, data=digits_data).fit()
    project = small_project(training__epochs=2, training__scheduler=Component("OneCycleLR", {"max_lr": 0.01}))
    first = Trainer(project, data=digits_data, callbacks=[RunFolder(tmp_path)])
    first.fit()
    longer = Trainer(project, data=digits_data, epochs=4)
    longer.load_state_dict(torch.load(tmp_path / "checkpoint.pt", weights_only=True))
    with pytest.raises(TrainingError, match="this run cannot go on for 4 epochs: OneCycleLR plans 46 steps"):
        longer.fit()


def test_reduce_on_plateau_in_max_mode_watches_accuracy(digits_data):
    project = small_project(training__scheduler=Component("ReduceLROnPlateau", {"mode": "max", "patience": 0}),
                            training__epochs=3)
    seen = []

    class Watch(Callback):
        def on_epoch_end(self, trainer, metrics):
            seen.append((metrics.val_accuracy, trainer.optimizer.param_groups[0]["lr"]))

    Trainer(project, data=digits_data, callbacks=[Watch()]).fit()
    # the learning rate only drops after an epoch whose accuracy did not rise
    for (acc_before, _), (acc, lr_after) in zip(seen, seen[1:]):
        if acc > acc_before:
            assert lr_after == pytest.approx(seen[0][1])


def test_gradient_clipping_bounds_each_step(digits_data):
    def first_step_change(grad_clip):
        project = small_project(training__epochs=1, training__grad_clip=grad_clip, training__scheduler=None,
                                training__optimizer=Component("SGD", {"lr": 1.0}))
        trainer = Trainer(project, data=digits_data)
        trainer.setup()
        before = [p.detach().clone() for p in trainer.model.parameters()]
        x, y = trainer.data.train.x[:64], trainer.data.train.y[:64]
        trainer._train_step(x, y)
        return sum(float((p.detach() - b).pow(2).sum()) for p, b in zip(trainer.model.parameters(), before)) ** 0.5

    # With SGD at lr 1, a step moves the weights by exactly the (clipped) gradient norm.
    assert first_step_change(0.01) == pytest.approx(0.01, rel=1e-4)
    assert first_step_change(None) > 0.1
