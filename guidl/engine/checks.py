"""Checks made before the first batch: does the model fit the data, and does
the loss fit both? Each problem says what to change.

The window runs the same checks as the model is edited (``report_compatibility``),
with the loaded data's facts or, before loading, what the dataset catalogue
knows (``catalogue_info``), so a last layer of the wrong size is shown on that
layer with its fix before Train is pressed."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import DATASETS, LAYERS, LOSSES
from ..spec import Problem, Project
from ..formatting import format_shape
from ..spec.fixes import SetParam
from .build import ModelReport
from .data import VOCAB, DatasetInfo


@dataclass
class LayerFix:
    """A problem that one layer's size fixes: shown on that layer."""

    index: int
    error: str
    fix: str
    problem: Problem  # the same problem, as the trainer reports it
    action: SetParam | None = None  # the fix, applicable with one click
    #: The network the layer belongs to: ``model`` or a GAN's ``discriminator``.
    network: str = "model"


@dataclass
class Compatibility:
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: How targets are shaped for the loss: ``index`` (class ids), ``binary``
    #: (one float column), ``one_hot`` or ``values`` (regression).
    target_form: str = "index"
    layer_fixes: list[LayerFix] = field(default_factory=list)


def _last_sized(report: ModelReport) -> tuple[int, str, str] | None:
    """``(index, type, parameter)`` of the last layer whose size sets the output's:
    its output is the model's (the layers after it keep the shape), so one
    parameter fixes the size. None when none does (a convolution before
    Flatten gives channels x height x width: its out_channels cannot)."""
    for layer in reversed(report.layers):
        if layer.type not in LAYERS:
            return None  # a block ends the model: its own layers size the output
        entry = LAYERS.get(layer.type)
        for name in ("out_features", "out_channels", "hidden_size"):
            if name in entry.param_names:
                if layer.output_shape != report.output_shape:
                    return None
                return layer.index, layer.type, name
    return None


def _last_sized_layer(report: ModelReport) -> str:
    found = _last_sized(report)
    if found is None:
        return "end the model with a Linear layer with out_features"
    index, type_, name = found
    return f"set {name} of layer {index} ({type_}) to"


def _size_problem(result: Compatibility, report: ModelReport, message: str, wanted: int,
                  needs: str) -> None:
    """The model's output has the wrong size: ``message`` for the trainer, and,
    when the output is a vector, the same problem on the layer that sizes it."""
    flat = report.output_shape is not None and len(report.output_shape) == 1
    fix = (f"{_last_sized_layer(report)} {wanted}" if flat else
           f"end the model with Flatten and a Linear layer with out_features {wanted}")
    problem = Problem("training.loss", f"{message}: {fix}")
    result.problems.append(problem)
    found = _last_sized(report)
    if found is not None and flat:
        index, _, name = found
        result.layer_fixes.append(LayerFix(
            index, f"the model gives {format_shape(report.output_shape)} but {needs}",
            f"set {name} to {wanted}", problem, SetParam(index, name, wanted)))


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
            _size_problem(result, report, (
                f"{name} needs one score per class, {format_shape((info.num_classes,))}, but the model "
                f"gives {format_shape(out)} for {info.num_classes} classes"), info.num_classes,
                f"{name} needs one score per class of {dataset}, {format_shape((info.num_classes,))}")
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
                wanted = 1 if info.num_classes == 2 else info.num_classes
                _size_problem(result, report, (
                    f"{name} on {info.num_classes} classes needs the model to give (1,) for two "
                    f"classes or {format_shape((info.num_classes,))}, but it gives {format_shape(out)}"),
                    wanted, f"{name} on the {info.num_classes} classes of {dataset} needs "
                    f"{format_shape((wanted,))}")
        else:
            result.target_form = "values"
            if out != (info.num_outputs,):
                _size_problem(result, report, (
                    f"each target has {info.num_outputs} value(s) but the model gives {format_shape(out)}"),
                    info.num_outputs, f"each target of {dataset} has {info.num_outputs} value(s)")
    else:
        if classification:
            result.problems.append(Problem(where, (
                f"{name} compares numbers, but {dataset} has class labels: use CrossEntropyLoss"
                + (" (or BCEWithLogitsLoss for two classes)" if info.num_classes == 2 else ""))))
        elif out != (info.num_outputs,):
            _size_problem(result, report, (
                f"each target has {info.num_outputs} value(s) but the model gives {format_shape(out)}"),
                info.num_outputs, f"each target of {dataset} has {info.num_outputs} value(s)")
        result.target_form = "values"
    return result


#: Classes of the generated point sets: a fixed count, or the parameter that sets it.
_POINT_CLASSES: dict[str, int | str] = {"moons": 2, "circles": 2, "xor": 2, "spirals": "classes",
                                        "blobs": "centers"}


def catalogue_info(project: Project) -> DatasetInfo | None:
    """What the catalogue says of the project's dataset without loading it,
    as far as the checks need it (task and class count); None when only
    loading can tell (the user's own files)."""
    name = project.data.dataset
    if name not in DATASETS:
        return None
    entry = DATASETS.get(name)
    if entry.info.get("task") != "classification":
        return None
    if name in _POINT_CLASSES:
        count = _POINT_CLASSES[name]
        if isinstance(count, str):
            try:
                count = int(entry.resolve(project.data.params)[count])
            except (KeyError, TypeError, ValueError):
                return None
    elif entry.info.get("modality") == "text":
        count = len(VOCAB)
    elif "num_classes" in entry.info:
        count = int(entry.info["num_classes"])
    else:
        return None
    return DatasetInfo(name=name, title=entry.info.get("title", name), modality=entry.info["modality"],
                       task="classification", input_shape=tuple(entry.info.get("input_shape", ())),
                       input_dtype="int64" if entry.info["modality"] == "text" else "float32",
                       num_classes=count, class_names=None, num_outputs=None)


def report_compatibility(project: Project, report: ModelReport, info: DatasetInfo | None,
                         network: str = "model") -> Compatibility | None:
    """Add what ``check_compatibility`` finds to ``report``: a size problem on
    the layer that fixes it (with the fix), any other as a problem of the
    model. ``info`` is the loaded data's, else pass ``catalogue_info(project)``;
    None checks nothing.

    A project with a task is checked by ``task_checks.check_task``: ``report``
    is then the analysis of ``network`` (``model`` or ``discriminator``), the
    one the window shows; the other network's problems are added to it as
    problems of the model, so Train stays refused while either misfits."""
    # No layers yet: the window says to add some, not how the output misfits.
    if info is None or not report.layers or report.output_shape is None or project.training.loss is None \
            or project.training.loss.type not in LOSSES:
        return None
    others: list[Problem] = []
    if project.task is not None:
        from .task_checks import check_task, network_problems, task_reports

        reports = task_reports(project, info)
        # The caller's analysis takes the flags when it was made with the input
        # this network gets in the task (a generator's is the noise, not a sample).
        own = reports.get(network)
        if own is not None and own.input_shape == report.input_shape:
            reports[network] = report
        others = [p for name, other in reports.items() if name != network
                  for p in network_problems(name, other)]
        result = check_task(project, reports, info)
    else:
        result = check_compatibility(project, report, info)
    on_layers = []
    for fix in result.layer_fixes:
        if fix.network != network or fix.index >= len(report.layers):
            continue  # the other network's: said below as a problem of the project
        layer = report.layers[fix.index]
        if layer.error is None:
            layer.error, layer.fix = fix.error, fix.fix
            layer.fix_action = fix.action
            on_layers.append(fix.problem)
    report.model_errors.extend(others)
    report.model_errors.extend(p for p in result.problems if not any(p is q for q in on_layers))
    return result
