"""The guidl command as a user runs it: a real subprocess, real files."""

import json
import subprocess
import sys

import pytest

from guidl import __version__


def guidl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "guidl", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_version_and_help():
    result = guidl("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"guidl {__version__}"
    result = guidl("--help")
    assert result.returncode == 0 and "summary" in result.stdout


def test_summary_prints_the_keras_table(root):
    result = guidl("summary", str(root / "examples/mnist_cnn.guidl.json"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith('Model: "MNIST CNN"')
    assert "Conv2d(32, 3)" in out and "(None, 32, 26, 26)" in out and "692,352" in out
    assert "Total params: 693,962 (2.65 MB)" in out
    assert result.stderr == ""


EXPECTED_TOTALS = {"mnist_cnn": 693_962, "two_block_cnn": 34_826, "mlp": 101_770,
                   "char_lstm": 98_400, "moons_mlp": 354, "resnet_mnist": 43_178,
                   "inception_mnist": 14_586, "char_transformer": 119_648, "skip_cnn": 12_714,
                   "dcgan_mnist": 546_177, "cgan_mnist": 608_897, "conv_autoencoder": 65_025,
                   "conv_autoencoder_2d": 417_011, "denoising_autoencoder": 115_217,
                   "char_writer": 98_400}
# A GAN's totals above are its generator's; its discriminator's are pinned here.
DISCRIMINATOR_TOTALS = {"dcgan_mnist": 138_689, "cgan_mnist": 148_929}


def test_summary_json_of_every_example(example_path):
    result = guidl("summary", str(example_path), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.splitlines()[-1])
    assert data["ok"] is True
    name = example_path.name.split(".")[0]
    assert data["total_params"] == EXPECTED_TOTALS[name]
    assert data["total_params"] == sum(layer["param_count"] for layer in data["layers"])
    discriminator = data.get("discriminator")
    assert (discriminator and discriminator["total_params"]) == DISCRIMINATOR_TOTALS.get(name)
    assert all(layer["error"] is None for layer in data["layers"])


BAD = {
    "malformed.guidl.json": ('{"format": "guidl-project",', 1, "not valid JSON"),
    "list.guidl.json": ("[]", 1, "a project file must hold a JSON object"),
    "future.guidl.json": ('{"format": "guidl-project", "version": 99}', 1, "newer than this guidl"),
    "params.guidl.json": (json.dumps({
        "format": "guidl-project", "version": 1,
        "model": {"input_shape": [1, 28, 28], "layers": [
            {"type": "Conv2d", "params": {"out_channels": 32, "kernel_size": -2}},
            {"type": "Relu"},
            {"type": "Linear", "params": {"out_features": 10, "bias": "yes"}}]},
        "data": {"dataset": "mnist_sample"},
        "training": {"optimizer": {"type": "Adam", "params": {"lr": 0}}}}), 4,
        "model.layers[0].params.kernel_size: must be a positive integer"),
    "shapes.guidl.json": (json.dumps({
        "format": "guidl-project", "version": 1,
        "model": {"input_shape": [1, 28, 28], "layers": [
            {"type": "Conv2d", "params": {"out_channels": 8, "kernel_size": 3}},
            {"type": "Linear", "params": {"out_features": 10}}]},
        "data": {"dataset": "mnist_sample"}, "training": {}}), 1,
        "model.layers[1]: Linear: receives (8, 26, 26)"),
    "huge.guidl.json": (json.dumps({
        "format": "guidl-project", "version": 1,
        "model": {"input_shape": [100000], "layers": [
            {"type": "Linear", "params": {"out_features": 2000000000}}]},
        "data": {"dataset": "mnist_sample"}, "training": {}}), 1, "more than this machine's"),
    "code.guidl.json": (json.dumps({
        "format": "guidl-project", "version": 1,
        "model": {"input_shape": [3], "layers": [{"type": "__import__('os').system('touch PWNED')"}]},
        "data": {"dataset": "mnist_sample"}, "training": {"loss": {"type": "eval"}}}), 2,
        "unknown layer"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_projects_exit_2_with_one_line_per_problem(tmp_path, name):
    text, count, expected = BAD[name]
    path = tmp_path / name
    path.write_text(text)
    result = guidl("summary", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == count, lines
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert any(expected in line for line in lines), lines
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "PWNED").exists()
    as_json = guidl("summary", str(path), "--json", cwd=tmp_path)
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout) == {"ok": False, "problems": lines}


def test_summary_takes_the_input_shape_from_the_dataset(tmp_path):
    path = tmp_path / "moons.guidl.json"
    path.write_text(json.dumps({"format": "guidl-project", "version": 1, "model": {"layers": [
        {"type": "Linear", "params": {"out_features": 2}}]}, "data": {"dataset": "moons"}, "training": {}}))
    result = guidl("summary", str(path))
    assert result.returncode == 0, result.stderr
    assert "(None, 2)" in result.stdout and "Total params: 6 " in result.stdout


def test_missing_file_and_usage_errors(tmp_path):
    result = guidl("summary", str(tmp_path / "nope.guidl.json"))
    assert result.returncode == 2 and result.stderr.strip().endswith("nope.guidl.json: no such file")
    result = guidl("summary")
    assert result.returncode == 2 and "the following arguments are required: project" in result.stderr
