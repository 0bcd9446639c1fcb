"""A Keras-style text summary of a model report."""

from __future__ import annotations

from ..formatting import format_bytes, format_shape
from .build import ModelReport

WIDTH = 78


def _batched(shape) -> str:
    return "?" if shape is None else format_shape(("None", *shape))


def summary_text(report: ModelReport, name: str = "") -> str:
    rule, double = "_" * WIDTH, "=" * WIDTH
    header = f"{'#':>3}  {'Layer (type)':<30}{'Output Shape':<28}{'Param #':>15}"
    lines = [f'Model: "{name}"' if name else "Model", rule, header, double]
    lines.append(f"{'':>3}  {'Input':<30}{_batched(report.input_shape):<28}{'':>15}")
    for layer in report.layers:
        label = layer.label if len(layer.label) <= 29 else layer.label[:26] + "..."
        lines.append(f"{layer.index:>3}  {label:<30}{_batched(layer.output_shape):<28}"
                     f"{layer.param_count:>15,}")
    lines.append(double)
    total, trainable = report.total_params, report.trainable_params
    lines += [
        f"Total params: {total:,} ({format_bytes(total * 4)})",
        f"Trainable params: {trainable:,} ({format_bytes(trainable * 4)})",
        f"Non-trainable params: {total - trainable:,} ({format_bytes((total - trainable) * 4)})",
        f"Input dtype: {report.input_dtype}; activations per sample: "
        f"{format_bytes(report.activation_bytes())}",
    ]
    notes = [f"note: layer {layer.index} ({layer.type}): {warning}"
             for layer in report.layers for warning in layer.warnings]
    return "\n".join(lines + notes) + "\n"
