r"""Command-line habits of cjpeg/cwebp users: ``-`` for standard streams,
``--threads``, ``--quiet``, ``--verify``, ``--tile``, ``--force`` wherever an
output is refused, the user's file modes, no progress frames into files, and a
``--help``/``--version`` that answer at once (fresh processes, so the imports
counted are real)."""
import io
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyg_glic import bitstream
from pyg_glic.cli.main import main

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def image(tmp_path):
    rng = np.random.default_rng(0)
    arr = (rng.random((72, 90, 3)) * 255).astype(np.uint8)
    p = tmp_path / "in.png"
    Image.fromarray(arr).save(p)
    return p


class _Stdio:
    r"""Binary standard input/output for ``main`` (capsys only captures text)."""

    def __init__(self, data=b""):
        self.buffer = io.BytesIO(data)

    def isatty(self):
        return False

    def write(self, s):  # text written by print() (the summary goes to stderr)
        self.buffer.write(s.encode())

    def flush(self):
        pass


def test_stdin_to_stdout_and_back(image, tmp_path, monkeypatch, capsys):
    out = _Stdio()
    monkeypatch.setattr(sys, "stdin", _Stdio(image.read_bytes()))
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["compress", "-", "-", "-c", "glic-tiny", "-q", "2"]) == 0
    data = out.buffer.getvalue()
    assert data[:4] == b"GLIC" and bitstream.decode(data).width == 90
    assert "standard output:" in capsys.readouterr().err  # the summary leaves stdout clean
    png = _Stdio()
    monkeypatch.setattr(sys, "stdin", _Stdio(data))
    monkeypatch.setattr(sys, "stdout", png)
    assert main(["decompress", "-", "-"]) == 0
    with Image.open(io.BytesIO(png.buffer.getvalue())) as im:
        assert im.format == "PNG" and im.size == (90, 72)
    # the same bytes as from files
    f = tmp_path / "a.glic"
    monkeypatch.undo()
    assert main(["compress", str(image), str(f), "-c", "glic-tiny", "-q", "2"]) == 0
    assert f.read_bytes() == data


def test_bad_stdin_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sys, "stdin", _Stdio(b"not an image"))
    assert main(["compress", "-", str(tmp_path / "a.glic"), "-c", "glic-tiny"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: standard input is not an image") and err.count("\n") == 1
    assert not (tmp_path / "a.glic").exists()
    monkeypatch.setattr(sys, "stdin", _Stdio(b"GLIC\x02"))
    assert main(["decompress", "-", str(tmp_path / "a.png")]) == 2
    assert capsys.readouterr().err.startswith("error: standard input: truncated")


def test_quiet_prints_nothing(image, tmp_path, capsys):
    assert main(["compress", str(image), str(tmp_path / "a.glic"), "-c", "glic-tiny",
                 "--quiet"]) == 0
    assert main(["decompress", str(tmp_path / "a.glic"), str(tmp_path / "a.png"),
                 "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")  # not even the untrained-weights warning


def test_verify(image, tmp_path, capsys):
    out = tmp_path / "a.glic"
    assert main(["compress", str(image), str(out), "-c", "glic-tiny", "--verify",
                 "--tile", "64"]) == 0
    text = capsys.readouterr().out
    assert "verified" in text and "4 tiles" in text
    assert bitstream.decode(out.read_bytes()).tile_width == 64


def test_verify_failure_removes_the_file(image, tmp_path, capsys, monkeypatch):
    from pyg_glic import codec

    real = codec.decompress

    def corrupted(*a, **k):  # a decoder that disagrees with the encoder
        x, bs = real(*a, **k)
        x = x.clone()
        x[..., 0, 0, 0] = 1 - x[..., 0, 0, 0]
        return x, bs

    monkeypatch.setattr(codec, "decompress", corrupted)
    out = tmp_path / "a.glic"
    assert main(["compress", str(image), str(out), "-c", "glic-tiny", "--verify"]) == 1
    err = capsys.readouterr().err
    assert "verification failed" in err and "was removed" in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("args,match", [
    (["--threads", "0"], "--threads must be at least 1"),
    (["--tile", "100"], "--tile must be a multiple of 64"),
    (["--verify", "--bpp", "1"], "--verify works with -q"),
    (["-c", "glic-huge"], "unknown configuration 'glic-huge'"),
])
def test_bad_options_are_one_line(image, tmp_path, capsys, args, match):
    assert main(["compress", str(image), str(tmp_path / "a.glic")] + args) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
    assert not (tmp_path / "a.glic").exists()


def test_threads_option(image, tmp_path):
    a, b = tmp_path / "a.glic", tmp_path / "b.glic"
    assert main(["compress", str(image), str(a), "-c", "glic-tiny"]) == 0
    assert main(["compress", str(image), str(b), "-c", "glic-tiny", "--threads", "2"]) == 0
    assert main(["decompress", str(b), str(tmp_path / "b.png"), "--threads", "2"]) == 0
    assert bitstream.decode(b.read_bytes()).width == 90


def test_outputs_get_the_umask_mode(image, tmp_path):
    old = os.umask(0o027)
    try:
        assert main(["compress", str(image), str(tmp_path / "a.glic"), "-c", "glic-tiny"]) == 0
        assert main(["decompress", str(tmp_path / "a.glic"), str(tmp_path / "a.png")]) == 0
    finally:
        os.umask(old)
    for name in ("a.glic", "a.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name


def test_demo_output_refused_then_forced(tmp_path, capsys):
    out = tmp_path / "rec.png"
    out.write_bytes(b"keep me")
    assert main(["demo", "-c", "glic-tiny", "-o", str(out)]) == 2
    assert "exists; use --force" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main(["demo", "-c", "glic-tiny", "-o", str(out), "--force"]) == 0
    with Image.open(out) as im:
        assert im.format == "PNG"


def _fresh(*args, env=None):
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "pyg_glic", *args], cwd=ROOT, capture_output=True,
                       text=True, env=dict(os.environ, **(env or {})), timeout=120)
    return p, time.perf_counter() - t


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_no_library(flag):
    # What makes them slow is importing torch and PyG (seconds); check that directly
    # rather than timing a shared machine.
    code = ("import sys; from pyg_glic.cli.main import main\n"
            "try:\n    main([%r])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'torch_geometric', 'compressai', 'numpy') "
            "if m in sys.modules]\nprint('HEAVY', heavy)") % flag
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and "HEAVY []" in p.stdout, p.stdout + p.stderr
    assert p.stderr == ""  # no warnings


def test_a_decompression_bomb_is_refused_before_torch_is_imported(tmp_path):
    bomb = tmp_path / "bomb.glic"
    bomb.write_bytes(bitstream.encode(bitstream.Bitstream(
        "glic-lite", 3.0, 20000, 20000, [b"\0" * 16] * 11, b"\1" * 8)))
    out = tmp_path / "out.png"
    code = ("import sys; from pyg_glic.cli.main import main\n"
            f"rc = main(['decompress', {str(bomb)!r}, {str(out)!r}])\n"
            "print('RC', rc, 'TORCH', 'torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert "RC 2 TORCH False" in p.stdout, p.stdout + p.stderr
    assert p.stderr.count("\n") == 1 and "20000x20000 image" in p.stderr
    assert not out.exists()


def test_the_lossless_suffixes_agree():
    # coding.py checks the suffix before importing utils.image (which imports torch)
    import ast
    import inspect
    import re

    from pyg_glic.cli import coding
    from pyg_glic.utils.image import LOSSLESS_FORMATS

    found = re.search(r"suffix not in (\([^)]*\))", inspect.getsource(coding.run_decompress))
    assert set(ast.literal_eval(found.group(1))) == set(LOSSLESS_FORMATS)


def test_a_command_prints_no_library_warning(image, tmp_path):
    p, _ = _fresh("compress", str(image), str(tmp_path / "a.glic"), "-c", "glic-tiny",
                  env={"OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln]
    assert lines == ["warning: no trained weights ship for glic-tiny; coded with untrained "
                     "weights"], p.stderr


def test_eval_into_a_file_writes_no_progress_frames(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(d / "a.png")
    # bytes, not text: text mode would turn the bars' carriage returns into newlines
    p = subprocess.run([sys.executable, "-m", "pyg_glic", "eval", str(d), "-o",
                        str(tmp_path / "ev"), "-c", "glic-tiny", "-q", "1", "2", "--classical",
                        "jpeg"], cwd=ROOT, capture_output=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert p.returncode == 0, p.stderr[-2000:]
    assert b"\r" not in p.stderr and b"img/s" not in p.stderr, p.stderr[-500:]
    assert stat.S_IMODE((tmp_path / "ev").stat().st_mode) == 0o777 & ~_umask()


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_verify_of_a_file_that_does_not_decode(image, tmp_path, capsys, monkeypatch):
    from pyg_glic import codec

    def broken(*a, **k):
        raise codec.BitstreamError("checksum mismatch: the file is corrupted")

    monkeypatch.setattr(codec, "decompress", broken)
    out = tmp_path / "a.glic"
    assert main(["compress", str(image), str(out), "-c", "glic-tiny", "--verify"]) == 1
    err = capsys.readouterr().err
    assert "does not decode (checksum mismatch" in err and err.count("\n") == 1
    assert not out.exists()
