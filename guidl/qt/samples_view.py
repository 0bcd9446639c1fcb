"""What a generating model made after each epoch: a GAN's sample grid, an
autoencoder's inputs beside their reconstructions, a text model's writing,
with a slider over the epochs to watch them improve.

Live, the samples arrive as the training process's ``("samples", epoch,
samples)`` events (the dicts ``on_samples`` hands over); for a finished run
opened later, they are read from its folder (``samples/epoch_NNNN.png`` or
``.txt``). Every epoch's samples are kept, as received, and drawn when shown.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPalette
from PySide6.QtWidgets import (
    QHBoxLayout, QLabel, QPlainTextEdit, QSizePolicy, QSlider, QStackedWidget, QVBoxLayout, QWidget,
)

from .charts import PALETTE_EVENTS, visible_text

NO_SAMPLES = "Samples appear here after each epoch of training."
SAMPLE_FILE = re.compile(r"epoch_(\d+)\.(png|txt)")
TILE_PIXELS = 56  # small images are scaled up by a whole factor to about this size
GAP = 4  # pixels between tiles


def gray_or_rgb(array: np.ndarray) -> QImage:
    """A uint8 (H, W) or (H, W, 3) array as a QImage (a copy: the array may go)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    fmt = QImage.Format.Format_Grayscale8 if array.ndim == 2 else QImage.Format.Format_RGB888
    return QImage(array.data, array.shape[1], array.shape[0], array.strides[0], fmt).copy()


def zoom_for(height: int, width: int) -> int:
    """A whole scale factor that brings a tile near ``TILE_PIXELS`` (pixels stay square)."""
    return max(1, TILE_PIXELS // max(height, width, 1))


def tile_images(rows: list[list[QImage]], zoom: int, captions: list[str] | None = None,
                group_columns: int = 1, background: QColor | None = None,
                text: QColor | None = None) -> QImage:
    """Groups of images side by side (each inner list one group: a sample, or
    an input beside its reconstruction), ``group_columns`` groups to a row,
    each group with an optional caption under it."""
    if not rows:
        return QImage()
    height = max(image.height() for group in rows for image in group) * zoom
    widths = [sum(image.width() * zoom for image in group) + GAP * (len(group) - 1) for group in rows]
    # Groups of several images (an input beside its reconstruction) stand further apart
    # than the images within them, so that each group reads as one.
    cell = max(widths) + (2 if max(len(group) for group in rows) == 1 else 4) * GAP
    font = QFont()
    metrics = QFontMetrics(font)
    caption_height = metrics.height() + 2 if captions else 0
    line = height + caption_height + GAP
    columns = max(1, min(group_columns, len(rows)))
    lines = math.ceil(len(rows) / columns)
    canvas = QImage(columns * cell, lines * line + GAP, QImage.Format.Format_RGB32)
    canvas.fill(background or QColor("black"))
    painter = QPainter(canvas)
    painter.setFont(font)
    painter.setPen(text or QColor("white"))
    for n, group in enumerate(rows):
        x0, y0 = (n % columns) * cell + GAP, (n // columns) * line + GAP
        x = x0
        for image in group:
            painter.drawImage(QRect(x, y0, image.width() * zoom, image.height() * zoom), image)
            x += image.width() * zoom + GAP
        if captions:
            caption = metrics.elidedText(captions[n], Qt.TextElideMode.ElideRight, cell - GAP)
            painter.drawText(QRect(x0 - GAP // 2, y0 + height, cell - GAP, caption_height),
                             Qt.AlignmentFlag.AlignCenter, caption)
    painter.end()
    return canvas


def render_samples(samples: dict, background: QColor | None = None, text: QColor | None = None) -> QImage:
    """One epoch's ``samples`` of kind ``images`` or ``reconstructions`` (image
    data) as one picture: a grid of generated images, class names under them
    for a conditional GAN; inputs, noisy inputs and reconstructions side by
    side."""
    if samples["kind"] == "images":
        images = np.asarray(samples["images"])
        labels = samples.get("labels")
        groups = [[gray_or_rgb(image)] for image in images]
        captions = [visible_text(str(label)) for label in labels] if labels else None
        columns = max(1, math.ceil(math.sqrt(len(groups))))
        return tile_images(groups, zoom_for(*images.shape[1:3]), captions, columns, background, text)
    parts = [np.asarray(samples[key]) for key in ("inputs", "noisy", "outputs") if samples.get(key) is not None]
    groups = [[gray_or_rgb(part[i]) for part in parts] for i in range(len(parts[0]))]
    columns = 4 if len(groups) > 4 else len(groups)
    return tile_images(groups, zoom_for(*parts[0].shape[1:3]), None, columns, background, text)


def reconstruction_text(samples: dict, limit: int = 8) -> str:
    """Reconstructions of data that are not images, as numbers: each sample's
    first values, given and given back."""
    inputs, outputs = np.asarray(samples["inputs"]), np.asarray(samples["outputs"])
    noisy = samples.get("noisy")
    lines = []
    for i in range(len(inputs)):
        def values(row):
            row = np.asarray(row).reshape(-1)
            more = " …" if len(row) > limit else ""
            return " ".join(f"{v:8.3f}" for v in row[:limit]) + more
        lines.append(f"sample {i + 1}")
        lines.append(f"  input          {values(inputs[i])}")
        if noisy is not None:
            lines.append(f"  noisy input    {values(np.asarray(noisy)[i])}")
        lines.append(f"  reconstructed  {values(outputs[i])}")
    return "\n".join(lines)


def is_image_samples(samples: dict) -> bool:
    if samples["kind"] == "images":
        return True
    return samples["kind"] == "reconstructions" and np.asarray(samples["inputs"]).dtype == np.uint8


class FitPicture(QWidget):
    """An image drawn as large as the widget allows (aspect kept, at most
    ``MAX_ZOOM`` times its size), so a grid is seen whole in a narrow pane and
    large in a wide one."""

    MAX_ZOOM = 3.0

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.image = QImage()
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setMinimumSize(120, 120)

    def set_image(self, image: QImage) -> None:
        self.image = image
        self.update()

    def clear(self) -> None:
        self.set_image(QImage())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return self.image.size() if not self.image.isNull() else QSize(320, 320)

    def target(self) -> QRect:
        """Where the image is drawn: scaled to fit, centred at the top."""
        if self.image.isNull():
            return QRect()
        scale = min(self.width() / self.image.width(), self.height() / self.image.height(), self.MAX_ZOOM)
        width, height = int(self.image.width() * scale), int(self.image.height() * scale)
        return QRect((self.width() - width) // 2, 0, width, height)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.image.isNull():
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(self.target(), self.image)


class SamplesView(QWidget):
    """The samples of the epoch the slider is on. The slider follows the
    newest epoch until the user moves it away, and again once moved back to
    the end."""

    epoch_shown = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel(NO_SAMPLES)
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        row = QHBoxLayout()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setPageStep(1)
        self.slider.setEnabled(False)
        self.slider.setToolTip("The epoch whose samples are shown")
        self.slider.valueChanged.connect(self._slider_moved)
        self.epoch_label = QLabel()
        row.addWidget(QLabel("Epoch"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.epoch_label)
        layout.addLayout(row)
        self.picture = FitPicture()
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.text.setFont(QFont("monospace"))
        self.pages = QStackedWidget()
        self.pages.addWidget(self.picture)
        self.pages.addWidget(self.text)
        layout.addWidget(self.pages, 1)
        #: epoch -> the samples as received (a dict), or the file they were saved in (a Path)
        self.entries: dict[int, dict | Path] = {}
        self.epochs: list[int] = []  # the slider's positions
        self.follow = True  # the slider stays on the newest epoch
        self._moving = False  # the slider is moved by this view, not the user
        self.shown_epoch: int | None = None
        #: epoch -> that epoch's metrics (a GAN's judge figures are of its samples)
        self.metrics: dict[int, dict] = {}
        #: How many images a GAN's saved grids hold (its task's ``samples``): a PNG does not say.
        self.sample_count: int | None = None

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        # Grids are drawn on the palette's base colour: a theme switched while open redraws them.
        if event.type() in PALETTE_EVENTS and self.shown_epoch is not None:
            self.show_epoch(self.shown_epoch)

    def clear(self) -> None:
        self.entries.clear()
        self.metrics.clear()
        self.epochs = []
        self.follow = True
        self.shown_epoch = None
        self._set_slider(0, 0)
        self.slider.setEnabled(False)
        self.epoch_label.clear()
        self.title.setText(NO_SAMPLES)
        self.picture.clear()
        self.text.clear()

    @Slot(int, object)
    def add_samples(self, epoch: int, samples: dict) -> None:
        """The samples made after ``epoch`` (1-based), as the trainer sent them."""
        self._add(epoch, samples)

    @Slot(object)
    def add_epoch_metrics(self, metrics: dict) -> None:
        """An epoch's figures (``EpochMetrics.to_dict()``): a GAN's judge's
        coverage and confidence are said under that epoch's samples."""
        epoch = int(metrics["epoch"])
        self.metrics[epoch] = metrics
        if self.shown_epoch == epoch:
            self.show_epoch(epoch)

    def judged(self, epoch: int, count: int | None) -> str:
        """What the judge made of ``epoch``'s ``count`` samples, or ""."""
        metrics = self.metrics.get(epoch, {})
        coverage, confidence = metrics.get("judge_coverage"), metrics.get("judge_confidence")
        if coverage is None or confidence is None:
            return ""
        of = f"these {count:,}" if count else "this epoch's"
        return (f" Classifier-based score of {of} samples: class coverage {coverage:.0%}, "
                f"confidence {confidence:.0%} (Results scores more samples).")

    def load_run(self, run_dir: Path, metrics: list[dict] | None = None) -> int:
        """Every epoch's samples saved in a run folder; returns how many."""
        folder = Path(run_dir) / "samples"
        found = {}
        if folder.is_dir():
            for path in folder.iterdir():
                match = SAMPLE_FILE.fullmatch(path.name)
                if match and path.is_file():
                    found[int(match.group(1))] = path
        self.clear()
        for row in metrics or []:
            self.metrics[int(row["epoch"])] = row
        for epoch in sorted(found):
            self._add(epoch, found[epoch], show=False)
        if self.epochs:
            self.show_epoch(self.epochs[-1])
        return len(found)

    def _add(self, epoch: int, entry: dict | Path, show: bool = True) -> None:
        if epoch not in self.entries:
            self.epochs = sorted([*self.epochs, epoch])
        self.entries[epoch] = entry
        self._set_slider(len(self.epochs) - 1, self.epochs.index(self.shown_epoch)
                         if self.shown_epoch in self.entries else 0)
        self.slider.setEnabled(len(self.epochs) > 1)
        if show and (self.follow or self.shown_epoch is None or self.shown_epoch == epoch):
            self.show_epoch(self.epochs[-1] if self.follow else epoch)

    def _set_slider(self, maximum: int, value: int) -> None:
        self._moving = True
        try:
            self.slider.setRange(0, maximum)
            self.slider.setValue(value)
        finally:
            self._moving = False

    @Slot(int)
    def _slider_moved(self, index: int) -> None:
        if self._moving or not self.epochs:
            return
        self.follow = index == len(self.epochs) - 1
        self.show_epoch(self.epochs[index])

    def show_epoch(self, epoch: int) -> None:
        entry = self.entries[epoch]
        self.shown_epoch = epoch
        self._set_slider(len(self.epochs) - 1, self.epochs.index(epoch))
        self.epoch_label.setText(f"{epoch} of {self.epochs[-1]}")
        if isinstance(entry, Path):
            self._show_file(epoch, entry)
        else:
            self._show(epoch, entry)
        self.epoch_shown.emit(epoch)

    def _show(self, epoch: int, samples: dict) -> None:
        kind = samples["kind"]
        if kind == "text":
            self.title.setText(f"Written after epoch {epoch} from the prompt {samples['prompt']!r} "
                               f"at temperature {samples['temperature']:g}:")
            self._show_text(samples["prompt"] + samples["text"])
        elif is_image_samples(samples):
            if kind == "images":
                count = len(samples["images"])
                what = (f"{count} samples of the generator after epoch {epoch} (the same noise every "
                        "epoch" + (", the class asked for under each)." if samples.get("labels") else ").")
                        + self.judged(epoch, count))
            else:
                what = (f"Validation samples after epoch {epoch}: input"
                        + (", noisy input" if samples.get("noisy") is not None else "")
                        + " and reconstruction, side by side")
            self.title.setText(what)
            self._show_image(render_samples(samples, *self._colours()))
        else:
            self.title.setText(f"Validation samples after epoch {epoch}, given and given back "
                               "(the first values of each):")
            self._show_text(reconstruction_text(samples))

    def _show_file(self, epoch: int, path: Path) -> None:
        if path.suffix == ".txt":
            self.title.setText(f"Written after epoch {epoch} ({path.name}):")
            try:
                self._show_text(path.read_text(encoding="utf-8", errors="replace"))
            except OSError as error:
                self._show_text(f"{path} cannot be read: {error.strerror or error}")
            return
        image = QImage(str(path))
        if image.isNull():
            self.title.setText(f"Epoch {epoch}: {path} is not a readable PNG image")
            self.picture.clear()
            self.pages.setCurrentIndex(0)
            return
        self.title.setText(f"Samples after epoch {epoch} ({path.name})."
                           + self.judged(epoch, self.sample_count))
        self._show_image(image)

    def _colours(self) -> tuple[QColor, QColor]:
        palette = self.palette()
        return palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text)

    def _show_image(self, image: QImage) -> None:
        self.picture.set_image(image)
        self.pages.setCurrentIndex(0)

    def _show_text(self, text: str) -> None:
        self.text.setPlainText(text)
        self.pages.setCurrentIndex(1)

    def current_image(self) -> QImage | None:
        """The picture shown (None for text or nothing)."""
        if self.pages.currentIndex() != 0 or self.picture.image.isNull():
            return None
        return self.picture.image

    def newest_image(self) -> QImage | None:
        """The newest epoch's samples as a picture (None for text or nothing)."""
        if not self.epochs:
            return None
        entry = self.entries[self.epochs[-1]]
        if isinstance(entry, Path):
            image = QImage(str(entry)) if entry.suffix == ".png" else QImage()
            return None if image.isNull() else image
        if not is_image_samples(entry):
            return None
        return render_samples(entry, *self._colours())
