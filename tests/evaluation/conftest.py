import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    r"""Every test module here runs with one intra-op thread (``one_thread`` in tests/conftest.py)."""
    yield
