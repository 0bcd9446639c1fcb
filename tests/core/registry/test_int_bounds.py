"""Every integer parameter ends up in torch or NumPy, which hold 64 bits at
most (and NumPy's seeds 32): validation refuses what they would overflow on,
with the range, instead of training failing with an overflow."""

import pytest

from guidl.registry import (
    AUGMENT, DATASETS, EARLY_STOPPING, INT64_MAX, INT64_MIN, LAYERS, LOSSES, OPTIMIZERS, SCHEDULERS,
)

ENTRIES = [*LAYERS, *LOSSES, *OPTIMIZERS, *SCHEDULERS, *DATASETS, AUGMENT, EARLY_STOPPING]
INT_PARAMS = [(entry, p) for entry in ENTRIES for p in entry.params
              if p.kind in ("int", "ints", "int_list")]


@pytest.mark.parametrize("entry, param", INT_PARAMS, ids=lambda x: getattr(x, "name", ""))
def test_every_integer_parameter_refuses_what_64_bits_cannot_hold(entry, param):
    for value in (INT64_MAX + 1, INT64_MIN - 1, 10**400):
        given = [value] if param.kind == "int_list" else value
        message = param.check(given)
        assert message is not None, (entry.name, param.name, value)
        if value > 0 or param.minimum is None:  # a limit the short form leaves out: named
            assert ("to " in message or "<=" in message) and "got" in message, message
        assert len(message) < 200, message


def test_the_issue_cases_name_the_range():
    ignore = LOSSES.get("CrossEntropyLoss").check_params({"ignore_index": 2**63})
    assert ignore == [("ignore_index", "must be an integer from -9223372036854775808 to "
                                       "9223372036854775807, got 9223372036854775808")]
    assert LOSSES.get("CrossEntropyLoss").check_params({"ignore_index": -(2**63)}) == []
    for name in ("moons", "circles", "spirals", "blobs", "xor"):
        seed = DATASETS.get(name).check_params({"seed": 2**32})
        assert seed == [("seed", "must be an integer from 0 to 4294967295, got 4294967296")]
        assert DATASETS.get(name).check_params({"seed": 2**32 - 1}) == []


def test_a_number_too_large_for_a_float_is_a_problem_not_an_overflow():
    assert OPTIMIZERS.get("Adam").check_params({"lr": 10**400}) == [
        ("lr", "must be a finite number, got an integer of about 401 digits")]
    assert OPTIMIZERS.get("Adam").check_params({"betas": [0.9, 10**400]}) == [
        ("betas", "each item must be a finite number, got an integer of about 401 digits")]
