"""The Train tab's fine-tune group writes training.fine_tune, and what it
shows is what the project holds, also for values typed and not confirmed
when Train is pressed."""


def _type(qtbot, widget, text):
    line = widget.lineEdit() if hasattr(widget, "lineEdit") else widget
    widget.setFocus()
    line.selectAll()
    qtbot.keyClicks(line, text)


def test_the_fine_tune_group_saves_what_it_shows(window, qtbot):
    document = window.document
    form = window.setup.fine_tune
    assert not form.isChecked() and document.project.training.fine_tune is None
    form.setChecked(True)
    assert document.project.training.fine_tune == {"head_epochs": 3, "unfreeze": "all", "lr_factor": 0.1}
    _type(qtbot, form.head_epochs, "2")
    form.unfreeze.setCurrentIndex(form.unfreeze.findData("last"))
    _type(qtbot, form.units, "2")
    _type(qtbot, form.lr_factor, "0.05")  # no Enter: Train applies it
    assert document.project.training.fine_tune["lr_factor"] == 0.1
    document.commit_edits()  # what Train does first
    saved = document.project.training.fine_tune
    assert saved == {"head_epochs": 2, "unfreeze": 2, "lr_factor": 0.05}
    shown = {"head_epochs": form.head_epochs.value(),
             "unfreeze": form.units.value() if form.unfreeze.currentData() == "last" else "all",
             "lr_factor": float(form.lr_factor.text())}
    assert shown == saved
    assert "from epoch 3 the last 2 frozen parts (backbone stages or frozen layers) train too" in form.note.text()
    assert "Epochs 1–2 train only the layers that are not frozen (the new head)" in form.note.text()
    assert form.units_name.text() == "frozen parts"
    # A refused factor stays marked, the project keeps 0.05, and Train waits.
    _type(qtbot, form.lr_factor, "0")
    document.commit_edits()
    assert document.project.training.fine_tune["lr_factor"] == 0.05
    assert "training.fine_tune.lr_factor" in document.field_problems()
    assert not window.train_action.isEnabled()
    # Off: no schedule in the file, and no refused field keeping Train waiting.
    form.setChecked(False)
    assert document.project.training.fine_tune is None
    assert "fine_tune" not in document.project.to_dict()["training"]
    assert "training.fine_tune.lr_factor" not in document.field_problems()
    window.undo_action.trigger()
    assert document.project.training.fine_tune == {"head_epochs": 2, "unfreeze": 2, "lr_factor": 0.05}
    assert form.isChecked() and form.head_epochs.value() == 2 and form.units.value() == 2
