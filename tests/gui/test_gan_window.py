"""A GAN trained from the window: its charts, a sample grid per epoch in the
Samples pane, and Results with the classifier-based score and the last grid."""

import json

from guidl import spec

GENERATOR = [{"type": "Linear", "params": {"out_features": 64}}, {"type": "ReLU"},
             {"type": "Linear", "params": {"out_features": 64}},
             {"type": "Unflatten", "params": {"dim": 1, "unflattened_size": [1, 8, 8]}}, {"type": "Tanh"}]
DISCRIMINATOR = [{"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 32}},
                 {"type": "LeakyReLU", "params": {"negative_slope": 0.2}},
                 {"type": "Linear", "params": {"out_features": 1}}]


def tiny_gan(epochs: int = 2) -> spec.Project:
    """A conditional GAN of two small MLPs on the 8x8 digits."""
    return spec.loads(json.dumps({
        "format": "guidl-project", "version": 3, "name": "tiny gan", "model": {"layers": GENERATOR},
        "discriminator": {"layers": DISCRIMINATOR},
        "data": {"dataset": "digits", "params": {}, "batch_size": 64},
        "training": {"loss": {"type": "BCEWithLogitsLoss"},
                     "optimizer": {"type": "Adam", "params": {"lr": 0.0002, "betas": [0.5, 0.999]}},
                     "epochs": epochs, "device": "cpu"},
        "task": {"type": "gan", "params": {"noise_dim": 16, "samples": 20, "conditional": True}}}))


def test_a_gan_trained_in_the_window_shows_a_grid_per_epoch(window, qtbot, tmp_path):
    window.document.set_project(tiny_gan(), None)
    assert not window.samples_view.isHidden()
    assert window.train_action.isEnabled(), window.train_action.toolTip()
    window.train_action.trigger()
    qtbot.waitUntil(lambda: window.last_result is not None, timeout=120_000)
    qtbot.waitUntil(lambda: window.thread is None, timeout=10_000)
    view = window.samples_view
    assert view.epochs == [1, 2] and view.shown_epoch == 2 and view.slider.maximum() == 1
    assert view.entries[2]["images"].shape == (20, 8, 8) and view.entries[2]["labels"][:3] == ["0", "1", "2"]
    assert view.current_image() is not None and "class asked for" in view.title.text()
    charts = window.charts
    assert charts.metric_plot.titleLabel.text == "D(x), D(G(z)), class coverage"
    assert charts.series["d_loss"].size == 2 and charts.series["d_real"].size == 2
    assert charts.series["batch"].size > 0  # the generator's batch losses
    results = window.results
    headline = results.headline.text()
    assert "classifier-based score" in headline and "not FID" in headline
    assert results.confusion_view.currentWidget() is results.grid_picture
    assert not results.grid_picture.image.isNull() and results.table.rowCount() == 10
    assert (window.run_dir / "samples" / "epoch_0002.png").is_file()
    # The project opened again: its latest run comes back with the grids it saved.
    run = window.run_dir
    path = tmp_path / "tiny.guidl.json"
    spec.save(tiny_gan(), path)
    window.open_path(path, ask=False)
    assert view.epochs == []
    qtbot.waitUntil(lambda: window.last_result is not None and not window.evaluation.running, timeout=60_000)
    assert window.run_dir == run and view.epochs == [1, 2] and view.shown_epoch == 2
    assert view.entries[1] == run / "samples" / "epoch_0001.png" and view.current_image() is not None
    assert results.confusion_view.currentWidget() is results.grid_picture
    assert "classifier-based score" in window.status_text.text()
