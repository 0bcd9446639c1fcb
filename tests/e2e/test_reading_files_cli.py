"""Hostile files given to the guidl command: named pipes, devices, damaged
CSV, values a model cannot take. Each ends at once with exit 2 and one clear
line, never a hang, a traceback or a made-up answer.

A project that is not a regular file is refused before torch is imported, so
those cases run as a real subprocess (a hang ends in TimeoutExpired); the
others call ``guidl.cli.main`` in this process to spare a torch import each."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from PIL import Image

from guidl.cli import main
from helpers import no_hang

EXIT_BAD_INPUT = 2


def guidl(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "guidl", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


@pytest.fixture
def run_main(capsys, monkeypatch):
    def run(*args, cwd=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        with no_hang(60):
            code = main(list(args))
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    return run


def _one_clear_line(result, expected: str) -> None:
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert expected in result.stderr, result.stderr


@pytest.mark.parametrize("command", ["summary", "train"])
def test_a_fifo_as_project_exits_2_at_once(tmp_path, command):
    fifo = tmp_path / "pipe.guidl.json"
    os.mkfifo(fifo)
    result = guidl(command, str(fifo), cwd=tmp_path)  # a hang would end in TimeoutExpired
    _one_clear_line(result, f"{fifo}: is a named pipe (FIFO), not a regular file")


def test_a_device_as_project_exits_2_at_once(tmp_path):
    result = guidl("summary", "/dev/zero", timeout=60)
    _one_clear_line(result, "/dev/zero: is a character device, not a regular file")


def test_a_fifo_as_data_path_stops_training_with_a_clear_message(run_main, tmp_path, root):
    fifo = tmp_path / "corpus.txt"
    os.mkfifo(fifo)
    project = json.loads((root / "examples/char_lstm.guidl.json").read_text())
    project["data"]["params"] = {"path": str(fifo), "seq_len": 64}
    path = tmp_path / "lstm.guidl.json"
    path.write_text(json.dumps(project))
    result = run_main("train", str(path), "--out", str(tmp_path / "run"), cwd=tmp_path)
    _one_clear_line(result, f"text: {fifo}: is a named pipe (FIFO), not a regular file")


# -- predict ---------------------------------------------------------------------

def test_predict_refuses_nan_inputs_naming_the_row(run_main, tmp_path, root):
    rows = tmp_path / "rows.csv"
    rows.write_text("x,y\n0.5,0.2\nnan,0.3\n")
    result = run_main("predict", str(root / "examples/moons_mlp.guidl.json"), str(rows))
    _one_clear_line(result, f"{rows}: row 3 holds NaN or an infinite value")
    assert "nan%" not in result.stdout


def test_predict_refuses_token_ids_the_model_does_not_have(run_main, tmp_path, root):
    project = json.loads((root / "examples/char_lstm.guidl.json").read_text())
    project["model"]["input_shape"] = [4]
    path = tmp_path / "lstm.guidl.json"
    path.write_text(json.dumps(project))
    rows = tmp_path / "ids.csv"
    rows.write_text("1,2,3,4\n1,2,3,500\n")
    result = run_main("predict", str(path), str(rows))
    _one_clear_line(result, f"{rows}: row 2 holds 500; this model takes token ids, whole numbers "
                            "from 0 to 95")
    rows.write_text("1,2,3,4.5\n")
    _one_clear_line(run_main("predict", str(path), str(rows)), "row 1 holds 4.5")


@pytest.mark.parametrize("content,expected", [
    ("x,y\n0.5,caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    (b"x,y\n0.5," + b"1" * 200_000 + b"\n", "line 2 holds a field longer than 128 KiB"),
], ids=["latin-1", "giant-field"])
def test_predict_explains_csv_it_cannot_read(run_main, tmp_path, root, content, expected):
    rows = tmp_path / "rows.csv"
    rows.write_bytes(content)
    result = run_main("predict", str(root / "examples/moons_mlp.guidl.json"), str(rows))
    _one_clear_line(result, f"{rows}: " + expected if expected.startswith("line") else expected)


def test_predict_refuses_a_fifo_input(run_main, tmp_path, root):
    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    result = run_main("predict", str(root / "examples/moons_mlp.guidl.json"), str(fifo))
    _one_clear_line(result, f"{fifo}: is a named pipe (FIFO), not a regular file")


def test_predict_on_a_run_folder_creates_no_data_folder(run_main, tmp_path, root):
    project = json.loads((root / "examples/mnist_cnn.guidl.json").read_text())
    nowhere = tmp_path / "nowhere"
    project["data"] = {"dataset": "mnist", "params": {"root": str(nowhere / "datasets"), "download": True}}
    run = tmp_path / "run"
    run.mkdir()
    (run / "project.guidl.json").write_text(json.dumps(project))
    image = tmp_path / "digit.png"
    Image.new("L", (28, 28), 0).save(image)
    result = run_main("predict", str(run), str(image))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{image}: ")
    assert not nowhere.exists()


def test_predict_refuses_an_output_that_is_not_finite(run_main, tmp_path, root):
    rows = tmp_path / "rows.csv"
    rows.write_text("0.5,0.2\n3e38,-3e38\n")  # float32, but not once weighted and summed
    result = run_main("predict", str(root / "examples/moons_mlp.guidl.json"), str(rows))
    _one_clear_line(result, f"{rows}:2: the model's output is NaN or infinite")
    assert "nan" not in result.stdout
    rows.write_text("1e308,0\n")
    _one_clear_line(run_main("predict", str(root / "examples/moons_mlp.guidl.json"), str(rows)),
                    f"{rows}: row 1 holds a number beyond what the model computes with")
