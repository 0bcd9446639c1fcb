"""The Runs tab: a project's runs listed, sorted as numbers and times, filtered,
labelled, ticked onto the charts, their settings opened as one undo step, and
deleted (to the trash, or for good when agreed; never while training)."""

import json
import os
import socket
from pathlib import Path

import psutil
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from guidl import spec
from guidl.qt.runs_panel import COLUMN, PATH_ROLE
from helpers import small_moons


def moons(lr: float = 0.1):
    return small_moons(lr=lr)


def write_run(root: Path, name: str, *, started: str, lr: float = 0.1, status: str = "finished",
              accuracies=(0.5, 0.6), **record) -> Path:
    """A run folder as RunFolder writes it: run.json, metrics.csv and the project copy."""
    path = root / name
    path.mkdir(parents=True)
    spec.save(moons(lr), path / "project.guidl.json")
    rows = ["epoch,train_loss,val_loss,val_accuracy,lr"]
    rows += [f"{i},{1 - a:.3f},{1.1 - a:.3f},{a},{lr}" for i, a in enumerate(accuracies, 1)]
    (path / "metrics.csv").write_text("\n".join(rows) + "\n")
    (path / "run.json").write_text(json.dumps({
        "format": "guidl-run", "version": 1, "status": status, "project": "Two moons MLP",
        "started": started, "updated": started, "epochs": len(accuracies), "device": "cpu",
        "epochs_completed": len(accuracies), "seed": 0, **record}))
    return path


def rows(window) -> list[str]:
    """The run folders' names as the table shows them, top to bottom."""
    proxy = window.runs.panel.proxy
    return [Path(proxy.index(r, 0).data(PATH_ROLE)).name for r in range(proxy.rowCount())]


def cell(window, folder: str, column: str, role=Qt.ItemDataRole.DisplayRole):
    model = window.runs.panel.model
    return model.index(model.row_of(window.runs.root / folder), COLUMN[column]).data(role)


def open_project(window, tmp_path, lr: float = 0.1) -> Path:
    path = tmp_path / "moons.guidl.json"
    spec.save(moons(lr), path)
    assert window.open_path(path)
    return path


def test_runs_are_listed_sorted_as_numbers_and_times_filtered_and_labelled(window, tmp_path, qtbot):
    root = tmp_path / "runs"
    # 10:00 at +02:00 is 08:00 UTC: before "09:00+00:00", though its text sorts after.
    write_run(root, "a", started="2026-01-01T10:00:00+02:00", lr=0.01, accuracies=(0.05, 0.09))
    write_run(root, "b", started="2026-01-01T09:00:00+00:00", accuracies=(0.08, 0.10))
    write_run(root, "c", started="2026-01-01T11:00:00+00:00", status="failed", accuracies=(0.955,),
              error="the training process ended without finishing (killed or crashed)")
    write_run(root, "d", started="2026-01-01T12:00:00+00:00", status="pruned", accuracies=(0.3, 0.2),
              stop_reason="pruned by Optuna's median pruner at epoch 2",
              sweep={"study": "lr-sweep", "trial": 3, "params": {"training.optimizer.params.lr": 0.1}})
    open_project(window, tmp_path)
    runs, panel = window.runs, window.runs.panel
    assert runs.root == root and sorted(rows(window)) == ["a", "b", "c", "d"]
    assert panel.count.text() == "4 runs"
    assert rows(window)[0] == "d"  # newest first
    # Figures, causes, differences from the project, sweep trials.
    assert cell(window, "a", "best") == "9.00%" and cell(window, "c", "status") == "failed"
    assert "killed or crashed" in cell(window, "c", "status", Qt.ItemDataRole.ToolTipRole)
    assert cell(window, "a", "changes") == "optimizer.lr 0.1 -> 0.01"
    assert cell(window, "b", "changes") == ""
    assert cell(window, "d", "trial") == "lr-sweep #3"
    assert not panel.table.isColumnHidden(COLUMN["trial"])

    panel.table.sortByColumn(COLUMN["best"], Qt.SortOrder.AscendingOrder)
    assert rows(window) == ["a", "b", "d", "c"]  # 9% < 10% < 30% < 95.5%: numbers, not text
    panel.table.sortByColumn(COLUMN["started"], Qt.SortOrder.AscendingOrder)
    assert rows(window) == ["a", "b", "c", "d"]  # 08:00 UTC first

    panel.filter.setText("lr-sweep")
    assert rows(window) == ["d"] and panel.count.text() == "1 of 4 runs"
    panel.filter.setText("0.01")  # a setting that differs
    assert rows(window) == ["a"]
    panel.filter.clear()
    panel.status_filter.setCurrentIndex(panel.status_filter.findData("failed"))
    assert rows(window) == ["c"]
    panel.status_filter.setCurrentIndex(0)

    # Rename, tag and note by editing the cells: written to labels.json, shown and filtered by.
    model = panel.model
    b = model.row_of(root / "b")
    assert model.setData(model.index(b, COLUMN["name"]), "  baseline ")
    assert model.setData(model.index(b, COLUMN["tags"]), "adam, keep,adam")
    assert model.setData(model.index(b, COLUMN["note"]), "the reference run")
    labels = json.loads((root / "b" / "labels.json").read_text())
    assert (labels["name"], labels["tags"], labels["note"]) == ("baseline", ["adam", "keep"], "the reference run")
    assert cell(window, "b", "name") == "baseline" and cell(window, "b", "tags") == "adam, keep"
    panel.filter.setText("keep")
    assert rows(window) == ["b"]
    panel.filter.clear()

    # The window's current run is bold.
    assert not cell(window, "a", "name", Qt.ItemDataRole.FontRole)
    window.session.run_dir = root / "a"
    runs.refresh()
    assert cell(window, "a", "name", Qt.ItemDataRole.FontRole).bold()


def test_ticking_three_runs_overlays_their_curves_and_a_new_run_appears(window, tmp_path, qtbot):
    root = tmp_path / "runs"
    for i, name in enumerate("abcd"):
        write_run(root, name, started=f"2026-01-01T1{i}:00:00+00:00", accuracies=(0.1 * i, 0.2 * i, 0.25 * i))
    open_project(window, tmp_path)
    runs, model = window.runs, window.runs.panel.model
    with qtbot.waitSignal(runs.panel.ticked_changed) as ticked:  # a click on the tick box
        model.setData(model.index(model.row_of(root / "c"), COLUMN["tick"]), Qt.CheckState.Checked.value,
                      Qt.ItemDataRole.CheckStateRole)
    assert ticked.args == [[root / "c"]] and runs.ticked() == [root / "c"]
    with qtbot.waitSignal(runs.ticked_changed) as ticked:
        runs.tick([root / "a", root / "b", root / "d"])
    assert ticked.args == [[root / "a", root / "b", root / "d"]]
    assert runs.ticked() == [root / "a", root / "b", root / "d"]
    overlays = window.charts.overlays
    assert [o.label for o in overlays] == ["a", "b", "d"]
    assert list(overlays[2].metrics["val_accuracy"]) == pytest.approx([0.3, 0.6, 0.75])
    assert len({o.colour.name() for o in overlays}) == 3
    assert cell(window, "b", "tick", Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    # A run appearing in the folder (guidl train, a sweep) is listed without asking.
    write_run(root, "e", started="2026-01-01T15:00:00+00:00")
    qtbot.waitUntil(lambda: "e" in rows(window), timeout=10_000)
    # Another project's runs: the ticks and curves go.
    window.files.new_project()
    assert runs.ticked() == [] and window.charts.overlays == []


def test_a_runs_project_becomes_the_documents_as_one_undo_step(window, tmp_path):
    root = tmp_path / "runs"
    write_run(root, "fast", started="2026-01-01T10:00:00+00:00", lr=0.5, status="failed", error="NaN loss")
    path = open_project(window, tmp_path, lr=0.1)
    runs = window.runs
    assert not runs.make_current(root / "fast")  # failed: no weights to use
    assert "no trained model" in window.statusBar().currentMessage()
    steps = window.document.undo_stack.count()
    assert runs.open_run_project(root / "fast")
    assert window.document.project.training.optimizer.params["lr"] == 0.5
    assert window.document.path == path and window.document.modified
    assert window.document.undo_stack.count() == steps + 1
    assert "fast" in window.statusBar().currentMessage()
    assert cell(window, "fast", "changes") == ""  # the project has its settings now
    window.document.undo_stack.undo()
    assert window.document.project.training.optimizer.params["lr"] == 0.1


def test_runs_go_to_the_trash_or_are_deleted_when_agreed_and_a_training_one_stays(
        window, tmp_path, qtbot, answer, monkeypatch):
    root = tmp_path / "runs"
    for name in ("a", "b", "c"):
        write_run(root, name, started="2026-01-01T10:00:00+00:00")
    me = psutil.Process()
    write_run(root, "live", started="2026-01-01T11:00:00+00:00", status="running", pid=os.getpid(),
              process_started=me.create_time(), host=socket.gethostname(), boot_time=psutil.boot_time())
    open_project(window, tmp_path)
    runs = window.runs
    trash = tmp_path / "data" / "Trash"
    for sub in ("files", "info"):
        (trash / sub).mkdir(parents=True)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    runs.tick([root / "a", root / "c"])
    with qtbot.waitSignal(runs.ticked_changed) as ticked:
        runs.delete([root / "a"])
    assert ticked.args == [[root / "c"]] and [o.label for o in window.charts.overlays] == ["c"]
    assert not (root / "a").exists() and (trash / "files" / "a" / "run.json").is_file()
    assert "a" not in rows(window) and "trash" in window.statusBar().currentMessage()
    assert root / "c" in runs._diffs and root / "a" not in runs._diffs  # nothing kept of a deleted run

    def no_trash(path):
        raise OSError("no trash")

    runs.trash = no_trash
    answer["button"] = QMessageBox.StandardButton.No
    runs.delete([root / "b"])
    assert (root / "b").is_dir() and "b" in rows(window)  # not agreed: kept
    answer["button"] = QMessageBox.StandardButton.Yes
    runs.delete([root / "b", root / "live"])
    assert not (root / "b").exists() and (root / "live" / "run.json").is_file()
    assert "training" in window.statusBar().currentMessage()
    assert sorted(rows(window)) == ["c", "live"]


def test_listing_again_repaints_only_changed_runs_and_edits_reuse_the_runs_projects(
        window, tmp_path, qtbot, monkeypatch):
    """Kept cheap for hundreds of runs in the GUI thread: a refresh that finds
    nothing new repaints nothing (a repaint makes the sorting proxy sort
    again), and an edit of the project diffs against the run copies already read."""
    import guidl.engine.run_index as run_index

    root = tmp_path / "runs"
    for i, name in enumerate("abc"):
        write_run(root, name, started=f"2026-01-01T1{i}:00:00+00:00", lr=0.1 * (i + 1))
    open_project(window, tmp_path)
    runs, model = window.runs, window.runs.panel.model
    painted: list[tuple[int, int]] = []
    model.dataChanged.connect(lambda first, last, *_: painted.append((first.row(), last.row())))
    runs.refresh()
    assert painted == []
    (root / "b" / "labels.json").write_text(json.dumps(
        {"format": "guidl-run-labels", "version": 1, "name": "renamed", "tags": [], "note": ""}))
    runs.refresh()
    assert painted == [(model.row_of(root / "b"),) * 2] and cell(window, "b", "name") == "renamed"

    qtbot.waitUntil(lambda: window.evaluation.thread is None)  # it looks for the latest run in the background
    reads = []
    real = run_index.run_project
    monkeypatch.setattr(run_index, "run_project", lambda path: reads.append(path) or real(path))
    window.document.apply(lambda p: p.training.optimizer.params.__setitem__("lr", 0.2), "lr")
    runs._show()  # what the edit's timer does
    assert reads == []
    assert cell(window, "a", "changes") == "optimizer.lr 0.2 -> 0.1"
    assert cell(window, "b", "changes") == ""


def test_columns_fit_the_bold_text_without_asking_every_cell_for_its_size(window, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    write_run(root, "a-run-with-a-rather-long-folder-name", started="2026-01-01T10:00:00+00:00")
    write_run(root, "b", started="2026-01-01T11:00:00+00:00", lr=0.5)
    open_project(window, tmp_path)
    panel = window.runs.panel
    # resizeColumnToContents asks every cell for its size hint (text, font, icon...), through
    # Python each time: 0.3 s with 200 runs, in the GUI thread, on opening the project.
    monkeypatch.setattr(panel.table, "resizeColumnToContents", lambda column: pytest.fail("asked every cell"))
    panel.fit_columns()
    bold = panel.table.font()
    bold.setBold(True)
    from PySide6.QtGui import QFontMetrics

    for key in ("name", "changes"):
        widest = max(QFontMetrics(bold).horizontalAdvance(panel.model.display(r, key)) for r in panel.model.rows)
        assert panel.table.columnWidth(COLUMN[key]) > widest


def test_ticking_two_runs_enables_compare_for_them(window, tmp_path, qtbot, monkeypatch):
    root = tmp_path / "runs"
    for i, name in enumerate("abc"):
        write_run(root, name, started=f"2026-01-01T1{i}:00:00+00:00", lr=0.1 * (i + 1))
    open_project(window, tmp_path)
    panel, model = window.runs.panel, window.runs.panel.model
    compare = panel.actions_["compare"]
    assert not compare.isEnabled()  # nothing ticked or selected
    for name in ("a", "c"):  # clicks on the tick boxes
        model.setData(model.index(model.row_of(root / name), COLUMN["tick"]), Qt.CheckState.Checked.value,
                      Qt.ItemDataRole.CheckStateRole)
    assert compare.isEnabled()
    with qtbot.waitSignal(panel.compare_requested) as asked:
        compare.trigger()
    assert asked.args == [[root / "a", root / "c"]]
    window.runs.compare_dialog.close()
    window.runs.tick([root / "b"])
    assert not compare.isEnabled()
    window.runs.tick([root / "a", root / "b"])
    assert compare.isEnabled()


def test_runs_without_the_figure_sort_last_both_ways(window, tmp_path):
    root = tmp_path / "runs"
    write_run(root, "low", started="2026-01-01T10:00:00+00:00", accuracies=(0.2,))
    write_run(root, "none", started="2026-01-01T11:00:00+00:00", status="failed", accuracies=(), error="NaN loss")
    write_run(root, "high", started="2026-01-01T12:00:00+00:00", accuracies=(0.9,))
    open_project(window, tmp_path)
    table = window.runs.panel.table
    table.sortByColumn(COLUMN["best"], Qt.SortOrder.AscendingOrder)
    assert rows(window) == ["low", "high", "none"]
    table.sortByColumn(COLUMN["best"], Qt.SortOrder.DescendingOrder)  # the best run first
    assert rows(window) == ["high", "low", "none"]


def test_a_new_runs_name_widens_its_column_but_not_a_tag_just_typed_nor_one_the_user_sized(window, tmp_path):
    root = tmp_path / "runs"
    write_run(root, "a", started="2026-01-01T10:00:00+00:00")
    open_project(window, tmp_path)
    runs, table = window.runs, window.runs.panel.table
    narrow = table.columnWidth(COLUMN["name"])
    long_name = "Two-moons-MLP-20260101-110000"  # as the window names its runs
    write_run(root, long_name, started="2026-01-01T11:00:00+00:00", lr=0.3)
    runs.refresh()
    bold = table.font()
    bold.setBold(True)
    from PySide6.QtGui import QFontMetrics

    assert table.columnWidth(COLUMN["name"]) > max(narrow, QFontMetrics(bold).horizontalAdvance(long_name))
    tags, note = table.columnWidth(COLUMN["tags"]), table.columnViewportPosition(COLUMN["note"])
    # Typed in the table: the column stays under the mouse, so the next double-click (on the
    # note beside it) lands on the note, not on the tags again.
    model = runs.panel.model
    assert model.setData(model.index(model.row_of(root / "a"), COLUMN["tags"]),
                         "a-tag-longer-than-its-header, keep", Qt.ItemDataRole.EditRole)
    assert cell(window, "a", "tags") == "a-tag-longer-than-its-header, keep"
    assert table.columnWidth(COLUMN["tags"]) == tags and table.columnViewportPosition(COLUMN["note"]) == note
    write_run(root, "c", started="2026-01-01T11:30:00+00:00")  # a refresh with a new run: fitted then
    runs.refresh()
    assert table.columnWidth(COLUMN["tags"]) > max(tags, QFontMetrics(bold).horizontalAdvance(
        "a-tag-longer-than-its-header, keep"))
    table.horizontalHeader().resizeSection(COLUMN["changes"], 90)  # the user narrows a column
    write_run(root, "b", started="2026-01-01T12:00:00+00:00", lr=0.123456789)
    runs.refresh()
    assert table.columnWidth(COLUMN["changes"]) == 90


def test_moving_a_node_does_not_diff_every_run_again(window, tmp_path, qtbot, monkeypatch):
    import guidl.engine.run_index as run_index

    root = tmp_path / "runs"
    for i, name in enumerate("ab"):
        write_run(root, name, started=f"2026-01-01T1{i}:00:00+00:00", lr=0.1 * (i + 1))
    open_project(window, tmp_path)
    runs = window.runs
    qtbot.waitUntil(lambda: window.evaluation.thread is None)  # it looks for the latest run in the background
    diffs = []
    real = run_index.settings_diff
    monkeypatch.setattr(run_index, "settings_diff", lambda run, current: diffs.append(run) or real(run, current))
    window.document.apply(lambda p: setattr(p.model.layers[0], "position", [40.0, 80.0]), "Move")
    runs._show()  # what the edit's timer does
    assert diffs == []  # a layout edit: the runs' differences are unchanged
    window.document.apply(lambda p: p.training.optimizer.params.__setitem__("lr", 0.3), "lr")
    runs._show()
    assert len(diffs) == 2 and cell(window, "a", "changes") == "optimizer.lr 0.3 -> 0.1"


def test_a_trials_differences_are_named_by_short_paths_and_listed_in_full_in_the_tooltip(window, tmp_path):
    root = tmp_path / "runs"
    trial = write_run(root, "t003", started="2026-01-01T10:00:00+00:00", lr=0.03,
                      sweep={"study": "lrs", "trial": 3, "params": {}})
    project = moons(0.03)
    project.model.layers[0].params["out_features"] = 32
    project.training.epochs = 7
    spec.save(project, trial / "project.guidl.json")
    open_project(window, tmp_path)
    assert cell(window, "t003", "changes") == \
        "layers[0].out_features 16 -> 32; optimizer.lr 0.1 -> 0.03 (+1 more)"
    # Another width: another model, which the tooltip says first.
    tip = cell(window, "t003", "changes", Qt.ItemDataRole.ToolTipRole).splitlines()
    assert tip[0].startswith("Trained another model") and tip[1] == ""
    assert tip[2:] == [
        "model.layers[0].params.out_features 16 -> 32", "training.optimizer.params.lr 0.1 -> 0.03",
        f"training.epochs {moons().training.epochs} -> 7"]
    window.runs.panel.filter.setText("training.epochs")  # the filter reads the full paths
    assert rows(window) == ["t003"]
    # Both named settings fit the cell (the column may be wider than the others' limit).
    bold = window.runs.panel.table.font()
    bold.setBold(True)
    from PySide6.QtGui import QFontMetrics

    text = cell(window, "t003", "changes")
    assert window.runs.panel.table.columnWidth(COLUMN["changes"]) > QFontMetrics(bold).horizontalAdvance(text)


def test_the_runs_tab_and_the_sweep_dialog_share_the_engines_statuses_and_one_colour_each():
    from guidl.engine import runs as engine_runs
    from guidl.qt import runs_panel
    from guidl.qt.sweep_dialog import TrialChart

    assert runs_panel.STATUSES == engine_runs.STATUSES  # written out only to keep PyTorch from loading early
    assert set(runs_panel.STATUSES) <= set(runs_panel.STATUS_COLOURS)
    # A pruned trial reads alike in the Runs tab, the trials table and the trial chart.
    assert TrialChart.MARKS["pruned"][1] == runs_panel.STATUS_COLOURS["pruned"]


def test_runs_of_another_model_are_dimmed_cannot_become_current_and_can_be_hidden(window, tmp_path):
    root = tmp_path / "runs"
    write_run(root, "same", started="2026-01-01T09:00:00+00:00", lr=0.01)
    other = write_run(root, "other", started="2026-01-01T10:00:00+00:00")
    trained = moons()
    trained.model.layers[0].params["out_features"] = 7  # another model in the same folder
    spec.save(trained, other / "project.guidl.json")
    open_project(window, tmp_path)
    panel = window.runs.panel
    assert [r.fits for r in sorted(panel.model.rows, key=lambda r: r.path.name)] == [False, True]
    assert "another model" in cell(window, "other", "changes", Qt.ItemDataRole.ToolTipRole)
    assert "another model" not in (cell(window, "same", "changes", Qt.ItemDataRole.ToolTipRole) or "")
    assert cell(window, "other", "status", Qt.ItemDataRole.ForegroundRole).color().name() == "#9ca3af"
    assert cell(window, "same", "status", Qt.ItemDataRole.ForegroundRole).color().name() != "#9ca3af"
    panel.select([root / "other"])
    assert not panel.actions_["current"].isEnabled()
    assert "another model" in panel.buttons_["current"].toolTip()
    panel.select([root / "same"])
    assert panel.actions_["current"].isEnabled()
    # Moving a node is layout only: the run still fits.
    window.document.project.model.layers[0].position = [123.0, 45.0]
    window.runs._diffs.clear()
    window.runs._diffs_against = None
    window.runs._show()
    assert next(r for r in panel.model.rows if r.path.name == "same").fits
    assert sorted(rows(window)) == ["other", "same"] and not panel.this_model.isChecked()
    panel.this_model.setChecked(True)
    assert rows(window) == ["same"] and panel.count.text() == "1 of 2 runs"


def test_metric_names_are_written_as_people_write_them():
    from guidl.qt.runs_panel import metric_title

    assert metric_title("val_mae") == "val MAE" and metric_title("val_psnr") == "val PSNR"
    assert metric_title("val_accuracy") == "val accuracy"


def test_a_regressions_status_line_names_its_mae_not_the_loss():
    from types import SimpleNamespace

    from guidl.engine.trainer import EpochMetrics, FitResult
    from guidl.qt.controllers.evaluation import run_figures

    history = [EpochMetrics(1, 0.3, 0.0958, 0.001, 1.0, 100.0, train_mae=0.25, val_mae=0.2413)]
    evaluation = {"task": "regression", "mae": 0.2413, "loss": 0.0958}
    result = FitResult(history, evaluation=SimpleNamespace(to_dict=lambda: evaluation), evaluation_split="val",
                       elapsed=3.0)
    assert run_figures(result) == " · validation MAE 0.2413"
