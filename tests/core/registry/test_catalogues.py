import json

import pytest

from guidl.registry import CATALOGUES, LAYERS, LOSSES, OPTIMIZERS, REQUIRED, SCHEDULERS
from guidl.registry.schema import Catalogue, Entry, Param, UnknownNameError

ALL_ENTRIES = [(family, entry) for family, cat in CATALOGUES.items() for entry in cat]


@pytest.mark.parametrize("family,entry", ALL_ENTRIES, ids=[f"{f}-{e.name}" for f, e in ALL_ENTRIES])
def test_every_entry_round_trips_through_json(family, entry):
    text = json.dumps(entry.to_config())
    again = Entry.from_config(json.loads(text))
    assert again == entry
    assert json.dumps(again.to_config()) == text


@pytest.mark.parametrize("family,entry", ALL_ENTRIES, ids=[f"{f}-{e.name}" for f, e in ALL_ENTRIES])
def test_every_entry_is_documented_and_its_defaults_pass_its_own_checks(family, entry):
    assert entry.help and not entry.help[0].islower() and entry.help.endswith(".")
    for param in entry.params:
        assert param.help, f"{entry.name}.{param.name} has no help"
        if param.default is not REQUIRED:
            assert param.check(param.default) is None, (entry.name, param.name)
        if param.required:
            assert param.suggested is not None, f"{entry.name}.{param.name} needs a suggestion"
    initial = entry.initial_params()
    assert entry.check_params(initial) == []


def test_catalogues_round_trip_whole():
    for catalogue in CATALOGUES.values():
        again = Catalogue.from_config(json.loads(json.dumps(catalogue.to_config())))
        assert list(again) == list(catalogue)


def test_the_promised_names_are_there():
    assert set(LAYERS.names()) >= {
        "Linear", "Flatten", "Unflatten", "Dropout", "Dropout2d", "Identity", "Conv1d", "Conv2d",
        "ConvTranspose2d", "MaxPool1d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Upsample",
        "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "ReLU", "LeakyReLU", "ELU", "GELU",
        "SiLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Embedding", "RNN", "LSTM", "GRU",
        "MultiheadAttention", "TransformerEncoderLayer", "PositionalEmbedding", "ConvTranspose1d",
        "Conv3d", "BatchNorm3d", "MaxPool3d", "AdaptiveMaxPool2d", "InstanceNorm2d", "PReLU", "Mish",
        "Hardswish", "Softplus", "PixelShuffle", "ZeroPad2d", "Dropout1d"}
    assert set(LOSSES.names()) >= {"CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss",
                                   "HuberLoss", "BCEWithLogitsLoss", "BCELoss"}
    assert set(OPTIMIZERS.names()) >= {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta",
                                       "Adamax", "NAdam", "RAdam"}
    assert set(SCHEDULERS.names()) >= {"StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
                                       "OneCycleLR", "ReduceLROnPlateau", "LinearLR"}
    assert LOSSES.get("CrossEntropyLoss").param("label_smoothing").default == 0.0
    assert {"momentum", "nesterov", "weight_decay"} <= set(OPTIMIZERS.get("SGD").param_names)
    for name in ("RNN", "LSTM", "GRU"):
        assert LAYERS.get(name).param("return_sequences").default is False


def test_get_accepts_a_name_a_config_or_an_entry():
    entry = LAYERS.get("Conv2d")
    assert LAYERS.get({"type": "Conv2d", "params": {}}) is entry
    assert LAYERS.get(entry) is entry


@pytest.mark.parametrize("name,suggestion", [("conv2d", "Conv2d"), ("Lienar", "Linear"),
                                             ("os.system", None), ("__import__", None)])
def test_unknown_names_are_refused_with_a_suggestion(name, suggestion):
    with pytest.raises(UnknownNameError) as caught:
        LAYERS.get(name)
    assert caught.value.suggestion == suggestion
    assert repr(name) in str(caught.value)


def test_palette_categories_group_every_layer():
    groups = LAYERS.categories()
    assert list(groups) == ["Core", "Reshape", "Convolution", "Pooling", "Normalization",
                            "Activation", "Sequence", "Merge", "Pretrained"]
    assert sum(len(v) for v in groups.values()) == len(LAYERS)


@pytest.mark.parametrize("param,value,message", [
    (Param("n", "int", 1, minimum=1), True, "must be a positive integer, got true"),
    (Param("n", "int", 1, minimum=1), 2.0, "must be an integer, got 2.0 (write 2)"),
    (Param("n", "int", 1, minimum=1), -2, "must be a positive integer, got -2"),
    (Param("n", "int", 1, minimum=1), "3", "must be a positive integer, got '3'"),
    (Param("p", "float", 0.5, minimum=0.0, maximum=1.0), 1.5, "must be a number >= 0 and <= 1, got 1.5"),
    (Param("p", "float", 0.5), float("nan"), "must be a finite number, got nan"),
    (Param("m", "str", "a", choices=("zeros", "reflect")), "reflct", "did you mean 'reflect'?"),
    (Param("k", "ints", 1, minimum=1, arity=2), [3, 3, 3], "a list of 2 numbers"),
    (Param("k", "ints", 1, minimum=1, arity=2), [3, 0], "each item must be a positive integer"),
    (Param("b", "float_list", [0.9, 0.9], arity=2), 0.9, "must be a list of 2 numbers, got 0.9"),
    (Param("s", "int", None), None, "must not be null"),
])
def test_param_check_explains_what_is_wrong(param, value, message):
    problem = param.check(value)
    assert problem is not None and message in problem


@pytest.mark.parametrize("param,value", [
    (Param("k", "ints", 1, minimum=1, arity=2), [3, 5]),
    (Param("k", "ints", 1, minimum=0, arity=2, keywords=("same",)), "same"),
    (Param("s", "int", None, nullable=True), None),
    (Param("x", "float", 1.0), 2),
])
def test_param_check_accepts_good_values(param, value):
    assert param.check(value) is None


def test_check_params_names_unknown_and_missing_parameters():
    problems = dict(LAYERS.get("Linear").check_params({"out_feature": 3}))
    assert "did you mean 'out_features'" in problems["out_feature"]
    assert problems["out_features"].startswith("is required by Linear")
    assert dict(LAYERS.get("ReLU").check_params({"inplace": True}))["inplace"].endswith(
        "it takes no parameters")
