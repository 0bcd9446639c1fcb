"""Graph models a hostile or careless file could make: the analysis stays
bounded, never raises, and its per-layer cache never answers for another
layer's wiring."""

import time

import torch

from guidl.engine import analyze, build
from guidl.engine.build import _ANALYSED
from guidl.spec import Block, Layer, Model
from guidl.spec.graph import MAX_EXPANDED_LAYERS


def _nested_repeats(outer: int, inner: int) -> Model:
    return Model([Layer("Outer", repeat=outer), Layer("Flatten")], [4], blocks={
        "Leaf": Block([], [Layer("ReLU")]),
        "Outer": Block([], [Layer("Leaf", repeat=inner)])})


def test_a_block_repeated_inside_a_repeated_block_is_refused_before_unrolling():
    started = time.perf_counter()
    report = analyze(_nested_repeats(1000, 1000))
    assert time.perf_counter() - started < 5  # unrolled, a million layers take minutes
    layer = report.layers[0]
    assert layer.error == (f"unrolls to 1,001 layers per repetition × 1,000 repetitions, and a model "
                           f"may hold at most {MAX_EXPANDED_LAYERS:,} layers with its blocks unrolled")
    assert layer.fix == f"set repeat to at most {(MAX_EXPANDED_LAYERS - 1) // 1001}"
    assert not layer.blocks and not report.ok


def test_three_levels_of_repeats_are_counted_without_building_the_count():
    model = Model([Layer("C", repeat=1000)], [4], blocks={
        "A": Block([], [Layer("ReLU")]),
        "B": Block([], [Layer("A", repeat=1000)]),
        "C": Block([], [Layer("B", repeat=1000)])})
    layer = analyze(model).layers[0]
    assert layer.error.startswith(f"unrolls to more than {MAX_EXPANDED_LAYERS:,} layers per repetition")
    assert layer.fix == "lower the repeat of the blocks inside C, or make it smaller"


def test_a_model_at_the_bound_still_analyses():
    report = analyze(_nested_repeats(9, 1000))
    assert report.ok, report.problems()
    assert sum(1 for _ in report.all_layers()) == 2 + 9 * 1001


def test_the_graph_module_names_its_own_attributes_nothing_an_id_can_be():
    from guidl.engine.graph import GraphModel
    from guidl.spec.graph import RESERVED_IDS, id_problem

    graph = GraphModel([("a", torch.nn.ReLU())], [[-1]])
    own = {name for name in vars(graph) if not name.startswith("_")}
    assert own <= RESERVED_IDS, sorted(own - RESERVED_IDS)
    assert "a name Python or PyTorch modules use" in id_problem("inputs")


def _shortcut(first: str) -> Model:
    """Two branches of different channels; ``first`` is listed first."""
    branches = {"a": Layer("Conv2d", {"out_channels": 4, "kernel_size": 1}, id="a", inputs=["input"]),
                "b": Layer("Conv2d", {"out_channels": 8, "kernel_size": 1, "stride": 2}, id="b",
                           inputs=["input"])}
    second = "b" if first == "a" else "a"
    return Model([branches[first], branches[second], Layer("Add", inputs=["a", "b"])], [2, 8, 8])


def test_the_cache_tells_a_merge_which_input_is_the_shortcut_after_a_move():
    # The same sources, shapes and index: only the order the branches are listed in
    # differs, which decides the shortcut (the branch listed first).
    first = analyze(_shortcut("a")).layers[2]
    assert first.fix == ("insert Conv2d(out_channels=8, kernel_size=1, stride=2) on the shortcut "
                         "(input 1, from 'a')")
    moved = analyze(_shortcut("b")).layers[2]
    _ANALYSED.clear()
    fresh = analyze(_shortcut("b")).layers[2]
    assert fresh.fix != first.fix and fresh.fix_action is None
    assert moved.fix == fresh.fix and moved.fix_action == fresh.fix_action


def test_recalled_reports_are_copies_nothing_later_edits_the_cache():
    model = Model([Layer("Linear", {"out_features": 3}, id="a"),
                   Layer("Linear", {"out_features": 4}, inputs=["input"], id="b"),
                   Layer("Add", inputs=["a", "b"])], [4])
    first = analyze(model).layers[2]
    first.params["extra"] = 1
    first.warnings.append("changed")
    again = analyze(model).layers[2]
    assert again.fix_action.index == 2 and "extra" not in again.params and again.warnings == []


def _block_with(params: dict) -> Model:
    return Model([Layer("Conv", {"k": 1}), Layer("Flatten")], [1, 8, 8], blocks={
        "Conv": Block([{"name": "k", "kind": "int", "default": 3, "minimum": 1}],
                      [Layer("Conv2d", {"out_channels": 2, **params})])})


def test_a_reference_inside_a_list_is_a_clear_problem_not_a_traceback():
    layer = analyze(_block_with({"kernel_size": ["$k", "$k"]})).layers[0]
    assert layer.error == ("in Conv, layer 0 (Conv2d): kernel_size: '$k' inside a list: a reference "
                           "to a block parameter must be the whole value")
    assert layer.fix == "write kernel_size: '$k' or a list of numbers"


def test_a_reference_to_a_parameter_the_block_lacks_is_named():
    layer = analyze(_block_with({"kernel_size": "$size"})).layers[0]
    assert layer.error == ("in Conv, layer 0 (Conv2d): kernel_size: refers to '$size', but the block "
                           "has no parameter 'size'")


def test_a_use_value_the_inner_layer_refuses_is_named_on_the_use():
    model = _block_with({"kernel_size": 3, "padding": "$k"})
    model.blocks["Conv"].params[0] = {"name": "k", "kind": "float", "default": 1.0}
    model.layers[0].params = {"k": 0.5}
    layer = analyze(model).layers[0]
    assert layer.error.startswith("in Conv, layer 0 (Conv2d): padding: ")


def test_a_repeated_block_that_changes_the_shape_feeds_each_repetition_the_last_output():
    model = Model([Layer("Grow", {"n": 6}, id="g", repeat=3)], [4], blocks={
        "Grow": Block([{"name": "n", "kind": "int", "default": 3}],
                      [Layer("Linear", {"out_features": "$n"})])})
    report = analyze(model)
    assert [b.input_shape for b in report.layers[0].blocks] == [(4,), (6,), (6,)]
    assert report.total_params == (4 * 6 + 6) + 2 * (6 * 6 + 6)
    assert build(model).module(torch.ones(2, 4)).shape == (2, 6)


def test_a_cached_result_pushed_out_by_another_thread_is_still_used():
    from guidl.engine.build import LayerReport, _recall

    model = Model([Layer("Linear", {"out_features": 3})], [4])
    analyze(model)
    key, values = next(reversed(_ANALYSED.items()))
    _ANALYSED.clear()  # what another thread's analysis of a big model does meanwhile
    layer = LayerReport(0, "Linear")
    _recall(key, values, layer)
    assert layer.output_shape == (3,) and layer.param_count == 15


def test_a_layer_problem_names_the_layer_by_its_id():
    model = Model([Layer("Conv1d", {"out_channels": 4, "kernel_size": 1}, id="a"),
                   Layer("Concat", {"dim": 0}, inputs=["a", "input"], id="join")], [4, 6])
    assert [str(p) for p in analyze(model).problems()] == [
        "model.layers[1]: 'join' (Concat): joins along dim 0, the batch: samples would be mixed; "
        "fix: set dim to 1 (channels or features)"]
