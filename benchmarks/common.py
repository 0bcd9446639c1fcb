"""What several benchmarks share."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def mlp_project(folder: Path, samples: int, epochs: int):
    """The MLP example on ``samples`` random MNIST-shaped samples (an .npz
    written to ``folder``), batch 128, Adam, CPU."""
    from guidl import spec

    rng = np.random.default_rng(0)
    path = folder / "mnist_shaped.npz"
    np.savez(path, x=rng.random((samples, 1, 28, 28), dtype=np.float32),
             y=rng.integers(0, 10, samples))
    project = spec.load(ROOT / "examples" / "mlp.guidl.json")
    project.data.dataset = "npz"
    project.data.params = {"path": str(path), "task": "classification"}
    project.data.batch_size = 128
    project.training.epochs = epochs
    project.training.device = "cpu"
    return project
