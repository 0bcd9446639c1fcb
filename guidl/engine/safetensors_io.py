"""safetensors files whose bytes depend only on their contents.

``safetensors`` keeps a file's ``__metadata__`` in a hash map, so two writes
of the same weights with the same metadata may order its keys differently
and differ byte for byte (the tensors' own entries are ordered by the
library). These functions write through the library and then put the JSON
header in one canonical form: keys sorted, no spaces, padded with spaces to
the library's 8-byte alignment (the format allows trailing spaces). The
tensor data is not touched, so the file reads back exactly as written.

Every safetensors file guidl writes goes through here: the run folder's
final weights, the exports and the bundle's members.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Mapping

import torch

_LENGTH = struct.Struct("<Q")
_ALIGN = 8


def _canonical(header: bytes, room: int | None = None) -> bytes:
    """``header`` (the library's JSON) with sorted keys, padded with spaces
    to ``room`` bytes when given (and it fits), else to the alignment."""
    text = json.dumps(json.loads(header), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")
    size = room if room is not None and len(text) <= room else -(-len(text) // _ALIGN) * _ALIGN
    return text + b" " * (size - len(text))


def save(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """``safetensors.torch.save`` with a reproducible header."""
    from safetensors.torch import save as library_save

    data = library_save(dict(tensors), metadata=dict(metadata) if metadata else None)
    (length,) = _LENGTH.unpack_from(data)
    header = _canonical(data[8:8 + length], length)
    return _LENGTH.pack(len(header)) + header + data[8 + length:]


def save_file(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike[str],
              metadata: Mapping[str, str] | None = None) -> None:
    """``safetensors.torch.save_file`` with a reproducible header. The
    header is rewritten in place (the same JSON in another order is no
    longer), so large weights are never held twice in memory."""
    from safetensors.torch import save_file as library_save_file

    library_save_file(dict(tensors), os.fspath(path), metadata=dict(metadata) if metadata else None)
    with open(path, "r+b") as handle:
        (length,) = _LENGTH.unpack(handle.read(8))
        header = _canonical(handle.read(length), length)
        if len(header) == length:
            handle.seek(8)
            handle.write(header)
            return
        rest = handle.read()  # a longer header (never seen): write the file again whole
        handle.seek(0)
        handle.write(_LENGTH.pack(len(header)) + header + rest)
        handle.truncate()
