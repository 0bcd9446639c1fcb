"""What training would reject, `guidl summary` and `guidl train` refuse
before it: exit 2 and one clear line, never "internal error"."""

import json
import subprocess
import sys

import pytest


def guidl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "guidl", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def moons(**changes) -> dict:
    doc = {"format": "guidl-project", "version": 1, "name": "moons",
           "model": {"input_shape": [2], "layers": [
               {"type": "Linear", "params": {"out_features": 8}}, {"type": "ReLU"},
               {"type": "Linear", "params": {"out_features": 2}}]},
           "data": {"dataset": "moons", "params": {"n_samples": 100}, "val_fraction": 0.2,
                    "batch_size": 32},
           "training": {"loss": {"type": "CrossEntropyLoss", "params": {}},
                        "optimizer": {"type": "Adam", "params": {"lr": 0.01}},
                        "scheduler": None, "epochs": 1, "device": "cpu", "seed": 0}}
    for path, value in changes.items():
        *parents, last = path.split(".")
        target = doc
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return doc


def char_model(**params) -> dict:
    doc = moons()
    doc["model"] = {"input_shape": [16], "input_dtype": "int64", "layers": [
        {"type": "Embedding", "params": {"num_embeddings": 96, "embedding_dim": 8, **params}},
        {"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 96}}]}
    doc["data"] = {"dataset": "text", "params": {"seq_len": 16, "max_samples": 200}, "batch_size": 32}
    return doc


SOFTMAX_DIM = moons(**{"model.layers.2": {"type": "Softmax", "params": {"dim": 2}}})
CONV_TRANSPOSE = moons(**{"model.layers": [
    {"type": "Unflatten", "params": {"dim": 1, "unflattened_size": [2, 1, 1]}},
    {"type": "ConvTranspose2d", "params": {"out_channels": 2, "kernel_size": 3, "output_padding": 2}},
    {"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 2}}]})

REFUSED = {
    "padding_idx": (char_model(padding_idx=200),
                    "model.layers[0]: Embedding: padding_idx must be in [-num_embeddings, "
                    "num_embeddings) = [-96, 96), got 200"),
    "softmax_dim": (SOFTMAX_DIM, "model.layers[2]: Softmax: dim 2 is out of range"),
    "output_padding": (CONV_TRANSPOSE, "model.layers[1]: ConvTranspose2d: output_padding 2 must be "
                                       "smaller than stride (1) or dilation (1)"),
    "dataset_seed": (moons(**{"data.params.seed": 2**32}),
                     "data.params.seed: must be an integer from 0 to 4294967295, got 4294967296"),
    "ignore_index": (moons(**{"training.loss.params": {"ignore_index": 2**63}}),
                     "training.loss.params.ignore_index: must be an integer from -9223372036854775808 "
                     "to 9223372036854775807, got 9223372036854775808"),
    "adam_beta": (moons(**{"training.optimizer.params": {"betas": [0.9, 1.0]}}),
                  "training.optimizer.params.betas: each item must be a number >= 0 and < 1, got 1.0"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_summary_refuses_what_training_would_reject(tmp_path, name):
    doc, words = REFUSED[name]
    path = tmp_path / "p.guidl.json"
    path.write_text(json.dumps(doc))
    result = guidl("summary", str(path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [line for line in result.stderr.splitlines() if words in line]
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "internal error" not in result.stderr


@pytest.mark.parametrize("name", ["softmax_dim", "dataset_seed"])
def test_train_refuses_it_before_the_first_batch(tmp_path, name):
    doc, words = REFUSED[name]
    path = tmp_path / "p.guidl.json"
    path.write_text(json.dumps(doc))
    result = guidl("train", str(path), "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    path = folder / "moons.guidl.json"
    path.write_text(json.dumps(moons()))
    result = guidl("train", str(path), "--out", str(folder / "run"))
    assert result.returncode == 0, result.stderr
    return folder / "run"


def _copy_run(run, tmp_path):
    import shutil

    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


def test_resuming_after_the_optimizer_was_changed_is_bad_input(trained_run, tmp_path):
    run = _copy_run(trained_run, tmp_path)
    project = json.loads((run / "project.guidl.json").read_text())
    project["training"]["optimizer"] = {"type": "SGD", "params": {"lr": 0.1, "momentum": 0.9}}
    (run / "project.guidl.json").write_text(json.dumps(project))
    result = guidl("train", "--resume", str(run), "--epochs", "2")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"{run / 'checkpoint.pt'}: the checkpoint was made with Adam; the project now says SGD: a run "
        "resumes with the optimizer it was made with, so set training.optimizer back to Adam to "
        "resume, or start a new run from the edited project"]


@pytest.mark.parametrize("content, words", [
    ("[1, 2]", "not a guidl checkpoint (it holds a list)"),
    ("{'format': 'guidl-checkpoint', 'version': 1, 'epoch': 'one'}",
     "damaged checkpoint: 'step' (a whole number), 'model' (the weights)"),
])
def test_a_crafted_checkpoint_is_bad_input(trained_run, tmp_path, content, words):
    import torch

    run = _copy_run(trained_run, tmp_path)
    torch.save(eval(content), run / "checkpoint.pt")  # noqa: S307 - a literal of this test
    result = guidl("train", "--resume", str(run), "--epochs", "2")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and words in result.stderr, result.stderr
    assert "internal error" not in result.stderr


def test_a_model_too_big_to_train_here_is_a_warning_in_summary_and_refused_by_train(tmp_path):
    import math
    import os

    # Weights of about 40% of this machine's memory: past the weights-only
    # check, but weights, gradients and Adam's two moments need 160%.
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    width = math.isqrt(int(physical * 0.4 / 4))
    doc = moons(**{"model.layers": [
        {"type": "Linear", "params": {"out_features": width}},
        {"type": "Linear", "params": {"out_features": width}},
        {"type": "Linear", "params": {"out_features": 2}}]})
    path = tmp_path / "big.guidl.json"
    path.write_text(json.dumps(doc))
    summary = guidl("summary", str(path))
    assert summary.returncode == 0, summary.stderr
    lines = summary.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {path}: model: training needs about ")
    assert "Adam state" in lines[0] and "is available on this machine" in lines[0]
    train = guidl("train", str(path), "--out", str(tmp_path / "run"))
    assert train.returncode == 2, train.stderr
    assert train.stderr.splitlines()[-1].startswith("model: training needs about ")
    assert not (tmp_path / "run").exists()


def test_torch_warnings_are_notes_without_source_paths(tmp_path):
    doc = moons()
    doc["model"] = {"layers": [
        {"type": "Conv2d", "params": {"out_channels": 2, "kernel_size": 2, "padding": "same"}},
        {"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 10}}]}
    doc["data"] = {"dataset": "digits", "val_fraction": 0.2, "batch_size": 256}
    path = tmp_path / "even.guidl.json"
    path.write_text(json.dumps(doc))
    note = ("note: layer 0 (Conv2d): Using padding='same' with even kernel lengths and odd dilation "
            "may require a zero-padded copy of the input be created")
    for args in (["summary", str(path)], ["train", str(path), "--out", str(tmp_path / "run")]):
        result = guidl(*args)
        assert result.returncode == 0, result.stderr
        output = result.stdout + result.stderr
        assert note in output.splitlines(), output
        assert "Triggered internally" not in output and ".cpp" not in output and ".py:" not in output


def test_a_bad_flag_names_the_command_not_the_top_level_usage(capsys):
    # In process (argparse exits 2): the command's own usage and error prefix.
    from guidl.cli import main

    with pytest.raises(SystemExit) as ended:
        main(["sweep", "p.guidl.json", "--trials", "abc"])
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: guidl sweep ")
    assert "guidl sweep: error: argument --trials: " in err
    assert "[PROJECT] |" not in err
    with pytest.raises(SystemExit):
        main(["train", "--bogus"])
    err = capsys.readouterr().err
    assert err.startswith("usage: guidl train ") and "guidl train: error: " in err
