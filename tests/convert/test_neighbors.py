import pytest
import torch

from pyg_glic.convert import edge_index_to_knn_index, knn_index_to_edge_index


def test_knn_index_to_edge_index_matches_loops():
    torch.manual_seed(0)
    B, N, k = 2, 5, 3
    index = torch.randint(0, N, (B, N, k))
    index[1, 2, 1:] = -1  # variable degree
    index[0, 4, :] = -1  # a node with no neighbours
    edge_index = knn_index_to_edge_index(index)
    expect = [(b * N + int(index[b, i, s]), b * N + i)
              for b in range(B) for i in range(N) for s in range(k) if index[b, i, s] >= 0]
    assert edge_index.t().tolist() == [list(e) for e in expect]


@pytest.mark.parametrize("B,N,k", [(1, 4, 2), (3, 6, 4), (2, 7, 1)])
def test_round_trip(B, N, k):
    index = torch.stack([torch.stack([torch.randperm(N)[:k] for _ in range(N)]) for _ in range(B)])
    assert torch.equal(edge_index_to_knn_index(knn_index_to_edge_index(index), B, N, k), index)


def test_round_trip_padded_and_isolated():
    index = torch.tensor([[[1, 2], [0, -1], [-1, -1]]])
    edge_index = knn_index_to_edge_index(index)
    assert edge_index.tolist() == [[1, 2, 0], [0, 0, 1]]
    assert torch.equal(edge_index_to_knn_index(edge_index, 1, 3, 2), index)
    # k grows to the largest degree by default
    assert edge_index_to_knn_index(edge_index, 1, 3).shape == (1, 3, 2)


def test_empty_edge_set():
    edge_index = knn_index_to_edge_index(torch.full((2, 3, 4), -1))
    assert edge_index.shape == (2, 0)
    out = edge_index_to_knn_index(edge_index, 2, 3)
    assert out.shape == (2, 3, 0)
    assert edge_index_to_knn_index(edge_index, 2, 3, k=2).eq(-1).all()


def test_errors():
    with pytest.raises(ValueError, match=r"\(B, N, k\)"):
        knn_index_to_edge_index(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[-1, N\)"):
        knn_index_to_edge_index(torch.tensor([[[3]]]))
    with pytest.raises(ValueError, match=r"\(2, E\)"):
        edge_index_to_knn_index(torch.zeros(3, 4, dtype=torch.long), 1, 4)
    with pytest.raises(ValueError, match="different images"):
        edge_index_to_knn_index(torch.tensor([[0], [5]]), 2, 3)
    with pytest.raises(ValueError, match="more than k=1"):
        edge_index_to_knn_index(torch.tensor([[0, 1], [2, 2]]), 1, 3, k=1)
