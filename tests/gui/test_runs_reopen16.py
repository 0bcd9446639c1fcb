"""Opening a project opens its latest finished run: Results, Evaluate, Export
and Try work without training again; and any other run can be made current.
The runs are made outside the window, by `guidl train` and by the engine."""

import json

import pytest
import torch
from PySide6.QtCore import Qt

from guidl import spec
from helpers import small_moons


def moons(lr: float):
    return small_moons(epochs=2, lr=lr)


def test_a_reopened_project_gets_its_latest_run_back_and_any_run_can_be_made_current(window, qtbot, tmp_path,
                                                                                      monkeypatch):
    from safetensors.torch import load_file

    from guidl.cli import main
    from guidl.engine.callbacks import RunFolder
    from guidl.engine.export import TrainedModel
    from guidl.engine.trainer import Trainer
    from guidl.qt.controllers.export import with_run_record

    path = tmp_path / "moons.guidl.json"
    spec.save(moons(0.01), path)
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(path)]) == 0  # `guidl train`, in this process: torch is loaded already
    [cli_run] = (tmp_path / "runs").iterdir()
    later = tmp_path / "runs" / "later"  # newer, from the same file, with another learning rate (a sweep's trial)
    Trainer(moons(0.2), callbacks=[RunFolder(later, source=path)]).fit()

    # What `guidl train` noted of its run (the Train tab shows it while that run is current).
    record = json.loads((cli_run / "run.json").read_text())
    busy = "other programs kept the CPU busy during this run (epoch 2)"
    (cli_run / "run.json").write_text(json.dumps({**record, "notes": [busy]}))
    assert not window.export_action.isEnabled()
    assert window.open_path(path)
    qtbot.waitUntil(lambda: window.evaluation.thread is None and window.trainer is not None, timeout=120_000)
    assert window.run_dir == cli_run  # the run with the file's very settings, not the newer one
    assert not window.train_message.isHidden() and window.train_message.text() == busy
    started = run_line(window)
    assert started.startswith(f"Run {cli_run.name} · finished · started 20") and started.endswith(
        " · the project's settings")
    final = json.loads((cli_run / "run.json").read_text())["final"]["val_accuracy"]
    assert window.last_result.evaluation.accuracy == pytest.approx(final)
    assert f"accuracy <b>{final:.2%}</b>" in window.results.headline.text()
    assert window.export_action.isEnabled() and window.evaluate_action.isEnabled()
    window.pretrained.refresh()  # what the Try tab shows when it comes to the front
    assert window.pretrained.try_panel.has_model and window.pretrained.trained_model() is not None
    runs = window.runs
    model = runs.panel.model
    assert model.index(model.row_of(cli_run), 1).data(Qt.ItemDataRole.FontRole).bold()  # the current run
    assert len(model.rows) == 2  # the guidl train run and the engine's

    # Make the other run current: its weights become the window's model. It was renamed in the Runs tab.
    runs.set_labels(later, {"name": "high lr"})
    assert runs.make_current(later)
    qtbot.waitUntil(lambda: window.evaluation.thread is None and window.run_dir == later, timeout=120_000)
    final = json.loads((later / "run.json").read_text())["final"]["val_accuracy"]
    assert window.last_result.evaluation.accuracy == pytest.approx(final)
    assert f"the run high lr ({later.name})" in window.status_text.text()
    assert window.train_message.isHidden()  # the other run's note: not this one's
    # Results names the run it now shows, and that the project does not have its settings.
    assert run_line(window).startswith("Run high lr · finished · started 20")
    assert run_line(window).endswith(" · settings differ from the project: optimizer.lr 0.01 -> 0.2")
    # It follows edits of the project (once typing settles), from the copies already read.
    reads = []
    with monkeypatch.context() as patch:
        patch.setattr("guidl.engine.run_index.run_project", lambda p: reads.append(p))
        window.document.apply(lambda p: p.training.optimizer.params.update(lr=0.2), "lr")
        qtbot.waitUntil(lambda: run_line(window).endswith(" · the project's settings"), timeout=5_000)
        window.document.undo_stack.undo()
        qtbot.waitUntil(lambda: "optimizer.lr 0.01 -> 0.2" in run_line(window), timeout=5_000)
    assert reads == []
    assert model.index(model.row_of(later), 1).data(Qt.ItemDataRole.FontRole).bold()
    assert not model.index(model.row_of(cli_run), 1).data(Qt.ItemDataRole.FontRole)

    # Its export loads, with the run's weights.
    trained = with_run_record(TrainedModel.from_trainer(window.trainer), window.run_dir)
    assert trained.trained
    window.export_to(trained, "safetensors", tmp_path / "model")
    qtbot.waitUntil(lambda: window._exporter is None, timeout=120_000)
    assert window.last_export.path == tmp_path / "model.safetensors"
    exported, saved = load_file(tmp_path / "model.safetensors"), load_file(later / "model.safetensors")
    assert exported.keys() == saved.keys()
    for key, tensor in saved.items():
        assert torch.equal(exported[key], tensor), key


def run_line(window) -> str:
    """The Results tab's line naming its run, as plain text; "" when hidden."""
    import html
    import re

    line = window.results.run_line
    return "" if line.isHidden() else html.unescape(re.sub("<[^>]+>", "", line.text()))


def test_a_finished_run_whose_weights_are_gone_is_not_shown_as_trained(window, qtbot, tmp_path):
    from guidl.engine.callbacks import RunFolder
    from guidl.engine.trainer import Trainer

    path = tmp_path / "moons.guidl.json"
    spec.save(moons(0.01), path)
    run = tmp_path / "runs" / "run"
    Trainer(moons(0.01), callbacks=[RunFolder(run, source=path)]).fit()
    (run / "model.safetensors").unlink()  # deleted by hand, or a copy that lost it

    assert window.open_path(path)
    qtbot.waitUntil(lambda: window.evaluation.thread is None, timeout=120_000)
    # Reopening passes it over (engine.runs.holds_trained_model): no run to show, and
    # not the freshly built (random) model presented as the run's.
    assert not window.export_action.isEnabled() and window.trainer is None
    # Opened on purpose (the Runs tab's Make Current), it is refused with why.
    window.evaluation.open_run(run)
    qtbot.waitUntil(lambda: window.evaluation.thread is None, timeout=120_000)
    assert "no final weights" in window.status_text.text()
    assert not window.export_action.isEnabled() and window.trainer is None
