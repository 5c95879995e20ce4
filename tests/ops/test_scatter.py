import pytest
import torch

from pyg_glic.ops import scatter
from pyg_glic.typing import available_backends


def loop_reference(src, index, dim_size, reduce):
    out = torch.zeros((dim_size,) + src.shape[1:], dtype=src.dtype)
    for i in range(dim_size):
        rows = src[index == i]
        if rows.numel():
            out[i] = {"sum": rows.sum(0), "mean": rows.mean(0), "max": rows.amax(0),
                      "min": rows.amin(0)}[reduce]
    return out


@pytest.mark.parametrize("backend", available_backends("scatter"))
@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min"])
def test_matches_loops(backend, reduce):
    torch.manual_seed(0)
    src = torch.randn(20, 3, dtype=torch.float64)
    index = torch.randint(0, 6, (20,))
    index[index == 4] = 5  # group 4 empty; group 6 (dim_size 7) empty too
    out = scatter(src, index, 0, 7, reduce, backend=backend)
    assert torch.allclose(out, loop_reference(src, index, 7, reduce))


@pytest.mark.parametrize("backend", available_backends("scatter"))
def test_other_dim_and_gradient(backend):
    src = torch.randn(2, 5, 3, requires_grad=True)
    index = torch.tensor([0, 1, 0, 2, 1])
    out = scatter(src, index, dim=1, reduce="sum", backend=backend)
    assert out.shape == (2, 3, 3)
    assert torch.allclose(out[:, 0], src[:, 0] + src[:, 2])
    out.sum().backward()
    assert torch.equal(src.grad, torch.ones_like(src))


def test_errors():
    with pytest.raises(ValueError, match="reduce must be"):
        scatter(torch.randn(3), torch.zeros(3, dtype=torch.long), reduce="prod")
    with pytest.raises(ValueError, match=r"index must have shape \(3,\)"):
        scatter(torch.randn(3), torch.zeros(2, dtype=torch.long))
