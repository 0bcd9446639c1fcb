"""Training in several processes with DistributedDataParallel.

``torchrun --nproc_per_node N -m guidl train PROJECT`` starts N copies of
``guidl train``; torchrun's environment (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) tells each copy who it is.
Every process builds the same model, trains on its own shard of each epoch's
shuffled data and averages its gradients with the others' (gloo on the CPU,
NCCL on CUDA GPUs, one GPU per process), so all of them hold the same weights
after every step. Process 0 alone writes the run folder and prints progress.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from .graph import unreached_parameters

BACKENDS = ("auto", "gloo", "nccl")


class DistributedSetupError(ValueError):
    """The environment, the device and the backend do not go together; the
    message says what to change."""


def shard(order: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Process ``rank``'s part of an epoch's permutation ``order``.

    Like ``DistributedSampler``: the permutation is padded, by wrapping around
    to its start, to a multiple of ``world_size`` and each process takes its
    contiguous ``1/world_size`` of it, so all processes take the same number
    of samples and batches (one of them stopping early would leave the others
    waiting for its gradients).
    """
    n = len(order)
    if world_size == 1 or n == 0:
        return order
    per_rank = shard_size(n, world_size)
    padding = per_rank * world_size - n
    if padding:
        order = torch.cat([order, order.repeat(math.ceil(padding / n))[:padding]])
    return order[rank * per_rank:(rank + 1) * per_rank]


def shard_size(n: int, world_size: int) -> int:
    """Samples each process trains on per epoch when the split holds ``n``."""
    return math.ceil(n / world_size)


@dataclass
class DistributedContext:
    """Who this process is among those training together, and how they talk."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    backend: str  # "gloo" or "nccl"
    device: torch.device
    notes: list[str] = field(default_factory=list)
    _owns_group: bool = field(default=False, repr=False)

    @property
    def is_main(self) -> bool:
        """Process 0 writes the run folder and prints."""
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: str = "auto", backend: str = "auto",
                         environ: Mapping[str, str] | None = None) -> "DistributedContext | None":
        """The context torchrun's variables describe, or None for a single
        process (no ``WORLD_SIZE``, or 1). ``device`` is the project's device
        (``auto``, ``cpu``, ``cuda``...); ``backend`` is ``auto``, ``gloo`` or
        ``nccl``. Starts nothing: call ``start()``."""
        environ = os.environ if environ is None else environ
        try:
            world_size = int(environ.get("WORLD_SIZE", "1") or "1")
            if world_size <= 1:
                return None
            rank = int(environ["RANK"])
            local_rank = int(environ.get("LOCAL_RANK", rank))
            local_world_size = int(environ.get("LOCAL_WORLD_SIZE", world_size))
        except (KeyError, ValueError) as error:
            raise DistributedSetupError(
                f"WORLD_SIZE is set but the other variables torchrun sets are missing or not numbers "
                f"({error}); start the processes with torchrun") from None
        if backend not in BACKENDS:
            raise DistributedSetupError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
        notes: list[str] = []
        kind = device.split(":")[0]
        if kind == "auto":
            kind = "cuda" if torch.cuda.is_available() else "cpu"
        if kind not in ("cpu", "cuda"):
            raise DistributedSetupError(
                f"device {device!r} cannot train in several processes: use the CPU (gloo) or CUDA "
                "GPUs (nccl)")
        if kind == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if count == 0:
                raise DistributedSetupError(
                    f"device {device!r} is not available: this machine has no usable CUDA GPU; "
                    "train on the CPU with --device cpu")
            if local_world_size > count:
                raise DistributedSetupError(
                    f"torchrun started {local_world_size} processes on this machine but it has "
                    f"{count} CUDA GPU(s), and each process needs its own: use --nproc_per_node "
                    f"{count}, or --device cpu")
            if ":" in device:
                notes.append(f"device {device!r}: with several processes each one uses the GPU "
                             "of its local rank (cuda:LOCAL_RANK)")
            torch_device = torch.device("cuda", local_rank)
        else:
            torch_device = torch.device("cpu")
        if backend == "auto":
            backend = "nccl" if kind == "cuda" else "gloo"
        if backend == "nccl" and kind != "cuda":
            raise DistributedSetupError(
                "the nccl backend needs CUDA GPUs and this run trains on the CPU: use --backend "
                "gloo (or auto)")
        if backend == "nccl" and not torch.distributed.is_nccl_available():
            raise DistributedSetupError("this PyTorch build has no NCCL: use --backend gloo")
        return cls(rank, local_rank, world_size, local_world_size, backend, torch_device, notes)

    # -- the process group -------------------------------------------------------------

    def start(self) -> None:
        """Join the other processes (blocks until all of them are here)."""
        import torch.distributed as dist

        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if not dist.is_initialized():
            extra = {"device_id": self.device} if self.backend == "nccl" else {}
            dist.init_process_group(self.backend, rank=self.rank, world_size=self.world_size,
                                    **extra)
            self._owns_group = True

    def close(self) -> None:
        import torch.distributed as dist

        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self._owns_group = False

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in DistributedDataParallel (which makes every process
        start from process 0's weights). A graph with layers whose output
        never reaches the model's output has parameters that get no
        gradients: only then is DDP told to look for them after each
        backward pass (a cost on every step), else it would wait for them."""
        from torch.nn.parallel import DistributedDataParallel

        unused = bool(unreached_parameters(module))
        if self.device.type == "cuda":
            return DistributedDataParallel(module, device_ids=[self.device.index],
                                           output_device=self.device.index,
                                           find_unused_parameters=unused)
        return DistributedDataParallel(module, find_unused_parameters=unused)

    def all_reduce(self, values: list[float], op: str = "sum") -> list[float]:
        """``values`` combined over all processes (``sum``, ``max`` or ``min``);
        every process must call this at the same point."""
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX,
                                    "min": dist.ReduceOp.MIN}[op])
        return tensor.tolist()
