"""Image folders: decoding, the uint8 cache or streaming from disk, and the
per-sample transforms of training.

Every image is decoded once into its *stored form*, 8-bit pixels: with a
backbone, resized so its shorter side is the backbone's ``resize`` and
centre-cropped to a square of that size; without one, resized to the
dataset's ``image_size``. Images that fit the memory budget stay cached in
that form (a quarter of the memory float32 pixels took); others are decoded
again from disk each epoch by ``DataLoader`` workers. Either way a sample
then goes through the same transforms (random resized crop, flips, colour
jitter, or the centre crop of evaluation), each drawn from a generator
seeded by (seed, epoch, sample index), so the cached and the streamed
paths give the same batches for the same seed. For a GPU, batches travel
as 8-bit pixels (a quarter of the bytes) and are normalised there; for the
CPU, the workers normalise them, leaving the training process its cores.

A file that is not a readable image (or declares more pixels than PIL's
decompression-bomb limit) is skipped and counted; only a folder whose class
is left with no images at all is an error.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..formatting import shorten
from ..registry import DATASETS
from ..spec import Project, UnreadableFileError, open_regular_file, read_regular_file
from ..spec.templates import IMAGE_SUFFIXES, class_files, input_backbone
from .memory import available_memory_bytes
from .prepared import (DatasetError, DatasetInfo, Normalization, PreparedData, RawData, normalization_from,
                       stratified_split)

#: The largest image file guidl reads.
MAX_IMAGE_FILE_BYTES = 64 * 2**20

#: The statistics of images without a backbone come from at most this many
#: training images (all of them when there are fewer), cached or streamed alike.
STATISTICS_IMAGES = 1024
#: The memory budget when the dataset does not set one: a quarter of the
#: available memory, at most this.
DEFAULT_BUDGET = 4096 * 2**20
#: Streaming checks each file's header in its first bytes (all of it when not found there).
HEADER_BYTES = 256 * 2**10
#: Random numbers one sample's transforms may draw.
_DRAWS = 12


# -- preprocessing ---------------------------------------------------------------------

@dataclass
class Preprocessing:
    """What a pretrained backbone expects of an image: the shorter side
    resized to ``resize``, a centre ``crop`` of ``crop`` x ``crop``, pixels
    in 0..1 normalised by ``mean`` and ``std`` (torchvision's metadata)."""

    resize: int
    crop: int
    mean: list[float]
    std: list[float]
    interpolation: str = "bilinear"

    def to_dict(self) -> dict[str, Any]:
        return {"resize": self.resize, "crop": self.crop, "mean": list(self.mean),
                "std": list(self.std), "interpolation": self.interpolation}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Preprocessing":
        return cls(int(data["resize"]), int(data["crop"]), [float(v) for v in data["mean"]],
                   [float(v) for v in data["std"]], str(data.get("interpolation", "bilinear")))

    @property
    def normalization(self) -> Normalization:
        return Normalization(1 / 255, list(self.mean), list(self.std))

    @property
    def stored_form(self) -> "_Form":
        """Decoded images kept as the shorter side resized and a centre square cropped."""
        return _Form(3, self.resize, self.resize, True, self.interpolation)

    def eval_transform(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Decoded 8-bit pixels (channels, height, width) of any size -> the
        model's normalised float input (3, crop, crop)."""
        form = self.stored_form
        crop = (self.crop, self.crop)
        normalization = self.normalization

        def transform(image: torch.Tensor) -> torch.Tensor:
            pixels = _center_crop(form.store(image), crop)
            return normalization.apply(pixels[None])[0]
        return transform

    def train_transform(self, augment: Mapping[str, Any] | None) -> Callable[..., torch.Tensor]:
        """Like ``eval_transform``, with the random changes ``augment`` asks
        for (random resized crop, flips, colour jitter ...), drawn from
        ``generator`` (the second argument; torch's global one when None)."""
        form = self.stored_form
        normalization = self.normalization
        pipeline = _Pipeline((self.crop, self.crop), dict(augment or {}), self.interpolation)

        def transform(image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
            draws = torch.rand(_DRAWS, generator=generator).tolist()
            pixels = pipeline(form.store(image), True, draws)
            return normalization.apply(pixels[None])[0]
        return transform


def preprocessing_of(project: Project) -> Preprocessing | None:
    """The preprocessing of the pretrained backbone that takes the model's
    input, or None when the model does not start with one."""
    from ..registry.backbones import preprocessing_for, usable_weights

    layer = input_backbone(project.model)
    if layer is None:
        return None
    weights = usable_weights(layer.type, layer.params.get("weights", "none"))
    return Preprocessing.from_dict(preprocessing_for(layer.type, weights))


# -- decoding --------------------------------------------------------------------------

class SkippedImage(Exception):
    """A file that is not a readable image; its message says why."""


def _interpolation(name: str):
    from torchvision.transforms import InterpolationMode

    return {"nearest": InterpolationMode.NEAREST, "bicubic": InterpolationMode.BICUBIC}.get(
        name, InterpolationMode.BILINEAR)


def _resize(image: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    from torchvision.transforms.v2 import functional as TF

    return TF.resize(image, list(size), interpolation=_interpolation(interpolation), antialias=True)


def _center_crop(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    height, width = image.shape[-2:]
    if (height, width) == tuple(size):
        return image
    if height < size[0] or width < size[1]:
        from torchvision.transforms.v2 import functional as TF

        return TF.center_crop(image, list(size))
    top = int(round((height - size[0]) / 2.0))
    left = int(round((width - size[1]) / 2.0))
    return image[..., top:top + size[0], left:left + size[1]]


@dataclass(frozen=True)
class _Form:
    """How a decoded image is stored: its channels and size; ``shorter``:
    resize the shorter side to ``height`` and centre-crop a square (a
    backbone's preprocessing), else resize to height x width."""

    channels: int
    height: int
    width: int
    shorter: bool
    interpolation: str = "bilinear"

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def store(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[0] != self.channels:
            image = image[:1] if self.channels == 1 else image[:1].expand(self.channels, -1, -1)
        if self.shorter:
            height, width = image.shape[-2:]
            scale = self.height / min(height, width)
            size = (max(self.height, int(height * scale)), max(self.height, int(width * scale)))
            image = _center_crop(_resize(image, size, self.interpolation), (self.height, self.width))
        else:
            image = _resize(image, (self.height, self.width), self.interpolation)
        return image.contiguous()


def _pixel_limit() -> int:
    from PIL import Image

    return int(Image.MAX_IMAGE_PIXELS or 89_478_485)


#: Modules whose warnings guidl silences while it decodes: PIL's (a large image, odd EXIF)
#: and torchvision's (on import, that its decoders move to TorchCodec). A file guidl
#: cannot read is skipped and counted instead; these are notices for us, not the person training.
_DECODER_WARNINGS = r"(PIL|torchvision\.io)(\.|$)"


def _quiet_decoders() -> None:
    """The decoders' warnings ignored for the process, from now on. Not a
    ``warnings.catch_warnings`` around each decode: that is not thread-safe,
    and decoding threads that interleaved their restores left every warning
    of the process ignored."""
    if not any(f[0] == "ignore" and f[3] is not None and f[3].pattern == _DECODER_WARNINGS
               for f in warnings.filters):
        warnings.filterwarnings("ignore", module=_DECODER_WARNINGS)


def check_header(path: str, data: bytes) -> tuple[int, int]:
    """The image's (width, height) from its header alone; ``SkippedImage``
    when it is not an image or declares more pixels than the limit (a
    decompression bomb: a small file that would take gigabytes to decode)."""
    from PIL import Image, UnidentifiedImageError

    limit = _pixel_limit()
    _quiet_decoders()
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            width, height = image.size
    except Image.DecompressionBombError as error:
        raise SkippedImage(f"refused as a decompression bomb ({error})") from None
    except UnidentifiedImageError:
        raise SkippedImage("not an image format guidl reads") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise SkippedImage(f"not a readable image ({error})") from None
    if width * height > limit:
        raise SkippedImage(f"refused as a decompression bomb: it declares {width}x{height} pixels, "
                           f"more than {limit:,}")
    return width, height


def read_file(path: str, head: int | None = None) -> bytes:
    """A file's bytes (the first ``head`` when given); a FIFO or device
    among the images is an error (as anywhere in guidl), a file over the
    size limit a skipped image."""
    try:
        if head is not None:
            with open_regular_file(path, MAX_IMAGE_FILE_BYTES, "an image file") as handle:
                return handle.read(head)
        return read_regular_file(path, MAX_IMAGE_FILE_BYTES, "an image file")
    except UnreadableFileError as error:
        if "at most" in error.reason:
            raise SkippedImage(error.reason) from None
        if error.reason == "no such file":
            raise DatasetError(f"image_folder: no such file {error.path}") from None
        raise DatasetError(f"image_folder: {error}") from None


def decode_bytes(path: str, data: bytes, channels: int = 3) -> torch.Tensor:
    """8-bit pixels (channels, height, width): torchvision's decoders, PIL
    for the formats they do not read (BMP, TIFF, ...)."""
    check_header(path, data)  # silences the decoders' warnings too
    from torchvision.io import ImageReadMode, decode_image

    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    try:
        return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=mode)
    except (RuntimeError, ValueError):
        pass
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        raise SkippedImage(f"not a readable image ({error})") from None
    return torch.from_numpy(array.copy())[None] if channels == 1 else \
        torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def load_stored(path: str, form: _Form) -> torch.Tensor:
    """One file in its stored form; ``SkippedImage`` when it is not an image."""
    return form.store(decode_bytes(path, read_file(path), form.channels))


# -- per-sample transforms ----------------------------------------------------------------

def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A generator seed for one sample in one epoch (a fixed mix, so any
    process draws the same for it)."""
    mixed = (seed * 0x9E3779B97F4A7C15 + (epoch + 1) * 0xBF58476D1CE4E5B9
             + (index + 1) * 0x94D049BB133111EB) % 2**64
    mixed ^= mixed >> 31
    return mixed % 2**63


class _Pipeline:
    """The transforms from the stored form to the model's input size:
    evaluation centre-crops; training applies the augmentation asked for,
    each sample with its own draws."""

    def __init__(self, size: tuple[int, int], augment: Mapping[str, Any], interpolation: str):
        self.size = tuple(size)
        self.interpolation = interpolation
        self.resized_crop = bool(augment.get("random_resized_crop"))
        self.scale = float(augment.get("crop_scale", 0.08) or 0.08)
        self.padding = int(augment.get("crop_padding", 0) or 0)
        self.hflip = bool(augment.get("hflip"))
        self.rotation = float(augment.get("rotation", 0) or 0)
        self.jitter = float(augment.get("color_jitter", 0) or 0)

    @property
    def random(self) -> bool:
        return self.resized_crop or bool(self.padding) or self.hflip or bool(self.rotation) or bool(self.jitter)

    def __call__(self, image: torch.Tensor, train: bool, draws: Sequence[float]) -> torch.Tensor:
        if not (train and self.random):
            return _center_crop(image, self.size)
        from torchvision.transforms.v2 import functional as TF

        if self.resized_crop:
            height, width = image.shape[-2:]
            area = height * width * (self.scale + (1 - self.scale) * draws[0])
            ratio = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * draws[1])
            w = min(width, max(1, int(round(math.sqrt(area * ratio)))))
            h = min(height, max(1, int(round(math.sqrt(area / ratio)))))
            top = int(draws[2] * (height - h + 1))
            left = int(draws[3] * (width - w + 1))
            image = TF.resized_crop(image, top, left, h, w, list(self.size),
                                    interpolation=_interpolation(self.interpolation), antialias=True)
        else:
            image = _center_crop(image, self.size)
        if self.padding:
            height, width = image.shape[-2:]
            padded = torch.nn.functional.pad(image, (self.padding,) * 4)
            dy = min(2 * self.padding, int(draws[4] * (2 * self.padding + 1)))
            dx = min(2 * self.padding, int(draws[5] * (2 * self.padding + 1)))
            image = padded[..., dy:dy + height, dx:dx + width]
        if self.hflip and draws[6] < 0.5:
            image = image.flip(-1)
        if self.rotation:
            angle = (2 * draws[7] - 1) * self.rotation
            image = TF.rotate(image, angle, interpolation=_interpolation("bilinear"))
        if self.jitter:
            low, span = max(0.0, 1 - self.jitter), (1 + self.jitter) - max(0.0, 1 - self.jitter)
            image = TF.adjust_brightness(image, low + span * draws[8])
            image = TF.adjust_contrast(image, low + span * draws[9])
            if image.shape[0] == 3:
                image = TF.adjust_saturation(image, low + span * draws[10])
        return image.contiguous()


def _draws(seed: int, epoch: int, index: int) -> list[float]:
    generator = torch.Generator().manual_seed(sample_seed(seed, epoch, index))
    return torch.rand(_DRAWS, generator=generator).tolist()


# -- streaming ----------------------------------------------------------------------------

class _Files(torch.utils.data.Dataset):
    """Decodes files in DataLoader workers; an item is (index, epoch, train)."""

    def __init__(self, files: Sequence[str], form: _Form, pipeline: _Pipeline, seed: int):
        self.files, self.form, self.pipeline, self.seed = list(files), form, pipeline, seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: tuple[int, int, bool]):
        index, epoch, train = item
        try:
            stored = load_stored(self.files[index], self.form)
            ok = True
        except SkippedImage:  # broken since the folder was read: a black image, counted
            stored = torch.zeros(self.form.shape, dtype=torch.uint8)
            ok = False
        draws = _draws(self.seed, epoch, index) if train and self.pipeline.random else ()
        return self.pipeline(stored, train, draws), ok


class _Normalizer:
    """``(x * scale - mean) / std`` per channel on 8-bit pixels, as one
    multiply and one subtraction (constants kept per device)."""

    def __init__(self, normalization: Normalization):
        self.normalization = normalization
        self._constants: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"normalization": self.normalization, "_constants": {}}

    def __call__(self, pixels: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        key = str(pixels.device)
        if key not in self._constants:
            n = self.normalization
            mean = torch.tensor(n.mean, dtype=torch.float64).view(1, -1, 1, 1)
            std = torch.tensor(n.std, dtype=torch.float64).view(1, -1, 1, 1)
            self._constants[key] = ((n.scale / std).float().to(pixels.device),
                                    (mean / std).float().to(pixels.device))
        factor, offset = self._constants[key]
        return torch.mul(pixels, factor, out=out).sub_(offset)


class _Collate:
    """Stacks a batch (in shared memory inside a worker, so it is not
    copied again on its way); normalises it there too when ``normalize``
    is given (training on the CPU: the training process has enough to do)."""

    def __init__(self, normalize: _Normalizer | None = None):
        self.normalize = normalize

    def __call__(self, items):
        images = [image for image, _ in items]
        failed = sum(1 for _, ok in items if not ok)
        if self.normalize is None:
            return torch.utils.data.default_collate(images), failed
        out = torch.empty((len(images), *images[0].shape), dtype=torch.float32)
        if torch.utils.data.get_worker_info() is not None:
            out.share_memory_()
        return self.normalize(torch.stack(images), out=out), failed


_collate = _Collate()


class _Chunks(torch.utils.data.Sampler):
    """The batches of the current pass; set before each iteration (the
    sampler runs in the main process, so persistent workers see each pass)."""

    def __init__(self) -> None:
        self.chunks: list[list[tuple[int, int, bool]]] = []

    def __iter__(self):
        return iter(self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)


class _Threads:
    """A thread pool in place of DataLoader workers, a few batches ahead."""

    def __init__(self, dataset: _Files, workers: int, collate: _Collate):
        self.dataset, self.workers, self.collate, self.chunks = dataset, workers, collate, _Chunks()
        self.pool = None

    def _batch(self, chunk):
        return self.collate([self.dataset[item] for item in chunk])

    def __iter__(self):
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="guidl-images")
        chunks = iter(list(self.chunks))
        pending = deque()

        def submit() -> None:
            chunk = next(chunks, None)
            if chunk is not None:
                pending.append(self.pool.submit(self._batch, chunk))
        for _ in range(2 * self.workers):
            submit()
        try:
            while pending:
                result = pending.popleft().result()
                submit()
                yield result
        finally:
            for future in pending:
                future.cancel()


def _import_decoders() -> None:
    """Imported before workers start, so forked workers share them instead
    of each importing them again (seconds each)."""
    _quiet_decoders()
    import torchvision.io  # noqa: F401
    import torchvision.transforms.v2.functional  # noqa: F401


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def auto_workers(device: str = "cpu") -> int:
    """DataLoader workers for this machine: one per core, at most 8; when
    the model trains on the CPU, one core fewer (the training process needs
    it), at least one."""
    return max(1, min(8, cpu_count() - (device == "cpu")))


# -- the split ----------------------------------------------------------------------------

@dataclass(eq=False)
class ImageSplit:
    """Images of one split: cached as uint8 (``cache``) or streamed from
    ``files``, with int64 labels ``y``."""

    y: torch.Tensor
    files: list[str]
    form: _Form
    size: tuple[int, int]
    normalization: Normalization
    cache: torch.Tensor | None = None
    augment: dict[str, Any] | None = None
    seed: int = 0
    workers: int | None = None
    #: Files that failed to decode while streaming (read since the folder was scanned).
    failed: int = 0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pipeline = _Pipeline(self.size, self.augment or {}, self.form.interpolation)
        self._loader = None
        self._loader_device: str | None = None
        self._chunks: _Chunks | None = None
        self._norm: _Normalizer | None = None
        self._x: torch.Tensor | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_loader=None, _chunks=None, _norm=None, _x=None)  # workers and threads stay here
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def streams(self) -> bool:
        return self.cache is None

    #: The split applies ``augment`` to its training batches itself (the trainer adds nothing).
    augments = True

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.form.channels, *self.size)

    def to(self, device: torch.device | str) -> "ImageSplit":
        """The labels move; the pixels stay on the host (each batch travels as 8 bits)."""
        return self.map_tensors(lambda t: t.to(device) if t is self.y else t)

    def tensors(self) -> list[torch.Tensor]:
        return [t for t in (self.cache, self.y) if t is not None]

    @property
    def device_bytes(self) -> int:
        return self.y.numel() * self.y.element_size()

    def map_tensors(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "ImageSplit":
        return ImageSplit(fn(self.y), self.files, self.form, self.size, self.normalization,
                          None if self.cache is None else fn(self.cache), self.augment, self.seed,
                          self.workers, self.failed, self.notes)

    @property
    def x(self) -> torch.Tensor:
        """All images in evaluation form (float, normalised, on the labels'
        device; made once): only for a cached split, as tasks that look at
        all images at once need."""
        if self._x is not None:
            return self._x
        if self.cache is None:
            raise DatasetError("image_folder: these images are streamed from disk (they do not fit "
                               "the memory budget), but this task needs all of them in memory: "
                               "raise data.params.memory_budget_mb, set cache to 'memory', or use "
                               "fewer or smaller images")
        self._x = self.take(torch.arange(len(self))).to(self.y.device)
        return self._x

    def _normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        if self._norm is None:
            self._norm = _Normalizer(self.normalization)
        return self._norm(pixels)

    def pixels(self, indices: Sequence[int] | torch.Tensor, *, train: bool = False,
               epoch: int = 0) -> torch.Tensor:
        """8-bit samples at the model's input size, in ``indices``' order."""
        index = torch.as_tensor(indices, dtype=torch.long).cpu()
        if self.cache is not None and not (train and self._pipeline.random):
            return _center_crop(self.cache[index], self.size).contiguous()
        if self.cache is not None:
            return torch.stack([self._pipeline(self.cache[i], True, _draws(self.seed, epoch, i))
                                for i in index.tolist()])
        dataset = _Files(self.files, self.form, self._pipeline, self.seed)
        images, failed = _collate([dataset[(i, epoch, train)] for i in index.tolist()])
        self.failed += failed
        return images

    def take(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Samples in evaluation form (float, normalised), on the host."""
        return self._normalize(self.pixels(indices))

    def _streamed(self, device: torch.device):
        """The loader of streamed batches: normalised by the workers for the
        CPU; for a GPU as 8-bit pixels (a quarter of the bytes to move),
        normalised there."""
        if self._loader is None or self._loader_device != device.type:
            self._loader_device = device.type
            workers = self.workers if self.workers is not None else auto_workers(device.type)
            dataset = _Files(self.files, self.form, self._pipeline, self.seed)
            collate = _Collate(_Normalizer(self.normalization) if device.type == "cpu" else None)
            _import_decoders()
            if workers and multiprocessing.current_process().daemon:
                # A daemonic process (guidl's training process) cannot start
                # worker processes: threads decode instead (decoding and
                # resizing run outside the GIL).
                self._loader = _Threads(dataset, workers, collate)
                self._chunks = self._loader.chunks
                return self._loader
            self._chunks = _Chunks()
            options = {"persistent_workers": True, "prefetch_factor": 4} if workers else {}
            self._loader = torch.utils.data.DataLoader(
                dataset, batch_sampler=self._chunks, num_workers=workers, collate_fn=collate,
                pin_memory=device.type == "cuda", **options)
        return self._loader

    def batches(self, order: torch.Tensor, batch_size: int, *, train: bool, epoch: int,
                device: torch.device | str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) for ``order``'s samples, ``batch_size`` at a time and in its
        order: x normalised on ``device``, augmented when ``train``."""
        device = torch.device(device)
        order_cpu = order.cpu()
        starts = range(0, len(order_cpu), batch_size)
        if self.cache is not None:
            for start in starts:
                index = order_cpu[start:start + batch_size]
                pixels = self.pixels(index, train=train, epoch=epoch)
                yield self._normalize(pixels.to(device, non_blocking=True)), \
                    self.y[index.to(self.y.device)].to(device)
            return
        loader = self._streamed(device)
        self._chunks.chunks = [[(i, epoch, train) for i in order_cpu[start:start + batch_size].tolist()]
                               for start in starts]
        for start, (pixels, failed) in zip(starts, loader):
            self.failed += failed
            index = order_cpu[start:start + batch_size]
            x = pixels if pixels.is_floating_point() else self._normalize(pixels.to(device, non_blocking=True))
            yield x, self.y[index.to(self.y.device)].to(device)


# -- the folder ----------------------------------------------------------------------------

def scan_folder(path: str) -> tuple[Path, list[str], list[tuple[str, int]]]:
    """The folder, its classes (sub-folders) and its candidate files with labels."""
    folder = Path(path).expanduser()
    if not path or not os.path.isdir(folder):  # False for any name the OS refuses
        raise DatasetError(f"image_folder: {shorten(str(folder))} is not a folder; choose a folder that holds "
                           "one sub-folder of images per class")
    found = class_files(folder)
    classes = list(found)
    if len(classes) < 2:
        raise DatasetError(f"image_folder: {folder} has {len(classes)} sub-folder(s); it needs one "
                           "sub-folder per class, at least two")
    files = [(str(p), label) for label, cls in enumerate(classes) for p in found[cls]]
    empty = [cls for cls in classes if not found[cls]]
    if empty:
        raise DatasetError(f"image_folder: no images in {', '.join(empty)} (looked for "
                           f"{', '.join(sorted(IMAGE_SUFFIXES))})")
    return folder, classes, files


def skipped_note(skipped: list[tuple[str, str]]) -> str | None:
    if not skipped:
        return None
    path, reason = skipped[0]
    count = len(skipped)
    what = "files that are not readable images" if count != 1 else "file that is not a readable image"
    return f"image_folder: skipped {count} {what} (first: {shorten(path)}: {reason})"


def _check_classes(classes: list[str], labels: list[int], skipped) -> None:
    present = set(labels)
    lost = [cls for i, cls in enumerate(classes) if i not in present]
    if lost:
        raise DatasetError(f"image_folder: no readable images in {', '.join(lost)} "
                           f"({skipped_note(skipped)})")


def _mib(size: int) -> str:
    return f"{size / 2**20:,.{0 if size >= 100 * 2**20 or size % 2**20 == 0 else 2}f} MiB"


def budget_bytes(params: Mapping[str, Any]) -> int:
    value = params.get("memory_budget_mb")
    if value is not None:
        return int(value) * 2**20
    return int(min(DEFAULT_BUDGET, available_memory_bytes() / 4))


class _Decode(torch.utils.data.Dataset):
    """Files to stored forms, for the caching pass: (image or None, reason)."""

    def __init__(self, paths: list[str], form: _Form):
        self.paths, self.form = paths, form

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            return load_stored(self.paths[index], self.form), None
        except SkippedImage as error:
            return None, str(error)


def _decode_all(files: list[tuple[str, int]], form: _Form, workers: int):
    """Decodes every file into one uint8 tensor; returns it, the kept
    (path, label) pairs and the skipped (path, reason) pairs."""
    from concurrent.futures import ThreadPoolExecutor

    out = torch.empty((len(files), *form.shape), dtype=torch.uint8)
    kept: list[tuple[str, int]] = []
    skipped: list[tuple[str, str]] = []
    dataset = _Decode([p for p, _ in files], form)
    _import_decoders()
    # Threads: decoding and resizing run outside the GIL, and a pool of
    # threads starts at once where worker processes take seconds.
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="guidl-images") as pool:
        for (path, label), (image, reason) in zip(files, pool.map(dataset.__getitem__, range(len(files)))):
            if image is None:
                skipped.append((path, reason))
                continue
            out[len(kept)] = image
            kept.append((path, label))
    return out[:len(kept)].clone() if len(kept) < len(files) else out, kept, skipped


def _check_all(files: list[tuple[str, int]]):
    """Streaming: every file's header is read (cheap), so non-images and
    bombs are skipped before training."""
    kept, skipped = [], []
    for path, label in files:
        try:
            head = read_file(path, HEADER_BYTES)
            try:
                check_header(path, head)
            except SkippedImage:
                if len(head) < HEADER_BYTES:
                    raise
                check_header(path, read_file(path))  # a header past the first bytes (large EXIF)
            kept.append((path, label))
        except SkippedImage as error:
            skipped.append((path, str(error)))
    return kept, skipped


def sized_form(params: Mapping[str, Any]) -> _Form:
    """The stored form without a backbone: resized to the dataset's image_size
    (its ``shape`` is the model's input)."""
    image_size = params["image_size"]
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    return _Form(1 if params["grayscale"] else 3, height, width, False)


def prepare_image_folder(project: Project | Any, data, seed: int, pixel_range: str | None) -> PreparedData:
    """``prepare`` for ``image_folder``: ``data`` is the project's Data."""
    entry = DATASETS.get("image_folder")
    params = entry.resolve(data.params)
    folder, classes, files = scan_folder(params["path"])
    preprocessing = preprocessing_of(project) if isinstance(project, Project) else None
    grayscale = bool(params["grayscale"])
    if preprocessing is not None:
        form = preprocessing.stored_form
        size = (preprocessing.crop, preprocessing.crop)
    else:
        form = sized_form(params)
        size = (form.height, form.width)
    cache_mode = params.get("cache", "auto")
    budget = budget_bytes(params)
    need = len(files) * int(np.prod(form.shape))
    if cache_mode == "memory" and need > budget:
        raise DatasetError(
            f"image_folder: {len(files):,} images of {form.height}x{form.width} take "
            f"{_mib(need)} in memory (8-bit pixels), more than the budget of "
            f"{_mib(budget)}: set cache to 'auto' or 'stream' (streamed from disk) or raise "
            "memory_budget_mb" + (", or choose a smaller image_size" if preprocessing is None else
                                  f" (a backbone's images are kept at {form.height}x{form.width})"))
    streams = cache_mode == "stream" or (cache_mode == "auto" and need > budget)
    workers = params.get("workers")
    if streams:
        kept, skipped = _check_all(files)
        cache = None
    else:
        cache, kept, skipped = _decode_all(files, form, min(8, cpu_count()) if workers is None else workers)
    _check_classes(classes, [label for _, label in kept], skipped)
    y_all = np.array([label for _, label in kept], dtype=np.int64)
    if len(y_all) < 2:
        raise DatasetError(f"image_folder: has {len(y_all)} readable image(s); training needs at least two")
    train_idx, val_idx = stratified_split(y_all, data.val_fraction, seed, True)
    paths = [p for p, _ in kept]
    augment = data.augment or None

    def split(indices: np.ndarray, train: bool) -> ImageSplit:
        index = torch.from_numpy(indices)
        return ImageSplit(torch.from_numpy(y_all[indices]), [paths[i] for i in indices], form, size,
                          normalization, None if cache is None else cache[index].contiguous(),
                          augment if train else None, seed, workers)

    # Without a backbone: unit or symmetric pixels where the task asks for
    # them, else the training images' own statistics (set once they are split).
    normalization = (preprocessing.normalization if preprocessing is not None else
                     Normalization(1 / 255, [0.5] * form.channels, [0.5] * form.channels)
                     if pixel_range == "symmetric" else
                     Normalization(1 / 255, [0.0] * form.channels, [1.0] * form.channels))
    train = split(train_idx, True)
    val = split(val_idx, False) if len(val_idx) else None
    del cache  # the splits hold their own images
    if preprocessing is None and pixel_range not in ("unit", "symmetric"):
        picks = np.arange(len(train))
        if len(picks) > STATISTICS_IMAGES:
            picks = np.sort(np.random.default_rng(seed).choice(len(picks), STATISTICS_IMAGES, replace=False))
        normalization = normalization_from(train.pixels(picks), 1 / 255)
        for part in (train, val):
            if part is not None:
                part.normalization = normalization
    note = skipped_note(skipped)
    info = DatasetInfo(
        name="image_folder", title=folder.name, modality="image", task="classification",
        input_shape=(form.channels, *size), input_dtype="float32", num_classes=len(classes),
        class_names=classes, num_outputs=None,
        sizes={"train": len(train), "val": 0 if val is None else len(val), "test": 0},
        class_counts=np.bincount(y_all[train_idx], minlength=len(classes)).tolist(),
        skipped=len(skipped), notes=[note] if note else [])
    if grayscale and preprocessing is not None:
        info.notes.append("image_folder: grayscale is ignored: a pretrained backbone takes colour "
                          "images (3 channels)")
    if streams:
        info.notes.append(f"image_folder: {len(files):,} images take {_mib(need)} as 8-bit pixels, "
                          f"more than the memory budget of {_mib(budget)}: they are streamed "
                          "from disk each epoch" if cache_mode == "auto" else
                          "image_folder: images are streamed from disk each epoch (cache 'stream')")
    return PreparedData(info, train, val, None, normalization,
                        preprocessing=preprocessing.to_dict() if preprocessing is not None else None)


def load_image_folder_raw(params: Mapping[str, Any]):
    """``load_raw`` for image_folder: every readable image in memory, in its
    stored form, as NumPy (what tools that read raw arrays expect)."""
    folder, classes, files = scan_folder(params["path"])
    form = sized_form(params)
    height, width = form.height, form.width
    need = len(files) * int(np.prod(form.shape))
    budget = budget_bytes(params)
    if need > budget:
        raise DatasetError(f"image_folder: {len(files):,} images of {height}x{width} take "
                           f"{_mib(need)}, more than the memory budget of {_mib(budget)}")
    cache, kept, skipped = _decode_all(files, form, 0)
    _check_classes(classes, [label for _, label in kept], skipped)
    raw = RawData("image_folder", "image", "classification", cache.numpy(),
                  np.array([label for _, label in kept], dtype=np.int64), class_names=classes,
                  title=folder.name)
    raw.skipped = skipped
    return raw
