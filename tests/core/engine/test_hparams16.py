"""TensorBoard's HParams view: each sweep trial's parameters and metric, read
back as TensorBoard reads them."""

import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import metadata  # noqa: E402

from guidl.engine.hparams import hparam_value, write_hparams  # noqa: E402


def read_back(folder):
    """The folder's session start info, experiment and scalars, as TensorBoard sees them."""
    events = EventAccumulator(str(folder), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    plugin = events.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(plugin[metadata.SESSION_START_INFO_TAG])
    experiment = metadata.parse_experiment_plugin_data(plugin[metadata.EXPERIMENT_TAG])
    return start, experiment, events


def test_each_trial_folder_holds_its_parameters_and_metric(tmp_path):
    trials = [
        ({"training.optimizer.params.lr": 0.01, "model.layers[0].params.out_features": 8,
          "training.optimizer.type": "Adam", "model.layers[2].params.bias": True,
          "model.input_shape": [2]}, 0.875),
        ({"training.optimizer.params.lr": 0.0003, "model.layers[0].params.out_features": 32,
          "training.optimizer.type": "SGD", "model.layers[2].params.bias": False,
          "model.input_shape": [2]}, 0.5),
    ]
    for number, (params, value) in enumerate(trials):
        write_hparams(tmp_path / f"t{number}" / "tensorboard", params, {"val_accuracy": value})

    # Written into the folder itself, not a time-stamped sub-folder as add_hparams makes.
    for number in range(2):
        folder = tmp_path / f"t{number}" / "tensorboard"
        assert [p for p in folder.iterdir() if p.is_dir()] == []
        assert any(p.name.startswith("events.out.tfevents") for p in folder.iterdir())

    start, experiment, events = read_back(tmp_path / "t0" / "tensorboard")
    hp = start.hparams
    assert hp["training.optimizer.params.lr"].number_value == pytest.approx(0.01)
    assert hp["model.layers[0].params.out_features"].number_value == 8
    assert hp["training.optimizer.type"].string_value == "Adam"
    assert hp["model.layers[2].params.bias"].WhichOneof("kind") == "bool_value"
    assert hp["model.layers[2].params.bias"].bool_value is True
    assert hp["model.input_shape"].string_value == "[2]"
    assert [m.name.tag for m in experiment.metric_infos] == ["val_accuracy"]
    types = {info.name: info.type for info in experiment.hparam_infos}
    from tensorboard.plugins.hparams.api_pb2 import DataType
    assert types["model.layers[2].params.bias"] == DataType.Value("DATA_TYPE_BOOL")
    assert types["training.optimizer.type"] == DataType.Value("DATA_TYPE_STRING")
    assert [s.value for s in events.Scalars("val_accuracy")] == [pytest.approx(0.875)]

    start, _, events = read_back(tmp_path / "t1" / "tensorboard")
    assert start.hparams["training.optimizer.params.lr"].number_value == pytest.approx(0.0003)
    assert start.hparams["training.optimizer.type"].string_value == "SGD"
    assert start.hparams["model.layers[2].params.bias"].bool_value is False
    assert [s.value for s in events.Scalars("val_accuracy")] == [pytest.approx(0.5)]


def test_a_failed_trial_has_no_figure_and_ends_as_a_failure(tmp_path):
    from tensorboard.plugins.hparams.api_pb2 import Status

    write_hparams(tmp_path, {"data.batch_size": 32}, {"val_loss": None}, status="failure")
    start, experiment, events = read_back(tmp_path)
    assert start.hparams["data.batch_size"].number_value == 32
    assert [m.name.tag for m in experiment.metric_infos] == ["val_loss"]
    assert "val_loss" not in events.Tags()["scalars"]
    plugin = events.PluginTagToContent(metadata.PLUGIN_NAME)
    end = metadata.parse_session_end_info_plugin_data(plugin[metadata.SESSION_END_INFO_TAG])
    assert end.status == Status.Value("STATUS_FAILURE")
    with pytest.raises(ValueError, match="status must be one of"):
        write_hparams(tmp_path / "other", {"data.batch_size": 32}, {"val_loss": 1.0}, status="pruned")


def test_values_tensorboard_cannot_hold_become_json_text():
    import numpy as np

    assert hparam_value(np.int64(16)) == 16 and type(hparam_value(np.int64(16))) is int
    assert type(hparam_value(np.float32(0.5))) is float
    assert hparam_value(True) is True
    assert hparam_value(None) == "null"
    assert hparam_value({"momentum": 0.9}) == '{"momentum": 0.9}'
    assert hparam_value([1, 28, 28]) == "[1, 28, 28]"


def test_the_hparams_view_lists_one_session_per_trial_with_its_metric(tmp_path):
    """What ``tensorboard --logdir runs`` serves to the HParams view (its plugin's
    ListSessionGroups request, as the view sends it)."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups

    for number, (lr, value) in enumerate([(0.01, 0.9), (0.001, 0.7)]):
        write_hparams(tmp_path / f"moons-lr-t{number:03d}" / "tensorboard",
                      {"training.optimizer.params.lr": lr}, {"val_accuracy": value})
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(tmp_path))
    backend = backend_context.Context(base_plugin.TBContext(
        logdir=str(tmp_path), multiplexer=multiplexer, data_provider=provider))
    request = api_pb2.ListSessionGroupsRequest(
        start_index=0, slice_size=10, aggregation_type=api_pb2.AGGREGATION_AVG,
        allowed_statuses=[api_pb2.STATUS_SUCCESS, api_pb2.STATUS_UNKNOWN])
    response = list_session_groups.Handler(context.RequestContext(), backend, "", request).run()

    seen = {group.name: (group.hparams["training.optimizer.params.lr"].number_value,
                         [m.value for m in group.metric_values])
            for group in response.session_groups}
    assert seen == {"moons-lr-t000/tensorboard": (pytest.approx(0.01), [pytest.approx(0.9)]),
                    "moons-lr-t001/tensorboard": (pytest.approx(0.001), [pytest.approx(0.7)])}
