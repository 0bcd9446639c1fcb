"""Where an export may write, and what it leaves: never over a device, a
pipe or a folder; nothing when its check fails; no file from non-finite
weights; the same bytes for the same weights."""

import copy
import json
import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from guidl.engine import export as export_module
from guidl.engine.export import ExportError, export, load_trained
from guidl.engine.safetensors_io import save, save_file

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def moons():
    return load_trained(ROOT / "examples/moons_mlp.guidl.json")


@pytest.mark.parametrize("fmt", ["safetensors", "python"])
def test_an_export_never_replaces_a_device_a_pipe_or_a_folder(moons, tmp_path, fmt):
    suffix = export_module.FORMATS[fmt]
    with pytest.raises(ExportError, match="/dev/null is a character device, not a regular file"):
        export(moons, fmt, "/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    os.mkfifo(tmp_path / f"pipe{suffix}")
    (tmp_path / f"folder{suffix}").mkdir()
    (tmp_path / f"link{suffix}").symlink_to("/dev/null")
    for name, kind in (("pipe", "is a named pipe"), ("folder", "is a folder"), ("link", "is a character device")):
        with pytest.raises(ExportError, match=kind):
            export(moons, fmt, tmp_path / f"{name}{suffix}")
    assert stat.S_ISFIFO(os.lstat(tmp_path / f"pipe{suffix}").st_mode)
    assert (tmp_path / f"link{suffix}").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}{suffix}" for n in ("pipe", "folder", "link"))


def test_the_python_exports_weights_beside_it_must_be_a_regular_file_too(moons, tmp_path):
    os.mkfifo(tmp_path / "m.safetensors")
    with pytest.raises(ExportError, match="m.safetensors is a named pipe"):
        export(moons, "python", tmp_path / "m.py")
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_an_export_through_a_symlink_writes_its_target(moons, tmp_path):
    (tmp_path / "real.safetensors").write_bytes(b"old")
    (tmp_path / "link.safetensors").symlink_to(tmp_path / "real.safetensors")
    export(moons, "safetensors", tmp_path / "link.safetensors")
    assert (tmp_path / "link.safetensors").is_symlink()
    assert (tmp_path / "real.safetensors").read_bytes() != b"old"


@pytest.mark.parametrize("fmt", ["safetensors", "state_dict", "torchscript", "bundle", "python"])
def test_an_export_that_fails_its_check_leaves_nothing(moons, tmp_path, monkeypatch, fmt):
    target = tmp_path / f"m{export_module.FORMATS[fmt]}"
    target.write_bytes(b"an older export")
    monkeypatch.setattr(export_module, "_compare", lambda expected, got: 0.5)
    with pytest.raises(ExportError, match="differ .* by 0.5 .*nothing was written"):
        export(moons, fmt, target)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file, no weights
    assert target.read_bytes() == b"an older export"


def test_non_finite_weights_are_refused_naming_the_tensor(moons, tmp_path):
    for value, name in ((float("nan"), "2.weight"), (float("inf"), "4.bias")):
        model = copy.copy(moons)
        model.module = copy.deepcopy(moons.module)
        with torch.no_grad():
            model.module.get_parameter(name).view(-1)[0] = value
        for fmt in ("safetensors", "onnx", "python", "bundle"):
            with pytest.raises(ExportError, match=f"not finite: {name} holds 1 NaN or infinite value of"):
                export(model, fmt, tmp_path / f"m{export_module.FORMATS[fmt]}")
    assert list(tmp_path.iterdir()) == []


def test_outputs_that_differ_only_in_nan_are_a_difference():
    expected = torch.tensor([1.0, float("nan"), 3.0])
    assert export_module._compare(expected, expected.clone()) == 0.0
    assert export_module._compare(expected, torch.tensor([1.0, 2.0, 3.0])) == float("inf")
    assert export_module._compare(torch.tensor([1.0, 2.0]), torch.tensor([1.0, float("nan")])) == float("inf")


def test_the_same_weights_are_the_same_bytes(moons, tmp_path):
    tensors = {k: v.contiguous() for k, v in moons.module.state_dict().items()}
    metadata = {"format": "guidl-weights", "project": "Twö moons", "a": "1", "b": "2", "c": "3", "d": "4"}
    written = {save(tensors, metadata) for _ in range(12)}
    assert len(written) == 1  # the library alone orders the metadata differently almost every time
    for index in range(4):
        save_file(tensors, tmp_path / f"w{index}.safetensors", metadata)
    files = {(tmp_path / f"w{index}.safetensors").read_bytes() for index in range(4)}
    assert files == written
    with safe_open(tmp_path / "w0.safetensors", "pt") as handle:
        assert handle.metadata() == metadata
        assert all(torch.equal(handle.get_tensor(k), v) for k, v in tensors.items())
    for fmt in ("safetensors", "bundle"):
        first, second = (tmp_path / f"e1.{fmt}", tmp_path / f"e2.{fmt}")
        export(moons, fmt, first)
        export(moons, fmt, second)
        assert first.read_bytes() == second.read_bytes(), fmt


def test_an_unwritable_folder_is_a_clear_error(moons, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ExportError, match="cannot be written to"):
            export(moons, "safetensors", folder / "m.safetensors")
    finally:
        folder.chmod(0o700)


def test_a_run_folder_whose_run_json_has_the_wrong_types_is_refused(moons, tmp_path):
    from safetensors.torch import save_file as plain_save_file

    run = tmp_path / "run"
    run.mkdir()
    (run / "project.guidl.json").write_text((ROOT / "examples/moons_mlp.guidl.json").read_text())
    plain_save_file(moons.module.state_dict(), run / "model.safetensors")
    record = {"format": "guidl-run", "version": 1, "status": "finished"}
    for extra, words in (({"dataset": ["x"]}, "dataset must be an object"),
                         ({"dataset": {"class_names": "ab"}}, "dataset.class_names must be a list of strings"),
                         ({"input_shape": [2, "x"]}, "input_shape must be a list"),
                         ({"normalization": {"scale": 1, "mean": [0], "std": [0]}}, "normalization must be")):
        (run / "run.json").write_text(json.dumps({**record, **extra}))
        with pytest.raises(ExportError, match=words):
            load_trained(run)
    (run / "run.json").write_text(json.dumps({**record, "dataset": {"class_names": ["a", "b"]}}))
    assert load_trained(run).class_names == ["a", "b"]
