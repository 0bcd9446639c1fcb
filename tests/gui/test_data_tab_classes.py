"""The Data tab with the user's own image folder: each class's count in
numbers, the files skipped, and the uneven-classes choice writing data.balance."""

import numpy as np
from PIL import Image

from guidl import spec
from guidl.qt.panels import preprocessing_text


def _image_folder(root):
    rng = np.random.default_rng(0)
    for name, count in (("cat", 6), ("dog", 2)):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (root / "dog" / "broken.png").write_bytes(b"not a png at all")
    return root


def test_an_image_folder_shows_its_class_counts_and_the_balance_choice_writes_the_file(window, qtbot, tmp_path):
    folder = _image_folder(tmp_path / "photos")
    document, panel = window.document, window.data_panel

    def use_folder(project):
        project.data.dataset = "image_folder"
        project.data.params = {"path": str(folder), "image_size": 12}
        project.data.val_fraction = 0.0
        project.model.input_shape = None

    document.apply(use_folder, "Use my photos")
    window.load_data()
    qtbot.waitUntil(lambda: document.data_info is not None and window.data.thread is None, timeout=60_000)
    table = panel.class_table
    assert not table.isHidden()
    rows = [[table.item(r, c).text() for c in range(3)] for r in range(table.rowCount())]
    assert rows == [["cat", "6", "75.0%"], ["dog", "2", "25.0%"]]
    assert document.data_info.skipped == 1
    assert not panel.skipped.isHidden() and panel.skipped.text().startswith("1 file skipped")
    # The choice under Split: one undo step, written to the file.
    combo = panel.balance_choice
    combo.setCurrentIndex(combo.findData("sampler"))
    assert document.project.data.balance == "sampler"
    assert document.project.to_dict()["data"]["balance"] == "sampler"
    combo.setCurrentIndex(combo.findData("class_weights"))
    assert document.project.data.balance == "class_weights"
    window.undo_action.trigger()
    assert document.project.data.balance == "sampler" and combo.currentData() == "sampler"
    window.undo_action.trigger()
    assert document.project.data.balance == "none" and combo.currentData() == "none"


def test_the_backbones_preprocessing_is_said_with_its_weights(window):
    document, panel = window.document, window.data_panel
    assert panel.preprocessing.isHidden()  # the example has no pretrained backbone
    document.apply(lambda p: setattr(p.model, "layers", [
        spec.Layer("resnet18", {"weights": "IMAGENET1K_V1"}), spec.Layer("Linear", {"out_features": 10})]),
        "Use resnet18")
    text = panel.preprocessing.text()
    assert not panel.preprocessing.isHidden() and text == preprocessing_text(document.project)
    assert "resize 256 · center crop 224 · mean 0.485, 0.456, 0.406 · std 0.229, 0.224, 0.225" in text
    assert "resnet18's IMAGENET1K_V1 weights" in text
    # A weights name resnet18 does not have (the project's problems say so): the default's numbers.
    document.apply(lambda p: p.model.layers[0].params.update(weights="IMAGENET9K"), "Bad weights")
    assert "resize 256 · center crop 224" in panel.preprocessing.text()
