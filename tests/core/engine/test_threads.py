"""The thread tuner: it keeps the count that trains fastest now, follows a
machine whose load changes, gives up quickly on a count that stalls, and
leaves no trace after the run. Batches are simulated on a clock of our own:
each takes the time its thread count is given."""

from types import SimpleNamespace

import pytest
import torch

from guidl.engine.threads import ThreadTuner, thread_candidates


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def trainer(device="cpu"):
    return SimpleNamespace(device=torch.device(device), distributed=None, batch_size=100)


def train(tuner, clock, batches, seconds, run=None):
    """``batches`` batches, each taking ``seconds[threads]`` with the count in
    force when it starts; returns how many ran with each count."""
    run = run or trainer()
    counts = {}
    for batch in range(batches):
        threads = torch.get_num_threads()
        counts[threads] = counts.get(threads, 0) + 1
        clock.now += seconds[threads]
        tuner.on_train_batch_end(run, batch, 0.5)
    return counts


def started(clock, **options):
    torch.set_num_threads(2)
    tuner = ThreadTuner([2, 1], clock=clock, **options)
    tuner.on_fit_start(trainer())
    return tuner


def test_the_faster_count_is_chosen_and_kept():
    clock = Clock()
    tuner = started(clock)
    counts = train(tuner, clock, 2000, {2: 0.002, 1: 0.001})
    assert tuner.choice == 1 and torch.get_num_threads() == 1
    assert tuner.rates[1] == pytest.approx(100_000) and tuner.rates[2] == pytest.approx(50_000)
    # Trials are short next to the time spent with the choice.
    assert counts[1] > 10 * counts[2]


def test_the_choice_follows_a_machine_whose_load_changes():
    clock = Clock()
    tuner = started(clock)
    train(tuner, clock, 3000, {2: 0.001, 1: 0.002})  # an idle machine: every core
    assert tuner.choice == 2
    holds = []
    for _ in range(3):  # the same winner: each hold twice the last
        holds.append(tuner.hold_s)
        train(tuner, clock, int(tuner.hold_s / 0.001) + 800, {2: 0.001, 1: 0.002})
    assert tuner.choice == 2 and holds == sorted(holds) and holds[-1] > holds[0]
    # Another program takes a core: both threads wait for it at every step.
    longest = tuner.hold_s
    for _ in range(100_000):
        train(tuner, clock, 1, {2: 0.02, 1: 0.002})
        if tuner.choice == 1:
            break
    assert torch.get_num_threads() == 1
    assert tuner.hold_s < longest  # a new winner is checked again soon
    train(tuner, clock, 20_000, {2: 0.02, 1: 0.002})
    assert tuner.choice == 1 and [count for _, count in tuner.decisions][-1] == 1


def test_a_count_that_stalls_is_given_up_after_one_measured_batch():
    clock = Clock()
    tuner = started(clock)
    counts = train(tuner, clock, 400, {2: 1.0, 1: 0.001})
    # The first trial tries 1 thread first, then 2: one batch to start it,
    # one measured, then back to 1 for good.
    assert tuner.choice == 1 and counts[2] == 2
    assert tuner.rates[2] == pytest.approx(100)


def test_time_outside_batches_is_not_measured():
    clock = Clock()
    tuner = started(clock)
    run = trainer()
    train(tuner, clock, 10, {2: 0.001, 1: 0.002}, run)  # trying 1 thread
    clock.now += 50.0  # an epoch's validation and checkpoint
    tuner.on_epoch_start(run, 1)
    train(tuner, clock, 10, {2: 0.001, 1: 0.002}, run)
    tuner.on_pause(run)
    clock.now += 500.0  # paused
    tuner.on_resume(run)
    train(tuner, clock, 2000, {2: 0.001, 1: 0.002}, run)
    assert tuner.choice == 2 and tuner.rates[1] == pytest.approx(50_000)


def test_the_threads_are_put_back_after_the_run_and_left_alone_on_a_gpu():
    clock = Clock()
    tuner = started(clock)
    train(tuner, clock, 1000, {2: 0.002, 1: 0.001})
    assert torch.get_num_threads() == 1
    tuner.on_fit_end(trainer(), None)
    assert torch.get_num_threads() == 2

    gpu = ThreadTuner([2, 1], clock=clock)
    gpu.on_fit_start(trainer("meta"))
    train(gpu, clock, 1000, {2: 0.002, 1: 0.001})
    assert not gpu.enabled and torch.get_num_threads() == 2 and gpu.decisions == []


def test_candidates():
    assert thread_candidates(16) == [16, 15, 8]
    assert thread_candidates(2) == [2, 1]
    assert thread_candidates(1) == [1]
    assert not ThreadTuner([1]).enabled  # nothing to choose
    with pytest.raises(ValueError):
        ThreadTuner([0])
