import os
import sys

import pytest
import torch

# pytest runs with --import-mode=importlib: make the brute-force references importable.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _one_thread():
    # The graph tests use tiny tensors: on a loaded 2-core machine intra-op threads only
    # wait for each other (measured 10x slower). Restore the setting afterwards.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
