"""Files: new, open (projects and bundles), save, recent files, and the
autosaved copy offered back after a crash."""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, QTimer, Slot
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu, QMessageBox

from ... import spec
from ...examples import example_path

MAX_RECENT = 8
AUTOSAVE_MS = 30_000
RECOVERY_FOLDER = "recovery"
RECOVERY_SUFFIX = ".guidl.json"
MAX_RECOVERY_BYTES = 64 * 1024 * 1024
PROJECT_FILTER = ("guidl projects and bundles (*.guidl.json *.guidl);;guidl projects (*.guidl.json);;"
                  "guidl bundles, trained models (*.guidl);;All files (*)")


class FilesController(QObject):
    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.settings = window.settings
        self.open_pending: Path | None = None  # a bundle to open once torch is ready
        # This window's autosave: a name of its own, locked from the first autosave on.
        self._recovery_name = f"{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.recovery_lock: QLockFile | None = None
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
            return self.window.engine_now("Cannot open the bundle") and self._open_bundle(path)
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
        self.window.evaluation.reopen_latest_run(path)  # its trained model comes back
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
        self.document.commit_edits()  # a value typed but not yet applied is saved too
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
        # Runs and exports take its name (not while a run trains it: no edits then).
        if self.document.project.name.strip() in ("", spec.Project.name) and not self.window.training.running:
            stem = Path(path).name.removesuffix(".json").removesuffix(".guidl")
            self.document.apply(lambda p: setattr(p, "name", stem), "Name the project after its file")
        return self.save_to(Path(path))

    def save_to(self, path: Path) -> bool:
        self.document.commit_edits()  # a value typed but not yet applied is saved too
        try:
            self.document.save(path)
        except OSError as error:
            QMessageBox.warning(self.window, "Cannot save", f"{path} could not be written: {error}")
            return False
        self.add_recent(path)
        self.remove_recovery()
        problems = self.document.field_problems()
        if problems:  # the file holds the last valid value: say so, the field still shows another
            field = next(iter(problems))
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self.window.statusBar().showMessage(
                f"Saved {path}, without the invalid value in {field}{more}: the file keeps its last "
                "valid value", 15000)
        else:
            self.window.statusBar().showMessage(f"Saved {path}", 4000)
        return True

    def maybe_save(self) -> bool:
        """Ask about unsaved changes; False when the user cancels."""
        self.document.commit_edits()  # a value typed but not yet applied is a change too
        if not self.document.modified:
            return True
        name = self.document.path.name if self.document.path else self.document.project.name or "Untitled"
        answer = QMessageBox.question(
            self.window, "Unsaved changes", f"Save the changes to “{name}”?",
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

    def remember_run(self, run_dir: Path) -> None:
        """A run of a project that was never saved finished: its project copy goes
        to Open Recent, so its trained model stays in reach (opened, it comes back)."""
        if self.document.path is None and (Path(run_dir) / "project.guidl.json").is_file():
            self.add_recent(Path(run_dir) / "project.guidl.json")

    def fill_recent(self, menu: QMenu) -> None:
        menu.clear()
        recent = self.recent()
        for entry in recent:
            menu.addAction(entry, lambda checked=False, p=entry: self.open_path(Path(p)))
        if not recent:
            menu.addAction("No recent projects").setEnabled(False)

    # -- recovery -------------------------------------------------------------------------------
    # Each window autosaves into a file of its own in state_dir/recovery, locked
    # (QLockFile beside it) while the window lives. A file whose lock nobody
    # holds is an orphan, left by a window that crashed: offered at start-up.

    @property
    def recovery_file(self) -> Path:
        return self.window.state_dir / RECOVERY_FOLDER / f"{self._recovery_name}{RECOVERY_SUFFIX}"

    def _lock_recovery(self) -> None:
        """Hold this window's lock from its first autosave until it closes."""
        if self.recovery_lock is not None:
            return
        self.recovery_file.parent.mkdir(parents=True, exist_ok=True)
        lock = _lock_for(self.recovery_file)
        if not lock.tryLock(0):
            raise OSError(f"{self.recovery_file.name} is locked by another window")
        self.recovery_lock = lock

    @Slot()
    def autosave(self) -> None:
        if not self.document.modified:  # saved, discarded or undone: nothing to recover
            self.remove_recovery()
            return
        try:
            self._lock_recovery()
            document = self.document.project.to_dict()
            document["guidl_recovery"] = {"path": str(self.document.path) if self.document.path else None,
                                          "saved": datetime.now().isoformat(timespec="seconds")}
            spec.atomic_write_text(self.recovery_file, json.dumps(document, indent=2) + "\n")
        except OSError as error:
            self.window.statusBar().showMessage(f"Autosave failed: {error}", 8000)

    def remove_recovery(self) -> None:
        self.recovery_file.unlink(missing_ok=True)

    def orphans(self) -> list[tuple[Path, QLockFile]]:
        """The recovery files no living window holds, oldest first, each with
        its lock now held here (so that no other window offers it meanwhile)."""
        folder = self.window.state_dir / RECOVERY_FOLDER
        try:
            files = sorted((p for p in folder.glob(f"*{RECOVERY_SUFFIX}") if p != self.recovery_file),
                           key=lambda p: (p.stat().st_mtime, p.name))
            stray_locks = [p for p in folder.glob("*.lock")
                           if not p.with_name(p.name.removesuffix(".lock") + RECOVERY_SUFFIX).exists()]
        except OSError:
            return []
        for path in stray_locks:  # a crashed window's lock that never got a file beside it
            lock = QLockFile(str(path))
            lock.setStaleLockTime(0)
            if lock.tryLock(0):
                lock.unlock()
        found = []
        for path in files:
            lock = _lock_for(path)
            if lock.tryLock(0):
                found.append((path, lock))
        return found

    def offer_recovery(self) -> bool:
        """After a crash: offer each orphaned autosave, one after another. The
        first restored opens in this window, any further one in a window of
        its own. True when this window restored one."""
        orphans = self.orphans()
        restored = False
        notes: list[str] = []
        for number, (path, lock) in enumerate(orphans, 1):
            try:
                project, origin = _read_recovery(path)
            except NotJson as error:  # nothing in it to restore, ever
                notes.append(f"An autosave could not be read ({error}): removed")
                project = None
            except (OSError, ValueError) as error:
                # Kept: it may be readable elsewhere (a newer guidl's autosave, say).
                notes.append(f"An autosave could not be restored ({_one_line(error)}): kept as {path}")
                lock.unlock()
                continue
            if project is not None:
                count = f" ({number} of {len(orphans)})" if len(orphans) > 1 else ""
                answer = QMessageBox.question(
                    self.window, "Restore unsaved work?",
                    f"guidl closed without saving “{project.name}” (autosaved {origin.get('saved', '')})"
                    f"{count}. Restore it?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                    QMessageBox.StandardButton.Yes)
                if answer == QMessageBox.StandardButton.Yes:
                    target = self if not restored else self.new_window().files
                    target.restore(project, Path(origin["path"]) if origin.get("path") else None)
                    restored = True
                    if not target.recovery_file.exists():  # its autosave failed: keep this one
                        lock.unlock()
                        continue
            # Restored work lives on in the restoring window's own autosave.
            path.unlink(missing_ok=True)
            lock.unlock()
        if notes:
            self.window.statusBar().showMessage(" · ".join(notes), 15000)
        return restored

    def restore(self, project: spec.Project, path: Path | None) -> None:
        self.document.set_project(project, path)
        self.window.reset_session()
        self.document.undo_stack.resetClean()  # restored work is unsaved work
        self.window.update_title()
        self.autosave()  # kept in this window's own recovery file from now on
        if path is not None:
            self.window.evaluation.reopen_latest_run(path)  # its trained model, when the model is unchanged

    def new_window(self):
        """Another window, kept alive as long as this one (shown)."""
        window = type(self.window)(settings=self.settings, state_dir=self.window.state_dir,
                                   engine=self.window.engine)
        self.window.siblings.append(window)  # kept alive as long as this window
        window.show()
        return window

    def window_closed(self) -> None:
        """The window closed cleanly: nothing to recover."""
        self.autosave_timer.stop()
        self.remove_recovery()
        if self.recovery_lock is not None:
            self.recovery_lock.unlock()
            self.recovery_lock = None


def _lock_for(recovery_file: Path) -> QLockFile:
    lock = QLockFile(str(recovery_file.with_name(recovery_file.name.removesuffix(RECOVERY_SUFFIX) + ".lock")))
    # Stale only when the process holding it is gone: a window may live for days.
    lock.setStaleLockTime(0)
    return lock


class NotJson(ValueError):
    """A recovery file that is not JSON at all: nothing in it can ever be restored."""


def _one_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def _read_recovery(path: Path) -> tuple[spec.Project, dict]:
    """The project autosaved in ``path`` and where it came from; ``ValueError``
    for anything that is not a readable autosave (only regular files are read)."""
    if not path.is_file():
        raise ValueError(f"{path.name} is not a regular file")
    if path.stat().st_size > MAX_RECOVERY_BYTES:
        raise ValueError(f"{path.name} is too large for an autosave")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # not UTF-8, or not JSON
        raise NotJson(f"{path.name} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{path.name} is not a project")
    origin = document.pop("guidl_recovery", None)
    origin = origin if isinstance(origin, dict) else {}
    if not isinstance(origin.get("path"), (str, type(None))):
        origin["path"] = None
    return spec.Project.from_dict(spec.upgrade(document)), origin
