import pytest
import torch

from pyg_glic.graph import SIMILARITIES, pairwise_similarity
from pyg_glic.graph.similarity import knn_features

from graph_refs import scores


@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("pos_weight", [0.0, 0.7])
def test_pairwise_similarity_matches_formula(similarity, pos_weight):
    g = torch.Generator().manual_seed(0)
    xq, xc = torch.randn(5, 7, generator=g, dtype=torch.float64), \
        torch.randn(9, 7, generator=g, dtype=torch.float64)
    pq, pc = torch.rand(5, 2, generator=g) * 8, torch.rand(9, 2, generator=g) * 8
    s = pairwise_similarity(xq, xc, similarity, pos_q=pq, pos_c=pc, pos_weight=pos_weight,
                            pos_scale=4.0)
    for i in range(5):
        ref = scores(xq[i].numpy(), xc.numpy(), similarity, pq[i].numpy(), pc.numpy(),
                     pos_weight, 4.0)
        torch.testing.assert_close(s[i], torch.tensor(ref, dtype=torch.float64))


@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize("pos_weight", [0.0, 0.7])
def test_knn_features_rank_like_the_score(similarity, pos_weight):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 6, generator=g, dtype=torch.float64)
    pos = torch.rand(30, 2, generator=g, dtype=torch.float64) * 10
    s = pairwise_similarity(x, x, similarity, pos_q=pos, pos_c=pos, pos_weight=pos_weight,
                            pos_scale=5.0)
    f = knn_features(x, similarity, pos, pos_weight, 5.0)
    d = torch.cdist(f, f) ** 2
    assert torch.equal(s.argsort(-1, descending=True), d.argsort(-1))


def test_cosine_and_euclidean_rank_alike_without_position():
    x = torch.randn(20, 8, dtype=torch.float64)
    a = pairwise_similarity(x, x, "cosine").argsort(-1)
    b = pairwise_similarity(x, x, "euclidean").argsort(-1)
    assert torch.equal(a, b)


def test_similarity_bad_input():
    with pytest.raises(ValueError, match="similarity must be one of"):
        pairwise_similarity(torch.randn(2, 3), torch.randn(2, 3), "dot")
    with pytest.raises(ValueError, match="same C"):
        pairwise_similarity(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="pos_q and pos_c"):
        pairwise_similarity(torch.randn(2, 3), torch.randn(2, 3), pos_weight=1.0)
