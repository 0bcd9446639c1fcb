"""Image folders streamed from disk give what the in-memory cache gives."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from guidl.engine.data import DatasetError, prepare
from guidl.spec import Data, Layer, Model
from helpers import small_project

AUGMENT = {"random_resized_crop": True, "crop_scale": 0.3, "hflip": True, "color_jitter": 0.4,
           "rotation": 10.0, "crop_padding": 2}


def write_photos(root, per_class=12, size=(40, 48), classes=(("red", (200, 50, 40)), ("blue", (40, 60, 200)))):
    rng = np.random.default_rng(0)
    for name, colour in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(colour, 45, (*size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def image_project(root, augment=None, **params):
    return small_project(
        model=Model([Layer("Conv2d", {"out_channels": 8, "kernel_size": 3}), Layer("ReLU"),
                     Layer("MaxPool2d", {"kernel_size": 2}), Layer("Flatten"),
                     Layer("Linear", {"out_features": 2})]),
        data=Data("image_folder", {"path": str(root), "image_size": [16, 16], **params},
                  val_fraction=0.25, batch_size=5, augment=augment),
        training__scheduler=None)


def batches(split, order, train, epoch):
    return list(split.batches(order, 5, train=train, epoch=epoch, device="cpu"))


@pytest.mark.parametrize("workers", [0, 1])
def test_streamed_batches_are_the_cached_batches_for_the_same_seed(tmp_path, workers):
    root = write_photos(tmp_path / "photos")
    cached = prepare(image_project(root, AUGMENT, cache="memory"))
    streamed = prepare(image_project(root, AUGMENT, cache="stream", workers=workers))
    assert not cached.train.streams and streamed.train.streams
    assert cached.normalization == streamed.normalization
    order = torch.randperm(len(cached.train), generator=torch.Generator().manual_seed(1))
    for epoch in (0, 1):  # a second pass through the same (persistent) workers
        for train in (True, False):
            a, b = batches(cached.train, order, train, epoch), batches(streamed.train, order, train, epoch)
            assert len(a) == len(b) == 4
            for (xa, ya), (xb, yb) in zip(a, b):
                assert xa.dtype == torch.float32 and xa.shape[1:] == (3, 16, 16)
                assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # The augmentation is real: another epoch draws other crops; evaluation draws nothing.
    first, second = batches(cached.train, order, True, 0), batches(cached.train, order, True, 1)
    assert not torch.equal(first[0][0], second[0][0])
    assert torch.equal(batches(cached.train, order, False, 0)[0][0],
                       batches(cached.train, order, False, 1)[0][0])
    assert torch.equal(cached.val.x, streamed.val.take(torch.arange(len(streamed.val))))


def test_auto_streams_what_does_not_fit_the_budget_and_memory_refuses_it(tmp_path):
    root = write_photos(tmp_path / "photos", per_class=6)
    # 12 images of 3x256x256 take 2.25 MiB as 8-bit pixels.
    big = {"image_size": [256, 256], "memory_budget_mb": 1}
    project = image_project(root, None, **big)
    project.data.params.update(big)
    data = prepare(project)
    assert data.train.streams and any("streamed from disk" in note for note in data.info.notes)
    with pytest.raises(DatasetError, match="needs all of them in memory"):
        data.train.x
    project.data.params["cache"] = "memory"
    with pytest.raises(DatasetError, match=r"more than the budget of 1 MiB: set cache to 'auto' or 'stream'"):
        prepare(project)
    project.data.params["memory_budget_mb"] = 3
    assert not prepare(project).train.streams


def test_a_streamed_split_travels_to_a_child_process_as_its_file_list(tmp_path):
    from guidl.engine.training_process import share

    root = write_photos(tmp_path / "photos", per_class=6)
    streamed = prepare(image_project(root, None, cache="stream"))
    list(streamed.train.batches(torch.arange(4), 2, train=False, epoch=0, device="cpu"))
    copy = pickle.loads(pickle.dumps(streamed.train))
    assert torch.equal(copy.take([0, 3]), streamed.train.take([0, 3]))
    cached = prepare(image_project(root, None, cache="memory"))
    shared = share(cached)
    assert shared.train.cache.is_shared() and shared.train.cache.dtype == torch.uint8
    assert torch.equal(shared.train.take([1, 2]), cached.train.take([1, 2]))


def test_a_daemonic_process_streams_with_threads_alike(tmp_path, monkeypatch):
    # guidl's training process is daemonic and may not start DataLoader workers.
    import multiprocessing

    from guidl.engine.images import _Threads

    root = write_photos(tmp_path / "photos", per_class=6)
    cached = prepare(image_project(root, AUGMENT, cache="memory"))
    streamed = prepare(image_project(root, AUGMENT, cache="stream", workers=2))
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True, raising=False)
    order = torch.randperm(len(cached.train), generator=torch.Generator().manual_seed(2))
    a, b = batches(cached.train, order, True, 3), batches(streamed.train, order, True, 3)
    assert isinstance(streamed.train._loader, _Threads)
    assert all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(a, b)) and len(a) == len(b) == 2


def test_the_window_s_training_process_trains_cached_and_streamed_folders_alike(tmp_path):
    # The window hands prepared data to a daemonic child process: the 8-bit
    # cache in shared memory, a streamed split as its file list (decoded by threads there).
    from guidl.engine import training_process as tp
    from guidl.engine.trainer import Trainer

    root = write_photos(tmp_path / "photos", per_class=8)
    losses = {}
    for cache in ("memory", "stream"):
        project = image_project(root, {"hflip": True, "random_resized_crop": True}, cache=cache, workers=2)
        project.training.epochs = 2
        data = tp.share(prepare(project, seed=project.training.seed), in_place=True)
        process = tp.TrainingProcess(tp.Job(project, data, None, None))
        process.start()
        events = list(process.events())
        process.close()
        assert events[-1][0] == "finished", events[-1]
        losses[cache] = [m.train_loss for m in events[-1][1]["result"].history]
    headless = Trainer(image_project(root, {"hflip": True, "random_resized_crop": True}, cache="stream",
                                     workers=0), epochs=2).fit()
    assert losses["memory"] == losses["stream"] == pytest.approx([m.train_loss for m in headless.history])
