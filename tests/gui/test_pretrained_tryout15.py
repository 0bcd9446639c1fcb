"""Import Weights File checks a file of one's own against the backbone it is
for, before the project changes; a weights file that does not fit stops
Train with the engine's whole message and the Import button."""

import pytest
from PIL import Image

from guidl.qt.controllers.pretrained import WEIGHTS_FILE_TITLE
from guidl.spec.templates import pretrained_project


@pytest.fixture
def resnet_photos(window, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # an empty torchvision cache
    for index, name in enumerate(("a", "b")):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (20, 16), (80 * index, 40, 40)).save(tmp_path / "pets" / name / f"{i}.png")
    window.document.set_project(pretrained_project(tmp_path / "pets", "resnet18"), None)
    return window


@pytest.fixture
def mobilenet_file(tmp_path):
    import torch
    import torchvision

    path = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), path)
    return path


def test_importing_another_models_weights_is_refused_before_the_project_changes(resnet_photos, mobilenet_file):
    window = resnet_photos
    steps = window.document.undo_stack.count()
    window.pretrained.import_weights_file(mobilenet_file)
    box = window.pretrained.warning_box
    assert box.windowTitle() == "Cannot import the weights file"
    text = box.text()
    assert text.startswith(f"Not imported for resnet18 (layer 0): {mobilenet_file} does not hold resnet18's weights")
    assert text.endswith("It needs the state_dict of torchvision's resnet18")
    assert "WeightsError" not in text
    assert "weights_file" not in window.document.project.model.layers[0].params
    assert window.document.undo_stack.count() == steps


def test_train_with_a_weights_file_that_does_not_fit_says_so_in_full_with_import(resnet_photos, mobilenet_file, qtbot):
    window = resnet_photos
    window.document.apply(lambda p: p.model.layers[0].params.update(weights_file=str(mobilenet_file)),
                          "An old project's weights file")
    qtbot.waitUntil(lambda: window.train_action.isEnabled(), timeout=60_000)
    window.train_action.trigger()
    box = window.pretrained.offline_box
    assert box is not None and box.windowTitle() == WEIGHTS_FILE_TITLE
    assert box.text().startswith(f"Layer 0 (resnet18): {mobilenet_file} does not hold resnet18's weights")
    assert box.text().endswith("It needs the state_dict of torchvision's resnet18")
    assert window.pretrained.import_button.text() == "Import Weights File…"
    assert window.train_message.text() == box.text() and "WeightsError" not in box.text()
    assert not window.training.running and window.session.run_dir is None


def test_an_imported_weights_file_is_not_read_again_before_train(resnet_photos, tmp_path, monkeypatch):
    """The import's check against the backbone counts for Train's (a large file is read whole)."""
    import torch
    import torchvision

    from guidl.engine import backbones

    path = tmp_path / "mine.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    reads = []
    real = backbones.read_weights_file
    monkeypatch.setattr(backbones, "read_weights_file", lambda p: reads.append(p) or real(p))
    window = resnet_photos
    window.pretrained.import_weights_file(path)
    assert window.document.project.model.layers[0].params["weights_file"] == str(path)
    assert len(reads) == 1
    assert window.pretrained.weights_file_problem(window.document.project) is None
    assert len(reads) == 1
