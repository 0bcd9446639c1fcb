"""Checks of a project's task before training: do its networks fit the data
and each other? A generator must give the data's sample shape, a
discriminator one score per sample, an autoencoder its input back, and the
last activation must reach the range the data is scaled to.

Each mismatch is a ``Problem`` with the JSON path of the layer or field that
causes it; where one parameter fixes it, the fix is a ``SetParam`` the window
applies with one click (a ``LayerFix`` naming the network it belongs to).
What the file alone shows (a loss the task cannot learn with, a missing
discriminator) is checked when the file is read (``spec``); what needs the
dataset's facts is checked here.
"""

from __future__ import annotations

import copy
import dataclasses

from ..formatting import format_shape
from ..registry import LAYERS, LOSSES
from ..spec import Problem, Project
from ..spec.fixes import SetParam
from ..spec.project import Model
from .build import ModelReport, analyze
from .checks import Compatibility, LayerFix, check_compatibility
from .data import DatasetInfo, expected_input
from .tasks import expected_outputs, input_shapes

#: What each network is called in messages.
_TITLES = {("gan", "model"): "the generator", ("gan", "discriminator"): "the discriminator",
           ("reconstruction", "model"): "the autoencoder"}

#: The values a last activation can give: (lowest, highest).
_RANGES = {"Sigmoid": (0.0, 1.0), "Softmax": (0.0, 1.0), "Tanh": (-1.0, 1.0),
           "ReLU": (0.0, float("inf")), "Softplus": (0.0, float("inf")),
           "ELU": (-1.0, float("inf")), "GELU": (-0.17, float("inf")), "SiLU": (-0.28, float("inf"))}

#: The values of the data once scaled, by ``pixel_range`` (standardized data
#: has no bounds; most of it lies within a few deviations of 0).
_TARGETS = {"unit": (0.0, 1.0), "symmetric": (-1.0, 1.0)}

_ACTIVATION_FOR = {"unit": "Sigmoid", "symmetric": "Tanh"}

#: Layers whose padding decides the height and width they give.
_PADDED = ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d")

#: At most this many one-parameter edits are tried (each is one shape analysis).
_MAX_TRIES = 16


def _known(project: Project, info: DatasetInfo) -> DatasetInfo:
    """``info`` with the sample shape filled in where the catalogue leaves it
    to loading but the project says it (the text dataset's ``seq_len``)."""
    if info.input_shape:
        return info
    shape, _ = expected_input(project, info)
    return info if shape is None else dataclasses.replace(info, input_shape=tuple(shape))


def task_reports(project: Project, info: DatasetInfo) -> dict[str, ModelReport]:
    """Each network of ``project`` analysed with the input it gets in this task
    (a GAN's generator: the noise; its discriminator: a sample, with the
    one-hot class when conditional)."""
    info = _known(project, info)
    shapes = input_shapes(project, info)
    reports = {}
    for name, network in project.networks().items():
        if name == "discriminator" and project.task_type != "gan":
            continue  # kept in the file for when the project is a GAN again; unused till then
        spec = copy.deepcopy(network)
        # A generator takes noise whatever the data's type; the others take the data.
        spec.input_dtype = "float32" if (project.task_type == "gan" and name == "model") else info.input_dtype
        reports[name] = analyze(spec, shapes.get(name))
    return reports


def network_problems(name: str, report: ModelReport) -> list[Problem]:
    """``report.problems()`` with each path under the network's own key
    (``discriminator.layers[3]`` rather than ``model.layers[3]``)."""
    found = report.problems()
    if name == "model":
        return found
    return [Problem(name + p.path[len("model"):], p.message) if p.path.startswith("model") else p
            for p in found]


def task_problems(project: Project, info: DatasetInfo,
                  reports: dict[str, ModelReport] | None = None) -> tuple[list[Problem], list[str]]:
    """Everything that stops a task's project from training on this data:
    each network's own problems, then ``check_task``'s; and the warnings.
    For ``guidl summary`` and ``guidl train`` (exit 2 when there are problems)."""
    if reports is None:
        reports = task_reports(project, info)
    problems = [p for name, report in reports.items() for p in network_problems(name, report)]
    if problems:
        return problems, []  # shapes that do not even compute: nothing to compare yet
    result = check_task(project, reports, info)
    return result.problems, result.warnings


# -- the checks ---------------------------------------------------------------------------


def check_task(project: Project, reports: dict[str, ModelReport], info: DatasetInfo) -> Compatibility:
    """Does each network of the project's task fit the data and the loss?
    ``reports``: each network's analysis (``task_reports``) by name. A project
    without a task gets ``check_compatibility``'s answer unchanged. ``info``
    None (only loading can tell the data's facts): nothing to check yet."""
    if info is None:
        return Compatibility()
    info = _known(project, info)
    task = project.task_type
    if task is None or task == "text_generation":
        # Writing is classification of the next character: one score per
        # character of the vocabulary, checked as any classifier's output.
        return check_compatibility(project, reports["model"], info)
    result = Compatibility(target_form="values")  # the target is the data itself, or a score
    params = project.task_params()
    if info.input_dtype == "int64" or info.modality == "text":
        title = "an autoencoder" if task == "reconstruction" else "a GAN"
        result.problems.append(Problem("data.dataset", (
            f"is {project.data.dataset!r}, whose samples are character ids: {title} makes numbers "
            "like its samples, which ids are not; use image or table data (or task "
            "'text_generation' to write text)")))
        return result
    if task == "gan" and params.get("conditional") and not (info.task == "classification"
                                                           and info.num_classes):
        result.problems.append(Problem("task.params.conditional", (
            f"is true, but dataset {info.name!r} has no class labels to ask the generator for: "
            "set it to false, or use a dataset with classes")))
    shapes = input_shapes(project, info)
    for name, network in project.networks().items():
        wanted = shapes.get(name)
        if network.input_shape is not None and wanted is not None \
                and tuple(network.input_shape) != tuple(wanted):
            result.problems.append(Problem(f"{name}.input_shape", (
                f"is {list(network.input_shape)} but {_title(task, name)} takes {list(wanted)} "
                f"{_input_reason(task, name, params)}: remove {name}.input_shape or set it to "
                f"{list(wanted)}")))
    for name, wanted in expected_outputs(project, info).items():
        report = reports.get(name)
        if report is None or report.output_shape is None or not report.layers:
            continue  # no such network (the file's checks say so) or its own errors come first
        if tuple(report.output_shape) != tuple(wanted):
            _shape_problem(result, project, task, name, report, tuple(wanted))
    _range_checks(result, project, task, params, reports, info)
    return result


def _title(task: str, name: str) -> str:
    return _TITLES.get((task, name), f"the {name}")


def _input_reason(task: str, name: str, params: dict) -> str:
    if task == "gan" and name == "model":
        return (f"(noise_dim {params['noise_dim']}" + (" and one value per class" if params.get(
            "conditional") else "") + ")")
    if task == "gan":
        return "(a sample" + (" with one channel per class" if params.get("conditional") else "") + ")"
    return "(the data's samples)"


def _needs(task: str, name: str, wanted: tuple[int, ...]) -> str:
    if task == "gan" and name == "discriminator":
        return f"it must end in one score per sample, {format_shape(wanted)}"
    if task == "gan":
        return f"the data's samples are {format_shape(wanted)}"
    return f"its input is {format_shape(wanted)}"


def _shape_problem(result: Compatibility, project: Project, task: str, name: str,
                   report: ModelReport, wanted: tuple[int, ...]) -> None:
    """The network gives the wrong shape: a problem on the layer (and the
    parameter) that fixes it, with that fix when one parameter does it."""
    out = tuple(report.output_shape)
    said = f"{_title(task, name)} gives {format_shape(out)} but {_needs(task, name, wanted)}"
    network = project.network(name)
    found = _one_param_fix(network, report, wanted)
    if found is not None:
        index, param, value = found
        layer = report.layers[index]
        fix = f"set {param} of layer {index} ({layer.type}) to {_value(value)}"
        problem = Problem(f"{name}.layers[{index}].params.{param}", f"{said}: {fix}")
        result.problems.append(problem)
        result.layer_fixes.append(LayerFix(index, said, f"set {param} to {_value(value)}", problem,
                                           SetParam(index, param, value), network=name))
        return
    index, fix = _hint(network, report, out, wanted)
    problem = Problem(f"{name}.layers[{index}]", f"{said}: {fix}")
    result.problems.append(problem)
    result.layer_fixes.append(LayerFix(index, said, fix, problem, None, network=name))


def _value(value) -> str:
    return str(list(value)) if isinstance(value, tuple) else str(value)


def _one_param_fix(network: Model, report: ModelReport,
                   wanted: tuple[int, ...]) -> tuple[int, str, object] | None:
    """``(index, parameter, value)``: one parameter of one top-level layer that,
    changed, makes the network give ``wanted``, checked by analysing the
    network with it. Tried: the size of the last layer that sets the channels
    or features, then the padding of the last layer that changes the height
    and width."""
    out = tuple(report.output_shape)
    candidates: list[tuple[int, str, object]] = []
    if len(out) == len(wanted) and out[1:] == wanted[1:]:
        sized = _last_sized(report)
        if sized is not None:
            candidates.append((sized[0], sized[1], wanted[0]))
    elif len(out) == len(wanted) and len(out) >= 2 and out[0] == wanted[0]:
        candidates += _padding_candidates(report)
    for index, param, value in candidates[:_MAX_TRIES]:
        trial = copy.deepcopy(network)
        trial.layers[index].params[param] = value
        trial.input_dtype = report.input_dtype
        tried = analyze(trial, report.input_shape)
        if tried.ok and tried.output_shape is not None and tuple(tried.output_shape) == wanted:
            return index, param, value
    return None


def _last_sized(report: ModelReport) -> tuple[int, str] | None:
    """The last layer whose size parameter sets the output's first dimension."""
    for layer in reversed(report.layers):
        if layer.type not in LAYERS:
            return None  # a block: its own layers size the output
        names = LAYERS.get(layer.type).param_names
        for name in ("out_features", "out_channels", "hidden_size"):
            if name in names:
                return layer.index, name
    return None


def _resizing(report: ModelReport) -> int | None:
    """Index of the last layer that changes the height and width."""
    for layer in reversed(report.layers):
        if layer.input_shape is not None and layer.output_shape is not None \
                and len(layer.input_shape) == len(layer.output_shape) >= 2 \
                and tuple(layer.input_shape[1:]) != tuple(layer.output_shape[1:]):
            return layer.index
    return None


def _padding_candidates(report: ModelReport) -> list[tuple[int, str, object]]:
    index = _resizing(report)
    if index is None:
        return []
    layer = report.layers[index]
    if layer.type not in _PADDED:
        return []
    padding = layer.params.get("padding", 0)
    kernel = layer.params.get("kernel_size", 1)
    if not isinstance(padding, int) or isinstance(padding, bool):
        return []  # "same", or per-side values: not one number to change
    kernel = max(kernel) if isinstance(kernel, (list, tuple)) else int(kernel)
    values = sorted((p for p in range(0, kernel + 1) if p != padding), key=lambda p: abs(p - padding))
    found: list[tuple[int, str, object]] = [(index, "padding", p) for p in values]
    if layer.type.startswith("ConvTranspose"):
        stride = layer.params.get("stride", 1)
        stride = max(stride) if isinstance(stride, (list, tuple)) else int(stride)
        current = layer.params.get("output_padding", 0)
        found += [(index, "output_padding", p) for p in range(0, stride) if p != current]
    return found


def _size(shape: tuple[int, ...]) -> int:
    size = 1
    for d in shape:
        size *= d
    return size


def _hint(network: Model, report: ModelReport, out: tuple[int, ...],
          wanted: tuple[int, ...]) -> tuple[int, str]:
    """The layer to show a shape problem on, and what to change there, when no
    single parameter fixes it."""
    last = report.layers[-1].index
    size = _size(wanted)
    if len(wanted) == 1:
        if len(out) > 1 and _size(out) == size:
            return last, "end it with Flatten"
        if len(out) > 1:
            return last, f"end it with Flatten and a Linear layer with out_features {wanted[0]}"
        return last, f"end it with a Linear layer with out_features {wanted[0]}"
    if len(out) == 1:
        if out[0] == size:
            return last, f"end it with Unflatten(dim=1, unflattened_size={list(wanted)})"
        return last, (f"end it with a Linear layer with out_features {size} and "
                      f"Unflatten(dim=1, unflattened_size={list(wanted)})")
    area = "×".join(map(str, wanted[1:]))
    resizing = _resizing(report)
    if len(out) == len(wanted) and out[0] != wanted[0] and out[1:] != wanted[1:]:
        sized = _last_sized(report)
        if sized is None:
            return last, f"it needs {wanted[0]} channel(s) of {area}"
        index, param = sized
        first = f"set {param} of layer {index} ({report.layers[index].type}) to {wanted[0]}"
        # The channels fixed, does one more parameter give the height and width?
        trial = copy.deepcopy(network)
        trial.layers[index].params[param] = wanted[0]
        trial.input_dtype = report.input_dtype
        tried = analyze(trial, report.input_shape)
        then = _one_param_fix(trial, tried, wanted) if tried.ok and tried.output_shape else None
        if then is not None:
            return index, (f"{first}, and {then[1]} of layer {then[0]} ({report.layers[then[0]].type}) "
                           f"to {_value(then[2])}")
        return index, f"{first}, and change the layers that resize so that it gives {area}"
    if len(out) == len(wanted) and resizing is not None:
        layer = report.layers[resizing]
        what = ("its scale_factor or size" if layer.type == "Upsample" else
                "the kernel_size, stride or padding of the layers that resize (this is the last)")
        return resizing, f"change {what} so that it gives {area}"
    return last, f"make it give {format_shape(wanted)}"


def _range_checks(result: Compatibility, project: Project, task: str, params: dict,
                  reports: dict[str, ModelReport], info: DatasetInfo) -> None:
    """Can the last activation reach the values the data is scaled to, and does
    the loss fit them?"""
    scaled = params.get("pixel_range", "unit") if info.modality == "image" else "standardized"
    report = reports.get("model")
    last = _last_activation(report)
    end = last.type if last is not None else None
    loss = project.training.loss.type if project.training.loss is not None else None
    title = _title(task, "model")
    if task == "reconstruction" and loss in ("BCELoss", "BCEWithLogitsLoss") and loss in LOSSES:
        if scaled != "unit":
            if info.modality == "image":
                result.problems.append(Problem("task.params.pixel_range", (
                    f"is {scaled!r}, but {loss} needs targets between 0 and 1: set it to 'unit', "
                    "or use MSELoss")))
            else:
                result.problems.append(Problem("training.loss.type", (
                    f"{loss} needs targets between 0 and 1, but dataset {info.name!r} is not images "
                    "and is standardized (mean 0, deviation 1): use MSELoss or L1Loss")))
        if loss == "BCELoss" and end != "Sigmoid" and last is not None:
            problem = Problem("training.loss.type", (
                f"BCELoss needs probabilities between 0 and 1, but {title} ends with {end}: end it "
                "with Sigmoid, or use BCEWithLogitsLoss"))
            result.problems.append(problem)
            result.layer_fixes.append(LayerFix(
                last.index, f"BCELoss needs outputs between 0 and 1, but {end} does not give them",
                "add Sigmoid after it, or use BCEWithLogitsLoss", problem, None))
        if loss == "BCEWithLogitsLoss" and end == "Sigmoid":
            result.warnings.append(f"{title} ends with Sigmoid, but BCEWithLogitsLoss applies it "
                                   "itself: remove the Sigmoid layer, or use BCELoss")
        return  # the loss's own range rules hold; the rest is about MSE-like losses
    if task == "gan":
        discriminator = reports.get("discriminator")
        if discriminator is not None and discriminator.layers \
                and discriminator.layers[-1].type == "Sigmoid" and loss == "BCEWithLogitsLoss":
            index = discriminator.layers[-1].index
            problem = Problem(f"discriminator.layers[{index}]", (
                "the discriminator ends with Sigmoid, but BCEWithLogitsLoss applies it itself (its "
                "scores would be squashed twice and it could not learn): remove this layer"))
            result.problems.append(problem)
            result.layer_fixes.append(LayerFix(index, "BCEWithLogitsLoss applies Sigmoid itself",
                                               "remove this layer", problem, None,
                                               network="discriminator"))
    if end not in _RANGES or last is None:
        return
    low, high = _RANGES[end]
    if scaled in _TARGETS:
        target_low, target_high = _TARGETS[scaled]
        if low > target_low:
            said = (f"{title} ends with {end}, which gives {_range(low, high)}, but the data is "
                    f"scaled to {_range(target_low, target_high)} (pixel_range {scaled!r})")
            fix = f"end it with {_ACTIVATION_FOR[scaled]}" + (
                f", or set task.params.pixel_range to {_fitting_range(end)!r}" if _fitting_range(end) else "")
            problem = Problem("task.params.pixel_range", f"{said}: {fix}")
            result.problems.append(problem)
            result.layer_fixes.append(LayerFix(last.index, said, fix, problem, None))
        elif high < target_high:
            result.warnings.append(
                f"{title} ends with {end}, which gives {_range(low, high)}, but the data is scaled to "
                f"{_range(target_low, target_high)} (pixel_range {scaled!r}): it cannot reach the "
                f"brightest values; end it with {_ACTIVATION_FOR[scaled]}")
        elif (low, high) != (target_low, target_high) and high != float("inf"):
            result.warnings.append(
                f"{title} ends with {end}, which gives {_range(low, high)}, but the data is scaled to "
                f"{_range(target_low, target_high)} (pixel_range {scaled!r}): part of its range is "
                f"never used, which slows learning; end it with {_ACTIVATION_FOR[scaled]}"
                + (f" or set task.params.pixel_range to {_fitting_range(end)!r}" if _fitting_range(end)
                   else ""))
    elif high != float("inf") or low >= 0:
        where = ("pixel_range 'standardized'" if info.modality == "image" else
                 f"dataset {info.name!r} is standardized")
        result.warnings.append(
            f"{title} ends with {end}, which gives {_range(low, high)}, but standardized data "
            f"({where}) has values beyond it: remove the last activation"
            + (f", or set task.params.pixel_range to {_fitting_range(end)!r}"
               if info.modality == "image" and _fitting_range(end) else ""))


#: Layers that move values around without changing them: the range of a
#: network's output is that of the last layer before them.
_SHAPE_ONLY = ("Flatten", "Unflatten", "Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
               "PixelShuffle", "PixelUnshuffle", "ZeroPad2d", "Upsample")


def _last_activation(report: ModelReport | None):
    """The last layer of ``report`` that sets the output's values (a
    Sigmoid followed by Unflatten still bounds the output)."""
    if report is None or not report.layers:
        return None
    for layer in reversed(report.layers):
        if layer.type not in _SHAPE_ONLY:
            return layer
    return report.layers[-1]


def _fitting_range(end: str) -> str | None:
    low, high = _RANGES[end]
    if low >= 0 and high <= 1:
        return "unit"
    if low >= -1 and high <= 1:
        return "symmetric"
    return None


def _range(low: float, high: float) -> str:
    def number(x: float) -> str:
        return "∞" if x == float("inf") else f"{x:g}"
    return f"{number(low)}..{number(high)}"
