"""A regression's epochs reach the metric chart as MAE: the trainer's epoch
dict holds train_accuracy as None, which must not hide train_mae."""

from __future__ import annotations

import pytest

from guidl.qt.charts import TrainingCharts


def test_a_regression_epoch_draws_its_mae(qtbot):
    charts = TrainingCharts()
    qtbot.addWidget(charts)
    charts.add_epoch({"epoch": 1, "train_loss": 0.5, "val_loss": 0.4, "lr": 0.01,
                      "train_accuracy": None, "val_accuracy": None, "train_mae": 0.31, "val_mae": 0.27})
    charts.refresh()
    assert charts.series["train_metric"].view()[1].tolist() == pytest.approx([0.31])
    assert charts.series["val_metric"].view()[1].tolist() == pytest.approx([0.27])
