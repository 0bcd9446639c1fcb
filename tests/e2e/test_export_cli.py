"""`guidl export` and `guidl predict` as a user runs them."""

import ast
import json
import os
import stat
import subprocess
import sys
import zipfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from bundle_surgery import damaged_bundles, rewritten

from guidl import spec
from guidl.engine.callbacks import RunFolder
from guidl.engine.data import prepare
from guidl.engine.trainer import Trainer


def guidl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "guidl", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_bundle_round_trips_through_predict(tmp_path, root):
    project = spec.load(root / "examples/mnist_cnn.guidl.json")
    run = tmp_path / "run"
    Trainer(project, callbacks=[RunFolder(run)], epochs=2, device="cpu").fit()
    result = guidl("export", str(run), "--format", "bundle", "-o", str(tmp_path / "digits.guidl"))
    assert result.returncode == 0, result.stderr
    assert "largest difference from the model: 0" in result.stdout
    # Known samples: validation digits, written as the PNG files a user has.
    data = prepare(project)
    pixels = data.normalization.invert(data.val.x[:40]).round().clamp(0, 255).byte().numpy()
    labels = data.val.y[:40].tolist()
    files = []
    for i in range(0, 40, 4):  # ten samples of several classes
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(pixels[i, 0]).save(path)
        files.append((path, str(labels[i])))
    result = guidl("predict", str(tmp_path / "digits.guidl"), *[str(p) for p, _ in files], "--json", "-k", "2")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)["predictions"]
    assert [p["input"] for p in predictions] == [str(p) for p, _ in files]
    right = sum(p["top"][0]["class"] == label for p, (_, label) in zip(predictions, files))
    assert right >= 8, predictions
    assert all(len(p["top"]) == 2 and p["top"][0]["probability"] >= p["top"][1]["probability"]
               for p in predictions)
    text = guidl("predict", str(tmp_path / "digits.guidl"), str(files[0][0]))
    assert text.returncode == 0 and text.stdout.startswith(f"{files[0][0]}: ")


def test_export_and_predict_explain_bad_input(tmp_path, root):
    result = guidl("export", str(tmp_path / "missing"), "--format", "onnx")
    assert result.returncode == 2 and "no such run folder, bundle or project file" in result.stderr
    result = guidl("export", str(root / "examples/moons_mlp.guidl.json"), "--format", "onnx",
                   "-o", str(tmp_path / "m.onnx"))
    assert result.returncode == 0 and "warning: the model is untrained" in result.stderr
    (tmp_path / "broken.guidl").write_bytes(b"PK\x03\x04 not really a zip")
    result = guidl("predict", str(tmp_path / "broken.guidl"), str(tmp_path / "x.png"))
    assert result.returncode == 2 and "not a valid guidl bundle" in result.stderr
    assert "Traceback" not in result.stderr
    rows = tmp_path / "rows.csv"
    rows.write_text("x,y\n0.5,0.2\n-1,0.3\n")
    result = guidl("predict", str(root / "examples/moons_mlp.guidl.json"), str(rows), "--json")
    assert result.returncode == 0
    assert len(json.loads(result.stdout)["predictions"]) == 2
    result = guidl("predict", str(root / "examples/mnist_cnn.guidl.json"), str(rows))
    assert result.returncode == 2 and "takes (1, 28, 28) inputs, not table rows" in result.stderr


# -- files from anyone, paths of any kind ------------------------------------------------------

def _hostile(marker):
    create = f"open({str(marker)!r}, 'w').close()"
    return [f'Moons"""\n{create}\n"""', f"x'''\n{create}\n'''\r\x00", f"\\\n{create}\\ ✓"]


def _called(source: str) -> set[str]:
    return {ast.unparse(node.func) for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)}


def _assert_safe(path, marker, reference_calls):
    source = path.read_text(encoding="utf-8")
    compile(source, str(path), "exec")
    assert _called(source) == reference_calls
    assert not marker.exists()


def test_hostile_names_from_a_project_a_bundle_and_a_run_folder_run_nothing(tmp_path, root, capsys):
    from guidl.cli import main
    from guidl.engine.export import export, load_trained

    marker = tmp_path / "marker"
    name, first, second = _hostile(marker)
    document = json.loads((root / "examples/moons_mlp.guidl.json").read_text())
    document["name"] = name
    project_file = tmp_path / "hostile.guidl.json"
    project_file.write_text(json.dumps(document))
    # The reference: the same model with plain names.
    model = load_trained(root / "examples/moons_mlp.guidl.json")
    model.class_names = ["a", "b"]
    export(model, "python", tmp_path / "reference.py")
    calls = _called((tmp_path / "reference.py").read_text())
    # A project file, through the real command.
    result = guidl("export", str(project_file), "--format", "python", "-o", str(tmp_path / "p.py"))
    assert result.returncode == 0, result.stderr
    _assert_safe(tmp_path / "p.py", marker, calls)
    # A bundle whose project, meta.json name and class names are hostile.
    model.class_names = [first, second]
    export(model, "bundle", tmp_path / "plain.guidl")
    meta = json.loads(zipfile.ZipFile(tmp_path / "plain.guidl").read("meta.json"))
    rewritten(tmp_path / "plain.guidl", tmp_path / "hostile.guidl", project=document,
              meta={**meta, "name": name, "class_names": [first, second]})
    assert main(["export", str(tmp_path / "hostile.guidl"), "-f", "python", "-o", str(tmp_path / "b.py")]) == 0
    _assert_safe(tmp_path / "b.py", marker, calls)
    assert f"CLASS_NAMES = {[first, second]!r}" in (tmp_path / "b.py").read_text(encoding="utf-8")
    # A run folder whose project and run.json are hostile.
    run = tmp_path / "run"
    run.mkdir()
    (run / "project.guidl.json").write_text(json.dumps(document))
    (run / "run.json").write_text(json.dumps({"format": "guidl-run", "version": 1, "status": "finished",
                                              "project": name,
                                              "dataset": {"task": "classification", "class_names": [second, first]}}))
    save_file(model.module.state_dict(), run / "model.safetensors")
    assert main(["export", str(run), "-f", "python", "-o", str(tmp_path / "r.py"), "--training-script"]) == 0
    _assert_safe(tmp_path / "r.py", marker, calls)
    compile((tmp_path / "r_train.py").read_text(encoding="utf-8"), "r_train.py", "exec")
    assert "internal error" not in capsys.readouterr().err


def test_python_export_to_a_relative_path_and_to_the_default_name(tmp_path, root):
    project = str(root / "examples/moons_mlp.guidl.json")
    (tmp_path / "out").mkdir()
    result = guidl("export", project, "--format", "python", "-o", "out/m.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out/m.py").is_file() and (tmp_path / "out/m.safetensors").is_file()
    result = guidl("export", project, "--format", "python", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "two_moons_mlp.py").is_file() and (tmp_path / "two_moons_mlp.safetensors").is_file()


def test_export_never_writes_over_a_device_or_a_pipe(tmp_path, root, capsys):
    from guidl.cli import main

    project = str(root / "examples/moons_mlp.guidl.json")
    assert main(["export", project, "-f", "state_dict", "-o", "/dev/null"]) == 2
    assert "/dev/null is a character device, not a regular file" in capsys.readouterr().err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    os.mkfifo(tmp_path / "pipe.py")
    assert main(["export", project, "-f", "python", "-o", str(tmp_path / "pipe.py")]) == 2
    assert "is a named pipe" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.py"]


def test_damaged_bundles_are_explained_by_predict_and_export(tmp_path, root, capsys):
    from guidl.cli import main
    from guidl.engine.export import export, load_trained

    export(load_trained(root / "examples/moons_mlp.guidl.json"), "bundle", tmp_path / "good.guidl")
    rows = tmp_path / "rows.csv"
    rows.write_text("x,y\n0.5,0.2\n")
    for kind, (path, words) in damaged_bundles(tmp_path / "good.guidl", tmp_path).items():
        for args in (["predict", str(path), str(rows)], ["export", str(path), "-f", "onnx", "-o", str(tmp_path / "m.onnx")]):
            assert main(args) == 2, (kind, args[0])
            err = capsys.readouterr().err
            assert f"{path}: not a valid guidl bundle: " in err and words in err, (kind, err)
            assert "internal error" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


def test_a_run_record_that_is_a_fifo_is_refused_by_export(tmp_path, root):
    run = tmp_path / "run"
    run.mkdir()
    (run / "project.guidl.json").write_bytes((root / "examples/moons_mlp.guidl.json").read_bytes())
    os.mkfifo(run / "run.json")
    result = guidl("export", str(run), "--format", "safetensors", "-o", str(tmp_path / "m.safetensors"))
    assert result.returncode == 2, result.stderr
    assert "run.json: is a named pipe (FIFO), not a regular file" in result.stderr
    assert not (tmp_path / "m.safetensors").exists()


def test_predict_on_a_run_folder_does_not_load_its_dataset(tmp_path, root, monkeypatch, capsys):
    """Predicting needs the model and its preprocessing, not the training data
    (loading MNIST for a few sample rows made predict slow)."""
    from guidl import cli
    from guidl.engine import data as data_module

    project = spec.load(root / "examples/moons_mlp.guidl.json")
    run = tmp_path / "run"
    Trainer(project, callbacks=[RunFolder(run)], epochs=1, device="cpu").fit()
    rows = tmp_path / "rows.csv"
    rows.write_text("x,y\n0.5,0.2\n")

    def no_data(*args, **kwargs):
        raise AssertionError("predict loaded the dataset")

    monkeypatch.setattr(data_module, "prepare", no_data)
    assert cli.main(["predict", str(run), str(rows), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out.splitlines()[-1])["predictions"]) == 1
