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
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

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
        raise ProjectError(Problem("", f"not valid JSON for guidl: the key {error.args[0]!r} "
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
        raise ProjectError(Problem("format", f"must be {FORMAT!r}, got {found!r}: "
                                             "is this a guidl project file?"))
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProjectError(Problem("version", f"must be an integer, got {version!r}"))
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
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ProjectError(Problem("", f"the file is {size / 2**20:.0f} MiB; a project file is "
                                           f"at most {MAX_FILE_BYTES // 2**20} MiB"), source)
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProjectError(Problem("", "no such file"), source) from None
    except IsADirectoryError:
        raise ProjectError(Problem("", "is a folder, not a project file"), source) from None
    except OSError as error:
        raise ProjectError(Problem("", f"cannot be read: {error.strerror}"), source) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ProjectError(Problem("", f"not a text file (not UTF-8 at byte {error.start})"),
                           source) from None
    return loads(text, source=source)


def dumps(project: Project) -> str:
    return json.dumps(project.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends
    without an error it replaces ``path`` in one step, with the permissions a
    normal new file (or the old file) has. On error the old file stays."""
    path = Path(path)
    # The temporary name keeps the suffix: some writers and readers go by it (.pt2).
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if path.exists():
            mode = path.stat().st_mode & 0o777
        else:
            mask = os.umask(0)
            os.umask(mask)
            mode = 0o666 & ~mask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
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


def save(project: Project, path: str | os.PathLike[str]) -> None:
    """Write ``project`` to ``path`` atomically."""
    atomic_write_text(path, dumps(project))
