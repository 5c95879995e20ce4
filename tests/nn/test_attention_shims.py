r"""The modules that pyg_glic.nn.attention replaced still import, for one release:
the same objects under the old names, the old switches forwarded to the backend,
and the deprecated ``sparse_attention_csr`` warning and computing what
``sparse_attention`` does."""
import pytest
import torch

from attention_testing import _inputs, _reference
from pyg_glic.nn import attention
from pyg_glic.nn.attention import backend

DEG = [0, 1, 5, 3, 0, 2]


def test_old_names_are_the_new_objects():
    from pyg_glic.nn import functional, kernels, offsets, policy, segment
    from pyg_glic.nn.kernels import csr_attention, triton_attention
    for name in ("sparse_attention", "blocked_attention", "block_edge_slots", "edge_dot",
                 "edge_spmm", "uniform_degree"):
        assert getattr(functional, name) is getattr(attention, name)
    assert functional.log_spaced is offsets.log_spaced
    assert functional.compress_offsets is offsets.compress_offsets
    assert functional.csr_max is segment.csr_max
    for name in ("csr_sparse_attention", "csr_attention_available", "fused_sparse_attention",
                 "fused_attention_available", "csr_transpose"):
        assert getattr(kernels, name) is getattr(attention, name)
    assert kernels.DEFAULT_BLOCK_E == backend.DEFAULT_BLOCK_E
    assert csr_attention._cache is attention.csr._cache
    assert csr_attention.clear_cache is attention.csr.clear_cache
    assert triton_attention.fused_sparse_attention is attention.fused_sparse_attention
    assert policy.DENSE_MIN_DENSITY is backend.DENSE_MIN_DENSITY
    assert policy.DENSE_MIN_QUERIES is backend.DENSE_MIN_QUERIES
    assert policy.execution is backend.execution
    assert policy.choose_attention_execution is attention.choose_attention_execution


def test_old_switches_forward_to_the_backend(monkeypatch):
    from pyg_glic.nn import functional
    for name in ("CHUNK_ELEMENTS", "FUSED_ATTENTION", "CSR_ATTENTION"):
        assert getattr(functional, name) == getattr(backend, name)
    monkeypatch.setattr(functional, "CSR_ATTENTION", "never")
    assert backend.CSR_ATTENTION == "never"
    monkeypatch.setattr(backend, "CHUNK_ELEMENTS", 7)
    assert functional.CHUNK_ELEMENTS == 7


def test_sparse_attention_csr_is_deprecated(monkeypatch):
    from pyg_glic.nn.kernels import sparse_attention_csr
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # the torch path, no triton needed
    gen = torch.Generator().manual_seed(0)
    q, k, v, b, w, ptr, col = _inputs(gen, DEG, 7, 2, 4, 4, "cpu")
    tau = torch.tensor([2.0, 5.0])
    with pytest.warns(DeprecationWarning, match="sparse_attention_csr is deprecated"):
        out = sparse_attention_csr(q, k, v, b, ptr, col, tau, w)
    dst = torch.repeat_interleave(torch.arange(len(DEG)), ptr[1:] - ptr[:-1])
    new = attention.sparse_attention(q * tau.view(1, 2, 1), k, v, b, torch.stack([col, dst]),
                                     ptr, len(DEG), w)
    torch.testing.assert_close(out, new, atol=0, rtol=0)
    ref = _reference(q * tau.view(1, 2, 1), k, v, b, ptr, col, w)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
