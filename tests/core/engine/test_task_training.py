"""Each task trains for real on small data and gets better; a GAN resumes
exactly; a run folder keeps what each epoch made."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from guidl.engine.callbacks import RunFolder
from guidl.engine.checkpoint_checks import CheckpointError
from guidl.engine.data import VOCAB
from guidl.engine.tasks import collapse_warning
from guidl.engine.trainer import Trainer
from guidl.spec import Project


def _autoencoder(noise="none", epochs=4):
    return {"format": "guidl-project", "version": 3, "name": "ae",
            "task": {"type": "reconstruction", "params": {"code_layer": "code", "noise": noise}},
            "model": {"layers": [
                {"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 64}}, {"type": "ReLU"},
                {"id": "code", "type": "Linear", "params": {"out_features": 12}},
                {"type": "Linear", "params": {"out_features": 64}}, {"type": "ReLU"},
                {"type": "Linear", "params": {"out_features": 64}}, {"type": "Sigmoid"},
                {"type": "Unflatten", "params": {"dim": 1, "unflattened_size": [1, 8, 8]}}]},
            "data": {"dataset": "digits", "params": {}, "val_fraction": 0.2, "batch_size": 32},
            "training": {"loss": {"type": "MSELoss", "params": {}},
                         "optimizer": {"type": "Adam", "params": {"lr": 0.003}},
                         "scheduler": None, "epochs": epochs, "device": "cpu", "seed": 0}}


def _gan(epochs=6, conditional=False):
    adam = {"type": "Adam", "params": {"lr": 0.001, "betas": [0.5, 0.999]}}
    return {"format": "guidl-project", "version": 3, "name": "gan",
            "task": {"type": "gan", "params": {"noise_dim": 16, "samples": 64, "conditional": conditional}},
            "model": {"layers": [
                {"type": "Linear", "params": {"out_features": 128}},
                {"type": "LeakyReLU", "params": {"negative_slope": 0.2}},
                {"type": "Linear", "params": {"out_features": 64}}, {"type": "Tanh"},
                {"type": "Unflatten", "params": {"dim": 1, "unflattened_size": [1, 8, 8]}}]},
            "discriminator": {"layers": [
                {"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 128}},
                {"type": "LeakyReLU", "params": {"negative_slope": 0.2}},
                {"type": "Linear", "params": {"out_features": 1}}]},
            "data": {"dataset": "digits", "params": {}, "val_fraction": 0.1, "batch_size": 32},
            "training": {"loss": {"type": "BCEWithLogitsLoss", "params": {}}, "optimizer": adam,
                         "discriminator_optimizer": copy.deepcopy(adam),
                         "scheduler": None, "epochs": epochs, "device": "cpu", "seed": 0}}


class Keep:
    def __init__(self):
        self.samples = []

    def on_samples(self, trainer, epoch, samples):
        self.samples.append((epoch, samples))


def test_an_autoencoder_learns_to_give_back_its_input(digits_data, tmp_path):
    keep = Keep()
    run = tmp_path / "run"
    result = Trainer(Project.from_dict(_autoencoder()), data=None,
                     callbacks=[keep, RunFolder(run)]).fit()
    report = result.evaluation
    # Validation MSE falls below half of always answering the mean image.
    assert result.history[-1].val_mse < 0.5 * report.baseline_mse
    assert result.history[-1].val_mse < result.history[0].val_mse
    assert report.psnr == pytest.approx(10 * np.log10(1 / report.mse), rel=1e-6)  # 'unit' range: peak 1
    errors = [w["error"] for w in report.worst]
    assert errors == sorted(errors, reverse=True) and errors[0] > report.mse
    assert report.codes is None  # a 12-value code has no 2-D scatter
    # Inputs beside reconstructions after every epoch, as pixels, and in the run folder.
    epoch, shown = keep.samples[-1]
    assert epoch == 4 and shown["kind"] == "reconstructions" and shown["noisy"] is None
    assert shown["inputs"].dtype == np.uint8 and shown["inputs"].shape == shown["outputs"].shape == (16, 8, 8)
    assert (run / "samples" / "epoch_0004.png").read_bytes()[:4] == b"\x89PNG"
    record = json.loads((run / "run.json").read_text())
    assert record["task"]["type"] == "reconstruction" and len(record["code_stats"]["mean"]) == 12
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_mse", "val_mse", "val_psnr"} <= set(header) and "d_loss" not in header


def test_denoising_adds_noise_to_the_input_only():
    project = Project.from_dict(_autoencoder(noise="masking", epochs=1))
    project.task.params["noise_strength"] = 0.5
    keep = Keep()
    trainer = Trainer(project, callbacks=[keep])
    trainer.fit()
    shown = keep.samples[-1][1]
    inputs, noisy = shown["inputs"].astype(int), shown["noisy"].astype(int)
    # Masking sets about half the values to 0 (the scaled range's 0: black), never the target.
    masked = (noisy == 0) & (inputs != 0)
    assert 0.3 < masked.sum() / (inputs != 0).sum() < 0.7
    x = trainer.data.train.x[:8]
    model_input, target = trainer.task.batch(x, trainer.data.train.y[:8])
    assert target is x and not torch.equal(model_input, x)


def test_a_gan_gets_better_by_its_classifier_based_score(tmp_path):
    keep = Keep()
    run = tmp_path / "gan"
    trainer = Trainer(Project.from_dict(_gan()), callbacks=[keep, RunFolder(run)])
    result = trainer.fit()
    first, last = result.history[0], result.history[-1]
    assert last.judge_confidence > first.judge_confidence + 0.1
    assert all(0 < m.d_real < 1 and 0 < m.d_fake < 1 and m.d_loss > 0 for m in result.history)
    assert [m.g_loss for m in result.history] == [m.train_loss for m in result.history]
    report = result.evaluation
    assert report.judge_accuracy > 0.8 and report.samples == 1000 and sum(report.class_counts) == 1000
    assert [epoch for epoch, _ in keep.samples] == [1, 2, 3, 4, 5, 6]
    images = keep.samples[-1][1]["images"]
    assert images.dtype == np.uint8 and images.shape == (64, 8, 8)
    assert (run / "samples" / "epoch_0006.png").exists() and (run / "discriminator.safetensors").exists()
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"d_loss", "g_loss", "d_real", "d_fake", "judge_confidence"} <= set(header)


def test_a_gan_resumes_exactly_from_its_checkpoint():
    project = Project.from_dict(_gan(epochs=3, conditional=True))
    whole = Trainer(project).fit()
    first = Trainer(project, epochs=2)
    first.fit()
    state = first.state_dict()
    assert state["version"] == 2 and state["task"] == "gan" and "discriminator" in state["task_state"]
    resumed = Trainer(project, epochs=3)
    resumed.load_state_dict(state)
    again = resumed.fit()
    assert [m.d_loss for m in again.history] == [m.d_loss for m in whole.history]
    assert again.history[-1].judge_confidence == whole.history[-1].judge_confidence
    # A checkpoint of another task is refused, with what to do.
    labels = Trainer(project, epochs=3)
    wrong = dict(state, task=None)
    with pytest.raises(CheckpointError, match="made for task 'labels'"):
        labels.load_state_dict(wrong)
        labels.setup()


def test_a_conditional_generator_takes_the_class_after_the_noise():
    trainer = Trainer(Project.from_dict(_gan(epochs=1, conditional=True)))
    trainer.setup()
    assert trainer.input_shapes == {"model": (26,), "discriminator": (11, 8, 8)}
    assert trainer.task.fixed_labels.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_collapse_is_warned_about():
    assert collapse_warning([{"d_loss": 0.01}, {"d_loss": 0.02}, {"d_loss": 0.03}]).startswith(
        "the discriminator's loss has stayed near 0")
    assert collapse_warning([{"d_loss": 0.01}, {"d_loss": 0.5}, {"d_loss": 0.03}]) is None
    assert "all alike" in collapse_warning([{"d_loss": 1.0, "sample_diversity": 0.05}])
    # One class among the samples for two epochs running: mode collapse.
    assert "10% of the classes" in collapse_warning([{"judge_coverage": 0.1}, {"judge_coverage": 0.1}])
    assert collapse_warning([{"judge_coverage": 0.1}, {"judge_coverage": 0.6}]) is None


def test_a_char_model_writes_with_the_training_alphabet():
    project = Project.from_dict({
        "format": "guidl-project", "version": 3, "name": "writer",
        "task": {"type": "text_generation", "params": {"prompt": "The data", "length": 60}},
        "model": {"input_dtype": "int64", "layers": [
            {"type": "Embedding", "params": {"num_embeddings": 96, "embedding_dim": 16}},
            {"type": "LSTM", "params": {"hidden_size": 64}},
            {"type": "Linear", "params": {"out_features": 96}}]},
        "data": {"dataset": "text", "params": {"seq_len": 16, "stride": 3, "max_samples": 3000},
                 "val_fraction": 0.1, "batch_size": 64},
        "training": {"loss": {"type": "CrossEntropyLoss", "params": {}},
                     "optimizer": {"type": "Adam", "params": {"lr": 0.01}},
                     "scheduler": None, "epochs": 2, "device": "cpu", "seed": 0}})
    keep = Keep()
    trainer = Trainer(project, callbacks=[keep])
    result = trainer.fit()
    assert result.history[-1].train_loss < result.history[0].train_loss
    alphabet = set(VOCAB[int(i)] for i in torch.unique(trainer.data.train.x))
    texts = [samples["text"] for _, samples in keep.samples]
    assert len(texts) == 2 and all(len(text) == 60 for text in texts)
    assert set(texts[-1]) <= alphabet


def test_a_discriminator_that_normalises_over_the_batch_never_gets_a_batch_of_one():
    doc = _gan(epochs=1)
    doc["discriminator"]["layers"].insert(2, {"type": "BatchNorm1d"})
    doc["data"]["batch_size"] = 202  # 1617 training samples: the last batch would hold one
    trainer = Trainer(Project.from_dict(doc))
    result = trainer.fit()
    assert trainer.batches_per_epoch == 1617 // 202 and len(result.history) == 1
    assert any("the discriminator's layer 2 (BatchNorm1d)" in note for note in trainer.notes)


def test_an_autoencoder_is_not_exported_with_a_labels_training_script(tmp_path):
    from guidl.engine.export import ExportError, TrainedModel, export

    trainer = Trainer(Project.from_dict(_autoencoder(epochs=1)), epochs=1)
    trainer.setup()
    with pytest.raises(ExportError, match="an autoencoder trains otherwise"):
        export(TrainedModel.from_trainer(trainer), "python", tmp_path / "ae.py", training_script=True)


def test_a_stop_in_the_first_epoch_says_there_is_no_checkpoint():
    class StopAfterOneBatch:
        def on_train_batch_end(self, trainer, batch, loss):
            trainer.control.request_stop()

    trainer = Trainer(Project.from_dict(_autoencoder(epochs=1)), callbacks=[StopAfterOneBatch()])
    result = trainer.fit()
    assert result.stopped and result.history == []
    assert any("no epoch had finished, so there is no checkpoint" in note for note in trainer.notes)
    assert not any("end of epoch 0" in note for note in trainer.notes)
