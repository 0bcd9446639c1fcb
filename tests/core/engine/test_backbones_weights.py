"""Pretrained weights: files read safely and bit for bit, downloads checked and
atomic, offline failures that say where to put the file. No real network: a
closed local port and a local http.server stand in for download.pytorch.org."""

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import save_file

from guidl.engine.backbones import (
    Backbone, WeightsError, download_progress, fetch_weights, import_weights_file, load_backbone_weights,
    read_weights_file, weights_path,
)
from guidl.engine.build import build
from guidl.engine.trainer import Trainer
from guidl.registry.backbones import BACKBONES
from guidl.spec import Component, Data, Layer, Model, Project, Training


@pytest.fixture(scope="module")
def resnet18_state():
    torch.manual_seed(7)
    return torchvision.models.resnet18().state_dict()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """torch.hub's directory (where weights are cached) inside tmp_path."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


def _same(backbone, state):
    ours = backbone.net.state_dict()
    return all(torch.equal(ours[k], v) for k, v in state.items() if not k.startswith("fc."))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_weights_file_loads_bit_for_bit(tmp_path, resnet18_state, suffix):
    path = tmp_path / f"mine{suffix}"
    if suffix == ".pth":
        torch.save(resnet18_state, path)
    else:
        save_file(resnet18_state, str(path))
    backbone = Backbone("resnet18", weights="IMAGENET1K_V1", weights_file=str(path))
    assert not _same(backbone, resnet18_state)
    note = backbone.load_pretrained()
    assert _same(backbone, resnet18_state)
    assert str(path) in note


def test_every_backbone_of_a_built_model_loads_and_none_loads_nothing(tmp_path, resnet18_state):
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": resnet18_state}, path)  # a checkpoint wrapping it is unwrapped
    model = Model([Layer("resnet18", {"weights_file": str(path)}), Layer("Linear", {"out_features": 3})],
                  [3, 32, 32])
    module = build(model).module
    notes = load_backbone_weights(module)
    assert len(notes) == 1 and _same(module[0], resnet18_state)
    fresh = build(Model([Layer("resnet18", {"weights": "none"})], [3, 32, 32])).module
    assert load_backbone_weights(fresh) == []
    # A whole model trained before (its backbone under "0.net.", its own head) starts another.
    torch.save(module.state_dict(), tmp_path / "trained.pth")
    again = Backbone("resnet18", weights_file=str(tmp_path / "trained.pth"))
    again.load_pretrained()
    assert _same(again, resnet18_state)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_file_holding_code_is_refused_without_running_it(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": _Payload(marker)}, path)
    with pytest.raises(WeightsError, match="never runs code"):
        read_weights_file(path)
    assert not marker.exists()


def test_wrong_keys_and_shapes_are_named(tmp_path, resnet18_state):
    state = dict(resnet18_state)
    state["extra.weight"] = state.pop("layer4.1.bn2.bias")
    state["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    backbone = Backbone("resnet18", weights_file=str(path))
    with pytest.raises(WeightsError) as caught:
        backbone.load_pretrained()
    message = str(caught.value)
    assert "missing keys layer4.1.bn2.bias" in message
    assert "unexpected keys extra.weight" in message
    assert "wrong shapes: conv1.weight (64, 1, 7, 7) (the model's: (64, 3, 7, 7))" in message
    torch.save([1, 2], path)
    with pytest.raises(WeightsError, match="does not hold a state_dict"):
        read_weights_file(path)


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_offline_says_what_failed_and_where_to_put_the_file(hub, monkeypatch):
    meta = BACKBONES["resnet18"]["weights"]["IMAGENET1K_V1"]
    monkeypatch.setitem(meta, "url", f"http://127.0.0.1:{_closed_port()}/{meta['file']}")
    backbone = Backbone("resnet18", weights="IMAGENET1K_V1")
    with pytest.raises(WeightsError) as caught:
        backbone.load_pretrained()
    message = str(caught.value)
    target = weights_path("resnet18", "IMAGENET1K_V1")
    assert target == hub / "resnet18-f37072fd.pth"
    assert f"put it at {target}" in message
    assert "resnet18-f37072fd.pth, 44.7 MB" in message
    assert "File > Import Weights File..." in message and "--weights FILE" in message
    assert not hub.exists() or not any(hub.iterdir())


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _published(monkeypatch, root, url, content, prefix=None):
    """Serve ``content`` as resnet18's IMAGENET1K_V1 file, named with ``prefix``
    (by default its real sha256 prefix)."""
    prefix = prefix or hashlib.sha256(content).hexdigest()[:8]
    name = f"resnet18-{prefix}.pth"
    (root / name).write_bytes(content)
    meta = BACKBONES["resnet18"]["weights"]["IMAGENET1K_V1"]
    monkeypatch.setitem(meta, "file", name)
    monkeypatch.setitem(meta, "url", url + name)
    return name


def test_a_download_reports_progress_checks_its_hash_and_lands_in_the_cache(hub, server, monkeypatch):
    root, url = server
    content = np.random.default_rng(0).bytes(2_500_000)  # three chunks
    name = _published(monkeypatch, root, url, content)
    calls = []
    with download_progress(lambda done, total: calls.append((done, total))):
        path = fetch_weights("resnet18", "IMAGENET1K_V1")
    assert path == hub / name and path.read_bytes() == content
    assert calls[0] == (0, len(content)) and calls[-1] == (len(content), len(content))
    assert len(calls) >= 4 and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert sorted(p.name for p in hub.iterdir()) == [name]


def test_a_download_with_the_wrong_hash_is_refused_and_leaves_nothing(hub, server, monkeypatch):
    root, url = server
    _published(monkeypatch, root, url, b"not the published weights", prefix="0123abcd")
    with pytest.raises(WeightsError, match="damaged or not the published file"):
        fetch_weights("resnet18", "IMAGENET1K_V1", progress=lambda done, total: None)
    assert list(hub.iterdir()) == []


def test_a_progress_callback_that_raises_cancels_the_download(hub, server, monkeypatch):
    root, url = server
    _published(monkeypatch, root, url, np.random.default_rng(1).bytes(2_500_000))

    def cancel(done, total):
        if done > 0:
            raise KeyError("cancelled by the user")

    with pytest.raises(KeyError, match="cancelled by the user"):
        fetch_weights("resnet18", "IMAGENET1K_V1", progress=cancel)
    assert list(hub.iterdir()) == []


def _as_published(path: Path, monkeypatch, name="mobilenet_v3_small", weights="IMAGENET1K_V1") -> None:
    """Make the catalogue's file name for ``name`` carry ``path``'s hash prefix."""
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    monkeypatch.setitem(BACKBONES[name]["weights"][weights], "file", f"{name}-{prefix}.pth")


def test_a_published_file_from_elsewhere_is_recognised_and_cached(hub, tmp_path, monkeypatch):
    given = tmp_path / "Downloads.pth"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), given)
    _as_published(given, monkeypatch)
    assert import_weights_file(given) == ("mobilenet_v3_small", "IMAGENET1K_V1")
    assert weights_path("mobilenet_v3_small", "IMAGENET1K_V1").read_bytes() == given.read_bytes()
    other = tmp_path / "other.pth"
    other.write_bytes(b"something else")
    assert import_weights_file(other) is None


def test_a_file_with_a_published_hash_prefix_but_code_is_never_cached(hub, tmp_path, monkeypatch):
    # torchvision loads its cache with weights_only=False: a crafted pickle
    # whose sha256 starts like a published file's (2**32 tries) must not land there.
    marker, crafted = tmp_path / "ran", tmp_path / "crafted.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": _Payload(marker)}, crafted)
    _as_published(crafted, monkeypatch)
    with pytest.raises(WeightsError, match="not that file.*never runs code"):
        import_weights_file(crafted)
    assert not marker.exists()
    assert not hub.exists() or list(hub.iterdir()) == []
    # Tensors only, but not the model's: refused too.
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    _as_published(wrong, monkeypatch)
    with pytest.raises(WeightsError, match="missing keys"):
        import_weights_file(wrong)
    assert not hub.exists() or list(hub.iterdir()) == []


def test_a_named_pipe_is_refused_at_once(tmp_path):
    import os

    fifo = tmp_path / "weights.pth"
    os.mkfifo(fifo)
    errors = []

    def read() -> None:
        for function in (read_weights_file, import_weights_file):
            try:
                function(fifo)
            except WeightsError as error:
                errors.append(str(error))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # blocked opening the pipe: a writer lets it go
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        pytest.fail("reading a named pipe blocked")
    assert len(errors) == 2 and all("named pipe" in error for error in errors), errors


def test_training_starts_from_the_backbone_weights_unless_weights_are_given(tmp_path, resnet18_state):
    weights = tmp_path / "r18.safetensors"
    save_file(resnet18_state, str(weights))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tiny.npz", x=rng.random((8, 3, 32, 32), dtype=np.float32),
             y=np.arange(8) % 2)
    project = Project(
        name="pretrained",
        model=Model([Layer("resnet18", {"weights_file": str(weights)}), Layer("Linear", {"out_features": 2})]),
        data=Data("npz", {"path": str(tmp_path / "tiny.npz")}, val_fraction=0.25, batch_size=4),
        training=Training(Component("CrossEntropyLoss"), Component("SGD", {"lr": 0.01}), epochs=1,
                          device="cpu", seed=0))
    trainer = Trainer(project)
    trainer.setup()
    assert _same(trainer.model[0], resnet18_state)
    assert any("starts from the weights file" in note for note in trainer.notes)
    given = {k: torch.zeros_like(v) if v.is_floating_point() else v
             for k, v in trainer.model.state_dict().items()}
    continued = Trainer(project, initial_weights=given)
    continued.setup()
    assert torch.count_nonzero(continued.model[0].net.conv1.weight) == 0


def test_a_weights_problem_at_train_reads_as_its_own_message():
    from guidl.engine.backbones import WeightsError
    from guidl.engine.training_process import failure_message

    text = "the weights file w.pth does not fit resnet18: It needs the state_dict of torchvision's resnet18"
    assert failure_message(WeightsError(text)) == text
