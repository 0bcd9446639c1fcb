"""Checks made before the first batch: does the model fit the data, and does
the loss fit both? Each problem says what to change."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import LAYERS, LOSSES
from ..spec import Problem, Project
from ..formatting import format_shape
from .build import ModelReport
from .data import DatasetInfo


@dataclass
class Compatibility:
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: How targets are shaped for the loss: ``index`` (class ids), ``binary``
    #: (one float column), ``one_hot`` or ``values`` (regression).
    target_form: str = "index"


def _last_sized_layer(report: ModelReport) -> str:
    for layer in reversed(report.layers):
        entry = LAYERS.get(layer.type)
        for name in ("out_features", "out_channels", "hidden_size"):
            if name in entry.param_names:
                return f"set {name} of layer {layer.index} ({layer.type}) to"
    return "end the model with a Linear layer with out_features"


def check_compatibility(project: Project, report: ModelReport, info: DatasetInfo) -> Compatibility:
    result = Compatibility()
    loss = LOSSES.get(project.training.loss.type)
    name = loss.name
    out = report.output_shape
    dataset = f"dataset {info.name!r}"
    where = "training.loss"
    if out is None:
        return result  # the model report already says what is wrong
    last = report.layers[-1].type if report.layers else None
    classification = info.task == "classification"
    if loss.info["targets"] == "class_index":
        if not classification:
            result.problems.append(Problem(where, f"{name} needs class labels, but {dataset} has "
                                                  "numeric targets (regression): use MSELoss, L1Loss, "
                                                  "SmoothL1Loss or HuberLoss"))
        elif len(out) != 1 or out[0] != info.num_classes:
            result.problems.append(Problem(where, (
                f"{name} needs one score per class, {format_shape((info.num_classes,))}, but the model "
                f"gives {format_shape(out)} for {info.num_classes} classes: "
                f"{_last_sized_layer(report)} {info.num_classes}")))
        if name == "CrossEntropyLoss" and last == "Softmax":
            result.warnings.append("the model ends with Softmax, but CrossEntropyLoss applies softmax "
                                   "itself: remove the Softmax layer for faster, steadier training")
        if name == "NLLLoss" and last != "LogSoftmax":
            result.warnings.append("NLLLoss expects log-probabilities: end the model with LogSoftmax "
                                   "(or use CrossEntropyLoss)")
        result.target_form = "index"
    elif name in ("BCELoss", "BCEWithLogitsLoss"):
        if name == "BCELoss" and last != "Sigmoid":
            result.problems.append(Problem(where, "BCELoss needs probabilities between 0 and 1: end "
                                                  "the model with Sigmoid, or use BCEWithLogitsLoss"))
        if classification:
            if info.num_classes == 2 and out == (1,):
                result.target_form = "binary"
            elif out == (info.num_classes,):
                result.target_form = "one_hot"
            else:
                result.problems.append(Problem(where, (
                    f"{name} on {info.num_classes} classes needs the model to give (1,) for two "
                    f"classes or {format_shape((info.num_classes,))}, but it gives {format_shape(out)}: "
                    f"{_last_sized_layer(report)} {1 if info.num_classes == 2 else info.num_classes}")))
        else:
            result.target_form = "values"
            if out != (info.num_outputs,):
                result.problems.append(Problem(where, (
                    f"each target has {info.num_outputs} value(s) but the model gives {format_shape(out)}: "
                    f"{_last_sized_layer(report)} {info.num_outputs}")))
    else:
        if classification:
            result.problems.append(Problem(where, (
                f"{name} compares numbers, but {dataset} has class labels: use CrossEntropyLoss"
                + (" (or BCEWithLogitsLoss for two classes)" if info.num_classes == 2 else ""))))
        elif out != (info.num_outputs,):
            result.problems.append(Problem(where, (
                f"each target has {info.num_outputs} value(s) but the model gives {format_shape(out)}: "
                f"{_last_sized_layer(report)} {info.num_outputs}")))
        result.target_form = "values"
    return result
