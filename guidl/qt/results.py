"""The Results tab: test metrics per class, a confusion-matrix heatmap and a
grid of sample predictions with the wrong ones highlighted; for an
autoencoder its errors (the worst reconstructions first) and its codes, for a
GAN its classifier-based score and its last samples."""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QFrame, QGridLayout, QLabel, QScrollArea, QSplitter, QStackedWidget, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

from .charts import PALETTE_EVENTS, CategoryAxis, follow_palette, visible_text
from .panels import image_pixmap
from .samples_view import FitPicture, gray_or_rgb, tile_images, zoom_for

NO_RESULTS = "Train a model to see its results here."
NO_CONFUSION = "The confusion matrix of a trained classifier appears here."
CLASS_HEADERS = ["Class", "Precision", "Recall", "F1", "Support"]
SAMPLES_TITLE = "Sample predictions (wrong ones outlined in red):"
#: What the GAN's figures are, said wherever they are shown.
JUDGE_NOTE = ("Classifier-based score: a small classifier trained on the same data judges the "
              "generated samples (its mean confidence, and the share of classes it sees among them). "
              "It is not FID.")


class CellLabels(pg.GraphicsObject):
    """The counts of a square matrix's cells, written at the cells' centres in
    screen pixels (so zooming does not scale the text). One item for all the
    cells: a hundred pyqtgraph TextItems took 70 ms to create, a stall at the
    end of every run."""

    BOX = (100, 24)  # each label's box, in pixels around its cell's centre

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[float, float, str, QColor]] = []
        self.size = 0

    def set_cells(self, cells: list[tuple[float, float, str, QColor]], size: int) -> None:
        self.prepareGeometryChange()
        self.cells, self.size = cells, size
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        # The cells, and the labels' boxes beyond the outer cells (sized in
        # pixels, so the margin follows the zoom: see viewTransformChanged).
        px, py = (self.pixelWidth() or 0.0) * self.BOX[0] / 2, (self.pixelHeight() or 0.0) * self.BOX[1] / 2
        return QRectF(-px, -py, self.size + 2 * px, self.size + 2 * py)

    def viewTransformChanged(self) -> None:  # noqa: N802 - pyqtgraph's name
        self.prepareGeometryChange()

    def paint(self, painter, option, widget=None) -> None:
        transform = painter.transform()
        painter.save()
        painter.resetTransform()
        for x, y, text, color in self.cells:
            centre = transform.map(QPointF(x, y))
            painter.setPen(color)
            width, height = self.BOX
            painter.drawText(QRectF(centre.x() - width / 2, centre.y() - height / 2, width, height),
                             Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()


WRONG = QColor("#dc2626")


class SampleTile(QFrame):
    """One sample prediction, outlined in red when wrong. The outline is
    painted here rather than set by a style sheet: widgets under a style
    sheet keep the palette they were polished with, so the tile's text stayed
    black when the theme turned dark while the window was open."""

    def __init__(self, wrong: bool, parent: QWidget | None = None):
        super().__init__(parent)
        self.wrong = wrong

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().paintEvent(event)
        if self.wrong:
            painter = QPainter(self)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(QPen(WRONG, 2))
            painter.drawRoundedRect(QRectF(self.rect()).adjusted(1, 1, -1, -1), 4, 4)


class ResultsPanel(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        #: The run folder whose model the tab shows (None: no run's, an opened bundle's, say).
        self.shown_run = None
        # Which run that is, and whether the project still has its settings (see
        # RunsController): after Make Current, or a run's project opened and then undone,
        # the figures below are of a run the project may no longer match.
        self.run_line = QLabel()
        self.run_line.setWordWrap(True)
        self.run_line.setTextFormat(Qt.TextFormat.RichText)
        self.run_line.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.run_line.hide()
        layout.addWidget(self.run_line)
        self.headline = QLabel(NO_RESULTS)
        self.headline.setWordWrap(True)
        self.headline.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.headline)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(CLASS_HEADERS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        splitter.addWidget(self.table)
        self.confusion = pg.PlotWidget(
            title="Confusion matrix (rows: true, columns: predicted)",
            axisItems={"bottom": CategoryAxis("bottom"), "left": CategoryAxis("left")})
        self.confusion.setBackground(self.palette().color(QPalette.ColorRole.Base))
        self.confusion.setAspectLocked(True)
        self.confusion.invertY(True)
        self.image = pg.ImageItem()
        self.confusion.addItem(self.image)
        self.counts = CellLabels()
        self.confusion.addItem(self.counts)
        follow_palette(self.confusion, self.palette())
        # Nothing to draw (no run yet, no samples, regression): say so instead of
        # empty axes (an empty matrix's ran from -1e-67 to 1e-67).
        self.confusion_placeholder = QLabel()
        self.confusion_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.confusion_placeholder.setWordWrap(True)
        self.confusion_placeholder.setEnabled(False)
        # An autoencoder's two-value codes, coloured by class.
        self.codes = pg.PlotWidget(title="Validation codes, coloured by class")
        self.codes.setBackground(self.palette().color(QPalette.ColorRole.Base))
        self.codes.setLabel("bottom", "code 1")
        self.codes.setLabel("left", "code 2")
        self.codes_legend = self.codes.addLegend(offset=(-10, 10))
        self.code_points = pg.ScatterPlotItem(size=5, pen=None)
        self.codes.addItem(self.code_points)
        follow_palette(self.codes, self.palette())
        # A GAN's last sample grid.
        self.grid_picture = FitPicture()
        self.confusion_view = QStackedWidget()
        self.confusion_view.addWidget(self.confusion)
        self.confusion_view.addWidget(self.confusion_placeholder)
        self.confusion_view.addWidget(self.codes)
        self.confusion_view.addWidget(self.grid_picture)
        self._show_placeholder(NO_CONFUSION)
        splitter.addWidget(self.confusion_view)
        splitter.setSizes([380, 520])
        layout.addWidget(splitter, 3)
        self.samples_title = QLabel(SAMPLES_TITLE)
        layout.addWidget(self.samples_title)
        self.samples = QWidget()
        self.samples_layout = QGridLayout(self.samples)
        self.samples_layout.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.samples_scroll = QScrollArea()
        self.samples_scroll.setWidgetResizable(True)
        self.samples_scroll.setWidget(self.samples)
        layout.addWidget(self.samples_scroll, 2)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in PALETTE_EVENTS:
            follow_palette(self.confusion, self.palette())
            follow_palette(self.codes, self.palette())

    def set_shown_run(self, run) -> None:
        """The run folder whose model the figures are of (None: none); its line is
        written by ``show_run_line``."""
        self.shown_run = run
        if run is None:
            self.show_run_line(None)

    def show_run_line(self, text: str | None, tooltip: str = "") -> None:
        """The line above the figures naming their run (rich text); None hides it."""
        self.run_line.setText(text or "")
        self.run_line.setToolTip(tooltip)
        self.run_line.setVisible(bool(text))

    def clear(self) -> None:
        self.set_shown_run(None)
        self.headline.setText(NO_RESULTS)
        self._set_table(CLASS_HEADERS)
        self.image.clear()
        self._clear_texts()
        self._clear_samples()
        self._clear_codes()
        self.grid_picture.clear()
        self._show_samples_section(SAMPLES_TITLE)
        self._show_placeholder(NO_CONFUSION)

    def _set_table(self, headers: list[str]) -> None:
        self.table.setRowCount(0)
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)

    def _fill_table(self, rows: list[list[str]]) -> None:
        """Rows of text, every column but the first aligned right (numbers)."""
        self.table.setRowCount(len(rows))
        for r, cells in enumerate(rows):
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()

    def _show_samples_section(self, title: str | None) -> None:
        """The grid under the table: with ``title``, or hidden (None)."""
        self.samples_title.setText(title or "")
        self.samples_title.setVisible(title is not None)
        self.samples_scroll.setVisible(title is not None)

    def _clear_codes(self) -> None:
        self.code_points.clear()
        self.codes_legend.clear()

    def _show_placeholder(self, text: str) -> None:
        self.confusion_placeholder.setText(text)
        self.confusion_view.setCurrentWidget(self.confusion_placeholder)

    def _clear_texts(self) -> None:
        self.counts.set_cells([], 0)

    def _clear_samples(self) -> None:
        while self.samples_layout.count():
            item = self.samples_layout.takeAt(0)
            if item.widget():
                item.widget().deleteLater()

    def show_result(self, result, samples: list[dict], measured: str = "Final weights",
                    grid: QImage | None = None) -> None:
        """``measured`` names the weights the figures are of (a stopped run's
        final weights are not its last epoch's); ``grid``: a GAN's last samples."""
        evaluation = result.evaluation
        if evaluation is None:
            self.clear()
            return
        split = measured + " on the " + {"test": "test split", "val": "validation split",
                                         "train": "training split"}[result.evaluation_split]
        stopped = f" · {result.stop_reason}" if result.stopped else ""
        data = evaluation.to_dict()
        kind = data.get("kind") or data["task"]
        self._clear_codes()
        self.grid_picture.clear()
        if kind == "reconstruction":
            self._show_reconstruction(data, samples, split, stopped)
            return
        if kind == "gan":
            self._show_gan(data, grid, measured, stopped, result.history)
            return
        self._show_samples_section(SAMPLES_TITLE)
        if self.table.columnCount() != len(CLASS_HEADERS):
            self._set_table(CLASS_HEADERS)
        if data["task"] == "classification":
            self.headline.setText(
                f"<b>{split}</b>: accuracy <b>{data['accuracy']:.2%}</b> · macro precision "
                f"{data['macro_precision']:.3f} · macro recall {data['macro_recall']:.3f} · macro F1 "
                f"{data['macro_f1']:.3f} · loss {data['loss']:.4f}{stopped}")
            self._show_classes(data)
            self._show_confusion(np.array(data["confusion"]), data["class_names"])
        else:
            self.headline.setText(
                f"<b>{split}</b>: MAE <b>{data['mae']:.4g}</b> · MSE {data['mse']:.4g} · "
                f"R² {data['r2']:.4f} · loss {data['loss']:.4f}{stopped}")
            self.table.setRowCount(0)
            self.image.clear()
            self._clear_texts()
            self._show_placeholder("A regression model has no confusion matrix.")
        self._show_samples(samples)

    def _show_classes(self, data: dict) -> None:
        names = [visible_text(str(n)) for n in
                 (data["class_names"] or [str(i) for i in range(len(data["precision"]))])]
        rows = list(zip(names, data["precision"], data["recall"], data["f1"], data["support"]))
        rows.append(("macro average", data["macro_precision"], data["macro_recall"], data["macro_f1"],
                     sum(data["support"])))
        self.table.setRowCount(len(rows))
        for r, (name, precision, recall, f1, support) in enumerate(rows):
            cells = [name, f"{precision:.3f}", f"{recall:.3f}", f"{f1:.3f}", f"{support:,}"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if r == len(rows) - 1:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()

    def _show_confusion(self, matrix: np.ndarray, names) -> None:
        self._clear_texts()
        n = len(matrix)
        if n == 0 or matrix.sum() == 0:
            self.image.clear()
            self._show_placeholder("No confusion matrix: the evaluation had no samples.")
            return
        self.confusion_view.setCurrentWidget(self.confusion)
        totals = matrix.sum(axis=1, keepdims=True).clip(min=1)
        share = matrix / totals
        colormap = pg.colormap.get("viridis")
        # ImageItem draws x along the first axis: transpose so rows are the true class.
        self.image.setImage(share.T, levels=(0, 1), lut=colormap.getLookupTable(0, 1, 256))
        self.image.setRect(0, 0, n, n)
        if n <= 20:
            light, dark = QColor("white"), QColor("black")
            self.counts.set_cells([(predicted + 0.5, true + 0.5, str(int(matrix[true, predicted])),
                                    light if share[true, predicted] < 0.6 else dark)
                                   for true in range(n) for predicted in range(n)], n)
        labels = names or [str(i) for i in range(n)]
        for side in ("bottom", "left"):
            self.confusion.getAxis(side).set_names(labels, offset=0.5)
        self.confusion.setRange(xRange=(0, n), yRange=(0, n), padding=0.02)

    def _show_samples(self, samples: list[dict]) -> None:
        self._clear_samples()
        columns = 8
        for i, sample in enumerate(samples):
            frame = SampleTile(bool(sample["wrong"]))
            box = QVBoxLayout(frame)
            box.setContentsMargins(3, 3, 3, 3)
            if "image" in sample:
                picture = QLabel()
                picture.setPixmap(image_pixmap(sample["image"], 64))
                picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
                box.addWidget(picture)
            elif "text" in sample:
                context = QLabel(repr(sample["text"][-24:]))
                context.setToolTip(sample["text"])
                box.addWidget(context)
            else:
                box.addWidget(QLabel(", ".join(f"{v:g}" for v in sample["values"])))
            # A predicted space or line break must show (as ␠ or ↵); a name is text, not HTML.
            predicted, true = visible_text(str(sample["predicted"])), visible_text(str(sample["true"]))
            caption = QLabel(f"{html.escape(predicted)} ({sample['probability']:.0%})"
                             + (f"<br><span style='color:{WRONG.name()}'>true: {html.escape(true)}</span>"
                                if sample["wrong"] else ""))
            caption.setTextFormat(Qt.TextFormat.RichText)
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            caption.setToolTip(f"true: {true} · predicted: {predicted}")
            box.addWidget(caption)
            self.samples_layout.addWidget(frame, i // columns, i % columns)


    # -- an autoencoder ------------------------------------------------------------------

    def _show_reconstruction(self, data: dict, samples: list[dict], split: str, stopped: str) -> None:
        loss = f" · loss {data['loss']:.4g}" if data.get("loss") is not None else ""
        self.headline.setText(
            f"<b>{split}</b>: MSE <b>{data['mse']:.4g}</b> · PSNR <b>{data['psnr']:.2f} dB</b> · always "
            f"answering the mean sample: MSE {data['baseline_mse']:.4g}{loss}{stopped}")
        self._set_table(["Rank", "Sample", "Error (MSE)"])
        self._fill_table([[f"{rank}", f"#{w['index']}", f"{w['error']:.4g}"]
                          for rank, w in enumerate(data["worst"], 1)])
        self._show_codes(data)
        noisy = any(sample.get("noisy") is not None for sample in samples)
        self._show_samples_section("Worst reconstructed samples first (input | "
                                   + ("noisy input | " if noisy else "") + "reconstruction, error):")
        self._clear_samples()
        columns = 4 if noisy else 6  # three images a sample: fewer to a row, none scrolled off
        for i, sample in enumerate(samples):
            frame = QFrame()
            frame.setFrameShape(QFrame.Shape.StyledPanel)
            box = QVBoxLayout(frame)
            box.setContentsMargins(3, 3, 3, 3)
            if "image" in sample:
                parts = [sample["image"], sample.get("noisy"), sample["output"]]
                pair = tile_images([[gray_or_rgb(part) for part in parts if part is not None]],
                                   zoom_for(*np.asarray(sample["image"]).shape[:2]),
                                   background=self.palette().color(QPalette.ColorRole.Base))
                picture = QLabel()
                picture.setPixmap(QPixmap.fromImage(pair))
                picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
                box.addWidget(picture)
            else:
                box.addWidget(QLabel("in:  " + " ".join(f"{v:.3g}" for v in sample["values"])
                                     + "\nout: " + " ".join(f"{v:.3g}" for v in sample["output_values"])))
            caption = QLabel(f"#{sample['index']} · MSE {sample['error']:.4g}")
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            box.addWidget(caption)
            self.samples_layout.addWidget(frame, i // columns, i % columns)

    def _show_codes(self, data: dict) -> None:
        codes = data.get("codes")
        if not codes:
            self._show_placeholder("The codes are drawn here when the model's code layer gives "
                                   "two values per sample.")
            return
        points = np.asarray(codes, dtype=float)
        labels = data.get("code_labels")
        names = data.get("class_names")
        if labels:
            labels = np.asarray(labels)
            classes = sorted(set(labels.tolist()))
            count = max(len(classes), 1)
            for n, label in enumerate(classes):
                colour = pg.intColor(n, hues=count, maxValue=230)  # classes have no order: hues apart
                chosen = points[labels == label]
                name = visible_text(str(names[label])) if names and label < len(names) else str(label)
                self.code_points.addPoints(x=chosen[:, 0], y=chosen[:, 1], brush=pg.mkBrush(colour))
                self.codes_legend.addItem(pg.ScatterPlotItem(size=8, pen=None, brush=pg.mkBrush(colour)), name)
        else:
            self.code_points.addPoints(x=points[:, 0], y=points[:, 1], brush=pg.mkBrush(37, 99, 235, 160))
        follow_palette(self.codes, self.palette())
        self.codes.autoRange()
        self.confusion_view.setCurrentWidget(self.codes)

    # -- a GAN ---------------------------------------------------------------------------

    def _show_gan(self, data: dict, grid: QImage | None, measured: str, stopped: str,
                  history=()) -> None:
        def share(value) -> str:
            return "–" if value is None else f"{value:.0%}"

        def number(value) -> str:
            return "–" if value is None else f"{value:.3f}"

        counts = data.get("class_counts")
        names = data.get("class_names")
        if data.get("judge_confidence") is None:
            score = "no classifier-based score: the data has no classes to judge the samples by"
        else:
            seen = sum(1 for c in counts if c) if counts else None
            classes = f" ({seen} of {len(counts)} classes)" if counts else ""
            score = (f"classifier-based score of {data['samples']:,} samples: mean confidence "
                     f"<b>{share(data['judge_confidence'])}</b> · class coverage "
                     f"<b>{share(data['judge_coverage'])}</b>{classes}")
        # D(x) and D(G(z)) are the mean over the last finished epoch, not of the
        # final weights the score is of (a run stopped mid-epoch went on after it).
        epoch = data.get("d_epoch")
        if epoch is None:
            epoch = next((m.epoch for m in reversed(list(history)) if m.d_real is not None), None)
        beliefs = ""
        if data.get("d_real") is not None or data.get("d_fake") is not None:
            beliefs = (f" · D(x) {number(data.get('d_real'))}, D(G(z)) {number(data.get('d_fake'))}"
                       + (f" at the end of epoch {epoch}" if epoch is not None else ""))
        self.headline.setText(
            f"<b>{measured}</b>, {data['samples']:,} generated samples: {score} · diversity "
            f"{number(data.get('sample_diversity'))}{beliefs}{stopped}<br><small>{JUDGE_NOTE}"
            + (f" The judge classifies real validation samples with {data['judge_accuracy']:.0%} accuracy."
               if data.get("judge_accuracy") is not None else "") + "</small>")
        self._set_table(["Class (judged)", "Generated samples", "Share"])
        if counts:
            total = max(sum(counts), 1)
            self._fill_table([[visible_text(str(names[i])) if names and i < len(names) else str(i),
                               f"{count:,}", f"{count / total:.1%}"] for i, count in enumerate(counts)])
        self._show_samples_section(None)
        self._clear_samples()
        if grid is None or grid.isNull():
            self._show_placeholder("The last epoch's samples appear here.")
            return
        self.grid_picture.set_image(grid)
        self.confusion_view.setCurrentWidget(self.grid_picture)
