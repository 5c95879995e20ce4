r"""Triton kernels of :mod:`pyg_glic.nn.attention.triton_fused` (imports triton).

The kernel bodies are plain Python functions; :func:`get_kernels` wraps them
either as compiled :class:`triton.runtime.jit.JITFunction` (GPU) or as
:class:`triton.runtime.interpreter.InterpretedFunction` (CPU interpreter,
tests), so both can coexist in one process whatever ``TRITON_INTERPRET`` was
when this module was imported.

Layout: ``q (N_dst, H, D)``, ``k (N_src, H, D)``, ``v (N_src, H, DV)``,
``out``/``do`` ``(N_dst, H, DV)``, all contiguous; ``bias``/``ds``/``dwh``
``(E, H)``; ``lse``/``delta`` ``(N_dst, H)`` float32; ``ptr``/``col`` int64.
One program per (node, head); the edges of the node are walked in tiles of
``BLOCK_E``; all arithmetic in float32.
"""

import triton
import triton.language as tl

# Reductions go through ``tl.reduce`` with triton's own combine functions rather
# than ``tl.sum``/``tl.max``: those are ``@triton.jit`` functions whose kind
# (compiled or interpreted) is fixed when triton is first imported, while the
# combine functions are recognised by identity by the interpreter. So the
# interpreted kernels work whatever ``TRITON_INTERPRET`` was at triton's import
# (e.g. when torch_geometric imported triton first). Private names of triton
# 3.x; checked at import.
_SUM = tl.standard._sum_combine
_MAX = tl.standard._elementwise_max


def _attn_fwd(Q, K, V, B, W, PTR, COL, OUT, LSE,
              H, D, DV,
              HAS_BIAS: tl.constexpr, HAS_W: tl.constexpr,
              BLOCK_E: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    i = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    start = tl.load(PTR + i)
    end = tl.load(PTR + i + 1)
    offs_e = tl.arange(0, BLOCK_E)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    md = offs_d < D
    mdv = offs_dv < DV
    q = tl.load(Q + (i * H + h) * D + offs_d, mask=md, other=0.0).to(tl.float32)
    m_i = tl.reduce(tl.full([BLOCK_E], float("-inf"), tl.float32), 0, _MAX)
    l_i = tl.reduce(tl.full([BLOCK_E], 0.0, tl.float32), 0, _SUM)
    acc = tl.full([BLOCK_DV], 0.0, tl.float32)
    for e0 in range(start, end, BLOCK_E):
        e = e0 + offs_e
        me = e < end
        j = tl.load(COL + e, mask=me, other=0)
        kt = tl.load(K + (j[:, None] * H + h) * D + offs_d[None, :],
                     mask=me[:, None] & md[None, :], other=0.0).to(tl.float32)
        s = tl.reduce(kt * q[None, :], 1, _SUM)
        if HAS_BIAS:
            s += tl.load(B + e * H + h, mask=me, other=0.0).to(tl.float32)
        s = tl.where(me, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.reduce(s, 0, _MAX))
        corr = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new)
        l_i = l_i * corr + tl.reduce(p, 0, _SUM)
        if HAS_W:
            p = p * tl.load(W + e, mask=me, other=0.0).to(tl.float32)
        vt = tl.load(V + (j[:, None] * H + h) * DV + offs_dv[None, :],
                     mask=me[:, None] & mdv[None, :], other=0.0).to(tl.float32)
        acc = acc * corr + tl.reduce(p[:, None] * vt, 0, _SUM)
        m_i = m_new
    has = l_i > 0.0
    out = acc / tl.where(has, l_i, 1.0)
    lse = tl.where(has, m_i + tl.log(tl.where(has, l_i, 1.0)), 0.0)
    tl.store(OUT + (i * H + h) * DV + offs_dv, out.to(OUT.dtype.element_ty), mask=mdv)
    tl.store(LSE + i * H + h, lse)


def _attn_bwd_dst(Q, K, V, B, W, PTR, COL, DO, LSE, DELTA, DQ, DS, DWH,
                  H, D, DV,
                  HAS_BIAS: tl.constexpr, HAS_W: tl.constexpr,
                  STORE_DS: tl.constexpr, STORE_DW: tl.constexpr,
                  BLOCK_E: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    """Per target: dq_i = sum_j ds_ij k_j; optionally ds (= dbias) and p * dA per edge."""
    i = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    start = tl.load(PTR + i)
    end = tl.load(PTR + i + 1)
    offs_e = tl.arange(0, BLOCK_E)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    md = offs_d < D
    mdv = offs_dv < DV
    q = tl.load(Q + (i * H + h) * D + offs_d, mask=md, other=0.0).to(tl.float32)
    do = tl.load(DO + (i * H + h) * DV + offs_dv, mask=mdv, other=0.0).to(tl.float32)
    lse = tl.load(LSE + i * H + h)
    delta = tl.load(DELTA + i * H + h)
    dq = tl.full([BLOCK_D], 0.0, tl.float32)
    for e0 in range(start, end, BLOCK_E):
        e = e0 + offs_e
        me = e < end
        j = tl.load(COL + e, mask=me, other=0)
        kt = tl.load(K + (j[:, None] * H + h) * D + offs_d[None, :],
                     mask=me[:, None] & md[None, :], other=0.0).to(tl.float32)
        s = tl.reduce(kt * q[None, :], 1, _SUM)
        if HAS_BIAS:
            s += tl.load(B + e * H + h, mask=me, other=0.0).to(tl.float32)
        p = tl.where(me, tl.exp(s - lse), 0.0)
        vt = tl.load(V + (j[:, None] * H + h) * DV + offs_dv[None, :],
                     mask=me[:, None] & mdv[None, :], other=0.0).to(tl.float32)
        da = tl.reduce(vt * do[None, :], 1, _SUM)
        if HAS_W:
            dp = da * tl.load(W + e, mask=me, other=0.0).to(tl.float32)
        else:
            dp = da
        ds = p * (dp - delta)
        dq += tl.reduce(ds[:, None] * kt, 0, _SUM)
        if STORE_DS:
            tl.store(DS + e * H + h, ds.to(DS.dtype.element_ty), mask=me)
        if STORE_DW:
            tl.store(DWH + e * H + h, p * da, mask=me)
    tl.store(DQ + (i * H + h) * D + offs_d, dq.to(DQ.dtype.element_ty), mask=md)


def _attn_bwd_src(Q, K, V, B, W, CPTR, PERM, ROWS, DO, LSE, DELTA, DK, DV_OUT,
                  H, D, DV,
                  HAS_BIAS: tl.constexpr, HAS_W: tl.constexpr,
                  BLOCK_E: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    """Per source (CSC walk, no atomics): dk_j = sum_i ds_ij q_i, dv_j = sum_i w_ij p_ij do_i."""
    j = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    start = tl.load(CPTR + j)
    end = tl.load(CPTR + j + 1)
    offs_e = tl.arange(0, BLOCK_E)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    md = offs_d < D
    mdv = offs_dv < DV
    k = tl.load(K + (j * H + h) * D + offs_d, mask=md, other=0.0).to(tl.float32)
    v = tl.load(V + (j * H + h) * DV + offs_dv, mask=mdv, other=0.0).to(tl.float32)
    dk = tl.full([BLOCK_D], 0.0, tl.float32)
    dv = tl.full([BLOCK_DV], 0.0, tl.float32)
    for t0 in range(start, end, BLOCK_E):
        t = t0 + offs_e
        mt = t < end
        e = tl.load(PERM + t, mask=mt, other=0)
        i = tl.load(ROWS + t, mask=mt, other=0)
        qt = tl.load(Q + (i[:, None] * H + h) * D + offs_d[None, :],
                     mask=mt[:, None] & md[None, :], other=0.0).to(tl.float32)
        dot = tl.load(DO + (i[:, None] * H + h) * DV + offs_dv[None, :],
                      mask=mt[:, None] & mdv[None, :], other=0.0).to(tl.float32)
        s = tl.reduce(qt * k[None, :], 1, _SUM)
        if HAS_BIAS:
            s += tl.load(B + e * H + h, mask=mt, other=0.0).to(tl.float32)
        lse = tl.load(LSE + i * H + h, mask=mt, other=0.0)
        delta = tl.load(DELTA + i * H + h, mask=mt, other=0.0)
        p = tl.where(mt, tl.exp(s - lse), 0.0)
        da = tl.reduce(dot * v[None, :], 1, _SUM)
        if HAS_W:
            w = tl.load(W + e, mask=mt, other=0.0).to(tl.float32)
            a = p * w
            ds = p * (da * w - delta)
        else:
            a = p
            ds = p * (da - delta)
        dv += tl.reduce(a[:, None] * dot, 0, _SUM)
        dk += tl.reduce(ds[:, None] * qt, 0, _SUM)
    tl.store(DK + (j * H + h) * D + offs_d, dk.to(DK.dtype.element_ty), mask=md)
    tl.store(DV_OUT + (j * H + h) * DV + offs_dv, dv.to(DV_OUT.dtype.element_ty), mask=mdv)


_RAW = {"fwd": _attn_fwd, "bwd_dst": _attn_bwd_dst, "bwd_src": _attn_bwd_src}
_CACHE: dict = {}


def get_kernels(interpret: bool) -> dict:
    """The three kernels, compiled (``interpret=False``) or interpreted."""
    if interpret not in _CACHE:
        if interpret:
            from triton.runtime.interpreter import InterpretedFunction as wrap
        else:
            from triton.runtime.jit import JITFunction as wrap
        _CACHE[interpret] = {name: wrap(fn) for name, fn in _RAW.items()}
    return _CACHE[interpret]


def triton_imported_interpreted() -> bool:
    """Whether triton was first imported with ``TRITON_INTERPRET=1`` (its own
    ``@jit`` library functions are then interpreted, and compiling fails)."""
    from triton.runtime.interpreter import InterpretedFunction
    return isinstance(_SUM, InterpretedFunction)
