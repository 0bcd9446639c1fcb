"""Numbers in a project file that torch or NumPy could not take are
problems with their JSON path, found when the file is read."""

import pytest

from guidl.spec import Project, ProjectError
from helpers import small_project


@pytest.mark.parametrize("changes, expected", [
    ({"data__dataset": "moons", "data__params": {"seed": 2**32}},
     "data.params.seed: must be an integer from 0 to 4294967295, got 4294967296"),
    ({"training__loss__params": {"ignore_index": 2**63}},
     "training.loss.params.ignore_index: must be an integer from -9223372036854775808 to "
     "9223372036854775807, got 9223372036854775808"),
    ({"training__optimizer__params": {"lr": 10**400}},
     "training.optimizer.params.lr: must be a finite number, got an integer of about 401 digits"),
    ({"training__grad_clip": 10**400}, "training.grad_clip: must be a number > 0"),
])
def test_numbers_beyond_what_torch_and_numpy_hold_are_refused(changes, expected):
    with pytest.raises(ProjectError) as raised:
        Project.from_dict(small_project(**changes).to_dict())
    assert len(raised.value.problems) == 1
    assert str(raised.value.problems[0]).startswith(expected), raised.value.problems
