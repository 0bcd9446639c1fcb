"""The thread tuner: every core on an idle machine, one fewer for each core
another program keeps busy (after two samples that agree), a note when it
changed anything, and the process's setting put back after the run. The load
and the clock are our own here; a real busy program is in
test_training_process.py and test_train_cli.py."""

import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch

from guidl.engine.threads import OtherLoad, ThreadTuner
from helpers import busy_program


class Machine:
    """A clock and the load other programs put on the machine."""

    def __init__(self):
        self.now = 100.0
        self.others = 0.0

    def clock(self):
        return self.now

    def load(self):
        return self.others


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def trainer(device="cpu"):
    return SimpleNamespace(device=torch.device(device), distributed=None, epoch=0, notes=[])


def train(tuner, machine, seconds, run, batch_s=0.01):
    """Batches for ``seconds``; returns the thread counts they ran with."""
    counts = []
    for batch in range(int(seconds / batch_s)):
        counts.append(torch.get_num_threads())
        machine.now += batch_s
        tuner.on_train_batch_end(run, batch, 0.5)
    return counts


def test_an_idle_machine_trains_with_every_thread_throughout():
    machine, run = Machine(), trainer()
    torch.set_num_threads(1)
    tuner = ThreadTuner(most=4, load=machine.load, clock=machine.clock, available=4)
    tuner.on_fit_start(run)
    machine.others = 0.3  # the window painting, a terminal: below half a core
    assert set(train(tuner, machine, 30, run)) == {4}
    tuner.on_train_end(run, None)
    tuner.on_fit_end(run, None)
    assert tuner.decisions == [] and run.notes == []
    assert torch.get_num_threads() == 1  # the process's own setting, back


def test_threads_follow_the_cores_other_programs_hold():
    machine, run = Machine(), trainer()
    tuner = ThreadTuner(most=4, load=machine.load, clock=machine.clock, available=4)
    tuner.on_fit_start(run)
    train(tuner, machine, 5, run)
    machine.others = 1.0  # one busy program
    counts = train(tuner, machine, 5, run)
    # Two samples, half a second apart, must agree before the count changes.
    assert counts[:50] == [4] * 50 and counts[-1] == 3
    machine.others = 0.5  # half a core: not enough to take the thread back
    assert set(train(tuner, machine, 5, run)) == {3}
    machine.others = 2.2  # two
    run.epoch = 3
    assert train(tuner, machine, 5, run)[-1] == 2
    machine.others = 0.1  # both gone
    assert train(tuner, machine, 5, run)[-1] == 4
    assert [(epoch, count) for _, epoch, count in tuner.decisions] == [(1, 3), (4, 2), (4, 4)]
    tuner.on_train_end(run, None)
    assert len(run.notes) == 1
    assert "part of it trained with 2 threads instead of 4 (3 changes, the first in epoch 1)" in run.notes[0]


def test_a_moment_of_load_changes_nothing_and_a_pause_is_not_measured():
    machine, run = Machine(), trainer()
    tuner = ThreadTuner(most=2, load=machine.load, clock=machine.clock, available=2)
    tuner.on_fit_start(run)
    for _ in range(10):  # a program starting: one busy sample at a time
        machine.others = 1.0
        train(tuner, machine, 0.5, run)
        machine.others = 0.0
        train(tuner, machine, 0.5, run)
    assert tuner.decisions == []
    machine.others = 1.0
    train(tuner, machine, 0.6, run)  # one busy sample...
    tuner.on_pause(run)
    tuner.on_resume(run)  # ...then a pause: training starts counting again
    assert set(train(tuner, machine, 0.6, run)) == {2}
    assert train(tuner, machine, 1, run)[-1] == 1


def test_a_gpu_run_a_distributed_one_and_a_single_core_are_left_alone():
    machine = Machine()
    machine.others = 1.5
    torch.set_num_threads(2)
    for run, most in ((trainer("meta"), 2), (SimpleNamespace(**{**vars(trainer()), "distributed": object()}), 2),
                      (trainer(), 1)):
        tuner = ThreadTuner(most=most, load=machine.load, clock=machine.clock, available=2)
        tuner.on_fit_start(run)
        assert set(train(tuner, machine, 5, run)) == {2} and not tuner.enabled


def _quiet(load, during=lambda: time.sleep(1.0), tries: int = 3) -> float:
    """The lowest of a few readings of ``load``, each over a window in which
    ``during`` runs (what must not count as others' load): a program the
    machine starts meanwhile (another test run, a cron job) rarely stays for
    three windows, and what the test checks is in every one of them."""
    lowest = 1e9
    for _ in range(tries):
        load.restart()
        during()
        lowest = min(lowest, load())
        if lowest < 0.3:
            break
    return lowest


def _busy_here(seconds: float = 0.4) -> None:
    started = time.process_time()
    while time.process_time() - started < seconds:  # this process busy: not "others"
        pass


def test_other_programs_load_is_measured_without_our_own_nor_our_children():
    if not os.path.exists("/proc/stat"):
        pytest.skip("the load of other programs is read from Linux's /proc")
    load = OtherLoad()
    time.sleep(0.5)
    if load() > 0.3:
        pytest.skip("other programs keep this machine busy: nothing to compare with")
    assert _quiet(load, during=_busy_here) < 0.3
    if len(os.sched_getaffinity(0)) < 2:
        return
    with busy_program() as pid:
        load.restart()
        time.sleep(1.0)
        assert 0.7 < load() < 1.3
        ignoring = OtherLoad(ignore=(pid,))  # as the window's own load
        assert _quiet(ignoring) < 0.3
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # e.g. a compiler worker
    try:
        own = OtherLoad()
        assert _quiet(own) < 0.3
    finally:
        child.kill()
        child.wait()
