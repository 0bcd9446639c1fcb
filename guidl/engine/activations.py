"""What backpropagation keeps inside a layer that is a whole network.

A plain layer keeps about its output, which the model report counts. A
pretrained backbone (a ResNet, a ViT) keeps the tensors of its hundreds of
inner operations: resnet18 on 224x224 images keeps ~22 MB per sample where
its output is 2 KB. Those are measured here by running the layer once in
training mode on the ``meta`` device, which has shapes and no storage, with
autograd's saved-tensor hooks: every tensor an operation saves for its
backward pass passes through them, so nothing is guessed per architecture.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

#: Samples in the measuring batch: more than one, as BatchNorm in training needs.
_BATCH = 2


def saved_activation_bytes(module: nn.Module, shape: tuple[int, ...], dtype: torch.dtype) -> int:
    """Bytes per sample that training ``module`` (on a meta device) keeps for
    its backward pass, all its parameters trainable, not counting its input
    and its weights (the model report counts those). Approximate: a tensor
    saved as two views counts twice, and the kernels a real device picks
    (a fused attention) may keep less."""
    parameters = {id(p) for p in module.parameters()}
    sample = torch.empty((_BATCH, *shape), dtype=dtype, device="meta")
    # Each saved tensor once, by identity; held until the sum so no id is reused.
    saved: dict[int, torch.Tensor] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if id(tensor) not in parameters and tensor is not sample and tensor.device.type == "meta":
            saved[id(tensor)] = tensor
        return tensor

    was_training = module.training
    try:
        with warnings.catch_warnings(), torch.enable_grad(), \
                torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            warnings.simplefilter("ignore")  # the shape analysis recorded the layer's warnings
            module.train()(sample)
    except (RuntimeError, ValueError, TypeError, NotImplementedError, AssertionError):
        # The evaluation-mode forward worked (the layer fits); an operation
        # without a meta kernel in training mode leaves its insides uncounted.
        return 0
    finally:
        module.train(was_training)
    total = sum(t.numel() * t.element_size() for t in saved.values())
    return total // _BATCH
