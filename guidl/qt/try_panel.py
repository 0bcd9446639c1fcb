"""The Try tab: drop photos (or choose them) and see what the trained model
says of each, its top classes with their probabilities.

A view only: it asks for predictions with ``images_chosen`` and shows what it
is given; the pretrained controller runs the model off the GUI thread.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QFileDialog, QFrame, QGridLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea, QVBoxLayout,
    QWidget,
)

from ..spec.templates import IMAGE_SUFFIXES
from .panels import ERROR_STYLE, message_label

THUMBNAIL = 112  # pixels, the longer side
TOP_K = 3
NO_MODEL = "Train the model first (F5): then drop photos here to see what it says of them."
READY = "Drop photos here, or choose them: the trained model's top classes appear beside each."
IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)) + ");;All files (*)"


def image_files(paths: list[str]) -> list[str]:
    """The image files among ``paths`` (by suffix), in the order given."""
    return [p for p in paths if Path(p).suffix.lower() in IMAGE_SUFFIXES and Path(p).is_file()]


def thumbnail(path: str, size: int = THUMBNAIL) -> QPixmap:
    """The image scaled to fit ``size`` pixels, decoded at that size (a
    12-megapixel photo is not decoded whole); an empty pixmap when unreadable."""
    reader = QImageReader(path)
    reader.setAutoTransform(True)  # a phone photo's EXIF rotation
    original = reader.size()
    if original.isValid() and max(original.width(), original.height()) > size:
        reader.setScaledSize(original.scaled(QSize(size, size), Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    return QPixmap.fromImage(image) if not image.isNull() else QPixmap()


class PredictionRow(QFrame):
    """One image: its thumbnail, its name, and a bar per top class (or why it could not be read)."""

    def __init__(self, path: str, top: list[tuple[str, float]] | None, error: str | None = None):
        super().__init__()
        self.path = path
        self.top = top or []
        self.setFrameShape(QFrame.Shape.StyledPanel)
        picture = QLabel()
        picture.setFixedSize(THUMBNAIL, THUMBNAIL)
        picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        pixmap = thumbnail(path)
        if pixmap.isNull():
            picture.setText("?")
        else:
            picture.setPixmap(pixmap)
        self.picture = picture
        grid = QGridLayout()
        name = QLabel(f"<b>{Path(path).name}</b>")
        name.setToolTip(path)
        grid.addWidget(name, 0, 0, 1, 2)
        self.bars: list[QProgressBar] = []
        if error is not None:
            self.error_label = message_label()
            self.error_label.show()
            self.error_label.setText(error)
            self.error_label.setStyleSheet(ERROR_STYLE)
            grid.addWidget(self.error_label, 1, 0, 1, 2)
        for row, (label, probability) in enumerate(self.top, start=1):
            text = QLabel(label)
            text.setToolTip(label)
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(round(probability * 1000))
            bar.setFormat(f"{probability:.1%}")
            bar.setMinimumWidth(220)
            bar.setMaximumWidth(360)
            if row == 1:
                text.setText(f"<b>{label}</b>")
            grid.addWidget(text, row, 0)
            grid.addWidget(bar, row, 1)
            self.bars.append(bar)
        grid.setColumnStretch(2, 1)
        layout = QHBoxLayout(self)
        layout.addWidget(picture)
        layout.addLayout(grid, 1)


class TryPanel(QWidget):
    """Drop or choose photos; see the trained model's top classes for each."""

    #: Image files to predict (the controller answers with ``show_predictions``).
    images_chosen = Signal(list)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.has_model = False
        self.busy = False
        self.message = message_label()
        self.message.show()  # the tab's one line of state: always there
        self.choose_button = QPushButton("Choose Images…")
        self.choose_button.clicked.connect(self.choose_images)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear)
        self.preprocessing = QLabel()  # how the photos are prepared, as in training
        self.preprocessing.setWordWrap(True)
        self.preprocessing.setStyleSheet("color: palette(mid);")
        buttons = QHBoxLayout()
        buttons.addWidget(self.choose_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)

        self.rows: list[PredictionRow] = []
        self.list_widget = QWidget()
        self.list_layout = QVBoxLayout(self.list_widget)
        self.list_layout.addStretch(1)
        self.drop_hint = QLabel("Drop photos here")
        self.drop_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.drop_hint.setMinimumHeight(120)
        self.drop_hint.setStyleSheet("QLabel { border: 2px dashed palette(mid); border-radius: 8px; "
                                     "color: palette(mid); font-size: 16px; }")
        self.list_layout.insertWidget(0, self.drop_hint)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.list_widget)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        layout.addWidget(self.preprocessing)
        layout.addWidget(scroll, 1)
        self.set_model(False)

    # -- the model ------------------------------------------------------------------------------

    def set_model(self, available: bool, preprocessing: str = "") -> None:
        """Whether a trained model is there to ask; ``preprocessing`` says how photos are prepared."""
        self.has_model = available
        self.preprocessing.setText(preprocessing if available else "")
        self.preprocessing.setVisible(bool(preprocessing) and available)
        self._say(READY if available else NO_MODEL, "")

    def _say(self, text: str, style: str) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(style)

    def show_error(self, text: str) -> None:
        self.busy = False
        self._say(text, ERROR_STYLE)

    # -- choosing photos --------------------------------------------------------------------

    @Slot()
    def choose_images(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Choose images to try", str(Path.home()), IMAGE_FILTER)
        if paths:
            self.try_images(paths)

    def try_images(self, paths: list[str]) -> bool:
        """Ask for the predictions of the image files among ``paths``; False
        (and said why) when there is nothing to ask or nothing to ask it of."""
        images = image_files(paths)
        if not images:
            self._say("None of these is an image file (" + ", ".join(sorted(IMAGE_SUFFIXES)) + ").", ERROR_STYLE)
            return False
        if not self.has_model:
            self._say(NO_MODEL, ERROR_STYLE)
            return False
        self.busy = True
        self._say(f"Asking the model about {len(images)} image{'s' if len(images) > 1 else ''}…", "")
        self.images_chosen.emit(images)
        return True

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt's name
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt's name
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.try_images(paths)

    # -- the answers ------------------------------------------------------------------------

    def show_predictions(self, results: list[tuple[str, list[tuple[str, float]] | None, str | None]]) -> None:
        """``(path, top classes, error)`` per image, the newest shown first."""
        self.busy = False
        self.drop_hint.hide()
        for path, top, error in reversed(results):
            row = PredictionRow(path, top, error)
            self.rows.insert(0, row)
            self.list_layout.insertWidget(0, row)
        failed = sum(1 for _, _, error in results if error)
        done = len(results) - failed
        text = f"{done} image{'s' if done != 1 else ''} classified"
        if failed:
            text += f"; {failed} could not be read"
        self._say(text + ". Drop more photos, or choose them.", ERROR_STYLE if failed and not done else "")

    @Slot()
    def clear(self) -> None:
        for row in self.rows:
            row.setParent(None)
            row.deleteLater()
        self.rows.clear()
        self.drop_hint.show()
        self.set_model(self.has_model, self.preprocessing.text())
