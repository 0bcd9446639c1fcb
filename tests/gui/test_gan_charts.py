"""The charts of a GAN and an autoencoder: the two networks' losses and
D(x), D(G(z)) with their legends, a warning when training collapses, and the
validation PSNR of a reconstruction."""

from __future__ import annotations

import numpy as np
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
    assert legend(charts.metric_plot) == ["D(x): real judged real", "D(G(z)): fake judged real",
                                          "class coverage of 64 samples"]
    assert charts.metric_plot.titleLabel.text == "D(x), D(G(z)), class coverage"
    # The learning-rate line is the generator's; the discriminator's rate is said to be constant.
    assert legend(charts.lr_plot) == ["generator"]
    assert "discriminator: constant" in charts.lr_plot.titleLabel.text
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
    assert legend(charts.lr_plot) == [] and charts.lr_plot.titleLabel.text == "Learning rate"
    charts.set_task("gan", {"samples": 16})
    assert legend(charts.metric_plot)[-1] == "class coverage of 16 samples"
    charts.set_task("text_generation")  # a next-character classifier: its accuracy, named so
    assert charts.metric_plot.titleLabel.text == "Next-character accuracy"


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


def test_legends_stand_beside_the_plots_not_over_their_lines(charts, qtbot):
    charts.resize(394, 700)  # the pane's width beside a GAN's samples in a 1400-pixel window
    charts.set_task("gan")
    qtbot.wait(50)  # the layout is applied
    for plot in (charts.loss_plot, charts.metric_plot, charts.lr_plot):
        legend_box = plot.legend.sceneBoundingRect()
        assert not legend_box.intersects(plot.vb.sceneBoundingRect())
    # Nothing is cut off at the pane's edge: the plots and legends fit its width.
    assert charts.graphics.ci.geometry().width() <= charts.graphics.width()


def gan_project(**params):
    from guidl import spec
    from guidl.examples import example_path

    project = spec.load(example_path("dcgan_mnist"))
    project.task.params.update(params)
    return project


def test_the_charts_take_the_projects_task_and_drop_another_tasks_curves(window):
    from guidl import spec
    from guidl.examples import example_path

    charts = window.charts
    assert charts.task == "classification"  # the fixture's example classifier
    window.document.set_project(gan_project(), None)
    # Before any run: the GAN's layout, no Accuracy chart.
    assert charts.task == "gan" and legend(charts.lr_plot) == ["generator"]
    charts.add_epoch(gan_epoch(1, 0.9))
    window.samples_view.add_samples(1, {"kind": "images", "images": np.zeros((4, 8, 8), np.uint8),
                                        "labels": None})
    # The task changes in the same project: the GAN's curves and grid go.
    window.document.apply(lambda project: setattr(project, "task", None), "No task")
    assert charts.task == "classification" and charts.series["d_real"].size == 0
    assert legend(charts.metric_plot) == ["train", "validation"]
    assert window.samples_view.entries == {} and window.samples_view.isHidden()
    window.document.undo_stack.undo()
    assert charts.task == "gan"
    window.document.set_project(spec.load(example_path("conv_autoencoder")), None)
    assert charts.task == "reconstruction" and legend(charts.metric_plot) == ["validation PSNR"]


def test_a_gan_status_names_the_generator_loss(window):
    window.document.set_project(gan_project(), None)
    window.training._task = "gan"
    progress = {"epoch": 0, "epochs": 2, "batch": 5, "batches": 5, "samples_per_s": 100.0, "eta": 3.0}
    window.training._batches_ended(np.array([0.5]), np.array([2.735]), progress)
    assert "generator loss 2.7350" in window.status_text.text()


def test_an_opened_runs_curves_come_back_from_its_metrics(tmp_path):
    from guidl.engine.run_index import read_metric_rows as read_metrics  # what the window reads

    (tmp_path / "metrics.csv").write_text(
        "epoch,train_loss,train_accuracy,train_mae,val_loss,val_accuracy,val_mae,lr,epoch_time,samples_per_s,"
        "d_loss,g_loss,d_real,d_fake,judge_confidence,judge_coverage,sample_diversity\n"
        "1,2.5,,,,,,0.0002,1.0,100,1.1,2.5,0.7,0.2,0.5,0.3,0.8\n"
        "2,2.1,,,,,,0.0002,1.0,100,0.9,2.1,0.67,0.13,0.6,0.4,0.8\n")
    rows = read_metrics(tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["d_fake"] == 0.13 and rows[0]["val_loss"] is None
    assert read_metrics(tmp_path / "missing") == []
