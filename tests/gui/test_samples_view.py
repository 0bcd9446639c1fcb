"""The Samples pane: every epoch's samples kept, a slider over the epochs that
follows the newest until the user moves it, class names under a conditional
GAN's images, reconstructions beside their inputs, text, and a finished run's
saved samples read back from its folder."""

import numpy as np
from PySide6.QtGui import QColor

from guidl.qt.samples_view import SamplesView, render_samples, zoom_for


def gan_samples(value: int, n: int = 16, labels=None) -> dict:
    """What the trainer's ``on_samples`` hands over for a GAN: uint8 (N, H, W)."""
    images = np.full((n, 28, 28), value, dtype=np.uint8)
    images[:, 10:18, 10:18] = 255 - value  # something to see in each tile
    return {"kind": "images", "images": images, "labels": labels}


def pixel(image, x, y) -> int:
    return QColor(image.pixel(x, y)).red()


def test_the_slider_follows_the_newest_epoch_until_moved(qtbot):
    view = SamplesView()
    qtbot.addWidget(view)
    for epoch, value in ((1, 40), (2, 120), (3, 200)):
        view.add_samples(epoch, gan_samples(value))
    assert view.epochs == [1, 2, 3]
    assert (view.slider.minimum(), view.slider.maximum(), view.slider.value()) == (0, 2, 2)
    assert view.shown_epoch == 3 and view.slider.isEnabled()
    first_tile = 4 + 2  # the gap, then inside the first (zoomed) tile
    assert pixel(view.current_image(), first_tile, first_tile) == 200
    assert "3 of 3" in view.epoch_label.text()

    view.slider.setValue(0)  # as the user drags it
    assert view.shown_epoch == 1 and not view.follow
    assert pixel(view.current_image(), first_tile, first_tile) == 40
    assert "1 of 3" in view.epoch_label.text()

    view.add_samples(4, gan_samples(250))  # the user looks at epoch 1: it stays
    assert view.slider.maximum() == 3 and view.shown_epoch == 1 and view.slider.value() == 0
    view.slider.setValue(3)  # back at the end: follows again
    view.add_samples(5, gan_samples(10))
    assert view.shown_epoch == 5 and view.slider.value() == 4


def test_a_conditional_gan_shows_the_class_under_each_image(qtbot):
    labels = [str(i % 10) for i in range(20)]
    plain = render_samples(gan_samples(0, 20))
    named = render_samples(gan_samples(0, 20, labels))
    # Five columns of 56-pixel tiles (28 pixels zoomed twice); names add a line under each row.
    assert zoom_for(28, 28) == 2 and plain.width() == named.width() == 5 * (56 + 8)
    assert named.height() > plain.height()
    view = SamplesView()
    qtbot.addWidget(view)
    view.add_samples(1, gan_samples(0, 20, labels))
    assert "class asked for" in view.title.text()
    # Text drawn under the first tile, in the caption's row, in the text colour.
    image = view.current_image()
    row = [pixel(image, x, 4 + 56 + 8) for x in range(4, 60)] + [
        pixel(image, x, 4 + 56 + 5) for x in range(4, 60)]
    assert len(set(row)) > 1


def test_reconstructions_show_inputs_noisy_inputs_and_outputs_side_by_side(qtbot):
    inputs = np.zeros((8, 28, 28), np.uint8)
    samples = {"kind": "reconstructions", "inputs": inputs, "noisy": inputs + 50, "outputs": inputs + 100}
    view = SamplesView()
    qtbot.addWidget(view)
    view.add_samples(1, samples)
    image = view.current_image()
    assert "noisy input" in view.title.text()
    # One group: input | noisy | output, 56 pixels each, 4 apart.
    assert [pixel(image, 4 + 10 + k * 60, 14) for k in range(3)] == [0, 50, 100]
    tabular = {"kind": "reconstructions", "inputs": np.ones((3, 5), np.float32), "noisy": None,
               "outputs": np.full((3, 5), 0.5, np.float32)}
    view.add_samples(2, tabular)
    assert view.current_image() is None and "reconstructed     0.500" in view.text.toPlainText()


def test_text_samples_and_a_finished_runs_folder(qtbot, tmp_path):
    from guidl.engine.generation import save_grid

    view = SamplesView()
    qtbot.addWidget(view)
    view.add_samples(1, {"kind": "text", "prompt": "The ", "text": "cat sat", "temperature": 0.8})
    assert view.text.toPlainText() == "The cat sat" and "temperature 0.8" in view.title.text()

    folder = tmp_path / "samples"
    folder.mkdir()
    for epoch, value in ((1, 30), (2, 90), (10, 160)):
        save_grid(gan_samples(value)["images"], folder / f"epoch_{epoch:04d}.png")
    (folder / "notes.png").write_bytes(b"not ours")
    assert view.load_run(tmp_path) == 3
    assert view.epochs == [1, 2, 10] and view.shown_epoch == 10 and view.slider.maximum() == 2
    newest = view.current_image()
    view.slider.setValue(0)
    assert view.shown_epoch == 1 and view.current_image().size() == newest.size()
    assert pixel(view.current_image(), 10, 10) == 30 and pixel(newest, 10, 10) == 160
    view.clear()
    assert view.epochs == [] and view.current_image() is None and not view.slider.isEnabled()


def test_a_theme_switched_while_open_redraws_the_grid(qtbot):
    from PySide6.QtGui import QPalette

    view = SamplesView()
    qtbot.addWidget(view)
    view.add_samples(1, gan_samples(200))
    palette = view.palette()
    palette.setColor(QPalette.ColorRole.Base, QColor(30, 30, 30))
    view.setPalette(palette)
    assert pixel(view.current_image(), 1, 1) == 30  # the gap around the tiles: the new base colour


def test_a_gan_grid_says_how_many_samples_its_judge_figures_are_of(qtbot):
    view = SamplesView()
    qtbot.addWidget(view)
    view.add_epoch_metrics({"epoch": 1, "judge_coverage": 0.3, "judge_confidence": 0.55})
    view.add_samples(1, gan_samples(10, n=64))
    assert "of these 64 samples: class coverage 30%, confidence 55%" in view.title.text()
    view.add_samples(2, gan_samples(20, n=64))  # no figures for epoch 2 (yet): none said
    assert "coverage" not in view.title.text()
    view.add_epoch_metrics({"epoch": 2, "judge_coverage": 0.4, "judge_confidence": 0.6})
    assert "class coverage 40%" in view.title.text()
    view.clear()
    assert view.metrics == {}
