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
