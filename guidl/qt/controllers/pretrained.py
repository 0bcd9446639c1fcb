"""Transfer learning from the window: File > New from Pretrained, File >
Import Weights File, the backbone weights downloaded (with a progress bar and
Cancel) before a run needs them, and the Try tab's predictions."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QEvent, QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QApplication, QFileDialog, QMainWindow, QMessageBox, QProgressDialog

from ...formatting import format_bytes
from ..jobs import Task, error_message
from ..panels import ERROR_STYLE
from ..try_panel import NO_MODEL, TOP_K, TryPanel

WEIGHTS_FILTER = "PyTorch weights (*.pth *.pt *.safetensors);;All files (*)"
PROGRESS_HZ = 20  # progress reports a second from a download, at most
OFFLINE_TITLE = "Cannot download the pretrained weights"
WEIGHTS_FILE_TITLE = "Cannot use the weights file"


class _Cancelled(Exception):
    pass


class WeightsDownload(QObject):
    """Fetches backbone weights into torchvision's cache, one file after
    another; ``done(True)`` when all are there, ``done(False)`` when cancelled,
    ``error(message)`` when one cannot be had (offline, say)."""

    progress = Signal(int, int, str)  # bytes so far, bytes in all (0: not known), what
    done = Signal(bool)
    error = Signal(str)

    def __init__(self, wanted: list[tuple[str, str]]):
        super().__init__()
        self.wanted = wanted
        self._cancel = threading.Event()
        self._reported = 0.0

    def cancel(self) -> None:
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        from ...engine import backbones

        try:
            for name, weights in self.wanted:
                what = f"{name} {weights}"
                self.progress.emit(0, 0, what)

                def report(got: int, total: int, what=what) -> None:
                    # Raised inside the download: torchvision's fetch leaves no partial file behind.
                    if self._cancel.is_set():
                        raise _Cancelled
                    now = time.monotonic()
                    if now - self._reported >= 1 / PROGRESS_HZ or (total and got >= total):
                        self._reported = now
                        self.progress.emit(int(got), int(total or 0), what)

                backbones.fetch_weights(name, weights, progress=report)
                if self._cancel.is_set():
                    raise _Cancelled
        except _Cancelled:
            self.done.emit(False)
        except backbones.WeightsError as error:
            self.error.emit(str(error))
        except Exception as error:  # noqa: BLE001 - said in the window, never a crash
            self.error.emit(error_message(error))
        else:
            self.done.emit(True)


def backbone_layers(project) -> list[tuple[int, object]]:
    """(index, layer) of each pretrained backbone among the model's layers."""
    from ...registry.backbones import BACKBONES

    return [(i, layer) for i, layer in enumerate(project.model.layers) if layer.type in BACKBONES]


def describe_preprocessing(model) -> str:
    """How the Try tab prepares a photo: as the model was trained."""
    pre = (model.meta or {}).get("preprocessing")
    if pre:
        return (f"As in training, each photo's shorter side is resized to {pre['resize']} pixels, its centre "
                f"{pre['crop']}x{pre['crop']} cropped, and its colours normalised as the backbone expects.")
    if len(model.input_shape) == 3:
        channels, height, width = model.input_shape
        grey = " grey" if channels == 1 else ""
        return f"Each photo is resized to {width}x{height}{grey} pixels, as in training."
    return ""


class PretrainedController(QObject):
    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self.window = window
        self.download: WeightsDownload | None = None
        self.download_thread = None
        self.progress_dialog: QProgressDialog | None = None
        self.offline_box: QMessageBox | None = None
        self._then: Callable[[], None] | None = None
        self._fetched: set[tuple[str, str]] = set()  # downloaded by this window: never asked twice
        self._model = None  # (trainer, TrainedModel) of the last prediction
        #: Weights files found to fit, by (layer type, path, size, mtime): a file is read once.
        self._fitting: set[tuple] = set()
        self.predicting = None  # the thread running the Try tab's predictions
        self.try_panel = TryPanel()
        self.try_panel.images_chosen.connect(self.predict)
        window.tab_pages["try"] = self.try_panel
        window.tabs.addTab(self.try_panel, "Try")
        window.tabs.currentChanged.connect(self._tab_shown)
        window.document.project_replaced.connect(self._project_replaced)
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        # Closing the window cancels a download (the window then waits for its thread, briefly).
        if watched is self.window and event.type() == QEvent.Type.Close:
            self.cancel_download()
        return False

    # -- New from Pretrained ------------------------------------------------------------------

    @Slot()
    def new_from_pretrained(self) -> None:
        from ..pretrained_dialog import PretrainedDialog

        window = self.window
        if not window.files.maybe_save():
            return
        dialog = PretrainedDialog(window, cached=self.is_cached)
        if dialog.exec() == PretrainedDialog.DialogCode.Accepted and dialog.project() is not None:
            self.open_project(dialog.project())

    def open_project(self, project) -> None:
        window = self.window
        window.files.open_pending = None  # the user's own choice wins over the command line's
        window.document.set_project(project, None)
        window.reset_session()
        window.show_tab("model")
        backbone = backbone_layers(project)[0][1].type if backbone_layers(project) else "the backbone"
        window.status_text.setText(f"{backbone} (frozen) with a new head for "
                                   f"{project.model.layers[-1].params.get('out_features')} classes: press "
                                   "Train (F5)")

    def is_cached(self, name: str, weights: str) -> bool | None:
        """Whether torchvision's cache holds the weights (None while torch is still loading)."""
        if not self.window.engine.is_ready:
            return None
        from ...engine.backbones import weights_path

        return weights_path(name, weights).exists()

    # -- the weights a run needs, downloaded first ----------------------------------------------

    def missing_weights(self, project) -> list[tuple[str, str]]:
        from ...engine.backbones import weights_path
        from ...engine.pretrained import wanted_weights

        if self.window.session.weights_for(project) is not None:
            return []  # a run goes on from an opened model's weights: nothing to load
        return [(name, weights) for name, weights in wanted_weights(project)
                if (name, weights) not in self._fetched and not weights_path(name, weights).exists()]

    def fetch_first(self, then: Callable[[], None]) -> bool:
        """Before training: when the project's backbones need weights that are
        not in the cache, download them in the background (a progress dialog
        with Cancel) and call ``then`` once they are there. False when nothing
        is missing (train at once)."""
        if self.download is not None:
            return True  # already downloading: ``then`` follows it
        problem = self.weights_file_problem(self.window.document.project)
        if problem is not None:
            self.show_offline(problem, WEIGHTS_FILE_TITLE, "Training did not start: a weights file does not fit")
            return True
        missing = self.missing_weights(self.window.document.project)
        if not missing:
            return False
        self.start_download(missing, then)
        return True

    def weights_file_problem(self, project) -> str | None:
        """Why a backbone's ``weights_file`` cannot be loaded (the engine's
        whole message, with the layer numbered as the table numbers it), or None."""
        from ...engine.backbones import WeightsError

        if not self.window.engine.is_ready or self.window.session.weights_for(project) is not None:
            return None
        for index, layer in backbone_layers(project):
            file = layer.params.get("weights_file")
            if not isinstance(file, str) or not file:
                continue
            path = Path(file).expanduser()
            try:
                self._check_fits(layer, path)
            except OSError as error:
                return f"Layer {index} ({layer.type}): cannot read its weights file {path}: {error.strerror or error}"
            except WeightsError as error:
                return f"Layer {index} ({layer.type}): {error}"
        return None

    def _check_fits(self, layer, path: Path) -> None:
        """The engine's check that ``path`` holds ``layer``'s weights, made once
        per version of the file (a large file is read whole): the import's check
        spares Train its own."""
        from ...engine.pretrained import check_weights_file

        stat = path.stat()
        key = (layer.type, str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._fitting:
            check_weights_file(layer.type, layer.params, path)
            self._fitting.add(key)

    def start_download(self, wanted: list[tuple[str, str]], then: Callable[[], None] | None) -> None:
        from ...registry.backbones import BACKBONES

        window = self.window
        self._then = then
        megabytes = sum(BACKBONES[name]["weights"][weights]["file_mb"] for name, weights in wanted)
        names = ", ".join(f"{name} ({weights})" for name, weights in wanted)
        dialog = QProgressDialog(f"Downloading the pretrained weights of {names}, {megabytes:.0f} MB, "
                                 "into torchvision's cache…", "Cancel", 0, 0, window)
        dialog.setWindowTitle("Downloading weights")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.setMinimumWidth(460)
        self.progress_dialog = dialog
        self.download = WeightsDownload(wanted)
        dialog.canceled.connect(self.cancel_download)
        self.download.progress.connect(self._download_progress)
        self.download.done.connect(self._download_done)
        self.download.error.connect(self._download_failed)
        window.status_text.setText(f"Downloading {names}…")
        window.progress.setRange(0, 0)
        window.progress.show()
        dialog.show()
        self.download_thread = window.jobs.start(self.download, self._download_thread_finished)

    @Slot()
    def cancel_download(self) -> None:
        # Called here, not through a signal to the download: its thread is busy downloading.
        if self.download is not None:
            self.download.cancel()
            self.window.status_text.setText("Cancelling the download…")

    @Slot(int, int, str)
    def _download_progress(self, got: int, total: int, what: str) -> None:
        window, dialog = self.window, self.progress_dialog
        if total <= 0 or self.download is None:
            return
        window.status_text.setText(f"Downloading {what}: {format_bytes(got)} of {format_bytes(total)}")
        # Kilobytes: a progress bar holds an int, and a file may be over 2 GB. The dialog comes
        # last: a modal QProgressDialog's setValue processes events, the download's end among them.
        for bar in (window.progress,) + ((dialog,) if dialog is not None else ()):
            bar.setRange(0, max(1, total // 1024))
            bar.setValue(min(got, total) // 1024)

    @Slot(bool)
    def _download_done(self, complete: bool) -> None:
        wanted = self.download.wanted if self.download is not None else []
        then, self._then = self._then, None
        self._close_progress()
        if not complete:
            self.window.status_text.setText("Download cancelled: training did not start")
            return
        self._fetched.update(wanted)
        self.window.status_text.setText("Pretrained weights downloaded")
        if then is not None:
            then()

    @Slot(str)
    def _download_failed(self, message: str) -> None:
        self._then = None
        self._close_progress()
        self.show_offline(message)

    def _close_progress(self) -> None:
        self.download = None
        self.window.progress.hide()
        if self.progress_dialog is not None:
            self.progress_dialog.canceled.disconnect()
            self.progress_dialog.close()
            self.progress_dialog.deleteLater()
            self.progress_dialog = None

    @Slot()
    def _download_thread_finished(self) -> None:
        self.download_thread = None

    def show_offline(self, message: str, title: str = OFFLINE_TITLE,
                     status: str = "Training did not start: the pretrained weights are missing") -> None:
        """The weights cannot be had (or a weights file does not fit): said in
        full above the charts and in a box that offers to import a file."""
        window = self.window
        message = message[:1].upper() + message[1:]
        window.show_train_message(message, ERROR_STYLE)
        window.show_tab("train")
        window.status_text.setText(status)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Close, window)
        self.import_button = box.addButton("Import Weights File…", QMessageBox.ButtonRole.ActionRole)
        self.import_button.clicked.connect(lambda: self.import_weights_file())
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # not a nested event loop: a download may end while the window closes
        self.offline_box = box

    # -- Import Weights File ---------------------------------------------------------------------

    @Slot()
    def import_weights_file(self, path: str | Path | None = None) -> None:
        """Use a weights file downloaded elsewhere: torchvision's own file goes
        into its cache; any other (own weights) becomes the backbone layer's
        ``weights_file``, one undoable edit."""
        window = self.window
        if path is None:
            path, _ = QFileDialog.getOpenFileName(window, "Import weights file", str(Path.home()), WEIGHTS_FILTER)
            if not path:
                return
        path = Path(path)
        if not self.window.engine_now("PyTorch is not loaded"):
            return
        from ...engine.backbones import WeightsError, import_weights_file, read_weights_file

        layers = backbone_layers(window.document.project)
        selected = window.stack.selected_layer() if window.document.network == "model" else -1
        index = next((i for i, _ in layers if i == selected), layers[0][0] if layers else -1)
        target = f" for {window.document.project.model.layers[index].type} (layer {index})" if index >= 0 else ""
        checked = False  # the file is none of torchvision's: checked against the layer
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            found = import_weights_file(path)
            checked = found is None
            # Own weights are read and checked against the backbone now, not at Train: a
            # file that does not fit changes nothing, and its whole message says why.
            if found is None and index >= 0:
                self._check_fits(window.document.project.model.layers[index], path)
            elif found is None:
                read_weights_file(path)
        except OSError as error:
            self._warn("Cannot import the weights file", f"Cannot read {path}: {error.strerror or error}")
            return
        except WeightsError as error:
            self._warn("Cannot import the weights file", f"Not imported{target}: {error}" if checked else str(error))
            return
        finally:
            QApplication.restoreOverrideCursor()
        if found is not None:
            name, weights = found
            self._use_published(name, weights)
            window.status_text.setText(f"{path.name}: torchvision's {name} {weights} weights, now in the cache")
            return
        if index < 0:
            self._warn("No pretrained layer", f"{path.name} is not one of torchvision's published files, and the "
                       "model has no pretrained layer to load it into. File > New from Pretrained makes one.")
            return
        layer = window.document.project.model.layers[index]

        def edit(project) -> None:
            project.model.layers[index].params["weights_file"] = str(path)

        window.document.apply(edit, f"Load {layer.type} weights from {path.name}")
        window.status_text.setText(f"{layer.type} (layer {index}) loads its weights from {path}")
        self._close_offline()

    def _use_published(self, name: str, weights: str) -> None:
        """A backbone of that kind whose named weights are not there takes the imported ones."""
        from ...engine.backbones import weights_path

        document = self.window.document
        targets = [i for i, layer in backbone_layers(document.project) if layer.type == name
                   and not layer.params.get("weights_file")
                   and layer.params.get("weights") not in (weights, "none")
                   and not weights_path(name, layer.params.get("weights")).exists()]
        if targets:
            def edit(project) -> None:
                for i in targets:
                    project.model.layers[i].params["weights"] = weights

            document.apply(edit, f"Use {name} weights {weights}")
        self._close_offline()

    def _close_offline(self) -> None:
        """Weights were imported: the offline message no longer holds."""
        if self.offline_box is not None:
            try:
                self.offline_box.close()
            except RuntimeError:  # already deleted on close
                pass
            self.offline_box = None
            if not self.window.training.running:
                self.window.train_message.hide()

    def _warn(self, title: str, text: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self.window)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.warning_box = box


    # -- Try -------------------------------------------------------------------------------------

    @Slot(int)
    def _tab_shown(self, index: int) -> None:
        if self.window.tabs.widget(index) is self.try_panel:
            self.refresh()

    @Slot()
    def _project_replaced(self) -> None:
        # Another project: the photos tried were answered by the last one's model.
        self._model = None
        self.try_panel.clear()
        # Said before the session lets go of the last model; a reopened run's model is found when the
        # tab is shown or photos are tried.
        self.try_panel.set_model(False)

    def trained_model(self):
        """The window's trained model as a ``TrainedModel`` (made once per training), or None."""
        trainer = self.window.session.trainer
        if trainer is None or not self.window.engine.is_ready:
            return None
        if self._model is None or self._model[0] is not trainer:
            from ...engine.export import TrainedModel

            self._model = (trainer, TrainedModel.from_trainer(trainer))
        return self._model[1]

    def refresh(self) -> None:
        """The Try tab says whether there is a model to try, and how it prepares photos."""
        model = self.trained_model()
        if model is None:
            self.try_panel.set_model(False)
        elif model.task != "classification":
            self.try_panel.set_model(False)
            self.try_panel.show_error("Try shows a classifier's classes; this model is not a classifier.")
        else:
            self.try_panel.set_model(True, describe_preprocessing(model))

    @Slot(list)
    def predict(self, paths: list[str]) -> None:
        """The top classes of each image, worked out off the GUI thread."""
        self.refresh()
        model = self.trained_model()
        if model is None or model.task != "classification":
            self.try_panel.show_error(NO_MODEL if model is None else self.try_panel.message.text())
            return
        task = Task(lambda: classify(model, paths))
        task.done.connect(self.try_panel.show_predictions)
        task.error.connect(self.try_panel.show_error)
        self.predicting = self.window.jobs.start(task, self._predicted)

    @Slot()
    def _predicted(self) -> None:
        self.predicting = None


def classify(model, paths: list[str], batch: int = 16) -> list[tuple[str, list | None, str | None]]:
    """``(path, top classes, error)`` per image: an unreadable one is said, the others still classified."""
    import torch

    from ...engine.predict import PredictError, predict, read_inputs

    read: list[tuple[str, object]] = []
    errors: dict[str, str] = {}
    for path in paths:
        try:
            x, _ = read_inputs(model, [path])
            read.append((path, x))
        except PredictError as error:
            errors[path] = str(error)
    tops: dict[str, list] = {}
    for start in range(0, len(read), batch):
        chunk = read[start:start + batch]
        names = [path for path, _ in chunk]
        for path, top in zip(names, predict(model, torch.cat([x for _, x in chunk]), TOP_K, names)):
            tops[path] = top
    return [(path, tops.get(path), errors.get(path)) for path in paths]
