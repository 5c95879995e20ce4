import pytest
import torch

from pyg_glic.convert import dense_to_edge_index, edge_index_to_dense


def _sparse_adj(B, N, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, N, N, generator=g) * (torch.rand(B, N, N, generator=g) < 0.4)


@pytest.mark.parametrize("rows", ["source", "target"])
def test_matches_loops_and_round_trips(rows):
    B, N = 3, 5
    adj = _sparse_adj(B, N)
    adj[1, :, 2] = 0  # node 2 of image 1 receives nothing (rows="source")
    edge_index, w = dense_to_edge_index(adj, rows=rows)
    expect = {}
    for b in range(B):
        for r in range(N):
            for c in range(N):
                if adj[b, r, c] != 0:
                    src, dst = (r, c) if rows == "source" else (c, r)
                    expect[(b * N + src, b * N + dst)] = float(adj[b, r, c])
    got = {tuple(e): float(v) for e, v in zip(edge_index.t().tolist(), w)}
    assert got == expect
    assert bool((edge_index[1][1:] >= edge_index[1][:-1]).all())  # sorted by target
    assert torch.equal(edge_index_to_dense(edge_index, w, B, N, rows=rows), adj)


def test_gradients_flow_both_ways():
    adj = _sparse_adj(2, 4).requires_grad_()
    edge_index, w = dense_to_edge_index(adj)
    (w * torch.arange(w.numel())).sum().backward()
    assert adj.grad is not None and int((adj.grad != 0).sum()) == w.numel() - 1
    w2 = torch.rand(w.numel(), requires_grad=True)
    edge_index_to_dense(edge_index, w2, 2, 4).pow(2).sum().backward()
    assert torch.allclose(w2.grad, 2 * w2.detach())


def test_empty_and_default_weights():
    edge_index, w = dense_to_edge_index(torch.zeros(2, 3, 3))
    assert edge_index.shape == (2, 0) and w.shape == (0,)
    assert edge_index_to_dense(edge_index, None, 2, 3).eq(0).all()
    adj = edge_index_to_dense(torch.tensor([[0, 4], [1, 3]]), None, 2, 3)
    assert adj[0, 0, 1] == 1 and adj[1, 1, 0] == 1 and adj.sum() == 2


def test_errors():
    with pytest.raises(ValueError, match=r"\(B, N, N\)"):
        dense_to_edge_index(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="rows must be"):
        dense_to_edge_index(torch.zeros(1, 3, 3), rows="col")
    with pytest.raises(ValueError, match=r"edge_weight must have shape \(1,\)"):
        edge_index_to_dense(torch.tensor([[0], [1]]), torch.ones(2), 1, 3)
    with pytest.raises(ValueError, match="different images"):
        edge_index_to_dense(torch.tensor([[0], [4]]), None, 2, 3)
