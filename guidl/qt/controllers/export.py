"""Export: the trained model written in a format other programs load, in
the background, with the outcome in the status bar."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMessageBox

from ..jobs import Task

EXPORT_FILTERS = {
    "onnx": "ONNX model (*.onnx)", "pt2": "torch.export program (*.pt2)",
    "torchscript": "TorchScript for LibTorch (*.pt)", "safetensors": "Weights, safetensors (*.safetensors)",
    "state_dict": "Weights, PyTorch state_dict (*.pth)", "python": "Python source (*.py)",
    "bundle": "guidl bundle (*.guidl)",
}


class ExportController(QObject):
    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self.window = window
        self.thread = None  # the export running in the background
        self.last_export = None  # the last ExportResult
        self.failure_box: QMessageBox | None = None  # the last failure's message

    @property
    def running(self) -> bool:
        return self.thread is not None

    @Slot()
    def export_dialog(self) -> None:
        from ...engine.export import TrainedModel, default_filename

        window = self.window
        if window.session.trainer is None:
            return
        model = TrainedModel.from_trainer(window.session.trainer)
        if window.session.run_dir is not None:
            model = with_run_record(model, window.session.run_dir)
        folder = window.document.path.parent if window.document.path else Path.home()
        path, chosen = QFileDialog.getSaveFileName(window, "Export the trained model",
                                                   str(folder / default_filename(model, "onnx")),
                                                   ";;".join(EXPORT_FILTERS.values()))
        if not path:
            return
        fmt = export_format(chosen, Path(path))
        target = export_path(Path(path), fmt)
        # The dialog asked about the name typed; a suffix added since names another file.
        if target != Path(path) and target.exists() and QMessageBox.question(
                window, "Replace the file?", f"{target.name} exists. Replace it?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No) != QMessageBox.StandardButton.Yes:
            return
        self.export_to(model, fmt, target)

    def export_to(self, model, fmt: str, path: Path) -> None:
        """Export in the background; the outcome lands in the status bar (or a
        message that names the layer the format cannot express)."""
        from ...engine.export import export

        path = export_path(path, fmt)
        self.window.status_text.setText(f"Exporting to {path.name}…")
        task = Task(lambda: export(model, fmt, path))
        task.done.connect(self._exported)
        task.error.connect(self._failed)
        self.thread = self.window.jobs.start(task, self._thread_finished)
        self.window.update_actions()

    @Slot(object)
    def _exported(self, result) -> None:
        difference = ("" if result.max_difference is None
                      else f" · outputs match the model within {result.max_difference:.2g}")
        notes = "".join(f" · {note}" for note in result.notes)
        self.window.status_text.setText(f"Exported {result.path}{difference}{notes}")
        self.last_export = result

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.window.status_text.setText("Export failed")
        # Not a modal loop: a failure may arrive while the window is closing,
        # from within closeEvent (which waits for the export, processing events).
        box = QMessageBox(QMessageBox.Icon.Warning, "Cannot export", message, QMessageBox.StandardButton.Ok,
                          self.window)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.failure_box = box

    @Slot()
    def _thread_finished(self) -> None:
        self.thread = None
        self.window.update_actions()


def export_format(chosen_filter: str, path: Path) -> str:
    """The format to write: the one the typed file name's suffix names (what
    the user sees wins: typing ``model.py`` under the ONNX filter means Python),
    else the filter chosen in the dialog, else ONNX (some platforms' dialogs
    return no filter)."""
    from ...engine.export import FORMATS

    by_suffix = next((fmt for fmt, suffix in FORMATS.items() if path.suffix == suffix), None)
    if by_suffix is not None:
        return by_suffix
    return next((fmt for fmt, name in EXPORT_FILTERS.items() if name == chosen_filter), "onnx")


def export_path(path: Path, fmt: str) -> Path:
    """``path`` with the suffix of ``fmt`` (added when it has none)."""
    from ...engine.export import FORMATS

    if path.suffix == FORMATS[fmt]:
        return path
    return path.with_name(path.name + FORMATS[fmt]) if not path.suffix else path.with_suffix(FORMATS[fmt])


def with_run_record(model, run_dir: Path):
    """``model`` (the window's trained or reopened model) with what its run
    folder records: trained, the final metrics and evaluation, seed, device,
    status and versions, as ``guidl export RUN_DIR`` writes them. A reopened
    run's model has no training history in the window, so without this its
    bundle would read as untrained. Unchanged when the folder's final weights
    are not this model's (or cannot be read)."""
    import torch

    from ...engine.export import ExportError, load_trained

    if not (run_dir / "model.safetensors").is_file():
        return model
    try:
        saved = load_trained(run_dir, samples=False)
    except (ExportError, OSError, ValueError):
        return model
    mine, theirs = model.module.state_dict(), saved.module.state_dict()
    if mine.keys() != theirs.keys() or any(not torch.equal(mine[key], theirs[key]) for key in mine):
        return model
    model.trained = True
    model.metrics = saved.metrics or model.metrics
    model.meta = {**model.meta, **saved.meta}
    return model
