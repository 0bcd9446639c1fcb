"""`guidl train` on a pretrained backbone as a user runs it offline: `--weights
FILE` for a file downloaded elsewhere, a download's progress on stderr, and
a clear exit 2 that says where to put the file when there is no network.
Run in-process (guidl.cli.main); no test reaches the network."""

import hashlib
import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file

from guidl import spec
from guidl.cli import DownloadBar, main
from guidl.registry.backbones import BACKBONES, preprocessing_for


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty torch hub folder and no network: any download fails at once."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def photo_project(folder: Path) -> Path:
    """Six small photos in two classes and a project: a frozen resnet18 with
    its default (downloaded) weights and a Linear head."""
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (folder / "photos" / label).mkdir(parents=True)
        for index in range(3):
            pixels = rng.integers(0, 256, (40 + index, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "photos" / label / f"{index}.png")
    path = folder / "photos.guidl.json"
    path.write_text(json.dumps({
        "format": "guidl-project", "version": 4, "name": "Photos",
        "model": {"layers": [{"type": "resnet18", "frozen": True},
                             {"type": "Linear", "params": {"out_features": 2}}]},
        "data": {"dataset": "image_folder", "params": {"path": str(folder / "photos")},
                 "batch_size": 4, "val_fraction": 0.34},
        "training": {"loss": {"type": "CrossEntropyLoss"}, "optimizer": {"type": "Adam"}, "epochs": 1,
                     "device": "cpu"},
    }))
    return path


def own_weights(path: Path) -> dict:
    """A state dict of torchvision's resnet18 that is not torchvision's published one."""
    torch.manual_seed(5)
    state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(state, path)
    return state


def test_train_with_a_weights_file_starts_the_backbone_from_it(tmp_path, offline, capsys):
    """One real training (about 20 s on two busy cores): the frozen backbone
    ends with the file's weights bit for bit; predict applies the preprocessing."""
    project = photo_project(tmp_path)
    state = own_weights(tmp_path / "mine.pth")
    assert main(["train", str(project), "--weights", str(tmp_path / "mine.pth"), "--out", "run"]) == 0
    err = capsys.readouterr().err
    assert "resnet18: starts from the weights file" in err and "mine.pth" in err
    trained = load_file(str(tmp_path / "run" / "model.safetensors"))
    for key in ("conv1.weight", "bn1.running_mean", "layer4.1.conv2.weight", "layer4.1.bn2.running_var"):
        assert torch.equal(trained[f"0.net.{key}"], state[key]), key
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["preprocessing"] == preprocessing_for("resnet18", "IMAGENET1K_V1")
    assert spec.load(tmp_path / "run" / "project.guidl.json").model.layers[0].params["weights_file"] \
        == str(tmp_path / "mine.pth")

    photo = tmp_path / "photos" / "dogs" / "2.png"
    assert main(["predict", "run", str(photo), "--json"]) == 0
    top = json.loads(capsys.readouterr().out.splitlines()[-1])["predictions"][0]["top"]
    from guidl.engine.export import load_trained
    from guidl.engine.images import Preprocessing, decode_bytes

    model = load_trained(tmp_path / "run", samples=False)
    assert model.preprocessing == record["preprocessing"] and model.normalization is None
    image = decode_bytes(str(photo), photo.read_bytes(), 3)
    x = Preprocessing.from_dict(record["preprocessing"]).eval_transform()(image)[None]
    with torch.no_grad():
        expected = model.module(x).softmax(1)[0]
    assert {t["class"]: t["probability"] for t in top} == pytest.approx(
        {"cats": float(expected[0]), "dogs": float(expected[1])}, abs=1e-6)


def test_weights_files_that_cannot_be_used_are_refused(tmp_path, offline, root, capsys):
    project = photo_project(tmp_path)
    own_weights(tmp_path / "mine.pth")
    assert main(["train", str(root / "examples/moons_mlp.guidl.json"), "--weights", "mine.pth"]) == 2
    assert "the project has no pretrained backbone layer (resnet18" in capsys.readouterr().err

    marker = tmp_path / "ran"

    class Code:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"conv1.weight": Code()}, tmp_path / "code.pth")
    assert main(["train", str(project), "--weights", "code.pth", "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert "holds Python objects or code" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "run").exists()

    assert main(["train", str(project), "--weights", "missing.pth"]) == 2
    assert "--weights missing.pth: no such file" in capsys.readouterr().err
    assert main(["train", "--resume", "run", "--weights", "mine.pth"]) == 2
    assert "--weights starts a new training" in capsys.readouterr().err


def test_another_models_weights_file_is_refused_before_a_run_folder(tmp_path, offline, capsys):
    """--weights is checked against the backbone's keys and shapes, as the window's import is."""
    project = photo_project(tmp_path)
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), tmp_path / "other.pth")
    assert main(["train", str(project), "--weights", "other.pth", "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert "--weights other.pth: other.pth does not hold resnet18's weights: missing keys" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_offline_training_says_where_to_put_the_weights(tmp_path, offline, capsys):
    project = photo_project(tmp_path)
    assert main(["train", str(project), "--json"]) == 2
    captured = capsys.readouterr()
    assert "could not download the IMAGENET1K_V1 weights of resnet18" in captured.err
    assert f"put it at {offline / 'resnet18-f37072fd.pth'}" in captured.err
    assert "--weights FILE" in captured.err and "Traceback" not in captured.err
    assert json.loads(captured.out.splitlines()[-1])["ok"] is False
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


class _Response(io.BytesIO):
    headers = {}


def test_a_download_shows_its_progress_on_stderr(tmp_path, offline, monkeypatch, capsys):
    from guidl.cli import _pretrained_weights

    payload = bytes(range(256)) * 12_000  # 3 MB in three chunks
    digest = hashlib.sha256(payload).hexdigest()[:8]
    weights = BACKBONES["resnet18"]["weights"]["IMAGENET1K_V1"]
    monkeypatch.setitem(weights, "file", f"resnet18-{digest}.pth")

    def serve(url, *args, **kwargs):
        response = _Response(payload)
        response.headers = {"Content-Length": str(len(payload))}
        return response

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    project = spec.load(photo_project(tmp_path))
    assert _pretrained_weights(project, None, quiet=False) is None
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "downloading resnet18 IMAGENET1K_V1:   0%  0.0 of 2.9 MB"
    assert lines[-1] == "downloading resnet18 IMAGENET1K_V1: 100%  2.9 of 2.9 MB"
    assert (offline / f"resnet18-{digest}.pth").read_bytes() == payload


def test_the_bar_redraws_one_line_in_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = DownloadBar("resnet18 IMAGENET1K_V1", 44.661, stream)
    bar(0, 0)
    bar(2**20 * 22, 0)
    bar(int(44.661 * 2**20), 0)
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.endswith("]\n") and " 49%  22.0 of 44.7 MB" in text


def test_a_published_file_goes_into_torchvisions_cache(tmp_path, offline, monkeypatch):
    from guidl.engine.pretrained import use_weights_file

    own_weights(tmp_path / "published.pth")
    digest = hashlib.sha256((tmp_path / "published.pth").read_bytes()).hexdigest()[:8]
    monkeypatch.setitem(BACKBONES["resnet18"]["weights"]["IMAGENET1K_V1"], "file", f"resnet18-{digest}.pth")
    project = spec.load(photo_project(tmp_path))
    note = use_weights_file(project, tmp_path / "published.pth")
    assert note == "published.pth is torchvision's resnet18 IMAGENET1K_V1: copied into torchvision's cache"
    assert (offline / f"resnet18-{digest}.pth").read_bytes() == (tmp_path / "published.pth").read_bytes()
    assert "weights_file" not in project.model.layers[0].params  # the named weights find it there


def block_backbone_project(*uses: dict) -> "spec.Project":
    """A block holding a resnet18 whose weights are the block's parameter w
    (default IMAGENET1K_V1), used once per ``uses`` (the use's params)."""
    return spec.loads(json.dumps({
        "format": "guidl-project", "version": 4, "name": "Block",
        "model": {"input_shape": [3, 64, 64],
                  "blocks": {"Feat": {"params": [{"name": "w", "kind": "str", "default": "IMAGENET1K_V1"}],
                                      "layers": [{"type": "resnet18", "params": {"weights": "$w"}}]}},
                  "layers": [{"type": "Feat", "params": params, "id": f"f{index}",
                              "inputs": ["input"]} for index, params in enumerate(uses)]
                  + [{"type": "Concat", "inputs": [f"f{index}" for index in range(len(uses))]}]
                  * (len(uses) > 1)
                  + [{"type": "Linear", "params": {"out_features": 2}}]},
        "data": {"dataset": "digits", "batch_size": 8},
        "training": {"loss": {"type": "CrossEntropyLoss"}, "optimizer": {"type": "Adam"}, "epochs": 1},
    }))


def test_a_block_parameter_as_a_backbones_weights_is_the_uses_value(offline):
    from guidl.cli import _pretrained_weights
    from guidl.engine.pretrained import backbone_layers, wanted_weights

    project = block_backbone_project({"w": "none"})
    [found] = backbone_layers(project)
    assert (found.name, found.weights, found.where) == ("resnet18", "none", "layer 0 'f0' (Feat): block 'Feat', layer 0")
    assert wanted_weights(project) == []
    assert _pretrained_weights(project, None, quiet=True) is None  # nothing to fetch (was KeyError '$w')
    # The block's default where a use gives none: fetched (offline here: said so).
    project = block_backbone_project({"w": "none"}, {})
    assert wanted_weights(project) == [("resnet18", "IMAGENET1K_V1")]
    assert "could not download the IMAGENET1K_V1 weights of resnet18" in _pretrained_weights(project, None, quiet=True)
