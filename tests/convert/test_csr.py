import pytest
import torch

from pyg_glic.convert import (csr_to_edge_index, csr_to_neighbors, edge_index_to_csr,
                              neighbors_to_csr)


def test_neighbor_lists_round_trip():
    lists = [[3, 1], [], [0, 0, 2], [4]]
    ptr, col = neighbors_to_csr(lists)
    assert ptr.tolist() == [0, 2, 2, 5, 6]
    assert col.tolist() == [3, 1, 0, 0, 2, 4]
    assert [n.tolist() for n in csr_to_neighbors(ptr, col)] == lists


def test_empty():
    ptr, col = neighbors_to_csr([[], []])
    assert ptr.tolist() == [0, 0, 0] and col.numel() == 0
    assert csr_to_edge_index(ptr, col).shape == (2, 0)
    ptr, col = neighbors_to_csr([])
    assert ptr.tolist() == [0] and csr_to_neighbors(ptr, col) == []


def test_edge_index_round_trip_sorts_stably():
    torch.manual_seed(0)
    edge_index = torch.randint(0, 6, (2, 30))
    ptr, col, perm = edge_index_to_csr(edge_index, num_nodes=8)  # nodes 6, 7 isolated
    assert ptr.numel() == 9 and int(ptr[-1]) == 30
    back = csr_to_edge_index(ptr, col)
    # Reference: for every target, its sources in original edge order.
    for i in range(8):
        expect = [int(s) for s, d in edge_index.t() if d == i]
        assert col[ptr[i]:ptr[i + 1]].tolist() == expect
    assert torch.equal(back, edge_index[:, perm])


def test_errors():
    with pytest.raises(ValueError, match="negative"):
        neighbors_to_csr([[1, -2]])
    with pytest.raises(ValueError, match="rise from 0"):
        csr_to_edge_index(torch.tensor([0, 2, 1]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\(2, E\)"):
        edge_index_to_csr(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        edge_index_to_csr(torch.tensor([[0], [2]]), num_nodes=2)
