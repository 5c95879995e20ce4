import subprocess
import sys

import pytest

import pyg_glic
from pyg_glic.cli.main import main


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"pyg_glic {pyg_glic.__version__}"


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "demo" in out and "info" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: pyg-glic" in capsys.readouterr().out


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "knn: available" in out and "scatter: available" in out
    assert "shipped weights: " in out or "shipped weights (" in out


def test_info_lists_shipped_weights(tmp_path, monkeypatch, capsys):
    import torch

    import pyg_glic.zoo as zoo
    from pyg_glic.models.glic import glic_model
    from pyg_glic.training.models import export_weights

    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    path = export_weights(glic_model("glic-tiny"), tmp_path / "glic-tiny.pt", "glic-tiny", None)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    fp = zoo.weights_fingerprint(torch.load(path, weights_only=True)).hex()
    assert "glic-tiny: variable rate, any quality in [1, 6]; glic-tiny.pt" in out
    assert f"fingerprint {fp}" in out


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "pyg_glic", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"pyg_glic {pyg_glic.__version__}"


def test_unknown_command_fails():
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2
