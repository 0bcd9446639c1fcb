"""Damaged and hostile zip files made from a good bundle, for the tests of
bundle reading (``pythonpath`` includes tests/)."""

import json
import struct
import zipfile
from pathlib import Path

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"


def _headers(data: bytes, member: str) -> tuple[int, int]:
    """The offsets of ``member``'s local header and central directory entry."""
    name = member.encode()
    central = data.find(_CENTRAL)
    while central != -1:
        length = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46:central + 46 + length] == name:
            local = struct.unpack_from("<I", data, central + 42)[0]
            return local, central
        central = data.find(_CENTRAL, central + 4)
    raise KeyError(member)


def _patch(data: bytes, member: str, local_field: int, central_field: int, fmt: str, value) -> bytes:
    out = bytearray(data)
    local, central = _headers(data, member)
    struct.pack_into(fmt, out, local + local_field, value)
    struct.pack_into(fmt, out, central + central_field, value)
    return bytes(out)


def with_flags(data: bytes, member: str, flags: int) -> bytes:
    return _patch(data, member, 6, 8, "<H", flags)


def with_method(data: bytes, member: str, method: int) -> bytes:
    return _patch(data, member, 8, 10, "<H", method)


def with_declared_size(data: bytes, member: str, size: int) -> bytes:
    """``member`` claiming to inflate to ``size`` bytes (its data unchanged)."""
    return _patch(data, member, 22, 24, "<I", size)


def with_garbage(data: bytes, member: str) -> bytes:
    """``member``'s compressed bytes replaced by bytes no inflater accepts."""
    local, _ = _headers(data, member)
    name_length, extra_length = struct.unpack_from("<HH", data, local + 26)
    compressed = struct.unpack_from("<I", data, local + 18)[0]
    start = local + 30 + name_length + extra_length
    return data[:start] + b"\xff" * compressed + data[start + compressed:]


def rewritten(bundle: Path, target: Path, *, meta: dict | None = None, project: dict | None = None,
              extra: dict[str, bytes] | None = None, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A copy of ``bundle`` with some members replaced or added."""
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(target, "w", compression) as archive:
        for item in source.infolist():
            payload = source.read(item.filename)
            if item.filename == "meta.json" and meta is not None:
                payload = json.dumps(meta).encode()
            if item.filename == "project.guidl.json" and project is not None:
                payload = json.dumps(project).encode()
            archive.writestr(item.filename, payload)
        for name, payload in (extra or {}).items():
            archive.writestr(name, payload)
    return target


def damaged_bundles(bundle: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    """Each kind of damaged bundle made from ``bundle``, with the words the
    refusal must contain."""
    data = bundle.read_bytes()
    made = {
        "truncated": (data[: len(data) // 2], "damaged or truncated"),
        "deflate garbage": (with_garbage(data, "model.safetensors"), "damaged"),
        "encrypted": (with_flags(data, "model.safetensors", 0x1), "is encrypted"),
        "unknown compression": (with_method(data, "meta.json", 99), "unknown compression method"),
        "lying size": (with_declared_size(data, "model.safetensors", 10), "damaged"),
    }
    out = {}
    for kind, (payload, words) in made.items():
        path = folder / f"{kind.replace(' ', '_')}.guidl"
        path.write_bytes(payload)
        out[kind] = (path, words)
    return out
