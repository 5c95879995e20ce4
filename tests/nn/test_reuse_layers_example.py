import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / 'examples' / 'reuse_layers.py'


def test_reuse_layers_example_trains(capsys):
    graph = pytest.importorskip('pyg_glic.graph')
    if not hasattr(graph, 'halo_graph'):
        pytest.skip('pyg_glic.graph builders not available')
    spec = importlib.util.spec_from_file_location('reuse_layers_example', EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    losses = module.main(steps=3, batch_size=4)
    assert len(losses) == 3
    assert losses[-1] < losses[0]
    assert 'loss' in capsys.readouterr().out
