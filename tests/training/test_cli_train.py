import pytest

from pyg_glic.cli.main import main

FAST = ["-c", "glic-tiny", "--crop-size", "64", "--batch-size", "1", "--workers", "0",
        "--no-progress"]


def test_train_command_runs_epochs(tmp_path, make_images, capsys):
    make_images(tmp_path / "d", [(64, 64)])
    out = tmp_path / "run"
    assert main(["train", str(tmp_path / "d"), "--epochs", "1", "-o", str(out), *FAST]) == 0
    text = capsys.readouterr()
    assert "step 1: checkpoint" in text.out
    assert "(1 steps in all, 1 per epoch)" in text.err
    assert sorted(p.name for p in out.iterdir()) == ["args.json", "checkpoint.pt",
                                                     "metrics.jsonl"]


def _bad_dirs(tmp_path, make_images):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    make_images(broken, [(64, 64)])
    (broken / "zz.png").write_text("this is not an image")
    return {"missing": (tmp_path / "nope", "no such folder"),
            "empty": (empty, "holds no images"),
            "unreadable": (broken, "zz.png is not an image file")}


@pytest.mark.parametrize("case", ["missing", "empty", "unreadable"])
def test_bad_folders_exit_2_and_write_nothing(tmp_path, make_images, capsys, case):
    folder, message = _bad_dirs(tmp_path, make_images)[case]
    out = tmp_path / "run"
    assert main(["train", str(folder), "--steps", "1", "-o", str(out), *FAST]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("extra,message", [
    (["--lmbda", "-1"], "lambda must be a positive number"),
    (["--crop-size", "100"], "multiple of 64"),
    (["--lr-milestones", "1.5"], "milestones"),
    (["--clip-max-norm", "-1"], "clip-max-norm"),
    (["--resume", "nothing.pt"], "no such checkpoint"),
    (["--init-from", "nothing.pt"], "no such weights file"),
    ([], "--steps or --epochs"),
])
def test_bad_options_exit_2_and_write_nothing(tmp_path, make_images, capsys, extra, message):
    make_images(tmp_path / "d", [(64, 64)])
    out = tmp_path / "run"
    steps = [] if not extra else ["--steps", "1"]
    assert main(["train", str(tmp_path / "d"), "-o", str(out), *steps, *FAST, *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_bad_init_from_file_exits_2(tmp_path, make_images, capsys):
    make_images(tmp_path / "d", [(64, 64)])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    out = tmp_path / "run"
    assert main(["train", str(tmp_path / "d"), "--steps", "1", "-o", str(out),
                 "--init-from", str(junk), *FAST]) == 2
    assert "is not a PyTorch weights file" in capsys.readouterr().err
    assert not out.exists()


def test_bad_quality_is_a_usage_error(tmp_path, make_images, capsys):
    make_images(tmp_path / "d", [(64, 64)])
    with pytest.raises(SystemExit) as e:
        main(["train", str(tmp_path / "d"), "--steps", "1", "-q", "9", *FAST])
    assert e.value.code == 2
    assert "invalid choice: 9" in capsys.readouterr().err


def test_refuses_existing_run_and_export(tmp_path, make_images, capsys):
    make_images(tmp_path / "d", [(64, 64)])
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"keep")
    assert main(["train", str(tmp_path / "d"), "--steps", "1", "-o", str(out), *FAST]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == b"keep"
    exp = tmp_path / "w.pt"
    exp.write_bytes(b"keep")
    assert main(["train", str(tmp_path / "d"), "--steps", "1", "-o", str(tmp_path / "r2"),
                 "--export", str(exp), *FAST]) == 2
    assert "use --force" in capsys.readouterr().err
    assert exp.read_bytes() == b"keep" and not (tmp_path / "r2").exists()
