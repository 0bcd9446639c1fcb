"""analyze never raises: for any layer the catalogue offers, with any
parameters its schema accepts, on any input shape, every problem is one line
on its layer (the window and `guidl summary` show it; nothing is a crash)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guidl.engine import analyze
from guidl.registry import LAYERS
from guidl.registry.layers import MAX_SIZE
from guidl.spec import Layer, Model

INTS = st.one_of(st.integers(-3, 9), st.sampled_from([MAX_SIZE, 2**20, -(2**40)]))
FLOATS = st.one_of(st.floats(-2, 3, allow_nan=False), st.sampled_from([1e-9, 1024.0, 1e30]))


def _value(param):
    kind = param.kind
    if kind == "bool":
        return st.booleans()
    if kind == "str":
        return st.sampled_from(param.choices) if param.choices else st.text(max_size=3)
    if kind in ("int", "float"):
        return INTS if kind == "int" else FLOATS
    item = INTS if kind in ("ints", "int_list") else FLOATS
    lists = st.lists(item, min_size=1, max_size=4)
    if kind in ("ints", "floats"):
        return st.one_of(item, lists, st.sampled_from(param.keywords or (1,)))
    return lists


@st.composite
def layers(draw):
    entry = draw(st.sampled_from(list(LAYERS)))
    params = {}
    for param in entry.params:
        if draw(st.booleans()) or param.required:
            value = draw(_value(param))
            if param.check(value) is None:  # only what validation lets through
                params[param.name] = value
    return Layer(entry.name, params)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(stack=st.lists(layers(), min_size=1, max_size=3),
       shape=st.lists(st.integers(1, 40), min_size=1, max_size=4),
       dtype=st.sampled_from(["float32", "int64"]))
def test_analyze_reports_every_problem_on_its_layer_and_never_raises(stack, shape, dtype):
    report = analyze(Model(stack, shape, dtype))
    for problem in report.problems():
        assert "\n" not in str(problem) and len(str(problem)) < 1000, problem


@st.composite
def graphs(draw):
    """Layers with random ids and random (often wrong) inputs, some merges."""
    count = draw(st.integers(1, 5))
    ids = [f"l{i}" for i in range(count)]
    out = []
    for index in range(count):
        layer = draw(layers())
        layer.id = ids[index] if draw(st.booleans()) else None
        if draw(st.booleans()):
            names = st.sampled_from(["input", *ids, "ghost"])
            layer.inputs = draw(st.one_of(st.lists(names, max_size=3), st.just("l0")))
        out.append(layer)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(graph=graphs(), shape=st.lists(st.integers(1, 12), min_size=1, max_size=3))
def test_analyze_of_any_wiring_never_raises_and_what_it_accepts_builds(graph, shape):
    import torch

    from guidl.engine import build

    model = Model(graph, shape)
    report = analyze(model)
    for problem in report.problems():
        assert "\n" not in str(problem) and len(str(problem)) < 1000, problem
    if report.ok and report.total_params < 100_000:
        module = build(model, report=report).module.eval()
        with torch.no_grad():
            assert tuple(module(torch.rand(2, *shape)).shape[1:]) == report.output_shape
