"""The command line for the tasks beyond labels: exports of a GAN's generator
and discriminator and of an autoencoder's encoder and decoder (each file
loaded back and compared with the model), `guidl generate`, `guidl predict`
reconstructing, `guidl summary` of both GAN networks, and the messages for a
run of the wrong task."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from guidl import cli, spec
from guidl.engine import build
from guidl.engine.callbacks import RunFolder
from guidl.engine.data import VOCAB, prepare
from guidl.engine.graph import layer_modules
from guidl.engine.trainer import Trainer

TRAINING = {"loss": {"type": "BCEWithLogitsLoss", "params": {}},
            "optimizer": {"type": "Adam", "params": {"lr": 0.0002, "betas": [0.5, 0.999]}},
            "scheduler": None, "epochs": 1, "device": "cpu", "seed": 0}
DIGITS = {"dataset": "digits", "params": {}, "val_fraction": 0.1, "batch_size": 64}

GAN = {
    "format": "guidl-project", "version": 3, "name": "Tiny GAN",
    "task": {"type": "gan", "params": {"noise_dim": 8, "samples": 16}},
    "model": {"layers": [
        {"type": "Linear", "params": {"out_features": 32}}, {"type": "ReLU"},
        {"type": "Linear", "params": {"out_features": 64}}, {"type": "Tanh"},
        {"type": "Unflatten", "params": {"dim": 1, "unflattened_size": [1, 8, 8]}}]},
    "discriminator": {"layers": [
        {"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 32}},
        {"type": "LeakyReLU", "params": {"negative_slope": 0.2}},
        {"type": "Linear", "params": {"out_features": 1}}]},
    "data": DIGITS, "training": TRAINING,
}

AUTOENCODER = {
    "format": "guidl-project", "version": 3, "name": "Tiny AE",
    "task": {"type": "reconstruction", "params": {"code_layer": "code"}},
    "model": {"layers": [
        {"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 16}}, {"type": "ReLU"},
        {"id": "code", "type": "Linear", "params": {"out_features": 2}},
        {"type": "Linear", "params": {"out_features": 64}}, {"type": "Sigmoid"},
        {"type": "Unflatten", "params": {"dim": 1, "unflattened_size": [1, 8, 8]}}]},
    "data": DIGITS,
    "training": {**TRAINING, "loss": {"type": "MSELoss", "params": {}},
                 "optimizer": {"type": "Adam", "params": {"lr": 0.01}}},
}


def _train(folder, doc):
    project = spec.Project.from_dict(json.loads(json.dumps(doc)))
    (folder.parent / f"{folder.name}.guidl.json").write_text(spec.dumps(project))
    Trainer(project, callbacks=[RunFolder(folder)]).fit()
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("task_runs")
    return {"gan": _train(base / "gan", GAN), "ae": _train(base / "ae", AUTOENCODER)}


def _whole(run, network="model", shape=None):
    """The run's network built from its project with its weights: the model
    the exports must match."""
    from safetensors.torch import load_file

    project = spec.load(run / "project.guidl.json")
    built = build(project.network(network), shape)
    name = "discriminator.safetensors" if network == "discriminator" else "model.safetensors"
    built.module.load_state_dict(load_file(str(run / name)))
    return built.module.eval()


def _export(capsys, *args):
    status = cli.main(["export", *map(str, args), "--json"])
    out = capsys.readouterr()
    assert status == 0, out.err
    return json.loads(out.out.splitlines()[-1])


def test_the_generator_exports_as_noise_in_images_out(runs, tmp_path, capsys):
    import onnxruntime

    result = _export(capsys, runs["gan"], "-f", "onnx", "-o", tmp_path / "g.onnx")
    assert result["max_difference"] <= 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(3))
    got = session.run(None, {"input": z.numpy()})[0]
    with torch.no_grad():
        want = _whole(runs["gan"], shape=[8])(z)
    assert got.shape == (5, 1, 8, 8)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
    # The discriminator on its own: one score per image.
    _export(capsys, runs["gan"], "--part", "discriminator", "-f", "safetensors", "-o", tmp_path / "d.safetensors")
    from safetensors.torch import load_file

    own = load_file(str(tmp_path / "d.safetensors"))
    whole = _whole(runs["gan"], "discriminator", [1, 8, 8]).state_dict()
    assert own.keys() == whole.keys() and all(torch.equal(own[k], whole[k]) for k in own)


def test_an_exported_generator_says_how_to_turn_its_outputs_into_pixels(runs, tmp_path, capsys):
    import importlib.util

    from guidl.engine.export import load_bundle

    _export(capsys, runs["gan"], "-f", "python", "-o", tmp_path / "gen.py")
    loaded = importlib.util.spec_from_file_location("gen", tmp_path / "gen.py")
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    # A GAN's images are scaled to -1..1: postprocess turns -1 and 1 back into 0 and 255.
    pixels = module.postprocess(torch.tensor([[[[-1.0, 1.0]]]]))
    assert pixels.flatten().tolist() == pytest.approx([0.0, 255.0], abs=1e-3)
    _export(capsys, runs["gan"], "-f", "bundle", "-o", tmp_path / "gen.guidl")
    bundle = load_bundle(tmp_path / "gen.guidl")
    assert bundle.output_normalization == {"scale": pytest.approx(1 / 255), "mean": [0.5], "std": [0.5]}


def test_the_encoder_and_decoder_export_apart_and_compose_to_the_autoencoder(runs, tmp_path, capsys):
    import onnxruntime

    run = runs["ae"]
    _export(capsys, run, "--part", "encoder", "-f", "onnx", "-o", tmp_path / "enc.onnx")
    decoder = _export(capsys, run, "--part", "decoder", "-f", "python", "-o", tmp_path / "dec.py")
    assert decoder["max_difference"] <= 1e-6
    whole = _whole(run, shape=[1, 8, 8])
    x = prepare(spec.load(run / "project.guidl.json")).val.x[:6]
    captured = []
    code_layer = layer_modules(whole)[3]
    handle = code_layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    with torch.no_grad():
        want = whole(x)
    handle.remove()
    session = onnxruntime.InferenceSession(str(tmp_path / "enc.onnx"), providers=["CPUExecutionProvider"])
    code = session.run(None, {"input": x.numpy()})[0]
    assert code.shape == (6, 2)
    np.testing.assert_allclose(code, captured[0].numpy(), atol=1e-5)
    # The written Python module, run in a fresh interpreter, decodes the code back to the output.
    torch.save(torch.from_numpy(code), tmp_path / "code.pt")
    script = ("import sys, torch; sys.path.insert(0, sys.argv[1]); import dec; "
              "print(dec.load()(torch.load(sys.argv[2])).flatten().tolist())")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path), str(tmp_path / "code.pt")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Tiny AE decoder" in (tmp_path / "dec.py").read_text()
    np.testing.assert_allclose(np.array(json.loads(done.stdout)), want.flatten().numpy(), atol=1e-5)


def test_generate_writes_a_grid_of_gan_and_decoder_samples(runs, tmp_path, capsys):
    for run, name in ((runs["gan"], "generator"), (runs["ae"], "decoder")):
        grid = tmp_path / f"{name}.png"
        assert cli.main(["generate", str(run), "-n", "16", "-o", str(grid), "--seed", "1"]) == 0
        assert f"16 samples of the {name}" in capsys.readouterr().out
        pixels = np.asarray(Image.open(grid))
        assert pixels.shape == (42, 42, 3)  # 4 x 4 digits of 8 pixels, 2 between and around
        assert pixels[2:10, 2:10].std() > 0  # a drawn sample, not a blank tile
        again = tmp_path / f"{name}_again.png"
        assert cli.main(["generate", str(run), "-n", "16", "-o", str(again), "--seed", "1"]) == 0
        assert again.read_bytes() == grid.read_bytes()  # the seed decides the samples


def test_predict_reconstructs_with_an_autoencoder(runs, tmp_path, capsys):
    data = prepare(spec.load(runs["ae"] / "project.guidl.json"))
    pixels = data.normalization.invert(data.val.x[:2]).round().clamp(0, 255).byte().numpy()
    files = []
    for i in range(2):
        files.append(tmp_path / f"digit{i}.png")
        Image.fromarray(pixels[i, 0]).save(files[-1])
    out = tmp_path / "out"
    assert cli.main(["predict", str(runs["ae"]), *map(str, files), "--out-dir", str(out), "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)["reconstructions"]
    with torch.no_grad():
        want = ((_whole(runs["ae"], shape=[1, 8, 8])(data.val.x[:2]) - data.val.x[:2]) ** 2).mean(dim=(1, 2, 3))
    assert [a["error"] for a in answers] == pytest.approx(want.tolist(), abs=1e-4)
    pair = np.asarray(Image.open(out / "digit0_reconstruction.png"))
    assert pair.shape == (12, 22, 3)  # the input beside its reconstruction
    assert np.array_equal(pair[2:10, 2:10, 0], pixels[0, 0])


def test_generate_writes_text_with_a_text_model(tmp_path, capsys):
    text = tmp_path / "corpus.txt"
    text.write_text("the cat sat on the mat. " * 60)
    project = spec.Project.from_dict({
        "format": "guidl-project", "version": 3, "name": "Tiny writer",
        "task": {"type": "text_generation", "params": {"prompt": "the ", "length": 30}},
        "model": {"input_shape": [8], "input_dtype": "int64", "layers": [
            {"type": "Embedding", "params": {"num_embeddings": 96, "embedding_dim": 8}},
            {"type": "LSTM", "params": {"hidden_size": 16}},
            {"type": "Linear", "params": {"out_features": 96}}]},
        "data": {"dataset": "text", "params": {"path": str(text), "seq_len": 8},
                 "val_fraction": 0.1, "batch_size": 64},
        "training": {**TRAINING, "loss": {"type": "CrossEntropyLoss", "params": {}},
                     "optimizer": {"type": "Adam", "params": {"lr": 0.01}}}})
    run = tmp_path / "run"
    Trainer(project, callbacks=[RunFolder(run)]).fit()
    assert cli.main(["generate", str(run), "--prompt", "a cat ", "--length", "40", "--temperature",
                     "0.5", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["prompt"] == "a cat " and len(answer["text"]) == 40
    assert set(answer["text"]) <= set(VOCAB)
    assert cli.main(["generate", str(run), "-o", str(tmp_path / "t.txt")]) == 0  # the task's prompt
    assert (tmp_path / "t.txt").read_text().startswith("the ")
    assert cli.main(["generate", str(run), "--label", "3"]) == 2
    assert "--label is for a conditional GAN" in capsys.readouterr().err


def test_runs_of_the_wrong_task_are_refused_with_the_reason(runs, tmp_path, root, capsys):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "project.guidl.json").write_text((root / "examples/mnist_cnn.guidl.json").read_text())
    assert cli.main(["generate", str(plain)]) == 2
    assert (f"{plain} is a classification run: generate needs a gan, an autoencoder with a code "
            "layer, or a text model") in capsys.readouterr().err
    doc = json.loads(json.dumps(AUTOENCODER))
    doc["task"]["params"]["code_layer"] = None
    (plain / "project.guidl.json").write_text(json.dumps(doc))
    assert cli.main(["generate", str(plain)]) == 2
    assert "autoencoder without a code layer" in capsys.readouterr().err
    assert cli.main(["export", str(plain), "--part", "decoder", "-f", "onnx"]) == 2
    assert "has no decoder of its own; set task.params.code_layer" in capsys.readouterr().err
    assert cli.main(["export", str(runs["gan"]), "--part", "encoder", "-f", "onnx"]) == 2
    assert "is a gan run: only an autoencoder" in capsys.readouterr().err
    assert cli.main(["export", str(runs["ae"]), "--part", "discriminator", "-f", "onnx"]) == 2
    assert "is a reconstruction run: only a GAN has a discriminator" in capsys.readouterr().err
    assert cli.main(["generate", str(runs["gan"]), "--prompt", "hi"]) == 2
    assert "for a text model only" in capsys.readouterr().err
    assert cli.main(["predict", str(runs["gan"]), str(tmp_path / "any.png")]) == 2
    assert "is a GAN: its generator makes samples from noise; use guidl generate" in capsys.readouterr().err


def test_summary_shows_both_gan_networks_and_their_problems(tmp_path, capsys):
    path = tmp_path / "gan.guidl.json"
    path.write_text(json.dumps(GAN))
    assert cli.main(["summary", str(path)]) == 0
    out = capsys.readouterr().out
    assert 'Model: "Tiny GAN generator"' in out and 'Model: "Tiny GAN discriminator"' in out
    assert out.count("Total params:") == 2 and "(None, 8)" in out  # the generator takes the noise
    assert "Total params: 2,400" in out and "Total params: 2,113" in out
    doc = json.loads(json.dumps(GAN))
    doc["discriminator"]["layers"][-1]["params"]["out_features"] = 2
    path.write_text(json.dumps(doc))
    assert cli.main(["summary", str(path), "--json"]) == 2
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert any("discriminator" in p for p in problems), problems
