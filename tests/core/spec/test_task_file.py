"""The project file's task: version 3 only when used, every field checked
with its JSON path, and older files unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guidl import spec
from guidl.spec import Project, ProjectError

ROOT = Path(__file__).resolve().parents[3]


def _doc(**changes):
    doc = {"format": "guidl-project", "version": 3, "name": "t",
           "model": {"layers": [{"type": "Flatten"}, {"id": "code", "type": "Linear", "params": {"out_features": 4}},
                                {"type": "Linear", "params": {"out_features": 64}}]},
           "data": {"dataset": "digits", "params": {}, "val_fraction": 0.1, "batch_size": 32},
           "training": {"loss": {"type": "MSELoss", "params": {}},
                        "optimizer": {"type": "Adam", "params": {"lr": 0.001}},
                        "scheduler": None, "epochs": 1, "device": "cpu", "seed": 0}}
    doc.update(changes)
    return doc


def _problems(doc) -> list[str]:
    with pytest.raises(ProjectError) as caught:
        Project.from_dict(doc)
    return [str(problem) for problem in caught.value.problems]


def test_a_task_round_trips_and_is_written_as_version_3():
    doc = _doc(task={"type": "reconstruction", "params": {"code_layer": "code", "noise": "gaussian"}})
    project = Project.from_dict(doc)
    assert project.task_type == "reconstruction"
    assert project.task_params() == {"noise": "gaussian", "noise_strength": 0.3, "code_layer": "code",
                                     "pixel_range": "unit"}
    written = json.loads(spec.dumps(project))
    assert written["version"] == 3 and written["task"] == doc["task"]
    assert Project.from_dict(written) == project


def test_projects_without_a_task_keep_their_version_and_text():
    for name in ("mnist_cnn", "resnet_mnist"):
        text = (ROOT / "examples" / f"{name}.guidl.json").read_text()
        project = spec.loads(text)
        assert project.task is None and project.discriminator is None
        assert spec.dumps(project) == text
    assert json.loads((ROOT / "examples" / "resnet_mnist.guidl.json").read_text())["version"] == 2


def test_a_gan_holds_two_networks_and_two_optimizers():
    discriminator = {"layers": [{"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 1}}]}
    project = Project.from_dict(_doc(
        task={"type": "gan", "params": {"noise_dim": 8}}, discriminator=discriminator,
        training={**_doc()["training"], "loss": {"type": "BCEWithLogitsLoss", "params": {}},
                  "discriminator_optimizer": {"type": "SGD", "params": {"lr": 0.01}}}))
    assert list(project.networks()) == ["model", "discriminator"]
    assert project.network("discriminator").layers[1].params == {"out_features": 1}
    assert project.training.discriminator_optimizer.type == "SGD"
    written = json.loads(spec.dumps(project))
    assert written["discriminator"] == discriminator
    assert written["training"]["discriminator_optimizer"] == {"type": "SGD", "params": {"lr": 0.01}}


@pytest.mark.parametrize("changes, expected", [
    ({"task": {"type": "autoencoder"}},
     "task.type: unknown task 'autoencoder'"),
    ({"task": {"type": "gan", "params": {"noise_dim": 0}}},
     "task.params.noise_dim: must be an integer >= 1 and <= 4096, got 0"),
    ({"task": {"type": "reconstruction", "params": {"code_layer": "bottleneck"}}},
     "task.params.code_layer: names no layer of the model: 'bottleneck' (layer ids: 'code')"),
    ({"task": {"type": "reconstruction", "params": {"noise": "salt"}}},
     "task.params.noise: must be one of"),
    ({"task": {"type": "gan"}},
     "discriminator: is missing: a GAN needs a discriminator network"),
    ({"task": {"type": "text_generation"}},
     "data.dataset: is 'digits', but text generation learns from text: use the 'text' dataset"),
    ({"discriminator": {"layers": [{"type": "Linearr"}]}},
     "discriminator.layers[0].type: unknown layer 'Linearr'; did you mean 'Linear'?"),
])
def test_task_problems_name_their_json_path(changes, expected):
    problems = _problems(_doc(**changes))
    assert any(problem.startswith(expected) for problem in problems), problems


def test_a_loss_that_does_not_fit_the_task_is_refused_with_the_ones_that_do():
    problems = _problems(_doc(task={"type": "reconstruction"},
                              training={**_doc()["training"],
                                        "loss": {"type": "CrossEntropyLoss", "params": {}}}))
    assert problems == ["training.loss.type: CrossEntropyLoss does not fit task 'reconstruction': use "
                        "MSELoss or L1Loss or SmoothL1Loss or HuberLoss, ..."]


def test_a_gan_refuses_a_scheduler_and_early_stopping():
    training = {**_doc()["training"], "loss": {"type": "BCEWithLogitsLoss", "params": {}},
                "scheduler": {"type": "StepLR", "params": {"step_size": 1}},
                "early_stopping": {"monitor": "val_loss"}}
    problems = _problems(_doc(task={"type": "gan"}, training=training,
                              discriminator={"layers": [{"type": "Linear", "params": {"out_features": 1}}]}))
    assert [p.split(":")[0] for p in problems] == ["training.scheduler", "training.early_stopping"]


def test_a_version_2_file_is_migrated_and_opens_unchanged():
    doc = _doc()
    doc["version"] = 2
    project = spec.loads(json.dumps(doc))
    assert project.version == spec.CURRENT_VERSION and project.task is None
    assert json.loads(spec.dumps(project))["version"] == 1  # no task, no graph: the oldest format
