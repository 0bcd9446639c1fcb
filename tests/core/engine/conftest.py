from pathlib import Path

import pytest

from guidl import spec
from guidl.engine.data import prepare
from helpers import small_project

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def digits_data():
    return prepare(small_project())


@pytest.fixture(scope="session")
def mnist_project():
    return spec.load(ROOT / "examples/mnist_cnn.guidl.json")


@pytest.fixture(scope="session")
def mnist_data(mnist_project):
    return prepare(mnist_project)
