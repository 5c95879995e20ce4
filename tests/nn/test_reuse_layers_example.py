def test_reuse_layers_example_trains(load_script, capsys):
    module = load_script("examples/reuse_layers.py")
    losses = module.main(steps=3, batch_size=4)
    assert len(losses) == 3
    assert losses[-1] < losses[0]
    assert 'loss' in capsys.readouterr().out
