"""Reopening a project picks the run with its very settings, not a sweep's
trial that recorded the same file as its source."""

import json

from guidl import spec
from guidl.engine.run_index import latest_run_of


def write_run(folder, project, started, **fields):
    folder.mkdir(parents=True)
    record = {"format": "guidl-run", "version": 1, "status": "finished", "project": project.name,
              "started": started, **fields}
    (folder / "run.json").write_text(json.dumps(record))
    spec.save(project, folder / "project.guidl.json")
    (folder / "model.safetensors").write_bytes(b"")  # its final weights (their content is not read)
    return folder


def test_the_run_with_the_projects_settings_wins_over_newer_sweep_trials(root, tmp_path):
    project = spec.load(root / "examples/moons_mlp.guidl.json")
    path = tmp_path / "moons.guidl.json"
    spec.save(project, path)
    runs, state = tmp_path / "runs", tmp_path / "state"
    source = str(path.absolute())
    mine = write_run(runs / "moons-1", project, "2026-01-01T00:00:00+00:00", source=source)
    trial = project.copy()
    trial.training.optimizer.params["lr"] = 0.5  # fits (same model and data), other settings
    for i in range(3):
        write_run(runs / f"moons-s-t00{i}", trial, f"2026-01-02T00:00:0{i}+00:00", source=source,
                  sweep={"study": "s", "trial": i})
    assert latest_run_of(path, project, state) == mine
    # Renamed since: the name is no setting, and another file beside it finds the same run.
    renamed = project.copy()
    renamed.name = "Renamed"
    assert latest_run_of(tmp_path / "copy.guidl.json", renamed, state) == mine
    # Edited since (no run has these settings): the newest that fits, as before.
    edited = project.copy()
    edited.training.epochs += 1
    assert latest_run_of(path, edited, state) == runs / "moons-s-t002"
    # A model no run trained: none of them.
    other = project.copy()
    other.model.layers[0].params["out_features"] = 3
    assert latest_run_of(path, other, state) is None


def test_a_finished_run_whose_weights_are_gone_is_passed_over_for_the_next_with_weights(root, tmp_path):
    project = spec.load(root / "examples/moons_mlp.guidl.json")
    path = tmp_path / "moons.guidl.json"
    spec.save(project, path)
    runs, state = tmp_path / "runs", tmp_path / "state"
    older = write_run(runs / "moons-1", project, "2026-01-01T00:00:00+00:00", source=str(path.absolute()))
    newest = write_run(runs / "moons-2", project, "2026-01-02T00:00:00+00:00", source=str(path.absolute()))
    assert latest_run_of(path, project, state) == newest
    (newest / "model.safetensors").unlink()  # deleted by hand, or never copied along
    assert latest_run_of(path, project, state) == older
    assert latest_run_of(newest / "project.guidl.json", project, state) == older  # opened from inside it


def test_a_run_still_fits_after_its_nodes_were_moved_on_the_canvas(root, tmp_path):
    from guidl.engine.run_index import run_fits

    project = spec.load(root / "examples/moons_mlp.guidl.json")
    run = write_run(tmp_path / "runs" / "moons-1", project, "2026-01-01T00:00:00+00:00")
    moved = project.copy()
    moved.model.layers[2].position = [120.0, 40.0]  # a layout-only edit: the model is the same
    assert run_fits(run, moved)
    assert latest_run_of(tmp_path / "moons.guidl.json", moved, tmp_path / "state") == run
    moved.model.layers[2].params["out_features"] = 3  # another model
    assert not run_fits(run, moved)
