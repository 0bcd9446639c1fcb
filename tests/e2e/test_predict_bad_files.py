"""`guidl predict` on several files, some of them unreadable: every readable
one is predicted, each bad one is reported by path with a plain reason, and
the exit status is 2 (after the others' results)."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from guidl import spec
from guidl.cli import main
from guidl.engine.callbacks import RunFolder
from guidl.engine.trainer import Trainer


def _files(folder):
    """Two good images, a file that is not an image, a truncated JPEG and a missing file."""
    Image.fromarray(np.full((28, 28), 90, np.uint8)).save(folder / "a.png")
    Image.fromarray(np.full((40, 48, 3), 200, np.uint8)).save(folder / "b.jpg")
    (folder / "x.jpg").write_bytes(b"not a photo at all")
    (folder / "t.jpg").write_bytes((folder / "b.jpg").read_bytes()[:200])
    return [str(folder / name) for name in ("a.png", "x.jpg", "b.jpg", "t.jpg", "missing.png")]


def _check(result_json, stderr, files):
    a, x, b, t, missing = files
    assert [p["input"] for p in result_json["predictions"]] == [a, b]
    assert result_json["ok"] is False
    failed = {f["input"]: f["error"] for f in result_json["failed"]}
    assert list(failed) == [x, t, missing]
    # The backbone's decoder (engine.images) words it its own way.
    assert failed[x] in (f"{x}: not a readable image (not an image format guidl reads)",
                         f"{x}: not an image format guidl reads")
    assert failed[t].startswith(f"{t}: not a readable image")
    assert failed[missing] == f"{missing}: no such file"
    for message in failed.values():
        assert f"guidl predict: {message}" in stderr
    assert "BufferedReader" not in stderr and "Traceback" not in stderr
    assert "could not read 3 of the 5 input files" in stderr


def test_a_bad_file_does_not_stop_the_others(tmp_path, root):
    files = _files(tmp_path)
    model = str(root / "examples/mnist_cnn.guidl.json")  # a project file: an untrained model
    result = subprocess.run([sys.executable, "-m", "guidl", "predict", model, *files, "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    _check(json.loads(result.stdout), result.stderr, files)
    # As text: one line per good image on stdout.
    result = subprocess.run([sys.executable, "-m", "guidl", "predict", model, *files],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert [line.split(": ")[0] for line in result.stdout.splitlines()] == [files[0], files[2]]
    assert f"guidl predict: {files[1]}: not a readable image" in result.stderr


def test_a_backbone_run_reports_bad_files_and_predicts_the_rest(tmp_path, capsys):
    """The backbone's decoding path (the run's preprocessing), in process."""
    for label in ("cats", "dogs"):
        (tmp_path / "photos" / label).mkdir(parents=True)
        for index in range(2):
            Image.fromarray(np.full((40, 48, 3), 60 * index + 20, np.uint8)).save(
                tmp_path / "photos" / label / f"{index}.png")
    project = spec.Project.from_dict({
        "format": "guidl-project", "version": 4, "name": "Photos",
        "model": {"layers": [{"type": "resnet18", "params": {"weights": "none"}, "frozen": True},
                             {"type": "Linear", "params": {"out_features": 2}}]},
        "data": {"dataset": "image_folder", "params": {"path": str(tmp_path / "photos"), "image_size": 32},
                 "batch_size": 2, "val_fraction": 0.5},
        "training": {"loss": {"type": "CrossEntropyLoss"}, "optimizer": {"type": "Adam"}, "epochs": 1,
                     "device": "cpu"},
    })
    Trainer(project, callbacks=[RunFolder(tmp_path / "run")], epochs=1, device="cpu").fit()
    files = _files(tmp_path)
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), *files, "--json"]) == 2
    out, err = capsys.readouterr()
    _check(json.loads(out.splitlines()[-1]), err, files)
    # Nothing readable: exit 2, each file said, no predictions.
    assert main(["predict", str(tmp_path / "run"), files[1], files[3]]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"{files[1]}: " in err and f"{files[3]}: not a readable image" in err
