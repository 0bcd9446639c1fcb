"""Block files a careless or hostile author could write: each is a clear
problem at its JSON path, and no edit unrolls a block past the model's bound."""

import json

import pytest

from guidl import spec
from guidl.spec import Block, Layer, Model, ProjectError, edits
from guidl.spec.edits import EditError
from guidl.spec.graph import RESERVED_IDS, block_size
from guidl.spec.project import MAX_LAYERS


def _doc(blocks: dict, layers: list) -> str:
    return json.dumps({"format": "guidl-project", "version": 2, "name": "t",
                       "model": {"input_shape": [1, 8, 8], "blocks": blocks, "layers": layers},
                       "data": {"dataset": "mnist_sample"}, "training": {}})


def _problems(text: str) -> list[str]:
    with pytest.raises(ProjectError) as caught:
        spec.loads(text)
    return [str(p) for p in caught.value.problems]


def test_a_reference_inside_a_list_is_one_clear_problem():
    text = _doc({"Conv": {"params": [{"name": "k", "kind": "int", "default": 3}], "layers": [
        {"type": "Conv2d", "params": {"out_channels": 2, "kernel_size": ["$k", 3]}}]}},
        [{"type": "Conv"}])
    assert _problems(text) == [
        "model.blocks.Conv.layers[0].params.kernel_size: holds '$k' inside a list: a reference to a "
        "block parameter must be the whole value: write '$k' for all of kernel_size, or numbers in "
        "the list"]


def test_inputs_is_not_an_id_the_graph_module_holds_its_wiring_there():
    assert "inputs" in RESERVED_IDS
    text = _doc({}, [{"id": "inputs", "type": "Flatten"}])
    assert _problems(text)[0].startswith(
        "model.layers[0].id: 'inputs' is a name Python or PyTorch modules use")


def test_block_size_multiplies_repeats_and_stops_at_the_bound():
    blocks = {"Leaf": Block([], [Layer("ReLU"), Layer("ReLU")]),
              "Mid": Block([], [Layer("Leaf", repeat=10), Layer("ReLU")]),
              "Top": Block([], [Layer("Mid", repeat=1000)] + [Layer("Top")])}  # a cycle counts once
    assert block_size(blocks, "Leaf") == 2
    assert block_size(blocks, "Mid") == 1 + 10 * 2 + 1
    from guidl.spec.graph import MAX_EXPANDED_LAYERS
    assert block_size(blocks, "Top") == MAX_EXPANDED_LAYERS + 1


def test_expanding_a_use_past_the_layer_bound_is_refused_and_changes_nothing():
    model = Model([Layer("Pair", id="p", repeat=1000)], [4],
                  blocks={"Pair": Block([], [Layer("Linear", {"out_features": 4}, id=f"l{i}")
                                             for i in range(11)])})
    with pytest.raises(EditError) as caught:
        edits.expand_block(model, 0)
    assert str(caught.value) == (f"expanding 'p' (Pair) (×1,000) would give the list 11,000 "
                                 f"layers; at most {MAX_LAYERS:,} are supported: lower its repeat first")
    assert len(model.layers) == 1
    model.layers[0].repeat = 2
    assert len(edits.expand_block(model, 0)) == 22


def _chain(levels: int) -> dict:
    blocks = {f"B{i}": {"params": [], "layers": [{"type": f"B{i + 1}"}]} for i in range(levels - 1)}
    blocks[f"B{levels - 1}"] = {"params": [], "layers": [{"type": "Flatten"}]}
    return blocks


def test_blocks_nested_too_deep_are_one_problem_on_the_outermost_block():
    from guidl.engine import analyze
    from guidl.spec.graph import MAX_BLOCK_DEPTH

    assert _problems(_doc(_chain(MAX_BLOCK_DEPTH + 4), [{"type": "B0"}])) == [
        f"model.blocks.B0: nests blocks more than {MAX_BLOCK_DEPTH} deep (B0 -> B1 -> B2 -> B3 -> … -> "
        f"B{MAX_BLOCK_DEPTH}); use at most {MAX_BLOCK_DEPTH} levels of blocks inside blocks"]
    project = spec.loads(_doc(_chain(MAX_BLOCK_DEPTH), [{"type": "B0"}]))
    assert analyze(project.model).ok  # the deepest the file allows also analyses


def test_a_block_parameter_name_starts_with_a_letter():
    text = _doc({"A": {"params": [{"name": "_hidden", "kind": "int", "default": 3}],
                       "layers": [{"type": "Flatten"}]}}, [{"type": "A"}])
    assert _problems(text) == ["model.blocks.A.params[0].name: must be a parameter name (a letter, then "
                               "letters, digits, underscores), got '_hidden'"]


def test_renaming_a_block_parameter_to_a_leading_underscore_is_refused():
    model = Model([Layer("A")], [4], blocks={"A": Block([{"name": "n", "kind": "int", "default": 2}],
                                                        [Layer("Linear", {"out_features": "$n"})])})
    with pytest.raises(EditError, match="starts with a letter"):
        edits.rename_block_param(model, "A", "n", "__class__")
    edits.rename_block_param(model, "A", "n", "width")
    assert model.blocks["A"].layers[0].params == {"out_features": "$width"}


def test_looking_for_a_cycle_visits_each_block_once():
    import time

    from guidl.spec.graph import block_cycle

    # Each block uses the next ten times: walking every path is 10**14 steps.
    blocks = {f"B{i}": Block([], [Layer(f"B{i + 1}") for _ in range(10)]) for i in range(14)}
    blocks["B14"] = Block([], [Layer("ReLU")])
    started = time.perf_counter()
    assert all(block_cycle(blocks, name) is None for name in blocks)
    blocks["B14"].layers.append(Layer("B3"))
    assert block_cycle(blocks, "B3") == [f"B{i}" for i in range(3, 15)] + ["B3"]
    assert time.perf_counter() - started < 2


def test_a_file_of_fanned_out_blocks_is_read_at_once():
    import time

    blocks = {f"B{i}": {"params": [], "layers": [{"type": f"B{i + 1}"} for _ in range(10)]}
              for i in range(14)}
    blocks["B14"] = {"params": [], "layers": [{"type": "Flatten"}]}
    started = time.perf_counter()
    spec.loads(_doc(blocks, [{"type": "Flatten"}]))
    assert time.perf_counter() - started < 2


def test_a_file_with_too_many_blocks_is_refused():
    from guidl.spec.graph import MAX_BLOCKS

    blocks = {f"B{i}": {"params": [], "layers": [{"type": "Flatten"}]} for i in range(MAX_BLOCKS + 1)}
    assert _problems(_doc(blocks, [{"type": "Flatten"}])) == [
        f"model.blocks: has {MAX_BLOCKS + 1:,} blocks; at most {MAX_BLOCKS:,} are supported"]
