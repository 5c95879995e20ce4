import json

import numpy as np
import torch
from PIL import Image

from pyg_glic.cli.main import main
from pyg_glic.models.glic import glic_model
from pyg_glic.training.models import export_weights


def test_compressai_evaluator_runs_an_exported_glic(tmp_path, capsys, monkeypatch):
    torch.manual_seed(0)
    net = glic_model("glic-tiny")
    weights = export_weights(net, tmp_path / "tiny.pt", "glic-tiny", None)
    (tmp_path / "img").mkdir()
    rgb = (np.random.RandomState(0).rand(192, 192, 3) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "img" / "a.png")
    monkeypatch.setenv("PYG_GLIC_QUALITY", "4.5")
    assert main(["compressai-eval", "checkpoint", str(tmp_path / "img"), "-a", "glic",
                 "-p", str(weights)]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{"):])["results"]
    # The same weights coded here, at the same quality: the same number of bits.
    from pyg_glic.training.models import load_model_file

    ref = load_model_file(weights).model.eval()
    ref.update(force=True)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        strings = ref.compress(x, quality=4.5)["strings"]
    bits = 8 * sum(len(s[0]) for s in strings)
    assert abs(result["bpp"][0] - bits / (192 * 192)) < 1e-6
