"""Graph models: guidl's GraphModel against the same network written by hand.

Two networks on MNIST-shaped noise, each built from a guidl project and
written by hand as an ``nn.Module`` (the same layers, the same initial
weights, checked to give the same outputs):

- the small ResNet example (``examples/resnet_mnist.guidl.json``: residual
  blocks, a block with a 1x1 convolution on its shortcut),
- an MLP with skip connections (a block of Linear-ReLU-Linear-Add-ReLU
  repeated 4 times, width 128): tiny layers, so the per-layer cost of
  running a graph shows most.

Rounds alternate the order of the contenders (shared machines drift) and
print samples/s (each one's fastest round) for

- ``hand``: the hand-written module in a plain training loop (Adam,
  cross-entropy, in-memory slicing),
- ``graph``: guidl's built ``GraphModel`` in that same loop (the model alone
  differs),
- ``guidl``: guidl's Trainer training the project (its loop and bookkeeping
  too),

with graph/hand and guidl/hand, and the median of the rounds' paired
ratios. Figures only; it never fails on time.

    python benchmarks/graph_throughput.py [--models resnet,mlp_skip] [--rounds 30]
        [--samples N] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from torch import nn

from guidl import spec
from guidl.engine.build import build
from guidl.engine.data import DatasetInfo, PreparedData, Split
from guidl.engine.trainer import Trainer, resolve_device

ROOT = Path(__file__).resolve().parent.parent
BATCH = 128
LR = 0.001


# -- the networks written by hand (layers created in the project's order) -------------------

class HandResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + x)


class HandDownsampleBlock(nn.Module):
    def __init__(self, channels_in: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Conv2d(channels_in, channels, 1, stride=stride)
        self.shortcut_bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut_bn(self.shortcut(x)))


class HandResNet(nn.Module):
    """``examples/resnet_mnist.guidl.json`` by hand."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.stage1 = nn.Sequential(HandResidualBlock(16), HandResidualBlock(16))
        self.stage2 = HandDownsampleBlock(16, 32, 2)
        self.stage2b = HandResidualBlock(32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.stem(x))))
        x = self.stage2b(self.stage2(self.stage1(x)))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class HandSkipMLP(nn.Module):
    def __init__(self, width: int, repeat: int):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc_in = nn.Linear(28 * 28, width)
        self.blocks = nn.ModuleList(nn.ModuleList([nn.Linear(width, width), nn.Linear(width, width)])
                                    for _ in range(repeat))
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        x = torch.relu(self.fc_in(self.flatten(x)))
        for first, second in self.blocks:
            x = torch.relu(second(torch.relu(first(x))) + x)
        return self.head(x)


def skip_mlp_project(width: int = 128, repeat: int = 4) -> spec.Project:
    """The MLP with skip connections as a guidl project (a block used ``repeat`` times)."""
    def linear(layer_id: str, out_features) -> dict:
        return {"id": layer_id, "type": "Linear", "params": {"out_features": out_features}}

    doc = {"format": "guidl-project", "version": 2, "name": "MLP with skips", "model": {
        "input_shape": [1, 28, 28],
        "blocks": {"SkipBlock": {
            "params": [{"name": "width", "kind": "int", "default": width, "minimum": 1}],
            "layers": [linear("fc1", "$width"), {"type": "ReLU"}, linear("fc2", "$width"),
                       {"id": "add", "type": "Add", "inputs": ["fc2", "input"]}, {"type": "ReLU"}]}},
        "layers": [{"type": "Flatten"}, linear("fc_in", width), {"type": "ReLU"},
                   {"id": "blocks", "type": "SkipBlock", "params": {"width": width}, "repeat": repeat},
                   linear("head", 10)]},
        "data": {"dataset": "mnist_sample"}, "training": {}}
    return spec.loads(json.dumps(doc))


MODELS = {
    "resnet": (lambda: spec.load(ROOT / "examples" / "resnet_mnist.guidl.json"), HandResNet, 1_280),
    "mlp_skip": (skip_mlp_project, lambda: HandSkipMLP(128, 4), 6_400),
}


# -- the loops --------------------------------------------------------------------------

def synthetic(samples: int, seed: int = 0) -> PreparedData:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (samples,), generator=generator)
    info = DatasetInfo("synthetic", "MNIST-shaped noise", "image", "classification", (1, 28, 28),
                       "float32", 10, [str(i) for i in range(10)], None, {"train": samples})
    return PreparedData(info, Split(x, y), None, None, None)


class PlainRun:
    """A plain PyTorch loop over ``x``, one epoch per call (Adam as guidl
    takes it: fused where torch has it), the model and optimizer kept between
    calls."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int):
        self.model, self.x, self.y = model, x, y
        self.optimizer = torch.optim.Adam(model.parameters(), lr=LR,
                                          fused=x.device.type in ("cpu", "cuda"))
        self.loss_fn = nn.CrossEntropyLoss()
        self.generator = torch.Generator().manual_seed(seed)

    def epoch(self) -> float:
        """Seconds one epoch takes."""
        x, y, model, optimizer = self.x, self.y, self.model, self.optimizer
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(x), generator=self.generator).to(x.device)
        for i in range(0, len(x), BATCH):
            index = order[i:i + BATCH]
            optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            loss.item()
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start


class GuidlRun:
    """guidl's Trainer on the project, one epoch per call."""

    def __init__(self, project, data: PreparedData, device: str):
        self.trainer = Trainer(project, data=data, epochs=1_000_000, device=device)
        self.trainer.setup()

    def epoch(self) -> float:
        start = time.perf_counter()
        self.trainer._run_epoch()
        if self.trainer.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start


def same_network(graph: nn.Module, hand: nn.Module) -> None:
    """Copy the graph's weights into the hand-written module (both list their
    parameters and buffers in the same order) and check both compute the same."""
    graph_state, hand_state = graph.state_dict(), hand.state_dict()
    assert [v.shape for v in graph_state.values()] == [v.shape for v in hand_state.values()], \
        "the hand-written module has other parameters than the graph"
    hand.load_state_dict(dict(zip(hand_state, graph_state.values())))
    x = torch.randn(4, 1, 28, 28)
    graph.eval(), hand.eval()
    with torch.no_grad():
        assert torch.allclose(graph(x), hand(x), atol=1e-5), "the two networks compute differently"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet,mlp_skip")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--samples", type=int, default=None,
                        help="training samples per round (default: 1,280 for the ResNet, 6,400 for the MLP)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch's CPU threads (default: torch's choice); 1 steadies the "
                             "figures on a busy machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, device {device} ({name}), batch {BATCH}, Adam, "
          f"{args.rounds} rounds of one epoch each")
    for model_name in args.models.split(","):
        make_project, make_hand, default_samples = MODELS[model_name]
        samples = args.samples or default_samples
        project = make_project()
        project.data.batch_size = BATCH
        project.data.val_fraction = 0.0
        project.training.optimizer = spec.Component("Adam", {"lr": LR})
        project.training.scheduler = None
        project.training.device = str(device)
        data = synthetic(samples)
        x, y = data.train.x.to(device), data.train.y.to(device)
        torch.manual_seed(project.training.seed)
        built = build(project, (1, 28, 28))
        hand = make_hand()
        same_network(built.module, hand)
        assert sum(p.numel() for p in hand.parameters()) == built.report.total_params
        runs = {
            "hand": PlainRun(copy.deepcopy(hand).to(device), x, y, project.training.seed),
            "graph": PlainRun(copy.deepcopy(built.module).to(device), x, y, project.training.seed),
            "guidl": GuidlRun(project, data, str(device)),
        }
        for run in runs.values():
            run.epoch()  # warm-up: allocator, kernels, caches
        seconds: dict[str, list[float]] = {key: [] for key in runs}
        for round_ in range(args.rounds):
            # Short rounds, the order alternating: a shared machine's drift
            # reaches every contender alike.
            order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
            for key in order:
                seconds[key].append(runs[key].epoch())
        # The fastest round of each: what the machine gives when nothing else
        # runs (a spike from another program slows a round, never speeds one).
        rate = {key: samples / min(values) for key, values in seconds.items()}

        def median_ratio(key):
            paired = sorted(h / t for t, h in zip(seconds[key], seconds["hand"]))
            return paired[len(paired) // 2]

        print(f"{model_name:9s} ({built.report.total_params:,} parameters)  "
              f"hand {rate['hand']:8,.0f}/s  graph {rate['graph']:8,.0f}/s  guidl {rate['guidl']:8,.0f}/s  "
              f"graph/hand {rate['graph'] / rate['hand']:.3f} (median round {median_ratio('graph'):.3f})  "
              f"guidl/hand {rate['guidl'] / rate['hand']:.3f} (median round {median_ratio('guidl'):.3f})")


if __name__ == "__main__":
    main()
