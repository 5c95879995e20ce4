import pytest
import torch

from pyg_glic.convert import batch_to_map, grid_pos, map_to_batch, map_to_nodes, nodes_to_map


@pytest.mark.parametrize("shape", [(1, 3, 4, 4), (2, 5, 3, 7), (3, 1, 6, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_map_nodes_round_trip(shape, channels_last):
    x = torch.randn(shape)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    nodes, batch, pos = map_to_nodes(x)
    B, C, H, W = shape
    assert nodes.shape == (B * H * W, C)
    # Independent reference: the node order written out with loops.
    i = 0
    for b in range(B):
        for y in range(H):
            for xx in range(W):
                assert torch.equal(nodes[i], x[b, :, y, xx])
                assert int(batch[i]) == b and pos[i].tolist() == [y, xx]
                i += 1
    assert torch.equal(nodes_to_map(nodes, B, H, W), x)


def test_channels_last_nodes_are_a_view():
    x = torch.randn(2, 4, 3, 5).to(memory_format=torch.channels_last)
    nodes, _, _ = map_to_nodes(x)
    assert nodes.data_ptr() == x.data_ptr()


def test_gradients_flow_through_conversion():
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    nodes, _, _ = map_to_nodes(x)
    nodes_to_map(nodes * 2, 2, 4, 5).sum().backward()
    assert torch.equal(x.grad, torch.full_like(x, 2.0))


def test_grid_pos():
    assert grid_pos(2, 3).tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]


@pytest.mark.parametrize("shape", [(1, 3, 4, 4), (3, 2, 5, 2)])
def test_batch_round_trip(shape):
    x = torch.randn(shape)
    batch = map_to_batch(x)
    B, C, H, W = shape
    assert batch.num_graphs == B
    for b in range(B):
        data = batch.get_example(b)
        assert torch.equal(data.x, x[b].permute(1, 2, 0).reshape(-1, C))
        assert torch.equal(data.pos, grid_pos(H, W))
        assert data.edge_index.shape == (2, 0)
    assert torch.equal(batch_to_map(batch, H, W), x)


@pytest.mark.parametrize("bad", [torch.randn(3, 4, 5), torch.randn(1, 2, 3, 4, 5)])
def test_map_to_nodes_rejects_wrong_rank(bad):
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        map_to_nodes(bad)


def test_nodes_to_map_rejects_wrong_count():
    with pytest.raises(ValueError, match=r"\(B\*H\*W, C\) = \(24, C\)"):
        nodes_to_map(torch.randn(23, 4), 2, 3, 4)


def test_batch_to_map_rejects_wrong_size():
    batch = map_to_batch(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="height\\*width = 12"):
        batch_to_map(batch, 3, 4)
