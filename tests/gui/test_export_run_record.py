"""A model the window exports carries its run's record (trained, metrics,
seed...), also when it was reopened from the run folder rather than trained
in this session."""

from guidl.qt.controllers.export import with_run_record
from helpers import small_project


def test_a_reopened_runs_model_exports_as_trained_with_its_record(window, qtbot):
    from guidl.engine.export import TrainedModel

    window.document.set_project(small_project(training__epochs=1), None)
    window.train_action.trigger()
    qtbot.waitUntil(lambda: window.thread is None and window.last_result is not None, timeout=120_000)
    trainer = window.session.trainer
    trainer.history = []  # as a model reopened from its run folder: weights, no history here
    model = TrainedModel.from_trainer(trainer)
    assert not model.trained and model.meta["run"]["seed"] is None
    model = with_run_record(model, window.session.run_dir)
    assert model.trained and model.meta["run"]["seed"] == 3 and model.meta["run"]["status"] == "finished"
    assert model.metrics is not None
    # Other weights than the run's final ones: the record is not theirs.
    other = TrainedModel.from_trainer(trainer)
    next(iter(other.module.parameters())).data.add_(1.0)
    assert not with_run_record(other, window.session.run_dir).trained
