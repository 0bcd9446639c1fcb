import gzip
import struct
import time
import urllib.request
from urllib.error import URLError

import numpy as np
import pytest
import torch

from guidl.engine.augment import augment_batch
from guidl.engine.data import DatasetError, decode_text, encode_text, load_raw, prepare
from guidl.engine.trainer import Trainer
from guidl.registry import DATASETS
from guidl.spec import Component, Data, Layer, Model
from helpers import small_project

BUILTIN = [e.name for e in DATASETS if e.info["source"] == "builtin"]


@pytest.mark.parametrize("name", BUILTIN)
def test_every_offline_dataset_loads_and_describes_itself(name):
    params = {"max_samples": 500} if name == "text" else {}
    data = prepare(Data(name, params, val_fraction=0.2))
    info = data.info
    entry = DATASETS.get(name)
    if "input_shape" in entry.info:
        assert list(info.input_shape) == entry.info["input_shape"]
    assert info.task == "classification" and info.num_classes == len(info.class_names)
    assert info.sizes["train"] + info.sizes["val"] == len(data.train) + len(data.val)
    assert abs(info.sizes["val"] / (info.sizes["train"] + info.sizes["val"]) - 0.2) < 0.01
    assert sum(info.class_counts) == info.sizes["train"]
    previews = data.preview(4)
    assert len(previews) == 4 and all(label in info.class_names for _, label in previews)


def test_split_is_stratified_seeded_and_normalised_on_train_only():
    data = prepare(Data("digits", {}, val_fraction=0.25), seed=5)
    again = prepare(Data("digits", {}, val_fraction=0.25), seed=5)
    other = prepare(Data("digits", {}, val_fraction=0.25), seed=6)
    assert torch.equal(data.val.y, again.val.y) and not torch.equal(data.val.x, other.val.x)
    train_counts = torch.bincount(data.train.y, minlength=10).double()
    val_counts = torch.bincount(data.val.y, minlength=10).double()
    ratio = val_counts / (train_counts + val_counts)
    assert torch.all((ratio - 0.25).abs() < 0.03), ratio
    assert abs(float(data.train.x.mean())) < 1e-5 and abs(float(data.train.x.std()) - 1) < 1e-2
    assert data.normalization.scale == pytest.approx(1 / 255)
    assert abs(float(data.val.x.mean())) > 1e-5  # statistics of the train split, not re-fitted


def test_text_is_encoded_to_the_96_token_vocabulary():
    ids = encode_text("Hi\n\u00e9!")
    assert ids.tolist() == [41, 74, 0, 1, 2] and decode_text(ids) == "Hi\n !"
    raw = load_raw(Data("text", {"seq_len": 8, "stride": 4, "max_samples": 10}))
    assert raw.x.shape == (10, 8) and raw.y.shape == (10,)
    assert decode_text(raw.x[1][4:]) + decode_text([raw.y[1]]) == decode_text(raw.x[2][:5])


# -- the user's own data ------------------------------------------------------------

def test_csv_with_string_labels_and_its_errors(tmp_path):
    rows = ["width,height,kind"] + [f"{i % 7},{i % 5 + 0.5},{'cat' if i % 2 else 'dog'}"
                                     for i in range(40)]
    path = tmp_path / "pets.csv"
    path.write_text("\n".join(rows) + "\n")
    raw = load_raw(Data("csv", {"path": str(path)}))
    assert raw.task == "classification" and raw.class_names == ["cat", "dog"]
    assert raw.x.shape == (40, 2) and set(raw.y.tolist()) == {0, 1}
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,y\n1,2,0\n3,,1\n")
    with pytest.raises(DatasetError, match=r"csv: row 3, column 'b' is empty"):
        load_raw(Data("csv", {"path": str(bad)}))
    bad.write_text("a,b,y\n1,2,0\n3,x4,1\n")
    with pytest.raises(DatasetError, match=r"csv: row 3, column 'b' holds 'x4', not a number"):
        load_raw(Data("csv", {"path": str(bad)}))
    with pytest.raises(DatasetError, match=r"no column 'label'; the columns are a, b, y"):
        load_raw(Data("csv", {"path": str(bad), "target": "label"}))
    with pytest.raises(DatasetError, match="csv: no such file"):
        load_raw(Data("csv", {"path": str(tmp_path / "none.csv")}))


def _write_image_folder(root):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, (name, bright) in enumerate([("dark", False), ("light", True)]):
        (root / name).mkdir(parents=True)
        for i in range(30):
            pixels = rng.integers(0, 90, (12, 10, 3)) + (150 if bright else 0)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")


def test_image_folder_loads_resizes_and_trains(tmp_path):
    _write_image_folder(tmp_path / "images")
    (tmp_path / "images" / "light" / "notes.txt").write_text("not an image")
    project = small_project(
        model=Model([Layer("Conv2d", {"out_channels": 4, "kernel_size": 3}), Layer("ReLU"),
                     Layer("Flatten"), Layer("Linear", {"out_features": 2})]),
        data=Data("image_folder", {"path": str(tmp_path / "images"), "image_size": [8, 8],
                                   "grayscale": True}, val_fraction=0.2, batch_size=8),
        training__scheduler=None, training__epochs=5)
    result = Trainer(project).fit()
    assert result.evaluation.class_names == ["dark", "light"]
    assert result.history[-1].val_accuracy == 1.0
    (tmp_path / "images" / "light" / "broken.png").write_bytes(b"not a png")
    info = prepare(project).info  # a broken file is skipped and counted, not fatal
    assert info.skipped == 1 and "broken.png" in info.notes[0]


def test_npz_with_its_own_test_split_and_no_pickles(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    path = tmp_path / "arrays.npz"
    np.savez(path, x=x[:240], y=y[:240], x_test=x[240:], y_test=y[240:],
             class_names=np.array(["below", "above"]))
    project = small_project(
        model=Model([Layer("Linear", {"out_features": 8}), Layer("ReLU"), Layer("Linear", {"out_features": 2})]),
        data=Data("npz", {"path": str(path)}, val_fraction=0.2, batch_size=16),
        training__scheduler=None, training__epochs=15)
    result = Trainer(project).fit()
    assert result.evaluation_split == "test" and sum(result.evaluation.support) == 60
    assert result.evaluation.accuracy > 0.9
    assert result.evaluation.class_names == ["below", "above"]
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    with pytest.raises(DatasetError, match="will not load"):
        load_raw(Data("npz", {"path": str(pickled)}))


# -- torchvision ------------------------------------------------------------------

def _idx(path, array):
    magic = {1: 0x801, 3: 0x803}[array.ndim]
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _fake_raw_files(folder, n_train=60, n_test=20):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)))
        _idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise URLError("the test refuses all network access")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_torchvision_files_already_on_disk_are_used_offline(tmp_path, no_network, name, folder):
    _fake_raw_files(tmp_path / folder / "raw")
    data = prepare(Data(name, {"root": str(tmp_path), "download": True}, val_fraction=0.1))
    assert data.info.sizes == {"train": 54, "val": 6, "test": 20}
    assert data.info.input_shape == (1, 28, 28) and data.info.num_classes == 10
    assert data.evaluation_split[0] == "test"


def test_a_failed_download_says_what_to_do_within_seconds(tmp_path, no_network):
    start = time.perf_counter()
    with pytest.raises(DatasetError) as caught:
        load_raw(Data("cifar10", {"root": str(tmp_path / "empty")}))
    assert time.perf_counter() - start < 10
    message = str(caught.value)
    assert message.startswith("cifar10: its files are not there and the download failed")
    assert str(tmp_path / "empty") in message and "cifar-10-batches-py/test_batch" in message
    assert "mnist_sample, digits, moons" in message
    with pytest.raises(DatasetError, match="download is off"):
        load_raw(Data("mnist", {"root": str(tmp_path / "empty"), "download": False}))


# -- augmentation -----------------------------------------------------------------

def test_augmentation_keeps_shapes_and_is_seeded():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    settings = {"crop_padding": 1, "hflip": True, "rotation": 10.0}
    a = augment_batch(x, settings, torch.Generator().manual_seed(0))
    b = augment_batch(x, settings, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    flipped = augment_batch(x, {"hflip": True}, torch.Generator().manual_seed(1))
    for original, out in zip(x, flipped):
        assert torch.equal(out, original) or torch.equal(out, original.flip(-1))
    cropped = augment_batch(x, {"crop_padding": 2}, torch.Generator().manual_seed(2))
    assert set(cropped.unique().tolist()) <= set(x.unique().tolist()) | {0.0}


def test_augmented_training_runs(digits_data):
    project = small_project(data__augment={"crop_padding": 1, "hflip": False, "rotation": 5.0},
                            training__epochs=2)
    result = Trainer(project, data=digits_data).fit()
    assert result.history[-1].val_accuracy > 0.7


def test_csv_problems_found_by_review(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,y\n\n1,2,0\n\n3,oops,1\n")
    with pytest.raises(DatasetError, match=r"row 5, column 'b'"):  # the file's own line number
        load_raw(Data("csv", {"path": str(path)}))
    path.write_text("a,a,y\n1,2,0\n3,4,1\n")
    with pytest.raises(DatasetError, match="the header names 'a' more than once"):
        load_raw(Data("csv", {"path": str(path)}))
    path.write_text("a,b,y\n1,2,cat\n3,4,cat\n")
    with pytest.raises(DatasetError, match="holds one class only"):
        load_raw(Data("csv", {"path": str(path)}))
    with pytest.raises(DatasetError, match="the delimiter must be one character"):
        load_raw(Data("csv", {"path": str(path), "delimiter": ";;"}))


def test_npz_problems_found_by_review(tmp_path):
    single = tmp_path / "single.npz"
    with open(single, "wb") as handle:
        np.save(handle, np.zeros((3, 2)))
    with pytest.raises(DatasetError, match="holds one array, not an .npz archive"):
        load_raw(Data("npz", {"path": str(single)}))
    nan = tmp_path / "nan.npz"
    np.savez(nan, x=np.array([[1.0, np.nan], [0.0, 1.0]]), y=np.array([0, 1]))
    with pytest.raises(DatasetError, match="x holds NaN or infinite values"):
        load_raw(Data("npz", {"path": str(nan)}))
    mismatch = tmp_path / "mismatch.npz"
    np.savez(mismatch, x=np.zeros((4, 3)), y=np.array([0, 1, 0, 1]), x_test=np.zeros((2, 5)),
             y_test=np.array([0, 1]))
    with pytest.raises(DatasetError, match="x_test has shape"):
        load_raw(Data("npz", {"path": str(mismatch)}))
    regression = tmp_path / "regression.npz"
    np.savez(regression, x=np.zeros((200, 2)), y=np.arange(200) * 7)
    assert load_raw(Data("npz", {"path": str(regression)})).task == "regression"
