"""Training in several processes, without starting any: the sharding, the
context torchrun's variables describe, and the trainer's agreements, with the
other process played by a fake (tests/e2e/test_train_distributed.py runs
torchrun for real)."""

import math
import socket

import pytest
import torch

from guidl.engine.callbacks import Callback
from guidl.engine.distributed import DistributedContext, DistributedSetupError, shard, shard_size
from guidl.engine.trainer import NonFiniteLossError, TrainControl, Trainer
from guidl.spec import Layer

from helpers import small_project

# -- sharding --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 8, 10, 1437])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 8])
def test_shards_split_the_epoch_evenly_padding_by_wrapping_around(n, world_size):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    shards = [shard(order, rank, world_size) for rank in range(world_size)]
    size = shard_size(n, world_size)
    assert all(len(s) == size for s in shards)  # the same number of batches everywhere
    joined = torch.cat(shards)
    # The permutation itself, in order, then its start again as padding.
    assert torch.equal(joined[:n], order)
    assert torch.equal(joined[n:], order.repeat(world_size)[:len(joined) - n])
    assert set(joined.tolist()) == set(range(n))
    if n % world_size == 0:
        assert len(joined) == n  # no sample twice


def test_one_process_takes_the_whole_permutation():
    order = torch.randperm(10)
    assert shard(order, 0, 1) is order and shard_size(10, 1) == 10


# -- the context from torchrun's environment --------------------------------------------

TWO = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


def test_no_torchrun_means_one_process():
    assert DistributedContext.from_environment("cpu", environ={}) is None
    assert DistributedContext.from_environment("cpu", environ={"WORLD_SIZE": "1", "RANK": "0"}) is None


def test_torchrun_variables_give_rank_world_size_and_gloo_on_the_cpu():
    context = DistributedContext.from_environment("cpu", environ=TWO)
    assert (context.rank, context.local_rank, context.world_size) == (1, 1, 2)
    assert context.backend == "gloo" and context.device == torch.device("cpu")
    assert not context.is_main


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_auto_means_the_cpu_without_a_gpu():
    context = DistributedContext.from_environment("auto", environ=TWO)
    assert context.backend == "gloo" and context.device.type == "cpu"


def test_more_processes_on_a_machine_than_gpus_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DistributedSetupError, match="started 2 processes on this machine but it "
                                                    "has 1 CUDA GPU"):
        DistributedContext.from_environment("cuda", environ=TWO)
    context = DistributedContext.from_environment("cuda:0", environ={**TWO, "LOCAL_WORLD_SIZE": "1",
                                                                     "LOCAL_RANK": "0"})
    assert context.device == torch.device("cuda", 0) and context.backend == "nccl"
    assert "cuda:LOCAL_RANK" in context.notes[0]


@pytest.mark.parametrize("device,backend,expected", [
    ("cpu", "nccl", "the nccl backend needs CUDA GPUs and this run trains on the CPU"),
    ("mps", "auto", "device 'mps' cannot train in several processes"),
    ("cpu", "mpi", "backend 'mpi' is not one of auto, gloo, nccl"),
])
def test_impossible_device_and_backend_pairs_are_explained(device, backend, expected):
    with pytest.raises(DistributedSetupError, match=expected):
        DistributedContext.from_environment(device, backend, environ=TWO)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_explained():
    with pytest.raises(DistributedSetupError, match="no usable CUDA GPU; train on the CPU"):
        DistributedContext.from_environment("cuda", environ=TWO)


def test_a_world_size_without_a_rank_asks_for_torchrun():
    with pytest.raises(DistributedSetupError, match="start the processes with torchrun"):
        DistributedContext.from_environment("cpu", environ={"WORLD_SIZE": "2"})


# -- the trainer, with the other process played by a fake ------------------------------


class FakeContext:
    """This process as ``rank`` of two; ``peer(values, op, call)`` gives the
    other process's values for the ``call``-th all-reduce (by default the
    same as this one's: a twin)."""

    backend = "fake"

    def __init__(self, rank=0, peer=None):
        self.rank = self.local_rank = rank
        self.world_size = self.local_world_size = 2
        self.device = torch.device("cpu")
        self.notes = []
        self.peer = peer or (lambda values, op, call: values)
        self.calls = []

    @property
    def is_main(self):
        return self.rank == 0

    def start(self): ...
    def close(self): ...

    def wrap(self, module):
        return module

    def all_reduce(self, values, op="sum"):
        self.calls.append((list(values), op))
        other = self.peer(list(values), op, len(self.calls))
        combine = {"sum": lambda a, b: a + b, "max": max, "min": min}[op]
        return [combine(a, b) for a, b in zip(values, other)]


def test_epoch_figures_add_up_over_the_processes(digits_data):
    context = FakeContext(rank=1)
    trainer = Trainer(small_project(training__epochs=1), data=digits_data, distributed=context)
    result = trainer.fit()
    # 1,437 training samples: 719 per process, 12 batches of 64.
    assert trainer.batches_per_epoch == 12 and trainer.step == 12
    sums = [values for values, op in context.calls if op == "sum"]
    assert len(sums) == 1 and sums[0][2] == 719
    loss_sum, correct, _ = sums[0]
    metrics = result.history[0]
    assert metrics.train_loss == pytest.approx(loss_sum / 719)
    assert metrics.train_accuracy == pytest.approx(correct / 719)
    assert metrics.samples_per_s * metrics.epoch_time == pytest.approx(2 * 719)


def test_a_non_finite_loss_in_another_process_raises_the_same_error_here(digits_data):
    def peer(values, op, call):
        if op == "max" and len(values) == 2:
            return [0.0, 1.0]  # that process saw a non-finite loss...
        if op == "min":
            return [3 * 3 + 1]  # ...first at batch 4 (0-based 3): inf
        return values

    trainer = Trainer(small_project(training__epochs=1, data__batch_size=16), data=digits_data,
                      distributed=FakeContext(peer=peer))
    with pytest.raises(NonFiniteLossError, match="the loss became inf at epoch 1, batch 4") as caught:
        trainer.fit()
    assert (caught.value.epoch, caught.value.batch) == (1, 4)
    assert "No epoch had finished, so there is no checkpoint" in str(caught.value)
    assert trainer.step == 16  # the processes compare notes every 16 batches


def test_a_stop_asked_of_another_process_stops_this_one_after_the_same_batch(digits_data):
    flags = []

    def peer(values, op, call):
        if op == "max" and len(values) == 2:
            flags.append(values)
            return [float(len(flags) == 2), 0.0]  # asked to stop before its 32nd batch
        return values

    control = TrainControl()
    trainer = Trainer(small_project(training__epochs=1, data__batch_size=16), data=digits_data,
                      control=control, distributed=FakeContext(peer=peer))
    result = trainer.fit()
    assert trainer.step == 32 and result.stopped and result.stop_reason == "stopped by the user"
    assert control.stop_requested  # so this process exits as the other does


def test_a_local_stop_waits_for_the_next_agreement(digits_data):
    control = TrainControl()

    class StopAtOnce(Callback):
        def on_epoch_start(self, trainer, epoch_index):
            control.request_stop()

    trainer = Trainer(small_project(training__epochs=1, data__batch_size=16), data=digits_data,
                      control=control, callbacks=[StopAtOnce()], distributed=FakeContext())
    result = trainer.fit()
    # The processes compare notes every 16 batches: all of them stop there.
    assert trainer.step == 16 and result.stopped and result.history == []


def test_a_resumed_process_draws_what_the_uninterrupted_one_did(digits_data):
    # Dropout, augmentation and the shard depend on the rank: take process 1 of 2.
    project = small_project(training__epochs=4, data__augment={"crop_padding": 1})
    whole = Trainer(project, data=digits_data, distributed=FakeContext(rank=1)).fit()
    first = Trainer(small_project(training__epochs=2, data__augment={"crop_padding": 1}),
                    data=digits_data, distributed=FakeContext(rank=1))
    first.fit()
    resumed = Trainer(project, data=digits_data, distributed=FakeContext(rank=1))
    resumed.load_state_dict(first.state_dict())
    result = resumed.fit()
    for a, b in zip(whole.history, result.history):
        assert (a.train_loss, a.val_loss, a.train_accuracy) == (b.train_loss, b.val_loss, b.train_accuracy)


def test_processes_draw_different_dropout_masks(digits_data):
    losses = []
    for rank in (0, 1):
        context = FakeContext(rank=rank)
        trainer = Trainer(small_project(training__epochs=1), data=digits_data, distributed=context)
        trainer.setup()
        trainer._shard_order(len(digits_data.train), 0)
        losses.append(torch.nn.functional.dropout(torch.ones(100), 0.5))
    assert not torch.equal(*losses)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_data_parallel_in_one_process_matches_the_plain_loop(digits_data, monkeypatch):
    """A real gloo process group of one: the wrapped model trains as the
    plain one does, and its state has no ``module.`` prefixes."""
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    project = small_project(training__epochs=2, model__layers=[  # no dropout: the same draws
        Layer("Flatten"), Layer("Linear", {"out_features": 32}), Layer("ReLU"),
        Layer("Linear", {"out_features": 10})])
    plain = Trainer(project, data=digits_data)
    expected = plain.fit()
    context = DistributedContext(0, 0, 1, 1, "gloo", torch.device("cpu"))
    context.start()
    try:
        trainer = Trainer(project, data=digits_data, distributed=context)
        result = trainer.fit()
        assert type(trainer._train_model).__name__ == "DistributedDataParallel"
    finally:
        context.close()
    assert not torch.distributed.is_initialized()
    for a, b in zip(expected.history, result.history):
        assert math.isclose(a.train_loss, b.train_loss, rel_tol=1e-6)
        assert math.isclose(a.val_loss, b.val_loss, rel_tol=1e-6)
    state = trainer.state_dict()["model"]
    assert state.keys() == plain.state_dict()["model"].keys()
    assert not any(key.startswith("module.") for key in state)
