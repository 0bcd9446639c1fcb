"""File > New from Pretrained: a folder of the user's photos and a
pretrained backbone from a gallery make a ready project.

The gallery's figures are torchvision's own metadata, copied into the
registry: the dialog needs no torch (except to say where the weights cache is,
which the caller answers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QDialogButtonBox, QFileDialog, QGridLayout, QHBoxLayout, QHeaderView, QLabel,
    QLineEdit, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from ..spec.templates import FINE_TUNE, TemplateError, pretrained_project, scan_image_folder
from .panels import ERROR_STYLE

COLUMNS = ("Backbone", "Parameters", "GFLOPs", "ImageNet top-1", "Download", "Weights")
#: The row chosen when the dialog opens: small, quick on a CPU, and good.
DEFAULT_BACKBONE = "resnet18"
#: Asked whether a backbone's weights are in torchvision's cache: True, False, or None (not known yet).
CacheCheck = Callable[[str, str], "bool | None"]


class _Number(QTableWidgetItem):
    """A cell that sorts by its value, not its text."""

    def __init__(self, text: str, value: float):
        super().__init__(text)
        self.value = value
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.value < getattr(other, "value", 0)


def gallery_rows() -> list[dict]:
    """One row per backbone, with its default weights' figures."""
    from ..registry.backbones import BACKBONES

    rows = []
    for name, meta in BACKBONES.items():
        weights = meta["default_weights"]
        facts = meta["weights"][weights]
        rows.append({"name": name, "title": meta.get("title", name), "weights": weights,
                     "params_m": facts["params"] / 1e6, "gflops": facts["gflops"], "acc1": facts["acc1"],
                     "file_mb": facts["file_mb"]})
    return rows


class PretrainedDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, cached: CacheCheck | None = None,
                 start_folder: Path | None = None):
        super().__init__(parent)
        self.setWindowTitle("New from Pretrained")
        self.cached = cached or (lambda name, weights: None)
        self.start_folder = start_folder or Path.home()
        self.summary = None  # the chosen folder's ImageFolderSummary, when it holds classes
        self._project = None

        intro = QLabel("Classify your own photos with a network trained on ImageNet: its layers are kept "
                       "frozen and a new last layer learns your classes.")
        intro.setWordWrap(True)

        self.folder = QLineEdit()
        self.folder.setPlaceholderText("a folder with one sub-folder of photos per class")
        self.folder.setClearButtonEnabled(True)
        self.choose_button = QPushButton("Choose…")
        self.choose_button.clicked.connect(self.choose_folder)
        self.folder_line = QLabel("Choose a folder: one sub-folder per class (cats/, dogs/, …), "
                                  "photos inside.")
        self.folder_line.setWordWrap(True)
        # Typed paths are counted once the typing pauses, not at every key.
        self._scan_timer = QTimer(self, singleShot=True, interval=300)
        self._scan_timer.timeout.connect(self.scan)
        self.folder.textChanged.connect(lambda _text: self._scan_timer.start())
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(self.choose_button)

        self.gallery = QTableWidget(0, len(COLUMNS))
        self.gallery.setHorizontalHeaderLabels(COLUMNS)
        self.gallery.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.gallery.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.gallery.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.gallery.verticalHeader().hide()
        self.gallery.setAlternatingRowColors(True)
        header = self.gallery.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.gallery.itemSelectionChanged.connect(self._update)
        self.gallery.itemDoubleClicked.connect(lambda _item: self.accept())
        self.backbone_line = QLabel()
        self.backbone_line.setWordWrap(True)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.create_button = self.buttons.addButton("Create Project", QDialogButtonBox.ButtonRole.AcceptRole)
        self.create_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        form = QGridLayout()
        form.addWidget(QLabel("<b>1. Your photos</b>"), 0, 0)
        form.addLayout(folder_row, 1, 0)
        form.addWidget(self.folder_line, 2, 0)
        form.addWidget(QLabel("<b>2. A pretrained network</b> (ImageNet top-1: its accuracy on ImageNet's "
                              "1,000 classes; GFLOPs: work per 224x224 image, lower is quicker)"), 3, 0)
        form.addWidget(self.gallery, 4, 0)
        form.addWidget(self.backbone_line, 5, 0)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form, 1)
        layout.addWidget(self.buttons)
        self.resize(760, 500)
        self._fill_gallery()
        self._update()

    # -- the gallery -------------------------------------------------------------------------

    def _fill_gallery(self) -> None:
        self.gallery.setSortingEnabled(False)
        for row, facts in enumerate(gallery_rows()):
            self.gallery.insertRow(row)
            name = QTableWidgetItem(f"{facts['title']}  ({facts['name']})")
            name.setData(Qt.ItemDataRole.UserRole, (facts["name"], facts["weights"]))
            name.setToolTip(f"{facts['title']}: torchvision's {facts['name']} with its {facts['weights']} weights")
            cached = self.cached(facts["name"], facts["weights"])
            state = QTableWidgetItem("in the cache" if cached else "to download" if cached is False else "")
            state.setToolTip("Already downloaded: works offline" if cached
                             else "Downloaded when training starts (or use File > Import Weights File…)")
            cells = (name, _Number(f"{facts['params_m']:.1f} M", facts["params_m"]),
                     _Number(f"{facts['gflops']:.2f}", facts["gflops"]),
                     _Number(f"{facts['acc1']:.1f} %", facts["acc1"]),
                     _Number(f"{facts['file_mb']:.0f} MB", facts["file_mb"]), state)
            for column, item in enumerate(cells):
                self.gallery.setItem(row, column, item)
        self.gallery.setSortingEnabled(True)
        # Quickest first: on a laptop's CPU the work per image decides how long training takes.
        self.gallery.sortItems(2, Qt.SortOrder.AscendingOrder)
        self.select_backbone(DEFAULT_BACKBONE)

    def select_backbone(self, name: str) -> bool:
        for row in range(self.gallery.rowCount()):
            if self.gallery.item(row, 0).data(Qt.ItemDataRole.UserRole)[0] == name:
                self.gallery.selectRow(row)
                return True
        return False

    def backbone(self) -> tuple[str, str] | None:
        """The chosen (backbone, weights), or None."""
        rows = self.gallery.selectionModel().selectedRows()
        if not rows:
            return None
        return self.gallery.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)

    # -- the folder -------------------------------------------------------------------------

    @Slot()
    def choose_folder(self) -> None:
        start = self.folder.text().strip() or str(self.start_folder)
        folder = QFileDialog.getExistingDirectory(self, "Choose the folder of photos", start)
        if folder:
            self.set_folder(folder)

    def set_folder(self, folder: str | Path) -> None:
        self.folder.setText(str(folder))
        self.scan()

    @Slot()
    def scan(self) -> None:
        """Count the classes and photos of the folder typed or chosen."""
        self._scan_timer.stop()
        text = self.folder.text().strip()
        self.summary = None
        if not text:
            self._say("Choose a folder: one sub-folder per class (cats/, dogs/, …), photos inside.", "")
        else:
            try:
                summary = scan_image_folder(text)
            except TemplateError as error:
                self._say(str(error), ERROR_STYLE)
            else:
                problem = summary.problem()
                if problem:
                    self._say(problem, ERROR_STYLE)
                else:
                    self.summary = summary
                    self._say(summary.describe(), "")
        self._update()

    def _say(self, text: str, style: str) -> None:
        self.folder_line.setText(text)
        self.folder_line.setStyleSheet(style)

    # -- the outcome ------------------------------------------------------------------------

    @Slot()
    def _update(self) -> None:
        chosen = self.backbone()
        if chosen is None:
            self.backbone_line.setText("Choose a network from the list.")
        else:
            name, weights = chosen
            cached = self.cached(name, weights)
            where = (" Its weights are in the cache." if cached
                     else " Its weights are downloaded from PyTorch's site when training starts." if cached is False
                     else "")
            head = FINE_TUNE["head_epochs"]
            self.backbone_line.setText(
                f"{name} ({weights}) frozen, then a new Linear layer for "
                f"{len(self.summary.classes) if self.summary else 'your'} classes. Training: the new layer for "
                f"{head} epochs, then the network's last stage too, at a tenth of the rate.{where}")
        self.create_button.setEnabled(self.summary is not None and chosen is not None)

    def accept(self) -> None:
        chosen = self.backbone()
        if self.summary is None or chosen is None:
            return
        try:
            self._project = pretrained_project(self.summary.folder, *chosen)
        except TemplateError as error:  # the folder changed since it was counted
            self._say(str(error), ERROR_STYLE)
            self.summary = None
            self._update()
            return
        super().accept()

    def project(self):
        """The project made on Create (None before, or after Cancel)."""
        return self._project
