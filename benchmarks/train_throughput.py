"""Training throughput: guidl's trainer against hand-written PyTorch loops.

Same model (same initial weights), same data, seed, device and batch size:
60,000 MNIST-shaped samples, batch 128, Adam. Prints samples/s for

- guidl's Trainer (in-memory slicing, with its per-batch bookkeeping),
- a plain hand-written loop with in-memory slicing,
- the tutorial-style DataLoader(TensorDataset) loop,

and the ratios, for the MLP and the MNIST CNN examples. Figures only; it
never fails on time.

    python benchmarks/train_throughput.py [--samples 60000] [--epochs 1] [--device cpu]
        [--precision bf16] [--channels-last] [--compile] [--models mlp,mnist_cnn]

On a GPU, ``--precision``, ``--channels-last`` and ``--compile`` apply to guidl
(as the project's training keys) and to the hand-written loop alike
(``torch.autocast``, ``memory_format=torch.channels_last``, ``torch.compile``).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from torch import nn

from guidl import spec
from guidl.engine.build import build
from guidl.engine.data import DatasetInfo, PreparedData, Split
from guidl.engine.trainer import Trainer, resolve_device

ROOT = Path(__file__).resolve().parent.parent


def synthetic(samples: int, seed: int = 0) -> PreparedData:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (samples,), generator=generator)
    info = DatasetInfo("synthetic", "MNIST-shaped noise", "image", "classification", (1, 28, 28),
                       "float32", 10, [str(i) for i in range(10)], None, {"train": samples})
    return PreparedData(info, Split(x, y), None, None, None)


def hand_loop(model: nn.Module, x, y, batch_size: int, epochs: int, lr: float, seed: int,
              precision: str = "fp32", channels_last: bool = False, compile: bool = False) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if compile else model
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        total = 0.0
        for i in range(0, len(x), batch_size):
            index = order[i:i + batch_size]
            xb = x[index]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(step_model(xb), y[index])
            loss.backward()
            optimizer.step()
            total += loss.item()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) * epochs / (time.perf_counter() - start)


def dataloader_loop(model: nn.Module, x, y, batch_size: int, epochs: int, lr: float, seed: int) -> float:
    from torch.utils.data import DataLoader, TensorDataset

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            loss.item()
    return len(x) * epochs / (time.perf_counter() - start)


def guidl_loop(project, data: PreparedData, epochs: int, device: str) -> float:
    trainer = Trainer(project, data=data, epochs=epochs, device=device)
    trainer.setup()
    start = time.perf_counter()
    while trainer.epoch < epochs:
        trainer._run_epoch()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return len(data.train) * epochs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--models", default="mlp,mnist_cnn")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds, in alternating order; each method's best round counts "
                             "(default: 10 for the MLP, 3 for the CNN)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    data = synthetic(args.samples)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, device {device} ({name}), {args.samples:,} samples x "
          f"{args.epochs} epoch(s), batch 128, Adam, precision {args.precision}"
          f"{', channels-last' if args.channels_last else ''}{', compiled' if args.compile else ''}")
    for example in args.models.split(","):
        project = spec.load(ROOT / "examples" / f"{example}.guidl.json")
        project.data.batch_size = 128
        project.data.val_fraction = 0.0
        project.training.optimizer.params["lr"] = 0.001
        project.training.precision = args.precision
        project.training.channels_last = args.channels_last
        project.training.compile = args.compile
        torch.manual_seed(project.training.seed)
        initial = build(project, (1, 28, 28)).module
        x, y = data.train.x.to(device), data.train.y.to(device)
        runs = {
            "guidl": lambda: guidl_loop(project, data, args.epochs, str(device)),
            "hand": lambda: hand_loop(copy.deepcopy(initial).to(device), x, y, 128, args.epochs,
                                      0.001, project.training.seed, args.precision,
                                      args.channels_last, args.compile),
            "dataloader": lambda: dataloader_loop(copy.deepcopy(initial).to(device), data.train.x,
                                                  data.train.y, 128, args.epochs, 0.001,
                                                  project.training.seed),
        }
        figures: dict[str, list[float]] = {name: [] for name in runs}
        rounds = args.rounds or (10 if example == "mlp" else 3)
        for round_ in range(rounds):
            # Shared machines drift: alternate the order so no method always goes first.
            for name in (list(runs) if round_ % 2 == 0 else list(reversed(runs))):
                figures[name].append(runs[name]())
        best = {name: max(values) for name, values in figures.items()}
        paired = sorted(g / h for g, h in zip(figures["guidl"], figures["hand"]))
        median_ratio = paired[len(paired) // 2]
        print(f"{example:10s} guidl {best['guidl']:9,.0f}/s   hand-written {best['hand']:9,.0f}/s   "
              f"DataLoader {best['dataloader']:9,.0f}/s   guidl/hand {best['guidl'] / best['hand']:.3f}   "
              f"guidl/DataLoader {best['guidl'] / best['dataloader']:.3f}   "
              f"(median of {rounds} paired guidl/hand ratios {median_ratio:.3f})")


if __name__ == "__main__":
    main()
