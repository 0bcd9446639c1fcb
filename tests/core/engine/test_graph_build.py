"""Graphs build into one module: shapes and problems on the meta device,
parameter counts equal to hand-written modules, stable state_dict keys."""

import copy
import json

import pytest
import torch
from torch import nn

from guidl import spec
from guidl.engine import analyze, build
from guidl.engine.graph import GraphModel, layer_modules, layer_names
from guidl.engine.summary import summary_text
from guidl.spec import Block, Layer, Model
from guidl.spec.fixes import apply_fix
from guidl.spec.graph import RESERVED_IDS

RESIDUAL = Block(
    [{"name": "channels", "kind": "int", "default": 8, "minimum": 1},
     {"name": "stride", "kind": "int", "default": 1, "minimum": 1}],
    [Layer("Conv2d", {"out_channels": "$channels", "kernel_size": 3, "stride": "$stride", "padding": 1}, id="conv1"),
     Layer("BatchNorm2d"),
     Layer("ReLU"),
     Layer("Conv2d", {"out_channels": "$channels", "kernel_size": 3, "padding": 1}, id="conv2"),
     Layer("Add", inputs=["conv2", "input"]),
     Layer("ReLU")],
)


def _resnet(repeat=2) -> Model:
    return Model([
        Layer("Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}, id="stem"),
        Layer("Res", {"channels": 8}, id="stage", repeat=repeat),
        Layer("AdaptiveAvgPool2d", {"output_size": 1}),
        Layer("Flatten"),
        Layer("Linear", {"out_features": 10}, id="head"),
    ], [1, 8, 8], blocks={"Res": copy.deepcopy(RESIDUAL)})


class HandResidual(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv2(torch.relu(self.bn(self.conv1(x)))) + x)


class HandResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.stage = nn.Sequential(HandResidual(8), HandResidual(8))
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.stage(self.stem(x)), 1), 1))


def test_a_residual_network_counts_what_a_hand_written_module_counts():
    report = analyze(_resnet())
    assert report.ok, report.problems()
    hand = sum(p.numel() for p in HandResNet().parameters())
    assert report.total_params == hand == 2_538
    assert report.layers[1].param_count == 2 * 1_184
    assert [layer.output_shape for layer in report.layers] == [(8, 8, 8), (8, 8, 8), (8, 1, 1), (8,), (10,)]
    assert len(report.layers[1].blocks) == 2  # one report per repetition
    text = summary_text(report, "r")
    assert "Connected to" in text and "stage (Res(8, 1) ×2)" in text


def test_a_graph_builds_the_same_keys_and_outputs_every_time():
    torch.manual_seed(0)
    first = build(_resnet()).module
    torch.manual_seed(1)
    second = build(_resnet()).module
    assert isinstance(first, GraphModel)
    assert list(first.state_dict()) == list(second.state_dict())
    assert "stage.0.conv1.weight" in first.state_dict() and "stage.1.conv2.bias" in first.state_dict()
    assert "head.weight" in first.state_dict()
    second.load_state_dict(first.state_dict())
    x = torch.randn(3, 1, 8, 8)
    first.eval(), second.eval()
    assert torch.equal(first(x), second(x))
    assert layer_names(first) == ["stem", "stage", "adaptive_avg_pool2d_2", "flatten_3", "head"]
    assert len(layer_modules(first)) == 5


def test_the_graph_computes_what_the_hand_written_network_computes():
    hand = HandResNet().eval()
    graph = build(_resnet()).module.eval()
    mapping = {"stem": hand.stem, "head": hand.head}
    for rep in range(2):
        mapping[f"stage.{rep}.conv1"] = hand.stage[rep].conv1
        mapping[f"stage.{rep}.batch_norm2d_1"] = hand.stage[rep].bn
        mapping[f"stage.{rep}.conv2"] = hand.stage[rep].conv2
    state = {f"{name}.{key}": value for name, module in mapping.items()
             for key, value in module.state_dict().items()}
    graph.load_state_dict(state)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(graph(x), hand(x), atol=1e-6)


def test_a_stack_stays_a_sequential_with_its_old_keys(root):
    project = spec.load(root / "examples" / "mnist_cnn.guidl.json")
    module = build(project).module
    assert type(module) is nn.Sequential
    assert list(module.state_dict())[:2] == ["0.weight", "0.bias"]


def test_a_shortcut_that_changes_shape_gets_the_convolution_fix_and_it_applies():
    model = _resnet(repeat=1)
    model.layers.insert(2, Layer("Res", {"channels": 16, "stride": 2}, id="down"))
    report = analyze(model)
    layer = report.layers[2]
    assert layer.error == ("in Res, layer 4 (Add): needs inputs of one shape, but gets (16, 4, 4) from "
                           "'conv2' and (8, 8, 8) from the input")
    assert layer.fix == ("insert Conv2d(out_channels=16, kernel_size=1, stride=2) on the shortcut "
                         "(input 2, from the input), in the block Res (every use of it changes)")
    project = spec.Project(model=model)
    apply_fix(project, layer.fix_action)
    inserted = project.model.blocks["Res"].layers[4]
    # The fix edits the block for every use: sizes refer to the block's parameters.
    assert inserted.params == {"out_channels": "$channels", "kernel_size": 1, "stride": "$stride"}
    fixed = analyze(project.model)
    assert fixed.ok, fixed.problems()
    assert fixed.layers[2].output_shape == (16, 4, 4)


def test_add_of_different_features_proposes_a_linear_on_the_shortcut():
    model = Model([Layer("Linear", {"out_features": 6}, id="a"), Layer("Add", inputs=["a", "input"])], [4])
    layer = analyze(model).layers[1]
    assert layer.error == "needs inputs of one shape, but gets (6,) from 'a' and (4,) from the input"
    assert layer.fix == "insert Linear(out_features=6) on the shortcut (input 2, from the input)"


def test_broadcasting_is_allowed_where_torch_does_it_and_said():
    model = Model([Layer("AdaptiveAvgPool2d", {"output_size": 1}, id="pool"),
                   Layer("Multiply", inputs=["input", "pool"])], [4, 6, 6])
    report = analyze(model)
    assert report.ok and report.output_shape == (4, 6, 6)
    assert report.layers[1].warnings == ["broadcasts its inputs ((4, 6, 6) from the input; (4, 1, 1) from "
                                         "'pool') to (4, 6, 6)"]
    module = build(model).module
    assert module(torch.ones(2, 4, 6, 6)).shape == (2, 4, 6, 6)


@pytest.mark.parametrize("dim, error", [
    (3, "dim 3 does not exist for inputs (batch, 4, 6): dim must be in [-3, 2] (0 is the batch)"),
    (0, "joins along dim 0, the batch: samples would be mixed"),
])
def test_concat_along_a_missing_dimension_or_the_batch_is_refused_with_a_fix(dim, error):
    model = Model([Layer("Conv1d", {"out_channels": 4, "kernel_size": 1}, id="a"),
                   Layer("Concat", {"dim": dim}, inputs=["a", "input"])], [4, 6])
    layer = analyze(model).layers[1]
    assert layer.error == error and layer.fix_action.name == "dim" and layer.fix_action.value == 1


def test_concat_of_different_sizes_names_the_shapes_and_joins_channels():
    model = Model([Layer("Conv2d", {"out_channels": 3, "kernel_size": 3}, id="a"),
                   Layer("Concat", inputs=["a", "input"])], [2, 8, 8])
    layer = analyze(model).layers[1]
    assert layer.error == ("joins along dim 1, so every other dimension must agree, but gets "
                           "(3, 6, 6) from 'a' and (2, 8, 8) from the input")
    model.layers[0].params["padding"] = 1
    report = analyze(model)
    assert report.ok and report.output_shape == (5, 8, 8)
    assert build(model).module(torch.zeros(2, 2, 8, 8)).shape == (2, 5, 8, 8)


def test_an_unused_output_is_a_warning_named_in_the_summary_and_not_run():
    model = Model([Layer("Linear", {"out_features": 3}, id="side", inputs=["input"]),
                   Layer("Linear", {"out_features": 2}, inputs=["input"])], [4])
    report = analyze(model)
    assert report.ok
    assert report.layers[0].warnings[0].startswith("its output is not used by any layer")
    assert "Unused outputs (nothing takes them; only the last layer's output is the model's): side" in \
        summary_text(report)
    module = build(model).module
    calls = []
    module.side.register_forward_hook(lambda *args: calls.append(1))
    module(torch.zeros(1, 4))
    assert calls == [] and "side.weight" in module.state_dict()


def test_wiring_problems_reach_the_report_without_a_traceback():
    model = Model([Layer("Linear", {"out_features": 3}, id="a"), Layer("ReLU", inputs=["b"])], [4])
    report = analyze(model)
    assert not report.ok
    assert report.problems()[0].message.startswith("ReLU: unknown id 'b'")


def test_nested_blocks_and_repeats_count_every_repetition():
    inner = Block([], [Layer("Linear", {"out_features": 4}), Layer("ReLU")])
    outer = Block([], [Layer("Inner", id="i"), Layer("Add", inputs=["i", "input"])])
    model = Model([Layer("Outer", repeat=3)], [4], blocks={"Inner": inner, "Outer": outer})
    report = analyze(model)
    assert report.ok and report.total_params == 3 * 20
    module = build(model).module
    assert sum(p.numel() for p in module.parameters()) == 60
    assert "outer_0.2.i.linear_0.weight" in module.state_dict()


def test_reserved_ids_cover_every_attribute_a_torch_module_has():
    names = {n for n in dir(nn.Sequential()) + dir(nn.ModuleDict()) if not n.startswith("_")}
    assert names <= RESERVED_IDS, sorted(names - RESERVED_IDS)


def test_graph_analysis_stays_on_the_meta_device_for_a_huge_graph():
    model = Model([Layer("Linear", {"out_features": 40_000}, id="a"),
                   Layer("Linear", {"out_features": 40_000}, inputs=["input"], id="b"),
                   Layer("Add", inputs=["a", "b"])], [40_000])
    report = analyze(model, memory_limit=10**15)
    assert report.ok and report.total_params == 2 * (40_000 * 40_000 + 40_000)


def test_the_json_report_lists_inputs():
    report = analyze(_resnet())
    layers = report.to_dict()["layers"]
    assert layers[0]["inputs"] == ["input"] and layers[1]["inputs"] == [0]
    assert json.dumps(report.to_dict())


@pytest.mark.parametrize("layers, shape, inserted", [
    ([Layer("Conv2d", {"out_channels": 2, "kernel_size": 3}), Layer("Linear", {"out_features": 4})],
     [1, 8, 8], Layer("Flatten")),
    ([Layer("Conv2d", {"out_channels": 2, "kernel_size": 3})], [16],
     Layer("Unflatten", {"dim": 1, "unflattened_size": [1, 4, 4]})),
])
def test_a_layer_that_needs_another_shape_gets_the_inserting_fix_as_an_edit(layers, shape, inserted):
    model = Model(layers, shape)
    bad = next(layer for layer in analyze(model).layers if layer.error)
    project = spec.Project(model=model)
    apply_fix(project, bad.fix_action)
    assert project.model.layers[bad.index].type == inserted.type
    assert project.model.layers[bad.index].params == inserted.params
    assert analyze(project.model).ok


def test_a_size_given_that_the_input_contradicts_is_removed_by_its_fix():
    model = Model([Layer("Linear", {"in_features": 5, "out_features": 2})], [4])
    bad = analyze(model).layers[0]
    assert bad.fix == "remove in_features so guidl infers it"
    project = spec.Project(model=model)
    apply_fix(project, bad.fix_action)
    assert project.model.layers[0].params == {"out_features": 2} and analyze(project.model).ok
