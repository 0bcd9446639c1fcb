"""A project's pretrained backbones as the command line handles them: which
layers are backbones, fetching their weights before training (with a
progress report), and a weights file the user gives (``--weights FILE``).

``engine.backbones`` does the work (download, hash check, cache, reading
files without unpickling); this module only finds the layers of a project
it applies to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..registry import LAYERS
from ..registry.backbones import BACKBONES
from ..spec import Layer, Project
from ..spec.graph import MAX_BLOCK_DEPTH, MAX_EXPANDED_LAYERS, block_params, default_values, substitute


class WeightsOptionError(ValueError):
    """A weights file that cannot be used for this project; the message says why."""


@dataclass
class BackboneLayer:
    #: The layer as the file holds it (inside a block: the block's layer,
    #: where a value may be a ``"$name"`` reference to a block parameter).
    layer: Layer
    #: Where it is, as a person reads it: "layer 0" or "layer 2 (Feat): block
    #: 'Feat', layer 0".
    where: str
    #: Its weights and weights_file with the block use's values put in, as
    #: the builder builds it.
    weights: str = "none"
    weights_file: str | None = None

    @property
    def name(self) -> str:
        return self.layer.type


def backbone_layers(project: Project) -> list[BackboneLayer]:
    """Every backbone the project's networks build, in model order: one per
    use of a block that holds one (the values the use gives substituted)."""
    found: list[BackboneLayer] = []
    for network, model in project.networks().items():
        prefix = "" if network == "model" else f"{network} "
        _collect(model.layers, model.blocks, {}, f"{prefix}layer", 0, found, [0])
    return found


def _collect(layers, blocks, values: dict, where: str, depth: int, found: list[BackboneLayer],
             visited: list[int]) -> None:
    for index, layer in enumerate(layers):
        visited[0] += 1
        if visited[0] > MAX_EXPANDED_LAYERS:  # the builder refuses such a model and says why
            return
        params = substitute(layer.params, values) if values else layer.params
        place = f"{where} {index}" + (f" {layer.id!r}" if layer.id else "")
        if layer.type in BACKBONES:
            weights = params.get("weights", BACKBONES[layer.type]["default_weights"])
            found.append(BackboneLayer(layer, place, weights if isinstance(weights, str) and weights else "none",
                                       params.get("weights_file") or None))
        elif layer.type in blocks and layer.type not in LAYERS and depth < MAX_BLOCK_DEPTH:
            block = blocks[layer.type]
            inner = {**default_values(block_params(block)), **params}
            _collect(block.layers, blocks, inner, f"{place} ({layer.type}): block {layer.type!r}, layer",
                     depth + 1, found, visited)


def wanted_weights(project: Project) -> list[tuple[str, str]]:
    """The (backbone, weights) the project's backbones load from torchvision,
    in model order, each once: not those with a weights file or weights
    "none", nor weights the model lacks (shape analysis says so)."""
    wanted: list[tuple[str, str]] = []
    for found in backbone_layers(project):
        if (found.weights_file or found.weights not in BACKBONES[found.name]["weights"]
                or (found.name, found.weights) in wanted):
            continue
        wanted.append((found.name, found.weights))
    return wanted


def check_weights_file(name: str, params: dict, path: str | Path) -> None:
    """A ``backbones.WeightsError``, with the engine's whole message, unless
    ``path`` holds the weights of a ``name`` backbone with ``params`` (its
    keys and shapes, the check training's load makes). Nothing is allocated:
    the backbone is built on the meta device."""
    import torch

    from .backbones import Backbone, matching_state, read_weights_file

    state = read_weights_file(path)
    try:
        with torch.device("meta"):
            backbone = Backbone(name, params.get("weights", "none"), params.get("output", "pooled"))
    except (KeyError, TypeError, ValueError):  # a block parameter or a bad name: the shapes are the same
        with torch.device("meta"):
            backbone = Backbone(name)
    matching_state(backbone, state, str(path))


def use_weights_file(project: Project, path: str | Path) -> str | None:
    """Apply the user's weights file to ``project`` (changed in place). A
    file torchvision publishes (known by its hash) is copied into
    torchvision's cache, where every backbone of that model and those
    weights finds it: a note says so. Any other state dict becomes the
    weights_file of the project's one backbone (the trainer says when it
    loads it): None. ``WeightsOptionError`` says why the file cannot be used."""
    from .backbones import WeightsError, import_weights_file

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
        users = [b for b in found if b.name == name and b.weights == weights and not b.weights_file]
        note = f"{path.name} is torchvision's {name} {weights}: copied into torchvision's cache"
        if not users:
            note += (f"; no backbone of this project uses it (set a {name} layer's weights to "
                     f"{weights} to start from it)")
        return note
    layers = list({id(b.layer): b for b in found}.values())  # a block used twice: one layer to set
    if len(layers) > 1:
        raise WeightsOptionError(f"--weights {path}: the project has {len(layers)} backbone layers "
                                 f"({', '.join(b.where for b in layers)}); set weights_file on the one "
                                 "it is for in the project instead")
    try:  # refused now (code, not tensors, or another model's), before a run folder is made
        check_weights_file(found[0].name, {**found[0].layer.params, "weights": found[0].weights}, path)
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

    paths = []
    for name, weights in wanted_weights(project):
        size = BACKBONES[name]["weights"][weights].get("file_mb", 0.0)
        hook = progress(f"{name} {weights}", size) if progress is not None else None
        paths.append(fetch_weights(name, weights, progress=hook))
    return paths
