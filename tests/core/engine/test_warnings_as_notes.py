"""Warnings raised while guidl builds and trains (torch's, NumPy's) reach the
user as one short note each, without the source paths Python and torch add."""

import warnings

import torch

from guidl.engine import analyze
from guidl.engine.callbacks import Callback
from guidl.engine.trainer import Trainer, warnings_as_notes
from guidl.formatting import warning_text
from guidl.spec import Layer, Model
from helpers import small_project

EVEN_SAME = Model([Layer("Conv2d", {"out_channels": 2, "kernel_size": 2, "padding": "same"})], [1, 8, 8])
EVEN_SAME_TEXT = ("Using padding='same' with even kernel lengths and odd dilation may require a "
                  "zero-padded copy of the input be created")


def test_a_layer_warning_is_one_line_without_torch_source_paths_every_time():
    # torch raises this one from C++ once per process (with "Triggered
    # internally at .../Convolution.cpp"); each analysis must still show it.
    for _ in range(3):
        assert analyze(EVEN_SAME).layers[0].warnings == [EVEN_SAME_TEXT]


def test_warning_text_drops_paths_and_names_the_package():
    text = warning_text("overflow encountered in cast\n  x[r, j] = value", RuntimeWarning,
                        "/usr/lib/python3/site-packages/numpy/core/_methods.py")
    assert text == "warning from numpy: overflow encountered in cast"
    assert warning_text("Bad thing (Triggered internally at /__w/pytorch/aten/src/X.cpp:12.)",
                        UserWarning, "/x/site-packages/torch/nn/modules/conv.py") == \
        "warning from torch: Bad thing"


class _Warns(Callback):
    """Calls a torch function known to warn (a loss whose target size differs
    from its input's), as a layer or loss of a model can while it trains."""

    def on_epoch_end(self, trainer, metrics):
        torch.nn.functional.mse_loss(torch.zeros(3, 1), torch.zeros(3))
        warnings.warn("a second warning", UserWarning)
        warnings.warn("a second warning", UserWarning)


def test_warnings_during_training_become_notes_not_output(digits_data, capfd):
    trainer = Trainer(small_project(), data=digits_data, epochs=2, callbacks=[_Warns()])
    trainer.fit()
    target = [n for n in trainer.notes if "Using a target size" in n]
    assert len(target) == 1 and target[0].startswith("Using a target size (torch.Size([3]))")
    assert trainer.notes.count("a second warning") == 1
    out, err = capfd.readouterr()
    assert "Warning" not in err and ".py:" not in err and "Using a target size" not in err


def test_the_layer_warnings_are_training_notes(digits_data):
    project = small_project()
    project.model = Model([Layer("Conv2d", {"out_channels": 2, "kernel_size": 2, "padding": "same"}),
                           Layer("Flatten"), Layer("Linear", {"out_features": 10})])
    trainer = Trainer(project, data=digits_data, epochs=1)
    trainer.setup()
    assert f"layer 0 (Conv2d): {EVEN_SAME_TEXT}" in trainer.notes


def test_the_context_restores_the_previous_handler():
    before = warnings.showwarning
    notes = []
    with warnings_as_notes(notes):
        warnings.warn("inside", UserWarning)
    assert warnings.showwarning is before and notes == ["inside"]
