import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / 'examples' / 'reuse_layers.py'


def test_reuse_layers_example_trains(capsys):
    spec = importlib.util.spec_from_file_location('reuse_layers_example', EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    losses = module.main(steps=3, batch_size=4)
    assert len(losses) == 3
    assert losses[-1] < losses[0]
    assert 'loss' in capsys.readouterr().out
