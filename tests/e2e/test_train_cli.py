"""`guidl train` as a user runs it: real processes, real run folders."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from guidl import spec
from guidl.engine.threads import ThreadTuner, can_follow_load, cores
from helpers import busy_program, small_project


def guidl(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "guidl", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def test_train_writes_a_complete_run_folder(tmp_path, root):
    out = tmp_path / "run"
    result = guidl("train", str(root / "examples/moons_mlp.guidl.json"), "--epochs", "3",
                   "--out", str(out), "--json", "--tensorboard")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["ok"] and summary["epochs_completed"] == 3 and summary["run_dir"] == str(out)
    assert summary["evaluation"]["accuracy"] > 0.8
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt", "metrics.csv", "model.safetensors", "project.guidl.json", "run.json",
        "tensorboard"]
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tensorboard").iterdir())
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["val_accuracy"]) == summary["final"]["val_accuracy"]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["seed"] == 0 and run["device"].startswith("cpu")
    assert run["versions"]["torch"] == torch.__version__
    assert run["normalization"]["mean"] and len(run["normalization"]["std"]) == 2
    assert run["evaluation"]["accuracy"] == summary["evaluation"]["accuracy"]
    weights = load_file(out / "model.safetensors")
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert weights.keys() == checkpoint["model"].keys()
    assert all(torch.equal(weights[k], checkpoint["model"][k]) for k in weights)
    assert spec.load(out / "project.guidl.json").training.epochs == 3


def test_resume_in_a_new_process_matches_the_uninterrupted_run(tmp_path):
    project = small_project(training__epochs=4)
    path = tmp_path / "p.guidl.json"
    spec.save(project, path)
    whole = guidl("train", str(path), "--out", str(tmp_path / "whole"), "--json")
    assert whole.returncode == 0, whole.stderr
    half = guidl("train", str(path), "--epochs", "2", "--out", str(tmp_path / "half"), "--json")
    assert half.returncode == 0, half.stderr
    resumed = guidl("train", "--resume", str(tmp_path / "half"), "--epochs", "4", "--json")
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads(whole.stdout.splitlines()[-1])["final"]
    b = json.loads(resumed.stdout.splitlines()[-1])["final"]
    assert b["epoch"] == 4
    for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr"):
        assert abs(a[key] - b[key]) <= 1e-6, (key, a[key], b[key])
    rows = list(csv.DictReader((tmp_path / "half" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]


@pytest.mark.skipif(not can_follow_load() or ThreadTuner(load=lambda: None).most < 2
                    or ThreadTuner(load=lambda: None).most < cores(),
                    reason="needs Linux's /proc, two cores or more, and a torch thread for each")
def test_train_leaves_a_busy_program_its_core_unless_told_how_many_threads(tmp_path):
    project = small_project(training__epochs=40, data__batch_size=16)
    path = tmp_path / "p.guidl.json"
    spec.save(project, path)
    with busy_program():
        tuned = guidl("train", str(path), "--out", str(tmp_path / "tuned"))
        fixed = subprocess.run([sys.executable, "-m", "guidl", "train", str(path), "--epochs", "1",
                                "--out", str(tmp_path / "fixed")], capture_output=True, text=True,
                               timeout=300, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert tuned.returncode == 0 and fixed.returncode == 0, tuned.stderr + fixed.stderr
    assert "note: other programs kept the CPU busy during this run, so part of it trained with " \
        f"{torch.get_num_threads() - 1} thread" in tuned.stderr
    assert "other programs" not in fixed.stderr  # OMP_NUM_THREADS is the user's choice


def test_ctrl_c_stops_after_the_batch_and_keeps_the_checkpoint(tmp_path, root):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "guidl", "train", str(root / "examples/mnist_cnn.guidl.json"),
         "--epochs", "50", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert (out / "checkpoint.pt").exists(), process.communicate()[1]
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "stopping after this batch" in stderr and "Traceback" not in stderr
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "stopped" and run["stop_reason"] == "stopped by the user"
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] >= 1 and (out / "model.safetensors").exists()


@pytest.mark.parametrize("changes,expected", [
    ({"data__dataset": "csv", "data__params": {"path": "nowhere.csv"}}, "csv: no such file"),
    ({"training__device": "cuda:7"}, "device 'cuda:7' is not available"),
])
def test_bad_training_input_exits_with_a_message(tmp_path, changes, expected):
    if "device" in str(changes) and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    path = tmp_path / "p.guidl.json"
    spec.save(small_project(**changes), path)
    result = guidl("train", str(path), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode in (1, 2)
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_resume_needs_a_checkpoint(tmp_path):
    result = guidl("train", "--resume", str(tmp_path))
    assert result.returncode == 2 and "no checkpoint.pt to resume from" in result.stderr
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    spec.save(small_project(), tmp_path / "project.guidl.json")
    result = guidl("train", "--resume", str(tmp_path))
    assert result.returncode == 2 and "not a readable guidl checkpoint" in result.stderr


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_checkpoint_that_carries_code_is_refused_without_running_it(tmp_path):
    spec.save(small_project(), tmp_path / "project.guidl.json")
    torch.save({"format": "guidl-checkpoint", "payload": _Exploit()}, tmp_path / "checkpoint.pt")
    result = guidl("train", "--resume", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "not a readable guidl checkpoint" in result.stderr
    assert not (tmp_path / "PWNED").exists()


# -- run folders: never one for two runs, never written over, clear on a full disk --------------

@pytest.fixture
def train_here(tmp_path, monkeypatch, capsys, root):
    """``guidl train`` in this process, in tmp_path, on the moons example (one epoch)."""
    from guidl import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))  # no thread tuner here

    def train(*args, project=root / "examples/moons_mlp.guidl.json"):
        argv = ["train", *([str(project)] if project else []), *args]
        if "--epochs" not in args:
            argv += ["--epochs", "1"]
        code = cli.main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return train


def test_two_trainings_in_the_same_second_get_two_run_folders(train_here, tmp_path, monkeypatch):
    from guidl.engine import runs

    monkeypatch.setattr(runs, "_stamp", lambda: "20260101-120000")
    first, second = train_here(), train_here()
    assert first[0] == 0 and second[0] == 0, (first[2], second[2])
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert folders == ["moons_mlp-20260101-120000", "moons_mlp-20260101-120000-2"]
    assert "run folder: runs/moons_mlp-20260101-120000-2" in second[2]
    for name in folders:
        assert json.loads((tmp_path / "runs" / name / "run.json").read_text())["status"] == "finished"


def test_out_onto_an_existing_run_is_refused_with_the_fix(train_here, tmp_path):
    assert train_here("--out", "run")[0] == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    code, _, err = train_here("--out", "run", "--json")
    assert code == 2
    assert err.splitlines() == ["guidl train: run exists: use --resume run to continue it, or another --out"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before


def test_out_onto_the_projects_own_folder_never_writes_over_the_project(train_here, tmp_path, root):
    folder = tmp_path / "work"
    folder.mkdir()
    project = folder / "project.guidl.json"
    text = (root / "examples/moons_mlp.guidl.json").read_text().replace('"Two moons', '"My moons')
    project.write_text(text)
    code, _, err = train_here("--out", str(folder), project=project)
    assert code == 2 and "exists: give another --out" in err
    assert project.read_text() == text and sorted(p.name for p in folder.iterdir()) == ["project.guidl.json"]


def test_an_empty_folder_is_a_fine_out(train_here, tmp_path):
    (tmp_path / "empty").mkdir()
    assert train_here("--out", "empty")[0] == 0
    assert json.loads((tmp_path / "empty" / "run.json").read_text())["status"] == "finished"


def test_a_run_that_takes_the_folder_first_wins_it(train_here, tmp_path, monkeypatch):
    """Two trainings with the same --out: both pass the early check, one alone claims the folder."""
    from guidl.engine import runs

    assert train_here("--out", "run")[0] == 0
    before = (tmp_path / "run" / "run.json").read_bytes()
    monkeypatch.setattr(runs, "is_free_run_dir", lambda path: True)  # as if the other had not begun yet
    code, _, err = train_here("--out", "run")
    assert code == 2 and "guidl train: run exists: use another --out" in err
    assert (tmp_path / "run" / "run.json").read_bytes() == before


def test_a_failed_start_leaves_no_empty_default_run_folder(train_here, tmp_path):
    path = tmp_path / "p.guidl.json"
    spec.save(small_project(data__dataset="csv", data__params={"path": "nowhere.csv"}), path)
    code, _, err = train_here(project=path)
    assert code == 2 and "no such file" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("where", ["checkpoint", "metrics", "weights"])
def test_a_full_disk_is_a_clear_error_and_the_run_says_failed(train_here, tmp_path, monkeypatch, where):
    import errno

    from guidl.engine import callbacks

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "checkpoint":
        monkeypatch.setattr(torch, "save", full)
    elif where == "metrics":
        real = callbacks.atomic_write_text
        monkeypatch.setattr(callbacks, "atomic_write_text",
                            lambda path, text: full() if path.name == "metrics.csv" else real(path, text))
    else:
        monkeypatch.setattr("safetensors.torch.save", full)
    code, out, err = train_here("--out", "run", "--json")
    assert code == 1, err
    assert "guidl train: cannot write the run folder run: No space left on device" in err
    assert "internal error" not in err and "Traceback" not in err
    assert json.loads(out.splitlines()[-1])["ok"] is False
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "failed" and "No space left on device" in run["error"]
    assert not [p.name for p in (tmp_path / "run").iterdir() if ".tmp" in p.name]  # no temp file stays


def test_a_read_only_run_folder_is_a_clear_error(train_here, tmp_path, monkeypatch):
    import errno

    from guidl.engine import callbacks

    def read_only(path, text):
        raise OSError(errno.EROFS, "Read-only file system")

    real = callbacks.atomic_write_text
    calls = []

    def first_only(path, text):  # the folder turns read-only after the run began
        calls.append(path)
        return real(path, text) if len(calls) == 1 else read_only(path, text)

    monkeypatch.setattr(callbacks, "atomic_write_text", first_only)
    code, _, err = train_here("--out", "run")
    assert code == 1 and "guidl train: cannot write the run folder run: Read-only file system" in err
    assert "internal error" not in err
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "running"  # could not say


def test_a_resume_removes_stale_temporary_files_and_a_dead_runs_record_is_marked(train_here, tmp_path):
    from guidl.engine.runs import PROCESS_GONE, read_run

    assert train_here("--out", "run")[0] == 0
    stale = tmp_path / "run" / ".checkpoint.pt.k1ll3d.tmp.pt"
    stale.write_bytes(b"\0" * 1000)  # what a kill during the checkpoint's write left
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    record.update(status="running", pid=2**22 + 12345)  # a process that does not exist
    (tmp_path / "run" / "run.json").write_text(json.dumps(record))
    assert read_run(tmp_path / "run")["error"] == PROCESS_GONE
    code, _, err = train_here("--resume", "run", "--epochs", "2", project=None)
    assert code == 0, err
    assert not stale.exists()
    run = read_run(tmp_path / "run")
    assert run["status"] == "finished" and run["epochs_completed"] == 2
    assert run["started"] == record["started"]  # the same run, gone on


def test_a_run_still_training_is_not_resumed_twice(train_here, tmp_path):
    from guidl.engine.runs import process_identity

    assert train_here("--out", "run")[0] == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    record.update(status="running", **process_identity())  # this very process trains it
    (tmp_path / "run" / "run.json").write_text(json.dumps(record))
    code, _, err = train_here("--resume", "run", "--epochs", "2", project=None)
    assert code == 2 and "this run is still training" in err


def test_a_killed_run_reads_as_failed(tmp_path, root):
    from guidl.engine.runs import PROCESS_GONE, read_run

    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "guidl", "train", str(root / "examples/mnist_cnn.guidl.json"),
         "--epochs", "50", "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert (out / "checkpoint.pt").exists(), process.communicate()[1]
    process.kill()
    process.wait(timeout=60)
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    assert read_run(out)["status"] == "failed" and read_run(out)["error"] == PROCESS_GONE
    assert json.loads((out / "run.json").read_text())["error"] == PROCESS_GONE
    torch.load(out / "checkpoint.pt", weights_only=True)  # whole: it resumes


def test_a_checkpoint_that_is_no_regular_file_or_too_large_is_explained(train_here, tmp_path):
    from guidl.engine.checkpoint_checks import CHECKPOINT_ROOM

    assert train_here("--out", "run")[0] == 0
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.unlink()
    os.mkfifo(checkpoint)  # it said "no epoch of this run had finished" (or waited on the pipe)
    code, _, err = train_here("--resume", "run", "--epochs", "2", project=None)
    assert code == 2 and "checkpoint.pt: is a named pipe (FIFO), not a regular file" in err
    assert "no epoch" not in err
    checkpoint.unlink()
    with open(checkpoint, "wb") as handle:
        handle.truncate(CHECKPOINT_ROOM + 2**20)  # sparse: larger than any checkpoint of this model
    code, _, err = train_here("--resume", "run", "--epochs", "2", project=None)
    assert code == 2 and "a checkpoint of this model is at most" in err, err


def test_a_run_held_by_another_training_is_not_resumed(train_here, tmp_path):
    # Two resumes started together both passed the still-training check, and each
    # removed the other's temporary checkpoint: the run folder is held by a lock.
    from guidl.engine.runs import lock_run_dir, unlock_run_dir

    assert train_here("--out", "run")[0] == 0
    held = lock_run_dir(tmp_path / "run")  # free again after the run: it was released
    if held is None:
        pytest.skip("no file locks here")
    stale = tmp_path / "run" / ".checkpoint.pt.other.tmp.pt"
    stale.write_bytes(b"\0" * 100)  # the other training's checkpoint being written
    try:
        code, _, err = train_here("--resume", "run", "--epochs", "2", project=None)
    finally:
        unlock_run_dir(held)
    assert code == 2 and "guidl train: run is being trained by another process" in err, err
    assert stale.exists()
    code, _, err = train_here("--resume", "run", "--epochs", "2", project=None)
    assert code == 0, err


@pytest.mark.parametrize("kind", [ValueError, TypeError])
def test_a_value_or_type_error_from_torch_mid_training_is_one_short_line(train_here, monkeypatch, kind):
    from guidl.engine.trainer import Trainer

    def fail(self, *args, **kwargs):
        raise kind("Target size (torch.Size([64])) must be the same as input size " + "9" * 2**20
                   + "\nsecond line")

    monkeypatch.setattr(Trainer, "_step", fail)
    code, _, err = train_here("--out", "run")
    assert code == 1 and "internal error" not in err, err[:500]
    line = next(line for line in err.splitlines() if line.startswith("guidl train: "))
    assert line.startswith(f"guidl train: {kind.__name__}: Target size") and len(line) < 400
    assert "second line" not in err
