"""The runs of a folder as the Runs panel and `guidl runs` show them: summaries,
labels, deleting, and the settings that differ. Run folders are written by hand
in the shapes `guidl train` writes (no training here)."""

import json
import math
import os
import time

import numpy as np
import pytest

from guidl import spec
from guidl.engine import run_index, runs
from guidl.engine.run_index import (
    list_summaries, read_metrics, run_project, runs_folder_of, settings_diff, summarize,
)
from guidl.engine.runs import (
    PROCESS_GONE, RunBusyError, RunError, RunLabels, delete_run, lock_run_dir, process_identity,
    read_labels, read_run, unlock_run_dir, write_labels,
)

HEADER = ("epoch,train_loss,train_accuracy,train_mae,val_loss,val_accuracy,val_mae,lr,epoch_time,"
          "samples_per_s\n")


def make_run(folder, *, status="finished", metrics=None, project=None, **fields):
    """A run folder as RunFolder writes it: run.json, and metrics.csv and the
    project copy when given (``metrics``: rows after the header)."""
    folder.mkdir(parents=True)
    record = {"format": "guidl-run", "version": 1, "status": status, "project": "Two moons MLP",
              "started": "2026-03-01T10:00:00+00:00", "updated": "2026-03-01T10:02:05+00:00",
              "seed": 0, "device": "cpu (2 cores, 2 threads)", "epochs": 3, "epochs_completed": 3,
              "dataset": {"name": "moons", "task": "classification"}, "task": None, "notes": [],
              "stop_reason": None, **fields}
    (folder / "run.json").write_text(json.dumps(record))
    if metrics is not None:
        (folder / "metrics.csv").write_text(metrics)
    if project is not None:
        spec.save(project, folder / "project.guidl.json")
    return folder


@pytest.fixture
def moons(root):
    return spec.load(root / "examples/moons_mlp.guidl.json")


def test_summaries_of_finished_stopped_pruned_failed_and_dead_runs(tmp_path):
    root = tmp_path / "runs"
    make_run(root / "a-finished", metrics=HEADER + "1,0.6,0.7,,0.5,0.80,,0.01,0.1,100\n"
                                                   "2,0.4,0.8,,0.4,0.90,,0.01,0.1,100\n"
                                                   "3,0.3,0.9,,0.45,0.85,,0.01,0.1,100\n",
             elapsed_s=125.0)
    make_run(root / "b-stopped", status="stopped", stop_reason="stopped by the user at epoch 1",
             started="2026-03-02T10:00:00+00:00", updated="2026-03-02T10:00:30+00:00", epochs_completed=1,
             metrics=HEADER + "1,0.6,0.7,,0.5,,,0.01,0.1,100\n")
    make_run(root / "c-pruned", status="pruned", started="2026-03-03T10:00:00+00:00", epochs_completed=2,
             stop_reason="pruned by Optuna's median pruner at epoch 2",
             sweep={"study": "lr", "storage": "runs/sweeps/lr.journal", "trial": 4,
                    "params": {"training.optimizer.params.lr": 0.3}, "variant": None},
             metrics=HEADER + "1,0.6,0.7,,0.9,0.55,,0.3,0.1,100\n2,0.6,0.7,,0.8,0.60,,0.3,0.1,100\n")
    make_run(root / "d-failed", status="failed", error="CUDA out of memory", started="2026-03-04T10:00:00+00:00",
             epochs_completed=0)
    # Written on another machine, whose heartbeat stopped two hours ago: its process is gone.
    dead = make_run(root / "e-dead", status="running", started="2026-03-05T10:00:00+00:00", pid=4242,
                    host="another-machine", boot_time=1.0, process_started=2.0,
                    dataset={"name": "wine", "task": "regression"},
                    metrics=HEADER + "1,0.6,,0.9,0.5,,0.7,0.01,0.1,100\n2,0.5,,0.8,0.4,,0.5,0.01,0.1,100\n"
                                     "3,0.4,,0.7,0.45,,0.6,0.01,0.1,100\n")
    old = time.time() - 2 * runs.STALE_AFTER_S
    os.utime(dead / "run.json", (old, old))
    (root / "f-damaged").mkdir()
    (root / "f-damaged" / "run.json").write_text("{not json")
    (root / "notes.txt").write_text("not a run")

    summaries = list_summaries(root)
    assert [s.path.name for s in summaries] == ["a-finished", "b-stopped", "c-pruned", "d-failed", "e-dead"]
    finished, stopped, pruned, failed, dead = summaries
    assert (finished.status, finished.cause, finished.metric, finished.direction) == (
        "finished", None, "val_accuracy", "maximize")
    assert (finished.best, finished.best_epoch, finished.final) == (0.90, 2, 0.85)
    assert finished.duration_s == 125.0 and finished.epochs_completed == finished.epochs == 3
    assert finished.started.isoformat() == "2026-03-01T10:00:00+00:00"
    # No validation accuracy at all: the loss is the figure shown, not a blank one.
    assert (stopped.status, stopped.cause, stopped.metric, stopped.best) == (
        "stopped", "stopped by the user at epoch 1", "val_loss", 0.5)
    assert stopped.duration_s == 30.0  # no elapsed_s: the span its record covers
    assert pruned.status == "pruned" and pruned.cause.startswith("pruned by Optuna")
    assert pruned.sweep["trial"] == 4 and (pruned.best, pruned.final) == (0.60, 0.60)
    assert (failed.status, failed.cause, failed.best, failed.final) == ("failed", "CUDA out of memory", None, None)
    assert (dead.status, dead.cause) == ("failed", PROCESS_GONE)
    # Regression: the MAE, lower is better.
    assert (dead.metric, dead.direction, dead.best, dead.best_epoch, dead.final) == ("val_mae", "minimize", 0.5, 2, 0.6)
    row = json.loads(json.dumps(pruned.to_dict()))
    assert row["status"] == "pruned" and row["path"] == str(root / "c-pruned") and row["best"] == 0.6
    assert row["sweep"]["params"] == {"training.optimizer.params.lr": 0.3}


def test_the_main_figure_follows_the_task_and_falls_back_on_run_json(tmp_path):
    autoencoder = make_run(tmp_path / "ae", task={"type": "reconstruction", "params": {}},
                           metrics=HEADER.strip() + ",train_mse,val_mse,val_psnr\n"
                                   "1,0.1,,,0.09,,,0.001,1,10,0.1,0.09,18.5\n2,0.1,,,0.08,,,0.001,1,10,0.1,0.08,19.5\n")
    summary = summarize(autoencoder)  # the loss, as a sweep of it optimises by default
    assert (summary.metric, summary.direction, summary.best, summary.final) == ("val_loss", "minimize", 0.08, 0.08)
    gan = make_run(tmp_path / "gan", task={"type": "gan", "params": {}},
                   metrics=HEADER.strip() + ",d_loss,g_loss,sample_diversity\n"
                           "1,2.5,,,,,,0.0002,1,10,1.1,2.5,0.7\n2,2.1,,,,,,0.0002,1,10,0.9,2.9,0.8\n")
    summary = summarize(gan)  # no judge of its samples (the data has no classes): the generator's loss
    assert (summary.metric, summary.best, summary.best_epoch, summary.final) == ("g_loss", 2.5, 1, 2.9)
    # metrics.csv lost: the record's last epoch still gives the figure.
    bare = make_run(tmp_path / "bare", final={"epoch": 3, "val_loss": 0.3, "val_accuracy": 0.91})
    summary = summarize(bare)
    assert (summary.metric, summary.best, summary.final, summary.best_epoch) == ("val_accuracy", 0.91, 0.91, 3)


def test_metrics_read_by_column_with_blanks_as_nan_and_a_size_guard(tmp_path, monkeypatch):
    run = make_run(tmp_path / "run", metrics=HEADER + "1,0.6,0.7,,0.5,0.8,,0.01,0.1,100\n"
                                                        "not,an,epoch\n"
                                                        "2,0.4,0.8,,,0.9,,0.01,0.1,100\n")
    columns = read_metrics(run)
    assert list(columns["epoch"]) == [1.0, 2.0] and columns["val_accuracy"].dtype == np.float64
    assert columns["val_loss"][0] == 0.5 and math.isnan(columns["val_loss"][1])
    assert np.isnan(columns["train_mae"]).all()
    assert read_metrics(tmp_path / "missing") == {}
    monkeypatch.setattr(run_index, "MAX_METRICS_BYTES", 64)
    assert read_metrics(run) == {}  # larger than any metrics file: not read at all
    (tmp_path / "fifo").mkdir()
    os.mkfifo(tmp_path / "fifo" / "metrics.csv")  # would block a plain open() forever
    assert read_metrics(tmp_path / "fifo") == {}


def test_labels_round_trip_and_a_damaged_file_reads_as_no_labels(tmp_path):
    run = make_run(tmp_path / "run")
    assert read_labels(run) == RunLabels()
    written = write_labels(run, RunLabels("  lr 0.01\nbaseline ", [" best", "adam", "best", ""], "Ran on\nthe laptop"))
    assert written == RunLabels("lr 0.01 baseline", ["best", "adam"], "Ran on\nthe laptop")
    assert read_labels(run) == written
    assert json.loads((run / "labels.json").read_text())["format"] == "guidl-run-labels"
    assert summarize(run).name == "lr 0.01 baseline" and summarize(run).tags == ["best", "adam"]
    assert read_run(run)["status"] == "finished"  # run.json untouched

    with pytest.raises(ValueError, match="at most 200 characters"):
        write_labels(run, RunLabels("x" * 201))
    with pytest.raises(RunError, match="not a run folder"):
        write_labels(tmp_path, RunLabels("x"))
    assert not (tmp_path / "labels.json").exists()

    for damaged in (b"{not json", b"\xff\xfe", b"[1, 2]", b'{"format": "something else", "name": "x"}'):
        (run / "labels.json").write_bytes(damaged)
        assert read_labels(run) == RunLabels()
        assert summarize(run).name == "run"  # listed all the same, under its folder's name
    # One bad field loses that field only.
    (run / "labels.json").write_text(json.dumps({"format": "guidl-run-labels", "version": 1, "name": 5,
                                                 "tags": ["ok", 3, "y" * 500], "note": "kept"}))
    assert read_labels(run) == RunLabels(None, ["ok"], "kept")


def test_delete_removes_a_run_and_refuses_anything_else(tmp_path):
    finished = make_run(tmp_path / "runs" / "finished")
    (finished / "model.safetensors").write_bytes(b"weights")
    delete_run(finished)
    assert not finished.exists()

    # A user's folder that happens to hold a run.json: never deleted.
    user = tmp_path / "thesis"
    user.mkdir()
    (user / "run.json").write_text('{"my": "data"}')
    (user / "chapter1.tex").write_text("precious")
    with pytest.raises(RunError, match="not a run folder"):
        delete_run(user)
    plain = tmp_path / "photos"
    plain.mkdir()
    (plain / "a.png").write_bytes(b"x")
    with pytest.raises(RunError, match="not a run folder"):
        delete_run(plain)
    with pytest.raises(RunError, match="not a run folder"):
        delete_run(plain / "a.png")
    link = tmp_path / "link"
    kept = make_run(tmp_path / "runs" / "kept")
    link.symlink_to(kept)
    with pytest.raises(RunError, match="is a link"):
        delete_run(link)
    assert (user / "chapter1.tex").read_text() == "precious" and (plain / "a.png").exists() and kept.exists()

    # A run's folder whose record is damaged holds only a run's files: it may go.
    damaged = make_run(tmp_path / "runs" / "damaged", metrics=HEADER)
    (damaged / "run.json").write_text("{trunc")
    trashed = []
    delete_run(damaged, remove=trashed.append)  # e.g. a move to the trash instead
    assert trashed == [damaged] and damaged.exists()


def test_delete_refuses_a_run_that_is_training(tmp_path):
    live = make_run(tmp_path / "live", status="running", **process_identity())  # this process: alive
    with pytest.raises(RunBusyError, match="being trained"):
        delete_run(live)
    assert read_run(live)["status"] == "running"
    held = make_run(tmp_path / "held", status="running", **process_identity())
    fd = lock_run_dir(held)  # as RunFolder holds its folder for the whole training
    try:
        with pytest.raises(RunBusyError):
            delete_run(held)
    finally:
        unlock_run_dir(fd)
    assert live.exists() and held.exists()
    # Its process gone, it is a failed run like any other.
    gone = make_run(tmp_path / "gone", status="running", pid=4242, host="another-machine")
    old = time.time() - 2 * runs.STALE_AFTER_S
    os.utime(gone / "run.json", (old, old))
    delete_run(gone)
    assert not gone.exists()


def test_settings_diff_names_the_changed_paths_and_a_damaged_copy_is_none(tmp_path, moons):
    trained = moons.copy()
    trained.training.optimizer.params["lr"] = 0.05
    trained.model.layers[0].params["out_features"] = 32
    run = make_run(tmp_path / "run", project=trained)
    copy = run_project(run)
    assert copy == trained.to_dict()
    changes = settings_diff(copy, moons.to_dict())
    assert {c.path: (c.before, c.after) for c in changes} == {
        "model.layers[0].params.out_features": (16, 32), "training.optimizer.params.lr": (0.01, 0.05)}
    renamed = moons.copy()
    renamed.name = "Another name"
    assert settings_diff(copy, renamed.to_dict()) == changes  # the name is not a setting
    assert run_project(tmp_path / "missing") is None
    (run / "project.guidl.json").write_text('{"format": "guidl-project", "version": 1, "model": 3}')
    assert run_project(run) is None


def test_the_runs_folder_of_a_project_a_runs_folder_a_run_and_nothing(tmp_path, monkeypatch):
    project = tmp_path / "work" / "moons.guidl.json"
    run = make_run(tmp_path / "work" / "runs" / "moons-1")
    project.write_text("{}")
    assert runs_folder_of(project) == tmp_path / "work" / "runs"
    assert runs_folder_of(tmp_path / "work" / "runs") == tmp_path / "work" / "runs"
    assert runs_folder_of(run) == tmp_path / "work" / "runs"
    assert runs_folder_of(run / "project.guidl.json") == tmp_path / "work" / "runs"  # a run's copy
    assert runs_folder_of(tmp_path / "work") == tmp_path / "work" / "runs"  # the project's folder
    monkeypatch.chdir(tmp_path)
    assert runs_folder_of(None) == tmp_path / "runs"
