"""Pretrained torchvision backbones as guidl layers, and their weights.

``Backbone`` is a torchvision classification model with its head replaced by
``nn.Identity``: it gives pooled features (or its last feature map) for the
layers after it. Its state_dict keys are ``net.<torchvision key>``, so a
torchvision weights file loads into ``net`` as it is (head keys ignored).

The class imports nothing from guidl: the Python export copies its source
(``backbone_source()``) into the generated file.

Weights come from torchvision's own files, fetched here (not through
``torch.hub``) so that a download reports its progress, is checked against the
hash in its file name, lands atomically, and fails offline with a message that
says which file to put where. A weights file is read with safetensors or
``torch.load(weights_only=True)``: never unpickled as code.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import hashlib
import inspect
import math
import os
import re
import tempfile
import textwrap
import urllib.error
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..formatting import format_bytes, format_shape
from ..registry.backbones import BACKBONES, weights_of
from ..spec import UnreadableFileError, open_regular_file

Progress = Callable[[int, int], None]

#: The largest weights file read (ViT-L/16's is 1.2 GB).
MAX_WEIGHTS_BYTES = 4 * 2**30
#: Seconds without a byte before a download gives up.
DOWNLOAD_TIMEOUT = 15.0
_CHUNK = 1 << 20


class Backbone(nn.Module):
    """A torchvision classification model without its head.

    ``output="pooled"`` gives one feature vector per image (resnet18: 512);
    ``"feature_map"`` the last feature map (resnet18 on 224x224: (512, 7, 7);
    vit_b_16: its patch tokens as a (768, 14, 14) map). ``weights`` and
    ``weights_file`` name the pretrained weights loaded after construction,
    which never touches the network or the disk.
    """

    #: torchvision's RegNet settings: its builders compute the widths with
    #: torch ops, which have no values on the meta device (shape analysis).
    REGNET = {"regnet_y_400mf": {"depth": 16, "w_0": 48, "w_a": 27.89, "w_m": 2.09,
                                 "group_width": 8, "se_ratio": 0.25}}
    FAMILIES = ("resnet", "mobilenet_v3", "efficientnet", "convnext", "regnet", "vit")
    #: The classification head torchvision puts on each family (removed here).
    HEADS = {"resnet": "fc", "regnet": "fc", "mobilenet_v3": "classifier", "efficientnet": "classifier",
             "convnext": "classifier.2", "vit": "heads"}

    class Parameters(nn.Module):
        """Loose parameters (a ViT's class token and positions) as one unit of
        a stage; not part of the Backbone's state_dict (they are its net's)."""

        def __init__(self, *parameters: nn.Parameter):
            super().__init__()
            for index, parameter in enumerate(parameters):
                self.register_parameter(f"p{index}", parameter)

    def __init__(self, name: str, weights: str = "none", output: str = "pooled",
                 weights_file: str | None = None):
        super().__init__()
        family = next((f for f in self.FAMILIES if name.startswith(f)), None)
        if family is None:
            raise ValueError(f"{name!r} is none of the torchvision families {', '.join(self.FAMILIES)}")
        if output not in ("pooled", "feature_map"):
            raise ValueError(f"output must be 'pooled' or 'feature_map', got {output!r}")
        self.name, self.family, self.output = name, family, output
        self.weights, self.weights_file = weights or "none", weights_file
        self.net = self._torchvision_model(name, family, self.weights)
        # ConvNeXt's head starts with the LayerNorm of its pooled features:
        # kept for them, dropped with the rest for the feature map.
        self.head = "classifier" if family == "convnext" and output == "feature_map" else self.HEADS[family]
        parent, _, head = self.head.rpartition(".")
        setattr(self.net.get_submodule(parent) if parent else self.net, head, nn.Identity())

    @classmethod
    def _torchvision_model(cls, name: str, family: str, weights: str) -> nn.Module:
        import torchvision.models as models  # 1.5 s: only when a backbone is built

        if not callable(getattr(models, name, None)):
            raise ValueError(f"torchvision has no model {name!r}")
        if family == "regnet":
            settings = cls.REGNET.get(name)
            if settings is None:  # another RegNet: build it for real, then move it
                device = torch.get_default_device()
                with torch.device("cpu" if device.type == "meta" else device):
                    return getattr(models, name)(weights=None).to(device)
            with torch.device("cpu"):
                blocks = models.regnet.BlockParams.from_init_params(**settings)
            return models.regnet.RegNet(blocks, norm_layer=partial(nn.BatchNorm2d, eps=1e-05, momentum=0.1))
        kwargs = {}
        if family == "vit" and weights != "none":
            # Some ViT weights were trained at another size (SWAG E2E: 384):
            # torchvision builds the model with positions for that many patches.
            kwargs["image_size"] = models.get_model_weights(name)[weights].meta["min_size"][0]
        return getattr(models, name)(weights=None, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        if self.family == "vit":
            tokens, height, width = self._vit_tokens(x)
            if self.output == "pooled":
                return tokens[:, 0]
            return tokens[:, 1:].transpose(1, 2).reshape(x.shape[0], -1, height, width)
        if self.output == "pooled":
            return net(x)
        if self.family == "resnet":
            x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
            return net.layer4(net.layer3(net.layer2(net.layer1(x))))
        if self.family == "regnet":
            return net.trunk_output(net.stem(x))
        return net.features(x)

    def _vit_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """torchvision's ViT forward without its fixed image size: the
        position embeddings are resized (bicubic) to the patch grid of ``x``."""
        net = self.net
        x = net.conv_proj(x)
        height, width = x.shape[-2], x.shape[-1]
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([net.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        positions = net.encoder.pos_embedding
        if positions.shape[1] != height * width + 1:
            side = int(math.sqrt(positions.shape[1] - 1))
            grid = positions[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
            positions = torch.cat([positions[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)
        x = net.encoder.ln(net.encoder.layers(net.encoder.dropout(x + positions)))
        return x, height, width

    def stages(self) -> list[list[nn.Module]]:
        """The backbone's stages from input to output (what fine-tuning
        unfreezes one by one, from the last)."""
        net = self.net
        if self.family == "resnet":
            stages = [[net.conv1, net.bn1], net.layer1, net.layer2, net.layer3, net.layer4]
        elif self.family == "regnet":
            stages = [net.stem, *net.trunk_output]
        elif self.family == "vit":
            # The final LayerNorm goes with the last encoder layer (as ConvNeXt's
            # norm with its last stage): alone it would be a unit of 1,536 parameters.
            stages = [[net.conv_proj, self.Parameters(net.class_token, net.encoder.pos_embedding)],
                      *net.encoder.layers[:-1], [net.encoder.layers[-1], net.encoder.ln]]
        else:
            stages = list(net.features)
            if self.family == "convnext" and self.output == "pooled":
                stages[-1] = [stages[-1], net.classifier[0]]  # the LayerNorm of the pooled features
        return [stage if isinstance(stage, list) else [stage] for stage in stages]

    # The Python export copies the class without the method below
    # (backbone_source): exported models carry their trained weights.
    def load_pretrained(self, progress: Callable[[int, int], None] | None = None) -> str | None:
        """Load ``weights_file`` or the named weights into ``net``; a note
        saying what was loaded, or None for weights "none"."""
        return _load_pretrained(self, progress)


def backbone_source() -> str:
    """The source of ``Backbone`` for a generated Python file, without
    ``load_pretrained`` (the file's model loads its own trained weights).
    It needs ``import math``, ``from functools import partial``, ``import
    torch``, ``import torch.nn.functional as F`` and ``from torch import nn``
    beside it (it imports torchvision itself)."""
    source = textwrap.dedent(inspect.getsource(Backbone))
    tree = ast.parse(source)
    method = next(node for node in tree.body[0].body
                  if isinstance(node, ast.FunctionDef) and node.name == "load_pretrained")
    lines = source.splitlines(keepends=True)
    start = method.lineno - 1
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1  # its comment goes with it
    kept = lines[:start] + lines[method.end_lineno:]
    return "".join(kept).rstrip() + "\n"


# -- input checks (shape analysis) ----------------------------------------------------------------

def input_problem(name: str, params: dict[str, Any], shape: tuple[int, ...]) -> tuple[str, str] | None:
    """``(problem, fix)`` when ``name`` cannot take one sample of ``shape``
    (rank 3 was checked already)."""
    channels, height, width = shape
    if channels != 3:
        fix = ("load the images in colour (image_folder: grayscale off), or insert "
               "Conv2d(out_channels=3, kernel_size=1) before it" if channels == 1 else
               "insert Conv2d(out_channels=3, kernel_size=1) before it")
        return (f"{name} takes 3 colour channels but receives {format_shape(shape)}: its pretrained "
                f"filters expect red, green and blue", fix)
    model = BACKBONES[name]
    weights = params.get("weights") or "none"
    if weights != "none" and weights not in model["weights"]:
        return (f"weights {weights!r} are not among {name}'s ({', '.join(model['weights'])})",
                f"set weights to {model['default_weights']} or 'none'")
    if model["family"] == "vit":
        patch = 16
        if height % patch or width % patch:
            return (f"{name} cuts images into {patch}x{patch} patches, so height and width must be "
                    f"multiples of {patch}, but it receives {format_shape(shape)}",
                    f"resize the images to {weights_of(name, weights)['crop']}x"
                    f"{weights_of(name, weights)['crop']} (image_folder: image_size)")
        return None
    smallest = weights_of(name, weights)["min_size"]
    if height < smallest or width < smallest:
        return (f"{name} needs images of at least {smallest}x{smallest} but receives "
                f"{format_shape(shape)}",
                f"resize the images to at least {smallest}x{smallest} (image_folder: image_size)")
    return None


def batch_norm_values(name: str, shape: tuple[int, ...]) -> int:
    """Values per channel of one sample that the backbone's last BatchNorm
    sees (its last feature map's height x width; a large number for the
    families normalised with LayerNorm). Training on a batch of one sample
    fails where this is 1: a ResNet on 32x32 images ends at 1x1."""
    if BACKBONES[name]["family"] in ("vit", "convnext"):
        return 2**31
    # Each family halves the size 5 times with padded stride-2 layers: ceil(size / 2) each.
    return math.ceil(shape[1] / 32) * math.ceil(shape[2] / 32)


# -- weights ----------------------------------------------------------------------------------------

class WeightsError(RuntimeError):
    """Weights that cannot be had: offline, a bad download, a file that is not
    the model's. The message says what failed and what to do."""


#: The download progress callback of the current thread (``download_progress``).
_PROGRESS: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("guidl_download_progress",
                                                                            default=None)


@contextlib.contextmanager
def download_progress(callback: Progress | None) -> Iterator[None]:
    """Within the block, downloads of backbone weights without a ``progress``
    of their own report ``callback(done_bytes, total_bytes)`` (total 0 when
    the server does not say): the trainer has no channel of its own for it."""
    token = _PROGRESS.set(callback)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def _hash_prefix(file: str) -> str:
    # torch.hub's convention: "<name>-<first hex digits of the sha256>.<ext>".
    found = re.search(r"-([a-f0-9]+)\.", file)
    return found.group(1) if found else ""


def weights_path(name: str, weights: str) -> Path:
    """Where torchvision (and guidl) keep the file: ``<torch hub dir>/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / weights_of(name, weights)["file"]


def _offline_message(name: str, weights: str, reason: str) -> str:
    meta = weights_of(name, weights)
    return (f"could not download the {weights} weights of {name} ({meta['file']}, "
            f"{meta['file_mb']:.1f} MB) from {meta['url']}: {reason}. Download that file elsewhere "
            f"and put it at {weights_path(name, weights)}, or open it with File > Import Weights "
            f"File... (in the window) or `--weights FILE` (on the command line), or set the "
            f"layer's weights_file to it; weights 'none' trains without pretrained weights")


class _ProgressError(Exception):
    """What the progress callback raised, told apart from the download's errors."""


class _Reporter:
    def __init__(self, progress: Progress | None):
        self.progress = progress

    def __call__(self, done: int, total: int) -> None:
        if self.progress is not None:
            try:
                self.progress(done, total)
            except Exception as error:  # noqa: BLE001 - re-raised unchanged by fetch_weights
                raise _ProgressError() from error


def fetch_weights(name: str, weights: str, progress: Progress | None = None) -> Path:
    """The path of ``name``'s ``weights`` file, downloaded first when it is
    not there yet. Raises ``WeightsError`` offline or on a bad download
    (nothing is left behind then)."""
    meta = weights_of(name, weights)
    path = weights_path(name, weights)
    if path.is_file():
        return path
    progress = progress if progress is not None else _PROGRESS.get()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WeightsError(_offline_message(name, weights, f"cannot create {path.parent}: "
                                                           f"{error.strerror or error}")) from None
    temp = None
    report = _Reporter(progress)
    try:
        with urllib.request.urlopen(meta["url"], timeout=DOWNLOAD_TIMEOUT) as response:
            total = int(response.headers.get("Content-Length") or 0)
            digest = hashlib.sha256()
            done = 0
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name + ".",
                                             suffix=".partial", delete=False) as out:
                temp = Path(out.name)
                report(0, total)
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    report(done, total)
                out.flush()
                os.fsync(out.fileno())
        if total and done != total:
            raise WeightsError(_offline_message(name, weights, f"the download stopped after "
                                                               f"{format_bytes(done)} of {format_bytes(total)}"))
        prefix = _hash_prefix(meta["file"])
        if not digest.hexdigest().startswith(prefix):
            raise WeightsError(f"the downloaded {meta['file']} is damaged or not the published file "
                               f"(its sha256 starts {digest.hexdigest()[:len(prefix)]}, not {prefix}); "
                               f"it was not kept: try again, or put a good copy at {path}")
        os.replace(temp, path)
        temp = None
        return path
    except _ProgressError as error:  # the caller's own (a cancel): as it was raised
        raise error.__cause__ from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
        if isinstance(error, TimeoutError) or "timed out" in str(reason):
            reason = f"no data for {DOWNLOAD_TIMEOUT:g} seconds ({reason})"
        raise WeightsError(_offline_message(name, weights, str(reason))) from None
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)


def _open_weights(path: Path) -> BinaryIO:
    """``path`` opened for reading: only a regular file (a named pipe would
    block forever) of at most ``MAX_WEIGHTS_BYTES``, checked on the opened file."""
    try:
        return open_regular_file(path, MAX_WEIGHTS_BYTES, "a backbone's weights file")
    except UnreadableFileError as error:
        raise WeightsError(f"cannot read the weights file {error}") from None


def read_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state_dict in a ``.safetensors`` file or a ``.pth``/``.pt`` file
    read with ``weights_only=True`` (a file that holds code is refused). A
    checkpoint that wraps it (``{"state_dict": ...}``, ``{"model": ...}``) is
    unwrapped."""
    path = Path(path)
    with _open_weights(path) as handle:
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load
                state = load(handle.read(MAX_WEIGHTS_BYTES + 1))
            else:
                state = torch.load(handle, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - pickle, zip and safetensors raise many kinds
            text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if "weights_only" in str(error) or "Unsupported global" in str(error):
                text = "it holds Python objects or code, not only tensors, and guidl never runs code from a file"
            raise WeightsError(f"cannot read the weights file {path}: {text}") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise WeightsError(f"the weights file {path} does not hold a state_dict (names and tensors)")
    return state


def matching_state(backbone: Backbone, state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """``state`` as ``backbone.net``'s state_dict (head keys and a ``net.``
    or ``module.`` prefix dropped), or a WeightsError naming the keys that
    do not fit."""
    expected = backbone.net.state_dict()
    for prefix in ("module.", "net."):
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix):]: value for key, value in state.items()}
    if not set(expected) <= set(state):
        # A whole model guidl trained ("0.net.conv1.weight", then its own head):
        # the backbone's part of it, when one part has every key.
        for prefix in sorted({key[:key.index("net.") + 4] for key in state if "net." in key}):
            part = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
            if set(expected) <= set(part):
                state = part
                break
    head = backbone.head + "."
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected and not key.startswith(head)]
    wrong = [f"{key} {format_shape(tuple(state[key].shape))} (the model's: "
             f"{format_shape(tuple(value.shape))})"
             for key, value in expected.items() if key in state and state[key].shape != value.shape]

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")

    parts = ([f"missing keys {some(missing)}"] if missing else []) + \
            ([f"unexpected keys {some(unexpected)}"] if unexpected else []) + \
            ([f"wrong shapes: {some(wrong)}"] if wrong else [])
    if parts:
        raise WeightsError(f"{source} does not hold {backbone.name}'s weights: {'; '.join(parts)}. "
                           f"It needs the state_dict of torchvision's {backbone.name}")
    return {key: state[key] for key in expected}


def _load_pretrained(backbone: Backbone, progress: Progress | None) -> str | None:
    if backbone.weights_file:
        path = Path(backbone.weights_file).expanduser()
        what = f"the weights file {path}"
    elif backbone.weights != "none":
        path = fetch_weights(backbone.name, backbone.weights, progress)
        what = f"torchvision's {backbone.weights} weights ({path.name})"
    else:
        return None
    state = matching_state(backbone, read_weights_file(path), str(path))
    with torch.no_grad():
        backbone.net.load_state_dict(state, strict=True)
    return f"{backbone.name}: starts from {what}"


def load_backbone_weights(module: nn.Module, progress: Progress | None = None) -> list[str]:
    """Load the pretrained weights of every ``Backbone`` in ``module``;
    returns notes saying what each started from."""
    notes = []
    for child in module.modules():
        if isinstance(child, Backbone):
            note = child.load_pretrained(progress)
            if note is not None:
                notes.append(note)
    return notes


def _sha256(handle: BinaryIO, out: BinaryIO | None = None) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
        if out is not None:
            out.write(chunk)
    return digest.hexdigest()


def _published(digest: str) -> tuple[str, str] | None:
    for name, model in BACKBONES.items():
        for weights, meta in model["weights"].items():
            prefix = _hash_prefix(meta["file"])
            if prefix and digest.startswith(prefix):
                return name, weights
    return None


def import_weights_file(path: str | os.PathLike) -> tuple[str, str] | None:
    """A file torchvision publishes (downloaded elsewhere), recognised by its
    sha256: copied into the cache where ``fetch_weights`` finds it; returns
    ``(name, weights)``, or None when it is none of them.

    The hash in torchvision's file names is only a prefix (8 hex digits, 2**32
    tries to match), and torchvision loads its cached files with
    ``weights_only=False``: so the copy is read first as guidl reads any
    weights file (no code runs; only tensors pass) and must hold that
    model's keys and shapes, else it is refused and nothing is cached."""
    path = Path(path)
    try:
        with _open_weights(path) as handle:
            digest = _sha256(handle)
    except OSError as error:
        raise WeightsError(f"cannot read {path}: {error.strerror or error}") from None
    found = _published(digest)
    if found is None:
        return None
    name, weights = found
    target = weights_path(name, weights)
    if target.is_file():
        return name, weights
    temp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # The bytes checked are the bytes cached: copied once into a file of
        # ours, hashed again on the way, and that copy is what is read.
        with _open_weights(path) as handle, tempfile.NamedTemporaryFile(
                dir=target.parent, prefix=target.name + ".", suffix=".partial", delete=False) as out:
            temp = Path(out.name)
            copied = _sha256(handle, out)
        if copied != digest:
            raise WeightsError(f"{path} changed while it was copied; try again")
        with torch.device("meta"):  # only the names and shapes: nothing allocated
            backbone = Backbone(name, weights)
        try:
            matching_state(backbone, read_weights_file(temp), str(path))
        except WeightsError as error:
            reason = str(error).replace(str(temp), str(path))
            raise WeightsError(f"{path} has the hash of torchvision's {name} {weights} file in its "
                               f"first digits but is not that file, so it was not copied into "
                               f"torchvision's cache: {reason}") from None
        os.replace(temp, target)
        temp = None
    except OSError as error:
        raise WeightsError(f"cannot copy {path} to {target}: {error.strerror or error}") from None
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)
    return name, weights
