"""engine.sweep: a failed trial is a failure in TensorBoard's HParams view."""

from pathlib import Path

from guidl import spec
from guidl.engine import hparams, sweep
from guidl.engine.callbacks import Callback
from guidl.spec.sweep import SweepConfig, parse_param

ROOT = Path(__file__).resolve().parents[3]


def test_a_failed_trial_is_a_failure_in_the_hparams_view(tmp_path, monkeypatch):
    project = spec.load(ROOT / "examples/moons_mlp.guidl.json")
    project.data.params["n_samples"] = 200
    project.training.device = "cpu"
    config = SweepConfig([parse_param("training.optimizer.params.lr=0.01,0.02", project)], strategy="grid",
                         metric="val_accuracy", epochs=1)
    storage, _ = sweep.open_storage(None, tmp_path, "h")
    study = sweep.create_or_load_study(storage, "h", project, config)
    written = []
    monkeypatch.setattr(hparams, "write_hparams", lambda logdir, params, metrics, *, status="success":
                        written.append((params["training.optimizer.params.lr"], metrics["val_accuracy"], status)))

    class FailFirst(Callback):  # the first trial fails once its run folder is made
        trials = []

        def on_epoch_end(self, trainer, metrics):
            if not self.trials:
                self.trials.append(1)
                raise RuntimeError("the disk went away")

    assert sweep.run_worker(study, tmp_path, tensorboard=True, callbacks=lambda: [FailFirst()]) == "done"
    assert [row["state"] for row in sweep.trial_rows(study)] == ["failed", "complete"]
    (lr0, value0, status0), (lr1, value1, status1) = written
    assert (lr0, value0, status0) == (0.01, None, "failure")
    assert lr1 == 0.02 and value1 is not None and status1 == "success"
