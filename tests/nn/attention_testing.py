r"""Shared helpers of the sparse attention kernel tests: random CSR graphs and a
plain float64 gather reference (tests/nn/conftest.py puts this folder on
``sys.path``)."""
import torch


def _csr(deg, num_src, gen, device="cpu"):
    deg = torch.as_tensor(deg, dtype=torch.long)
    ptr = torch.zeros(deg.numel() + 1, dtype=torch.long)
    ptr[1:] = deg.cumsum(0)
    # distinct sources per target where possible (like the builders), random order
    col = torch.cat([torch.randperm(num_src, generator=gen)[:int(d)] if d <= num_src
                     else torch.randint(0, num_src, (int(d),), generator=gen)
                     for d in deg] or [torch.zeros(0, dtype=torch.long)])
    return ptr.to(device), col.to(device)


def _reference(q, k, v, bias, ptr, col, edge_weight=None):
    """Plain gather form (E x C copies), float64."""
    N = q.size(0)
    dst = torch.repeat_interleave(torch.arange(N, device=q.device), ptr[1:] - ptr[:-1])
    q, k, v = q.double(), k.double(), v.double()
    s = (q[dst] * k[col]).sum(-1)
    if bias is not None:
        s = s + bias.double()
    H = q.size(1)
    m = torch.full((N, H), float("-inf"), dtype=s.dtype, device=s.device)
    m = m.scatter_reduce(0, dst[:, None].expand_as(s), s, "amax", include_self=True)
    e = (s - m[dst]).exp()
    z = torch.zeros(N, H, dtype=s.dtype, device=s.device).index_add(0, dst, e)
    a = e / z[dst]
    if edge_weight is not None:
        a = a * edge_weight.double()[:, None]
    out = torch.zeros(N, H, v.size(2), dtype=s.dtype, device=s.device)
    return out.index_add(0, dst, a[..., None] * v[col])


def _inputs(gen, deg, num_src, H, D, DV, device, bias=True, weight=True):
    ptr, col = _csr(deg, num_src, gen, device)
    E = col.numel()
    N = len(deg)

    def r(*shape):
        return torch.randn(*shape, generator=gen).to(device).requires_grad_()
    q, k, v = r(N, H, D), r(num_src, H, D), r(num_src, H, DV)
    b = r(E, H) if bias else None
    w = torch.rand(E, generator=gen).to(device).requires_grad_() if weight else None
    return q, k, v, b, w, ptr, col


def _check(out, ref, inputs, atol=1e-5, rtol=1e-5, gen=None):
    torch.testing.assert_close(out.double(), ref, atol=atol, rtol=rtol)
    go = torch.randn(out.shape, generator=gen).to(out.device)
    leaves = [t for t in inputs if t is not None and t.requires_grad]
    g = torch.autograd.grad(out, leaves, go, allow_unused=True, retain_graph=True)
    gr = torch.autograd.grad(ref, leaves, go.double(), allow_unused=True)
    for a, b in zip(g, gr):
        assert a is not None
        torch.testing.assert_close(a.double(), b.double(), atol=atol, rtol=rtol)
