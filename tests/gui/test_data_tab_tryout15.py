"""The Data tab after the issue-15 tryout: the augmentation form covers every
AUGMENT key and an edit changes only the key edited; image_folder's
image_size and grayscale are off while a pretrained backbone decides them."""

from guidl import spec
from guidl.registry import AUGMENT


def _pretrained_photos(window, tmp_path):
    def edit(project):
        project.model.layers = [spec.Layer("resnet18", {"weights": "none"}, frozen=True),
                                spec.Layer("Linear", {"out_features": 2})]
        project.model.input_shape = None
        project.data.dataset = "image_folder"
        project.data.params = {"path": str(tmp_path), "image_size": [224, 224]}
        project.data.augment = {"random_resized_crop": True, "hflip": True}

    window.document.apply(edit, "Photos on resnet18")


def test_an_augmentation_edit_keeps_the_keys_it_did_not_touch(window, tmp_path):
    _pretrained_photos(window, tmp_path)
    document, form = window.document, window.data_panel.augment_form
    assert window.data_panel.augment.isChecked()
    # One field per AUGMENT parameter, showing the project's values.
    assert [p.name for p in AUGMENT.params] == [p.name for p in form.entry.params]
    assert form.editor("random_resized_crop").isChecked() and form.editor("hflip").isChecked()
    assert form.editor("crop_scale").text() == "0.08" and form.editor("color_jitter").text() == "0.0"

    rotation = form.editor("rotation")
    rotation.setText("10")
    rotation.setModified(True)
    rotation.editingFinished.emit()
    assert document.project.data.augment == {"random_resized_crop": True, "hflip": True, "rotation": 10.0}

    # The new fields write their values, one undo step each.
    scale = form.editor("crop_scale")
    scale.setText("0.5")
    scale.setModified(True)
    scale.editingFinished.emit()
    jitter = form.editor("color_jitter")
    jitter.setText("0.2")
    jitter.setModified(True)
    jitter.editingFinished.emit()
    form.editor("random_resized_crop").setChecked(False)  # back to its default: the key goes
    assert document.project.data.augment == {"hflip": True, "rotation": 10.0, "crop_scale": 0.5,
                                             "color_jitter": 0.2}
    # A refused value stays in its field, marked; the project keeps its last valid value.
    jitter.setText("3")
    jitter.setModified(True)
    jitter.editingFinished.emit()
    assert document.project.data.augment["color_jitter"] == 0.2 and form.note("color_jitter").isVisibleTo(form)
    window.undo_action.trigger()
    assert document.project.data.augment["random_resized_crop"] is True
    assert form.editor("random_resized_crop").isChecked()


def test_turning_augmentation_on_and_off(window, tmp_path):
    _pretrained_photos(window, tmp_path)
    panel = window.data_panel
    panel.augment.setChecked(False)
    assert window.document.project.data.augment is None
    panel.augment.setChecked(True)
    assert window.document.project.data.augment == {}
    assert not panel.augment_form.editor("hflip").isChecked()


def test_image_size_and_grayscale_are_off_while_a_backbone_decides_them(window, tmp_path):
    _pretrained_photos(window, tmp_path)
    panel = window.data_panel
    for name in ("image_size", "grayscale"):
        widget = panel.form.editor(name)
        assert not widget.isEnabled() and "resnet18" in widget.toolTip()
    assert "their fields are off" in panel.preprocessing.text()
    assert panel.form.editor("path").isEnabled()
    # Without the backbone the fields are the user's again.
    window.document.apply(lambda p: setattr(p.model, "layers", [spec.Layer("Flatten"),
                                                                 spec.Layer("Linear", {"out_features": 2})]),
                          "Plain model")
    for name in ("image_size", "grayscale"):
        widget = panel.form.editor(name)
        assert widget.isEnabled() and "Not used" not in widget.toolTip()
