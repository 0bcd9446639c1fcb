"""A project's pretrained backbones as the command line handles them: which
layers are backbones, fetching their weights before training (with a
progress report), and a weights file the user gives (``--weights FILE``).

``engine.backbones`` does the work (download, hash check, cache, reading
files without unpickling); this module only finds the layers of a project
it applies to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..registry.backbones import BACKBONES
from ..spec import Layer, Project


class WeightsOptionError(ValueError):
    """A weights file that cannot be used for this project; the message says why."""


@dataclass
class BackboneLayer:
    layer: Layer
    #: Where it is, as a person reads it: "layer 0" or "block 'Stem', layer 1".
    where: str


def backbone_layers(project: Project) -> list[BackboneLayer]:
    """Every backbone layer of the project's networks, blocks included, in file order."""
    return list(_backbones(project))


def _backbones(project: Project) -> Iterator[BackboneLayer]:
    for network, model in project.networks().items():
        prefix = "" if network == "model" else f"{network} "
        for index, layer in enumerate(model.layers):
            if layer.type in BACKBONES:
                yield BackboneLayer(layer, f"{prefix}layer {index}" + (f" {layer.id!r}" if layer.id else ""))
        for name, block in model.blocks.items():
            for index, layer in enumerate(block.layers):
                if layer.type in BACKBONES:
                    yield BackboneLayer(layer, f"{prefix}block {name!r}, layer {index}")


def _weights(layer: Layer) -> str:
    return layer.params.get("weights", BACKBONES[layer.type]["default_weights"])


def use_weights_file(project: Project, path: str | Path) -> str | None:
    """Apply the user's weights file to ``project`` (changed in place). A
    file torchvision publishes (known by its hash) is copied into
    torchvision's cache, where every backbone of that model and those
    weights finds it: a note says so. Any other state dict becomes the
    weights_file of the project's one backbone (the trainer says when it
    loads it): None. ``WeightsOptionError`` says why the file cannot be used."""
    from .backbones import WeightsError, import_weights_file, read_weights_file

    path = Path(path)
    found = backbone_layers(project)
    if not found:
        raise WeightsOptionError(f"--weights {path}: the project has no pretrained backbone layer "
                                 f"({', '.join(BACKBONES)}) to load it into")
    if not path.is_file():
        raise WeightsOptionError(f"--weights {path}: no such file")
    try:
        published = import_weights_file(path)
    except WeightsError as error:
        raise WeightsOptionError(f"--weights {path}: {error}") from None
    if published is not None:
        name, weights = published
        users = [b for b in found if b.layer.type == name and _weights(b.layer) == weights
                 and not b.layer.params.get("weights_file")]
        note = f"{path.name} is torchvision's {name} {weights}: copied into torchvision's cache"
        if not users:
            note += (f"; no backbone of this project uses it (set a {name} layer's weights to "
                     f"{weights} to start from it)")
        return note
    if len(found) > 1:
        raise WeightsOptionError(f"--weights {path}: the project has {len(found)} backbone layers "
                                 f"({', '.join(b.where for b in found)}); set weights_file on the one "
                                 "it is for in the project instead")
    try:
        read_weights_file(path)  # refused now (code, not tensors), before a run folder is made
    except WeightsError as error:
        raise WeightsOptionError(f"--weights {path}: {error}") from None
    found[0].layer.params["weights_file"] = str(path.absolute())
    return None


def fetch_project_weights(project: Project,
                          progress: Callable[[str, float], Callable[[int, int], None]] | None = None
                          ) -> list[Path]:
    """Download (or find in the cache) the named weights of every backbone of
    ``project`` that has no weights_file; ``progress(label, file_mb)`` gives
    the hook a download reports to. ``backbones.WeightsError`` when one
    cannot be fetched (offline: its message says where to put the file)."""
    from .backbones import fetch_weights

    paths, seen = [], set()
    for found in backbone_layers(project):
        layer = found.layer
        weights = _weights(layer)
        if weights == "none" or layer.params.get("weights_file") or (layer.type, weights) in seen:
            continue
        seen.add((layer.type, weights))
        size = BACKBONES[layer.type]["weights"].get(weights, {}).get("file_mb", 0.0)
        hook = progress(f"{layer.type} {weights}", size) if progress is not None else None
        paths.append(fetch_weights(layer.type, weights, progress=hook))
    return paths
