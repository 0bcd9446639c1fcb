"""A user's long string is quoted in a message cut to a bounded length, with
its full length said: a 15-31 MB value must not come back as a 31 MB line."""

import json
import time

import pytest

from guidl import spec
from guidl.formatting import quote
from guidl.spec import ProjectError

LONG = "x" * 1_000_000
SAID = "(1,000,000 characters)"
BOUND = 1000  # characters per message line, whatever the value


def _valid():
    return {
        "format": "guidl-project", "version": 1, "name": "t",
        "model": {"input_shape": [4], "layers": [{"type": "Linear", "params": {"out_features": 2}}]},
        "data": {"dataset": "moons", "params": {}},
        "training": {"loss": {"type": "CrossEntropyLoss"}, "optimizer": {"type": "Adam"}},
    }


def _with(edit):
    doc = _valid()
    edit(doc)
    return json.dumps(doc)


CASES = {
    "format": lambda d: d.update(format=LONG),
    "input_dtype": lambda d: d["model"].update(input_dtype=LONG),
    "layer type": lambda d: d["model"]["layers"].append({"type": LONG}),
    "parameter name": lambda d: d["model"]["layers"][0]["params"].update({LONG: 1}),
    "choice value": lambda d: d["model"]["layers"].insert(0, {"type": "Upsample", "params": {
        "scale_factor": 2, "mode": LONG}}),
    "string value": lambda d: d["training"]["optimizer"].update(params={"lr": LONG}),
    "layer ids": lambda d: d["model"]["layers"].extend([{"type": "ReLU", "id": LONG},
                                                        {"type": "ReLU", "id": LONG}]),
    "optimizer type": lambda d: d["training"]["optimizer"].update(type=LONG),
    "device": lambda d: d["training"].update(device=LONG),
    "dataset param": lambda d: d["data"].update(dataset="csv", params={"delimiter": 5, LONG: LONG}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_long_value_is_cut_in_every_message(case):
    start = time.perf_counter()
    with pytest.raises(ProjectError) as caught:
        spec.loads(_with(CASES[case]))
    lines = caught.value.lines()
    assert time.perf_counter() - start < 5
    assert all(len(line) < BOUND for line in lines), [line[:300] for line in lines]
    assert any(SAID in line for line in lines), lines


def test_a_long_duplicate_key_is_cut():
    text = '{"%s": 1, "%s": 2}' % (LONG, LONG)
    with pytest.raises(ProjectError) as caught:
        spec.loads(text)
    assert caught.value.lines() == [f"not valid JSON for guidl: the key {quote(LONG)} appears twice "
                                    "in one object"]
    assert len(caught.value.lines()[0]) < BOUND


def test_quote_keeps_short_values_and_cuts_long_ones():
    assert quote("abc") == "'abc'" and quote([1, 2]) == "[1, 2]"
    assert quote("é" * 300) == repr("é" * 200) + "… (300 characters)"
    assert quote(list(range(1000)), 20) == repr(list(range(1000)))[:20] + f"… ({len(repr(list(range(1000)))):,} characters)"
    assert quote(10**5000) == "an integer of about 5,001 digits" and quote(2**70) == str(2**70)


def test_ellipsize_keeps_short_text_and_cuts_long_text_to_the_limit_with_an_ellipsis():
    from guidl.formatting import ellipsize

    assert ellipsize("short", 10) == "short"
    assert ellipsize("exactly10!", 10) == "exactly10!"
    assert ellipsize("SGD with momentum", 10) == "SGD with \u2026"
    assert len(ellipsize("x" * 100, 24)) == 24
