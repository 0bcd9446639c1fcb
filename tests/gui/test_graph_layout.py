"""The canvas's layered layout, without Qt: a chain is a column, a skip runs
beside it, branches sit side by side, stored positions stay."""

from guidl.qt.graph_layout import (
    INPUT_NODE, crossings, edges_of, layered_layout, output_node, ranks_of,
)

SIZE = (160.0, 50.0)


def sizes(count):
    return {node: SIZE for node in range(INPUT_NODE, count + 1)}


def centre(layout, node):
    x, _ = layout.positions[node]
    return x + SIZE[0] / 2


def test_a_chain_is_one_column_top_to_bottom():
    inputs = [[INPUT_NODE]] + [[i] for i in range(7)]
    layout = layered_layout(inputs, sizes(8))
    xs = {centre(layout, node) for node in range(INPUT_NODE, 9)}
    assert xs == {0}
    ys = [layout.positions[node][1] for node in range(INPUT_NODE, 9)]
    assert ys == sorted(ys) and len(set(ys)) == len(ys)
    assert layout.routes == {}


def test_nodes_of_other_widths_share_the_column_centre():
    inputs = [[INPUT_NODE], [0], [1]]
    widths = {INPUT_NODE: (120, 40), 0: (200, 50), 1: (140, 50), 2: (260, 50), 3: (120, 40)}
    layout = layered_layout(inputs, widths)
    assert {layout.positions[n][0] + widths[n][0] / 2 for n in widths} == {0}


def test_a_residual_keeps_its_main_path_straight_and_routes_the_skip_beside_it():
    # stem, conv, bn, relu, conv, bn, add(bn, stem), relu
    inputs = [[INPUT_NODE], [0], [1], [2], [3], [4], [5, 0], [6]]
    layout = layered_layout(inputs, sizes(8))
    assert {centre(layout, node) for node in range(INPUT_NODE, 9)} == {0}
    route = layout.routes[(0, 6)]
    assert len(route) == 2 * 5  # two points on each of the five layers it crosses
    xs = {x for x, _ in route}
    assert len(xs) == 1 and xs.pop() >= SIZE[0] / 2  # one straight line, clear of the column
    ys = [y for _, y in route]
    assert ys == sorted(ys)


def test_branches_sit_side_by_side_and_merge_below():
    # two branches from the input, concatenated
    inputs = [[INPUT_NODE], [INPUT_NODE], [0, 1], [2]]
    layout = layered_layout(inputs, sizes(4))
    assert layout.positions[0][1] == layout.positions[1][1]  # the same layer
    left, right = sorted([layout.positions[0][0], layout.positions[1][0]])
    assert right - left >= SIZE[0]  # no overlap
    assert layout.positions[2][1] > layout.positions[0][1]
    # The merge sits between its two inputs.
    assert min(centre(layout, 0), centre(layout, 1)) <= centre(layout, 2) <= max(
        centre(layout, 0), centre(layout, 1))


def test_ordering_removes_crossings_it_can():
    # a and b from the input; c takes b, d takes a: drawn as listed, the wires cross.
    inputs = [[INPUT_NODE], [INPUT_NODE], [1], [0], [2, 3]]
    layout = layered_layout(inputs, sizes(5))
    a, b, c, d = (centre(layout, n) for n in range(4))
    assert (a < b) == (d < c)


def test_crossings_counts_pairs_between_layers():
    down = {0: [3], 1: [2], 2: [], 3: []}
    assert crossings([[0, 1], [2, 3]], down) == 1
    assert crossings([[0, 1], [3, 2]], down) == 0


def test_stored_positions_stay_and_the_rest_is_laid_out():
    inputs = [[INPUT_NODE], [0], [1]]
    auto = layered_layout(inputs, sizes(3))
    layout = layered_layout(inputs, sizes(3), positions={1: (500.0, -20.0)})
    assert layout.positions[1] == (500.0, -20.0)
    assert layout.positions[0] == auto.positions[0] and layout.positions[2] == auto.positions[2]


def test_a_moved_end_drops_the_skip_route():
    inputs = [[INPUT_NODE], [0], [1], [2, 0]]
    assert (0, 3) in layered_layout(inputs, sizes(4)).routes
    assert (0, 3) not in layered_layout(inputs, sizes(4), positions={3: (300.0, 300.0)}).routes


def test_ranks_edges_and_the_output_marker():
    inputs = [[INPUT_NODE], [0], [INPUT_NODE, 1]]
    assert ranks_of(inputs) == {INPUT_NODE: 0, 0: 1, 1: 2, 2: 3, 3: 4}
    assert edges_of(inputs) == [(INPUT_NODE, 0), (0, 1), (INPUT_NODE, 2), (1, 2), (2, output_node(3))]
    empty = layered_layout([], {})
    assert set(empty.positions) == {INPUT_NODE, output_node(0)}


def test_a_broken_wiring_still_lays_out():
    # a layer with no inputs (a wiring problem the checks report) sits below the input
    layout = layered_layout([[INPUT_NODE], []], sizes(2))
    assert set(layout.positions) == {INPUT_NODE, 0, 1, 2}


def test_two_hundred_layers_lay_out_quickly():
    import time

    inputs = [[INPUT_NODE]]
    for _ in range(40):
        start = len(inputs) - 1
        for _ in range(4):
            inputs.append([len(inputs) - 1])
        inputs.append([len(inputs) - 1, start])
    began = time.perf_counter()
    layout = layered_layout(inputs, sizes(len(inputs)))
    assert time.perf_counter() - began < 1.0  # generous: a shared machine; typically ~10 ms
    assert len({centre(layout, n) for n in range(len(inputs))}) == 1


def test_a_projection_shortcut_moves_aside_and_the_main_path_stays_one_column():
    # stem; then blocks whose shortcut is a 1x1 projection (two layers) beside
    # a main path of three, merged by an Add: the column must not drift.
    inputs = [[INPUT_NODE]]
    main_path = [0]
    for _ in range(3):
        start = len(inputs) - 1
        first = len(inputs)
        inputs += [[start], [first], [first + 1]]  # the main path
        inputs += [[start], [first + 3]]  # the projection and its norm
        inputs.append([first + 2, first + 4])  # the Add
        main_path += [first, first + 1, first + 2, first + 5]
    layout = layered_layout(inputs, sizes(len(inputs)))
    assert {centre(layout, node) for node in main_path} == {0}
    projections = [first for first in range(len(inputs)) if first not in main_path]
    assert all(centre(layout, node) >= SIZE[0] for node in projections)
