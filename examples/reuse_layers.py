"""Put pyg_glic's graph builders and layers into your own small vision GNN.

conv stem -> 2 x (ViG Grapher + FFN) on k-NN graphs -> one GLIC attention layer
over an adaptive halo graph -> classifier, trained a few steps on random data.
Run: python examples/reuse_layers.py  (pyg_glic installed, or PYTHONPATH=.)
"""
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from pyg_glic.convert import map_to_nodes, nodes_to_map
from pyg_glic.graph import halo_graph, knn_graph
from pyg_glic.nn import FFN, GLICAttention, Grapher


class TinyVisionGNN(nn.Module):
    def __init__(self, channels=32, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(  # 64x64 image -> 16x16 nodes
            nn.Conv2d(3, channels, 3, 2, 1), nn.BatchNorm2d(channels), nn.GELU(),
            nn.Conv2d(channels, channels, 3, 2, 1), nn.BatchNorm2d(channels))
        self.vig = nn.Sequential(  # the first builds its 9-NN graph itself, the second is given one
            Grapher(channels, conv="mr", k=9), FFN(channels),
            Grapher(channels, conv="edge", graph_builder=partial(knn_graph, k=9, dilation=2)),
            FFN(channels))
        self.norm = nn.LayerNorm(channels)
        self.attn = GLICAttention(channels, channels, heads=4)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, img):
        x = self.vig(self.stem(img))
        B, C, H, W = x.shape
        graph = halo_graph(x.detach(), k=16, window=8, halo=4, adaptive=True)  # no gradients
        h = self.norm(map_to_nodes(x)[0])
        # graph.edge_index is an EdgeIndex sorted by target: the layer finds the CSR
        # pointer itself and takes the fast path (a plain edge_index would be sorted)
        h = self.attn(h, graph.edge_index, graph.edge_attr)
        x = x + nodes_to_map(h, B, H, W)
        return self.head(x.mean(dim=(2, 3)))


def main(steps: int = 10, batch_size: int = 8, seed: int = 0):
    torch.manual_seed(seed)
    model = TinyVisionGNN()
    images, labels = torch.randn(batch_size, 3, 64, 64), torch.randint(0, 10, (batch_size,))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(steps):
        loss = F.cross_entropy(model(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        print(f"step {step:2d}  loss {loss.item():.4f}")
    return losses


if __name__ == "__main__":
    main()
