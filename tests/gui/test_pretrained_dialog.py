"""File > New from Pretrained (the dialog and the project it makes), Import
Weights File, and the weights downloaded before training (no network: the
download is a stand-in that reports progress, or fails as offline)."""

import threading

import pytest
from PIL import Image
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QPushButton

from guidl.registry.backbones import BACKBONES
from guidl.spec.templates import pretrained_project


def photos(root, classes=("cats", "dogs", "owls"), per_class=3):
    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (20, 16), (80 * index, 40, 40)).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """torchvision's cache in an empty folder of the test's own."""
    import torch

    # Not set_dir(get_dir()) after: that would pin the dir and hide TORCH_HOME from later tests.
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_choosing_a_folder_and_a_backbone_makes_the_project(qtbot, tmp_path, monkeypatch):
    from guidl.qt.pretrained_dialog import PretrainedDialog

    folder = photos(tmp_path / "pets")
    dialog = PretrainedDialog(cached=lambda name, weights: name == "resnet18")
    qtbot.addWidget(dialog)
    assert not dialog.create_button.isEnabled()  # no folder yet
    # The gallery: every backbone with torchvision's figures, and whether its weights are here.
    assert dialog.gallery.rowCount() == len(BACKBONES)
    rows = {dialog.gallery.item(r, 0).data(Qt.ItemDataRole.UserRole)[0]: r for r in range(dialog.gallery.rowCount())}
    resnet = [dialog.gallery.item(rows["resnet18"], c).text() for c in range(6)]
    assert resnet == ["ResNet-18  (resnet18)", "11.7 M", "1.81", "69.8 %", "45 MB", "in the cache"]
    assert dialog.gallery.item(rows["mobilenet_v3_small"], 5).text() == "to download"
    assert rows["mobilenet_v3_small"] == 0  # quickest first
    assert dialog.backbone() == ("resnet18", "IMAGENET1K_V1")  # chosen when the dialog opens

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "nothing"))
    qtbot.mouseClick(dialog.choose_button, Qt.MouseButton.LeftButton)
    assert "not a folder" in dialog.folder_line.text() and not dialog.create_button.isEnabled()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    qtbot.mouseClick(dialog.choose_button, Qt.MouseButton.LeftButton)
    assert dialog.folder_line.text() == "3 classes, 9 images (cats 3, dogs 3, owls 3)"
    assert dialog.create_button.isEnabled()

    rect = dialog.gallery.visualItemRect(dialog.gallery.item(rows["mobilenet_v3_small"], 0))
    qtbot.mouseClick(dialog.gallery.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert dialog.backbone() == ("mobilenet_v3_small", "IMAGENET1K_V1")
    assert "for 3 classes" in dialog.backbone_line.text()
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == PretrainedDialog.DialogCode.Accepted
    assert dialog.project() == pretrained_project(folder, "mobilenet_v3_small")


def test_a_folder_of_one_class_is_refused_where_it_is_typed(qtbot, tmp_path):
    from guidl.qt.pretrained_dialog import PretrainedDialog

    dialog = PretrainedDialog()
    qtbot.addWidget(dialog)
    dialog.folder.setText(str(photos(tmp_path / "one", classes=("only",))))
    qtbot.waitUntil(lambda: "at least two" in dialog.folder_line.text())  # counted once typing pauses
    assert not dialog.create_button.isEnabled()


def test_file_new_from_pretrained_opens_the_project_ready_to_train(window, qtbot, tmp_path, hub):
    folder = photos(tmp_path / "birds", classes=("crows", "gulls"))

    def fill_in():
        dialog = QApplication.activeModalWidget()
        dialog.set_folder(folder)
        qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, fill_in)
    window.new_pretrained_action.trigger()
    project = window.document.project
    assert [layer.type for layer in project.model.layers] == ["resnet18", "Dropout", "Linear"]
    assert project.model.layers[0].frozen and project.model.layers[-1].params["out_features"] == 2
    assert window.windowTitle().startswith("birds")
    assert window.train_action.isEnabled(), window.training.blocker()
    assert "press Train" in window.status_text.text()


def test_weights_missing_from_the_cache_are_downloaded_with_progress_first(window, qtbot, hub, monkeypatch):
    from guidl.engine import backbones

    halfway, go_on, fetched = threading.Event(), threading.Event(), []

    def fetch(name, weights, progress=None):
        progress(0, 4_000_000)
        threading.Event().wait(0.1)  # reports come at most 20 times a second
        progress(2_000_000, 4_000_000)
        halfway.set()
        go_on.wait(10)
        progress(4_000_000, 4_000_000)
        path = backbones.weights_path(name, weights)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")
        fetched.append((name, weights))
        return path

    monkeypatch.setattr(backbones, "fetch_weights", fetch)
    started = []
    controller = window.pretrained
    controller.start_download([("resnet18", "IMAGENET1K_V1")], lambda: started.append(True))
    qtbot.waitUntil(lambda: halfway.is_set() and controller.progress_dialog.value() > 0)
    dialog = controller.progress_dialog
    assert dialog.isVisible() and "resnet18 (IMAGENET1K_V1), 45 MB" in dialog.labelText()
    assert dialog.value() / dialog.maximum() == pytest.approx(0.5, abs=0.01)
    assert "1.91 MB of 3.81 MB" in window.status_text.text() and window.progress.isVisible()
    go_on.set()
    qtbot.waitUntil(lambda: started == [True])
    assert fetched == [("resnet18", "IMAGENET1K_V1")] and controller.progress_dialog is None
    assert "downloaded" in window.status_text.text() and not window.progress.isVisible()


def test_cancel_stops_the_download_and_training_does_not_start(window, qtbot, hub, monkeypatch):
    from guidl.engine import backbones

    def fetch(name, weights, progress=None):
        for step in range(1000):
            progress(step * 10_000, 10_000_000)  # raises once Cancel is pressed
            threading.Event().wait(0.01)
        raise AssertionError("not cancelled")

    monkeypatch.setattr(backbones, "fetch_weights", fetch)
    started = []
    controller = window.pretrained
    controller.start_download([("resnet18", "IMAGENET1K_V1")], lambda: started.append(True))
    qtbot.waitUntil(lambda: controller.progress_dialog.value() > 0)
    qtbot.mouseClick(controller.progress_dialog.findChild(QPushButton), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: controller.download is None)
    assert started == [] and "cancelled" in window.status_text.text()
    assert not backbones.weights_path("resnet18", "IMAGENET1K_V1").exists()


def test_offline_training_says_where_to_put_the_file_and_imports_one(window, qtbot, tmp_path, hub, monkeypatch):
    import torch

    from guidl.engine import backbones

    def offline(name, weights, progress=None):
        raise backbones.WeightsError(backbones._offline_message(name, weights, "no network"))

    monkeypatch.setattr(backbones, "fetch_weights", offline)
    window.document.set_project(pretrained_project(photos(tmp_path / "pets", classes=("a", "b")), "resnet18"), None)
    window.train_action.trigger()
    qtbot.waitUntil(lambda: window.pretrained.offline_box is not None)
    box = window.pretrained.offline_box
    where = str(backbones.weights_path("resnet18", "IMAGENET1K_V1"))
    assert where in box.text() and "Import Weights File" in box.text()
    assert where in window.train_message.text() and window.train_message.isVisible()
    assert not window.training.running and window.session.run_dir is None

    # The user's own weights (not torchvision's file): the backbone layer loads them, one undo step.
    import torchvision

    own = tmp_path / "my_resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), own)  # checked against the layer
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(own), ""))
    qtbot.mouseClick(window.pretrained.import_button, Qt.MouseButton.LeftButton)
    layer = window.document.project.model.layers[0]
    assert layer.params["weights_file"] == str(own)
    assert window.document.undo_stack.count() == 1
    assert not window.train_message.isVisible()  # the offline message is answered
    assert window.pretrained.missing_weights(window.document.project) == []  # nothing to download now
    window.document.undo_stack.undo()
    assert "weights_file" not in window.document.project.model.layers[0].params


def test_a_file_that_holds_no_weights_is_refused_with_its_reason(window, qtbot, tmp_path):
    window.document.set_project(pretrained_project(photos(tmp_path / "pets", classes=("a", "b")), "resnet18"), None)
    bad = tmp_path / "notes.pth"
    bad.write_text("not weights")
    window.pretrained.import_weights_file(bad)
    assert window.pretrained.warning_box.windowTitle() == "Cannot import the weights file"
    assert "notes.pth" in window.pretrained.warning_box.text()
    assert "weights_file" not in window.document.project.model.layers[0].params


def test_closing_the_window_cancels_a_download(window, qtbot, hub, monkeypatch):
    from guidl.engine import backbones

    def fetch(name, weights, progress=None):
        for step in range(1000):
            progress(step * 10_000, 10_000_000)
            threading.Event().wait(0.01)
        raise AssertionError("not cancelled")

    monkeypatch.setattr(backbones, "fetch_weights", fetch)
    started = []
    window.pretrained.start_download([("resnet18", "IMAGENET1K_V1")], lambda: started.append(True))
    qtbot.waitUntil(lambda: window.pretrained.progress_dialog.value() > 0)
    window.close_timeout_s = 3  # the stand-in download would run for 10 s
    window.close()
    assert not window.isVisible() and window.jobs.count == 0 and started == []


def test_a_backbones_weights_from_a_block_parameter_are_the_uses(window, hub):
    import json

    from guidl import spec

    project = spec.loads(json.dumps({
        "format": "guidl-project", "version": 4, "name": "Block",
        "model": {"input_shape": [3, 64, 64],
                  "blocks": {"Feat": {"params": [{"name": "w", "kind": "str", "default": "IMAGENET1K_V1"}],
                                      "layers": [{"type": "mobilenet_v3_small", "params": {"weights": "$w"}}]}},
                  "layers": [{"type": "Feat", "params": {"w": "none"}}, {"type": "Linear", "params": {"out_features": 2}}]},
        "data": {"dataset": "digits"},
        "training": {"loss": {"type": "CrossEntropyLoss"}, "optimizer": {"type": "Adam"}}}))
    window.document.set_project(project, None)
    assert window.pretrained.missing_weights(window.document.project) == []  # was [("...", "$w")]
    project.model.layers[0].params["w"] = "IMAGENET1K_V1"
    assert window.pretrained.missing_weights(project) == [("mobilenet_v3_small", "IMAGENET1K_V1")]
