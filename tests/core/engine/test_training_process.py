"""Training in a child process: the events it reports, the commands it
obeys, and how it ends when something goes wrong."""

import json
import os
import signal
import time

import pytest
import torch

from guidl.engine import training_process as tp
from guidl.engine.data import prepare
from guidl.engine.trainer import Trainer
from guidl.spec import Data
from guidl.engine.threads import OtherLoad, ThreadTuner, can_follow_load, cores
from helpers import busy_program, small_graph_project, small_project


def start(project, data, run_dir=None):
    process = tp.TrainingProcess(tp.Job(project, data, run_dir, None))
    process.start()
    return process


def next_event(events, kind):
    """The next event of ``kind`` (failing on a failure event)."""
    for event in events:
        assert event[0] != "failed", event
        if event[0] == kind:
            return event
    raise AssertionError(f"no {kind!r} event")


def long_run(shared_digits, run_dir=None):
    """A run of 200 small-batch epochs, once it has reported its first batches."""
    project, data = shared_digits
    project.training.epochs, project.data.batch_size = 200, 16
    process = start(project, data, run_dir)
    events = process.events()
    next_event(events, "batches")
    return process, events


@pytest.fixture
def shared_digits():
    project = small_project()
    data = tp.share(prepare(project, seed=project.training.seed), in_place=True)
    return project, data


def test_a_child_process_trains_and_reports_every_event(shared_digits):
    project, data = shared_digits
    project.training.epochs = 3
    assert data.train.x.is_shared() and data.val.y.is_shared()
    process = start(project, data)
    events = list(process.events())
    process.close()
    assert process.process.exitcode == 0
    kinds = [e[0] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert events[0][1]["epochs"] == 3 and events[0][1]["batches"] == 23
    assert events[0][1]["threads"] == torch.get_num_threads()  # torch's choice, unless told
    assert [e[1]["epoch"] for e in events if e[0] == "epoch"] == [1, 2, 3]
    xs = torch.cat([torch.as_tensor(e[1]) for e in events if e[0] == "batches"])
    assert len(xs) == 3 * 23 and bool((xs.diff() > 0).all())  # every batch loss, in order
    for _, x, _, progress in (e for e in events if e[0] == "batches"):
        # The progress said with each bundle is where its last loss was trained,
        # the bundle sent at an epoch's end included.
        assert x[-1] == pytest.approx(progress["epoch"] + progress["batch"] / 23)
    outcome = events[-1][1]
    assert outcome["step"] == 69 and len(outcome["samples"]) == 24
    assert outcome["result"].history[-1].val_accuracy > 0.85
    # The weights sent back are the trained model's: evaluated here, they
    # score exactly what the child reported.
    trainer = Trainer(project, data=data, initial_weights=tp.load_weights(outcome["weights"]))
    trainer.setup()
    assert trainer.evaluate("val").accuracy == outcome["result"].evaluation.accuracy


def test_a_graph_project_trains_in_the_child(shared_digits):
    _, data = shared_digits
    project = small_graph_project(unused_branch=True, training__epochs=1)
    process = start(project, data)
    events = list(process.events())
    process.close()
    outcome = events[-1]
    assert outcome[0] == "finished", outcome
    assert any("'aux'" in note for note in events[0][1]["notes"])
    weights = tp.load_weights(outcome[1]["weights"])
    assert "res.conv1.weight" in weights and "shortcut.weight" in weights
    trainer = Trainer(project, data=data, initial_weights=weights)
    trainer.setup()
    assert trainer.evaluate("val").accuracy == outcome[1]["result"].evaluation.accuracy > 0.8


def test_pause_resume_and_stop_reach_the_child(shared_digits, tmp_path):
    process, events = long_run(shared_digits, tmp_path / "run")
    process.pause()
    last = None
    for event in events:
        if event[0] == "paused":
            paused_at = event[1]
            break
        last = event if event[0] == "batches" else last
    # The losses flushed at the pause say where the run stands (unless every
    # loss had just been sent, a batch's chance in about forty).
    if last is not None:
        progress = last[3]
        assert last[1][-1] == pytest.approx(progress["epoch"] + progress["batch"] / progress["batches"])
        assert progress["step"] == paused_at
    assert not process._events.poll(0.5), "a paused run must not report batches"
    process.resume()
    next_event(events, "resumed")
    assert next_event(events, "batches")[3]["step"] > paused_at
    next_event(events, "epoch")  # a checkpoint is written at each epoch's end
    process.stop()
    outcome = next_event(events, "finished")[1]
    process.close()
    assert outcome["result"].stopped and outcome["result"].stop_reason == "stopped by the user"
    # A killed child is then reported with the checkpoint it leaves.
    assert process._kept() == f"the last epoch's checkpoint is kept in {tmp_path / 'run'}"
    assert (tmp_path / "run" / "checkpoint.pt").exists() and outcome["result"].history


def test_the_window_s_run_on_an_idle_machine_gives_the_numbers_of_a_headless_one(shared_digits):
    if can_follow_load():
        load = OtherLoad()
        time.sleep(0.5)
        if load() > 0.3:
            pytest.skip("other programs keep this machine busy: the run may use fewer threads")
    project, data = shared_digits
    project.training.epochs = 2
    process = tp.TrainingProcess(tp.Job(project, data, None, None, tune_threads=True,
                                        window_pid=os.getpid(), nice=3))
    process.start()
    outcome = next_event(process.events(), "finished")[1]
    process.close()
    headless = Trainer(project, data=data)
    headless.fit()
    # One thread count from start to end (this process's load is the
    # window's, not another program's): the same numbers, to the last bit.
    assert outcome["threads"] is None or outcome["threads"]["decisions"] == []
    weights = tp.load_weights(outcome["weights"])
    assert all(torch.equal(weights[k], v) for k, v in headless.model.state_dict().items())


@pytest.mark.skipif(not can_follow_load() or ThreadTuner(load=lambda: None).most < 2
                    or ThreadTuner(load=lambda: None).most < cores(),
                    reason="needs Linux's /proc, two cores or more, and a torch thread for each")
def test_the_window_s_run_is_niced_and_gives_a_busy_program_its_core(shared_digits):
    project, data = shared_digits
    project.training.epochs, project.data.batch_size = 200, 16
    with busy_program():
        process = tp.TrainingProcess(tp.Job(project, data, None, None, tune_threads=True,
                                            window_pid=os.getpid(), nice=3))
        process.start()
        events = process.events()
        next_event(events, "batches")
        # Its threads inherit its niceness: the window gets a core first.
        assert os.getpriority(os.PRIO_PROCESS, process.process.pid) == \
            os.getpriority(os.PRIO_PROCESS, 0) + 3
        started = time.monotonic()
        for event in events:  # two seconds of training: two samples of the load, and more
            if event[0] == "epoch" and time.monotonic() - started > 3:
                break
        process.stop()
        outcome = next_event(events, "finished")[1]
        process.close()
    threads = outcome["threads"]
    assert threads["most"] == torch.get_num_threads()
    assert threads["decisions"] and threads["decisions"][0][2] == threads["most"] - 1
    assert any("other programs kept the CPU busy" in note for note in outcome["notes"])


def test_the_child_stops_when_the_window_stops_listening(shared_digits):
    process, events = long_run(shared_digits)
    process._commands.close()  # as when the window's process is gone
    process._commands = None
    outcome = next_event(events, "finished")[1]
    process.close(timeout_s=30)
    assert outcome["result"].stopped and process.process.exitcode == 0


def test_a_child_that_dies_is_reported_not_waited_for(shared_digits, tmp_path):
    process, events = long_run(shared_digits, tmp_path / "run")
    os.kill(process.process.pid, signal.SIGKILL)
    last = [e for e in events][-1]
    process.close()
    assert last[0] == "failed"
    assert "ended unexpectedly" in last[1] and "SIGKILL" in last[1] and "out of memory" in last[1]
    assert "no epoch had ended, so there is no checkpoint" in last[1]
    # The run folder says so too (it said "running" when the process died).
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "failed" and "killed by SIGKILL" in run["error"]


def test_a_dataset_problem_in_the_child_is_explained(tmp_path):
    project = small_project(data=Data("csv", {"path": str(tmp_path / "missing.csv")}))
    process = start(project, None)  # the child prepares the data itself
    events = list(process.events())
    process.close()
    assert events[-1][0] == "failed" and "missing.csv" in events[-1][1]
    assert "no such file" in events[-1][1]


def test_data_too_big_for_shared_memory_is_not_shared(monkeypatch):
    data = prepare(small_project())
    monkeypatch.setattr(tp, "shm_free_bytes", lambda: 1000)
    assert tp.share(data) is None and not data.train.x.is_shared()
    monkeypatch.setattr(tp, "shm_free_bytes", lambda: None)  # unknown: try
    assert tp.share(data, in_place=True) is data and data.train.x.is_shared()


def test_sharing_copies_data_that_others_may_be_reading():
    data = prepare(small_project())
    view = data.train.x.numpy()  # e.g. a preview taken earlier
    shared = tp.share(data)
    assert shared.train.x.is_shared() and shared.val.y.is_shared() and not data.train.x.is_shared()
    assert torch.equal(shared.train.x, data.train.x) and torch.equal(shared.val.y, data.val.y)
    data.train.x[0] += 1  # the original (and its view) are untouched by the sharing
    assert view[0].sum() == data.train.x[0].sum() and not torch.equal(shared.train.x[0], data.train.x[0])
    assert tp.share(shared) is shared  # shared already: used as it is


def test_initial_weights_reach_the_child(shared_digits):
    project, data = shared_digits
    source = Trainer(project, data=data, epochs=2)
    source.fit()
    project.training.epochs = 1
    project.training.optimizer.params["lr"] = 1e-30  # steps too small to change a float32 weight
    process = tp.TrainingProcess(tp.Job(project, data, None, tp.save_weights(source.model.state_dict())))
    process.start()
    outcome = list(process.events())[-1]
    process.close()
    assert outcome[0] == "finished", outcome
    assert outcome[1]["result"].evaluation.accuracy == source.evaluate("val").accuracy


def test_an_exit_is_described_in_words():
    assert tp.describe_exit(-signal.SIGKILL).startswith("killed by SIGKILL")
    assert tp.describe_exit(-signal.SIGSEGV) == "killed by SIGSEGV"
    assert tp.describe_exit(3) == "exit code 3"


def _bridge_on_a_fake_clock(monkeypatch, epochs: int, batches: int):
    """An EventBridge fed by a stand-in trainer on a clock the test moves:
    (clock, events sent, bridge, trainer), the fit started."""
    from types import SimpleNamespace

    clock = [0.0]
    monkeypatch.setattr(tp.time, "perf_counter", lambda: clock[0])
    sent = []
    bridge = tp.EventBridge(lambda kind, *values: sent.append((kind, *values)))
    trainer = SimpleNamespace(epochs=epochs, batches_per_epoch=batches, epoch=0, step=0, batch_size=10,
                              info=SimpleNamespace(task="classification"), device="cpu", notes=[],
                              history=[])
    bridge.on_fit_start(trainer)
    return clock, sent, bridge, trainer


def test_time_spent_paused_does_not_count_in_the_speed_and_eta(monkeypatch):
    clock, sent, bridge, trainer = _bridge_on_a_fake_clock(monkeypatch, epochs=1, batches=100)
    for batch in range(10):  # 10 batches in 1 s: 100 samples/s
        clock[0] += 0.1
        trainer.step += 1
        bridge.on_train_batch_end(trainer, batch, 1.0)
    bridge.on_pause(trainer)
    clock[0] += 100.0  # paused for 100 s
    bridge.on_resume(trainer)
    for batch in range(10, 20):
        clock[0] += 0.1
        trainer.step += 1
        bridge.on_train_batch_end(trainer, batch, 1.0)
    progress = [e for e in sent if e[0] == "batches"][-1][3]
    assert progress["samples_per_s"] == pytest.approx(100.0)
    assert progress["eta"] == pytest.approx(8.0)  # 80 batches left at 10 a second


def test_the_fork_server_starts_with_torch_warmed_up():
    """What the server imports before forking: the engine, what torch imports
    on its first model (else each run pays a second or two for it), and the
    garbage collector's view frozen."""
    import subprocess
    import sys

    assert tp.context().get_start_method() == "forkserver"
    code = ("import gc, sys, guidl.engine.training_server; "
            "print('sympy' in sys.modules, 'guidl.engine.trainer' in sys.modules, gc.get_freeze_count() > 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "True", "True"]


def test_the_windows_eta_waits_for_the_warm_up(monkeypatch):
    clock, sent, bridge, trainer = _bridge_on_a_fake_clock(monkeypatch, epochs=2, batches=500)
    for batch in range(40):  # a first batch of 3 s (compiling), then 50 ms each
        clock[0] += 3.0 if batch == 0 else 0.05
        trainer.step += 1
        bridge.on_train_batch_end(trainer, batch, 1.0)
    progress = [e[3] for e in sent if e[0] == "batches"]
    assert progress[0]["eta"] is None  # not 999 x 3 s
    assert progress[-1]["eta"] == pytest.approx(960 * 0.05)
    assert progress[-1]["samples_per_s"] == pytest.approx(200.0)


def test_a_run_held_by_another_training_is_explained_without_a_traceback(tmp_path, capsys):
    from guidl.engine.runs import RunBusyError

    message = tp.failure_message(RunBusyError(tmp_path / "run"))
    assert message == f"{tmp_path / 'run'} is being trained by another process"
    assert "Traceback" not in capsys.readouterr().err
