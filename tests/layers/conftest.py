import os

import pytest


@pytest.fixture(scope="session")
def keras():
    """Real Keras on its torch backend (tests using it are marked ``keras``)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")
