"""The Try tab: photos dropped or chosen get the trained model's top classes."""

import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QFileDialog

from guidl.qt.try_panel import NO_MODEL, READY
from guidl.spec import Component, Data, Layer, Model, Project, Training

COLOURS = {"blue": (20, 30, 230), "green": (30, 210, 40), "red": (230, 20, 30)}


def colour_folder(root, per_class=8):
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shade = tuple(min(255, max(0, v + 6 * (i - 4))) for v in rgb)
            Image.new("RGB", (10 + i, 9), shade).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny classifier of plain colours, trained for real (a second or so)."""
    from guidl.engine.trainer import Trainer

    folder = colour_folder(tmp_path_factory.mktemp("colours") / "colours")
    project = Project("colours", Model([Layer("Flatten"), Layer("Linear", {"out_features": 3})]),
                      Data("image_folder", {"path": str(folder), "image_size": [6, 6]}, val_fraction=0.25,
                           batch_size=8),
                      Training(Component("CrossEntropyLoss"), Component("Adam", {"lr": 0.05}), epochs=3,
                               device="cpu"))
    trainer = Trainer(project)
    trainer.fit()
    return trainer


def test_without_a_trained_model_the_tab_says_to_train_first(window, qtbot, tmp_path):
    panel = window.pretrained.try_panel
    window.show_tab("try")
    assert panel.message.text() == NO_MODEL and window.tabs.tabText(window.tabs.indexOf(panel)) == "Try"
    photo = tmp_path / "a.png"
    Image.new("RGB", (8, 8), COLOURS["red"]).save(photo)
    panel.try_images([str(photo)])
    assert panel.message.text() == NO_MODEL and panel.rows == []


def test_chosen_photos_get_their_top_classes(window, qtbot, tmp_path, trained, monkeypatch):
    window.session.trainer = trained
    panel = window.pretrained.try_panel
    window.show_tab("try")
    assert panel.message.text() == READY
    assert panel.preprocessing.text() == "Each photo is resized to 6x6 pixels, as in training."
    red, green = tmp_path / "red.jpg", tmp_path / "green.png"
    Image.new("RGB", (40, 30), (240, 10, 20)).save(red)
    Image.new("RGB", (20, 20), (20, 200, 30)).save(green)
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(red), str(broken), str(green)], ""))
    qtbot.mouseClick(panel.choose_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(panel.rows) == 3)
    assert [row.path for row in panel.rows] == [str(red), str(broken), str(green)]
    first, bad, second = panel.rows
    assert first.top[0][0] == "red" and second.top[0][0] == "green"
    for row in (first, second):
        assert len(row.top) == 3 and sum(p for _, p in row.top) == pytest.approx(1, abs=1e-5)
        assert [p for _, p in row.top] == sorted((p for _, p in row.top), reverse=True)
        assert row.bars[0].text() == f"{row.top[0][1]:.1%}" and not row.picture.pixmap().isNull()
    assert bad.top == [] and "not a readable image" in bad.error_label.text()
    assert panel.message.text().startswith("2 images classified; 1 could not be read")


def test_dropped_photos_are_tried_and_other_files_refused(window, qtbot, tmp_path, trained):
    window.session.trainer = trained
    panel = window.pretrained.try_panel
    window.show_tab("try")
    blue, notes = tmp_path / "sky.bmp", tmp_path / "notes.txt"
    Image.new("RGB", (12, 12), (10, 40, 240)).save(blue)
    notes.write_text("hello")

    def drop(*paths):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
        event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                           Qt.KeyboardModifier.NoModifier)
        panel.dropEvent(event)

    drop(notes)
    assert "None of these is an image file" in panel.message.text() and panel.rows == []
    drop(blue, notes)
    qtbot.waitUntil(lambda: len(panel.rows) == 1)
    assert panel.rows[0].top[0][0] == "blue"
    qtbot.mouseClick(panel.clear_button, Qt.MouseButton.LeftButton)
    assert panel.rows == [] and panel.message.text() == READY
    drop(blue)
    qtbot.waitUntil(lambda: len(panel.rows) == 1)
    window.new_project()  # another project: its model is not the one that answered
    assert panel.rows == [] and panel.message.text() == NO_MODEL
