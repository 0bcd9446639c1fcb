"""TensorBoard's HParams view for sweep trials (needs the ``tensorboard`` package).

Each trial writes its parameters and its metric into its own event folder
(``RUN_DIR/tensorboard``, beside the scalars ``TensorBoardLogger`` wrote), so
``tensorboard --logdir runs`` lists every trial of every sweep as one session
of the HParams view.

The summaries are TensorBoard's own messages (``_summaries``), written with a
``SummaryWriter``'s file writer into the folder given.
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

    values = {str(name): hparam_value(value) for name, value in params.items()}
    with SummaryWriter(log_dir=os.fspath(logdir)) as writer:
        for summary in _summaries(values, [str(name) for name in metrics], SESSION_STATUSES[status]):
            writer.file_writer.add_summary(summary)
        for name, value in metrics.items():
            if value is not None and math.isfinite(float(value)):
                writer.add_scalar(str(name), float(value))


def _summaries(values: Mapping[str, int | float | str | bool], metrics: list[str], status: str) -> list:
    """The experiment, session start and session end summaries of one trial,
    built from TensorBoard's own messages: its ``summary_v2.hparams_pb`` for
    the start (bools stay bools; torch's ``hparams`` helper records them as
    1.0/0.0 and every session as a success). TensorBoard's v1 ``summary``
    module, which writes a session's end, needs TensorFlow; the end and the
    experiment are therefore made here from the same messages."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    from tensorboard.plugins.hparams.summary_v2 import hparams_pb

    def summary(tag: str, data) -> Summary:
        return Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data))])

    kinds = {bool: "DATA_TYPE_BOOL", str: "DATA_TYPE_STRING"}
    experiment = api_pb2.Experiment(
        hparam_infos=[api_pb2.HParamInfo(name=name, type=api_pb2.DataType.Value(
            kinds.get(type(value), "DATA_TYPE_FLOAT64"))) for name, value in values.items()],
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=name)) for name in metrics])
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value(status))
    return [summary(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment)),
            # No group name: TensorBoard then names each session by its run folder
            # (a hash of the values would merge equal trials of different sweeps).
            hparams_pb(dict(values), trial_id=""),
            summary(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end))]
