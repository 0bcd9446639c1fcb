"""`guidl sweep` refuses, before the first trial, what every trial would fail on."""

import pytest

from guidl import cli, spec
from guidl.engine.sweep import SweepError, create_or_load_study, open_storage, shared_problems, study_project
from guidl.spec.sweep import SweepConfig, parse_param
from helpers import small_moons

LR = "training.optimizer.params.lr"


@pytest.fixture
def moons():
    return small_moons()


def _sweep(project, tmp_path, capsys, *more):
    path = tmp_path / "p.guidl.json"
    spec.save(project, path)
    runs = tmp_path / "runs"
    code = cli.main(["sweep", str(path), "--param", f"{LR}=0.1,0.01", "--epochs", "1", "--study", "s",
                     "--runs-dir", str(runs), *more])
    return code, capsys.readouterr().err, runs


def test_a_dataset_that_cannot_be_prepared_is_refused_before_any_trial(moons, tmp_path, capsys):
    moons.data = spec.Project.from_dict({**moons.to_dict(), "data": {
        "dataset": "csv", "params": {"path": str(tmp_path / "missing.csv")}}}).data
    code, err, runs = _sweep(moons, tmp_path, capsys)
    assert code == 2, err
    assert "guidl sweep: every trial would fail: " in err and "missing.csv" in err
    assert "no trial finished" not in err
    assert not runs.exists()  # no study made, no run folder


def test_a_loss_that_does_not_fit_the_data_is_refused_unless_the_sweep_varies_it(moons, tmp_path, capsys):
    moons.training.loss.type = "MSELoss"
    code, err, runs = _sweep(moons, tmp_path, capsys)
    assert code == 2 and "every trial would fail: training.loss: MSELoss" in err, err
    assert not runs.exists()
    varied = SweepConfig([parse_param("training.loss.type=MSELoss,CrossEntropyLoss", moons)], strategy="grid",
                         metric="val_accuracy")
    assert shared_problems(moons, varied) == []  # a swept value may cure it: the trials say
    fine = SweepConfig([parse_param(f"{LR}=0.1,0.01", moons)], strategy="grid", metric="val_accuracy")
    moons.training.loss.type = "CrossEntropyLoss"
    assert shared_problems(moons, fine) == []


def test_a_studys_stored_project_is_validated_before_it_is_trained(moons, tmp_path):
    storage, _ = open_storage(None, tmp_path, "s")
    config = SweepConfig([parse_param(f"{LR}=0.1,0.01", moons)], strategy="grid", metric="val_accuracy")
    study = create_or_load_study(storage, "s", moons, config)
    assert study_project(study).to_dict() == moons.to_dict()
    doc = moons.to_dict()
    doc["model"]["layers"][0]["type"] = "NoSuchLayer"  # anyone who can write the storage may change it
    study.set_user_attr("guidl_project", doc)
    with pytest.raises(SweepError, match="its project is not valid here: model.layers"):
        study_project(study)


def test_a_failure_that_is_no_settings_fault_is_left_to_the_trials(moons, monkeypatch):
    from guidl.engine import trainer

    def fails(self):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(trainer.Trainer, "setup", fails)
    config = SweepConfig([parse_param(f"{LR}=0.1,0.01", moons)], strategy="grid", metric="val_accuracy")
    assert shared_problems(moons, config) == []


def test_epochs_and_a_swept_training_epochs_are_refused_together(moons, tmp_path, capsys):
    path = tmp_path / "p.guidl.json"
    spec.save(moons, path)
    runs = tmp_path / "runs"
    code = cli.main(["sweep", str(path), "--param", "training.epochs=1..3", "--trials", "2", "--epochs", "1",
                     "--study", "s", "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "guidl sweep: --epochs: cannot be set while the sweep varies training.epochs" in err
    assert not runs.exists()  # no trial trained
