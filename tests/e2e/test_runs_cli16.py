"""`guidl runs` as a user runs it: a real training's run folder beside a failed
one, listed as a table and as JSON, with the settings that differ from the
project."""

import json

from guidl import cli, spec


def test_runs_lists_a_trained_run_and_a_failed_one_with_their_differences(tmp_path, root, capsys):
    project = spec.load(root / "examples/moons_mlp.guidl.json")
    project.data.params["n_samples"] = 200
    project.training.epochs = 2
    path = tmp_path / "moons.guidl.json"
    spec.save(project, path)
    # In this process: a child would spend seconds importing torch again.
    assert cli.main(["train", str(path), "--out", str(tmp_path / "runs" / "moons-trained")]) == 0
    capsys.readouterr()
    failed = tmp_path / "runs" / "moons-failed"
    failed.mkdir()
    (failed / "run.json").write_text(json.dumps({
        "format": "guidl-run", "version": 1, "status": "failed", "project": project.name,
        "started": "2099-01-01T00:00:00+00:00", "epochs": 2, "epochs_completed": 0,
        "error": "the dataset 'moons' could not be prepared: n_samples must be at least 10"}))
    (failed / "labels.json").write_text(json.dumps({"format": "guidl-run-labels", "version": 1,
                                                    "name": "broken data", "tags": ["bug"], "note": ""}))
    # The project moves on after the run: a new learning rate and a wider first layer.
    project.training.optimizer.params["lr"] = 0.003
    project.model.layers[0].params["out_features"] = 24
    spec.save(project, path)

    assert cli.main(["runs", str(path)]) == 0
    header, first, second = capsys.readouterr().out.splitlines()
    assert header.split()[:5] == ["name", "status", "started", "duration", "epochs"]
    assert "best val_accuracy" in header and "differences from the project" in header
    assert first.startswith("moons-trained") and " finished " in first and " 2/2 " in first
    assert "model.layers[0].params.out_features 24 -> 16" in first
    assert "training.optimizer.params.lr 0.003 -> 0.01" in first and "cpu" in first
    assert second.startswith("broken data") and "failed: the dataset 'moons' could not" in second
    assert " 0/2 " in second and "bug" in second and "(no readable project copy)" in second

    assert cli.main(["runs", str(tmp_path / "runs"), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["root"] == str(tmp_path / "runs")
    ran, broke = listing["runs"]
    record = json.loads((tmp_path / "runs" / "moons-trained" / "run.json").read_text())
    assert ran["status"] == "finished" and ran["epochs_completed"] == 2 and ran["metric"] == "val_accuracy"
    assert ran["final"] == record["final"]["val_accuracy"] and ran["best"] >= ran["final"]
    assert (broke["name"], broke["status"], broke["tags"]) == ("broken data", "failed", ["bug"])
    assert "differences" not in ran  # a runs folder was given, not a project

    assert cli.main(["runs", str(path), "--json"]) == 0
    ran = json.loads(capsys.readouterr().out)["runs"][0]
    assert {d["path"]: (d["project"], d["run"]) for d in ran["differences"]} == {
        "model.layers[0].params.out_features": (24, 16), "training.optimizer.params.lr": (0.003, 0.01)}


def test_runs_of_a_missing_or_an_empty_folder(tmp_path, capsys, monkeypatch):
    assert cli.main(["runs", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such project file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["runs", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out == f"no runs in {tmp_path / 'empty'}\n"
    monkeypatch.chdir(tmp_path / "empty")
    assert cli.main(["runs"]) == 2  # no ./runs here
    assert "no runs folder here" in capsys.readouterr().err
    (tmp_path / "bad.guidl.json").write_text("{not json")
    assert cli.main(["runs", str(tmp_path / "bad.guidl.json")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def _hand_made_run(folder, name: str, *, error: str = "broken", labels: dict | None = None):
    """A failed run's folder as guidl writes one, without training anything."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({
        "format": "guidl-run", "version": 1, "status": "failed", "project": name,
        "started": "2099-01-01T00:00:00+00:00", "epochs": 2, "epochs_completed": 0, "error": error}))
    if labels is not None:
        (folder / "labels.json").write_text(json.dumps(
            {"format": "guidl-run-labels", "version": 1, "name": None, "tags": [], "note": "", **labels}))


def test_a_reader_that_stops_after_the_first_line_ends_guidl_quietly(tmp_path):
    import subprocess
    import sys

    # A table far larger than a pipe's buffer (64 KiB): guidl is still writing it when
    # the reader goes, as `guidl runs | head -1` does.
    tags = [f"{i:02d}" + "t" * 48 for i in range(50)]
    for i in range(60):
        _hand_made_run(tmp_path / "runs" / f"run-{i:02d}", "p", labels={"tags": tags})
    child = subprocess.Popen([sys.executable, "-m", "guidl", "runs", str(tmp_path / "runs")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout.readline().split()[:2] == [b"name", b"status"]
    child.stdout.close()
    error = child.stderr.read().decode()
    assert child.wait(timeout=120) == 141  # as a shell reports a process ended by SIGPIPE
    assert error == ""  # no 'internal error: BrokenPipeError', no traceback


def test_control_characters_of_a_shared_runs_folder_never_reach_the_terminal(tmp_path, capsys):
    # A label or record written by someone else: a screen clear, a window title, a colour,
    # a carriage return and a right-to-left override.
    _hand_made_run(tmp_path / "runs" / "evil", "p", error="bad\x1b[31m red\roverwritten\u202e",
                   labels={"name": "evil\x1b[2J name", "tags": ["t\x1b]0;title\x07"]})
    assert cli.main(["runs", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert not any(char in out for char in "\x1b\x07\r\u202e")
    header, row = out.splitlines()  # the run is one line
    assert row.startswith(r"evil\x1b[2J name  failed: bad\x1b[31m red\roverwritten\u202e")
    assert r"t\x1b]0;title\x07" in row

    assert cli.main(["runs", str(tmp_path / "runs"), "--json"]) == 0
    out = capsys.readouterr().out
    assert not any(char in out for char in "\x1b\x07\r\u202e")  # JSON escapes them itself
    run = json.loads(out)["runs"][0]
    assert (run["name"], run["tags"]) == ("evil\x1b[2J name", ["t\x1b]0;title\x07"])  # kept as they are


def test_unreadable_runs_are_counted_and_runs_in_dot_runs_are_pointed_at(tmp_path, capsys, monkeypatch):
    project_dir, work = tmp_path / "proj", tmp_path / "work"
    project_dir.mkdir()
    source = project_dir / "p.guidl.json"
    project = spec.load(cli_root() / "examples/moons_mlp.guidl.json")
    spec.save(project, source)
    _hand_made_run(project_dir / "runs" / "ok", project.name)
    (project_dir / "runs" / "torn").mkdir()
    (project_dir / "runs" / "torn" / "run.json").write_text("{half")
    assert cli.main(["runs", str(project_dir / "runs")]) == 0
    captured = capsys.readouterr()
    assert "1 folder skipped (run.json unreadable)" in captured.err and "ok" in captured.out
    assert cli.main(["runs", str(project_dir / "runs"), "--json"]) == 0
    assert [p.rsplit("/", 1)[-1] for p in json.loads(capsys.readouterr().out)["skipped"]] == ["torn"]

    # guidl train/sweep ran from another folder: the project's runs are in ./runs there.
    for child in (project_dir / "runs").iterdir():
        for f in child.iterdir():
            f.unlink()
        child.rmdir()
    _hand_made_run(work / "runs" / "a", project.name)
    _hand_made_run(work / "runs" / "b", "someone else's")
    monkeypatch.chdir(work)
    assert cli.main(["runs", str(source)]) == 0
    out = capsys.readouterr().out
    assert f"no runs in {project_dir / 'runs'}" in out
    assert "./runs holds 1 run of this project" in out and "guidl runs ./runs" in out


def cli_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]
