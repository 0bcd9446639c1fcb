"""Runs compared side by side, and two runs' project files diffed path by path."""

from __future__ import annotations

import copy
import json

import pytest
from PySide6.QtGui import QGuiApplication

from guidl import spec
from guidl.examples import example_path
from guidl.qt.run_compare import RunCompareDialog


@pytest.fixture
def moons():
    return spec.load(example_path("moons_mlp")).to_dict()


def _run(folder, project: dict, *, lr: float, val_accuracy: float, status: str = "finished",
         seconds: int = 42, device: str = "cpu (2 cores, 2 threads)"):
    """A run folder as RunFolder writes one: run.json, the project copy and metrics.csv."""
    folder.mkdir()
    final = {"epoch": 3, "train_loss": 0.4, "val_loss": 0.5, "lr": lr, "train_accuracy": 0.8,
             "val_accuracy": val_accuracy, "train_mae": None, "samples_per_s": 5000.0}
    (folder / "run.json").write_text(json.dumps({
        "format": "guidl-run", "version": 1, "status": status, "project": "Two moons MLP",
        "started": "2026-12-01T10:00:00+00:00", "updated": f"2026-12-01T10:00:{seconds:02d}+00:00",
        "epochs": 3, "epochs_completed": 3, "seed": 0, "device": device, "final": final,
        "task": {"type": "classification"}, "evaluation_split": "val",
        "evaluation": {"task": "classification", "loss": 0.5, "accuracy": val_accuracy,
                       "macro_f1": val_accuracy - 0.01, "confusion": [[1, 0], [0, 1]]},
        "stop_reason": "stopped by the user" if status == "stopped" else None}))
    (folder / "project.guidl.json").write_text(json.dumps(project))
    (folder / "metrics.csv").write_text(
        "epoch,train_loss,train_accuracy,train_mae,val_loss,val_accuracy,val_mae,lr,epoch_time,samples_per_s\n"
        f"1,0.7,0.6,,0.7,0.55,,{lr},0.1,5000\n2,0.5,0.7,,0.6,{val_accuracy - 0.05},,{lr},0.1,5000\n"
        f"3,0.4,0.8,,0.5,{val_accuracy},,{lr},0.1,5000\n")
    return folder


def _variant(project: dict, lr: float, width: int, name: str = "Two moons MLP") -> dict:
    changed = copy.deepcopy(project)
    changed["name"] = name  # not a setting: never listed
    changed["training"]["optimizer"]["params"]["lr"] = lr
    changed["model"]["layers"][2]["params"]["out_features"] = width
    return changed


def test_two_runs_differences_name_exactly_the_changed_paths(qtbot, tmp_path, moons):
    a = _run(tmp_path / "a", moons, lr=0.01, val_accuracy=0.9)
    b = _run(tmp_path / "b", _variant(moons, 0.05, 32, name="renamed"), lr=0.05, val_accuracy=0.95)
    dialog = RunCompareDialog([a, b], moons)
    qtbot.addWidget(dialog)

    assert [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())] == ["Side by side", "Differences"]
    lines = [dialog.differences.item(i).text() for i in range(dialog.differences.count())]
    assert lines == ["model.layers[2].params.out_features 16 -> 32", "training.optimizer.params.lr 0.01 -> 0.05"]
    assert dialog.differing == ["model.layers[2].params.out_features", "training.optimizer.params.lr"]

    dialog.tabs.setCurrentWidget(dialog.differences)
    dialog.copy()
    assert QGuiApplication.clipboard().text() == "\n".join(lines) + "\n"


def test_three_runs_side_by_side_with_the_settings_that_differ(qtbot, tmp_path, moons):
    a = _run(tmp_path / "a", moons, lr=0.01, val_accuracy=0.9)
    b = _run(tmp_path / "b", _variant(moons, 0.05, 16), lr=0.05, val_accuracy=0.95, seconds=50)
    c = _run(tmp_path / "c", _variant(moons, 0.01, 64), lr=0.01, val_accuracy=0.85, status="stopped")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{ not json")
    current = _variant(moons, 0.01, 8)
    dialog = RunCompareDialog([a, b, c, tmp_path / "broken"], current)
    qtbot.addWidget(dialog)
    table = dialog.table

    headings = [table.horizontalHeaderItem(i).text() for i in range(table.columnCount())]
    assert headings == ["", "a", "b", "c", "Open project"]
    assert dialog.tabs.count() == 1  # "Differences" is for two runs
    assert "broken" in dialog.note.text()  # said, not dropped silently

    rows = {table.item(r, 0).text(): r for r in range(table.rowCount())}
    setting_rows = [title for title in rows if "." in title]
    assert setting_rows == ["model.layers[2].params.out_features", "training.optimizer.params.lr"]

    def cells(title):
        return [table.item(rows[title], col).text() for col in range(1, table.columnCount())]

    assert cells("model.layers[2].params.out_features") == ["16", "16", "64", "8"]
    assert cells("training.optimizer.params.lr") == ["0.01", "0.05", "0.01", "0.01"]
    assert cells("status") == ["finished", "finished", "stopped", ""]
    assert cells("final val accuracy") == ["90.00%", "95.00%", "85.00%", ""]
    assert cells("duration") == ["0:42", "0:50", "0:42", ""]
    # The final evaluation on the validation split: only what the epochs' figures lack.
    assert cells("val macro F1 (evaluated)") == ["0.89", "0.94", "0.84", ""]
    assert not any("loss (evaluated)" in title or "accuracy (evaluated)" in title for title in rows)

    def marked(title):
        return [table.item(rows[title], col).background().style().name != "NoBrush"
                for col in range(1, table.columnCount())]

    # Highlighted: a value not as in the first run; bold: the best figure of a row.
    assert marked("training.optimizer.params.lr") == [False, True, False, False]
    assert marked("model.layers[2].params.out_features") == [False, False, True, True]
    assert [table.item(rows["final val accuracy"], col).font().bold() for col in (1, 2, 3)] == [False, True, False]

    dialog.copy()
    text = QGuiApplication.clipboard().text().splitlines()
    assert text[0] == "run\ta\tb\tc\tOpen project"
    assert "training.optimizer.params.lr\t0.01\t0.05\t0.01\t0.01" in text


def test_a_parameter_left_at_its_default_reads_as_the_default_not_absent(qtbot, tmp_path, moons):
    assert moons["training"]["optimizer"]["type"] == "Adam"
    default = copy.deepcopy(moons)
    del default["training"]["optimizer"]["params"]["lr"]  # Adam's lr: 0.001
    a = _run(tmp_path / "a", moons, lr=0.01, val_accuracy=0.9)
    b = _run(tmp_path / "b", default, lr=0.001, val_accuracy=0.95)
    dialog = RunCompareDialog([a, b], moons)
    qtbot.addWidget(dialog)
    table = dialog.table
    rows = {table.item(r, 0).text(): r for r in range(table.rowCount())}
    row = rows["training.optimizer.params.lr"]
    cells = [table.item(row, col).text() for col in range(1, table.columnCount())]
    assert cells == ["0.01", "0.001 (default)", "0.01"]
    assert table.item(row, 2).toolTip() == "0.001 (default)"
    tip = dialog.differences.item(0).toolTip()
    assert "b: 0.001 (default)" in tip and "a: 0.01" in tip
