"""Run folders: where they go, how a new one is claimed, and reading them back.

A run folder holds ``run.json`` (status and cause, versions, figures), the
project copy, ``metrics.csv``, ``checkpoint.pt`` and ``model.safetensors``
(see ``callbacks.RunFolder``, which writes them).

A run that says ``running`` may belong to a process that was killed or that
crashed and so could not say so. ``run.json`` records the process that writes
it (``pid``, its start time, ``host`` and the machine's ``boot_time``), and
``read_run`` judges such a run by that process:

- on the same machine since the same boot, the run is over when no process
  with that pid and start time exists (a reused pid has another start time);
- on the same machine after a reboot, it is over;
- otherwise (a run written on another machine sharing the folder, or by a
  guidl too old to record its process) by its heartbeat: a training process
  refreshes ``run.json``'s modification time at least every ``HEARTBEAT_S``
  seconds while batches run, so a run whose file was last written more than
  ``STALE_AFTER_S`` ago is over. (A run paused that long on another machine
  is marked too; its next checkpoint says ``running`` again.)

A run judged over is reported, and written back, as failed with the cause
``PROCESS_GONE``.

What the user says of a run (a name, tags, a note) lives apart from it, in
``labels.json`` (``read_labels`` / ``write_labels``): run.json is the
training's own record, rewritten at every epoch, so the window can label a run
while it trains without racing its writer. ``delete_run`` removes a run folder,
and nothing that is not one.

This module imports neither torch nor Qt: the window lists runs with it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import stat
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import psutil

from ..formatting import first_line, quote, shorten
from ..spec.io import UnreadableFileError, atomic_write_text, open_regular_file

RUN_FILE = "run.json"
#: The files a run folder holds (callbacks.RunFolder writes them).
RUN_FILES = ("project.guidl.json", "metrics.csv", "checkpoint.pt", "model.safetensors",
             "discriminator.safetensors", RUN_FILE)
#: What a task's epochs made (``samples/epoch_0001.png`` or ``.txt``).
SAMPLES_FOLDER = "samples"
RUN_FORMAT = "guidl-run"
#: The statuses a run folder can be in.
STATUSES = ("running", "finished", "stopped", "interrupted", "pruned", "failed")
PROCESS_GONE = "the training process ended without finishing (killed or crashed)"
#: How often a running training refreshes its run.json (seconds, at most).
HEARTBEAT_S = 60.0
#: A running run with no process to check whose run.json is older is over.
STALE_AFTER_S = 3600.0
#: The largest process id a run record may hold (pid_t is 32 bits).
MAX_PID = 2**31 - 1
#: run.json is small; anything larger is not one of ours.
MAX_RUN_FILE_BYTES = 4 * 1024 * 1024

#: The fields read_run checks, with the types each may hold (None: null).
_FIELDS: dict[str, tuple[type, ...]] = {
    "format": (str,), "version": (int,), "status": (str,),
    "project": (str, type(None)), "started": (str,), "updated": (str,),
    "epochs": (int,), "epochs_completed": (int,), "seed": (int, type(None)),
    "error": (str, type(None)), "stop_reason": (str, type(None)),
    "pid": (int, type(None)), "process_started": (float, int, type(None)),
    "host": (str, type(None)), "boot_time": (float, int, type(None)),
    "source": (str, type(None)), "final": (dict, type(None)), "evaluation": (dict, type(None)),
    "notes": (list,), "sweep": (dict, type(None)),
}


class RunError(ValueError):
    """A run folder that cannot be read: the message says why."""


class RunExistsError(FileExistsError):
    """A new run was to be written into a folder that holds something already."""

    def __init__(self, path: str | os.PathLike[str]):
        super().__init__(errno.EEXIST, "a run folder is never written over", str(path))
        self.path = Path(path)

    def __str__(self) -> str:
        return f"{self.path} exists and is not empty (a run folder is never written over)"


class RunWriteError(Exception):
    """The run folder cannot be written (a full disk, a read-only folder, no
    permission): the training cannot keep its record, so it ends."""

    def __init__(self, path: str | os.PathLike[str], cause: OSError):
        self.path, self.cause = Path(path), cause
        reason = cause.strerror or str(cause) or type(cause).__name__
        super().__init__(f"cannot write the run folder {self.path}: {reason}")


class RunBusyError(Exception):
    """The run folder is held by another training (its lock is taken)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        super().__init__(f"{self.path} is being trained by another process")


def lock_run_dir(path: str | os.PathLike[str]) -> int | None:
    """Hold the run folder ``path`` for this training: an exclusive,
    non-blocking ``flock`` on the folder itself (no file is added to it),
    held until ``unlock_run_dir`` or the process ends, a kill included.
    ``RunBusyError`` when another training holds it. None, holding nothing,
    where locks are not to be had (no fcntl, a file system without locks)."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the running-status check remains
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None  # the writes that follow say what is wrong with the folder
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunBusyError(path) from None
    except OSError:
        os.close(fd)
        return None
    return fd


def unlock_run_dir(fd: int | None) -> None:
    """Let go of a folder ``lock_run_dir`` held."""
    if fd is not None:
        try:
            os.close(fd)  # closing the descriptor releases its flock
        except OSError:
            pass


def _stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def create_run_dir(parent: str | os.PathLike[str], stem: str) -> Path:
    """Make and return a new empty folder ``parent/stem-YYYYmmdd-HHMMSS``.

    The folder is created exclusively (never one that exists, so two
    trainings started in the same second get two folders): when the name is
    taken, ``-2``, ``-3``, ... are tried. ``parent`` is made when missing.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    base = f"{stem}-{_stamp()}"
    for attempt in range(1, 10_000):
        path = parent / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(errno.EEXIST, "no free run folder name", str(parent / base))


def is_free_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether a new run may be written into ``path``: nothing is there, or
    an empty folder (not a link to one). A folder that cannot be listed is
    not free."""
    path = Path(path)
    if not os.path.lexists(path):
        return True
    try:
        return path.is_dir() and not path.is_symlink() and not any(path.iterdir())
    except OSError:
        return False


def claim_run_dir(path: str | os.PathLike[str]) -> Path:
    """Make ``path`` the folder of a new run, exclusively: it is created, or
    it exists empty (made by ``create_run_dir`` or by hand); ``run.json`` is
    then created with O_EXCL, so of two trainings given the same folder one
    alone gets it. ``RunExistsError`` for a folder that holds anything."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path)
    except FileExistsError:
        if not is_free_run_dir(path):
            raise RunExistsError(path) from None
    try:
        os.close(os.open(path / RUN_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except FileExistsError:
        raise RunExistsError(path) from None
    return path


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / RUN_FILE).is_file()


def runs_root(project_path: str | os.PathLike[str] | None,
              state_dir: str | os.PathLike[str]) -> Path:
    """The folder a project's runs go to.

    ``<project folder>/runs`` for a saved project; for a project file inside a
    run folder (the copy every run keeps), the runs folder that holds that run,
    so runs never nest inside runs; ``state_dir/runs`` (the app's data folder)
    for a project that is not saved.
    """
    if project_path is None:
        return Path(state_dir) / "runs"
    folder = Path(project_path).absolute().parent
    if is_run_dir(folder):
        return folder.parent
    return folder / "runs"


def process_identity() -> dict[str, Any]:
    """What ``run.json`` records of the process writing it, so that a later
    reader can tell whether that process still lives."""
    pid = os.getpid()
    try:
        started: float | None = psutil.Process(pid).create_time()
        boot: float | None = psutil.boot_time()
    except (psutil.Error, OSError):
        started = boot = None
    return {"pid": pid, "process_started": started, "host": socket.gethostname(), "boot_time": boot}


def _same_time(a: Any, b: Any) -> bool:
    # create_time and boot_time are floats read from the system twice: allow jitter.
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) < 2.0


def process_gone(record: dict[str, Any], modified: float) -> bool:
    """Whether the process that wrote a ``running`` record has ended without
    saying so (``modified``: run.json's modification time)."""
    pid = record.get("pid")
    if isinstance(pid, int) and not isinstance(pid, bool) and record.get("host") == socket.gethostname():
        try:
            boot = psutil.boot_time()
        except (psutil.Error, OSError):
            boot = None
        if record.get("boot_time") is not None and boot is not None:
            if not _same_time(record["boot_time"], boot):
                return True  # the machine restarted since
            try:
                process = psutil.Process(pid)
                started = process.create_time()
            except psutil.NoSuchProcess:
                return True
            except (psutil.Error, OSError, ValueError, OverflowError):  # a pid no process can have
                return False  # cannot tell: leave the run alone
            if record.get("process_started") is None:
                return False
            return not _same_time(record["process_started"], started)  # another process took the pid
    return time.time() - modified > STALE_AFTER_S


def _check(record: Any, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise RunError(f"{where}: not a guidl run record (a JSON object was expected)")
    if record.get("format") != RUN_FORMAT:
        raise RunError(f"{where}: not a guidl run record (format {quote(record.get('format'))})")
    for key, types in _FIELDS.items():
        if key in record:
            value = record[key]
            if isinstance(value, bool) or not isinstance(value, types):
                names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
                raise RunError(f"{where}: {key} must be {names}, got {type(value).__name__}")
    if record.get("status") not in STATUSES:
        raise RunError(f"{where}: unknown status {quote(record.get('status'), 40)}")
    pid = record.get("pid")
    if pid is not None and not 1 <= pid <= MAX_PID:
        raise RunError(f"{where}: pid must be a process id from 1 to {MAX_PID}, got {quote(pid)}")
    return record


def _read_record(path: str | os.PathLike[str]) -> tuple[dict[str, Any], float]:
    """The checked ``run.json`` of the run folder ``path`` and its
    modification time, read only from a regular file of at most
    ``MAX_RUN_FILE_BYTES`` (a FIFO would block, a device never end);
    ``RunError`` says why it cannot be read."""
    file = Path(path) / RUN_FILE
    where = str(file)
    try:
        with open_regular_file(file, MAX_RUN_FILE_BYTES, "a run record") as handle:
            modified = os.fstat(handle.fileno()).st_mtime  # the file read, not one swapped in
            raw = handle.read(MAX_RUN_FILE_BYTES + 1)
    except UnreadableFileError as error:
        if error.reason == "no such file":
            raise RunError(f"{shorten(str(path))}: not a run folder (no {RUN_FILE})") from None
        raise RunError(str(error)) from None
    except OSError as error:
        raise RunError(f"{where}: cannot be read: {error.strerror or error}") from None
    if len(raw) > MAX_RUN_FILE_BYTES:
        raise RunError(f"{where}: grew past {MAX_RUN_FILE_BYTES} bytes while read; not a run record")
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise RunError(f"{where}: not valid JSON ({first_line(error)})") from None
    except RecursionError:
        raise RunError(f"{where}: not valid JSON (nested too deeply)") from None
    return _check(record, where), modified


def read_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked ``run.json`` of the run folder ``path``; ``RunError`` when
    it is missing, damaged or of the wrong types.

    A run that says ``running`` but whose process is gone is returned, and
    written back when the folder allows, as ``failed`` with ``PROCESS_GONE``.
    """
    record, modified = _read_record(path)
    if record["status"] == "running" and process_gone(record, modified):
        record = mark_failed(path, PROCESS_GONE, record) or record
    return record


def mark_failed(path: str | os.PathLike[str], cause: str,
                record: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Record that the run in ``path``, which says ``running``, failed with
    ``cause``; the new record (also when the folder cannot be written), or
    None when there was no running run to mark."""
    if record is None:
        try:
            record, _ = _read_record(path)
        except RunError:
            return None
    if record.get("status") != "running":
        return None
    try:
        held = lock_run_dir(path)
    except RunBusyError:
        return None  # a training on this machine holds the folder: its writer lives
    try:
        record = {**record, "status": "failed", "error": cause,
                  "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        try:
            atomic_write_text(Path(path) / RUN_FILE, json.dumps(record, indent=2) + "\n")
        except OSError:
            pass  # a read-only or full disk: the caller still learns that the run failed
        remove_stale_temporaries(path)  # its writer is gone
    finally:
        unlock_run_dir(held)
    return record


def remove_stale_temporaries(path: str | os.PathLike[str]) -> None:
    """Remove the temporary files a killed writer left in the run folder
    ``path`` mid-write (a checkpoint's is full-size). Only for a folder whose
    writer is gone or is this process: a live writer's file would vanish."""
    stale_files = [stale for name in RUN_FILES for stale in Path(path).glob(f".{name}.*.tmp*")]
    stale_files += Path(path, SAMPLES_FOLDER).glob(".epoch_*.tmp*")
    for stale in stale_files:
        try:
            stale.unlink()
        except OSError:
            pass  # a read-only folder keeps it; the next writer removes it


def list_runs(root: str | os.PathLike[str], skipped: list[Path] | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """The readable run folders directly under ``root`` with their records,
    oldest first (by start time, then name); damaged ones are skipped (those
    holding a run.json that cannot be read are appended to ``skipped``)."""
    root = Path(root)
    try:
        children = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
    runs = []
    for child in children:
        try:
            runs.append((child, read_run(child)))
        except RunError:
            if skipped is not None and (child / "run.json").exists():
                skipped.append(child)
            continue
    runs.sort(key=lambda item: (item[1].get("started") or "", item[0].name))
    return runs


def holds_trained_model(path: str | os.PathLike[str], record: dict[str, Any]) -> bool:
    """Whether the run at ``path`` ended with its final weights: a finished run,
    or one the user stopped (its model is as much theirs; losing it on reopen
    would lose the work), whose ``model.safetensors`` is there (a finished
    run's may have been deleted or not copied along: reopening then goes on
    to the next run with weights instead of one it cannot show)."""
    return record["status"] in ("finished", "stopped") and (Path(path) / "model.safetensors").is_file()


def latest_trained_run(root: str | os.PathLike[str], project_name: str | None = None, *,
                       source: str | os.PathLike[str] | None = None) -> Path | None:
    """The newest run folder under ``root`` that holds a trained model (see
    ``holds_trained_model``); None when there is none. Only runs of
    ``project_name`` when given, and only runs trained from the project file
    ``source`` (run.json's ``source``) when given: several projects may share
    a folder, and a name."""
    wanted = str(Path(source).absolute()) if source is not None else None
    for path, record in reversed(list_runs(root)):
        if not holds_trained_model(path, record):
            continue
        if project_name is not None and record.get("project") != project_name:
            continue
        if wanted is not None and record.get("source") != wanted:
            continue
        return path
    return None


LABELS_FILE = "labels.json"
LABELS_FORMAT = "guidl-run-labels"
#: labels.json holds a name, some tags and a note: anything larger is not ours.
MAX_LABELS_BYTES = 256 * 1024
MAX_NAME_CHARS = 200
MAX_TAGS = 50
MAX_TAG_CHARS = 50
MAX_NOTE_CHARS = 100_000


@dataclass
class RunLabels:
    """What the user says of a run: a name shown instead of the folder's, tags
    to filter by, and a note."""

    name: str | None = None
    tags: list[str] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"format": LABELS_FORMAT, "version": 1, "name": self.name,
                "tags": list(self.tags), "note": self.note}


def _one_line(text: str) -> str:
    """A name or tag on one line: line breaks and runs of spaces become one space."""
    return " ".join(text.split())


def _clean_tags(tags: Any) -> list[str]:
    """Tags on one line, without empty ones and repeats, in their order."""
    return list(dict.fromkeys(_one_line(t) for t in tags if isinstance(t, str) and t.strip()))


def check_labels(labels: RunLabels) -> RunLabels:
    """``labels`` tidied (a blank name is none; tags stripped, without blanks
    or repeats); ``ValueError`` naming the field that is too long or of the
    wrong type."""
    name = labels.name
    if name is not None and not isinstance(name, str):
        raise ValueError(f"a run's name must be text, got {type(name).__name__}")
    name = _one_line(name) if name is not None else None
    if name and len(name) > MAX_NAME_CHARS:
        raise ValueError(f"a run's name is at most {MAX_NAME_CHARS} characters, got {len(name):,}")
    if isinstance(labels.tags, str) or not all(isinstance(t, str) for t in labels.tags):
        raise ValueError("a run's tags must be a list of texts")
    tags = _clean_tags(labels.tags)
    if len(tags) > MAX_TAGS:
        raise ValueError(f"a run has at most {MAX_TAGS} tags, got {len(tags)}")
    long = next((t for t in tags if len(t) > MAX_TAG_CHARS), None)
    if long is not None:
        raise ValueError(f"a tag is at most {MAX_TAG_CHARS} characters, got {quote(long, 60)}")
    if not isinstance(labels.note, str):
        raise ValueError(f"a run's note must be text, got {type(labels.note).__name__}")
    if len(labels.note) > MAX_NOTE_CHARS:
        raise ValueError(f"a run's note is at most {MAX_NOTE_CHARS:,} characters, got {len(labels.note):,}")
    return RunLabels(name or None, tags, labels.note)


def read_labels(path: str | os.PathLike[str]) -> RunLabels:
    """The labels of the run folder ``path``. Labels are a convenience, never a
    reason a run cannot be listed: a missing, unreadable or damaged
    ``labels.json`` reads as no labels, and a field of the wrong type or too
    long as that field unset (the others are kept)."""
    try:
        with open_regular_file(Path(path) / LABELS_FILE, MAX_LABELS_BYTES, "a run's labels file") as handle:
            doc = json.loads(handle.read(MAX_LABELS_BYTES + 1).decode("utf-8"))
    except (UnreadableFileError, OSError, UnicodeDecodeError, ValueError, RecursionError):
        return RunLabels()
    if not isinstance(doc, dict) or doc.get("format") != LABELS_FORMAT:
        return RunLabels()
    name, tags, note = doc.get("name"), doc.get("tags"), doc.get("note")
    name = _one_line(name) if isinstance(name, str) and len(_one_line(name)) <= MAX_NAME_CHARS else None
    tags = [t for t in _clean_tags(tags) if len(t) <= MAX_TAG_CHARS][:MAX_TAGS] \
        if isinstance(tags, list) else []
    note = note if isinstance(note, str) and len(note) <= MAX_NOTE_CHARS else ""
    return RunLabels(name or None, tags, note)


def write_labels(path: str | os.PathLike[str], labels: RunLabels) -> RunLabels:
    """Write ``labels`` (tidied by ``check_labels``, which raises ``ValueError``
    for one too long) to the run folder ``path``, atomically; the labels
    written. ``RunError`` when ``path`` is not a run folder; ``OSError`` when
    it cannot be written."""
    labels = check_labels(labels)
    if not is_run_dir(path):
        raise RunError(f"{shorten(str(path))}: not a run folder (no {RUN_FILE})")
    atomic_write_text(Path(path) / LABELS_FILE,
                      json.dumps(labels.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return labels


#: What a run folder may hold besides RUN_FILES: a damaged run.json is still a
#: run's folder when it holds only these (never a user's folder with a stray run.json).
_RUN_EXTRAS = (LABELS_FILE, SAMPLES_FOLDER, "tensorboard")


def _only_run_files(path: Path) -> bool:
    try:
        names = [entry.name for entry in os.scandir(path)]
    except OSError:
        return False
    return all(name in RUN_FILES or name in _RUN_EXTRAS or (name.startswith(".") and ".tmp" in name)
               for name in names)


def delete_run(path: str | os.PathLike[str],
               remove: Callable[[Path], None] | None = None) -> None:
    """Remove the run folder ``path`` and all it holds (``remove(path)`` does
    it instead when given, e.g. a move to the trash).

    Only a run folder is removed, so a wrong path never deletes a user's
    files: a real folder (not a link) whose run.json is a guidl run record,
    or, when that record is damaged, a folder holding nothing but a run's
    files. ``RunError`` says why anything else is refused. A run that is
    training (its folder's lock is held on this machine, or its record says
    running and its process lives) is refused with ``RunBusyError``; the
    folder is held while it is removed, so no training starts in it meanwhile.
    ``OSError`` when the removal fails (part of the folder may be gone)."""
    path = Path(path)
    where = shorten(str(path))
    try:
        info = os.lstat(path)
    except OSError as error:
        raise RunError(f"{where}: cannot be deleted: {error.strerror or error}") from None
    if stat.S_ISLNK(info.st_mode):
        raise RunError(f"{where}: is a link, not a run folder; delete the folder it points to instead")
    if not stat.S_ISDIR(info.st_mode):
        raise RunError(f"{where}: not a run folder (not a folder)")
    try:
        record: dict[str, Any] | None = read_run(path)
    except RunError as error:
        if not (path / RUN_FILE).is_file() or not _only_run_files(path):
            raise RunError(f"{where}: not a run folder, not deleted ({error})") from None
        record = None  # a run's folder whose record is damaged
    held = lock_run_dir(path)  # RunBusyError: a training on this machine holds it
    try:
        if record is not None and record["status"] == "running":
            try:  # read again under the lock: it may have just ended
                record, modified = _read_record(path)
            except RunError:
                record, modified = None, 0.0
            if record is not None and record["status"] == "running" and not process_gone(record, modified):
                raise RunBusyError(path)
        (remove or shutil.rmtree)(path)
    finally:
        unlock_run_dir(held)
