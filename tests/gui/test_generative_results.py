"""Results of an autoencoder and a GAN, from the reports the engine gives:
errors worst first with input | reconstruction thumbnails, the codes scatter
coloured by class, and the GAN's classifier-based score named for what it is."""

import numpy as np
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QLabel

from guidl.engine.metrics import GanReport, ReconstructionReport
from guidl.engine.trainer import FitResult
from guidl.qt.results import ResultsPanel


def test_an_autoencoders_errors_codes_and_worst_reconstructions(qtbot):
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    rng = np.random.default_rng(0)
    worst = [{"index": i, "error": 0.5 / (r + 1)} for r, i in enumerate((7, 3, 11, 0))]
    report = ReconstructionReport(0.02, 16.99, 0.07, 0.021, worst, rng.normal(size=(30, 2)).tolist(),
                                  [i % 3 for i in range(30)], ["cat", "dog", "bird"])
    # As training_process.worst_reconstructions gives them: pixels of the input and the output.
    samples = [{"index": w["index"], "error": w["error"], "image": np.zeros((28, 28), np.uint8),
                "noisy": np.full((28, 28), 255, np.uint8), "output": np.full((28, 28), 128, np.uint8)}
               for w in worst]
    panel.show_result(FitResult([], evaluation=report, evaluation_split="val"), samples)
    headline = panel.headline.text()
    assert "PSNR <b>16.99 dB</b>" in headline and "mean sample: MSE 0.07" in headline
    assert panel.table.rowCount() == 4 and panel.table.item(0, 1).text() == "#7"
    assert panel.table.item(0, 2).text() == "0.5"
    assert panel.confusion_view.currentWidget() is panel.codes
    assert len(panel.code_points.data) == 30
    assert [label.text for _, label in panel.codes_legend.items] == ["cat", "dog", "bird"]
    assert panel.samples_layout.count() == 4 and "Worst reconstructed" in panel.samples_title.text()
    # A denoising autoencoder's worst: input | noisy input | reconstruction, three tiles wide.
    assert "noisy input" in panel.samples_title.text()
    pixmaps = [label.pixmap() for label in panel.samples_layout.itemAt(0).widget().findChildren(QLabel)
               if not label.pixmap().isNull()]
    image = pixmaps[0].toImage()
    row = image.height() // 2
    values = {QColor(image.pixel(x, row)).red() for x in range(image.width())}
    assert {0, 128, 255} <= values
    # Without a two-value code: no scatter, and why.
    report.codes = report.code_labels = None
    panel.show_result(FitResult([], evaluation=report, evaluation_split="val"), samples)
    assert panel.confusion_view.currentWidget() is panel.confusion_placeholder
    assert "two values" in panel.confusion_placeholder.text() and len(panel.code_points.data) == 0


def test_a_gan_is_scored_by_its_judge_and_shows_its_last_grid(qtbot):
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    report = GanReport(1000, 0.83, 0.9, 0.95, 0.7, 0.6, 0.4, [100] * 9 + [0], [str(i) for i in range(10)])
    grid = QImage(100, 100, QImage.Format.Format_RGB32)
    panel.show_result(FitResult([], evaluation=report, evaluation_split="val"), [], grid=grid)
    headline = panel.headline.text()
    assert "classifier-based score" in headline and "not FID" in headline
    assert "mean confidence <b>83%</b>" in headline and "(9 of 10 classes)" in headline
    assert "score of 1,000 samples" in headline
    # D(x), D(G(z)) are the last finished epoch's: said so beside a score of the final weights.
    assert "D(x) 0.600, D(G(z)) 0.400 at the end of epoch" not in headline  # no epoch known here
    report.d_epoch = 2
    panel.show_result(FitResult([], evaluation=report, evaluation_split="val"), [], grid=grid)
    assert "D(x) 0.600, D(G(z)) 0.400 at the end of epoch 2" in panel.headline.text()
    assert panel.table.rowCount() == 10 and panel.table.item(9, 1).text() == "0"
    assert panel.confusion_view.currentWidget() is panel.grid_picture and panel.samples_scroll.isHidden()
    # Back to a classifier's results: its own table and grid again.
    panel.clear()
    assert panel.table.columnCount() == 5 and not panel.samples_scroll.isHidden()


def test_a_denoising_autoencoders_worst_samples_carry_their_noisy_input():
    from guidl import spec
    from guidl.engine.trainer import Trainer
    from guidl.engine.training_process import worst_reconstructions
    from guidl.examples import example_path

    project = spec.load(example_path("denoising_autoencoder"))
    project.training.device = "cpu"
    trainer = Trainer(project)
    trainer.setup()  # untrained weights: the errors are large, the shapes what a run gives
    report = trainer.evaluate("val")
    samples = worst_reconstructions(trainer, FitResult([], evaluation=report, evaluation_split="val"), count=3)
    assert len(samples) == 3
    for sample in samples:
        image, noisy = np.asarray(sample["image"]), np.asarray(sample["noisy"])
        assert noisy.dtype == np.uint8 and noisy.shape == image.shape
        assert not np.array_equal(noisy, image)  # gaussian noise of strength 0.5 changed it
    project.task.params["noise"] = "none"  # a plain autoencoder: no noisy input to show
    plain = Trainer(project)
    plain.setup()
    result = FitResult([], evaluation=plain.evaluate("val"), evaluation_split="val")
    assert all(sample["noisy"] is None for sample in worst_reconstructions(plain, result, count=2))
