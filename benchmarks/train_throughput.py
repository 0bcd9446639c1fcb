"""Training throughput: guidl's trainer against hand-written PyTorch loops.

Same model (same initial weights), same data, seed, device and batch size:
60,000 MNIST-shaped samples, batch 128, Adam. Prints samples/s for

- guidl's Trainer (in-memory slicing, with its per-batch bookkeeping),
- a plain hand-written loop with in-memory slicing,
- the tutorial-style DataLoader(TensorDataset) loop,

and the ratios, for the MLP and the MNIST CNN examples. Figures only; it
never fails on time.

    python benchmarks/train_throughput.py [--samples 60000] [--epochs 1] [--device cpu]
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


def hand_loop(model: nn.Module, x, y, batch_size: int, epochs: int, lr: float, seed: int) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        total = 0.0
        for i in range(0, len(x), batch_size):
            index = order[i:i + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            total += loss.item()
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
    return len(data.train) * epochs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds, in alternating order; each method's best round counts "
                             "(default: 10 for the MLP, 3 for the CNN)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    data = synthetic(args.samples)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, "
          f"{args.samples:,} samples x {args.epochs} epoch(s), batch 128, Adam")
    for example in ("mlp", "mnist_cnn"):
        project = spec.load(ROOT / "examples" / f"{example}.guidl.json")
        project.data.batch_size = 128
        project.data.val_fraction = 0.0
        project.training.optimizer.params["lr"] = 0.001
        torch.manual_seed(project.training.seed)
        initial = build(project, (1, 28, 28)).module
        x, y = data.train.x.to(device), data.train.y.to(device)
        runs = {
            "guidl": lambda: guidl_loop(project, data, args.epochs, str(device)),
            "hand": lambda: hand_loop(copy.deepcopy(initial).to(device), x, y, 128, args.epochs,
                                      0.001, project.training.seed),
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
