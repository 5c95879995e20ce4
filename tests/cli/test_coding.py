import hashlib
import re

import numpy as np
import pytest
from PIL import Image

from pyg_glic.cli.main import main

pytestmark = pytest.mark.usefixtures("one_thread")


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
    for cmd in ("compress", "decompress"):
        assert main([cmd, str(tmp_path), str(tmp_path / "o.out")]) == 2
        assert "is a directory, not a file" in capsys.readouterr().err


def test_lossy_output_format_refused(image, tmp_path, capsys):
    out = tmp_path / "a.glic"
    assert main(["compress", str(image), str(out), "-c", "glic-tiny"]) == 0
    assert main(["decompress", str(out), str(tmp_path / "r.jpg")]) == 2
    assert "losslessly" in capsys.readouterr().err


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_fractional_quality(image, tmp_path, capsys):
    out = tmp_path / "a.glic"
    assert main(["compress", str(image), str(out), "-c", "glic-tiny", "-q", "2.5"]) == 0
    assert "quality 2.5" in capsys.readouterr().out
    assert main(["decompress", str(out), str(tmp_path / "b.png")]) == 0
    assert "quality 2.5" in capsys.readouterr().out


@pytest.mark.parametrize("args,match", [
    (["-c", "glic-tiny", "-q", "9"], r"\[1, 6\]"),
    (["-c", "glic-tiny", "-q", "0.5"], r"\[1, 6\]"),
    (["-c", "glic", "-q", "2.5"], "integer"),
    (["-c", "glic-tiny", "-q", "2", "--bpp", "0.5"], "mutually exclusive"),
    (["-c", "glic-tiny", "-q", "2", "--max-bytes", "900"], "mutually exclusive"),
    (["-c", "glic-tiny", "--bpp", "0.5", "--max-bytes", "900"], "mutually exclusive"),
    (["-c", "glic-tiny", "--bpp", "0"], "positive"),
    (["-c", "glic-tiny", "--bpp", "-1"], "positive"),
    (["-c", "glic-tiny", "--max-bytes", "0"], "positive"),
    (["-c", "glic-tiny", "--max-bytes", "10"], "smallest file"),  # impossible target
])
def test_bad_quality_or_target_is_one_line_and_writes_nothing(image, tmp_path, capsys, args,
                                                              match):
    out = tmp_path / "o.glic"
    assert main(["compress", str(image), str(out)] + args) == 2
    err = capsys.readouterr().err
    assert re.search(match, _one_error_line(err)), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


@pytest.fixture(scope="module")
def sizes(one_thread):
    # file sizes at the lowest and highest quality for `image`, for targets in between
    import torch

    from pyg_glic import codec, zoo

    rng = np.random.default_rng(0)
    arr = (rng.random((40, 56, 3)) * 255).astype(np.uint8)  # the `image` fixture's pixels
    x = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255
    net = zoo.load_codec("glic-tiny+untrained")
    return {q: len(codec.compress(x, "glic-tiny", float(q), model=net)) for q in ("1", "6")}


def test_max_bytes_target(image, tmp_path, capsys, sizes):
    target = int(sizes["1"] + 0.7 * (sizes["6"] - sizes["1"]))
    out = tmp_path / "a.glic"
    assert main(["compress", str(image), str(out), "-c", "glic-tiny", "--max-bytes",
                 str(target)]) == 0
    text = capsys.readouterr().out
    n = out.stat().st_size
    assert n <= target
    m = re.search(r"(\d+) bytes, ([\d.]+) bpp .*quality ([\d.]+)\), target at most (\d+) "
                  r"bytes", text)
    assert m, text
    assert int(m.group(1)) == n and int(m.group(4)) == target
    assert abs(float(m.group(2)) - 8 * n / (40 * 56)) < 1e-4 and 1 <= float(m.group(3)) < 6
    assert main(["decompress", str(out), str(tmp_path / "b.png")]) == 0


def test_bpp_target(image, tmp_path, capsys, sizes):
    bpp = 8 * (sizes["1"] + sizes["6"]) / 2 / (40 * 56)
    out = tmp_path / "a.glic"
    assert main(["compress", str(image), str(out), "-c", "glic-tiny", "--bpp",
                 f"{bpp:.4f}"]) == 0
    assert 8 * out.stat().st_size / (40 * 56) <= bpp
    assert "target at most" in capsys.readouterr().out


def test_decompress_errors_are_one_line(tmp_path, capsys):
    from pyg_glic import bitstream

    bad = tmp_path / "q.glic"  # well-formed, but quality 7.5 for a 6-level model
    bad.write_bytes(bitstream.encode(bitstream.Bitstream(
        "glic-tiny+untrained", 7.5, 8, 8, [b"a"] * 9, b"\0" * 8)))
    assert main(["decompress", str(bad), str(tmp_path / "r.png")]) == 2
    assert "out of range" in _one_error_line(capsys.readouterr().err)
    bad.write_bytes(bitstream.encode(bitstream.Bitstream(
        "glic-tiny+untrained", 3, 8, 8, [b"a"] * 9, b"\0" * 8)))
    assert main(["decompress", str(bad), str(tmp_path / "r.png"), "--force"]) == 2
    assert "weights mismatch" in _one_error_line(capsys.readouterr().err)
    bad.write_bytes(bitstream.encode(bitstream.Bitstream(  # trained weights not shipped
        "glic-lite/no-wavelet", 3, 8, 8, [b"a"] * 11, b"\0" * 8)))
    assert main(["decompress", str(bad), str(tmp_path / "r.png")]) == 2
    assert "does not ship" in _one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.glic"]


def test_bad_quality_type_is_an_argparse_error(image, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["compress", str(image), str(tmp_path / "o.glic"), "-q", "high"])
    assert e.value.code == 2


def test_decompress_refuses_a_huge_claimed_size_in_one_line(tmp_path, capsys):
    from pyg_glic import bitstream

    bad = tmp_path / "bomb.glic"
    bad.write_bytes(bitstream.encode(bitstream.Bitstream(
        "glic-tiny+untrained", 3.0, 20000, 20000, [b"\x00" * 16] * 9, b"\x01" * 8)))
    out = tmp_path / "out.png"
    assert main(["decompress", str(bad), str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "20000x20000" in err[0] and "--max-pixels" in err[0]
    assert not out.exists()
    assert main(["decompress", str(bad), str(out), "--max-pixels", "0"]) == 2
    assert "--max-pixels must be a positive" in capsys.readouterr().err


def test_compress_says_in_one_line_what_an_input_loses(tmp_path, capsys):
    rgba = np.zeros((40, 56, 4), np.uint8)
    rgba[..., 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    assert main(["compress", str(tmp_path / "t.png"), str(tmp_path / "t.glic"),
                 "-c", "glic-tiny"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "alpha" in line]
    assert len(err) == 1 and err[0].startswith("warning: t.png: the alpha channel")
