"""The fine-tune note counts what it unfreezes as the notes name it, one or
many, and says the head epochs train only what is not frozen."""

from guidl import spec


def test_the_fine_tune_note_is_plural_aware_and_names_the_frozen_parts(window):
    document, form = window.document, window.setup.fine_tune

    def edit(project):
        project.model.layers = [spec.Layer("resnet18", {"weights": "none"}, frozen=True),
                                spec.Layer("Linear", {"out_features": 2})]
        project.training.epochs = 4
        project.training.fine_tune = {"head_epochs": 1, "unfreeze": 1, "lr_factor": 0.1}

    document.apply(edit, "Fine-tune resnet18")
    note = form.note.text()
    assert note.startswith("Epoch 1 trains only the layers that are not frozen (the new head); "
                           "from epoch 2 the last 1 frozen part (a backbone stage or a frozen layer) trains too")
    assert "units" not in note and form.units_name.text() == "frozen part"
    form.units.setValue(3)
    assert document.project.training.fine_tune["unfreeze"] == 3
    assert form.units_name.text() == "frozen parts"
    assert "the last 3 frozen parts (backbone stages or frozen layers) train too" in form.note.text()
    form.unfreeze.setCurrentIndex(form.unfreeze.findData("all"))
    assert "from epoch 2 all frozen layers train too" in form.note.text()
    assert not form.units.isEnabled() and not form.units_name.isEnabled()
