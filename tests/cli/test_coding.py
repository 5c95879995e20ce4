import hashlib

import numpy as np
import pytest
from PIL import Image

from pyg_glic.cli.main import main


@pytest.fixture()
def image(tmp_path):
    rng = np.random.default_rng(0)
    arr = (rng.random((40, 56, 3)) * 255).astype(np.uint8)
    p = tmp_path / "in.png"
    Image.fromarray(arr).save(p)
    return p


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_compress_decompress_round_trip(image, tmp_path, capsys):
    before = _sha(image)
    out = tmp_path / "a.glic"
    assert main(["compress", str(image), str(out), "-c", "glic-tiny", "-q", "2", "-v"]) == 0
    text = capsys.readouterr()
    assert "bpp" in text.out and "encode" in text.out
    assert "untrained" in text.err
    assert out.read_bytes()[:4] == b"GLIC"
    rec = tmp_path / "b.png"
    assert main(["decompress", str(out), str(rec)]) == 0
    with Image.open(rec) as im:
        assert im.size == (56, 40) and im.mode == "RGB"
    assert _sha(image) == before  # the input is never touched


def test_refuses_to_overwrite_without_force(image, tmp_path, capsys):
    out = tmp_path / "a.glic"
    out.write_bytes(b"keep me")
    assert main(["compress", str(image), str(out), "-c", "glic-tiny"]) == 2
    assert "exists; use --force" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main(["compress", str(image), str(out), "-c", "glic-tiny", "--force"]) == 0
    assert out.read_bytes()[:4] == b"GLIC"


def test_refuses_output_equal_to_input(image, capsys):
    assert main(["compress", str(image), str(image), "-c", "glic-tiny", "--force"]) == 2
    assert "is the input" in capsys.readouterr().err


@pytest.mark.parametrize("content,match", [
    (b"", "truncated"), (b"NOPE" + b"\0" * 30, "bad magic"),
])
def test_decompress_bad_files_leave_nothing(tmp_path, capsys, content, match):
    bad = tmp_path / "bad.glic"
    bad.write_bytes(content)
    out = tmp_path / "out.png"
    assert main(["decompress", str(bad), str(out)]) == 2
    assert match in capsys.readouterr().err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.glic"]


def test_decompress_corrupted_file(image, tmp_path, capsys):
    out = tmp_path / "a.glic"
    assert main(["compress", str(image), str(out), "-c", "glic-tiny"]) == 0
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0xFF
    out.write_bytes(bytes(data))
    assert main(["decompress", str(out), str(tmp_path / "r.png")]) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    assert not (tmp_path / "r.png").exists()


def test_missing_and_unreadable_input(tmp_path, capsys):
    assert main(["compress", str(tmp_path / "nope.png"), str(tmp_path / "o.glic")]) == 2
    assert "no such input file" in capsys.readouterr().err
    txt = tmp_path / "notes.png"
    txt.write_text("not an image")
    assert main(["compress", str(txt), str(tmp_path / "o.glic"), "-c", "glic-tiny"]) == 2
    assert "not an image file" in capsys.readouterr().err
    assert not (tmp_path / "o.glic").exists()


def test_lossy_output_format_refused(image, tmp_path, capsys):
    out = tmp_path / "a.glic"
    assert main(["compress", str(image), str(out), "-c", "glic-tiny"]) == 0
    assert main(["decompress", str(out), str(tmp_path / "r.jpg")]) == 2
    assert "losslessly" in capsys.readouterr().err


def test_bad_quality_is_an_argparse_error(image, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["compress", str(image), str(tmp_path / "o.glic"), "-q", "9"])
    assert e.value.code == 2
