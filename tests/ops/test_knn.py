import pytest
import torch

import pyg_glic.typing as pyg_typing
from pyg_glic.ops import knn
from pyg_glic.typing import available_backends

BACKENDS = available_backends("knn")


def brute_force_knn(x, y, k, batch_x, batch_y, cosine=False):
    """Reference: every query against every candidate of its batch, one at a time."""
    if cosine:
        x = torch.nn.functional.normalize(x, dim=-1)
        y = torch.nn.functional.normalize(y, dim=-1)
    out = {}
    for i in range(y.size(0)):
        cands = [j for j in range(x.size(0)) if batch_x[j] == batch_y[i]]
        d = [float(((y[i] - x[j]) ** 2).sum()) for j in cands]
        order = sorted(range(len(cands)), key=lambda t: d[t])[:k]
        out[i] = [cands[t] for t in order]
    return out


def as_dict(assign, n):
    out = {i: [] for i in range(n)}
    for q, c in assign.t().tolist():
        out[q].append(c)
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cosine", [False, True])
def test_matches_brute_force(backend, cosine):
    torch.manual_seed(0)
    x, y = torch.randn(40, 6, dtype=torch.float64), torch.randn(25, 6, dtype=torch.float64)
    batch_x = torch.tensor([0] * 12 + [1] * 3 + [2] * 25)  # batch 1 has fewer than k
    batch_y = torch.tensor([0] * 10 + [1] * 5 + [2] * 10)
    assign = knn(x, y, 5, batch_x, batch_y, cosine=cosine, backend=backend)
    ref = brute_force_knn(x, y, 5, batch_x, batch_y, cosine)
    got = as_dict(assign, y.size(0))
    assert got == ref  # same sets, same order (increasing distance)
    assert bool((assign[0][1:] >= assign[0][:-1]).all())


@pytest.mark.parametrize("chunk", [1, 7, 10 ** 6])
def test_torch_backend_chunking_is_exact(chunk):
    torch.manual_seed(1)
    x, y = torch.randn(50, 4, dtype=torch.float64), torch.randn(30, 4, dtype=torch.float64)
    batch = torch.arange(50) // 25
    batch_y = torch.arange(30) // 15
    ref = knn(x, y, 3, batch, batch_y, backend="torch", chunk_elements=10 ** 9)
    assert torch.equal(knn(x, y, 3, batch, batch_y, backend="torch", chunk_elements=chunk), ref)


@pytest.mark.skipif("torch_cluster" not in BACKENDS, reason="torch-cluster (optional: the ext "
                    "extra) does not import, or PYG_GLIC_DISABLE_EXTENSIONS is set")
def test_backends_agree_on_larger_input():
    torch.manual_seed(2)
    x, y = torch.randn(500, 32), torch.randn(300, 32)
    bx, by = torch.arange(500) // 100, torch.arange(300) // 60
    a = knn(x, y, 8, bx, by, backend="torch_cluster")
    b = knn(x, y, 8, bx, by, backend="torch")
    assert as_dict(a, 300) == as_dict(b, 300)


def test_query_batch_without_candidates_and_empty_inputs():
    x = torch.randn(4, 2)
    y = torch.randn(3, 2)
    out = knn(x, y, 2, torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 1]), backend="torch")
    assert out[0].tolist() == [0, 0]  # queries of batch 1 find nothing
    assert knn(x[:0], y, 2).shape == (2, 0)


def test_errors():
    with pytest.raises(ValueError, match=r"\(N_x, C\)"):
        knn(torch.randn(4, 3), torch.randn(4, 2), 1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        knn(torch.randn(4, 3), torch.randn(4, 3), 0)
    with pytest.raises(ValueError, match="sorted"):
        knn(torch.randn(3, 2), torch.randn(1, 2), 1, batch_x=torch.tensor([1, 0, 1]))
    with pytest.raises(ValueError, match=r"batch_y must have shape \(2,\)"):
        knn(torch.randn(3, 2), torch.randn(2, 2), 1, batch_y=torch.tensor([0]))
    with pytest.raises(ValueError, match="unknown knn backend"):
        knn(torch.randn(3, 2), torch.randn(2, 2), 1, backend="faiss")


def test_missing_extension_is_named(monkeypatch):
    # as if torch-cluster were not installed (runs whether it is or not)
    monkeypatch.setattr(pyg_typing, "WITH_TORCH_CLUSTER", False)
    with pytest.raises(ImportError, match="torch-cluster"):
        knn(torch.randn(3, 2), torch.randn(2, 2), 1, backend="torch_cluster")
