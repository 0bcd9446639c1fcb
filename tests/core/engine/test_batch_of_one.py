"""A layer that normalises over the batch cannot train on a batch of one
sample (the shape analysis, in evaluation mode, cannot see it): training
refuses a batch size of 1 and skips a last batch of one sample."""

import pytest

from guidl.engine.trainer import Trainer
from guidl.spec import Layer, ProjectError
from helpers import small_project


def _with_batch_norm():
    project = small_project()
    project.model.layers.insert(2, Layer("BatchNorm1d"))
    return project


def test_an_epoch_skips_a_last_batch_of_one_sample_a_batch_norm_cannot_train_on(digits_data):
    samples = len(digits_data.train)
    trainer = Trainer(_with_batch_norm(), data=digits_data, epochs=1, batch_size=samples - 1)
    trainer.fit()  # a last batch of 1 sample failed in BatchNorm1d ("Expected more than 1 value")
    assert trainer.batches_per_epoch == 1
    assert any(note.startswith("each epoch skips its last batch, which would hold 1 sample: "
                               "layer 2 (BatchNorm1d) normalises over the batch") for note in trainer.notes)


def test_a_batch_size_of_one_with_batch_norm_is_refused_before_training(digits_data):
    with pytest.raises(ProjectError, match=r"data.batch_size: is 1, but layer 2 \(BatchNorm1d\) "
                                           "normalises over the batch and needs at least 2 samples"):
        Trainer(_with_batch_norm(), data=digits_data, epochs=1, batch_size=1).setup()
