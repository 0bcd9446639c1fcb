"""File > New from Pretrained's project: a frozen torchvision backbone and a
new head sized to the classes of the user's folder."""

import pytest
from PIL import Image

from guidl import spec
from guidl.spec.templates import TemplateError, pretrained_project, scan_image_folder


def photos(root, classes=("cats", "dogs", "owls"), per_class=3):
    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (20 + i, 16), (80 * index, 40, 200 - 60 * index)).save(root / name / f"{i}.png")
    return root


def test_a_folder_of_three_classes_gets_a_frozen_backbone_and_a_head_of_three(tmp_path):
    folder = photos(tmp_path / "pets")
    project = pretrained_project(folder, "resnet18")
    backbone, dropout, head = project.model.layers
    assert (backbone.type, backbone.frozen, backbone.params) == (
        "resnet18", True, {"weights": "IMAGENET1K_V1", "output": "pooled"})
    assert (dropout.type, dropout.params, dropout.frozen) == ("Dropout", {"p": 0.2}, False)
    assert (head.type, head.params["out_features"], head.frozen) == ("Linear", 3, False)
    assert project.name == "pets"
    assert project.data.dataset == "image_folder" and project.data.params["path"] == str(folder)
    assert project.data.params["cache"] == "auto"
    assert (project.data.batch_size, project.data.val_fraction) == (32, 0.2)
    assert project.data.augment == {"random_resized_crop": True, "hflip": True}
    training = project.training
    assert (training.loss.type, training.optimizer.type, training.optimizer.params, training.epochs) == (
        "CrossEntropyLoss", "AdamW", {"lr": 1e-3}, 5)
    assert training.fine_tune == {"head_epochs": 3, "unfreeze": 1, "lr_factor": 0.1}
    assert project.problems() == []
    # It is a version-4 file that reads back as the same project.
    assert spec.Project.from_dict(project.to_dict()) == project
    assert project.to_dict()["version"] == 4


def test_weights_can_be_chosen_or_left_out(tmp_path):
    folder = photos(tmp_path / "p", classes=("a", "b"))
    assert pretrained_project(folder, "resnet50").model.layers[0].params["weights"] == "IMAGENET1K_V2"
    project = pretrained_project(folder, "mobilenet_v3_small", weights="none")
    assert project.model.layers[0].params["weights"] == "none"
    assert project.model.layers[-1].params["out_features"] == 2
    with pytest.raises(TemplateError, match="IMAGENET1K_V1"):
        pretrained_project(folder, "resnet18", weights="IMAGENET1K_V9")
    with pytest.raises(TemplateError, match="resnet18"):
        pretrained_project(folder, "resnet1000")


def test_folders_that_cannot_be_trained_on_say_why(tmp_path):
    with pytest.raises(TemplateError, match="not a folder"):
        pretrained_project(tmp_path / "missing", "resnet18")
    one = photos(tmp_path / "one", classes=("only",))
    with pytest.raises(TemplateError, match="1 sub-folder; it needs one sub-folder of images per class, at least two"):
        pretrained_project(one, "resnet18")
    empty = photos(tmp_path / "empty", classes=("a", "b"))
    (empty / "c").mkdir()
    (empty / "c" / "notes.txt").write_text("no photos here")
    with pytest.raises(TemplateError, match="no images in c"):
        pretrained_project(empty, "resnet18")


def test_the_folder_summary_counts_photos_at_any_depth_and_skips_hidden_folders(tmp_path):
    folder = photos(tmp_path / "f", classes=("a", "b"), per_class=2)
    (folder / "b" / "more").mkdir()
    Image.new("RGB", (4, 4)).save(folder / "b" / "more" / "x.JPG")
    (folder / ".thumbnails").mkdir()
    summary = scan_image_folder(folder)
    assert summary.counts == {"a": 2, "b": 3}
    assert summary.describe() == "2 classes, 5 images (a 2, b 3)"
    assert summary.problem() is None
