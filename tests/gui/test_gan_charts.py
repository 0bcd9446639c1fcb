"""The charts of a GAN and an autoencoder: the two networks' losses and
D(x), D(G(z)) with their legends, a warning when training collapses, and the
validation PSNR of a reconstruction."""

from __future__ import annotations

import pytest

from guidl.qt.charts import TrainingCharts


@pytest.fixture
def charts(qtbot):
    widget = TrainingCharts()
    qtbot.addWidget(widget)
    widget.show()
    return widget


def gan_epoch(epoch: int, d_loss: float, diversity: float = 0.8) -> dict:
    """An epoch's metrics as the training process sends them (EpochMetrics.to_dict())."""
    from guidl.engine.trainer import EpochMetrics

    g_loss = 2.0 - d_loss
    return EpochMetrics(epoch, train_loss=g_loss, val_loss=None, lr=2e-4, epoch_time=1.0, samples_per_s=100.0,
                        d_loss=d_loss, g_loss=g_loss, d_real=0.7, d_fake=0.3, judge_confidence=0.6,
                        judge_coverage=0.9, sample_diversity=diversity).to_dict()


def legend(plot) -> list[str]:
    return [label.text for _, label in plot.legend.items]


def test_a_gan_shows_both_losses_and_the_discriminators_beliefs(charts, qtbot):
    charts.set_task("gan")
    assert legend(charts.loss_plot) == ["generator (batch)", "generator (smoothed)", "discriminator (epoch)",
                                        "generator (epoch)"]
    assert legend(charts.metric_plot) == ["D(x): real judged real", "D(G(z)): fake judged real"]
    assert charts.metric_plot.titleLabel.text == "D(x) and D(G(z))"
    assert not charts.curves["val_loss"].isVisible() and not charts.curves["train_metric"].isVisible()
    for epoch, d_loss in ((1, 1.2), (2, 0.9), (3, 0.7)):
        charts.add_epoch(gan_epoch(epoch, d_loss))
    charts.refresh()
    x, y = charts.curves["d_loss"].getData()
    assert list(x) == [1, 2, 3] and list(y) == pytest.approx([1.2, 0.9, 0.7])
    assert list(charts.curves["g_loss"].getData()[1]) == pytest.approx([0.8, 1.1, 1.3])
    assert list(charts.curves["d_fake"].getData()[1]) == pytest.approx([0.3] * 3)
    assert not charts.warning.isVisible()
    # Back to a classifier: its curves and names again.
    charts.set_task("classification")
    assert legend(charts.metric_plot) == ["train", "validation"] and charts.curves["val_loss"].isVisible()


def test_a_collapse_is_said_on_the_chart_after_three_epochs(charts):
    charts.set_task("gan")
    for epoch, d_loss in ((1, 0.5), (2, 0.01), (3, 0.02)):
        charts.add_epoch(gan_epoch(epoch, d_loss))
    assert not charts.warning.isVisible(), "two epochs of a winning discriminator are no collapse yet"
    charts.add_epoch(gan_epoch(4, 0.03))
    assert charts.warning.isVisible() and "collapse" in charts.warning.text()
    charts.add_epoch(gan_epoch(5, 0.6))
    assert not charts.warning.isVisible()
    charts.add_epoch(gan_epoch(6, 0.6, diversity=0.02))  # samples all alike
    assert charts.warning.isVisible() and "collapse" in charts.warning.text()
    charts.clear()
    assert not charts.warning.isVisible() and charts.epochs == []


def test_a_reconstruction_shows_its_validation_psnr(charts):
    from guidl.engine.trainer import EpochMetrics

    charts.set_task("reconstruction")
    for epoch, psnr in ((1, 14.0), (2, 17.5)):
        charts.add_epoch(EpochMetrics(epoch, train_loss=0.05, val_loss=0.04, lr=1e-3, epoch_time=1.0,
                                      samples_per_s=10.0, train_mse=0.05, val_mse=0.04, val_psnr=psnr).to_dict())
    charts.refresh()
    assert charts.metric_plot.titleLabel.text == "Validation PSNR (dB)"
    assert legend(charts.metric_plot) == ["validation PSNR"]
    assert list(charts.curves["val_psnr"].getData()[1]) == [14.0, 17.5]
    assert charts.series["val_loss"].size == 2 and not charts.warning.isVisible()
