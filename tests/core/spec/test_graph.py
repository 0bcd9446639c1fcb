"""Graphs in the project file: ids, inputs, merges and blocks, each problem
reported on the layer that causes it with its JSON path and a fix."""

import json

import pytest

from guidl import spec
from guidl.spec import Block, Layer, Model, Project, ProjectError
from guidl.spec.fixes import InsertLayer, SetParam, apply_fix
from guidl.spec.graph import (
    fresh_id, id_problem, is_chain, module_keys, resolve_inputs, uses_graph_features,
)

RESIDUAL = {
    "params": [{"name": "channels", "kind": "int", "default": 8, "minimum": 1},
               {"name": "stride", "kind": "int", "default": 1, "minimum": 1}],
    "layers": [
        {"id": "conv1", "type": "Conv2d",
         "params": {"out_channels": "$channels", "kernel_size": 3, "stride": "$stride", "padding": 1}},
        {"type": "ReLU"},
        {"id": "conv2", "type": "Conv2d", "params": {"out_channels": "$channels", "kernel_size": 3, "padding": 1}},
        {"id": "add", "type": "Add", "inputs": ["conv2", "input"]},
    ],
}


def _graph_doc(layers, blocks=None, version=2):
    model = {"input_shape": [1, 8, 8], "layers": layers}
    if blocks is not None:
        model["blocks"] = blocks
    return {"format": "guidl-project", "version": version, "name": "g", "model": model,
            "data": {"dataset": "mnist_sample"}, "training": {}}


def _problems(doc) -> list[str]:
    with pytest.raises(ProjectError) as caught:
        spec.loads(json.dumps(doc))
    return [str(p) for p in caught.value.problems]


SKIP = [
    {"id": "a", "type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3, "padding": 1}},
    {"id": "b", "type": "ReLU"},
    {"id": "sum", "type": "Add", "inputs": ["a", "b"]},
]


@pytest.mark.parametrize("layers, expected", [
    ([SKIP[0], SKIP[1], {"type": "Add", "inputs": ["a", "nope"]}],
     "model.layers[2].inputs[1]: unknown id 'nope'; the layers before it are 'input', 'a', 'b'"),
    ([SKIP[0], {"id": "a", "type": "ReLU"}, SKIP[2]],
     "model.layers[1].id: 'a' is already the id of layer 0; ids must be unique; fix: rename it (e.g. 'a_2')"),
    ([SKIP[0], {"id": "b", "type": "ReLU", "inputs": ["b"]}],
     "model.layers[1].inputs[0]: layer 1 names itself ('b') as its input"),
    ([SKIP[0], {"id": "b", "type": "ReLU", "inputs": ["c"]}, {"id": "c", "type": "ReLU"}],
     "model.layers[1].inputs[0]: 'c' is layer 2, listed after layer 1: a layer may only take layers "
     "listed before it; fix: move layer 2 before layer 1"),
    ([SKIP[0], {"type": "ReLU", "inputs": "a"}],
     "model.layers[1].inputs: must be a list of layer ids (strings), got 'a'"),
    ([SKIP[0], {"type": "ReLU", "inputs": ["a", 3]}],
     "model.layers[1].inputs: must be a list of layer ids (strings)"),
    ([SKIP[0], {"type": "Add", "inputs": ["a"]}],
     "model.layers[1].inputs: Add merges two or more inputs but has 1"),
    ([SKIP[0], {"type": "Concat"}],
     "model.layers[1].inputs: Concat merges two or more inputs but has 1"),
    ([SKIP[0], {"type": "ReLU", "inputs": ["a", "input"]}],
     "model.layers[1].inputs: ReLU takes one input but has 2; fix: merge them first with Add or Concat"),
    ([SKIP[0], {"type": "Add", "inputs": ["a", "a"]}], "model.layers[1].inputs: names the same layer twice"),
    ([{"id": "1x", "type": "ReLU"}], "model.layers[0].id: must start with a letter"),
    ([{"id": "input", "type": "ReLU"}], "model.layers[0].id: 'input' names the model's input"),
    ([{"id": "forward", "type": "ReLU"}], "model.layers[0].id: 'forward' is a name Python or PyTorch"),
    ([{"id": "class", "type": "ReLU"}], "model.layers[0].id: 'class' is a name Python or PyTorch"),
    ([{"type": "ReLU", "repeat": 2}], "model.layers[0].repeat: only a block can repeat"),
    ([{"type": "ReLU", "position": [1]}], "model.layers[0].position: must be [x, y]"),
])
def test_each_wiring_problem_is_on_its_layer_with_its_path(layers, expected):
    problems = _problems(_graph_doc(layers))
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize("blocks, layers, expected", [
    ({"Linear": RESIDUAL}, [{"type": "ReLU"}], "model.blocks.Linear: 'Linear' is a layer type"),
    ({"Res": {**RESIDUAL, "params": RESIDUAL["params"][:1]}}, [{"type": "Res"}],
     "model.blocks.Res.layers[0].params.stride: refers to '$stride', but the block has no parameter "
     "'stride' (its parameters: channels)"),
    ({"Res": {**RESIDUAL, "params": [{"name": "channels", "kind": "int"}]}}, [{"type": "Res"}],
     "model.blocks.Res.params[0].default: is missing: every block parameter needs a default"),
    ({"Res": RESIDUAL}, [{"type": "Res", "params": {"channels": 0}}],
     "model.layers[0].params.channels: must be a positive integer"),
    ({"Res": RESIDUAL}, [{"type": "Res", "params": {"chanels": 4}}],
     "model.layers[0].params.chanels: Res does not take a parameter 'chanels'; did you mean 'channels'?"),
    ({"Res": RESIDUAL}, [{"type": "Res", "repeat": 0}], "model.layers[0].repeat: must be an integer from 1"),
    ({"A": {"params": [], "layers": [{"type": "B"}]}, "B": {"params": [], "layers": [{"type": "A"}]}},
     [{"type": "A"}], "model.blocks.A: uses itself: A -> B -> A"),
    ({"Res": RESIDUAL}, [{"type": "Resid"}], "model.layers[0].type: unknown layer 'Resid'; did you mean 'Res'?"),
    ({"Res": {"params": [], "layers": []}}, [{"type": "Res"}], "model.blocks.Res.layers: must hold at least one layer"),
])
def test_each_block_problem_has_its_path(blocks, layers, expected):
    problems = _problems(_graph_doc(layers, blocks))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_graph_round_trips_losslessly_and_writes_version_2():
    doc = _graph_doc([{"id": "stem", "type": "Conv2d", "params": {"out_channels": 8, "kernel_size": 3, "padding": 1}},
                      {"id": "stage", "type": "Res", "params": {"channels": 8}, "repeat": 2, "position": [10.0, 20.5]},
                      {"type": "Flatten", "inputs": ["stage"]},
                      {"type": "Linear", "params": {"out_features": 10}}], {"Res": RESIDUAL})
    project = spec.loads(json.dumps(doc))
    assert project.model.layers[1].repeat == 2 and project.model.layers[1].position == [10.0, 20.5]
    assert project.model.blocks["Res"].layers[0].params["out_channels"] == "$channels"
    written = json.loads(spec.dumps(project))
    assert written["version"] == 2
    assert written["model"]["blocks"]["Res"]["layers"] == RESIDUAL["layers"]
    assert spec.loads(spec.dumps(project)) == project
    assert project.problems() == []


def test_a_plain_stack_still_writes_version_1_and_a_version_1_file_opens_unchanged(root):
    text = (root / "examples" / "mnist_cnn.guidl.json").read_text()
    assert json.loads(text)["version"] == 1
    project = spec.loads(text)
    assert spec.dumps(project) == text
    assert is_chain(project.model) and not uses_graph_features(project.model)


def test_a_future_version_is_refused_with_what_to_do():
    problems = _problems({**_graph_doc([{"type": "ReLU"}]), "version": 5})
    assert problems == ["version: 5 is newer than this guidl understands (up to 4); update guidl to open it"]


def test_wiring_resolves_to_indexes_and_consumers():
    layers = [Layer("Conv2d", id="a"), Layer("ReLU"), Layer("Add", inputs=["a", "input"]), Layer("ReLU", inputs=["a"])]
    wiring = resolve_inputs(layers)
    assert wiring.inputs == [[-1], [0], [0, -1], [0]]
    assert wiring.consumers == [[1, 2, 3], [], [], []]
    assert wiring.unused() == [1, 2]
    assert not wiring.problems


def test_a_stack_with_ids_and_explicit_previous_inputs_is_still_a_chain():
    model = Model([Layer("Linear", {"out_features": 4}, id="a"), Layer("ReLU", inputs=["a"])], [3])
    assert is_chain(model)
    model.layers.append(Layer("Add", inputs=["a", "input"]))
    assert not is_chain(model)


def test_module_keys_are_ids_or_type_and_index_never_clashing():
    layers = [Layer("Conv2d", id="conv2d_1"), Layer("Conv2d"), Layer("BatchNorm2d"), Layer("ReLU", id="relu_3")]
    assert module_keys(layers) == ["conv2d_1", "conv2d_1_", "batch_norm2d_2", "relu_3"]
    assert fresh_id({"conv2d_1", "conv2d_2"}, "Conv2d") == "conv2d_3"
    assert all(id_problem(key) is None for key in module_keys(layers))


def test_fixes_insert_on_a_merge_branch_and_set_parameters():
    project = Project(model=Model([Layer("Conv2d", {"out_channels": 8, "kernel_size": 3}, id="a"),
                                   Layer("Add", inputs=["a", "input"])], [1, 8, 8]))
    apply_fix(project, InsertLayer(1, "Conv2d", {"out_channels": 8, "kernel_size": 1}, input_item=1))
    layers = project.model.layers
    assert [layer.type for layer in layers] == ["Conv2d", "Conv2d", "Add"]
    assert layers[1].inputs == ["input"] and layers[2].inputs == ["a", layers[1].id]
    assert not resolve_inputs(layers).problems
    apply_fix(project, SetParam(0, "out_channels", 16))
    assert layers[0].params["out_channels"] == 16
    # Inserting in front of a plain layer puts it in the chain.
    apply_fix(project, InsertLayer(0, "BatchNorm2d"))
    assert [layer.type for layer in layers][:2] == ["BatchNorm2d", "Conv2d"]
    assert resolve_inputs(layers).inputs[:2] == [[-1], [0]]


def test_a_block_fix_edits_the_definition():
    project = Project(model=Model([Layer("Res")], [1, 8, 8], blocks={
        "Res": Block([{"name": "c", "kind": "int", "default": 4}], [Layer("Conv2d", {"out_channels": "$c", "kernel_size": 3})])}))
    apply_fix(project, SetParam(0, "kernel_size", 1, block="Res"))
    assert project.model.blocks["Res"].layers[0].params["kernel_size"] == 1
