"""Views follow the document and the session: nothing said of one project
stays on screen once another is open, or once the project has changed."""

from guidl import spec
from helpers import small_project


def _load(window, qtbot):
    window.load_data()
    qtbot.waitUntil(lambda: window.document.data_info is not None and window.data.thread is None, timeout=60_000)


def test_the_data_preview_clears_on_new_and_new_from_example(window, qtbot):
    panel = window.data_panel
    window.document.set_project(small_project(), None)
    _load(window, qtbot)
    assert panel.grid_layout.count() == 24 and "1,438 training" in panel.summary.text()
    _assert_balance_shown(panel)
    window.files.new_project()
    assert panel.grid_layout.count() == 0 and panel.summary.text() == "Load the data to see samples."
    _assert_balance_cleared(panel)
    window.document.set_project(small_project(), None)
    _load(window, qtbot)  # from the data kept: at once
    assert panel.grid_layout.count() == 24
    _assert_balance_shown(panel)
    window.files.new_project("moons_mlp")
    assert panel.grid_layout.count() == 0 and "Load the data" in panel.summary.text()
    _assert_balance_cleared(panel)


def _assert_balance_shown(panel):
    counts = panel.document.data_info.class_counts
    assert list(panel.balance_bars.opts["height"]) == list(counts)
    assert len(panel.balance.getAxis("bottom").names) == len(counts)
    assert not panel.balance.isHidden()
    panel.balance.grab()  # paints: the range follows the bars
    assert panel.balance.viewRange()[1][1] >= max(counts)  # the bars fit


def _assert_balance_cleared(panel):
    """No bars, no class names, none of the old data's range: the chart is empty and hidden."""
    assert len(panel.balance_bars.opts["height"]) == 0 and len(panel.balance_bars.opts["x"]) == 0
    assert panel.balance.getAxis("bottom").names == []
    assert panel.balance.viewRange()[1][1] <= 1
    assert panel.balance.isHidden()


def test_the_data_preview_clears_when_the_dataset_changes_and_stays_for_other_edits(window, qtbot):
    panel = window.data_panel
    window.document.set_project(small_project(), None)
    _load(window, qtbot)
    window.edits.remove(0)  # the model, not the data
    assert panel.grid_layout.count() == 24
    window.document.apply(lambda p: setattr(p.data, "val_fraction", 0.3), "Set validation fraction")
    assert panel.grid_layout.count() == 0 and "Load the data" in panel.summary.text()


def test_a_data_error_clears_with_another_project(window, qtbot):
    panel = window.data_panel
    window.document.set_project(small_project(data=spec.Data("csv", {"path": "/nowhere/table.csv"})), None)
    window.load_data()
    qtbot.waitUntil(lambda: "no such file" in panel.message.text() and window.data.thread is None,
                    timeout=30_000)
    window.files.new_project()
    assert not panel.message.isVisibleTo(window)


def test_a_training_failure_clears_once_the_project_changes(window):
    window.document.set_project(small_project(), None)
    window.training.show_failure("Linear #4 needs 2 outputs, not 128: set out_features to 2")
    assert window.train_message.isVisibleTo(window) and window.status_text.text().startswith("Training failed")
    window.document.changed.emit()  # an analysis, not an edit: still the project that failed
    assert window.train_message.isVisibleTo(window)
    window.edits.set_param(4, "out_features", 2)  # the layer fixed
    assert not window.train_message.isVisibleTo(window) and window.status_text.text() == ""


def test_a_training_failure_clears_on_new(window):
    window.training.show_failure("csv: no such file")
    window.files.new_project()
    assert not window.train_message.isVisibleTo(window) and window.status_text.text() == ""


def test_the_last_runs_status_clears_on_new_and_on_open(window, tmp_path):
    window.training._say("Training finished in 3.1s · validation accuracy 95.20% · run folder /x/runs/boring")
    window.files.new_project()
    assert window.status_text.text() == ""
    window.training._say("Training finished in 3.1s · validation accuracy 95.20% · run folder /x/runs/boring")
    path = tmp_path / "other.guidl.json"
    spec.save(small_project(name="other"), path)
    assert window.open_path(path, ask=False)
    assert window.status_text.text() == ""


def test_the_last_runs_status_gives_way_to_an_opened_bundle(window, qtbot, tmp_path):
    from guidl.engine.callbacks import RunFolder
    from guidl.engine.export import export, load_trained
    from guidl.engine.trainer import Trainer

    Trainer(small_project(training__epochs=1), callbacks=[RunFolder(tmp_path / "run")]).fit()
    export(load_trained(tmp_path / "run"), "bundle", tmp_path / "digits.guidl")
    window.training.show_failure("csv: no such file")
    assert window.open_path(tmp_path / "digits.guidl", ask=False)
    assert window.status_text.text().startswith("Opened the trained model digits.guidl")
    assert not window.train_message.isVisibleTo(window)
