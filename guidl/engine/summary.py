"""A Keras-style text summary of a model report."""

from __future__ import annotations

from ..formatting import format_bytes, format_shape
from .build import ModelReport

WIDTH = 78
CONNECTED_WIDTH = 24


def _batched(shape) -> str:
    return "?" if shape is None else format_shape(("None", *shape))


def _connected(report: ModelReport, sources: list[int]) -> str:
    """What a layer takes, as Keras's "Connected to": ids, else ``#index``."""
    names = []
    for source in sources:
        if source < 0:
            names.append("input")
        else:
            layer = report.layers[source]
            names.append(layer.id or f"#{source}")
    return ", ".join(names)


def _frozen_mark(layer) -> str:
    """"frozen" for a frozen layer, "partly frozen" for a block use with a
    frozen layer inside, else ""."""
    if layer.error is not None or layer.param_count == 0 or layer.trainable_count == layer.param_count:
        return ""
    return "frozen" if layer.trainable_count == 0 else "partly frozen"


def summary_text(report: ModelReport, name: str = "") -> str:
    graph = report.is_graph if report.layers else False
    width = WIDTH + (CONNECTED_WIDTH if graph else 0)
    rule, double = "_" * width, "=" * width
    header = f"{'#':>3}  {'Layer (type)':<30}{'Output Shape':<28}{'Param #':>15}"
    if graph:
        header = (header + "  Connected to").rstrip()
    lines = [f'Model: "{name}"' if name else "Model", rule, header, double]
    lines.append(f"{'':>3}  {'Input':<30}{_batched(report.input_shape):<28}{'':>15}".rstrip())
    for layer in report.layers:
        text = layer.label if not layer.id else f"{layer.id} ({layer.label})"
        label = text if len(text) <= 29 else text[:26] + "..."
        row = f"{layer.index:>3}  {label:<30}{_batched(layer.output_shape):<28}{layer.param_count:>15,}"
        if graph:
            row += f"  {_connected(report, layer.inputs)}"
        frozen = _frozen_mark(layer)
        if frozen:
            row += f"  [{frozen}]"
        lines.append(row)
    lines.append(double)
    total, trainable = report.total_params, report.trainable_params
    lines += [
        f"Total params: {total:,} ({format_bytes(total * 4)})",
        f"Trainable params: {trainable:,} ({format_bytes(trainable * 4)})",
        f"Non-trainable params: {total - trainable:,} ({format_bytes((total - trainable) * 4)})",
    ]
    frozen = [layer for layer in report.layers if _frozen_mark(layer)]
    if frozen:
        lines.append(f"Frozen params: {report.frozen_params:,} in "
                     + ", ".join(f"#{layer.index} ({layer.id or layer.type})" for layer in frozen)
                     + " (they do not train)")
    activations, unfrozen = report.activation_bytes(), report.activation_bytes(all_trainable=True)
    lines += [
        f"Input dtype: {report.input_dtype}; activations per sample: {format_bytes(activations)}"
        # Frozen layers that no gradient reaches keep nothing inside while training.
        + (f" ({format_bytes(unfrozen)} with every layer trainable)" if unfrozen != activations else ""),
    ]
    unused = [layer for layer in report.unused() if layer.error is None]
    if unused:
        lines.append("Unused outputs (nothing takes them; only the last layer's output is the "
                     "model's): " + ", ".join(layer.id or f"#{layer.index} ({layer.type})"
                                             for layer in unused))
    notes = [f"note: layer {layer.index} ({layer.type}): {warning}"
             for layer in report.layers for warning in layer.warnings
             if not (layer in unused and warning.startswith("its output is not used"))]
    return "\n".join(lines + notes) + "\n"
