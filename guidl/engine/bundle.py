"""Reading a guidl bundle (``.guidl``): a zip of the project, the weights,
a few samples and ``meta.json``, from anyone.

Nothing is extracted to disk and nothing is unpickled. What a bundle may
cost is bounded before and while it is read: only the members guidl knows
are read, each through a bounded chunked read; their total, both as the zip
declares it and as it actually inflates, is at most ``expansion_limit()``
(``MAX_BUNDLE_TOTAL`` or half the memory available now, whichever is
smaller; the weights are held twice while they load). A damaged, encrypted
or otherwise unreadable zip is ``BundleError``: "not a valid guidl bundle:
<why>". ``meta.json``'s fields are checked for their types here, so the rest
of guidl can trust them.
"""

from __future__ import annotations

import io
import json
import lzma
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..formatting import first_line, format_bytes, shorten
from .memory import available_memory_bytes

BUNDLE_FORMAT = "guidl-bundle"
PROJECT, WEIGHTS, META, SAMPLES = "project.guidl.json", "model.safetensors", "meta.json", "samples.safetensors"
REQUIRED_MEMBERS = (PROJECT, WEIGHTS, META)
#: The most every member read may inflate to, in all (see ``expansion_limit``).
MAX_BUNDLE_TOTAL = 4 * 2**30
#: The JSON members are small; a larger one is not ours.
MAX_JSON_MEMBER = 64 * 2**20
_CHUNK = 2**20
#: The methods guidl writes. bzip2 and LZMA are refused: Python inflates a whole
#: compressed block before a size check can stop it (a 3.5 KB bzip2 member took
#: gigabytes), and no bundle of ours uses them.
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_REFUSED_METHODS = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA"}
#: The fixed time stamp of every member guidl writes: the same model makes the same bundle.
MEMBER_TIME = (1980, 1, 1, 0, 0, 0)


class BundleError(ValueError):
    """A file that is not a valid guidl bundle; the message says why."""

    def __init__(self, source: str, reason: str):
        # The reason may quote the file's own bytes (zipfile's messages do): cut it.
        super().__init__(f"{source}: not a valid guidl bundle: {shorten(reason)}")


@dataclass
class BundleContents:
    project_text: str
    meta: dict[str, Any]
    weights: bytes
    samples: bytes | None


def expansion_limit() -> int:
    """The most a bundle's members may inflate to, in all, on this machine now."""
    return max(0, min(MAX_BUNDLE_TOTAL, available_memory_bytes() // 2))


def member_info(name: str, data: bytes, compress: bool = True) -> tuple[zipfile.ZipInfo, bytes]:
    """A member to write with a fixed time stamp (see ``MEMBER_TIME``)."""
    info = zipfile.ZipInfo(name, date_time=MEMBER_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info, data


def read_bundle(path: str | Path, limit: int | None = None) -> BundleContents:
    """The checked contents of the bundle at ``path``; ``BundleError`` says
    why a file is not one."""
    source = str(path)
    limit = expansion_limit() if limit is None else limit
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}  # the last of a name wins
            missing = [name for name in REQUIRED_MEMBERS if name not in members]
            if missing:
                raise BundleError(source, f"{', '.join(missing)} missing")
            wanted = [members[name] for name in (*REQUIRED_MEMBERS, SAMPLES) if name in members]
            for info in wanted:
                if info.flag_bits & 0x1:
                    raise BundleError(source, f"{info.filename} is encrypted")
                if info.compress_type in _REFUSED_METHODS:
                    raise BundleError(source, f"{info.filename} uses {_REFUSED_METHODS[info.compress_type]} "
                                              "compression; guidl bundles are stored or deflated")
                if info.compress_type not in _METHODS:
                    raise BundleError(source, f"{info.filename} uses an unknown compression method "
                                              f"({info.compress_type})")
            declared = sum(info.file_size for info in wanted)
            if declared > limit:
                raise BundleError(source, f"its members would expand to {format_bytes(declared)}, more than "
                                          f"the {format_bytes(limit)} a bundle may take here")
            total = 0

            def read(info: zipfile.ZipInfo, cap: int) -> bytes:
                nonlocal total
                if info.file_size > cap:
                    raise BundleError(source, f"{info.filename} is implausibly large "
                                              f"({format_bytes(info.file_size)})")
                buffer = io.BytesIO()
                try:
                    with archive.open(info) as member:
                        while chunk := member.read(_CHUNK):
                            total += len(chunk)
                            if total > limit or buffer.tell() + len(chunk) > cap:
                                raise BundleError(source, f"{info.filename} expands past its declared size "
                                                          f"or the {format_bytes(limit)} a bundle may take here")
                            buffer.write(chunk)
                # UnicodeDecodeError: a local header's name flagged UTF-8 that is not
                except (zlib.error, lzma.LZMAError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as error:
                    raise BundleError(source, f"{info.filename} is damaged ({error})") from None
                return buffer.getvalue()

            project_raw = read(members[PROJECT], MAX_JSON_MEMBER)
            meta_raw = read(members[META], MAX_JSON_MEMBER)
            weights = read(members[WEIGHTS], limit)
            samples = read(members[SAMPLES], limit) if SAMPLES in members else None
    except BundleError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, UnicodeDecodeError) as error:
        raise BundleError(source, f"the zip is damaged or truncated ({error})") from None
    except (zlib.error, lzma.LZMAError) as error:
        raise BundleError(source, f"a member's compressed data is damaged ({error})") from None
    except NotImplementedError as error:  # a compression method this Python lacks
        raise BundleError(source, f"{error}") from None
    except RuntimeError as error:  # zipfile's word for an encrypted member
        raise BundleError(source, f"{error}") from None
    except OSError as error:  # bz2's damaged data, or the file itself
        raise BundleError(source, f"cannot be read ({error.strerror or error})") from None
    try:
        project_text = project_raw.decode("utf-8")
        meta = json.loads(meta_raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise BundleError(source, f"a JSON member is not UTF-8 (byte {error.start})") from None
    except (ValueError, RecursionError) as error:
        raise BundleError(source, f"meta.json is not valid JSON ({first_line(error)})") from None
    return BundleContents(project_text, check_meta(meta, source), weights, samples)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _numbers(value: Any) -> bool:
    items = value if isinstance(value, list) else [value]
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in items)


def _check_field(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be ``key`` of meta.json (or of run.json), or None."""
    if value is None:
        return None
    if key == "input_shape":
        ok = isinstance(value, list) and 1 <= len(value) <= 8 and all(
            _is_int(d) and 1 <= d <= 2**31 for d in value)
        return None if ok else "must be a list of 1 to 8 positive integers"
    if key == "input_dtype":
        return None if value in ("float32", "int64") else "must be \"float32\" or \"int64\""
    if key in ("task", "name"):
        return None if isinstance(value, str) else "must be a string"
    if key == "class_names":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else "must be a list of strings"
    if key in ("normalization", "output_normalization"):
        ok = (isinstance(value, dict) and set(value) == {"scale", "mean", "std"}
              and _numbers(value["scale"]) and not isinstance(value["scale"], list)
              and all(isinstance(value[k], list) and value[k] and _numbers(value[k]) for k in ("mean", "std"))
              and len(value["mean"]) == len(value["std"]) and all(s != 0 for s in value["std"]))
        return None if ok else "must be an object of a finite scale and equal lists of mean and non-zero std"
    if key == "preprocessing":
        return preprocessing_problem(value)
    if key in ("metrics", "run", "dataset"):
        return None if isinstance(value, dict) else "must be an object"
    if key == "trained":
        return None if isinstance(value, bool) else "must be true or false"
    return None


#: The resamplings of torchvision's weights metadata (the image pipeline's).
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
#: The largest side a resize or crop may ask for (a bundle from anyone must
#: not make ``guidl predict`` allocate without bound).
MAX_IMAGE_SIDE = 8192
PREPROCESSING_KEYS = ("resize", "crop", "mean", "std", "interpolation")


def preprocessing_problem(value: Any) -> str | None:
    """Why ``value`` is not a backbone's image preprocessing (``images.
    Preprocessing.to_dict()``: resize the shorter side, crop the centre,
    scale to 0..1, subtract the mean and divide by the std per channel), or None."""
    if not isinstance(value, dict) or set(value) != set(PREPROCESSING_KEYS):
        return f"must be an object of {', '.join(PREPROCESSING_KEYS)}"
    for key in ("resize", "crop"):
        if not (_is_int(value[key]) and 1 <= value[key] <= MAX_IMAGE_SIDE):
            return f"{key} must be a whole number of pixels from 1 to {MAX_IMAGE_SIDE}"
    mean, std = value["mean"], value["std"]
    if not (isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std)
            and len(mean) in (1, 3) and _numbers(mean) and _numbers(std)):
        return "mean and std must be lists of 1 or 3 finite numbers each"
    if not all(-1000 <= m <= 1000 for m in mean) or not all(0 < s <= 1000 for s in std):
        return "mean must lie within -1000..1000 and std within 0..1000 (above 0)"
    if value["interpolation"] not in INTERPOLATIONS:
        return f"interpolation must be one of {', '.join(INTERPOLATIONS)}"
    return None


def check_meta(meta: Any, source: str) -> dict[str, Any]:
    """``meta`` when it is a guidl bundle's metadata of the right types."""
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(source, "meta.json does not describe a guidl bundle")
    for key, value in meta.items():
        problem = _check_field(key, value)
        if problem:
            raise BundleError(source, f"meta.json's {key} {problem}")
    return meta


def check_fields(record: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    """The first problem with ``keys`` of a record (run.json's), or None."""
    for key in keys:
        problem = _check_field(key, record.get(key))
        if problem:
            return f"{key} {problem}"
    dataset = record.get("dataset")
    if isinstance(dataset, dict):
        for key in ("task", "class_names"):
            problem = _check_field(key, dataset.get(key))
            if problem:
                return f"dataset.{key} {problem}"
    return None
