"""Run folders: claiming a new one, where they go, and reading them back."""

import json
import os
import subprocess
import sys
import time

import pytest

from guidl.engine import runs
from guidl.engine.runs import (
    PROCESS_GONE, RunError, create_run_dir, latest_trained_run, process_identity, read_run, runs_root,
)


def write_run(folder, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    record = {"format": "guidl-run", "version": 1, "status": "finished", "project": "Moons",
              "started": "2026-01-01T00:00:00+00:00", **fields}
    (folder / "run.json").write_text(json.dumps(record))
    return folder


def test_two_runs_in_the_same_second_get_two_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "_stamp", lambda: "20260101-120000")
    first = create_run_dir(tmp_path / "runs", "moons")
    second = create_run_dir(tmp_path / "runs", "moons")
    third = create_run_dir(tmp_path / "runs", "moons")
    assert [first.name, second.name, third.name] == [
        "moons-20260101-120000", "moons-20260101-120000-2", "moons-20260101-120000-3"]
    assert all(p.is_dir() and not any(p.iterdir()) for p in (first, second, third))


def test_runs_go_beside_the_project_never_inside_a_run_and_unsaved_ones_to_the_state_folder(tmp_path):
    state = tmp_path / "state"
    assert runs_root(None, state) == state / "runs"
    project = tmp_path / "work" / "moons.guidl.json"
    assert runs_root(project, state) == tmp_path / "work" / "runs"
    run = write_run(tmp_path / "work" / "runs" / "moons-20260101-120000")
    (run / "project.guidl.json").write_text("{}")
    assert runs_root(run / "project.guidl.json", state) == tmp_path / "work" / "runs"


def test_the_latest_trained_run_skips_running_failed_damaged_and_other_projects(tmp_path):
    root = tmp_path / "runs"
    assert latest_trained_run(root) is None
    old = write_run(root / "a", started="2026-01-01T00:00:00+00:00")
    newer = write_run(root / "b", started="2026-01-02T00:00:00+00:00", project="Other")
    for run in (old, newer):
        (run / "model.safetensors").write_bytes(b"")
    # Finished, but its weights are gone (deleted, or never copied along): nothing to open.
    write_run(root / "i", started="2026-01-06T00:00:00+00:00")
    write_run(root / "c", started="2026-01-03T00:00:00+00:00", status="failed")
    write_run(root / "d", started="2026-01-04T00:00:00+00:00", status="running",
              **process_identity())  # this very process: still running
    write_run(root / "e", started="2026-01-05T00:00:00+00:00", epochs="many")  # wrong type
    (root / "f").mkdir()
    (root / "f" / "run.json").write_text("{not json")
    write_run(root / "g", started=5)  # wrong type
    (root / "h").mkdir()
    (root / "h" / "run.json").write_text("[1, 2]")
    assert latest_trained_run(root) == newer
    assert latest_trained_run(root, "Moons") == old
    assert latest_trained_run(root, "Nobody") is None


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('"text"', "a JSON object was expected"),
    ('{"format": "guidl-run", "status": "running", "pid": "12"}', "pid must be int or null, got str"),
    ('{"format": "guidl-run", "status": "exploded"}', "unknown status"),
    ('{"format": "other", "status": "finished"}', "not a guidl run record"),
    (b"\xff\xfe", "not valid JSON"),
])
def test_a_damaged_run_record_is_a_clear_error(tmp_path, content, message):
    (tmp_path / "run.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(RunError, match=message):
        read_run(tmp_path)
    with pytest.raises(RunError, match="not a run folder"):
        read_run(tmp_path / "missing")


def test_a_run_whose_process_is_gone_is_read_and_rewritten_as_failed(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that no longer runs
    identity = {**process_identity(), "pid": child.pid}
    write_run(tmp_path, status="running", **identity)
    stale = tmp_path / ".checkpoint.pt.x1y2.tmp.pt"  # what a kill mid-write leaves
    stale.write_bytes(b"\0" * 100)
    (tmp_path / "notes.tmp").write_text("the user's")
    record = read_run(tmp_path)
    assert record["status"] == "failed" and record["error"] == PROCESS_GONE
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "failed"
    assert not stale.exists() and (tmp_path / "notes.tmp").exists()


def test_a_live_run_stays_running(tmp_path):
    write_run(tmp_path, status="running", **process_identity())
    assert read_run(tmp_path)["status"] == "running"


def test_a_reused_pid_or_a_reboot_does_not_keep_a_dead_run_alive(tmp_path):
    write_run(tmp_path / "reused", status="running",
              **{**process_identity(), "process_started": 1.0})  # our pid, another start time
    assert read_run(tmp_path / "reused")["status"] == "failed"
    write_run(tmp_path / "rebooted", status="running", **{**process_identity(), "boot_time": 1.0})
    assert read_run(tmp_path / "rebooted")["status"] == "failed"


def test_a_run_without_a_process_to_check_is_judged_by_its_heartbeat(tmp_path):
    fresh = write_run(tmp_path / "fresh", status="running")  # an old guidl: no pid
    assert read_run(fresh)["status"] == "running"
    stale = write_run(tmp_path / "stale", status="running", pid=1, host="another-machine")
    old = time.time() - runs.STALE_AFTER_S - 10
    os.utime(stale / "run.json", (old, old))
    assert read_run(stale)["status"] == "failed"


def test_a_dead_run_on_a_read_only_folder_is_still_reported_failed(tmp_path, monkeypatch):
    write_run(tmp_path, status="running", **{**process_identity(), "boot_time": 1.0})

    def refuse(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(runs, "atomic_write_text", refuse)
    assert read_run(tmp_path)["status"] == "failed"
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "running"


def test_a_project_finds_the_runs_trained_from_its_own_file(tmp_path):
    root = tmp_path / "runs"
    mine = write_run(root / "a", source=str(tmp_path / "moons.guidl.json"))
    theirs = write_run(root / "b", started="2026-01-02T00:00:00+00:00", source=str(tmp_path / "other.guidl.json"))
    for run in (mine, theirs):
        (run / "model.safetensors").write_bytes(b"")
    assert latest_trained_run(root, source=tmp_path / "moons.guidl.json") == mine
    assert latest_trained_run(root, "Moons", source=tmp_path / "none.guidl.json") is None


@pytest.mark.parametrize("pid", [-1, 0, 2**40])
def test_a_running_record_with_an_impossible_pid_is_a_clear_error(tmp_path, pid):
    write_run(tmp_path, status="running", **{**process_identity(), "pid": pid})
    with pytest.raises(RunError, match="pid must be a process id"):
        read_run(tmp_path)
    # process_gone itself never raises for one (psutil.Process(-1) is a ValueError)
    record = {**process_identity(), "pid": pid, "status": "running"}
    assert runs.process_gone(record, time.time()) in (True, False)


def _unblock(fifo):
    """Open ``fifo`` for writing, so that a reader stuck opening it returns."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # no reader was waiting


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_run_record_that_is_a_fifo_is_refused_at_once_by_every_reader(tmp_path):
    import threading

    os.mkfifo(tmp_path / "run.json")
    outcome = {}

    def mark():
        outcome["marked"] = runs.mark_failed(tmp_path, "killed")

    thread = threading.Thread(target=mark, daemon=True)
    thread.start()
    thread.join(5)
    hung = thread.is_alive()
    _unblock(tmp_path / "run.json")
    thread.join(5)
    assert not hung, "mark_failed waited for a writer to the FIFO"
    assert outcome["marked"] is None
    with pytest.raises(RunError, match="named pipe"):
        read_run(tmp_path)



def test_a_free_run_folder_is_a_missing_path_or_an_empty_real_folder(tmp_path):
    assert runs.is_free_run_dir(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    assert runs.is_free_run_dir(tmp_path / "empty")
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    write_run(tmp_path / "used")
    assert not any(runs.is_free_run_dir(tmp_path / name) for name in ("link", "file", "used"))
    with pytest.raises(runs.RunExistsError):
        runs.claim_run_dir(tmp_path / "link")
    assert runs.claim_run_dir(tmp_path / "empty") == tmp_path / "empty"


def test_a_run_whose_folder_is_held_is_alive_whatever_its_record_says(tmp_path):
    # A training holds its folder's lock while it lives: a record judged stale
    # (its heartbeat late, say) does not get its temporary files removed.
    stale_record = write_run(tmp_path, status="running", pid=1, host="elsewhere")
    old = time.time() - runs.STALE_AFTER_S - 10
    os.utime(stale_record / "run.json", (old, old))
    writing = tmp_path / ".checkpoint.pt.live.tmp.pt"
    writing.write_bytes(b"\0" * 100)
    held = runs.lock_run_dir(tmp_path)
    if held is None:
        pytest.skip("no file locks here")
    try:
        assert read_run(tmp_path)["status"] == "running"
        assert writing.exists()
    finally:
        runs.unlock_run_dir(held)
    assert read_run(tmp_path)["status"] == "failed" and not writing.exists()


def test_a_stopped_run_with_its_weights_holds_a_trained_model(tmp_path):
    root = tmp_path / "runs"
    finished = write_run(root / "a", started="2026-01-01T00:00:00+00:00")
    (finished / "model.safetensors").write_bytes(b"")
    write_run(root / "b", started="2026-01-02T00:00:00+00:00", status="stopped")  # no weights
    assert latest_trained_run(root) == finished
    stopped = write_run(root / "c", started="2026-01-03T00:00:00+00:00", status="stopped")
    (stopped / "model.safetensors").write_bytes(b"")
    assert latest_trained_run(root) == stopped
