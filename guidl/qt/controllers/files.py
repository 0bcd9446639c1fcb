"""Files: new, open (projects and bundles), save, recent files, and the
autosaved copy offered back after a crash."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Slot
from PySide6.QtWidgets import QApplication, QFileDialog, QMainWindow, QMenu, QMessageBox

from ... import spec
from ...examples import example_path

MAX_RECENT = 8
AUTOSAVE_MS = 30_000
PROJECT_FILTER = ("guidl projects and bundles (*.guidl.json *.guidl);;guidl projects (*.guidl.json);;"
                  "guidl bundles, trained models (*.guidl);;All files (*)")


class FilesController(QObject):
    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.settings = window.settings
        self.open_pending: Path | None = None  # a bundle to open once torch is ready
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()

    # -- new and open ---------------------------------------------------------------------

    @Slot()
    def new_project(self, example: str | None = None) -> None:
        if not self.maybe_save():
            return
        self.open_pending = None  # the user's own choice wins over the command line's
        if example:
            project = spec.load(example_path(example))
        else:
            project = spec.Project()
            project.model.layers = []
        self.document.set_project(project, None)
        self.window.reset_session()

    @Slot()
    def open_dialog(self) -> None:
        if not self.maybe_save():
            return
        start = str(self.document.path.parent) if self.document.path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self.window, "Open project", start, PROJECT_FILTER)
        if path:
            self.open_path(Path(path), ask=False)

    def open_path(self, path: Path, ask: bool = True) -> bool:
        if ask and not self.maybe_save():
            return False
        self.open_pending = None  # the user's own choice wins over the command line's
        path = Path(path)
        if path.suffix == ".guidl":
            return self._load_engine_now() and self._open_bundle(path)
        try:
            project = spec.load(path)
        except spec.ProjectError as error:
            if not path.exists():
                self.settings.setValue("recent", [p for p in self.recent() if p != str(path)])
            lines = error.lines()
            QMessageBox.warning(self.window, "Cannot open the project",
                                f"{path.name} cannot be opened:\n\n" + "\n".join(lines[:12])
                                + (f"\n… and {len(lines) - 12} more" if len(lines) > 12 else ""))
            return False
        self.document.set_project(project, path)
        self.window.reset_session()
        self.add_recent(path)
        return True

    def _load_engine_now(self) -> bool:
        """A bundle holds weights: it needs torch now. False (and said) when torch cannot load."""
        engine = self.window.engine
        if engine.is_ready:
            return True
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            engine.start()
            engine.wait()
        finally:
            QApplication.restoreOverrideCursor()
        if engine.error:
            QMessageBox.warning(self.window, "Cannot open the bundle", engine.error)
            return False
        self.window.on_engine_ready()
        return True

    def _open_bundle(self, path: Path) -> bool:
        from ...engine.export import ExportError, load_bundle

        try:
            model = load_bundle(path)
        except (ExportError, spec.ProjectError) as error:
            QMessageBox.warning(self.window, "Cannot open the bundle", f"{path.name} cannot be opened:\n\n{error}")
            return False
        weights = {k: v.clone() for k, v in model.module.state_dict().items()}
        self.document.set_project(model.project, None)  # Save asks where: a bundle is no project file
        self.window.reset_session()
        self.window.session.bundle = (model.project.copy(), weights)
        self.window.session.source = f"the bundle {path.name}"
        self.add_recent(path)
        self.window.status_text.setText(f"Opened the trained model {path.name}: Evaluate shows its "
                                        "results, Train goes on training it")
        self.window.update_actions()
        return True

    def open_when_ready(self, path: Path) -> None:
        """Open ``path`` (a bundle, which needs torch) as soon as torch is loaded."""
        if self.window.engine.is_ready:
            self.open_path(path, ask=False)
        else:
            self.open_pending = path
            self.window.status_text.setText(f"Loading PyTorch to open {path.name}…")

    def engine_ready(self) -> None:
        if self.open_pending is not None:
            # Asks first when the project was edited meanwhile.
            path, self.open_pending = self.open_pending, None
            self.open_path(path, ask=True)

    def engine_failed(self, message: str) -> None:
        if self.open_pending is not None:
            path, self.open_pending = self.open_pending, None
            QMessageBox.warning(self.window, "Cannot open the bundle", f"{path.name} needs PyTorch: {message}")

    # -- save ---------------------------------------------------------------------------------

    @Slot()
    def save(self) -> bool:
        if self.document.path is None:
            return self.save_as()
        return self.save_to(self.document.path)

    @Slot()
    def save_as(self) -> bool:
        suggested = self.document.path or Path.home() / f"{self.document.project.name or 'model'}.guidl.json"
        path, _ = QFileDialog.getSaveFileName(self.window, "Save project", str(suggested), PROJECT_FILTER)
        if not path:
            return False
        if not path.endswith(".json"):
            path = path.removesuffix(".guidl") + ".guidl.json"
            # The dialog checked the name typed, not this one.
            if Path(path).exists() and QMessageBox.question(
                    self.window, "Replace the file?", f"{Path(path).name} exists. Replace it?",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                    QMessageBox.StandardButton.No) != QMessageBox.StandardButton.Yes:
                return False
        return self.save_to(Path(path))

    def save_to(self, path: Path) -> bool:
        try:
            self.document.save(path)
        except OSError as error:
            QMessageBox.warning(self.window, "Cannot save", f"{path} could not be written: {error}")
            return False
        self.add_recent(path)
        self.remove_recovery()
        self.window.statusBar().showMessage(f"Saved {path}", 4000)
        return True

    def maybe_save(self) -> bool:
        """Ask about unsaved changes; False when the user cancels."""
        if not self.document.modified:
            return True
        answer = QMessageBox.question(
            self.window, "Unsaved changes", f"Save the changes to {self.document.title}?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    # -- recent files ------------------------------------------------------------------------

    def recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [v for v in value or [] if isinstance(v, str)]

    def add_recent(self, path: Path) -> None:
        recent = [str(path)] + [p for p in self.recent() if p != str(path)]
        self.settings.setValue("recent", recent[:MAX_RECENT])

    def fill_recent(self, menu: QMenu) -> None:
        menu.clear()
        recent = self.recent()
        for entry in recent:
            menu.addAction(entry, lambda checked=False, p=entry: self.open_path(Path(p)))
        if not recent:
            menu.addAction("No recent projects").setEnabled(False)

    # -- recovery -------------------------------------------------------------------------------

    @property
    def recovery_file(self) -> Path:
        return self.window.state_dir / "recovery" / "autosave.guidl.json"

    @Slot()
    def autosave(self) -> None:
        if not self.document.modified:
            return
        try:
            self.recovery_file.parent.mkdir(parents=True, exist_ok=True)
            document = self.document.project.to_dict()
            document["guidl_recovery"] = {"path": str(self.document.path) if self.document.path else None,
                                          "saved": datetime.now().isoformat(timespec="seconds")}
            spec.atomic_write_text(self.recovery_file, json.dumps(document, indent=2) + "\n")
        except OSError as error:
            self.window.statusBar().showMessage(f"Autosave failed: {error}", 8000)

    def remove_recovery(self) -> None:
        self.recovery_file.unlink(missing_ok=True)

    def offer_recovery(self) -> bool:
        """After a crash: offer the autosaved project. True when restored."""
        if not self.recovery_file.exists():
            return False
        try:
            text = self.recovery_file.read_text(encoding="utf-8")
            document = json.loads(text)
            origin = document.pop("guidl_recovery", {}) or {}
            project = spec.Project.from_dict(spec.upgrade(document))
        except (OSError, ValueError):
            self.remove_recovery()
            return False
        answer = QMessageBox.question(
            self.window, "Restore unsaved work?",
            f"guidl closed without saving “{project.name}” (autosaved {origin.get('saved', '')}). "
            "Restore it?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.Yes)
        if answer != QMessageBox.StandardButton.Yes:
            self.remove_recovery()
            return False
        path = Path(origin["path"]) if origin.get("path") else None
        self.document.set_project(project, path)
        self.document.undo_stack.resetClean()  # restored work is unsaved work
        self.window.update_title()
        return True

    def window_closed(self) -> None:
        """The window closed cleanly: nothing to recover."""
        self.autosave_timer.stop()
        self.remove_recovery()
