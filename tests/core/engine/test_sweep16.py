"""engine.sweep: Optuna studies whose trials are run folders; pruning, the exact
budget, failures, a dead worker's trial, Ctrl+C, storages (in one process)."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import psutil
import pytest
from optuna.trial import TrialState

from guidl.engine import sweep
from guidl.engine.callbacks import Callback
from guidl.engine.runs import read_run
from guidl.engine.trainer import TrainControl
from guidl.spec.sweep import SweepConfig, parse_param
from helpers import small_moons

ROOT = Path(__file__).resolve().parents[3]
LR = "training.optimizer.params.lr"
OUT = "model.layers[4].params.out_features"


@pytest.fixture(scope="module")
def moons():
    return small_moons()


def _study(moons, tmp_path, name, *params, **settings):
    config = SweepConfig([parse_param(p, moons) for p in params], metric="val_accuracy", **settings)
    assert config.problems(moons) == []
    storage, _ = sweep.open_storage(None, tmp_path / "runs", name)
    return sweep.create_or_load_study(storage, name, moons, config, source=ROOT / "examples/moons_mlp.guidl.json")


def test_the_pruner_judges_only_after_five_finished_trials_and_never_at_epoch_one(moons):
    pruner = sweep.make_pruner(SweepConfig([parse_param(f"{LR}=log:1e-4..1e-1", moons)], epochs=3))
    study = optuna.create_study(direction="maximize", pruner=pruner)

    def finish_one():
        study.add_trial(optuna.trial.create_trial(value=0.9, intermediate_values={1: 0.8, 2: 0.9, 3: 0.9}))

    def judged(epochs):
        trial = study.ask()
        verdicts = []
        for epoch in range(1, epochs + 1):
            trial.report(0.5, epoch)  # far below every finished trial at every epoch
            verdicts.append(trial.should_prune())
        return verdicts

    for _ in range(4):
        finish_one()
    assert judged(2) == [False, False]  # four finished trials: no median to judge by yet
    finish_one()
    assert judged(2) == [False, True]  # five: judged from epoch 2, never at epoch 1


def test_pruner_stops_a_hopeless_trial_and_its_run_folder_says_pruned(moons, tmp_path):
    # Five workable trials first: the pruner judges none before five have finished.
    study = _study(moons, tmp_path, "p", f"{LR}=0.05,0.045,0.04,0.035,0.03,1e-7", strategy="grid",
                   trials=6, epochs=3)
    seen = []
    assert sweep.run_worker(study, tmp_path / "runs", on_trial_end=seen.append) == "done"
    rows = {row["number"]: row for row in sweep.trial_rows(study)}
    assert [rows[n]["state"] for n in range(6)] == ["complete"] * 5 + ["pruned"]
    assert sorted(row["number"] for row in seen) == list(range(6))  # each finished trial reported once
    hopeless = rows[5]
    assert hopeless["params"] == {LR: 1e-7}
    assert list(hopeless["intermediate"]) == [1, 2]  # judged at epoch 2, never at epoch 1
    assert "median pruner at epoch 2" in hopeless["cause"]
    record = read_run(hopeless["run_dir"])
    assert record["status"] == "pruned" and record["epochs_completed"] == 2
    assert record["sweep"]["study"] == "p" and record["sweep"]["trial"] == 5
    assert record["sweep"]["params"] == {LR: 1e-7}
    assert read_run(rows[0]["run_dir"])["status"] == "finished"
    best = sweep.best_row(study)
    assert best["value"] == max(rows[n]["value"] for n in range(5)) and best["state"] == "complete"
    summary = sweep.sweep_summary(study, "here")
    assert summary["counts"]["complete"] == 5 and summary["counts"]["pruned"] == 1
    json.dumps(summary)  # JSON-ready


def test_budget_is_exact_an_over_budget_ask_is_hidden_and_data_is_prepared_once(moons, tmp_path, monkeypatch):
    from guidl.engine import data

    calls = []
    real = data.prepare
    monkeypatch.setattr(data, "prepare", lambda *a, **k: calls.append(1) or real(*a, **k))
    study = _study(moons, tmp_path, "b", f"{LR}=log:1e-3..1e-1", strategy="random", trials=3, epochs=1,
                   pruner=False)
    # Another worker holds two trials (live: no process of theirs is known to have ended).
    held = [study.ask(), study.ask()]
    worker = sweep._Worker(study, tmp_path / "runs", storage_text=None, tensorboard=False, control=None,
                           tune_threads=False, callbacks=None)
    assert worker.run_one() == 2  # two before it: within the budget of three
    # An ask that raced past the budget (three before it): ended before it trained, never shown.
    assert worker.run_one() == 3
    states = [t.state for t in study.trials]
    assert states == [TrialState.RUNNING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.FAIL]
    assert study.trials[3].user_attrs[sweep.OVER_BUDGET_ATTR]
    assert [row["number"] for row in sweep.trial_rows(study)] == [0, 1, 2]
    assert len(calls) == 1
    for trial in held:
        study.tell(trial, 0.5)
    count = sweep.tally(study)
    assert (count.complete, count.failed, count.running) == (3, 0, 0)
    assert sweep.run_worker(study, tmp_path / "runs") == "done"  # nothing left to run
    assert len(study.trials) == 4 and len(list((tmp_path / "runs").glob("moons_mlp-b-t*"))) == 1


def test_a_failed_trial_has_its_cause_and_the_grid_goes_on(moons, tmp_path):
    # One output cannot hold two classes: the trainer refuses it; the other point trains.
    study = _study(moons, tmp_path, "f", f"{OUT}=1,2", strategy="grid", trials=2, epochs=1)
    assert sweep.run_worker(study, tmp_path / "runs") == "done"
    rows = sweep.trial_rows(study)
    assert [row["state"] for row in rows] == ["failed", "complete"]
    assert "out_features" in rows[0]["cause"], rows[0]["cause"]
    assert rows[0]["run_dir"] is None  # refused before training: no run folder, as guidl train
    assert read_run(rows[1]["run_dir"])["status"] == "finished"


def test_a_dead_workers_trial_is_failed_and_retried_once_with_its_params(moons, tmp_path):
    study = _study(moons, tmp_path, "d", f"{LR}=0.05,0.02", strategy="grid", trials=2, epochs=1)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(gone.pid).create_time()
    gone.wait()
    trial = study.ask()  # popped grid point 0 by a worker that then died
    for key, value in {"pid": gone.pid, "host": socket.gethostname(), "process_started": started,
                       "boot_time": psutil.boot_time()}.items():
        trial.set_user_attr(key, value)
    trial.suggest_categorical(LR, [0.05, 0.02])
    assert sweep.reap_dead_trials(study) == [0]
    assert sweep.reap_dead_trials(study) == []  # marked once
    assert sweep.run_worker(study, tmp_path / "runs") == "done"
    rows = {row["number"]: row for row in sweep.trial_rows(study)}
    assert rows[0]["state"] == "retried" and rows[0]["cause"] == sweep.WORKER_GONE
    retry = next(row for row in rows.values() if row["retry_of"] == 0)
    assert retry["state"] == "complete" and retry["params"] == {LR: 0.05}
    assert sorted(row["params"][LR] for row in rows.values() if row["state"] == "complete") == [0.02, 0.05]
    assert read_run(retry["run_dir"])["sweep"]["retry_of"] == 0


def test_ctrl_c_stops_the_trial_after_its_batch(moons, tmp_path):
    control = TrainControl()

    class StopAtFirstBatch(Callback):
        def on_train_batch_end(self, trainer, batch, loss):
            control.request_stop()

    study = _study(moons, tmp_path, "c", f"{LR}=0.05,0.02", strategy="grid", trials=2, epochs=2)
    outcome = sweep.run_worker(study, tmp_path / "runs", control=control, callbacks=lambda: [StopAtFirstBatch()])
    assert outcome == "stopped"
    trial = study.trials[0]
    assert trial.state == TrialState.FAIL and trial.user_attrs["cause"] == sweep.STOPPED_BY_USER
    record = read_run(trial.user_attrs["run_dir"])
    assert record["status"] == "stopped" and record["stop_reason"] == "stopped by the user"
    assert sweep.trial_rows(study)[0]["state"] == "stopped"
    # The stopped point waits again, beside the one never started, for whoever joins the study.
    assert sweep.run_worker(study, tmp_path / "runs") == "done"
    rows = sweep.trial_rows(study)
    assert [row["state"] for row in rows] == ["stopped", "complete", "complete"]
    assert sorted(row["params"][LR] for row in rows[1:]) == [0.02, 0.05]


def test_a_study_is_joined_with_the_same_settings_and_refused_with_others(moons, tmp_path):
    first = _study(moons, tmp_path, "j", f"{LR}=0.05,0.02", strategy="grid", trials=2)
    again = _study(moons, tmp_path, "j", f"{LR}=0.05,0.02", strategy="grid", trials=2)
    assert again._study_id == first._study_id
    assert len(first.trials) == 2  # the grid was enqueued once
    with pytest.raises(sweep.SweepError, match="exists with other settings.*0.05,0.02.*0.1,0.2"):
        _study(moons, tmp_path, "j", f"{LR}=0.1,0.2", strategy="grid", trials=2)
    storage, _ = sweep.open_storage(None, tmp_path / "runs", "j")
    config, project = sweep.study_config(sweep.load_study(storage, "j"))
    assert config.params[0].values == (0.05, 0.02) and project["name"] == moons.name
    with pytest.raises(sweep.SweepError, match="no study 'nope'"):
        sweep.load_study(storage, "nope")


def test_storages(tmp_path):
    storage, shown = sweep.open_storage(None, tmp_path / "runs", "s")
    assert isinstance(storage, optuna.storages.JournalStorage)
    assert shown == str(tmp_path / "runs" / "sweeps" / "s.journal")
    storage, shown = sweep.open_storage(f"sqlite:///{tmp_path / 'x.db'}", tmp_path, "s")
    assert isinstance(storage, optuna.storages.RDBStorage) and storage.get_heartbeat_interval() == 30
    assert sweep.open_storage(str(tmp_path / "shared.journal"), tmp_path, "s")[1].endswith("shared.journal")
    with pytest.raises(sweep.SweepError, match="unknown kind of storage 'redis'"):
        sweep.open_storage("redis://host", tmp_path, "s")
    with pytest.raises(sweep.SweepError, match="sqlite:///"):
        sweep.open_storage("sweep.db", tmp_path, "s")
    with pytest.raises(sweep.SweepError, match="--study"):
        sweep.open_storage(None, tmp_path, "../escape")


def test_run_folder_extra_is_in_every_write_and_kept_on_resume(moons, tmp_path):
    import torch

    from guidl.engine.callbacks import RunFolder
    from guidl.engine.trainer import Trainer

    run = tmp_path / "run"
    seen = []

    class Look(Callback):
        def on_checkpoint(self, trainer, metrics):
            seen.append(json.loads((run / "run.json").read_text())["sweep"])

    record = {"study": "s", "trial": 7, "params": {LR: 0.01}}
    Trainer(moons, callbacks=[RunFolder(run, extra={"sweep": record}), Look()], epochs=1).fit()
    assert seen == [record] and read_run(run)["sweep"] == record
    resumed = Trainer(moons, callbacks=[RunFolder(run, resume=True)], epochs=2)
    resumed.load_state_dict(torch.load(run / "checkpoint.pt", weights_only=True))
    resumed.fit()
    after = read_run(run)
    assert after["epochs_completed"] == 2 and after["sweep"] == record


def test_the_parent_watch_stops_at_once_and_stops_the_worker_when_the_parent_is_gone():
    import os
    import time

    control = TrainControl()
    watch = sweep.watch_parent(control, os.getppid(), interval_s=600)
    began = time.monotonic()
    watch.stop()  # no waiting for its next look (600 s away)
    assert not watch.is_alive() and time.monotonic() - began < 60 and not control.stop_requested
    gone = sweep.watch_parent(control, 2**22 + 12345, interval_s=600)  # no such process
    gone.join(60)
    assert control.stop_requested and not gone.is_alive()


def test_a_journal_is_locked_with_a_lock_file_at_an_absolute_path(tmp_path, monkeypatch):
    # A writer killed while holding the journal's lock leaves it behind; Optuna frees a
    # stale lock once it can stat it unchanged for its grace period. Its default lock, a
    # symbolic link to the journal path as given, dangled for a relative path, and the
    # next writer spun for ever at full speed.
    from optuna.storages.journal import JournalFileOpenLock

    real = __import__("optuna.storages.journal", fromlist=["JournalFileBackend"]).JournalFileBackend
    seen = []

    def backend(path, lock_obj=None):
        seen.append((path, lock_obj))
        return real(path, lock_obj=lock_obj)

    monkeypatch.setattr("optuna.storages.journal.JournalFileBackend", backend)
    monkeypatch.chdir(tmp_path)
    storage, shown = sweep.open_storage("runs/sweeps/k.journal", tmp_path, "k")
    (path, lock), = seen
    assert isinstance(lock, JournalFileOpenLock)
    assert path == shown == str(tmp_path / "runs/sweeps/k.journal")
    optuna.create_study(storage=storage, study_name="k")  # it writes through that lock
    assert optuna.load_study(study_name="k", storage=storage).study_name == "k"
    assert not (tmp_path / "runs/sweeps/k.journal.lock").exists()  # released after the write


def test_a_trial_of_another_machine_whose_heartbeat_stopped_is_reaped(moons, tmp_path):
    import time

    study = _study(moons, tmp_path, "hb", f"{LR}=0.05,0.02,0.01", strategy="grid", trials=3, epochs=1)
    far = {"pid": 4242, "host": "another-host.example", "process_started": 1.0, "boot_time": 1.0}
    silent, beating = study.ask(), study.ask()
    for trial, alive in ((silent, time.time() - sweep.ALIVE_STALE_S - 60), (beating, time.time() - 30)):
        for key, value in {**far, sweep.ALIVE_ATTR: alive}.items():
            trial.set_user_attr(key, value)
    assert sweep.reap_dead_trials(study) == [silent.number]  # the one still beating is left alone
    cause = study.trials[silent.number].user_attrs["cause"]
    assert "another-host.example stopped reporting" in cause

    # A worker's own heartbeat keeps its trial's alive_at fresh while it runs.
    mine = study.ask()
    mine.set_user_attr(sweep.ALIVE_ATTR, 0.0)
    beat = sweep.Heartbeat(mine, every_s=0.05)
    deadline = time.monotonic() + 60
    while study.trials[mine.number].user_attrs[sweep.ALIVE_ATTR] == 0.0 and time.monotonic() < deadline:
        time.sleep(0.05)
    beat.stop()
    assert not beat.is_alive()
    assert abs(study.trials[mine.number].user_attrs[sweep.ALIVE_ATTR] - time.time()) < 60


def test_an_unclaimed_trial_is_judged_on_this_process_clock_not_its_naive_start(moons, tmp_path, monkeypatch):
    study = _study(moons, tmp_path, "uc", f"{LR}=0.05,0.02", strategy="grid", trials=2, epochs=1)
    study.ask()  # its worker died before saying who it is
    clock = [1000.0]
    monkeypatch.setattr(sweep.time, "monotonic", lambda: clock[0])
    assert sweep.reap_dead_trials(study) == []  # first seen now
    clock[0] += sweep.UNCLAIMED_S + 1
    assert sweep.reap_dead_trials(study) == [0]


def test_a_failed_trial_is_a_failure_in_the_hparams_view(moons, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata
    from tensorboard.plugins.hparams.api_pb2 import Status

    study = _study(moons, tmp_path, "h", f"{LR}=0.01,0.02", strategy="grid", trials=2, epochs=1)

    class FailFirst(Callback):  # the first trial fails once its run folder is made
        trials = []

        def on_epoch_end(self, trainer, metrics):
            if not self.trials:
                self.trials.append(1)
                raise RuntimeError("the disk went away")

    assert sweep.run_worker(study, tmp_path / "runs", tensorboard=True, callbacks=lambda: [FailFirst()]) == "done"
    rows = sweep.trial_rows(study)
    assert [row["state"] for row in rows] == ["failed", "complete"]
    seen = []
    for row in rows:
        events = EventAccumulator(str(Path(row["run_dir"]) / "tensorboard"),
                                  size_guidance={"tensors": 0, "scalars": 0})
        events.Reload()
        plugin = events.PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(plugin[metadata.SESSION_START_INFO_TAG])
        end = metadata.parse_session_end_info_plugin_data(plugin[metadata.SESSION_END_INFO_TAG])
        seen.append((start.hparams[LR].number_value, Status.Name(end.status),
                     "val_accuracy" in events.Tags()["scalars"]))
    assert seen == [(0.01, "STATUS_FAILURE", False), (0.02, "STATUS_SUCCESS", True)]
