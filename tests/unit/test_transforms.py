"""Paired transforms: one shared draw, exact label resampling, output sizes of every mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pairgan.data.transforms import PairedTransform, resize, round_to_multiple, to_array, to_tensor
from pairgan.errors import DataError


def image(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, c)).astype(np.float32)


def ramp(h: int, w: int) -> np.ndarray:
    """Channel 0 grows with x, channel 1 with y: where a pixel came from is readable."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xs / (w - 1), ys / (h - 1)], axis=-1)


@pytest.mark.parametrize("mode", ["resize_and_crop", "crop", "scale_width_and_crop"])
def test_one_draw_is_shared_by_a_and_b(mode: str) -> None:
    a = image(40, 48, 3)
    b = a[..., 1:2].copy()  # same content, other channel count
    t = PairedTransform(mode, load_size=36, crop_size=24, flip=True)
    seen = set()
    for seed in range(40):
        oa, ob = t(a, b, np.random.default_rng(seed))
        assert oa.shape == (24, 24, 3) and ob.shape == (24, 24, 1)
        np.testing.assert_array_equal(ob[..., 0], oa[..., 1])
        seen.add(oa.tobytes())
    assert len(seen) > 30  # crops and flips really vary with the draw


def test_crop_and_flip_use_the_drawn_offsets() -> None:
    a = ramp(20, 30)
    t = PairedTransform("crop", load_size=30, crop_size=10, flip=True)
    flips = 0
    for seed in range(30):
        oa, ob = t(a, a.copy(), np.random.default_rng(seed))
        np.testing.assert_array_equal(oa, ob)
        row = oa[0, :, 0] * 29  # the source x coordinates
        flipped = row[0] > row[-1]
        flips += flipped
        x0 = row.min()
        np.testing.assert_allclose(np.sort(row), x0 + np.arange(10), atol=1e-4)
        rng = np.random.default_rng(seed)
        x, y = rng.integers(0, 21), rng.integers(0, 11)
        assert round(x0) == x and round(oa[..., 1].min() * 19) == y
        assert flipped == (rng.random() < 0.5)
    assert 5 < flips < 25


def test_nearest_keeps_label_ids_exactly() -> None:
    rng = np.random.default_rng(0)
    ids = np.array([0, 3, 7, 200], np.float32) / 255
    label = ids[rng.integers(0, 4, (33, 45))][..., None]
    photo = image(33, 45, 3)
    t = PairedTransform("resize_and_crop", load_size=50, crop_size=40, flip=True)
    for seed in range(5):
        la, ph = t(label, photo, np.random.default_rng(seed), nearest_a=True)
        assert set(np.unique(la)) <= set(ids)
        assert len(np.unique(ph)) > 1000  # bicubic blends the photo
        assert 0.0 <= ph.min() and ph.max() <= 1.0


def test_bicubic_keeps_16bit_precision() -> None:
    v = np.float32(1001 / 65535)  # between two 8-bit levels
    out = resize(np.full((10, 12, 1), v, np.float32), (31, 17))
    assert out.shape == (17, 31, 1)
    assert np.abs(out - v).max() < 1e-6


# (preprocess, train, (w, h) in, size_multiple) -> (w, h) out; load 64, crop 48
SIZES = [
    ("resize_and_crop", True, (100, 60), 1, (48, 48)),
    ("resize_and_crop", False, (100, 60), 1, (48, 48)),
    ("crop", True, (100, 60), 1, (48, 48)),
    ("crop", False, (100, 60), 1, (100, 60)),
    ("crop", False, (100, 60), 16, (96, 64)),
    ("scale_width", True, (100, 60), 1, (64, 48)),  # 64*60/100 = 38.4 -> at least crop 48
    ("scale_width", True, (50, 100), 1, (64, 128)),
    ("scale_width", False, (50, 100), 1, (64, 128)),
    ("scale_width", True, (50, 90), 8, (64, 112)),  # 64*90/50 = 115.2 -> 115 -> 112
    ("scale_width_and_crop", True, (50, 100), 1, (48, 48)),
    ("scale_width_and_crop", True, (100, 60), 1, (48, 48)),
    ("scale_width_and_crop", False, (50, 100), 1, (48, 96)),
    ("scale_width_and_crop", False, (100, 60), 1, (48, 48)),
    ("none", True, (37, 50), 1, (37, 50)),
    ("none", True, (37, 50), 4, (36, 52)),  # 9.25 -> 9, 12.5 -> 13 (halves up)
    ("none", False, (2, 3), 4, (4, 4)),  # at least one multiple
    ("none", False, (64, 32), 32, (64, 32)),
]


@pytest.mark.parametrize("mode,train,size_in,multiple,size_out", SIZES)
def test_output_sizes(mode: str, train: bool, size_in: tuple, multiple: int, size_out: tuple) -> None:
    w, h = size_in
    t = PairedTransform(mode, load_size=64, crop_size=48, flip=True, train=train, size_multiple=multiple)
    a, b = t(image(h, w, 3), image(h, w, 1, seed=1), np.random.default_rng(0))
    assert (a.shape[1], a.shape[0]) == size_out and a.shape[2] == 3
    assert b.shape == (size_out[1], size_out[0], 1)
    assert t.plan(w, h)[2] == size_out


def test_eval_is_deterministic_and_unflipped() -> None:
    a = ramp(30, 40)
    t = PairedTransform("crop", load_size=64, crop_size=16, flip=True, train=False)
    outs = [t(a, a, np.random.default_rng(s))[0] for s in range(5)]
    for o in outs:
        np.testing.assert_array_equal(o, a)


def test_crop_larger_than_image_names_the_sizes() -> None:
    t = PairedTransform("crop", load_size=64, crop_size=48, flip=False)
    with pytest.raises(ValueError, match=r"crop_size 48 is larger than the image \(40x60\)"):
        t(image(60, 40), image(60, 40), np.random.default_rng(0))
    with pytest.raises(DataError, match="40x60"):
        t.plan(40, 60)


def test_a_and_b_sizes_must_agree() -> None:
    t = PairedTransform("none", load_size=64, crop_size=48, flip=False)
    with pytest.raises(ValueError, match=r"A is 10x8 but B is 12x8"):
        t(image(8, 10), image(8, 12), np.random.default_rng(0))


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="preprocess 'zoom'"):
        PairedTransform("zoom", 64, 48, True)
    with pytest.raises(ValueError, match="size_multiple 0"):
        PairedTransform("none", 64, 48, True, size_multiple=0)


def test_round_to_multiple() -> None:
    assert [round_to_multiple(n, 4) for n in (1, 2, 5, 6, 7, 8)] == [4, 4, 4, 8, 8, 8]
    assert round_to_multiple(37, 1) == 37


def test_tensor_conversion_round_trip() -> None:
    a = image(5, 7, 3)
    t = to_tensor(a)
    assert t.dtype == torch.float32 and t.shape == (3, 5, 7)
    assert t.min() >= -1 and t.max() <= 1
    np.testing.assert_allclose(t[1].numpy(), a[..., 1] * 2 - 1, atol=1e-7)
    np.testing.assert_allclose(to_array(t), a, atol=1e-6)
    np.testing.assert_allclose(to_array(t[None]), a, atol=1e-6)
    assert to_array(torch.full((1, 2, 2), 3.0)).max() == 1.0
    assert to_tensor(np.zeros((4, 6), np.float32)).shape == (1, 4, 6)
    with pytest.raises(ValueError, match="expected CxHxW"):
        to_array(torch.zeros(2, 3, 4, 5))
