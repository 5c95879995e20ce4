r"""k-nearest-neighbour search with a torch-cluster and a pure-torch backend."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch

from .. import typing as _t
from ..typing import OptTensor

#: Upper bound on the number of distance entries computed at once by the
#: pure-torch backend (``2**24`` float32 values are 64 MiB).
DEFAULT_CHUNK_ELEMENTS = 2 ** 24


def _check_batch(name: str, batch: OptTensor, n: int, device) -> Tensor:
    if batch is None:
        return torch.zeros(n, dtype=torch.long, device=device)
    if batch.dim() != 1 or batch.numel() != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(batch.shape)}")
    if n > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError(f"{name} must be sorted in ascending order")
    return batch.long()


def knn(x: Tensor, y: Tensor, k: int, batch_x: OptTensor = None,
        batch_y: OptTensor = None, *, cosine: bool = False,
        backend: Optional[str] = None,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> Tensor:
    r"""For each point of ``y``, its ``k`` nearest points of ``x`` in the same batch.

    Same contract as :func:`torch_cluster.knn`. Distances are Euclidean; with
    ``cosine=True`` both sets are L2-normalised first, which orders neighbours
    exactly as cosine similarity does (and works on every device, unlike
    torch-cluster's own ``cosine`` flag, which the CPU build rejects).
    Where a batch holds fewer than ``k`` points of ``x``, its queries get them all.

    Args:
        x (Tensor): candidate points ``(N_x, C)``.
        y (Tensor): query points ``(N_y, C)``.
        k (int): neighbours per query, ``k >= 1``.
        batch_x, batch_y (LongTensor, optional): sorted batch ids ``(N_x,)``,
            ``(N_y,)``; default: one batch.
        cosine (bool): rank by cosine similarity.
        backend (str, optional): ``"torch_cluster"``, ``"torch"`` or
            ``None``/``"auto"`` (see :func:`pyg_glic.typing.resolve_backend`).
        chunk_elements (int): pure-torch backend only: the most distance
            entries held at once.

    Returns:
        LongTensor ``(2, E)``: row 0 indexes ``y`` (the query), row 1 indexes
        ``x`` (the neighbour), grouped by query in ascending order and, within a
        query, by increasing distance.

    Shapes:
        - **input:** ``(N_x, C)``, ``(N_y, C)``, ``(N_x,)``, ``(N_y,)``
        - **output:** ``(2, E)`` with ``E <= N_y * k``
    """
    if x.dim() != 2 or y.dim() != 2 or x.size(1) != y.size(1):
        raise ValueError(f"knn expects x of shape (N_x, C) and y of shape (N_y, C) "
                         f"with the same C, got {tuple(x.shape)} and {tuple(y.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    batch_x = _check_batch("batch_x", batch_x, x.size(0), x.device)
    batch_y = _check_batch("batch_y", batch_y, y.size(0), y.device)
    if cosine:
        x = torch.nn.functional.normalize(x, dim=-1)
        y = torch.nn.functional.normalize(y, dim=-1)
    if x.size(0) == 0 or y.size(0) == 0:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    backend = _t.resolve_backend("knn", backend, x.device)
    if backend == "torch_cluster":
        out = _t.torch_cluster.knn(x.contiguous(), y.contiguous(), k, batch_x, batch_y)
        return _sort_by_query_then_distance(out, x, y)
    return _knn_torch(x, y, k, batch_x, batch_y, chunk_elements)


def _sort_by_query_then_distance(assign: Tensor, x: Tensor, y: Tensor) -> Tensor:
    d = (y[assign[0]] - x[assign[1]]).pow(2).sum(-1)
    perm = torch.argsort(d, stable=True)
    perm = perm[torch.argsort(assign[0][perm], stable=True)]
    return assign[:, perm]


def _knn_torch(x: Tensor, y: Tensor, k: int, batch_x: Tensor, batch_y: Tensor,
               chunk_elements: int) -> Tensor:
    num_batches = int(max(batch_x.max(), batch_y.max())) + 1
    xd, xmask = to_dense_batch(x, batch_x, batch_size=num_batches)  # (B, Mx, C)
    yd, ymask = to_dense_batch(y, batch_y, batch_size=num_batches)  # (B, My, C)
    B, Mx, _ = xd.shape
    My = yd.size(1)
    kk = min(k, Mx)
    x_ptr = torch.zeros(B + 1, dtype=torch.long, device=x.device)
    x_ptr[1:] = xmask.sum(1).cumsum(0)
    x_sq = xd.pow(2).sum(-1)  # (B, Mx)
    inf = torch.tensor(float("inf"), dtype=xd.dtype, device=xd.device)

    rows, cols = [], []
    # Chunk over (batch, query) so that at most chunk_elements distances exist at once.
    q_chunk = max(1, min(My, chunk_elements // max(1, Mx)))
    b_chunk = max(1, min(B, chunk_elements // max(1, Mx * q_chunk)))
    y_ids = torch.full((B, My), -1, dtype=torch.long, device=y.device)
    y_ids[ymask] = torch.arange(y.size(0), device=y.device)
    for b0 in range(0, B, b_chunk):
        b1 = min(B, b0 + b_chunk)
        for q0 in range(0, My, q_chunk):
            q1 = min(My, q0 + q_chunk)
            yq = yd[b0:b1, q0:q1]
            d = (yq.pow(2).sum(-1, keepdim=True) - 2 * yq @ xd[b0:b1].transpose(1, 2)
                 + x_sq[b0:b1, None, :]).clamp_min_(0)
            d = torch.where(xmask[b0:b1, None, :], d, inf)
            dist, idx = d.topk(kk, dim=-1, largest=False, sorted=True)
            valid = torch.isfinite(dist) & (y_ids[b0:b1, q0:q1, None] >= 0)
            qid = y_ids[b0:b1, q0:q1, None].expand_as(idx)
            xid = idx + x_ptr[b0:b1, None, None]
            rows.append(qid[valid])
            cols.append(xid[valid])
    row = torch.cat(rows)
    col = torch.cat(cols)
    perm = torch.argsort(row, stable=True)
    return torch.stack([row[perm], col[perm]])
