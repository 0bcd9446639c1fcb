"""Graph edits as plain functions of the project (``spec.edits``): each one
leaves the wiring valid (or refuses and changes nothing), heals wires on
delete, keeps inner wires on copy/paste, and blocks round-trip."""

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guidl.spec import Block, Layer, Model, Project, edits
from guidl.spec.edits import EditError
from guidl.spec.fixes import InsertLayer, SetParam
from guidl.spec.graph import INPUT_INDEX, resolve_inputs


def conv(channels=8, **extra):
    return {"out_channels": channels, "kernel_size": 3, "padding": 1, **extra}


def stack() -> Model:
    return Model([Layer("Conv2d", conv()), Layer("ReLU"), Layer("Conv2d", conv()), Layer("BatchNorm2d"),
                  Layer("ReLU"), Layer("Flatten"), Layer("Linear", {"out_features": 10})], [1, 8, 8])


def residual() -> Model:
    """stem -> conv1 -> bn1 -> add(bn1, stem) -> relu -> flatten -> head, and an aux head on stem."""
    return Model([
        Layer("Conv2d", conv(), "stem"),
        Layer("Conv2d", conv(), "conv1"),
        Layer("BatchNorm2d", {}, "bn1"),
        Layer("Add", {}, "add", ["bn1", "stem"]),
        Layer("ReLU"),
        Layer("Flatten"),
        Layer("Linear", {"out_features": 10}, "head"),
    ], [1, 8, 8])


def block_model() -> Model:
    unit = Block(
        [{"name": "channels", "kind": "int", "default": 8, "minimum": 1}],
        [Layer("Conv2d", {"out_channels": "$channels", "kernel_size": 3, "padding": 1}, "conv"),
         Layer("BatchNorm2d", {}, "bn"),
         Layer("Add", {}, "add", ["bn", "input"])])
    return Model([Layer("Conv2d", conv(), "stem"), Layer("Unit", {}, "stage", repeat=2), Layer("Flatten"),
                  Layer("Linear", {"out_features": 10})], [1, 8, 8], blocks={"Unit": unit})


def valid(model: Model) -> None:
    """The whole project reads back without a problem (wiring, ids, blocks, params)."""
    project = Project(model=model)
    assert project.problems() == []
    assert Project.from_dict(json.loads(json.dumps(project.to_dict()))).model == model


def wiring(model: Model, block: str | None = None) -> list[list[str]]:
    """Each layer's sources as readable names (type@index or id)."""
    layers = model.layers if block is None else model.blocks[block].layers
    names = [layer.id or f"{layer.type}@{i}" for i, layer in enumerate(layers)]
    return [[("input" if k == INPUT_INDEX else names[k]) for k in sources]
            for sources in resolve_inputs(layers).inputs]


def types(model: Model) -> list[str]:
    return [layer.type for layer in model.layers]


# -- adding, removing, moving --------------------------------------------------------------------

def test_a_plain_stack_stays_a_plain_stack():
    model = stack()
    edits.insert(model, "Dropout", 2)
    edits.duplicate(model, 0)
    edits.remove(model, 3)
    edits.move(model, 4, 1)
    assert all(layer.inputs is None and layer.id is None for layer in model.layers)
    assert types(model) == ["Conv2d", "BatchNorm2d", "Conv2d", "ReLU", "Conv2d", "ReLU", "Flatten", "Linear"]
    assert Project(model=model).to_dict()["version"] == 1
    valid(model)


def test_insert_goes_into_the_chain_and_a_merge_takes_the_open_branch():
    model = residual()
    index = edits.insert(model, "Dropout", 4)  # after the Add
    assert model.layers[index].inputs is None and wiring(model)[5] == ["Dropout@4"]
    # The head is a branch nobody uses once an aux head on stem comes last: an Add at the end merges them.
    model.layers.append(Layer("Linear", {"out_features": 10}, "aux", ["stem"]))
    valid(model)
    edits.insert(model, "Add")
    assert wiring(model)[-1] == ["aux", "head"]
    valid(model)


def test_insert_refuses_a_merge_with_nothing_to_merge():
    model = Model([], [4])
    with pytest.raises(EditError, match="merges two or more"):
        edits.insert(model, "Add")
    assert model.layers == []


def test_delete_heals_the_wires_of_a_layer_in_the_middle():
    model = residual()
    edits.remove(model, 2)  # bn1: the Add takes conv1 instead
    assert wiring(model)[2] == ["conv1", "stem"]
    valid(model)


def test_deleting_the_main_path_of_a_residual_removes_the_add_that_merges_nothing():
    model = residual()
    removed = edits.remove(model, [1, 2])
    assert removed == [1, 2, 3]  # conv1, bn1 and the Add left with one input
    assert types(model) == ["Conv2d", "ReLU", "Flatten", "Linear"]
    assert wiring(model)[1] == ["stem"]
    valid(model)


def test_deleting_a_merge_gives_its_consumers_its_first_input():
    model = residual()
    edits.remove(model, 3)
    assert wiring(model)[3] == ["bn1"]
    assert all(layer.type != "Add" for layer in model.layers)
    valid(model)


def test_deleting_a_layer_that_a_later_layer_names_never_leaves_a_dangling_id():
    model = residual()
    model.layers.append(Layer("Linear", {"out_features": 2}, "aux", ["stem"]))
    edits.remove(model, 0)  # stem: the Add and aux take the input
    assert wiring(model)[2] == ["bn1", "input"] and wiring(model)[-1] == ["input"]
    valid(model)


def test_duplicate_gives_a_fresh_id_and_follows_in_the_chain():
    model = residual()
    index = edits.duplicate(model, 2)  # bn1
    assert index == 3 and model.layers[3].id not in (None, "bn1")
    assert wiring(model)[3] == ["bn1"] and wiring(model)[4] == [model.layers[3].id, "stem"]
    valid(model)
    # A layer with inputs gets a sibling taking the same.
    edits.duplicate(model, 4)
    assert wiring(model)[5] == wiring(model)[4]
    valid(model)


def test_move_keeps_a_topological_order_or_says_why_not():
    model = residual()
    with pytest.raises(EditError, match="cannot move above 'bn1'"):
        edits.move(model, 3, 1)  # the Add above bn1, which it takes
    with pytest.raises(EditError, match="which takes its output"):
        edits.move(model, 0, 5)  # stem below the Add, which takes it
    assert model == residual()
    edits.move(model, 4, 6)  # the ReLU to the end, as in a stack
    assert types(model)[-1] == "ReLU"
    valid(model)


# -- wires -------------------------------------------------------------------------------------------

def test_connect_adds_to_a_merge_and_replaces_a_single_input():
    model = residual()
    edits.connect(model, 1, 3)  # conv1 into the Add
    assert wiring(model)[3] == ["bn1", "stem", "conv1"]
    edits.connect(model, -1, 1)  # conv1 takes the input instead of stem
    assert wiring(model)[1] == ["input"]
    edits.connect(model, 0, 5)  # an implicit layer: gets inputs, and stem keeps its id
    assert model.layers[5].inputs == ["stem"]
    valid(model)
    with pytest.raises(EditError, match="only take layers listed before it"):
        edits.connect(model, 4, 2)


def test_connect_gives_ids_to_layers_without_one():
    model = stack()
    edits.connect(model, 1, 4)  # the second ReLU takes the first one
    assert model.layers[1].id == "relu_1" and model.layers[4].inputs == ["relu_1"]
    valid(model)


def test_disconnect():
    model = residual()
    edits.connect(model, 1, 3)
    edits.disconnect(model, 1, 3)  # three inputs -> two
    assert wiring(model)[3] == ["bn1", "stem"]
    before = copy.deepcopy(model)
    # The shortcut: the Add would merge nothing. Refused with what to do; the Add stays.
    with pytest.raises(EditError, match="would keep one: drag another wire onto it first, or delete the layer"):
        edits.disconnect(model, 0, 3)
    assert model == before
    valid(model)
    with pytest.raises(EditError, match="takes one input"):
        edits.disconnect(model, 1, 2)


def test_set_inputs_is_checked():
    model = residual()
    edits.set_inputs(model, 4, ["add"])
    assert model.layers[4].inputs == ["add"]
    for bad, message in ((["nope"], "unknown id"), (["head"], "listed after"), (["bn1", "stem"], "takes one")):
        with pytest.raises(EditError, match=message):
            edits.set_inputs(model, 4, bad)
    edits.set_inputs(model, 4, None)
    assert model.layers[4].inputs is None
    valid(model)


def test_rename_id_updates_every_reference():
    model = residual()
    edits.rename_id(model, 0, "trunk")
    assert model.layers[0].id == "trunk" and model.layers[3].inputs == ["bn1", "trunk"]
    for bad, message in (("bn1", "already the id"), ("forward", "PyTorch"), ("input", "input"), ("2x", "letter")):
        with pytest.raises(EditError, match=message):
            edits.rename_id(model, 0, bad)
    with pytest.raises(EditError, match="needs an id"):
        edits.rename_id(model, 0, None)
    edits.rename_id(model, 6, None)  # nobody names the head
    assert model.layers[6].id is None
    valid(model)


def test_insert_on_the_shortcut_of_a_residual():
    model = residual()
    index = edits.insert_on_wire(model, "Conv2d", 0, 3, {"out_channels": 8, "kernel_size": 1})
    assert index == 3 and wiring(model)[3] == ["stem"]
    assert wiring(model)[4] == ["bn1", model.layers[3].id]
    assert wiring(model)[1] == ["stem"]  # the main path as it was
    valid(model)
    with pytest.raises(EditError, match="does not take"):
        edits.insert_on_wire(model, "ReLU", 0, 6)


def test_add_skip_connection_merges_the_output_of_the_last_with_the_input_of_the_first():
    model = stack()
    index = edits.add_skip_connection(model, 2, 3)  # around the second Conv2d and its BatchNorm
    assert index == 4 and model.layers[4].type == "Add"
    assert wiring(model)[4] == [model.layers[3].id, model.layers[1].id]
    assert wiring(model)[5] == ["Add@4"]  # the ReLU after it takes the sum
    valid(model)


def test_apply_fix_on_a_merge_branch():
    project = Project(model=residual())
    edits.apply_fix(project, InsertLayer(3, "Conv2d", {"out_channels": 8, "kernel_size": 1}, input_item=1))
    assert wiring(project.model)[4] == ["bn1", project.model.layers[3].id]
    with pytest.raises(EditError, match="no longer fits"):
        edits.apply_fix(project, SetParam(99, "p", 1))
    valid(project.model)


# -- blocks ---------------------------------------------------------------------------------------------

def test_make_block_then_expand_gives_the_same_layers():
    model = residual()
    model.layers.insert(6, Layer("Linear", {"out_features": 10}, "aux", ["stem"]))
    model.layers[7].inputs = ["flatten"]
    model.layers[5].id = "flatten"
    original = copy.deepcopy(model)
    index = edits.make_block(model, [1, 2, 3, 4], "Body")
    assert types(model) == ["Conv2d", "Body", "Flatten", "Linear", "Linear"]
    assert model.blocks["Body"].layers[2].inputs == ["bn1", "input"]
    assert wiring(model)[index] == ["stem"]
    valid(model)
    edits.expand_block(model, index)
    assert model.layers == original.layers
    valid(model)


def test_make_block_needs_one_input_and_one_output():
    model = residual()
    with pytest.raises(EditError, match="takes 2 outputs from outside"):
        edits.make_block(model, [3], "Merge")
    with pytest.raises(EditError, match="gives 2 outputs"):
        edits.make_block(model, [0, 1], "Two")
    with pytest.raises(EditError, match="a layer type of the catalogue"):
        edits.make_block(model, [4], "ReLU")
    assert model == residual()


def test_expand_writes_the_parameters_in_and_unrolls_the_repeats():
    model = block_model()
    model.layers[1].params = {"channels": 16}
    model.layers.append(Layer("Linear", {"out_features": 2}, "aux", ["stage"]))
    new = edits.expand_block(model, 1)
    assert new == list(range(1, 7))
    assert types(model)[1:7] == ["Conv2d", "BatchNorm2d", "Add"] * 2
    assert [model.layers[i].params.get("out_channels") for i in (1, 4)] == [16, 16]
    ids = [layer.id for layer in model.layers if layer.id]
    assert len(ids) == len(set(ids))
    assert wiring(model)[3] == ["bn", "stem"] and wiring(model)[6][1] == model.layers[3].id
    assert model.layers[6].id == "stage" and wiring(model)[-1] == ["stage"]  # the use's id lives on
    valid(model)


def test_wrap_in_residual_makes_a_block_with_a_shortcut():
    model = stack()
    index = edits.wrap_in_residual(model, [2, 3])
    name = model.layers[index].type
    assert name == "Residual" and types(model) == ["Conv2d", "ReLU", "Residual", "ReLU", "Flatten", "Linear"]
    assert wiring(model, name)[-1] == [model.blocks[name].layers[1].id, "input"]
    valid(model)
    edits.expand_block(model, index)
    assert types(model)[2:5] == ["Conv2d", "BatchNorm2d", "Add"]
    valid(model)


def test_editing_a_block_definition_changes_every_use():
    model = block_model()
    model.layers.insert(2, Layer("Unit", {"channels": 8}))
    edits.insert(model, "ReLU", 1, block="Unit")
    edits.set_param(model, 0, "out_channels", "$channels", block="Unit")
    with pytest.raises(EditError, match="no parameter 'width'"):
        edits.set_param(model, 0, "out_channels", "$width", block="Unit")
    edits.add_block_param(model, "Unit", {"name": "stride", "kind": "int", "default": 1, "minimum": 1})
    edits.rename_block_param(model, "Unit", "channels", "width")
    assert model.blocks["Unit"].layers[0].params["out_channels"] == "$width"
    assert model.layers[2].params == {"width": 8}
    edits.rename_block(model, "Unit", "ResidualBlock")
    assert [layer.type for layer in model.layers[1:3]] == ["ResidualBlock"] * 2
    edits.set_repeat(model, 2, 3)
    valid(model)
    for use in (2, 1):  # both uses got the ReLU
        edits.expand_block(model, use)
    assert types(model).count("ReLU") == 2 + 3
    edits.remove_block_param(model, "ResidualBlock", "width")
    assert model.blocks["ResidualBlock"].layers[0].params["out_channels"] == 8
    edits.remove_block(model, "ResidualBlock")
    assert model.blocks == {}
    valid(model)


def test_block_edits_refuse_what_would_break_the_block():
    model = block_model()
    with pytest.raises(EditError, match="contain itself"):
        edits.insert(model, "Unit", 0, block="Unit")
    with pytest.raises(EditError, match="used by"):
        edits.remove_block(model, "Unit")
    with pytest.raises(EditError, match="at least one layer"):
        edits.remove(model, [0, 1, 2], block="Unit")
    with pytest.raises(EditError, match="only a block can repeat"):
        edits.set_repeat(model, 0, 2)
    with pytest.raises(EditError, match="default"):
        edits.add_block_param(model, "Unit", {"name": "k", "kind": "int"})
    assert model == block_model()


# -- copy and paste ------------------------------------------------------------------------------------

def test_copy_paste_keeps_inner_wires_and_gives_fresh_ids():
    model = residual()
    text = edits.copy_layers(model, [1, 2, 3])
    doc = json.loads(text)
    assert doc["format"] == "guidl-layers"
    assert doc["layers"][2]["inputs"] == ["bn1", "input"]  # stem was outside: the paste's input
    pasted = edits.paste(model, text, 4)
    assert pasted == [4, 5, 6]
    ids = [layer.id for layer in model.layers if layer.id]
    assert len(ids) == len(set(ids)) and model.layers[5].id != "bn1"
    # Inner wire re-pointed to the renamed copy; the outside wire to the layer above the paste.
    assert wiring(model)[6] == [model.layers[5].id, "add"]
    assert wiring(model)[4] == ["add"] and wiring(model)[7] == [model.layers[6].id or "Add@6"]
    valid(model)


def test_paste_into_another_project_brings_its_blocks_and_renames_a_different_one():
    source = block_model()
    text = edits.copy_layers(source, [1, 2])
    target = stack()
    target.blocks["Unit"] = Block([], [Layer("ReLU")])  # another block of the same name
    edits.paste(target, text, 1)
    assert target.layers[1].type == "Unit2" and target.blocks["Unit2"] == source.blocks["Unit"]
    assert target.blocks["Unit"].layers == [Layer("ReLU")]
    valid(target)
    same = block_model()
    edits.paste(same, text)
    assert list(same.blocks) == ["Unit"]  # the same definition: the same block
    valid(same)


def test_paste_refuses_what_is_not_guidl_layers():
    model = stack()
    for text in ("hello", "{}", json.dumps({"format": "guidl-layers", "layers": [{"type": "Nope"}]})):
        with pytest.raises(EditError):
            edits.paste(model, text)
    assert model == stack()


def test_a_merge_copied_alone_pastes_with_two_inputs():
    model = residual()
    edits.paste(model, edits.copy_layers(model, [3]), 5)
    assert model.layers[5].type == "Add" and len(wiring(model)[5]) == 2
    valid(model)


def test_positions_are_layout_only():
    model = residual()
    edits.set_positions(model, {0: (10, 20), 3: (1.5, 2)})
    assert model.layers[0].position == [10.0, 20.0] and model.layers[3].position == [1.5, 2.0]
    edits.clear_positions(model)
    assert all(layer.position is None for layer in model.layers)


# -- any sequence of edits keeps the graph valid ---------------------------------------------------------

OPERATIONS = st.lists(st.tuples(st.sampled_from([
    "insert", "insert_merge", "remove", "remove_two", "duplicate", "move", "connect", "disconnect",
    "insert_on_wire", "skip", "wrap", "make_block", "expand", "paste", "rename",
]), st.integers(-1, 12), st.integers(-1, 12)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([residual, block_model, stack]), OPERATIONS)
def test_every_edit_either_keeps_the_model_valid_or_changes_nothing(start, operations):
    model = start()
    for name, a, b in operations:
        before = copy.deepcopy(model)
        calls = {
            "insert": lambda: edits.insert(model, "ReLU", a),
            "insert_merge": lambda: edits.insert(model, "Concat", a),
            "remove": lambda: edits.remove(model, a),
            "remove_two": lambda: edits.remove(model, [a, b]),
            "duplicate": lambda: edits.duplicate(model, a),
            "move": lambda: edits.move(model, a, b),
            "connect": lambda: edits.connect(model, a, b),
            "disconnect": lambda: edits.disconnect(model, a, b),
            "insert_on_wire": lambda: edits.insert_on_wire(model, "Dropout", a, b),
            "skip": lambda: edits.add_skip_connection(model, a, b),
            "wrap": lambda: edits.wrap_in_residual(model, [a, b]),
            "make_block": lambda: edits.make_block(model, range(min(a, b), max(a, b) + 1)),
            "expand": lambda: edits.expand_block(model, a),
            "paste": lambda: edits.paste(model, edits.copy_layers(model, [a, b]), b),
            "rename": lambda: edits.rename_id(model, a, f"n{b + 1}"),
        }
        try:
            calls[name]()
        except EditError:
            assert model == before, name
            continue
        assert Project(model=model).problems() == [], (name, a, b, model)
