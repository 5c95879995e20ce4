r"""The Triton executor: fused CSR graph attention, FlashAttention on a sparse pattern.

.. warning::
    **Untested on a real GPU.** The session that wrote these kernels had no
    GPU. Verified: (a) with Triton's CPU interpreter, the forward pass and the
    gradients w.r.t. ``q, k, v, bias, edge_weight`` (and ``scale``) match a
    float64 gather reference to ~1e-6 in float32 (``tests/nn/kernels``);
    (b) all three kernels compile ahead of time to PTX/cubin for sm_90
    (fp32, bf16, fp16) without a GPU. **Not** verified: running them on CUDA,
    their speed, and bf16/fp16 numerics on hardware. The tests also run the
    compiled kernels on CUDA when a GPU is present: run ``pytest
    tests/nn/kernels`` on one before relying on this.

    :func:`pyg_glic.nn.attention.sparse_attention` (the sparse execution of
    :class:`~pyg_glic.nn.conv.GLICAttention`) dispatches here on CUDA when
    given ``ptr`` (:data:`pyg_glic.nn.attention.backend.FUSED_ATTENTION` =
    ``"auto"``; ``"never"`` turns it off, ``"always"`` also uses the CPU
    interpreter).

Contract (:mod:`pyg_glic.nn.attention.contract`):

.. math::
    s_{e,h} = \tau_h \langle \mathbf{q}_{i,h}, \mathbf{k}_{j,h} \rangle + b_{e,h},
    \qquad
    \mathbf{o}_{i,h} = \sum_{e = (j \to i)} w_e\,
        \operatorname{softmax}_{e \in \mathcal{N}(i)}(s_{e,h})\, \mathbf{v}_{j,h}

with :math:`\tau_h = 1` unless ``scale`` is given (the core expects the caller
to have scaled ``q``; so does the drop-in hook, which passes ``scale=None``),
``w_e`` the optional ``edge_weight`` multiplying the attention weights
*after* the softmax, and :math:`\mathbf{o}_i = 0` for a target without
incoming edges.

Algorithm
---------
*Forward* (:func:`_attn_fwd`): one program per (target node ``i``, head ``h``).
It walks the node's CSR slice ``col[ptr[i]:ptr[i+1]]`` in tiles of
``BLOCK_E`` edges: gathers the ``BLOCK_E`` key rows, computes the scores,
adds the bias, and keeps an online softmax (running max ``m``, running sum
``l``) with the value accumulator rescaled by ``exp(m_old - m_new)``, all in
float32. It stores ``out`` and the log-sum-exp ``lse = m + log l`` per
(node, head) (0 for an isolated node).

*Backward* (FlashAttention-2 style, recomputing ``p_e = exp(s_e - lse_i)``),
deterministic, **no atomics**:

1. ``delta_i = <do_i, out_i>`` per (node, head) (torch, ``N x H``).
2. :func:`_attn_bwd_dst`, one program per (target, head) over the CSR slice:
   ``dA_e = <do_i, v_j>``, ``ds_e = p_e (w_e dA_e - delta_i)``,
   ``dq_i = sum_e ds_e k_j``; writes ``dbias_e = ds_e`` and
   ``p_e dA_e`` (for ``d edge_weight_e = sum_h p_e dA_e``) only when those
   gradients are needed.
3. :func:`_attn_bwd_src`, one program per (source, head) over the transposed
   (CSC) layout ``(cptr, perm, rows)`` computed once by :func:`csr_transpose`
   (a stable argsort of ``col``; can be passed in and reused for every layer on
   the same graph): recomputes ``s, p, dA, ds`` from ``q_i, do_i, lse_i,
   delta_i`` and accumulates ``dk_j = sum ds_e q_i``,
   ``dv_j = sum w_e p_e do_i`` in registers.

Memory
------
No per-edge feature tensor (``E x C``) exists, not even transiently: the
gathered rows live in registers, one ``BLOCK_E x D`` tile at a time.
Saved for backward: ``q, k, v, bias, edge_weight, ptr, col, out`` (which the
caller has anyway) and ``lse`` ``(N_dst, H)`` float32. Per-edge state:
backward only -- the CSC permutation (three ``E``/``N_src`` int64 vectors,
unless supplied), ``dbias`` ``(E, H)`` when ``bias`` needs a gradient and a
float32 ``(E, H)`` buffer when ``edge_weight`` needs one. The forward keeps
no per-edge state at all.

Limitations
-----------
- One program per (node, head) with vector (not tensor-core) arithmetic: each
  query row is alone, so ``tl.dot`` does not apply; the kernel is a
  memory-bound gather. Load balance follows the degree distribution (a hub
  node is walked by one program). Not tuned: ``BLOCK_E=32``, ``num_warps=2``
  (:mod:`pyg_glic.nn.attention.backend`).
- Deterministic (no atomics), but the summation order differs from the torch
  reference, so results agree to rounding, not bitwise.
- dtypes: float32, bfloat16, float16 inputs (``q, k, v, bias, edge_weight``
  may differ); all accumulation in float32, ``lse`` float32; ``out`` has
  ``v``'s dtype, each gradient its input's dtype. Tested in the interpreter:
  float32 (tight) and float16 (loose, 5e-3); bfloat16 only compiled (numpy,
  which the interpreter uses, has no bfloat16), never run.
- ``ptr``/``col`` are used as int64 (converted if needed); ``col`` must be
  sorted by target consistently with ``ptr`` (as :class:`ImageGraph` gives).
  Not validated on the GPU path (that would synchronise).
- A target whose every score is ``-inf`` gives NaN, as the reference does.
- No double backward. :func:`fused_sparse_attention` is wrapped in
  :func:`torch.compiler.disable`: under :func:`torch.compile` it is a graph
  break (runs eagerly), never traced; ``fullgraph=True`` compilation of a
  model that calls it fails. (Registering it as a ``torch.library`` custom op
  would remove the break; not done.)
"""
from __future__ import annotations

import os
from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import backend
from .contract import csr_transpose, plain_index

__all__ = ["fused_sparse_attention", "fused_attention_available"]


def _interpret_env() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _triton_importable() -> bool:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # pragma: no cover - depends on the install
        return False
    return True


def fused_attention_available(device: Union[torch.device, str, None] = None) -> bool:
    r"""Whether :func:`fused_sparse_attention` can run on ``device``.

    True on CUDA when triton imports; on the CPU only when ``TRITON_INTERPRET=1``
    is set (Triton's interpreter: slow, for tests).
    """
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda":
        return torch.cuda.is_available() and _triton_importable()
    if device.type == "cpu":
        return _interpret_env() and _triton_importable()
    return False


def _kernels(device: torch.device) -> dict:
    """Interpreted kernels on the CPU, when ``TRITON_INTERPRET`` is set, or when
    triton itself was imported in interpreter mode (then nothing compiles);
    compiled ones otherwise."""
    from ._triton_kernels import get_kernels, triton_imported_interpreted
    interpret = device.type != "cuda" or _interpret_env() or triton_imported_interpreted()
    return get_kernels(interpret=interpret)


def _blocks(d: int) -> int:
    return max(2, 1 << max(0, (d - 1)).bit_length())


class _FusedSparseAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor],
                edge_weight: Optional[Tensor], ptr: Tensor, col: Tensor,
                csc: Optional[Tuple[Tensor, Tensor, Tensor]], block_e: int) -> Tensor:
        N, H, D = q.shape
        DV = v.size(2)
        out = torch.empty((N, H, DV), dtype=v.dtype, device=v.device)
        lse = torch.empty((N, H), dtype=torch.float32, device=q.device)
        if N > 0 and H > 0:
            kern = _kernels(q.device)["fwd"]
            kern[(N, H)](
                q, k, v, bias if bias is not None else q,
                edge_weight if edge_weight is not None else q, ptr, col, out, lse, H, D, DV,
                HAS_BIAS=bias is not None, HAS_W=edge_weight is not None,
                BLOCK_E=block_e, BLOCK_D=_blocks(D), BLOCK_DV=_blocks(DV),
                num_warps=backend.TRITON_NUM_WARPS)
        ctx.save_for_backward(q, k, v, bias, edge_weight, ptr, col, out, lse,
                              *(csc if csc is not None else ()))
        ctx.has_csc = csc is not None
        ctx.block_e = block_e
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        q, k, v, bias, edge_weight, ptr, col, out, lse, *csc = ctx.saved_tensors
        N, H, D = q.shape
        Ns, DV = v.size(0), v.size(2)
        E = col.numel()
        need_q, need_k, need_v, need_b, need_w = ctx.needs_input_grad[:5]
        do = grad_out.contiguous()
        delta = (do.float() * out.float()).sum(-1).contiguous()  # (N, H)
        has_b, has_w = bias is not None, edge_weight is not None
        store_ds = has_b and need_b
        store_dw = has_w and need_w
        dq = torch.empty_like(q) if (need_q or store_ds or store_dw) else None
        ds = torch.empty((E, H), dtype=bias.dtype, device=q.device) if store_ds else None
        dwh = torch.empty((E, H), dtype=torch.float32, device=q.device) if store_dw else None
        kerns = _kernels(q.device)
        BD, BDV, BE = _blocks(D), _blocks(DV), ctx.block_e
        b_arg = bias if has_b else q
        w_arg = edge_weight if has_w else q
        if dq is not None and N > 0 and H > 0:
            kerns["bwd_dst"][(N, H)](
                q, k, v, b_arg, w_arg, ptr, col, do, lse, delta, dq,
                ds if store_ds else q, dwh if store_dw else lse, H, D, DV,
                HAS_BIAS=has_b, HAS_W=has_w, STORE_DS=store_ds, STORE_DW=store_dw,
                BLOCK_E=BE, BLOCK_D=BD, BLOCK_DV=BDV, num_warps=backend.TRITON_NUM_WARPS)
        dk = dv = None
        if need_k or need_v:
            dk = torch.empty_like(k)
            dv = torch.empty_like(v)
            if Ns > 0 and H > 0:
                cptr, perm, rows = csc if ctx.has_csc else csr_transpose(ptr, col, Ns)
                kerns["bwd_src"][(Ns, H)](
                    q, k, v, b_arg, w_arg, cptr, perm, rows, do, lse, delta, dk, dv,
                    H, D, DV, HAS_BIAS=has_b, HAS_W=has_w,
                    BLOCK_E=BE, BLOCK_D=BD, BLOCK_DV=BDV, num_warps=backend.TRITON_NUM_WARPS)
        dw = dwh.sum(1).to(edge_weight.dtype) if store_dw else None
        return (dq if need_q else None, dk if need_k else None, dv if need_v else None,
                ds, dw, None, None, None, None)


@torch.compiler.disable
def fused_sparse_attention(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor],
                           ptr: Tensor, col: Tensor,
                           scale: Union[Tensor, float, None] = None,
                           edge_weight: Optional[Tensor] = None, *,
                           csc: Optional[Tuple[Tensor, Tensor, Tensor]] = None,
                           block_e: Optional[int] = None) -> Tensor:
    r"""Multi-head attention over the incoming edges of each target, fused (Triton).

    Args:
        q (Tensor): queries ``(N_dst, H, D)``.
        k (Tensor): keys ``(N_src, H, D)``.
        v (Tensor): values ``(N_src, H, D_v)``.
        bias (Tensor, optional): additive logit term per edge and head ``(E, H)``.
        ptr (LongTensor): ``(N_dst + 1,)`` CSR pointer over targets.
        col (LongTensor): ``(E,)`` source of each edge, edges sorted by target
            (``edge_index[0]`` of an :class:`~pyg_glic.graph.ImageGraph`).
        scale (Tensor or float, optional): per-head ``(H,)`` or scalar factor
            on ``<q, k>`` (applied as ``q * scale``, differentiable). ``None``
            (the drop-in for :func:`~pyg_glic.nn.attention.sparse_attention`,
            whose caller pre-scales ``q``): no scaling.
        edge_weight (Tensor, optional): ``(E,)`` multiplies the attention
            weights after the softmax.
        csc (tuple, optional): :func:`csr_transpose` of the graph, to reuse
            across layers (else computed in the backward pass).
        block_e (int, optional): edges per tile (a power of two); default
            :data:`pyg_glic.nn.attention.backend.DEFAULT_BLOCK_E`.

    Returns:
        Tensor ``(N_dst, H, D_v)`` in ``v``'s dtype; 0 for targets without edges.
    """
    if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
        raise ValueError("q, k, v must be (N, H, D)")
    N, H, D = q.shape
    if k.size(1) != H or v.size(1) != H or k.size(2) != D or v.size(0) != k.size(0):
        raise ValueError(f"incompatible shapes q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}")
    E = col.numel()
    if ptr.numel() != N + 1:
        raise ValueError(f"ptr must have {N + 1} entries, got {ptr.numel()}")
    if bias is not None and tuple(bias.shape) != (E, H):
        raise ValueError(f"bias must be (E, H) = ({E}, {H}), got {tuple(bias.shape)}")
    if edge_weight is not None and edge_weight.numel() != E:
        raise ValueError(f"edge_weight must have {E} entries")
    if block_e is None:
        block_e = backend.DEFAULT_BLOCK_E
    if block_e < 1 or block_e & (block_e - 1):
        raise ValueError(f"block_e must be a power of two, got {block_e}")
    if not fused_attention_available(q.device):
        raise RuntimeError(f"fused sparse attention is not available on {q.device} "
                           "(needs CUDA + triton, or TRITON_INTERPRET=1 on the CPU)")
    if scale is not None:
        if isinstance(scale, Tensor) and scale.numel() > 1:
            scale = scale.to(q.dtype).view(1, H, 1)
        q = q * scale
    ptr = plain_index(ptr).to(torch.long).contiguous()
    col = plain_index(col).to(torch.long).contiguous()
    if edge_weight is not None:
        edge_weight = edge_weight.reshape(E).contiguous()
    if csc is not None:
        csc = tuple(t.to(torch.long).contiguous() for t in csc)
    return _FusedSparseAttention.apply(
        q.contiguous(), k.contiguous(), v.contiguous(),
        bias.contiguous() if bias is not None else None, edge_weight, ptr, col, csc, block_e)
