"""The charts mark the epoch where the fine-tune schedule unfroze layers."""

from __future__ import annotations

import pyqtgraph as pg

from guidl.engine.trainer import EpochMetrics
from guidl.qt.charts import TrainingCharts


def _epoch(epoch: int, unfrozen: int | None = None) -> dict:
    return EpochMetrics(epoch=epoch, train_loss=1.0 / epoch, val_loss=1.2 / epoch, lr=0.01, epoch_time=1.0,
                        samples_per_s=100.0, train_accuracy=0.5, val_accuracy=0.5,
                        unfrozen=unfrozen).to_dict()


def _markers(plot) -> list[pg.InfiniteLine]:
    return [item for item in plot.items if isinstance(item, pg.InfiniteLine) and item.isVisible()]


def test_the_unfreeze_epoch_is_marked_on_every_chart_and_cleared_with_them(qtbot):
    charts = TrainingCharts()
    qtbot.addWidget(charts)
    charts.plan(5)
    charts.add_epoch(_epoch(1))
    charts.add_epoch(_epoch(2))
    assert not any(_markers(plot) for plot in (charts.loss_plot, charts.metric_plot, charts.lr_plot))
    charts.add_epoch(_epoch(3, unfrozen=8_400_000))
    charts.add_epoch(_epoch(4))
    for plot in (charts.loss_plot, charts.metric_plot, charts.lr_plot):
        (line,) = _markers(plot)
        # Epoch 3's batches lie between x = 2 and 3: the layers unfroze at its start.
        assert line.value() == 2 and line.angle == 90
        assert "epoch 3" in line.toolTip() and "8,400,000" in line.toolTip()
    assert charts.unfreeze_markers[0].label.toPlainText() == "unfrozen"
    assert charts.unfreeze_markers[1].label.toPlainText() == "unfrozen"
    charts.clear()
    assert not any(_markers(plot) for plot in (charts.loss_plot, charts.metric_plot, charts.lr_plot))
