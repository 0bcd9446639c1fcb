"""Ready-made projects: a pretrained backbone with a new head on the user's
own photos (File > New from Pretrained).

Nothing here imports torch: the window's dialog counts the photos and builds
the project while PyTorch may still be loading.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .project import Component, Data, Layer, Model, Project, Training

#: The files image_folder reads (by suffix, any case).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
#: A pretrained head's schedule: the head alone first, then the backbone's last stage at a tenth
#: of the rate (a frozen ImageNet backbone gets most of the way; the last stage adapts it).
FINE_TUNE = {"head_epochs": 3, "unfreeze": 1, "lr_factor": 0.1}
HEAD_DROPOUT = 0.2


class TemplateError(ValueError):
    """A folder or backbone a ready-made project cannot be made from; the
    message says what to choose instead."""


@dataclass
class ImageFolderSummary:
    """What a folder of photos holds: its classes (sub-folders) and their image counts."""

    folder: Path
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return list(self.counts)

    @property
    def images(self) -> int:
        return sum(self.counts.values())

    def problem(self) -> str | None:
        """Why image_folder cannot train on the folder, or None."""
        if len(self.counts) < 2:
            found = f"{len(self.counts)} sub-folder" + ("" if len(self.counts) == 1 else "s")
            return (f"{self.folder.name or self.folder} has {found}; it needs one sub-folder of "
                    "images per class, at least two")
        empty = [name for name, count in self.counts.items() if count == 0]
        if empty:
            return (f"no images in {', '.join(empty[:5])}{' …' if len(empty) > 5 else ''} (looked for "
                    f"{', '.join(sorted(IMAGE_SUFFIXES))})")
        return None

    def describe(self) -> str:
        """``"3 classes, 120 images (cats 40, dogs 50, …)"``."""
        shown = ", ".join(f"{name} {count:,}" for name, count in list(self.counts.items())[:6])
        more = ", …" if len(self.counts) > 6 else ""
        plural = "" if self.images == 1 else "s"
        return f"{len(self.counts)} classes, {self.images:,} image{plural} ({shown}{more})"


def class_files(folder: Path) -> dict[str, list[Path]]:
    """Each class of an image folder and its image files, as image_folder
    reads them: sub-folders sorted by name, hidden ones skipped, entries with
    an image suffix at any depth that are not folders (a named pipe among
    them is refused when read, not passed over), sorted. ``OSError`` when it
    cannot be read."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return {name: sorted(p for p in (folder / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                         and not p.is_dir())
            for name in classes}


def scan_image_folder(folder: str | Path) -> ImageFolderSummary:
    """Count the images of each class sub-folder as image_folder finds them
    (``class_files``)."""
    folder = Path(folder).expanduser()
    if not str(folder).strip() or not os.path.isdir(folder):
        raise TemplateError(f"{folder} is not a folder; choose a folder that holds one sub-folder "
                            "of photos per class")
    try:
        counts = {name: len(files) for name, files in class_files(folder).items()}
    except OSError as error:
        raise TemplateError(f"{folder} cannot be read: {error.strerror or error}") from None
    return ImageFolderSummary(folder, counts)


def backbone_weights(backbone: str, weights: str | None = None) -> tuple[dict, str]:
    """The registry's facts of ``backbone`` and its weights name (the default when None)."""
    from ..registry.backbones import BACKBONES

    if backbone not in BACKBONES:
        raise TemplateError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    meta = BACKBONES[backbone]
    weights = meta["default_weights"] if weights is None else weights
    if weights != "none" and weights not in meta["weights"]:
        raise TemplateError(f"{backbone} has no weights {weights!r}; choose 'none' or one of "
                            f"{', '.join(meta['weights'])}")
    return meta, weights


def input_backbone(model: Model) -> Layer | None:
    """The pretrained backbone layer that takes the model's input (the first
    layer wired to it), if any: its preprocessing is what image folders get
    (engine.images) and what the Data tab describes."""
    from ..registry.backbones import BACKBONES
    from .graph import INPUT_INDEX, resolve_inputs

    wiring = resolve_inputs(model.layers)
    first = next((i for i, sources in enumerate(wiring.inputs) if INPUT_INDEX in sources), None)
    if first is None or model.layers[first].type not in BACKBONES:
        return None
    return model.layers[first]


def pretrained_project(folder: str | Path, backbone: str, weights: str | None = None) -> Project:
    """A project that classifies the photos in ``folder`` (one sub-folder per
    class) with ``backbone`` frozen and a new head sized to the classes, with
    training settings that suit a pretrained backbone.

    ``weights``: one of the backbone's torchvision weights names (default: its
    default weights) or ``"none"`` (random initialisation)."""
    from ..registry.backbones import preprocessing_for

    summary = scan_image_folder(folder)
    problem = summary.problem()
    if problem:
        raise TemplateError(problem)
    _meta, weights = backbone_weights(backbone, weights)
    crop = int(preprocessing_for(backbone, weights)["crop"])
    layers = [
        Layer(backbone, {"weights": weights, "output": "pooled"}, frozen=True),
        Layer("Dropout", {"p": HEAD_DROPOUT}),
        Layer("Linear", {"out_features": len(summary.classes)}),
    ]
    data = Data("image_folder", {"path": str(summary.folder), "image_size": [crop, crop], "cache": "auto"},
                val_fraction=0.2, batch_size=32, augment={"random_resized_crop": True, "hflip": True})
    training = Training(loss=Component("CrossEntropyLoss"), optimizer=Component("AdamW", {"lr": 1e-3}),
                        epochs=5, fine_tune=dict(FINE_TUNE))
    name = summary.folder.resolve().name or "Photos"
    return Project(name=name, model=Model(layers=layers), data=data, training=training)
