"""Data files that are not what they claim: named pipes, devices, huge or
damaged archives. Each is a clear ``DatasetError`` at once, never a hang, a
traceback or a machine out of memory."""

import io
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from guidl.engine import data as data_module
from guidl.engine.data import DatasetError, load_raw
from guidl.spec import Data
from helpers import no_hang


@pytest.mark.parametrize("dataset", ["text", "csv", "npz"])
def test_a_fifo_as_data_path_is_refused_without_waiting_for_a_writer(tmp_path, dataset):
    fifo = tmp_path / f"pipe.{dataset}"
    os.mkfifo(fifo)
    with no_hang(5), pytest.raises(DatasetError) as caught:
        load_raw(Data(dataset, {"path": str(fifo)}))
    assert str(caught.value) == f"{dataset}: {fifo}: is a named pipe (FIFO), not a regular file"


def test_a_fifo_among_the_images_of_a_folder_is_refused(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        Image.new("L", (4, 4), 80).save(tmp_path / cls / "one.png")
    os.mkfifo(tmp_path / "b" / "two.png")
    with no_hang(5), pytest.raises(DatasetError, match=r"two.png: is a named pipe \(FIFO\), not a regular file"):
        load_raw(Data("image_folder", {"path": str(tmp_path), "image_size": 4, "grayscale": True}))


def test_a_device_as_data_path_is_refused_before_reading_it():
    with no_hang(5), pytest.raises(DatasetError, match="/dev/zero: is a character device, not a regular file"):
        load_raw(Data("text", {"path": "/dev/zero"}))


def test_a_text_file_over_the_limit_is_refused_without_reading_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "MAX_TEXT_BYTES", 1000)
    path = tmp_path / "big.txt"
    path.write_text("a" * 1001)
    with pytest.raises(DatasetError, match=r"big.txt: is 1001 B; a text file is at most 1000 B"):
        load_raw(Data("text", {"path": str(path), "seq_len": 8}))


# -- .npz archives ---------------------------------------------------------------

def _npz_with_header(path, shape, payload: bytes):
    """An .npz whose x.npy declares ``shape`` (float64) but holds ``payload``."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", header.getvalue() + payload)
        buffer = io.BytesIO()
        np.save(buffer, np.zeros(2, dtype=np.int64))
        archive.writestr("y.npy", buffer.getvalue())


def test_an_npz_declaring_a_huge_array_it_does_not_hold_is_refused(tmp_path):
    path = tmp_path / "liar.npz"
    _npz_with_header(path, (2**40,), b"\0" * 64)  # 8 TiB declared, 64 bytes held
    with pytest.raises(DatasetError, match=r"liar.npz is damaged or truncated: 'x' declares "
                                           r"8,796,093,022,208 bytes but holds"):
        load_raw(Data("npz", {"path": str(path)}))


def test_a_small_npz_that_inflates_past_memory_is_refused_before_inflating(tmp_path, monkeypatch):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((2000, 1000), dtype=np.float32), y=np.zeros(2000, dtype=np.int64))
    assert path.stat().st_size < 40_000  # 8 MB of samples in a few KB
    monkeypatch.setattr(data_module, "available_memory_bytes", lambda: 16 * 2**20)

    def inflate(*args, **kwargs):
        raise AssertionError("an array was inflated before its size was checked")

    monkeypatch.setattr(np.lib.format, "read_array", inflate)
    monkeypatch.setattr(np, "load", inflate)
    with pytest.raises(DatasetError) as caught:
        load_raw(Data("npz", {"path": str(path)}))
    message = str(caught.value)
    assert "bomb.npz declares arrays of 7.64 MB (x (2000, 1000) float32, y (2000,) int64)" in message
    assert "16.00 MB is available" in message


def _valid_npz(path):
    rng = np.random.default_rng(0)
    np.savez_compressed(path, x=rng.normal(size=(200, 3)).astype(np.float32), y=np.arange(200) % 2)
    return path.read_bytes()


def _corrupt_deflate(raw: bytes) -> bytes:
    data = bytearray(raw)
    start = data.index(b"x.npy") + 5  # the first member's compressed bytes follow its name
    data[start + 10: start + 400] = bytes(range(256)) + bytes(range(134))
    return bytes(data)


def _unknown_method(raw: bytes) -> bytes:
    data = bytearray(raw)
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local and central headers
        at = data.index(signature)
        while at >= 0:
            data[at + offset: at + offset + 2] = (99).to_bytes(2, "little")
            at = data.find(signature, at + 4)
    return bytes(data)


@pytest.mark.parametrize("damage", [
    lambda raw: raw[: len(raw) // 2],  # truncated: no central directory
    lambda raw: raw[:-30],  # truncated inside the central directory
    _corrupt_deflate,  # deflate garbage
    _unknown_method,  # a compression Python cannot read
    lambda raw: b"not a zip at all" * 10,
], ids=["half", "tail", "deflate-garbage", "unknown-compression", "not-zip"])
def test_a_truncated_or_corrupt_npz_gets_a_clear_message(tmp_path, damage):
    path = tmp_path / "arrays.npz"
    path.write_bytes(damage(_valid_npz(path)))
    with pytest.raises(DatasetError, match=r"^npz: .*arrays.npz (is not a readable .npz file|is damaged|stores 'x' with method 99)"):
        load_raw(Data("npz", {"path": str(path)}))


# -- CSV ---------------------------------------------------------------------------

def test_csv_that_is_not_utf8_or_has_a_giant_field_gets_a_clear_message(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("a,b,label\n1,2,caf\xe9\n3,4,th\xe9\n5,6,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"^csv: .*latin1.csv is not UTF-8 text; save it as UTF-8$"):
        load_raw(Data("csv", {"path": str(path)}))
    path = tmp_path / "giant.csv"
    path.write_text("a,b,label\n1,2,x\n3," + "9" * 200_000 + ",y\n5,6,x\n")
    with pytest.raises(DatasetError, match=r"giant.csv: line 3 holds a field longer than 128 KiB"):
        load_raw(Data("csv", {"path": str(path)}))


# -- torchvision -------------------------------------------------------------------

def test_a_torchvision_dataset_without_download_creates_no_folder(tmp_path):
    root = tmp_path / "nowhere" / "datasets"
    with pytest.raises(DatasetError, match="download is off"):
        load_raw(Data("mnist", {"root": str(root), "download": False}))
    assert not (tmp_path / "nowhere").exists()


def test_long_values_from_a_project_are_cut_in_data_messages(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("a,b,label\n1,2,x\n3,4,y\n5,6,x\n")
    long = "c" * 1_000_000
    for params, dataset in (({"path": str(path), "target": long}, "csv"),
                            ({"path": long}, "image_folder"), ({"path": "/" + long}, "text")):
        with pytest.raises(DatasetError) as caught:
            load_raw(Data(dataset, params))
        message = str(caught.value)
        assert len(message) < 1000 and "(1,000,00" in message, message[:300]


def test_a_torchvision_file_that_is_a_fifo_or_a_device_is_refused(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"")
    (raw / "train-images-idx3-ubyte").symlink_to("/dev/zero")
    with no_hang(5), pytest.raises(DatasetError, match=r"^mnist: .*train-images-idx3-ubyte: is a character device"):
        load_raw(Data("mnist", {"root": str(tmp_path), "download": False}))
    (raw / "train-images-idx3-ubyte").unlink()
    os.mkfifo(raw / "train-images-idx3-ubyte")
    with no_hang(5), pytest.raises(DatasetError, match=r"^mnist: .*train-images-idx3-ubyte: is a named pipe"):
        load_raw(Data("mnist", {"root": str(tmp_path), "download": False}))


def test_cifar_batches_are_spelled_out():
    assert data_module._torchvision_files("cifar10")[:6] == [
        f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)] + ["cifar-10-batches-py/test_batch"]


@pytest.mark.parametrize("method,name", [(zipfile.ZIP_BZIP2, "bzip2"), (zipfile.ZIP_LZMA, "LZMA")])
def test_an_npz_compressed_so_a_few_kb_inflate_to_gigabytes_at_once_is_refused(tmp_path, method, name):
    # Python inflates these a whole input chunk at a time: a 3.5 KB bzip2 member
    # declaring 4 GiB of zeros took 71 s and 8.7 GB just to read its header.
    path = tmp_path / "packed.npz"
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for key, array in (("x", np.zeros((10, 2), np.float32)), ("y", np.zeros(10, np.int64))):
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(f"{key}.npy", buffer.getvalue())
    with pytest.raises(DatasetError, match=f"packed.npz stores 'x' with {name} compression"):
        load_raw(Data("npz", {"path": str(path)}))


@pytest.mark.parametrize("dataset", ["text", "csv", "npz", "image_folder"])
def test_a_path_holding_a_nul_character_is_a_clear_error(dataset):
    with pytest.raises(DatasetError, match="is not a (file name|folder)"):
        load_raw(Data(dataset, {"path": "data\0.bin"}))


def test_every_npz_member_read_is_closed(tmp_path, monkeypatch):
    path = tmp_path / "data.npz"
    np.savez_compressed(path, x=np.ones((6, 2), dtype=np.float32), y=np.arange(6) % 2)
    opened = []
    real_open = zipfile.ZipFile.open

    def recording(self, *args, **kwargs):
        member = real_open(self, *args, **kwargs)
        opened.append(member)
        return member

    monkeypatch.setattr(zipfile.ZipFile, "open", recording)
    raw = load_raw(Data("npz", {"path": str(path)}))
    assert raw.x.shape == (6, 2) and opened
    assert all(member.closed for member in opened)


def test_a_csv_value_beyond_float32_is_refused_by_its_row(tmp_path):
    # It trained as infinity and ended in "the loss became nan ... lower the learning rate".
    path = tmp_path / "big.csv"
    path.write_text("a,b,label\n1,2,0\n3,1e39,1\n5,6,0\n7,8,1\n")
    with pytest.raises(DatasetError, match=r"csv: row 3, column 'b' holds '1e39', beyond what training "
                                           r"computes with \(float32: up to 3.4e\+38\)"):
        load_raw(Data("csv", {"path": str(path)}))
    path.write_text("a,b,value\n1,2,0.5\n3,1,-1e300\n5,6,0.25\n7,8,1.5\n")
    with pytest.raises(DatasetError, match=r"csv: row 3, column 'value' holds '-1e300', beyond"):
        load_raw(Data("csv", {"path": str(path), "task": "regression"}))
