"""Reading and writing project files: plain JSON, never a pickle.

Reading never executes anything from the file. Writing is atomic: the new
text goes to a temporary file beside the target, is flushed to disk, and
replaces the target in one step, so a crash never leaves half a project.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from ..formatting import format_bytes, quote, shorten
from .errors import Problem, ProjectError
from .project import CURRENT_VERSION, FORMAT, Project

#: A project file larger than this is not a project file.
MAX_FILE_BYTES = 16 * 1024 * 1024
#: Real projects nest about 6 levels; anything far deeper is refused before
#: any recursive code (validation, deepcopy) can trip over it.
MAX_DEPTH = 64

#: ``MIGRATIONS[v]`` upgrades a document of version ``v`` to ``v + 1``. Older
#: files are upgraded one step at a time up to ``CURRENT_VERSION``.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


class UnreadableFileError(ValueError):
    """A path guidl will not read: missing, not a regular file, or too large.

    ``reason`` reads after the path: ``f"{path}: {reason}"``."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = shorten(str(path))  # a path that cannot exist may be megabytes long
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


_KINDS = ((stat.S_ISDIR, "is a folder, not a file"),
          (stat.S_ISFIFO, "is a named pipe (FIFO), not a regular file"),
          (stat.S_ISCHR, "is a character device, not a regular file"),
          (stat.S_ISBLK, "is a block device, not a regular file"),
          (stat.S_ISSOCK, "is a socket, not a regular file"))


def _too_large(size: int, limit: int, what: str, grew: bool = False) -> str:
    size_text, limit_text = format_bytes(size), format_bytes(limit)
    if size_text == limit_text:
        size_text = f"{size:,} bytes"
    return f"is {'more than ' if grew else ''}{size_text}; {what} is at most {limit_text}"


def open_regular_file(path: str | os.PathLike[str], limit_bytes: int, what: str) -> BinaryIO:
    """``path`` opened for binary reading, only when it is a regular file of
    at most ``limit_bytes``; else ``UnreadableFileError`` saying why.

    The file is opened without blocking (a FIFO would wait for a writer
    forever) and the checks look at the opened descriptor, not the path, so
    nothing can be swapped in between. ``what`` names the kind of file in the
    size message ("a project file").
    """
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    flags = os.O_RDONLY | nonblocking | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise UnreadableFileError(path, "no such file") from None
    except IsADirectoryError:
        raise UnreadableFileError(path, "is a folder, not a file") from None
    except OSError as error:
        raise UnreadableFileError(path, f"cannot be read: {error.strerror}") from None
    except ValueError:  # a NUL character, which no file name holds
        raise UnreadableFileError(repr(str(path)), "is not a file name (it holds a NUL character)") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            reason = next((text for test, text in _KINDS if test(info.st_mode)), "is not a regular file")
            raise UnreadableFileError(path, reason)
        if info.st_size > limit_bytes:
            raise UnreadableFileError(path, _too_large(info.st_size, limit_bytes, what))
        if nonblocking:
            os.set_blocking(fd, True)  # a regular file reads the same either way; say it plainly
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_file(path: str | os.PathLike[str], limit_bytes: int, what: str) -> bytes:
    """The bytes of ``path`` (see ``open_regular_file``), never more than
    ``limit_bytes``: a file that grows past it while being read is refused too."""
    with open_regular_file(path, limit_bytes, what) as handle:
        try:
            data = handle.read(limit_bytes + 1)
        except OSError as error:
            raise UnreadableFileError(path, f"cannot be read: {error.strerror}") from None
    if len(data) > limit_bytes:
        raise UnreadableFileError(path, _too_large(len(data), limit_bytes, what, grew=True))
    return data


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _BadValue(ValueError):
    pass


def _inspect(doc: Any) -> int:
    """The nesting depth of ``doc``; ``_BadValue`` for values JSON cannot hold
    (1e400 parses as infinity) or text that is not valid Unicode."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise _BadValue("a number is too large to be a JSON number")
        if isinstance(value, str):
            _check_text(value)
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                if isinstance(value, dict):
                    for key in value:
                        _check_text(key)
                    items = value.values()
                else:
                    items = value
                stack.extend((item, depth + 1) for item in items)
    return deepest


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _BadValue(f"the text {text[:20]!r} holds an unpaired surrogate escape") from None


def parse_json(text: str) -> Any:
    """Parse ``text`` strictly, turning every failure into a ``ProjectError``."""
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
        if _inspect(doc) > MAX_DEPTH:
            raise RecursionError
        return doc
    except json.JSONDecodeError as error:
        raise ProjectError(Problem("", f"not valid JSON: {error.msg} "
                                       f"(line {error.lineno}, column {error.colno})")) from None
    except _BadValue as error:
        raise ProjectError(Problem("", f"not valid JSON for guidl: {error}")) from None
    except _DuplicateKey as error:
        raise ProjectError(Problem("", f"not valid JSON for guidl: the key {quote(error.args[0])} "
                                       "appears twice in one object")) from None
    except ValueError as error:
        raise ProjectError(Problem("", f"not valid JSON: {error}")) from None
    except RecursionError:
        raise ProjectError(Problem("", "not a project file: its JSON is nested too deeply")) from None


def upgrade(doc: Any) -> Any:
    """Bring a document to ``CURRENT_VERSION`` through ``MIGRATIONS``.

    Unknown and future versions are refused with a message that says what to
    do; a document that is not an object is returned untouched for the
    validator to explain.
    """
    if not isinstance(doc, dict):
        return doc
    if doc.get("format") != FORMAT:
        found = doc.get("format")
        raise ProjectError(Problem("format", f"must be {FORMAT!r}, got {quote(found)}: "
                                             "is this a guidl project file?"))
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProjectError(Problem("version", f"must be an integer, got {quote(version)}"))
    if version > CURRENT_VERSION:
        raise ProjectError(Problem("version", f"{version} is newer than this guidl understands "
                                              f"(up to {CURRENT_VERSION}); update guidl to open it"))
    if version < 1:
        raise ProjectError(Problem("version", f"unknown version {version}"))
    while version < CURRENT_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ProjectError(Problem("version", f"no upgrade from version {version} "
                                                  f"to {version + 1} is known"))
        doc = step(dict(doc))
        version += 1
        doc["version"] = version
    return doc


def loads(text: str, *, source: str | None = None) -> Project:
    """A project from JSON text; ``ProjectError`` lists every problem."""
    try:
        return Project.from_dict(upgrade(parse_json(text)), source=source)
    except ProjectError as error:
        error.source = source
        raise


def load(path: str | os.PathLike[str]) -> Project:
    """A project from a file; ``ProjectError`` (a ``ValueError``) for anything
    wrong with it, including a missing or unreadable file."""
    path = Path(path)
    source = str(path)
    try:
        raw = read_regular_file(path, MAX_FILE_BYTES, "a project file")
    except UnreadableFileError as error:
        raise ProjectError(Problem("", error.reason), source) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ProjectError(Problem("", f"not a text file (not UTF-8 at byte {error.start})"),
                           source) from None
    return loads(text, source=source)


def dumps(project: Project) -> str:
    return json.dumps(project.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def replace_file(source: Path, target: Path) -> None:
    """Move ``source`` onto ``target`` in one step, with the permissions the old
    file had, or those of a normal new file (mkstemp's 0600 would stick)."""
    if target.exists():
        mode = target.stat().st_mode & 0o777
    else:
        mask = os.umask(0)
        os.umask(mask)
        mode = 0o666 & ~mask
    os.chmod(source, mode)
    os.replace(source, target)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends
    without an error it replaces ``path`` in one step, with the permissions a
    normal new file (or the old file) has. On error the old file stays.

    A symbolic link is followed: its target is replaced and the link stays
    (a project kept in a dotfiles folder and linked elsewhere stays shared)."""
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    # The temporary name keeps the suffix: some writers and readers go by it (.pt2).
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        replace_file(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` in one step (temp file, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step (temp file, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:  # a file object: a full disk raises OSError
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def save(project: Project, path: str | os.PathLike[str]) -> None:
    """Write ``project`` to ``path`` atomically."""
    atomic_write_text(path, dumps(project))


def _version_1_to_2(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 2 adds graphs (``inputs``, merge layers, blocks, positions);
    a version 1 file has none of them and reads unchanged."""
    return doc


def _version_2_to_3(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 3 adds tasks (``task``, ``discriminator``,
    ``training.discriminator_optimizer``); without ``task`` a project learns
    its dataset's labels, as every version 2 file does."""
    return doc


def _version_3_to_4(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 4 adds transfer learning (backbone layers, ``frozen`` and
    ``lr_multiplier`` on layers, ``training.fine_tune``, ``data.balance``);
    a version 3 file uses none of them and reads unchanged."""
    return doc


MIGRATIONS[1] = _version_1_to_2
MIGRATIONS[2] = _version_2_to_3
MIGRATIONS[3] = _version_3_to_4
