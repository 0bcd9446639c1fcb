"""Edits of a block's declaration: its parameters' kind, default, bounds and
help, its help text, and renames that carry the "$name" references along."""

import copy

import pytest

from guidl.spec import Block, Layer, Model
from guidl.spec import edits
from guidl.spec.edits import EditError


def model() -> Model:
    block = Block([{"name": "channels", "kind": "int", "default": 8, "minimum": 1}],
                  [Layer("Conv2d", {"out_channels": "$channels", "kernel_size": 3}, "conv"),
                   Layer("BatchNorm2d")], "A unit.")
    return Model([Layer("Unit", {"channels": 4}, "stage"), Layer("Flatten")], [1, 8, 8],
                 blocks={"Unit": block})


def test_set_block_param_replaces_the_declaration():
    m = model()
    edits.set_block_param(m, "Unit", "channels",
                          {"name": "channels", "kind": "int", "default": 16, "minimum": 2, "maximum": 64,
                           "help": "width"})
    assert m.blocks["Unit"].params == [{"name": "channels", "kind": "int", "default": 16, "minimum": 2,
                                        "maximum": 64, "help": "width"}]
    assert m.blocks["Unit"].layers[0].params["out_channels"] == "$channels"


@pytest.mark.parametrize("config, words", [
    ({"name": "channels", "kind": "int", "default": 0, "minimum": 1}, "the default must be a positive integer"),
    ({"name": "channels", "kind": "int", "default": 5, "maximum": 4}, "the default must be"),
    ({"name": "channels", "kind": "str", "default": "a", "choices": ["b", "c"]}, "must be one of 'b', 'c'"),
    ({"name": "channels", "kind": "complex", "default": 1}, "the kind must be one of"),
    ({"name": "width", "kind": "int", "default": 1}, "rename"),
])
def test_a_refused_declaration_changes_nothing_and_says_why(config, words):
    m = model()
    before = copy.deepcopy(m)
    assert words in (edits.block_param_problem(m, "Unit", "channels", config) or "")
    with pytest.raises(EditError, match=words.split("'")[0]):
        edits.set_block_param(m, "Unit", "channels", config)
    assert m == before


def test_block_param_problem_is_none_for_a_valid_declaration():
    config = {"name": "channels", "kind": "int", "default": 3}
    assert edits.block_param_problem(model(), "Unit", "channels", config) is None
    assert "no parameter" in edits.block_param_problem(model(), "Unit", "nope", {"name": "nope"})


def test_rename_block_param_carries_references_and_uses():
    m = model()
    edits.rename_block_param(m, "Unit", "channels", "width")
    assert m.blocks["Unit"].layers[0].params["out_channels"] == "$width"
    assert m.layers[0].params == {"width": 4}
    with pytest.raises(EditError, match="letters, digits"):
        edits.rename_block_param(m, "Unit", "width", "not a name")


def test_set_block_help():
    m = model()
    edits.set_block_help(m, "Unit", "  Two convolutions.  ")
    assert m.blocks["Unit"].help == "Two convolutions."
    with pytest.raises(EditError, match="no block"):
        edits.set_block_help(m, "Nope", "x")
