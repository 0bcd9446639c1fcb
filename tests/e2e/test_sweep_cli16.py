"""`guidl sweep` as a user runs it: a grid of 4 trials, bad --param refused,
two processes sharing one study, and a worker killed mid-trial."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from guidl import cli, spec
from guidl.engine.runs import read_run
from helpers import small_moons

LR = "training.optimizer.params.lr"
OUT = "model.layers[0].params.out_features"


@pytest.fixture
def moons(tmp_path):
    project = small_moons()
    path = tmp_path / "moons.guidl.json"
    spec.save(project, path)
    return path


def guidl(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "guidl", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_grid_of_four_trials_makes_four_run_folders_and_names_the_best(moons, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = cli.main(["sweep", str(moons), "--param", f"{LR}=0.05,0.01", "-p", f"{OUT}=4,16",
                     "--epochs", "1", "--no-pruner", "--study", "grid", "--runs-dir", str(runs), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["budget"] == 4 and summary["counts"]["complete"] == 4
    points = sorted((t["params"][LR], t["params"][OUT]) for t in summary["trials"])
    assert points == [(0.01, 4), (0.01, 16), (0.05, 4), (0.05, 16)]
    folders = sorted(runs.glob("moons-grid-t*"))
    assert [f.name for f in folders] == [f"moons-grid-t00{i}" for i in range(4)]
    for trial in summary["trials"]:
        record = read_run(trial["run_dir"])
        assert record["status"] == "finished" and record["sweep"]["params"] == trial["params"]
        assert record["final"]["val_accuracy"] == trial["value"]
    best = summary["best"]
    assert best["value"] == max(t["value"] for t in summary["trials"])
    assert set(summary["importances"]) == {LR, OUT}
    # The human lines went to stderr (stdout holds the JSON): one per trial, then the best.
    assert sum(line.startswith("trial ") for line in err.splitlines()) == 4
    assert f"best: trial {best['number']:>3}" in err and f"guidl runs {os.path.relpath(runs)}" in err


@pytest.mark.parametrize("param, message", [
    ("model.layers[9].params.out_features=4,8", "model.layers[9]"),
    (f"{LR}=1..0.1", "needs low < high"),
    (f"{LR}=log:0..1", "log range needs low > 0"),
    (f"{LR}", "write PATH=VALUES"),
    ("model.layers[0].params.out_features=0,8", "out_features"),
    ("training.optimizer.params.nonsense=1,2", "nonsense"),
])
def test_invalid_paths_and_ranges_are_refused_with_exit_2(moons, tmp_path, capsys, param, message):
    code = cli.main(["sweep", str(moons), "--param", param, "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("guidl sweep: --param") and message in err, err
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_joining_a_study_that_is_not_there_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", "--study", "nothing"]) == 2
    assert "no study 'nothing'" in capsys.readouterr().err
    assert cli.main(["sweep", "--study", "nothing", "--storage", "elsewhere.journal"]) == 2
    assert "no such journal file" in capsys.readouterr().err
    assert cli.main(["sweep", "--param", f"{LR}=0.1,0.2"]) == 2  # a sweep needs its project
    assert not any(tmp_path.iterdir())  # no empty journal or runs folder left behind


def test_two_processes_sharing_a_study_run_each_grid_point_once(moons, tmp_path):
    # Two points are enough: however the two processes split them (both, one each), no point
    # may run twice and the study must end with exactly two trials.
    args = ["sweep", str(moons), "-p", f"{LR}=0.05,0.01", "--epochs", "1", "--no-pruner",
            "--study", "shared", "--storage", str(tmp_path / "shared.journal"), "--json"]
    first, second = guidl(*args, cwd=tmp_path), guidl(*args, cwd=tmp_path)
    outputs = [process.communicate(timeout=300) for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    summaries = [json.loads(out.splitlines()[-1]) for out, _ in outputs]
    for summary in summaries:  # each process ends with the whole study
        assert summary["counts"] == {"complete": 2, "pruned": 0, "failed": 0, "stopped": 0, "retried": 0,
                                     "running": 0, "waiting": 0}
        assert sorted(t["params"][LR] for t in summary["trials"]) == [0.01, 0.05]
    assert len(list((tmp_path / "runs").glob("moons-shared-t*"))) == 2


def test_a_killed_workers_trial_is_marked_failed_and_retried(moons, tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    first = guidl("sweep", str(moons), "-p", f"{LR}=0.05,0.02", "--epochs", "40", "--no-pruner",
                  "--study", "k", cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not (runs / "moons-k-t000" / "metrics.csv").is_file():  # mid-trial: an epoch done, more to go
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    # Another guidl sweep (in this process: it needs no process of its own) joins the study.
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", "--study", "k", "--json"]) == 0
    out = capsys.readouterr().out
    trials = json.loads(out.splitlines()[-1])["trials"]
    # The trial that was training when its worker was killed (the first, unless the machine was
    # so slow that the first had finished): failed with its cause, then run again.
    killed = [t for t in trials if t["state"] == "retried"]
    assert len(killed) == 1 and "worker process ended" in killed[0]["cause"]
    retry = next(t for t in trials if t["retry_of"] == killed[0]["number"])
    assert retry["state"] == "complete" and retry["params"] == killed[0]["params"]
    assert sorted(t["params"][LR] for t in trials if t["state"] == "complete") == [0.02, 0.05]
    assert len(trials) == 3
    record = read_run(killed[0]["run_dir"])
    assert record["status"] == "failed" and "killed or crashed" in record["error"]
