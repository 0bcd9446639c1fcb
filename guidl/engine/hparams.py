"""TensorBoard's HParams view for sweep trials (needs the ``tensorboard`` package).

Each trial writes its parameters and its metric into its own event folder
(``RUN_DIR/tensorboard``, beside the scalars ``TensorBoardLogger`` wrote), so
``tensorboard --logdir runs`` lists every trial of every sweep as one session
of the HParams view.

The summaries are torch's own (``torch.utils.tensorboard.summary.hparams``),
written with a ``SummaryWriter``'s file writer into the folder given.
``SummaryWriter.add_hparams`` is not used: it writes into a new sub-folder
named by the current time, which would split a trial into two runs.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from typing import Any, Mapping


def hparam_value(value: Any) -> int | float | str | bool:
    """A value TensorBoard can hold: numbers, strings and bools as they are,
    anything else (a list such as an input shape, None, a dict) as its JSON text."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


#: A trial's end as TensorBoard's sessions say it (its Status enum).
SESSION_STATUSES = {"success": "STATUS_SUCCESS", "failure": "STATUS_FAILURE",
                    "running": "STATUS_RUNNING", "unknown": "STATUS_UNKNOWN"}


def write_hparams(logdir: str | os.PathLike[str], params: Mapping[str, Any],
                  metrics: Mapping[str, float | None], *, status: str = "success") -> None:
    """Record one trial for TensorBoard's HParams view in ``logdir`` itself.

    ``params`` maps a setting's name (its JSON path) to the trial's value;
    ``metrics`` maps a metric's name to the trial's figure. A metric whose
    figure is None (a trial that failed before any) is declared but has no
    value. Metric names should differ from the scalar tags already in the
    folder (``epoch/val_loss`` is not ``val_loss``): TensorBoard shows a
    tag's last value as the metric.

    ``status`` is the session's end as the HParams view filters it:
    ``"success"`` (torch's only one: a finished or pruned trial), ``"failure"``
    (a failed one), ``"running"`` or ``"unknown"``.
    """
    if status not in SESSION_STATUSES:
        raise ValueError(f"status must be one of {', '.join(SESSION_STATUSES)}, got {status!r}")
    from torch.utils.tensorboard import SummaryWriter  # ImportError without tensorboard
    from torch.utils.tensorboard.summary import hparams

    values = {str(name): hparam_value(value) for name, value in params.items()}
    # torch's helper tests for numbers before bools, so a bool would be recorded
    # as the number 1.0 or 0.0: hand it numbers and put the bools back after.
    bools = {name: value for name, value in values.items() if isinstance(value, bool)}
    experiment, start, end = hparams({name: float(value) if name in bools else value
                                      for name, value in values.items()},
                                     {str(name): 0.0 for name in metrics})
    if bools:
        _restore_bools(experiment, start, bools)
    if status != "success":
        _set_status(end, SESSION_STATUSES[status])
    with SummaryWriter(log_dir=os.fspath(logdir)) as writer:
        for summary in (experiment, start, end):
            writer.file_writer.add_summary(summary)
        for name, value in metrics.items():
            if value is not None and math.isfinite(float(value)):
                writer.add_scalar(str(name), float(value))


def _rewrite(summary, change) -> None:
    """Apply ``change`` to the hparams plugin data a summary made by
    ``hparams`` holds (serialized in its metadata)."""
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    plugin = summary.value[0].metadata.plugin_data
    content = HParamsPluginData.FromString(plugin.content)
    change(content)
    plugin.content = content.SerializeToString()


def _set_status(end, status: str) -> None:
    from tensorboard.plugins.hparams.api_pb2 import Status

    def change(content) -> None:
        content.session_end_info.status = Status.Value(status)

    _rewrite(end, change)


def _restore_bools(experiment, start, bools: Mapping[str, bool]) -> None:
    """Mark the bool parameters as bools in the Experiment and SessionStartInfo
    summaries ``hparams`` made (each holds serialized plugin data)."""
    from tensorboard.plugins.hparams.api_pb2 import DataType

    def experiment_bools(content) -> None:
        for info in content.experiment.hparam_infos:
            if info.name in bools:
                info.type = DataType.Value("DATA_TYPE_BOOL")

    def start_bools(content) -> None:
        for name, value in bools.items():
            content.session_start_info.hparams[name].bool_value = value

    _rewrite(experiment, experiment_bools)
    _rewrite(start, start_bools)
