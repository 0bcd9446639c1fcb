"""Where the canvas puts each node: a layered layout, top to bottom.

Pure Python (no Qt), so it is tested on its own. The classic steps of a
layered (Sugiyama) drawing:

1. layers: each node one below the lowest node it takes (longest path from
   the input), so every wire points down;
2. a wire that spans several layers gets a bend point on each layer it
   crosses, so it is routed like a node and never through one;
3. order within a layer: barycentre sweeps down and up, keeping the order
   with the fewest crossings;
4. x: each node as close as it can be to its neighbours' mean, in order and
   without overlap (a weighted isotonic regression per layer); layers'
   nodes come before bend points, so a straight stack is one clean column
   and a skip connection runs beside it.

Nodes with a stored position keep it; the others are laid out as if it were
not there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

#: The model's input node.
INPUT_NODE = -1
H_GAP = 36.0
V_GAP = 44.0
#: The width a bend point claims in its layer.
BEND_WIDTH = 14.0
_SWEEPS = 6
_PLACEMENT_ROUNDS = 8
_REAL_WEIGHT = 1e9  # bend points give way to nodes: a stack stays a column
#: Between nodes, the longer run of single links below a node weighs more: a
#: ResNet's main path stays put and its 1x1 shortcut moves aside.
_RUN_WEIGHT = 1e5
_LONGEST_RUN = 5


def output_node(count: int) -> int:
    """The output marker's node number for ``count`` layers."""
    return count


@dataclass
class Layout:
    #: node -> the top-left corner of its box (``INPUT_NODE``, layers 0..n-1, ``output_node(n)``).
    positions: dict[int, tuple[float, float]] = field(default_factory=dict)
    #: (source, target) -> the bend points of a wire that crosses layers, top to bottom.
    routes: dict[tuple[int, int], list[tuple[float, float]]] = field(default_factory=dict)
    #: node -> its layer (0 for the input).
    ranks: dict[int, int] = field(default_factory=dict)


def edges_of(inputs: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Every wire (source, target), with the last layer wired to the output marker."""
    count = len(inputs)
    edges = [(source, target) for target, sources in enumerate(inputs) for source in sources
             if source == INPUT_NODE or 0 <= source < target]
    edges.append((count - 1 if count else INPUT_NODE, output_node(count)))
    return edges


def ranks_of(inputs: Sequence[Sequence[int]]) -> dict[int, int]:
    """Longest path from the input: each node one layer below its lowest source."""
    ranks = {INPUT_NODE: 0}
    for target, sources in enumerate(inputs):
        known = [ranks[s] for s in sources if s in ranks]
        ranks[target] = 1 + max(known, default=0)
    count = len(inputs)
    ranks[output_node(count)] = 1 + (ranks[count - 1] if count else 0)
    return ranks


def layered_layout(inputs: Sequence[Sequence[int]], sizes: Mapping[int, tuple[float, float]],
                   positions: Mapping[int, tuple[float, float]] | None = None,
                   h_gap: float = H_GAP, v_gap: float = V_GAP) -> Layout:
    """Lay out the graph whose layer ``i`` takes ``inputs[i]`` (``INPUT_NODE``
    for the model's input). ``sizes`` gives each node's (width, height)
    (missing: 0 x 0); ``positions`` the stored top-left corners that stay."""
    positions = positions or {}
    count = len(inputs)
    ranks = ranks_of(inputs)
    edges = edges_of(inputs)
    real = [INPUT_NODE, *range(count), output_node(count)]
    width = {node: float(sizes.get(node, (0.0, 0.0))[0]) for node in real}
    height = {node: float(sizes.get(node, (0.0, 0.0))[1]) for node in real}
    up: dict[int, list[int]] = {node: [] for node in real}
    down: dict[int, list[int]] = {node: [] for node in real}
    chains: dict[tuple[int, int], list[int]] = {}
    next_bend = output_node(count) + 1
    rank_count = max(ranks.values()) + 1
    layers: list[list[int]] = [[] for _ in range(rank_count)]
    for node in real:
        layers[ranks[node]].append(node)
    bends: list[list[int]] = [[] for _ in range(rank_count)]
    for source, target in edges:
        previous, chain = source, []
        for rank in range(ranks[source] + 1, ranks[target]):
            bend = next_bend
            next_bend += 1
            ranks[bend], width[bend], height[bend] = rank, BEND_WIDTH, 0.0
            up[bend], down[bend] = [previous], []
            down[previous].append(bend)
            bends[rank].append(bend)
            chain.append(bend)
            previous = bend
        down[previous].append(target)
        up[target].append(previous)
        if chain:
            chains[(source, target)] = chain
    # Nodes first, then bend points: ties in the sweeps keep skips on the right.
    order = [layers[r] + bends[r] for r in range(rank_count)]
    order = _order(order, up, down)
    xs = _place(order, up, down, width, real_nodes=set(real), h_gap=h_gap)

    tops, y = [], 0.0
    for rank in range(rank_count):
        tops.append(y)
        y += max((height[n] for n in layers[rank]), default=0.0) + v_gap
    layout = Layout(ranks={node: ranks[node] for node in real})
    shift = xs[INPUT_NODE]  # the input's centre at x = 0
    for node in real:
        stored = positions.get(node)
        if stored is not None:
            layout.positions[node] = (float(stored[0]), float(stored[1]))
        else:
            layout.positions[node] = (round(xs[node] - shift - width[node] / 2),
                                      round(tops[ranks[node]]))
    for (source, target), chain in chains.items():
        if source in positions or target in positions:
            continue  # a moved end: the wire goes straight there
        points = []
        for bend in chain:
            x = round(xs[bend] - shift)
            rank_height = max((height[n] for n in layers[ranks[bend]]), default=0.0)
            points += [(x, tops[ranks[bend]]), (x, tops[ranks[bend]] + rank_height)]
        layout.routes[(source, target)] = points
    return layout


def crossings(order: Sequence[Sequence[int]], down: Mapping[int, Sequence[int]]) -> int:
    """How many pairs of wires cross between consecutive layers."""
    total = 0
    for upper, lower in zip(order, order[1:]):
        where = {node: i for i, node in enumerate(lower)}
        pairs = sorted((i, where[t]) for i, node in enumerate(upper) for t in down[node] if t in where)
        for a in range(len(pairs)):
            for b in range(a + 1, len(pairs)):
                if pairs[a][0] < pairs[b][0] and pairs[a][1] > pairs[b][1]:
                    total += 1
    return total


def _order(order: list[list[int]], up, down) -> list[list[int]]:
    best, best_crossings = [list(layer) for layer in order], crossings(order, down)
    current = [list(layer) for layer in order]
    for sweep in range(_SWEEPS):
        downward = sweep % 2 == 0
        ranks = range(1, len(current)) if downward else range(len(current) - 2, -1, -1)
        for rank in ranks:
            fixed = current[rank - 1] if downward else current[rank + 1]
            where = {node: i for i, node in enumerate(fixed)}
            neighbours = up if downward else down

            def barycentre(item: tuple[int, int]) -> float:
                position, node = item
                near = [where[n] for n in neighbours[node] if n in where]
                return sum(near) / len(near) if near else position

            current[rank] = [node for _, node in sorted(enumerate(current[rank]), key=barycentre)]
        now = crossings(current, down)
        if now < best_crossings:
            best, best_crossings = [list(layer) for layer in current], now
    return best


def _runs(order, up, down, real_nodes) -> dict[int, int]:
    """For each node, how many nodes follow it one by one (each the only
    taker of the one before, which has no other taker), itself included."""
    runs: dict[int, int] = {}
    for layer in reversed(order):
        for node in layer:
            below = down[node]
            single = len(below) == 1 and below[0] in real_nodes and len(up[below[0]]) == 1
            runs[node] = 1 + runs.get(below[0], 0) if single else 1
    return runs


def _place(order, up, down, width, real_nodes, h_gap) -> dict[int, float]:
    runs = _runs(order, up, down, real_nodes)
    weight = {node: _REAL_WEIGHT * _RUN_WEIGHT ** min(runs[node], _LONGEST_RUN) if node in real_nodes else 1.0
              for layer in order for node in layer}
    xs: dict[int, float] = {}
    for layer in order:
        x = 0.0
        for node in layer:
            xs[node] = x + width[node] / 2
            x += width[node] + h_gap
    for _ in range(_PLACEMENT_ROUNDS):
        moved = 0.0
        # Each round ends going down: a node follows the node above it, so a run of
        # single links is one straight column.
        for neighbours, ranks in ((down, range(len(order) - 2, -1, -1)), (up, range(1, len(order)))):
            for rank in ranks:
                layer = order[rank]
                targets = [_desired(node, neighbours, xs, real_nodes) for node in layer]
                if len(layer) == 1:
                    placed = targets
                else:
                    weights = [weight[node] for node in layer]
                    placed = _fit(layer, targets, weights, width, h_gap)
                for node, x in zip(layer, placed):
                    moved = max(moved, abs(xs[node] - x))
                    xs[node] = x
        if moved < 0.25:  # settled
            break
    return xs


def _desired(node, neighbours, xs, real_nodes) -> float:
    near = neighbours[node]
    if not near:
        return xs[node]
    # A node lines up with the nodes it is wired to, not with a skip's bend points.
    solid = [n for n in near if n in real_nodes]
    chosen = solid if solid and node in real_nodes else near
    return sum(xs[n] for n in chosen) / len(chosen)


def _fit(layer, targets, weights, width, h_gap) -> list[float]:
    """The xs closest to ``targets`` (weighted least squares) that keep the
    layer's order with a gap between neighbours: pool adjacent violators on
    x minus each node's least offset from the first."""
    offsets, offset = [], 0.0
    for i, node in enumerate(layer):
        if i:
            offset += (width[layer[i - 1]] + width[node]) / 2 + h_gap
        offsets.append(offset)
    blocks: list[list[float]] = []  # [weighted mean, weight, size]
    for target, weight, off in zip(targets, weights, offsets):
        blocks.append([target - off, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            value, w, n = blocks.pop()
            block = blocks[-1]
            block[0] = (block[0] * block[1] + value * w) / (block[1] + w)
            block[1] += w
            block[2] += n
    values = [block[0] for block in blocks for _ in range(int(block[2]))]
    return [value + off for value, off in zip(values, offsets)]
