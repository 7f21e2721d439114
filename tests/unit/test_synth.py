"""Tests for the procedural street-scene generator (pairgan.synth.scenes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pairgan.synth.scenes import (
    CLASSES,
    LABEL_NC,
    PALETTE,
    THING_CLASSES,
    colorize,
    instance_to_class,
    render_scene,
    synth_scenes,
)

SKY, BUILDING, WINDOW, ROAD, CAR = (CLASSES.index(c) for c in ("sky", "building", "window", "road", "car"))


def _scene(seed: int, idx: int, size: int = 64, width: int | None = None):
    return render_scene(np.random.default_rng([seed, idx]), size, width)


@pytest.fixture(scope="module")
def scenes():
    return [_scene(7, i) for i in range(8)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    info = synth_scenes(out, n=10, size=40, seed=3, aspect=1.5, workers=1)
    return out, info


def _load(path):
    return np.asarray(Image.open(path))


def test_classes_and_palette():
    assert len(CLASSES) >= 7 and len(CLASSES) == len(PALETTE) == LABEL_NC
    assert len(set(PALETTE)) == len(PALETTE)
    pal = np.asarray(PALETTE, int)
    d = np.abs(pal[:, None] - pal[None]).sum(-1) + np.eye(len(pal), dtype=int) * 999
    assert d.min() > 60  # clearly different colours
    assert set(THING_CLASSES) <= set(CLASSES)


def test_render_shapes_and_dtypes():
    label, inst, photo = _scene(0, 0, size=48, width=96)
    assert label.shape == (48, 96) and label.dtype == np.uint8
    assert inst.shape == (48, 96) and inst.dtype == np.int32
    assert photo.shape == (48, 96, 3) and photo.dtype == np.uint8
    assert label.max() < LABEL_NC


def test_render_deterministic_per_seed():
    a, b = _scene(1, 5), _scene(1, 5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = _scene(2, 5)
    d = _scene(1, 6)
    assert not np.array_equal(a[2], c[2]) and not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[2], d[2])


def test_instances_match_labels(scenes):
    for label, inst, _ in scenes:
        np.testing.assert_array_equal(instance_to_class(inst), label)
        things = inst[inst >= 1000]
        assert np.isin(things // 1000, [CLASSES.index(c) for c in THING_CLASSES]).all()
        stuff = inst[inst < 1000]
        assert not np.isin(stuff, [CLASSES.index(c) for c in THING_CLASSES]).any()


def test_class_variety(scenes):
    seen = set()
    for label, _, _ in scenes:
        seen |= set(np.unique(label).tolist())
    assert len(seen) >= 6
    assert {SKY, BUILDING, WINDOW, ROAD} <= seen


def test_photo_follows_label(scenes):
    ratios = []
    for label, _, photo in scenes:
        p = photo.astype(np.float64)
        if (label == SKY).sum() > 10 and (label == ROAD).sum() > 10:
            sky = p[label == SKY].mean(0)
            road = p[label == ROAD].mean(0)
            assert np.abs(sky - road).max() > 15
        # the photo is explained well by the layout: class means leave much less variance
        resid = p.copy()
        for c in np.unique(label):
            resid[label == c] -= p[label == c].mean(0)
        ratios.append(resid.var() / p.var())
    assert max(ratios) < 0.85 and np.mean(ratios) < 0.6


def test_instances_have_own_appearance(scenes):
    """Two instances of the same thing class usually get different mean colours."""
    differ = total = 0
    for label, inst, photo in scenes:
        p = photo.astype(np.float64)
        for cls in (WINDOW, CAR):
            ids, counts = np.unique(inst[label == cls], return_counts=True)
            ids = ids[counts >= 6]
            if len(ids) < 2:
                continue
            means = np.stack([p[inst == i].mean(0) for i in ids])
            total += 1
            if np.abs(means[0] - means[1:]).max() > 4:
                differ += 1
    assert total >= 5
    assert differ >= 0.8 * total


def test_both_layouts_written(dataset):
    out, info = dataset
    h, w = 40, 60
    counts = info["counts"]
    assert sum(counts.values()) == 10 and counts == {"train": 8, "val": 1, "test": 1}
    for split, k in counts.items():
        paths = info["paths"][split]
        aligned = sorted((out / "aligned" / split).iterdir())
        assert len(aligned) == k
        for kind in ("label", "inst", "img"):
            assert len(list((out / f"{split}_{kind}").iterdir())) == k
            assert paths[kind] == str(out / f"{split}_{kind}")
        for f in aligned:
            a = Image.open(f)
            assert a.mode == "RGB" and a.size == (2 * w, h)
            lab = Image.open(out / f"{split}_label" / f.name)
            assert lab.mode == "L" and lab.size == (w, h)
            ins = Image.open(out / f"{split}_inst" / f.name)
            assert ins.mode in ("I", "I;16") and ins.size == (w, h)
            img = Image.open(out / f"{split}_img" / f.name)
            assert img.mode == "RGB" and img.size == (w, h)
    names = [f.name for s in ("train", "val", "test") for f in sorted((out / "aligned" / s).iterdir())]
    assert names == [f"{i:04d}.png" for i in range(10)]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    meta = json.loads((out / "classes.json").read_text())
    assert meta["classes"] == CLASSES and meta["label_nc"] == LABEL_NC
    assert [tuple(c) for c in meta["palette"]] == PALETTE
    assert "1000" in meta["instance_convention"]
    assert (out / "README.md").read_text().strip()


def test_written_files_consistent(dataset):
    out, _ = dataset
    for f in sorted((out / "aligned" / "train").iterdir())[:4]:
        a = _load(f)
        label = _load(out / "train_label" / f.name)
        inst = _load(out / "train_inst" / f.name).astype(np.int64)
        img = _load(out / "train_img" / f.name)
        w = label.shape[1]
        np.testing.assert_array_equal(a[:, :w], colorize(label))  # A (left) = colour-coded label
        np.testing.assert_array_equal(a[:, w:], img)  # B (right) = photo
        np.testing.assert_array_equal(instance_to_class(inst), label)
        # the files are exactly render_scene(default_rng([seed, index]))
        ref_label, ref_inst, ref_photo = render_scene(np.random.default_rng([3, int(f.stem)]), 40, 60)
        np.testing.assert_array_equal(label, ref_label)
        np.testing.assert_array_equal(inst, ref_inst)
        np.testing.assert_array_equal(img, ref_photo)


def test_dataset_deterministic_and_independent_of_n(tmp_path, dataset):
    out, _ = dataset
    synth_scenes(tmp_path / "b", n=4, size=40, seed=3, aspect=1.5, splits=(1, 0, 0), workers=2)
    for i in range(4):
        name = f"{i:04d}.png"
        np.testing.assert_array_equal(_load(tmp_path / "b" / "train_img" / name), _load(out / "train_img" / name))
    synth_scenes(tmp_path / "c", n=2, size=40, seed=4, aspect=1.5, splits=(1, 0, 0), workers=1)
    assert not np.array_equal(_load(tmp_path / "c" / "train_img" / "0000.png"), _load(out / "train_img" / "0000.png"))


def test_split_rounding_and_small_n(tmp_path):
    info = synth_scenes(tmp_path, n=3, size=16, seed=0, splits=(0.5, 0.25, 0.25), workers=1)
    assert sum(info["counts"].values()) == 3
    with pytest.raises(ValueError):
        synth_scenes(tmp_path / "x", n=1, size=4)
