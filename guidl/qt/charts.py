"""Live training charts (pyqtgraph).

One curve per series, created once and fed with ``setData`` from growing
NumPy buffers by a timer, so a fast model never redraws more than the timer
allows; long runs stay smooth with peak downsampling and clip-to-view.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Slot
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

REFRESH_HZ = 25


class Series:
    """A growing pair of float arrays (amortised doubling)."""

    def __init__(self, capacity: int = 1024):
        self.x = np.empty(capacity)
        self.y = np.empty(capacity)
        self.size = 0

    def append(self, x: float, y: float) -> None:
        if self.size == len(self.x):
            self.x = np.resize(self.x, 2 * self.size)
            self.y = np.resize(self.y, 2 * self.size)
        self.x[self.size] = x
        self.y[self.size] = y
        self.size += 1

    def extend(self, xs: np.ndarray, ys: np.ndarray) -> None:
        needed = self.size + len(xs)
        if needed > len(self.x):
            capacity = max(needed, 2 * len(self.x))
            self.x = np.resize(self.x, capacity)
            self.y = np.resize(self.y, capacity)
        self.x[self.size:needed] = xs
        self.y[self.size:needed] = ys
        self.size = needed

    def clear(self) -> None:
        self.size = 0

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[:self.size], self.y[:self.size]

    def nearest(self, x: float) -> tuple[float, float] | None:
        if not self.size:
            return None
        xs = self.x[:self.size]
        i = int(np.clip(np.searchsorted(xs, x), 1, self.size - 1)) if self.size > 1 else 0
        if self.size > 1 and abs(xs[i - 1] - x) < abs(xs[i] - x):
            i -= 1
        return float(xs[i]), float(self.y[i])


class TrainingCharts(QWidget):
    """Loss (per batch, smoothed, and per epoch), accuracy and learning rate."""

    SMOOTHING = 0.9  # weight of the past in the smoothed batch loss

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.hover = QLabel(" ")
        self.hover.setObjectName("chartHover")
        layout.addWidget(self.hover)
        background = self.palette().color(QPalette.ColorRole.Base)
        foreground = self.palette().color(QPalette.ColorRole.Text)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(background)
        layout.addWidget(self.graphics)
        pen = pg.mkPen(foreground)
        self.loss_plot = self._plot("Loss", "epoch", pen)
        self.metric_plot = self._plot("Accuracy", "epoch", pen, row=1)
        self.lr_plot = self._plot("Learning rate", "epoch", pen, row=2)
        # Learning rates change by factors: a log axis shows a schedule's shape and
        # keeps a constant rate readable.
        self.lr_plot.setLogMode(x=False, y=True)
        self.metric_plot.setXLink(self.loss_plot)
        self.lr_plot.setXLink(self.loss_plot)
        legend = self.loss_plot.addLegend(offset=(-10, 10))
        legend.setLabelTextColor(foreground)
        self.metric_plot.addLegend(offset=(-10, 10)).setLabelTextColor(foreground)
        self.series = {name: Series() for name in (
            "batch", "smooth", "train_loss", "val_loss", "train_metric", "val_metric", "lr")}
        self.curves = {
            "batch": self.loss_plot.plot(pen=pg.mkPen((96, 165, 250, 90), width=1), name="batch"),
            "smooth": self.loss_plot.plot(pen=pg.mkPen((37, 99, 235), width=2), name="batch (smoothed)"),
            "train_loss": self.loss_plot.plot(pen=pg.mkPen((234, 88, 12), width=2), symbol="o", symbolSize=6,
                                              symbolBrush=(234, 88, 12), name="train (epoch)"),
            "val_loss": self.loss_plot.plot(pen=pg.mkPen((22, 163, 74), width=2), symbol="s", symbolSize=6,
                                            symbolBrush=(22, 163, 74), name="validation"),
            "train_metric": self.metric_plot.plot(pen=pg.mkPen((234, 88, 12), width=2), symbol="o",
                                                  symbolSize=6, symbolBrush=(234, 88, 12), name="train"),
            "val_metric": self.metric_plot.plot(pen=pg.mkPen((22, 163, 74), width=2), symbol="s",
                                                symbolSize=6, symbolBrush=(22, 163, 74), name="validation"),
            "lr": self.lr_plot.plot(pen=pg.mkPen((147, 51, 234), width=2), symbol="t", symbolSize=6,
                                    symbolBrush=(147, 51, 234)),
        }
        for curve in self.curves.values():
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
        self._smoothed: float | None = None
        # Only curves with new points are handed to pyqtgraph: a batch touches the
        # loss plot alone, so the other plots are not repainted 25 times a second.
        self._dirty: set[str] = set()
        self.redraws = 0
        self.timer = QTimer(self)
        self.timer.setInterval(int(1000 / REFRESH_HZ))
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        self._proxy = pg.SignalProxy(self.graphics.scene().sigMouseMoved, rateLimit=30,
                                     slot=self._mouse_moved)

    def _plot(self, title: str, x_label: str, pen, row: int = 0):
        plot = self.graphics.addPlot(row=row, col=0, title=title)
        plot.showGrid(x=True, y=True, alpha=0.15)
        plot.setLabel("bottom", x_label)
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setPen(pen)
            plot.getAxis(axis).setTextPen(pen)
        plot.getAxis("bottom").enableAutoSIPrefix(False)  # epochs are epochs, not "x0.001"
        return plot

    def set_task(self, task: str) -> None:
        self.metric_plot.setTitle("Accuracy" if task == "classification" else "Mean absolute error")

    def clear(self) -> None:
        for series in self.series.values():
            series.clear()
        self._smoothed = None
        self._dirty = set(self.series)
        self.refresh()

    def add_batches(self, xs: np.ndarray, losses: np.ndarray) -> None:
        """Batch losses at fractional epochs ``xs``."""
        smoothed = np.empty(len(losses))
        value = self._smoothed
        for i, loss in enumerate(losses):
            value = loss if value is None else self.SMOOTHING * value + (1 - self.SMOOTHING) * loss
            smoothed[i] = value
        self._smoothed = value
        self.series["batch"].extend(xs, losses)
        self.series["smooth"].extend(xs, smoothed)
        self._dirty |= {"batch", "smooth"}

    @Slot(object)
    def add_epoch(self, metrics: dict) -> None:
        epoch = metrics["epoch"]
        for name, key in (("train_loss", "train_loss"), ("val_loss", "val_loss")):
            if metrics.get(key) is not None:
                self.series[name].append(epoch, metrics[key])
        self.series["lr"].append(epoch, max(metrics["lr"], 1e-12))  # a log axis has no zero
        train = metrics.get("train_accuracy", metrics.get("train_mae"))
        val = metrics.get("val_accuracy", metrics.get("val_mae"))
        if train is not None:
            self.series["train_metric"].append(epoch, train)
        if val is not None:
            self.series["val_metric"].append(epoch, val)
        self._dirty |= {"train_loss", "val_loss", "lr", "train_metric", "val_metric"}

    def refresh(self) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        for name in dirty:
            x, y = self.series[name].view()
            self.curves[name].setData(x, y)
        self.redraws += 1

    def _mouse_moved(self, event) -> None:
        position = event[0]
        for plot, names in ((self.loss_plot, ("smooth", "train_loss", "val_loss")),
                            (self.metric_plot, ("train_metric", "val_metric")),
                            (self.lr_plot, ("lr",))):
            if plot.sceneBoundingRect().contains(position):
                x = plot.vb.mapSceneToView(position).x()
                parts = []
                for name in names:
                    found = self.series[name].nearest(x)
                    if found:
                        parts.append(f"{self.curves[name].name() or name}: {found[1]:.4g} "
                                     f"(epoch {found[0]:.2f})")
                self.hover.setText("   ".join(parts) if parts else " ")
                return
