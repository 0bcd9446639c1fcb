import os
from pathlib import Path

# Qt aborts without a display unless told to draw offscreen; set it before any
# Qt import so the GUI tests run on a bare CI machine.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.guidl.json"))


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(params=EXAMPLES, ids=[p.name.split(".")[0] for p in EXAMPLES])
def example_path(request) -> Path:
    return request.param
