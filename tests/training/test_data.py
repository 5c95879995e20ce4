import pytest
import torch

from pyg_glic.training.data import EpochSampler, ImageFolder, InputError, find_images


def test_find_images_recursive_sorted_skips_hidden(tmp_path, make_images):
    make_images(tmp_path / "a" / "deep", [(8, 8)], fmt="png")
    make_images(tmp_path / "a", [(8, 8), (8, 8)], fmt="jpg")
    make_images(tmp_path / "a" / ".cache", [(8, 8)])
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / "a" / "._img0.jpg").write_bytes(b"junk")
    files = find_images(tmp_path / "a")
    assert [f.relative_to(tmp_path / "a").as_posix() for f in files] == [
        "deep/img0.png", "img0.jpg", "img1.jpg"]
    b = make_images(tmp_path / "b", [(8, 8)])
    assert find_images([tmp_path / "a", tmp_path / "b"])[-1] == b[0]


def test_find_images_errors(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        find_images(tmp_path / "missing")
    (tmp_path / "f.png").write_bytes(b"")
    with pytest.raises(InputError, match="is not a folder"):
        find_images(tmp_path / "f.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        find_images(tmp_path / "empty")
    with pytest.raises(InputError, match="no image folder"):
        find_images([])


def test_unreadable_image_fails_at_start(tmp_path, make_images):
    make_images(tmp_path, [(8, 8)])
    (tmp_path / "broken.png").write_text("not a png")
    with pytest.raises(InputError, match="broken.png is not an image"):
        ImageFolder(tmp_path, crop_size=64)


@pytest.mark.parametrize("small", ["upscale", "pad"])
def test_crops_small_images_and_determinism(tmp_path, make_images, small):
    make_images(tmp_path, [(40, 30), (100, 90)])
    ds = ImageFolder(tmp_path, crop_size=64, small=small)
    for i in range(2):
        a, b = ds[(i, 123)], ds[(i, 123)]
        assert a.shape == (3, 64, 64) and a.dtype == torch.float32
        assert 0 <= float(a.min()) and float(a.max()) <= 1
        assert torch.equal(a, b)
    if small == "pad":  # edge-replicated: the last rows repeat
        x = ImageFolder(tmp_path, crop_size=64, small="pad", flips=False)[(0, 1)]
        assert torch.equal(x[:, 40:, :], x[:, 39:40, :].expand(-1, 24, -1))
    assert "crop=64" in repr(ds)


def test_bad_dataset_options(tmp_path, make_images):
    make_images(tmp_path, [(8, 8)])
    with pytest.raises(InputError, match="small"):
        ImageFolder(tmp_path, small="stretch")
    with pytest.raises(InputError, match="crop size"):
        ImageFolder(tmp_path, crop_size=4)


def test_epoch_sampler_shards_and_resumes():
    n, B, W = 10, 2, 2
    shards = [list(EpochSampler(n, B, seed=3, rank=r, world_size=W)) for r in range(W)]
    s = EpochSampler(n, B, seed=3, rank=0, world_size=W)
    assert s.steps_per_epoch == 2 and len(s) == 4
    order, seeds = s.global_order(0)
    # Step k of rank r uses global positions r, r+W, ... inside [k*B*W, (k+1)*B*W).
    assert [i for i, _ in shards[0]] == order[0::W].tolist()
    assert [i for i, _ in shards[1]] == order[1::W].tolist()
    assert len({i for sh in shards for i, _ in sh}) == 8  # a permutation: no repeats
    s.set_epoch(0, start_step=1)
    assert list(s) == shards[0][B:]
    s.set_epoch(1)
    assert list(s) != shards[0]  # a new order each epoch
    tiny = EpochSampler(3, 4, seed=0)  # fewer images than one batch: tiled
    assert tiny.steps_per_epoch == 1 and len(list(tiny)) == 4


def test_cache_keeps_decoded_images(tmp_path, make_images):
    paths = make_images(tmp_path, [(70, 70)])
    ds = ImageFolder(tmp_path, crop_size=64, cache=True)
    a = ds[(0, 5)]
    paths[0].unlink()  # served from memory now
    assert torch.equal(ds[(0, 5)], a)
