r"""Every attention executor at GLIC's logit range, in float32.

GLIC's logits are a cosine times a per-head scale of up to 100 plus a position
bias, so in float32 they reach several hundred: ``exp`` of them overflows (above
~88) or underflows to 0 (below ~-103), and only a softmax that subtracts each
target's maximum stays finite. Each executor gets float32 queries of norm 100,
unit keys and biases of a few hundred (whole targets shifted to +-300, so that
every logit of a target is far out of ``exp``'s float32 range) and must give a
finite output and gradients equal to a float64 reference of the same inputs,
within float32 rounding.
"""
import importlib.util

import pytest
import torch

from attention_testing import _check, _reference
from pyg_glic.graph.base import CandidateBlocks
from pyg_glic.nn.conv import GLICAttention
from pyg_glic.nn.dense import dense_attention_blocks
from pyg_glic.nn.attention import (blocked_attention, csr_sparse_attention,
                                   fused_sparse_attention, sparse_attention)

# targets: isolated, 1 edge, several edges (more than one Triton tile of 2 edges); and
# one degree for all (the CPU CSR core then reduces over a view, not segment_reduce)
DEGREES = {"varying": [3, 0, 5, 1, 4, 5], "uniform": [3] * 6}
NUM_SRC, H, D = 5, 2, 8
# per-target logit shift: every logit of targets 0 and 4 is above +200, of target 2
# below -200 (exp overflows / underflows in float32 without the max-shift)
SHIFT = [300.0, 0.0, -300.0, 150.0, 250.0, -150.0]
SCALE = [100.0, 60.0]  # per-head logit scale (GLIC's cap is 100)

HAS_TRITON = importlib.util.find_spec("triton") is not None
HAS_CUDA = torch.cuda.is_available()


def _inputs(gen, deg, weighted, device="cpu"):
    ptr = torch.zeros(len(deg) + 1, dtype=torch.long)
    ptr[1:] = torch.tensor(deg).cumsum(0)
    col = torch.cat([torch.randperm(NUM_SRC, generator=gen)[:d] for d in deg])
    dst = torch.repeat_interleave(torch.arange(len(deg)), torch.tensor(deg))
    E = col.numel()
    scale = torch.tensor(SCALE).view(1, H, 1)
    q = torch.nn.functional.normalize(torch.randn(len(deg), H, D, generator=gen), dim=-1)
    k = torch.nn.functional.normalize(torch.randn(NUM_SRC, H, D, generator=gen), dim=-1)
    q = q * scale
    v = torch.randn(NUM_SRC, H, D, generator=gen)
    bias = torch.tensor(SHIFT)[dst].view(E, 1) + 40 * torch.randn(E, H, generator=gen)
    w = torch.rand(E, generator=gen) + 0.5 if weighted else None
    leaves = [t.to(device).requires_grad_() if t is not None else None
              for t in (q, k, v, bias, w)]
    return leaves, ptr.to(device), col.to(device), dst.to(device)


def _one_block(num_dst, col, dst):
    mask = torch.zeros(1, num_dst, NUM_SRC, dtype=torch.bool, device=col.device)
    mask[0, dst, col] = True
    return CandidateBlocks(torch.arange(num_dst, device=col.device).view(1, -1),
                           torch.arange(NUM_SRC, device=col.device).view(1, -1), mask)


def _gather(q, k, v, b, w, ptr, col, dst):
    # no ptr: the chunked gather core (edge_dot, PyG's softmax, edge_spmm)
    return sparse_attention(q, k, v, b, torch.stack([col, dst]), None, ptr.numel() - 1, w)


def _csr(q, k, v, b, w, ptr, col, dst):
    return csr_sparse_attention(q, k, v, b, ptr, col, ptr.numel() - 1, w)


def _propagate(q, k, v, b, w, ptr, col, dst):
    # GLICAttention.message through PyG's propagate (the layer's parameters are unused)
    layer = GLICAttention(H * D, H * D, heads=H, impl="propagate", execution="sparse")
    return layer.attend(q, k, v, b, torch.stack([col, dst]), None, ptr.numel() - 1, w)


def _blocked(q, k, v, b, w, ptr, col, dst):
    n = ptr.numel() - 1
    return blocked_attention(q, k, v, b, torch.stack([col, dst]), _one_block(n, col, dst), n, w)


def _dense_reference(q, k, v, b, w, ptr, col, dst):
    # pyg_glic.nn.dense's masked block attention (it takes no edge weights)
    assert w is None
    n = ptr.numel() - 1
    bias = b.new_zeros(n, NUM_SRC, H).index_put((dst, col), b).permute(2, 0, 1)[None]
    out = dense_attention_blocks(q.transpose(0, 1)[None], k.transpose(0, 1)[None],
                                 v.transpose(0, 1)[None], bias, _one_block(n, col, dst).mask)
    return out[0].transpose(0, 1)


def _triton(q, k, v, b, w, ptr, col, dst):
    # tiles of 2 edges: the online softmax rescales across tiles
    return fused_sparse_attention(q, k, v, b, ptr, col, edge_weight=w, block_e=2)


EXECUTORS = {"gather": _gather, "csr": _csr, "propagate": _propagate, "blocked": _blocked,
             "dense_reference": _dense_reference, "triton_interpreter": _triton,
             "triton_cuda": _triton}
# dense_attention_blocks takes no edge weights
CASES = [(e, w) for e in EXECUTORS for w in (False, True) if not (e == "dense_reference" and w)]


@pytest.mark.parametrize("degrees", list(DEGREES))
@pytest.mark.parametrize("executor,weighted", CASES)
def test_large_logits_float32(executor, weighted, degrees, monkeypatch):
    device = "cpu"
    if executor == "triton_interpreter":
        if not HAS_TRITON:
            pytest.skip("triton (optional, not in install_requires) is not installed")
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    if executor == "triton_cuda":
        if not HAS_CUDA:
            pytest.skip("needs a CUDA device (the compiled Triton kernels); none is present")
        device = "cuda"
    gen = torch.Generator().manual_seed(7 + weighted)
    deg = DEGREES[degrees]
    (q, k, v, b, w), ptr, col, dst = _inputs(gen, deg, weighted, device)

    # the inputs are what they claim: logits of several hundred, whole targets out of
    # float32 exp's range
    with torch.no_grad():
        logit = (q[dst] * k[col]).sum(-1) + b
        assert float(logit.abs().max()) > 300
        for t in (0, 4):  # exp overflows
            assert torch.isinf(logit[ptr[t]:ptr[t + 1]].exp()).any()
        assert (logit[ptr[2]:ptr[3]].exp() == 0).all()  # exp underflows on every edge

    out = EXECUTORS[executor](q, k, v, b, w, ptr, col, dst)
    assert out.shape == (len(deg), H, D) and out.dtype == torch.float32
    assert torch.isfinite(out).all(), f"{executor}: non-finite output at large logits"
    for t in [t for t, d in enumerate(deg) if d == 0]:  # targets without edges: 0
        assert out[t].abs().max() == 0
    ref = _reference(q, k, v, b, ptr, col, w)  # float64, max-shifted
    assert torch.isfinite(ref).all()
    _check(out, ref, (q, k, v, b, w), atol=2e-4, rtol=2e-4, gen=gen)
