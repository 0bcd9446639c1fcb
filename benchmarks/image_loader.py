"""Streaming an image folder: guidl's loader against torchvision's recipe.

Writes ``--images`` JPEGs of 256x256 (``--classes`` classes) to a temporary
folder, then reads them for ``--epochs`` epochs of batches of ``--batch``
training samples, all transformed alike: random resized crop to 224x224,
horizontal flip, normalised by ImageNet's mean and std, moved to the device.

- guidl: an ``image_folder`` project whose model starts with a resnet18
  backbone (its preprocessing: stored 256x256, crop 224), ``cache: stream``,
  ``workers`` chosen for the machine (and each count in ``--workers``);
- torchvision: ``datasets.ImageFolder`` with ``RandomResizedCrop(224)``,
  ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize(...)`` and
  ``DataLoader(shuffle=True, num_workers=w, pin_memory on CUDA)`` for each w
  in ``--workers``; its best count is the baseline.

Samples/s count every epoch, worker start-up included; each loader runs
``--repeats`` times, back to back with the other, and its best run counts. ``--model resnet18``
also runs each batch forward through a resnet18 (no gradients); the default
``none`` measures the loaders alone. Then the memory over one streamed epoch
with a memory budget far smaller than the decoded folder: the resident
memory of the process and its workers at the start, middle and end.

    python benchmarks/image_loader.py [--images 3000] [--epochs 2] [--batch 64]
        [--workers 0,1,2,4,8] [--repeats 2] [--device cpu] [--model none] [--budget-mb 16]

Figures only; it never fails on time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def write_folder(root: Path, images: int, classes: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (classes, 3))
    for i in range(images):
        label = i % classes
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        # Smooth noise (as photos are), so the JPEGs have photo-like sizes.
        small = np.clip(rng.normal(base[label], 60, (32, 32, 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(small).resize((256, 256), Image.Resampling.BICUBIC)
        image.save(folder / f"{i:05d}.jpg", quality=90)


def guidl_split(root: Path, workers: int | None, budget_mb: int | None = None):
    from guidl.engine.data import prepare
    from guidl.registry import LAYERS
    from guidl.spec import Component, Data, Layer, Model, Project, Training

    if "resnet18" in LAYERS:
        layers = [Layer("resnet18", {"weights": "none"}), Layer("Linear", {"out_features": 2})]
        params = {}
    else:  # before the backbone catalogue: the same sizes without one
        layers = [Layer("Flatten"), Layer("Linear", {"out_features": 2})]
        params = {"image_size": [224, 224]}
    params.update({"path": str(root), "cache": "stream", "workers": workers,
                   "memory_budget_mb": budget_mb})
    project = Project(name="bench", model=Model(layers),
                      data=Data("image_folder", params, val_fraction=0.0, batch_size=64,
                                augment={"random_resized_crop": True, "hflip": True}),
                      training=Training(Component("CrossEntropyLoss"), Component("Adam"), None,
                                        epochs=1, device="cpu", seed=0))
    data = prepare(project)
    if params.get("image_size"):
        data.normalization.mean, data.normalization.std = MEAN, STD
        data.train.normalization = data.normalization
    return data.train


def model_for(name: str, device: torch.device):
    if name == "none":
        return None
    import torchvision

    return torchvision.models.get_model(name, weights=None).to(device).eval()


def run_epochs(batches, epochs: int, model, device: torch.device) -> float:
    """Samples/s over ``epochs`` passes of ``batches(epoch)``."""
    seen = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        for x, y in batches(epoch):
            x = x.to(device, non_blocking=True)
            if model is not None:
                with torch.no_grad():
                    model(x)
            seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def guidl_rate(root: Path, workers: int | None, args, model, device) -> float:
    split = guidl_split(root, workers)
    generator = torch.Generator().manual_seed(0)
    return run_epochs(lambda epoch: split.batches(torch.randperm(len(split), generator=generator),
                                                  args.batch, train=True, epoch=epoch, device=device),
                      args.epochs, model, device)


def torchvision_rate(root: Path, workers: int, args, model, device) -> float:
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    dataset = datasets.ImageFolder(str(root), transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=workers,
                                         pin_memory=device.type == "cuda")
    return run_epochs(lambda epoch: iter(loader), args.epochs, model, device)


def resident_bytes() -> int:
    import psutil

    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def memory_over_an_epoch(root: Path, args, device) -> None:
    split = guidl_split(root, None, args.budget_mb)
    decoded = len(split) * 3 * 256 * 256
    print(f"\nmemory: {len(split):,} images take {decoded / 2**20:,.0f} MiB decoded (8-bit); "
          f"memory_budget_mb {args.budget_mb} -> streamed: {split.streams}")
    order = torch.randperm(len(split))
    batches = split.batches(order, args.batch, train=True, epoch=0, device=device)
    count = -(-len(split) // args.batch)
    marks = {0: "start", count // 2: "middle", count - 1: "end"}
    peak = 0
    for i, _ in enumerate(batches):
        rss = resident_bytes()
        peak = max(peak, rss)
        if i in marks:
            print(f"  RSS (process and workers) at the {marks[i]:6} of the epoch: {rss / 2**20:,.0f} MiB")
    print(f"  peak RSS over the epoch: {peak / 2**20:,.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", default=None,
                        help="worker counts to try (default: 0, 1, 2, 4 ... up to the cores)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="none", help="'none' or a torchvision model name")
    parser.add_argument("--budget-mb", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each loader (the best counts)")
    args = parser.parse_args()
    from guidl.engine.images import auto_workers, cpu_count

    cores = cpu_count()
    auto = auto_workers(torch.device(args.device).type)
    counts = sorted({auto, *([int(v) for v in args.workers.split(",")] if args.workers else
                            {0, 1, 2, *[2 ** k for k in range(2, 4) if 2 ** k <= cores], min(cores, 8)})})
    device = torch.device(args.device)
    model = model_for(args.model, device)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "photos"
        start = time.perf_counter()
        write_folder(root, args.images, args.classes)
        print(f"{args.images:,} JPEGs of 256x256 in {args.classes} classes written in "
              f"{time.perf_counter() - start:.1f} s; {cores} cores, device {device}, "
              f"forward: {args.model}, batch {args.batch}, {args.epochs} epochs each, "
              "random resized crop 224 + flip + normalise")
        # Back to back and repeated (best of each kept): a busy machine's
        # swings then touch both loaders alike.
        theirs, ours = {}, {}
        for workers in counts:
            for _ in range(args.repeats):
                theirs[workers] = max(theirs.get(workers, 0.0),
                                      torchvision_rate(root, workers, args, model, device))
                ours[workers] = max(ours.get(workers, 0.0),
                                    guidl_rate(root, None if workers == auto else workers, args, model, device))
            print(f"  num_workers={workers:2}: torchvision ImageFolder + DataLoader {theirs[workers]:8,.0f} "
                  f"samples/s; guidl image_folder (stream{', auto' if workers == auto else ''}) "
                  f"{ours[workers]:8,.0f} samples/s")
        best, our_best = max(theirs, key=theirs.get), max(ours, key=ours.get)
        print(f"ratio guidl (workers chosen for the machine: {auto}) / torchvision (best: "
              f"num_workers={best}): {ours[auto] / theirs[best]:.2f}x; best against best "
              f"({our_best} and {best} workers): {ours[our_best] / theirs[best]:.2f}x")
        memory_over_an_epoch(root, args, device)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
