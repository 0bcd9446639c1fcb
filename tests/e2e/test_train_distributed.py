"""`torchrun --nproc_per_node 2 -m guidl train` on the CPU (gloo): real processes,
one run folder. Each launch costs a few seconds of imports, so the run is
shared between tests."""

import csv
import json
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from guidl import cli, spec
from guidl.engine.build import build
from guidl.engine.trainer import Trainer
from helpers import small_graph_project, small_project

EPOCHS = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_command(*args, nproc=2):
    # --master_port on a free port, as one machine would run it by hand.
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
            "-m", "guidl", "train", *args]


def torchrun(*args, cwd=None, timeout=300):
    return subprocess.run(torchrun_command(*args), capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


@pytest.fixture(scope="module")
def moons(tmp_path_factory, request):
    """The moons example trained in two processes: (project, run folder, result)."""
    root = request.config.rootpath
    project = spec.load(root / "examples/moons_mlp.guidl.json")
    project.training.epochs = EPOCHS
    project.training.device = "cpu"
    folder = tmp_path_factory.mktemp("distributed")
    path = folder / "moons.guidl.json"
    spec.save(project, path)
    result = torchrun(str(path), "--out", "run", "--json", cwd=folder)
    return project, folder, result


def test_two_processes_write_one_complete_run_folder(moons):
    project, folder, result = moons
    assert result.returncode == 0, result.stderr
    out = folder / "run"
    # Process 0 alone wrote: one run folder, one progress line per epoch, one summary.
    assert sorted(p.name for p in folder.iterdir()) == ["moons.guidl.json", "run"]
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt", "metrics.csv", "model.safetensors", "project.guidl.json", "run.json"]
    output = result.stdout + result.stderr
    assert output.count("epoch 1/12 ") == 1 and output.count("done in") == 1
    assert "training in 2 processes (gloo, cpu): batch size 64 per process, 128 per step" in result.stderr
    assert "Traceback" not in output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert [line for line in result.stdout.splitlines() if line.startswith("{")] == [result.stdout.splitlines()[-1]]
    assert summary["ok"] and summary["epochs_completed"] == EPOCHS and summary["run_dir"] == "run"
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["processes"] == 2 and run["backend"] == "gloo"
    assert run["batch_size"] == 64 and run["evaluation"]["accuracy"] == summary["evaluation"]["accuracy"]
    assert spec.load(out / "project.guidl.json").training.epochs == EPOCHS
    # The weights as a single process saves them: no DistributedDataParallel "module." prefix.
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == EPOCHS and len(checkpoint["history"]) == EPOCHS
    weights = load_file(out / "model.safetensors")
    fresh = build(project, (2,), device="cpu").module
    assert weights.keys() == checkpoint["model"].keys() == fresh.state_dict().keys()
    assert not any(key.startswith("module.") for key in weights)
    fresh.load_state_dict(weights)  # strict


def test_two_processes_learn_as_well_as_one(moons):
    project, folder, result = moons
    assert result.returncode == 0, result.stderr
    two = json.loads(result.stdout.splitlines()[-1])["evaluation"]["accuracy"]
    one = Trainer(project).fit().evaluation.accuracy
    assert one >= 0.9 and two >= 0.9 and abs(one - two) <= 0.05, (one, two)


def test_a_two_process_run_exports_and_resumes_exactly(moons, tmp_path):
    from guidl.engine.export import export, load_trained

    _, folder, result = moons
    assert result.returncode == 0, result.stderr
    exported = export(load_trained(folder / "run"), "state_dict", tmp_path / "model.pth")
    assert exported.max_difference <= 1e-6
    half = torchrun(str(folder / "moons.guidl.json"), "--epochs", str(EPOCHS - 2), "--out", "half",
                    cwd=tmp_path)
    assert half.returncode == 0, half.stderr
    resumed = torchrun("--resume", "half", "--epochs", str(EPOCHS), "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads(result.stdout.splitlines()[-1])["final"]
    b = json.loads(resumed.stdout.splitlines()[-1])["final"]
    assert b["epoch"] == EPOCHS
    for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr"):
        assert abs(a[key] - b[key]) <= 1e-6, (key, a[key], b[key])
    rows = list(csv.DictReader((tmp_path / "half" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    assert json.loads((tmp_path / "half" / "run.json").read_text())["status"] == "finished"


def test_two_processes_train_a_graph_whose_branch_nobody_uses(tmp_path):
    # Its parameters get no gradients: DDP is told so, else it waits for them.
    project = small_graph_project(unused_branch=True, training__epochs=1)
    path = tmp_path / "graph.guidl.json"
    spec.save(project, path)
    result = torchrun(str(path), "--out", "run", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["ok"] and summary["evaluation"]["accuracy"] > 0.8
    weights = load_file(tmp_path / "run" / "model.safetensors")
    torch.manual_seed(project.training.seed)
    fresh = build(project, (1, 8, 8), device="cpu").module.state_dict()
    assert weights.keys() == fresh.keys()
    assert torch.equal(weights["aux.weight"], fresh["aux.weight"])  # never trained
    assert not torch.equal(weights["head.weight"], fresh["head.weight"])


def test_ctrl_c_on_torchrun_stops_every_process_after_the_same_batch(tmp_path):
    path = tmp_path / "p.guidl.json"
    spec.save(small_project(training__epochs=500, data__batch_size=16), path)
    out = tmp_path / "run"
    process = subprocess.Popen(torchrun_command(str(path), "--out", str(out)), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert (out / "checkpoint.pt").exists(), process.communicate()[1]
    process.send_signal(signal.SIGINT)  # torchrun passes it on to both processes
    stdout, stderr = process.communicate(timeout=60)
    # torchrun reports the signal itself (status 1 and its own traceback); the
    # processes stopped cleanly, each with status 130, and process 0 kept the run.
    assert "stopping every process within 16 batches" in stderr
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "stopped" and run["stop_reason"] == "stopped by the user"
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] >= 1 and (out / "model.safetensors").exists()
    assert "guidl train [rank" not in stderr and "guidl: internal error" not in stderr


@pytest.mark.parametrize("rank", [0, 1])
def test_a_bad_backend_is_reported_once_by_process_0(tmp_path, monkeypatch, capsys, rank):
    path = tmp_path / "p.guidl.json"
    spec.save(small_project(), path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    status = cli.main(["train", str(path), "--device", "cpu", "--backend", "nccl", "--json"])
    out, err = capsys.readouterr()
    assert status == 2
    if rank == 0:
        assert "the nccl backend needs CUDA GPUs" in err and json.loads(out)["ok"] is False
    else:
        assert out == err == ""
