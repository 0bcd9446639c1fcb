"""A model whose layers form a graph: branches, skip connections, merges.

``GraphModel`` holds each layer as a submodule named after its id (or
``<type>_<index>`` without one), so ``state_dict`` keys are the same on every
build of the same file. The forward plan is worked out once when the module
is built: which outputs each step takes, and after which step a value is no
longer needed and can be freed. Layers whose output never reaches the model's
output are not run.

A linear stack stays an ``nn.Sequential`` (existing checkpoints, bundles and
exports stay valid); code that walks a built model's layers goes through
``layer_modules`` so it works for both.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

#: The input's slot in the plan (as ``spec.graph.INPUT_INDEX``).
INPUT_SLOT = -1


class GraphModel(nn.Module):
    """Layers wired by index: ``inputs[i]`` lists the layers whose outputs
    layer ``i`` takes (-1: the model's input). The last layer is the output."""

    def __init__(self, layers: Sequence[tuple[str, nn.Module]], inputs: Sequence[Sequence[int]]):
        super().__init__()
        if len(layers) != len(inputs) or not layers:
            raise ValueError("a graph needs one inputs list per layer, and at least one layer")
        for key, module in layers:
            self.add_module(key, module)
        self.keys_in_order: tuple[str, ...] = tuple(key for key, _ in layers)
        self.inputs: tuple[tuple[int, ...], ...] = tuple(tuple(wired) for wired in inputs)
        self.plan = forward_plan(self.keys_in_order, self.inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[int, torch.Tensor] = {INPUT_SLOT: x}
        out = x
        for index, key, sources, free in self.plan:
            module = self._modules[key]
            if len(sources) == 1:
                out = module(values[sources[0]])
            else:
                out = module(*[values[source] for source in sources])
            for source in free:
                del values[source]
            values[index] = out
        return out


def forward_plan(keys: Sequence[str], inputs: Sequence[Sequence[int]]):
    """``(index, key, sources, free)`` per step that leads to the output, in
    order; ``free`` are the values last used by this step."""
    last = len(keys) - 1
    needed = {last}
    for index in range(last, -1, -1):  # the list is a topological order
        if index in needed:
            needed.update(source for source in inputs[index] if source >= 0)
    steps = [index for index in range(len(keys)) if index in needed]
    last_use: dict[int, int] = {}
    for index in steps:
        for source in inputs[index]:
            last_use[source] = index
    plan = []
    for index in steps:
        free = tuple(sorted({s for s in inputs[index] if last_use.get(s) == index}))
        plan.append((index, keys[index], tuple(inputs[index]), free))
    return tuple(plan)


def layer_modules(module: nn.Module) -> list[nn.Module]:
    """The modules of a built model's layers, in the project's order (an
    ``nn.Sequential``'s children or a ``GraphModel``'s layers)."""
    if isinstance(module, GraphModel):
        return [module._modules[key] for key in module.keys_in_order]
    if isinstance(module, nn.Sequential):
        return list(module)
    raise TypeError(f"not a guidl model: {type(module).__name__}")


def layer_names(module: nn.Module) -> list[str]:
    """The names of a built model's layers in its ``state_dict`` keys, in the
    project's order ("0", "1"... for a stack; the keys of a graph)."""
    if isinstance(module, GraphModel):
        return list(module.keys_in_order)
    return [str(index) for index in range(len(module))]


def is_graph(module: nn.Module) -> bool:
    return isinstance(module, GraphModel)


def unreached_parameters(module: nn.Module) -> list[str]:
    """Names of the parameters (that train) of layers whose output never
    reaches the model's output, in any graph inside ``module``: the forward
    pass skips those layers, so they get no gradients."""
    names = []
    for prefix, graph in module.named_modules():
        if not isinstance(graph, GraphModel):
            continue
        reached = {key for _, key, _, _ in graph.plan}
        for key in graph.keys_in_order:
            if key not in reached:
                names += [f"{prefix}.{key}.{name}" if prefix else f"{key}.{name}"
                          for name, parameter in graph._modules[key].named_parameters()
                          if parameter.requires_grad]
    return names
