import os

import pytest
import torch


@pytest.fixture(scope="session")
def keras():
    """Real Keras on its torch backend (tests using it are marked ``keras``)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


@pytest.fixture(autouse=True)
def _one_cpu_thread():
    # These tests run thousands of tiny ops; a busy 2-core machine makes the intra-op thread pool
    # ~10x slower on them (measured: 20 s vs 180 s for the parity file under load), so use one thread here.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
