"""How `guidl sweep --jobs J` starts its workers, and the seeds of processes
that share a study: no process draws another's points."""

import subprocess
import sys

import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from guidl import spec
from guidl.engine.sweep import SweepError, create_or_load_study, load_study, open_storage, study_seed
from guidl.spec.sweep import SweepConfig, parse_param
from guidl.sweep_cli import PARENT_ENV, SEED_ENV, STORAGE_ENV, worker_launches

LR = "training.optimizer.params.lr"


def launches(jobs, cores):
    return worker_launches(jobs, cores, study="s", runs_root="runs", storage="postgresql://u:secret@h/db",
                           seed=7, tensorboard=True, environ={"PATH": "/bin", "OMP_NUM_THREADS": "9"},
                           parent=1234)


@pytest.mark.parametrize("jobs, cores, processes, threads", [
    (2, 8, 2, 4), (3, 8, 3, 2), (1, 16, 1, 16), (4, 4, 4, 1),
    (4, 2, 2, 1),  # more jobs than cores: one process per core, never two on one
    (2, 1, 1, 1)])
def test_each_worker_gets_its_share_of_the_cores_and_never_more(jobs, cores, processes, threads):
    started = launches(jobs, cores)
    assert len(started) == processes
    assert processes * threads <= cores
    for index, (command, env) in enumerate(started):
        assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == str(threads)
        assert command[:4] == [sys.executable, "-m", "guidl", "sweep"]
        assert command[command.index("--study") + 1] == "s" and "--tensorboard" in command
        assert command[-3:] == ["--worker", "--worker-index", str(index)] or \
            command[-4:] == ["--worker", "--tensorboard", "--worker-index", str(index)]
        # The storage (it may hold a password) is in the environment, not on the command line.
        assert env[STORAGE_ENV] == "postgresql://u:secret@h/db" and not any("secret" in a for a in command)
        assert env[PARENT_ENV] == "1234" and env["PATH"] == "/bin"
        assert env[SEED_ENV] == str(7 + 1009 * index)


@pytest.mark.parametrize("strategy", ["random", "tpe"])
def test_processes_joining_a_study_draw_points_of_their_own(root, tmp_path, strategy):
    project = spec.load(root / "examples/moons_mlp.guidl.json")
    config = SweepConfig([parse_param(f"{LR}=log:0.0001..0.1", project),
                          parse_param("model.layers[0].params.out_features=4..64", project)],
                         strategy=strategy, trials=8, metric="val_accuracy")
    storage, _ = open_storage(str(tmp_path / "s.journal"), tmp_path, "s")
    maker = create_or_load_study(storage, "s", project, config)
    assert study_seed(maker) == project.training.seed  # the study's maker: reproducible
    # Two machines joining (the same command, or --study alone): each its own seed.
    joiners = [create_or_load_study(storage, "s", project, config), load_study(storage, "s")]
    studies = [maker, *joiners]
    assert len({study_seed(s) for s in studies}) == 3
    space = {LR: FloatDistribution(0.0001, 0.1, log=True), "out": IntDistribution(4, 64)}
    drawn = [tuple(s.ask(space).params.values()) for s in studies for _ in range(2)]
    assert len(set(drawn)) == len(drawn)
    # A worker started with a seed draws as any process with that seed does (--jobs workers).
    again = load_study(storage, "s", seed=study_seed(maker))
    assert study_seed(again) == study_seed(maker)


def test_the_hint_to_rejoin_a_stopped_sweep_shows_no_password(root, tmp_path, capsys):
    from argparse import Namespace

    from guidl.sweep_cli import EXIT_STOPPED, _finish

    project = spec.load(root / "examples/moons_mlp.guidl.json")
    config = SweepConfig([parse_param(f"{LR}=0.1,0.01", project)], strategy="grid", metric="val_accuracy")
    storage, _ = open_storage(None, tmp_path, "s")
    study = create_or_load_study(storage, "s", project, config)
    args = Namespace(storage="postgresql://u:secret@h/db", runs_dir="runs", json=False)
    assert _finish(args, study, "postgresql://u:***@h/db", tmp_path, "stopped", sys.stdout) == EXIT_STOPPED
    out, err = capsys.readouterr()
    assert "guidl sweep --study s --storage postgresql://u:***@h/db" in err
    assert "secret" not in out + err


def test_workers_that_start_together_on_a_new_database_all_open_it(tmp_path, monkeypatch):
    """Two workers making Optuna's tables at once: the loser finds them made and tries again."""
    import optuna

    real, calls = optuna.storages.RDBStorage, []

    def racing(url, **kwargs):
        calls.append(url)
        if len(calls) == 1:
            raise RuntimeError("(sqlite3.OperationalError) table studies already exists")
        return real(url, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    storage, shown = open_storage(f"sqlite:///{tmp_path / 's.db'}", tmp_path, "s")
    assert isinstance(storage, real) and len(calls) == 2
    monkeypatch.setattr(optuna.storages, "RDBStorage", lambda url, **kwargs: (_ for _ in ()).throw(
        RuntimeError("(sqlite3.OperationalError) unable to open database file")))
    with pytest.raises(SweepError, match="cannot open it: .*unable to open database file"):
        open_storage(f"sqlite:///{tmp_path / 'x.db'}", tmp_path, "x")


def test_the_pruner_never_prunes_a_trial_at_its_last_epoch():
    """Stopping a finished training saves nothing and would drop its figure from the best."""
    from types import SimpleNamespace

    from guidl.engine.sweep import PruningCallback

    class Trial:
        reported = []

        def report(self, value, step):
            self.reported.append((step, value))

        def should_prune(self):
            return True  # the median says so at every epoch

    trainer = SimpleNamespace(epochs=3, stop_training=False, stop_reason=None)
    callback = PruningCallback(Trial(), "val_loss")
    metrics = SimpleNamespace(epoch=3, get=lambda name: 0.5)
    callback.on_epoch_end(trainer, metrics)
    assert Trial.reported == [(3, 0.5)] and not trainer.stop_training
    assert getattr(trainer, "outcome", None) is None
    metrics.epoch = 2
    callback.on_epoch_end(trainer, metrics)
    assert trainer.outcome == "pruned" and trainer.stop_training and "at epoch 2" in trainer.stop_reason


def test_a_project_seed_beyond_numpys_still_seeds_the_samplers(root, tmp_path):
    project = spec.load(root / "examples/moons_mlp.guidl.json")
    project.training.seed = 2**63 - 1  # a valid project seed; NumPy takes seeds below 2**32
    for strategy, param in (("random", f"{LR}=log:0.0001..0.1"), ("tpe", f"{LR}=log:0.0001..0.1"),
                            ("grid", f"{LR}=0.1,0.01")):
        config = SweepConfig([parse_param(param, project)], strategy=strategy, trials=2, metric="val_accuracy")
        storage, _ = open_storage(None, tmp_path, strategy)
        study = create_or_load_study(storage, strategy, project, config, worker=3)
        trial = study.ask({LR: FloatDistribution(0.0001, 0.1, log=True)} if strategy != "grid" else None)
        assert trial.number == 0


_EXIT_CHILD = """
import atexit, sys
from guidl.sweep_cli import exit_now

class Torn:
    def __del__(self):
        print("torn down", flush=True)  # the interpreter's teardown, skipped by a quick exit

torn = Torn()
atexit.register(lambda: print("atexit ran", flush=True))
held = open(sys.argv[1], "w") if len(sys.argv) > 1 else None
if held is not None:
    held.write("buffered, not flushed")
exit_now(3)
print("went on", flush=True)
sys.exit(4)
"""


def test_guidl_sweep_ends_at_once_only_when_nothing_would_be_lost(tmp_path):
    # Ending the process skips torch's seconds of teardown; the atexit handlers still run.
    quick = subprocess.run([sys.executable, "-c", _EXIT_CHILD], capture_output=True, text=True, timeout=60)
    assert (quick.returncode, quick.stdout.split("\n")) == (3, ["atexit ran", ""]), quick.stderr
    # A file open for writing (a buffered write would be lost): the usual exit instead.
    held = tmp_path / "held.txt"
    usual = subprocess.run([sys.executable, "-c", _EXIT_CHILD, str(held)], capture_output=True, text=True,
                           timeout=60)
    assert usual.returncode == 4 and usual.stdout.split("\n")[0] == "went on", usual.stderr
    assert "torn down" in usual.stdout and held.read_text() == "buffered, not flushed"


def test_a_shared_studys_trial_lines_carry_no_terminal_escapes():
    from guidl.sweep_cli import trial_line

    row = {"number": 4, "state": "failed", "value": None, "intermediate": {}, "variant": None,
           "params": {"training.optimizer.type": "Ad\x1b[2Jam"}, "run_dir": None,
           "cause": "bad\x1b]0;title\x07 data\r\nover\u202e"}
    line = trial_line(row, "val_accuracy")
    assert not any(char in line for char in "\x1b\x07\r\n\u202e")
    assert line.endswith(r"(bad\x1b]0;title\x07 data\r\nover\u202e)")  # the values are JSON-quoted already


def test_workers_get_their_own_process_group_and_ctrl_break_on_windows(monkeypatch):
    import signal
    import subprocess

    from guidl import sweep_cli
    from guidl.engine import sweep

    class Worker:
        sent = []

        def send_signal(self, signum):
            self.sent.append(signum)

    assert sweep_cli.worker_popen_options() == {"start_new_session": True}
    sweep_cli.ask_to_stop(Worker())
    monkeypatch.setattr(sweep, "WINDOWS", True)
    monkeypatch.setattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 512, raising=False)
    monkeypatch.setattr(signal, "CTRL_BREAK_EVENT", 1, raising=False)
    monkeypatch.setattr(signal, "SIGBREAK", 21, raising=False)
    assert sweep_cli.worker_popen_options() == {"creationflags": 512}
    sweep_cli.ask_to_stop(Worker())
    assert Worker.sent == [signal.SIGINT, 1]
    assert 21 in sweep_cli.stop_signals() and signal.SIGINT in sweep_cli.stop_signals()
