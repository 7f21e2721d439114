"""Colour-coded label maps through JPEG: built-in palettes, nearest-colour decoding with a void id,
the palette fit of `pairgan data check`, the aligned-labels data set and the config keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pairgan.config import build_config
from pairgan.data.check import check_dataset
from pairgan.data.datasets import build_dataset, resolve_layout
from pairgan.data.labels import (
    ColourDecoding,
    PaletteFit,
    colour_decoding,
    dataset_classes,
    label_ids,
    load_palette,
    read_label_map,
    resolve_palette,
)
from pairgan.data.palettes import (
    BUILTIN_PALETTES,
    CITYSCAPES_CLASSES,
    builtin_palette,
    nearest_ids,
)
from pairgan.errors import ConfigError, DataError
from pairgan.metrics.segmentation import resolve_palette as resolve_metric_palette

CITY = BUILTIN_PALETTES["cityscapes"]
NEAREST = ["data.palette=cityscapes", "data.palette_match=nearest", "data.label_nc=20"]


def noisy_label_image(seed: int = 0, h: int = 48, w: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A colour label map of known cityscapes ids (vertical stripes of 8 px), with small Gaussian noise
    everywhere, blended (mid-way) colours on the stripe borders and some far colours.

    Returns (rgb uint8, true ids, mask of clean-ish pixels, mask of far pixels)."""
    rng = np.random.default_rng(seed)
    stripe_ids = rng.permutation(19)[: w // 8]
    ids = np.repeat(stripe_ids, 8)[None].repeat(h, 0)
    colours = CITY.colors[ids].astype(np.float64)
    colours += rng.normal(0, 3.0, colours.shape)  # JPEG-like noise in flat regions (|n| < 15)
    border = np.zeros((h, w), bool)
    for x in range(8, w, 8):  # one blended column at each border: the mean of both neighbours' colours
        border[:, x] = True
        colours[:, x] = (CITY.colors[ids[:, x - 1]].astype(np.float64) + CITY.colors[ids[:, x]]) / 2
    far = np.zeros((h, w), bool)
    far[h - 4:, 1:6] = True  # a magenta-ish patch far from every cityscapes colour
    colours[far] = (255, 128, 255)
    rgb = np.clip(np.round(colours), 0, 255).astype(np.uint8)
    clean = ~border & ~far
    return rgb, ids, clean, far


def test_builtin_palettes_resolve_everywhere():
    assert builtin_palette("cityscapes") is CITY and builtin_palette("Cityscapes-35") is BUILTIN_PALETTES["cityscapes-35"]
    assert builtin_palette("no-such") is None
    assert CITY.num_classes == 20 and CITY.void_id == 19 and CITY.class_names == CITYSCAPES_CLASSES
    assert CITYSCAPES_CLASSES[0] == "road" and CITYSCAPES_CLASSES[18] == "bicycle"
    assert tuple(CITY.colors[13]) == (0, 0, 142) and tuple(CITY.colors[19]) == (0, 0, 0)
    assert np.array_equal(load_palette("cityscapes"), CITY.colors)
    assert resolve_palette("cityscapes") is CITY
    assert resolve_metric_palette("cityscapes") == CITY.colors.tolist()
    c35 = BUILTIN_PALETTES["cityscapes-35"]
    assert c35.num_classes == 34 and c35.class_names[26] == "car" and c35.void_id == 0
    classes = dataset_classes(build_config("pix2pixhd-512", NEAREST).data)
    assert classes["classes"] == list(CITYSCAPES_CLASSES) and classes["thing_ids"] == list(range(11, 19))


def test_shared_colours_decode_to_the_lowest_id():
    c35 = BUILTIN_PALETTES["cityscapes-35"]
    rgb = np.array([[[0, 0, 0], [153, 153, 153], [0, 0, 142], [111, 74, 0]]], np.uint8)
    ids = label_ids(rgb, "x.png", 34, ColourDecoding(c35))
    assert ids.tolist() == [[0, 17, 26, 5]]
    # cityscapes (19 + void): black and a non-training colour (parking) are void, polegroup's grey is pole
    rgb19 = np.array([[[0, 0, 0], [250, 170, 160], [153, 153, 153], [128, 64, 128]]], np.uint8)
    assert label_ids(rgb19, "x.png", 20, ColourDecoding(CITY)).tolist() == [[19, 19, 5, 0]]


def test_nearest_recovers_ids_and_voids_far_pixels():
    rgb, truth, clean, far = noisy_label_image()
    decoding = ColourDecoding(CITY, "nearest", 50.0, CITY.void_id)
    ids = label_ids(rgb, "noisy.jpg", 20, decoding)
    assert np.array_equal(ids[clean], truth[clean])
    assert (ids[far] == 19).all()
    # a blend decodes to some class (one of its two colours is within the distance here) or void
    assert ((ids[~clean & ~far] >= 0) & (ids[~clean & ~far] <= 19)).all()
    # a tighter distance voids pixels that the default keeps
    tight = label_ids(rgb, "noisy.jpg", 20, ColourDecoding(CITY, "nearest", 1.0, 19))
    assert (tight == 19).sum() > (ids == 19).sum()


def test_nearest_table_matches_a_direct_computation():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    ids, far = nearest_ids(rgb, CITY, 60.0, 19)
    ids2, far2 = nearest_ids(rgb, CITY, 60.0, 19)  # second call: from the filled table
    x = rgb.reshape(-1, 1, 3).astype(np.int64)
    d2 = ((x - CITY.decode_colors[None].astype(np.int64)) ** 2).sum(-1)
    nearest = d2.argmin(1)
    want_far = d2.min(1) > 60 ** 2
    want = np.where(want_far, 19, CITY.decode_ids[nearest])
    assert np.array_equal(ids.ravel(), want) and np.array_equal(far.ravel(), want_far)
    assert np.array_equal(ids, ids2) and np.array_equal(far, far2)


def test_palette_fit_counts():
    rgb, _, clean, far = noisy_label_image(seed=1)
    decoding = ColourDecoding(CITY, "nearest", 50.0, 19)
    fit = PaletteFit(decoding, 20)
    for _ in range(2):
        fit.add(*fit.measure(rgb))
    ids, _ = nearest_ids(rgb, CITY, 50.0, 19)
    s = fit.summary()
    assert s["files"] == 2 and s["pixels"] == 2 * rgb.shape[0] * rgb.shape[1]
    x = rgb.reshape(-1, 1, 3).astype(np.int64)
    brute_far = (((x - CITY.decode_colors[None].astype(np.int64)) ** 2).sum(-1).min(1) > 50 ** 2).reshape(far.shape)
    assert brute_far[far].all() and not brute_far[clean].any()  # the patch is far, the noisy stripes are not
    assert s["far"] == 2 * int(brute_far.sum())  # plus the blends of distant colours
    assert s["within"] == s["pixels"] - s["far"]
    assert s["far_share"] == pytest.approx(brute_far.mean())
    counts = {c["id"]: c["pixels"] for c in s["classes"]}
    for i in range(20):
        assert counts[i] == 2 * int((ids == i).sum())
    assert sum(counts.values()) == s["pixels"]
    assert s["classes"][19]["name"] == "void"
    assert "far (void)" in fit.notes()[0]
    assert fit.measure(np.zeros((4, 4, 1), np.uint8)) is None  # ids, no colours to fit


def test_exact_still_refuses_off_palette_colours(tmp_path: Path):
    rgb, *_ = noisy_label_image()
    with pytest.raises(DataError, match=r"not in the palette cityscapes.*palette_match=nearest"):
        label_ids(rgb, "noisy.jpg", 20, ColourDecoding(CITY))
    pal = tmp_path / "pal.json"
    pal.write_text(json.dumps({"palette": [[0, 0, 0], [255, 0, 0]]}))
    img = tmp_path / "lab.png"
    Image.fromarray(np.array([[[0, 0, 0], [250, 3, 0]]], np.uint8)).save(img)
    with pytest.raises(DataError, match=r"colour \(250, 3, 0\)"):
        read_label_map(img, 2, pal)


def test_palette_file_needs_a_void_id_for_nearest(tmp_path: Path):
    pal = tmp_path / "pal.json"
    pal.write_text(json.dumps([[0, 0, 0], [255, 0, 0], [0, 255, 0]]))
    cfg = build_config("pix2pixhd-512", [f"data.palette={pal}", "data.palette_match=nearest", "data.label_nc=3"])
    with pytest.raises(ConfigError, match="palette_void_id"):
        colour_decoding(cfg.data)
    cfg = build_config("pix2pixhd-512", [f"data.palette={pal}", "data.palette_match=nearest", "data.label_nc=3",
                                         "data.palette_void_id=0", "data.palette_max_distance=20"])
    d = colour_decoding(cfg.data)
    assert d is not None and d.void_id == 0 and d.max_distance == 20
    rgb = np.array([[[250, 5, 0], [0, 240, 10], [120, 120, 120]]], np.uint8)
    assert label_ids(rgb, "x.jpg", 3, d).tolist() == [[1, 2, 0]]


def test_config_validation_of_palette_keys():
    cfg = build_config("pix2pixhd-512", NEAREST)
    assert cfg.data.palette_match == "nearest" and cfg.data.palette_max_distance == 50.0
    assert build_config("pix2pix").data.palette_match == "exact"
    with pytest.raises(ConfigError, match="data.palette_match"):
        build_config("pix2pixhd-512", ["data.palette=cityscapes", "data.palette_match=closest"])
    with pytest.raises(ConfigError, match="needs data.palette"):
        build_config("pix2pixhd-512", ["data.palette_match=nearest"])
    with pytest.raises(ConfigError, match="data.palette_max_distance"):
        build_config("pix2pixhd-512", NEAREST + ["data.palette_max_distance=-1"])
    with pytest.raises(ConfigError, match="data.palette_void_id"):
        build_config("pix2pixhd-512", NEAREST + ["data.palette_void_id=-2"])


def write_aligned_colour_labels(root: Path, n: int = 3, size: int = 32) -> Path:
    """ROOT/train/{i}.jpg: photo (left) | noisy cityscapes colour label map (right), as JPEG."""
    (root / "train").mkdir(parents=True)
    for i in range(n):
        rgb, *_ = noisy_label_image(seed=i, h=size, w=size)
        photo = np.random.default_rng(10 + i).integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(np.concatenate([photo, rgb], 1)).save(root / "train" / f"{i + 1}.jpg", quality=90)
    return root


def test_aligned_labels_dataset_and_check(tmp_path: Path):
    root = write_aligned_colour_labels(tmp_path / "city")
    cfg = build_config("pix2pixhd-512", NEAREST + [
        "data.layout=aligned", "data.direction=BtoA", "data.instance=false", "data.preprocess=resize_and_crop",
        "data.load_size=16", "data.crop_size=16"], data_path=str(root))
    assert resolve_layout(cfg.data, "train") == "aligned-labels"
    ds = build_dataset(cfg.data, "train", train=True)
    item = ds[0]
    assert item["label"].shape == (1, 16, 16) and item["label"].dtype == torch.int64
    assert item["image"].shape == (3, 16, 16) and int(item["label"].max()) <= 19
    assert "aligned-labels" in ds.describe() and "nearest" in ds.describe()
    report = check_dataset(cfg.data)
    assert report.ok, report.problems
    fit = report.rows[0]["palette_fit"]
    assert fit["files"] == 3 and fit["pixels"] == 3 * 32 * 32 and fit["within_share"] > 0.9
    # pix2pix keeps the colour image (no label_nc): the plain aligned layout, and the fit of its input
    p2p = build_config("pix2pix", ["data.direction=BtoA", "data.palette=cityscapes", "data.palette_match=nearest",
                                   "data.load_size=32", "data.crop_size=32"], data_path=str(root))
    assert resolve_layout(p2p.data, "train") == "aligned"
    row = check_dataset(p2p.data).rows[0]
    assert row["layout"] == "aligned" and row["palette_fit"]["pixels"] == fit["pixels"]
    assert row["palette_fit"]["far"] == fit["far"]


def test_aligned_labels_refuses_instances(tmp_path: Path):
    root = write_aligned_colour_labels(tmp_path / "city", n=1)
    cfg = build_config("pix2pixhd-512", NEAREST + ["data.layout=aligned", "data.direction=BtoA"], data_path=str(root))
    with pytest.raises(ConfigError, match="data.instance"):
        build_dataset(cfg.data, "train", train=True)
