"""Only regular files are read, never more than a limit: a FIFO, a device or a
huge file as a project gets a clear error at once instead of a hang."""

import os

import pytest

from guidl import spec
from guidl.spec import ProjectError, UnreadableFileError, read_regular_file
from helpers import no_hang


def test_a_fifo_as_project_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.guidl.json"
    os.mkfifo(fifo)
    with no_hang(5), pytest.raises(ProjectError) as caught:
        spec.load(fifo)
    assert caught.value.lines() == [f"{fifo}: is a named pipe (FIFO), not a regular file"]


def test_a_device_as_project_is_refused_before_reading_it():
    with no_hang(5), pytest.raises(ProjectError) as caught:
        spec.load("/dev/zero")
    assert caught.value.lines() == ["/dev/zero: is a character device, not a regular file"]


def test_read_regular_file_reads_up_to_its_limit_and_no_further(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 100)
    assert read_regular_file(path, 100, "a test file") == b"x" * 100
    with pytest.raises(UnreadableFileError, match=r"is 101 B; a test file is at most 100 B"):
        path.write_bytes(b"x" * 101)
        read_regular_file(path, 100, "a test file")
    with pytest.raises(UnreadableFileError, match="is a folder"):
        read_regular_file(tmp_path, 100, "a test file")
    with pytest.raises(UnreadableFileError, match="no such file"):
        read_regular_file(tmp_path / "missing", 100, "a test file")
    with pytest.raises(UnreadableFileError, match=r"^'a\\x00b': is not a file name \(it holds a NUL"):
        read_regular_file("a\0b", 100, "a test file")
