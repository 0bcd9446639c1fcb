"""Image folders: bad files, the 8-bit cache, backbone preprocessing, class
balance, and a small training run on photos."""

import struct
import zlib

import numpy as np
import pytest
import torch

from guidl.engine.data import DatasetError, expected_input, prepare
from guidl.engine.trainer import Trainer
from guidl.spec import Data, Layer
from helpers import small_project
from test_image_stream import image_project, write_photos


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int) -> bytes:
    """A PNG of a few dozen bytes that declares side x side pixels."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _chunk(b"IEND", b""))


def test_corrupt_files_and_a_decompression_bomb_are_skipped_and_counted(tmp_path):
    root = write_photos(tmp_path / "photos", per_class=6)
    (root / "red" / "noise.jpg").write_bytes(np.random.default_rng(1).bytes(500))
    (root / "blue" / "notes.png").write_text("a text file renamed")
    # 12,000 x 12,000 pixels: over PIL's limit, under the size PIL itself refuses.
    (root / "blue" / "bomb.png").write_bytes(bomb_png(12_000))
    for cache in ("memory", "stream"):
        data = prepare(image_project(root, None, cache=cache))
        assert data.info.skipped == 3
        assert sum(data.info.sizes.values()) == 12
        notes = [note for note in data.info.notes if "skipped" in note]
        assert len(notes) == 1 and notes[0].startswith("image_folder: skipped 3 files that are not "
                                                       "readable images (first: ")
    from guidl.engine.images import SkippedImage, check_header

    with pytest.raises(SkippedImage, match="decompression bomb: it declares 12000x12000 pixels"):
        check_header("bomb.png", bomb_png(12_000))
    trainer = Trainer(image_project(root, None, cache="stream", workers=0), epochs=1)
    trainer.fit()
    assert any("skipped 3 files" in note for note in trainer.notes)
    for path in (root / "red").iterdir():
        path.write_bytes(b"broken")
    with pytest.raises(DatasetError, match="no readable images in red"):
        prepare(image_project(root, None))


def test_cached_images_are_8_bit(tmp_path):
    root = write_photos(tmp_path / "photos", per_class=6)
    project = image_project(root, None, cache="memory")
    # The shape is known before the images load: a reopened project shows its shapes at once.
    assert expected_input(project) == ((3, 16, 16), "float32")
    data = prepare(project)
    assert data.info.input_shape == (3, 16, 16)
    project.data.params["grayscale"] = True
    assert expected_input(project) == ((1, 16, 16), "float32")
    cache = data.train.cache
    assert cache.dtype == torch.uint8 and cache.shape[1:] == (3, 16, 16)
    assert cache.untyped_storage().nbytes() == len(data.train) * 3 * 16 * 16
    assert data.train.take([0]).dtype == torch.float32 and data.preprocessing is None
    # Without a backbone the statistics are the training images' own, as before.
    pixels = data.train.cache.to(torch.float64) / 255
    assert data.normalization.mean == pytest.approx(pixels.mean(dim=(0, 2, 3)).tolist())


def test_a_backbone_brings_its_preprocessing(tmp_path):
    from guidl.registry import LAYERS

    if "resnet18" not in LAYERS:
        pytest.skip("the backbone layers are not in the catalogue yet")
    from guidl.engine.images import preprocessing_of

    root = write_photos(tmp_path / "photos", per_class=3, size=(60, 90))
    project = image_project(root, {"hflip": True}, cache="memory")
    project.model.layers = [Layer("resnet18", {"weights": "none"}), Layer("Linear", {"out_features": 2})]
    preprocessing = preprocessing_of(project)
    assert (preprocessing.resize, preprocessing.crop) == (256, 224)
    assert expected_input(project) == ((3, 224, 224), "float32")  # known before the images load
    data = prepare(project)
    assert data.info.input_shape == (3, 224, 224) and data.train.cache.shape[1:] == (3, 256, 256)
    assert data.preprocessing == preprocessing.to_dict()
    assert data.normalization.mean == pytest.approx([0.485, 0.456, 0.406])
    # Evaluation: the centre crop of the stored image, normalised like torchvision's weights expect.
    image = data.val.cache[0]
    expected = (image[:, 16:240, 16:240].float() / 255 - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) \
        / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    assert torch.allclose(data.val.take([0])[0], expected, atol=1e-5)
    assert torch.allclose(preprocessing.eval_transform()(image), expected, atol=1e-5)


def test_class_weights_reach_the_loss_and_the_sampler_balances_the_order(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(220, 4)).astype(np.float32)
    y = np.array([0] * 200 + [1] * 20)
    np.savez(tmp_path / "few.npz", x=x, y=y)
    project = small_project(
        data=Data("npz", {"path": str(tmp_path / "few.npz")}, val_fraction=0.0, batch_size=32),
        model=small_project().model, training__scheduler=None, training__epochs=1)
    project.model.layers = [Layer("Linear", {"out_features": 2})]
    plain = Trainer(project)
    plain.setup()
    assert plain.loss_fn.weight is None
    project.data.balance = "class_weights"
    weighted = Trainer(project)
    weighted.setup()
    assert weighted.loss_fn.weight.tolist() == pytest.approx([220 / (2 * 200), 220 / (2 * 20)])
    project.data.balance = "sampler"
    sampled = Trainer(project)
    sampled.setup()
    assert sampled.loss_fn.weight is None
    drawn = torch.cat([sampled._epoch_order(220) for _ in range(5)])
    share = float((sampled.data.train.y[drawn] == 1).float().mean())
    assert len(drawn) == 1100 and 0.4 < share < 0.6
    plain_order = torch.cat([plain._epoch_order(220) for _ in range(5)])
    assert float((plain.data.train.y[plain_order] == 1).float().mean()) == pytest.approx(20 / 220)
    assert sampled.fit().history[0].train_loss > 0


def test_a_small_network_learns_red_from_blue_photos_streamed_from_disk(tmp_path):
    root = write_photos(tmp_path / "photos", per_class=20)
    project = image_project(root, {"hflip": True, "random_resized_crop": True, "crop_scale": 0.5},
                            cache="stream", workers=0)
    project.training.epochs = 4
    project.data.batch_size = 8
    result = Trainer(project).fit()
    assert result.history[-1].val_accuracy >= 0.8
    assert result.evaluation.accuracy >= 0.8


def test_in_memory_datasets_say_the_image_folder_augmentations_do_not_apply():
    project = small_project(training__epochs=1)
    project.data.augment = {"hflip": True, "color_jitter": 0.3}
    trainer = Trainer(project)
    trainer.setup()
    assert any(note.startswith("random_resized_crop and color_jitter apply to image folders")
               for note in trainer.notes)


def test_image_folders_and_the_data_module_import_each_other_one_way_only():
    """DESIGN.md: no module imports a module that imports it back. ``data``
    hands image folders to ``images``; both take the prepared form from
    ``prepared``, and the image suffixes come from one place (the spec)."""
    import grimp

    from guidl.engine import data, images
    from guidl.spec import templates

    graph = grimp.build_graph("guidl")
    assert graph.find_shortest_chain(importer="guidl.engine.images", imported="guidl.engine.data") is None
    assert graph.find_shortest_chain(importer="guidl.engine.prepared", imported="guidl.engine.data") is None
    assert graph.direct_import_exists(importer="guidl.engine.data", imported="guidl.engine.images")
    assert data.IMAGE_SUFFIXES is images.IMAGE_SUFFIXES is templates.IMAGE_SUFFIXES
    assert data.MAX_IMAGE_FILE_BYTES is images.MAX_IMAGE_FILE_BYTES


def test_decoding_threads_silence_the_decoders_and_leave_other_warnings_shown(tmp_path):
    """Decoding threads each wrapped a decode in warnings.catch_warnings, which
    is not thread-safe: interleaved restores left every warning of the process
    ignored. PIL's warning about a large image stays unseen (it is skipped)."""
    import warnings

    root = write_photos(tmp_path / "photos", per_class=60, size=(12, 12))
    (root / "blue" / "bomb.png").write_bytes(bomb_png(12_000))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert prepare(image_project(root, None, cache="memory", workers=4)).info.skipped == 1
        warnings.warn("after decoding", UserWarning)
    assert [str(w.message) for w in caught] == ["after decoding"]


def test_a_folder_named_like_an_image_is_not_read_as_one(tmp_path):
    """The training data lists the files the New from Pretrained dialog counts."""
    from guidl.spec.templates import scan_image_folder

    root = write_photos(tmp_path / "photos", per_class=4)
    (root / "red" / "album.jpg").mkdir()
    data = prepare(image_project(root, None, cache="memory"))
    assert sum(data.info.sizes.values()) == 8 == scan_image_folder(root).images
