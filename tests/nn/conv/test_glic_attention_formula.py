r"""GLICAttention against its formula, written here from the layer's weights only.

The reference below reads the layer's parameter tensors by name (``lin_q.weight``,
``logit_scale``, ``pos_mlp.0.weight``, ...) and never calls one of its methods
(``project``, ``scale``, ``position_bias``, ``pos_mlp``, ``lin_*``) nor the
library's functional code or PyG's ``softmax``:

.. math::
    \hat{\mathbf{q}}_{i,h} = \frac{\mathbf{W}^Q_h \mathbf{x}_i + \mathbf{b}^Q_h}
        {\max(\lVert \cdot \rVert_2, 10^{-12})}, \quad
    \hat{\mathbf{k}}_{j,h} = \frac{\mathbf{W}^K_h \mathbf{x}_j + \mathbf{b}^K_h}
        {\max(\lVert \cdot \rVert_2, 10^{-12})}, \quad
    \tau_h = \exp(\min(s_h, \log \tau_{\max}))

    \ell_{ji,h} = \tau_h \langle \hat{\mathbf{q}}_{i,h}, \hat{\mathbf{k}}_{j,h} \rangle
        + b_h(\boldsymbol{\delta}_{ji}), \qquad
    b(\boldsymbol{\delta}) = \mathbf{W}_2\, \mathrm{relu}\big(\mathbf{W}_1\,
        \mathrm{sign}(\boldsymbol{\delta}) \log(1 + |\boldsymbol{\delta}|) + \mathbf{b}_1\big)

(times a sigmoid and ``pos_bound`` when the layer has one), the softmax over each
target's incoming edges written out per target (a target without edges gets 0),
the optional edge weight after the softmax, the weighted sum of the values and the
output projection. The layer runs in float64 on small hand-made graphs through
every execution it has (the CPU CSR core, the chunked gather core, PyG's
``propagate``, blocked-dense), and its output and gradients must match to ~1e-10.
"""
import math

import pytest
import torch

from pyg_glic.graph.base import CandidateBlocks
from pyg_glic.nn.attention import block_edge_slots
from pyg_glic.nn.attention import csr as csr_executor
from pyg_glic.nn.conv import GLICAttention
from pyg_glic.nn.offsets import compress_offsets

# Hand-made graphs, edges sorted by target. Same-node graph: 7 nodes, node 2 has no
# incoming edge, node 3 attends to everyone (itself included), node 5 only to itself.
SQUARE = dict(num_src=7, num_dst=7,
              src=[1, 2, 3, 0, 0, 1, 2, 4, 5, 6, 3, 6, 5, 5, 0, 2, 4, 1],
              dst=[0, 0, 0, 1, 3, 3, 3, 3, 3, 3, 3, 4, 4, 5, 6, 6, 6, 6])
# Bipartite (x_src, x_dst): 4 sources, 6 targets; target 2 has no incoming edge.
BIPARTITE = dict(num_src=4, num_dst=6,
                 src=[3, 1, 0, 1, 2, 3, 2, 0, 3, 1],
                 dst=[0, 0, 1, 1, 1, 1, 3, 4, 4, 5])

EXECUTIONS = ["csr", "gather", "propagate", "blocked"]


def formula_glic_attention(layer, x_src, x_dst, src, dst, edge_attr=None, edge_weight=None):
    r"""Output ``(N_dst, C_out)`` of ``layer`` on the edges ``src[e] -> dst[e]``,
    from the layer's parameter tensors only (float64)."""
    p = dict(layer.named_parameters())
    H = layer.heads
    C = p["lin_out.weight"].size(0)
    D = C // H

    def affine(name, x):
        y = x @ p[f"{name}.weight"].t()
        if f"{name}.bias" in p:
            y = y + p[f"{name}.bias"]
        return y

    def unit(t):  # (N, H, D): each head's vector divided by its L2 norm (at least 1e-12)
        return t / t.norm(p=2, dim=-1, keepdim=True).clamp_min(1e-12)

    q = unit(affine("lin_q", x_dst).view(-1, H, D))
    k = unit(affine("lin_k", x_src).view(-1, H, D))
    v = affine("lin_v", x_src).view(-1, H, D)
    cap = torch.tensor(math.log(layer.max_scale), dtype=p["logit_scale"].dtype)
    tau = torch.exp(torch.minimum(p["logit_scale"], cap))  # (H,)

    bias = None
    if edge_attr is not None and "pos_mlp.0.weight" in p:
        d = edge_attr.to(p["pos_mlp.0.weight"].dtype)
        u = torch.sign(d) * torch.log1p(d.abs())  # log-spaced offsets
        hidden = torch.relu(u @ p["pos_mlp.0.weight"].t() + p["pos_mlp.0.bias"])
        bias = hidden @ p["pos_mlp.2.weight"].t()  # (E, H), no bias on the last layer
        if layer.pos_bound is not None:
            bias = layer.pos_bound * torch.sigmoid(bias)

    rows = []
    for i in range(x_dst.size(0)):
        edges = [e for e in range(len(src)) if dst[e] == i]
        heads = []
        for h in range(H):
            if not edges:  # no incoming edge: the zero vector before the projection
                heads.append(v.new_zeros(D))
                continue
            logits = torch.stack([tau[h] * torch.dot(q[i, h], k[src[e], h])
                                  + (0.0 if bias is None else bias[e, h]) for e in edges])
            w = torch.exp(logits - logits.max())
            w = w / w.sum()
            if edge_weight is not None:
                w = w * edge_weight[edges]
            heads.append(sum(w[n] * v[src[e], h] for n, e in enumerate(edges)))
        rows.append(torch.cat(heads))
    return affine("lin_out", torch.stack(rows))


def _graph(spec):
    src = torch.tensor(spec["src"])
    dst = torch.tensor(spec["dst"])
    ptr = torch.zeros(spec["num_dst"] + 1, dtype=torch.long)
    ptr[1:] = torch.bincount(dst, minlength=spec["num_dst"]).cumsum(0)
    # one block holding every target as a query and every source as a candidate
    mask = torch.zeros(1, spec["num_dst"], spec["num_src"], dtype=torch.bool)
    mask[0, dst, src] = True
    blocks = CandidateBlocks(torch.arange(spec["num_dst"]).view(1, -1),
                             torch.arange(spec["num_src"]).view(1, -1), mask)
    return torch.stack([src, dst]), ptr, blocks


def _offsets(E, gen):
    # random offsets, both signs, mostly beyond 1 (where log1p and the raw value differ),
    # an exact zero row and a zero coordinate
    off = torch.randn(E, 2, generator=gen, dtype=torch.float64) * 8
    off[0] = 0.0
    off[1, 0] = 0.0
    return off


def _layer(C_in, C, heads, pos_bound, impl, gen, pos_hidden=8):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2 ** 31, (1,), generator=gen)))
        layer = GLICAttention(C_in, C, heads=heads, pos_hidden=pos_hidden,
                              pos_bound=pos_bound, impl=impl, max_scale=100.0).double()
    with torch.no_grad():  # heads with small, medium and capped (1000 -> 100) scales
        layer.logit_scale.copy_(torch.log(torch.tensor([0.5, 7.0, 1000.0][:heads])))
        for lin in (layer.lin_q, layer.lin_k, layer.lin_v):  # nonzero biases
            lin.bias.normal_(0, 0.5, generator=gen)
    return layer


def _run_layer(layer, x, edge_index, edge_attr, ptr, blocks, execution, monkeypatch,
               edge_weight=None, offset_index=None):
    calls = []
    if execution == "csr":  # make sure the CPU CSR core is the one that ran
        real = csr_executor.csr_sparse_attention

        def spy(*args, **kwargs):
            calls.append(1)
            return real(*args, **kwargs)
        monkeypatch.setattr(csr_executor, "csr_sparse_attention", spy)
    kw = dict(edge_weight=edge_weight, offset_index=offset_index)
    if execution == "csr":
        out = layer(x, edge_index, edge_attr, **kw)  # the pointer from edge_index
        assert calls, "the CSR executor did not run"
    elif execution in ("gather", "propagate"):
        out = layer(x, edge_index, edge_attr, **kw)  # no ptr: the chunked gather core
    else:
        assert block_edge_slots(blocks, edge_index, blocks.query_index.numel()) is not None
        assert layer.select_execution(edge_index, blocks, torch.device("cpu")) == "dense"
        out = layer(x, edge_index, edge_attr, blocks=blocks, **kw)
    return out


@pytest.mark.parametrize("execution", EXECUTIONS)
@pytest.mark.parametrize("bipartite", [False, True])
@pytest.mark.parametrize("pos_bound", [None, 16.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_layer_equals_formula(execution, bipartite, pos_bound, weighted, gen, monkeypatch):
    spec = BIPARTITE if bipartite else SQUARE
    edge_index, ptr, blocks = _graph(spec)
    E = edge_index.size(1)
    C_src, C_dst, C = (5, 7, 12) if bipartite else (6, 6, 12)
    layer = _layer((C_src, C_dst) if bipartite else C_dst, C, 3, pos_bound,
                   "propagate" if execution == "propagate" else "gather", gen)
    layer.execution = "dense" if execution == "blocked" else "sparse"
    x_src = torch.randn(spec["num_src"], C_src, dtype=torch.float64, generator=gen)
    x_dst = x_src if not bipartite else torch.randn(spec["num_dst"], C_dst,
                                                    dtype=torch.float64, generator=gen)
    x_src.requires_grad_()
    x_dst.requires_grad_()
    x = (x_src, x_dst) if bipartite else x_src
    edge_attr = _offsets(E, gen)
    w = torch.rand(E, dtype=torch.float64, generator=gen).requires_grad_() if weighted else None

    out = _run_layer(layer, x, edge_index, edge_attr, ptr, blocks, execution, monkeypatch, w)
    ref = formula_glic_attention(layer, x_src, x_dst, spec["src"], spec["dst"], edge_attr, w)
    assert out.shape == (spec["num_dst"], C) and out.dtype == torch.float64
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10)
    # the target without incoming edge gets the output projection's bias
    torch.testing.assert_close(out[2], layer.lin_out.bias, atol=1e-12, rtol=0)

    # gradients: every input and parameter (the CSR core's backward is hand-written)
    named = ([("x_src", x_src)] + ([("x_dst", x_dst)] if bipartite else [])
             + ([("edge_weight", w)] if weighted else []) + list(layer.named_parameters()))
    g = torch.randn(out.shape, dtype=torch.float64, generator=gen)
    ga = torch.autograd.grad(out, [t for _, t in named], g)
    gb = torch.autograd.grad(ref, [t for _, t in named], g)
    for (name, _), a, b in zip(named, ga, gb):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_compressed_offsets_equal_formula(execution, gen, monkeypatch):
    r"""``offset_index``: the position MLP runs on the distinct offsets only."""
    edge_index, ptr, blocks = _graph(SQUARE)
    E = edge_index.size(1)
    layer = _layer(6, 12, 3, None, "propagate" if execution == "propagate" else "gather", gen)
    layer.execution = "dense" if execution == "blocked" else "sparse"
    x = torch.randn(7, 6, dtype=torch.float64, generator=gen)
    # 18 edges with 5 distinct offsets
    table = torch.tensor([[0.0, 0.0], [-3.0, 5.0], [7.0, -2.0], [-1.0, -1.0], [12.0, 0.5]],
                         dtype=torch.float64)
    edge_attr = table[torch.arange(E) % 5]
    uniq, index = compress_offsets(edge_attr)
    assert uniq.size(0) == 5 < E
    out = _run_layer(layer, x, edge_index, uniq, ptr, blocks, execution, monkeypatch,
                     offset_index=index)
    ref = formula_glic_attention(layer, x, x, SQUARE["src"], SQUARE["dst"], edge_attr)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("execution", ["csr", "gather", "propagate"])
def test_without_position_bias_equals_formula(execution, gen, monkeypatch):
    r"""``pos_hidden=0`` (no MLP) and ``edge_attr=None``: cosine logits only."""
    edge_index, ptr, blocks = _graph(SQUARE)
    layer = _layer(6, 12, 3, None, "propagate" if execution == "propagate" else "gather", gen,
                   pos_hidden=0)
    layer.execution = "sparse"
    assert not any(n.startswith("pos_mlp") for n, _ in layer.named_parameters())
    x = torch.randn(7, 6, dtype=torch.float64, generator=gen)
    ref = formula_glic_attention(layer, x, x, SQUARE["src"], SQUARE["dst"])
    for edge_attr in (None, _offsets(edge_index.size(1), gen)):
        out = _run_layer(layer, x, edge_index, edge_attr, ptr, blocks, execution, monkeypatch)
        torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10)
