"""Label maps with instances (pix2pixHD / Cityscapes layout): reading, checks, matching, augmentation.
The real Cityscapes sample: tests/e2e/test_labels_cityscapes.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pairgan.config import DataConfig
from pairgan.data.check import check_dataset
from pairgan.data.datasets import build_dataset, detect_layout, split_exists
from pairgan.data.labels import (
    LabelMapDataset,
    colorize,
    default_palette,
    find_partner,
    instance_to_class,
    load_palette,
    match_key,
    read_instance_map,
    read_label_map,
)
from pairgan.errors import ConfigError, DataError
from pairgan.synth.scenes import PALETTE, synth_scenes

PAL = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)


def save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def blocks(h: int = 24, w: int = 32, seed: int = 0, n: int = 4) -> np.ndarray:
    """A label map of rectangles with ids 0..n-1."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((h, w), np.uint8)
    for _ in range(6):
        y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
        lab[y:y + rng.integers(3, 12), x:x + rng.integers(3, 12)] = rng.integers(1, n)
    return lab


def write_labels_set(root: Path, split: str = "train", n: int = 3, cityscapes_names: bool = False,
                     images: bool = True, h: int = 24, w: int = 32) -> Path:
    """label ids, instance ids (class * 1000 + k; stuff = class) and a photo = palette colour of the label."""
    for i in range(n):
        lab = blocks(h, w, seed=i)
        inst = lab.astype(np.uint16) * 1000 + np.uint16(i)
        inst[lab == 0] = 0
        name = f"city_{i:06d}_000019"
        ln, inn, im = ((f"{name}_gtFine_labelIds.png", f"{name}_gtFine_instanceIds.png", f"{name}_leftImg8bit.png")
                       if cityscapes_names else (f"{i:03d}.png",) * 3)
        save(root / f"{split}_label" / ln, lab)
        save(root / f"{split}_inst" / inn, inst)
        if images:
            save(root / f"{split}_img" / im, PAL[lab])
    return root


def cfg(root: Path, **kw) -> DataConfig:
    base = dict(path=str(root), label_nc=4, instance=True, preprocess="none", load_size=32, crop_size=16)
    base.update(kw)
    return DataConfig(**base)


# --------------------------------------------------------------------------- reading


def test_read_label_ids_8_and_16_bit(tmp_path: Path) -> None:
    lab = blocks()
    save(tmp_path / "a.png", lab)
    np.testing.assert_array_equal(read_label_map(tmp_path / "a.png", 4), lab)
    big = (lab.astype(np.uint16) * 300)
    save(tmp_path / "b.png", big)
    out = read_label_map(tmp_path / "b.png", 1000)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, big)
    np.save(tmp_path / "c.npy", lab.astype(np.int32))
    np.testing.assert_array_equal(read_label_map(tmp_path / "c.npy", 4), lab)


def test_label_id_too_large_names_file_value_and_label_nc(tmp_path: Path) -> None:
    lab = blocks()
    lab[0, 0] = 7
    p = save(tmp_path / "bad.png", lab)
    with pytest.raises(DataError) as err:
        read_label_map(p, 4)
    msg = str(err.value)
    assert str(p) in msg and "label id 7" in msg and "data.label_nc 4" in msg and "1 pixels" in msg


def test_palette_mapping_and_unknown_colour(tmp_path: Path) -> None:
    lab = blocks()
    p = save(tmp_path / "colour.png", PAL[lab])
    (tmp_path / "classes.json").write_text(json.dumps({"palette": PAL.tolist(), "label_nc": 4}))
    (tmp_path / "list.json").write_text(json.dumps(PAL.tolist()))
    for pal in (tmp_path / "classes.json", tmp_path / "list.json", PAL):
        np.testing.assert_array_equal(read_label_map(p, 4, palette=pal), lab)
    rgb = PAL[lab].copy()
    rgb[:2, :3] = (9, 8, 7)
    q = save(tmp_path / "odd.png", rgb)
    with pytest.raises(DataError) as err:
        read_label_map(q, 4, palette=tmp_path / "classes.json")
    msg = str(err.value)
    assert str(q) in msg and "(9, 8, 7)" in msg and "6 pixels" in msg and "classes.json" in msg
    with pytest.raises(DataError, match="colour-coded .* no palette"):
        read_label_map(p, 4)
    # ids stored as grey RGB need no palette
    save(tmp_path / "grey.png", np.repeat(lab[..., None], 3, axis=2))
    np.testing.assert_array_equal(read_label_map(tmp_path / "grey.png", 4), lab)


def test_load_palette_checks(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"palette": [[0, 0, 0], [0, 0, 0]]}))
    with pytest.raises(DataError, match="colour \\(0, 0, 0\\) is given for ids 0 and 1"):
        load_palette(bad)
    bad.write_text(json.dumps([[0, 0, 300]]))
    with pytest.raises(DataError, match="entry 0"):
        load_palette(bad)
    bad.write_text(json.dumps({"palette": [[0, 0, 1]], "label_nc": 3}))
    with pytest.raises(DataError, match="label_nc 3 but 1"):
        load_palette(bad)
    with pytest.raises(DataError, match="not found"):
        load_palette(tmp_path / "none.json")


def test_synth_classes_json_palette_maps_aligned_labels(tmp_path: Path) -> None:
    synth_scenes(tmp_path / "s", n=2, size=16, workers=1)
    left = np.array(Image.open(next((tmp_path / "s" / "aligned" / "train").iterdir())))[:, :16]
    ids = read_label_map(_save_tmp(tmp_path, left), 9, palette=tmp_path / "s" / "classes.json")
    truth = np.array(Image.open(next((tmp_path / "s" / "train_label").iterdir())))
    np.testing.assert_array_equal(ids, truth)
    assert load_palette(tmp_path / "s" / "classes.json").tolist() == [list(c) for c in PALETTE]


def _save_tmp(tmp_path: Path, arr: np.ndarray) -> Path:
    return save(tmp_path / "left.png", arr)


def test_instance_maps_and_convention(tmp_path: Path) -> None:
    inst = np.array([[0, 7, 26000], [26001, 33000, 70000]], np.int32)
    np.save(tmp_path / "i.npy", inst)
    np.testing.assert_array_equal(read_instance_map(tmp_path / "i.npy"), inst)
    np.testing.assert_array_equal(instance_to_class(inst), [[0, 7, 26], [26, 33, 70]])
    t = instance_to_class(torch.as_tensor(inst))
    assert torch.is_tensor(t) and t.tolist() == [[0, 7, 26], [26, 33, 70]]
    save(tmp_path / "i16.png", inst[:, :2].astype(np.uint16))
    np.testing.assert_array_equal(read_instance_map(tmp_path / "i16.png"), inst[:, :2])


# --------------------------------------------------------------------------- matching


def test_partners_matched_by_key_with_cityscapes_suffixes(tmp_path: Path) -> None:
    assert match_key("aachen_000000_000019_gtFine_labelIds.png") == "aachen_000000_000019"
    assert match_key("aachen_000000_000019_leftImg8bit.png") == "aachen_000000_000019"
    assert match_key("x_gtFine_instanceIds.png") == match_key("x_inst.png") == match_key("x.png") == "x"
    write_labels_set(tmp_path, cityscapes_names=True)
    lab = tmp_path / "train_label" / "city_000001_000019_gtFine_labelIds.png"
    assert find_partner(lab, "inst") == tmp_path / "train_inst" / "city_000001_000019_gtFine_instanceIds.png"
    assert find_partner(lab, "img") == tmp_path / "train_img" / "city_000001_000019_leftImg8bit.png"
    assert find_partner(tmp_path / "train_label" / "nothing.png", "img") is None
    ds = build_dataset(cfg(tmp_path), "train", train=False)
    assert isinstance(ds, LabelMapDataset) and len(ds) == 3
    item = ds[1]
    assert item["B_path"].endswith("city_000001_000019_leftImg8bit.png")
    # an unpaired photo is an error naming it
    save(tmp_path / "train_img" / "lonely_leftImg8bit.png", PAL[blocks()])
    with pytest.raises(DataError, match="lonely_leftImg8bit.png: no label map"):
        build_dataset(cfg(tmp_path), "train", train=False)


def test_item_contents(tmp_path: Path) -> None:
    write_labels_set(tmp_path)
    ds = build_dataset(cfg(tmp_path), "train", train=False)
    item = ds[0]
    assert set(item) == {"label", "inst", "image", "A_path", "B_path", "index"}
    assert item["label"].dtype == torch.int64 and item["label"].shape == (1, 24, 32)
    assert item["inst"].dtype == torch.int64 and item["inst"].shape == (1, 24, 32)
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 24, 32)
    np.testing.assert_array_equal(item["label"][0].numpy(), blocks(seed=0))
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    assert item["A_path"].endswith("train_label/000.png") and item["index"] == 0
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["label"].shape == (2, 1, 24, 32)


def test_shared_augmentation_keeps_label_inst_image_aligned(tmp_path: Path) -> None:
    write_labels_set(tmp_path, n=2, h=40, w=48)
    # crop + flip without resampling: every pixel must stay exactly consistent
    ds = build_dataset(cfg(tmp_path, preprocess="crop", crop_size=24), "train", train=True, seed=3)
    seen = set()
    for epoch in range(6):
        item = ds[(epoch, 0)]
        lab, inst, img = item["label"][0], item["inst"][0], item["image"]
        assert lab.shape == (24, 24)
        assert torch.equal(instance_to_class(inst), lab)
        colours = torch.as_tensor(PAL, dtype=torch.float32)[lab].permute(2, 0, 1) / 127.5 - 1
        torch.testing.assert_close(img, colours)
        seen.add(tuple(lab.flatten().tolist()))
        assert torch.equal(ds[(epoch, 0)]["image"], img)  # a pure function of (seed, epoch, index)
    assert len(seen) > 1  # the draws differ between epochs
    # with resizing: label and inst both nearest, on the same geometry; the photo bicubic
    ds = build_dataset(cfg(tmp_path, preprocess="resize_and_crop", load_size=30, crop_size=20), "train", train=True)
    for epoch in range(3):
        item = ds[(epoch, 1)]
        assert torch.equal(instance_to_class(item["inst"][0]), item["label"][0])
        assert set(item["label"].unique().tolist()) <= {0, 1, 2, 3}
        assert item["image"].shape == (3, 20, 20)


def test_no_instance_mode_and_labels_only_split(tmp_path: Path) -> None:
    write_labels_set(tmp_path)
    shutil.rmtree(tmp_path / "train_inst")
    with pytest.raises(DataError, match="train_inst: folder not found; data.instance is true"):
        build_dataset(cfg(tmp_path), "train", train=False)
    item = build_dataset(cfg(tmp_path, instance=False), "train", train=True)[0]
    assert "inst" not in item and item["label"].shape == (1, 24, 32)
    write_labels_set(tmp_path, split="test", images=False)
    item = build_dataset(cfg(tmp_path), "test", train=False)[2]
    assert "image" not in item and item["B_path"] == "" and item["inst"].shape == (1, 24, 32)


def test_label_nc_required_and_checked_on_read(tmp_path: Path) -> None:
    write_labels_set(tmp_path)
    with pytest.raises(ConfigError, match="data.label_nc is 0"):
        build_dataset(cfg(tmp_path, label_nc=0), "train", train=False)
    ds = build_dataset(cfg(tmp_path, label_nc=3), "train", train=False)
    with pytest.raises(DataError, match="000.png: label id 3 >= data.label_nc 3"):
        for i in range(len(ds)):
            ds[i]


def test_colour_coded_labels_through_data_palette(tmp_path: Path) -> None:
    write_labels_set(tmp_path)
    for f in (tmp_path / "train_label").iterdir():  # recode the ids as colours
        save(f, PAL[np.array(Image.open(f))])
    (tmp_path / "pal.json").write_text(json.dumps({"palette": PAL.tolist()}))
    with pytest.raises(DataError, match="no palette"):
        build_dataset(cfg(tmp_path), "train", train=False)[0]
    ds = build_dataset(cfg(tmp_path, palette="pal.json"), "train", train=False)  # relative to the data root
    np.testing.assert_array_equal(ds[0]["label"][0].numpy(), blocks(seed=0))


# --------------------------------------------------------------------------- detection and data check


def test_detection_on_synth_scenes(tmp_path: Path) -> None:
    synth_scenes(tmp_path, n=6, size=32, workers=1)
    assert detect_layout(tmp_path, "train") == "labels"
    assert detect_layout(tmp_path / "aligned", "train") == "aligned"
    c = DataConfig(path=str(tmp_path), label_nc=9, instance=True, load_size=36, crop_size=32)
    assert split_exists(c, "val") and not split_exists(c, "nope")
    ds = build_dataset(c, "train", train=True)
    assert isinstance(ds, LabelMapDataset) and "labels:" in ds.describe()
    item = ds[(0, 0)]
    assert item["label"].shape == (1, 32, 32) and item["image"].shape == (3, 32, 32)
    assert int(item["label"].max()) < 9


def test_data_check_on_labels_layout(tmp_path: Path) -> None:
    synth_scenes(tmp_path, n=6, size=32, workers=1)
    c = DataConfig(path=str(tmp_path), label_nc=9, instance=True, load_size=36, crop_size=32)
    report = check_dataset(c)
    assert report.ok, report.problems
    assert [r["split"] for r in report.rows] == ["train", "val"]  # n=6: 5 / 1 / 0
    train = report.rows[0]
    assert train["layout"] == "labels" and train["n_pairs"] == 5 and train["min_size"] == (32, 32)
    assert train["channels_A"] == [1] and train["channels_B"] == [3]
    # a bad id, a missing instance map and a photo of the wrong size, each named
    bad = tmp_path / "train_label" / "0001.png"
    lab = np.array(Image.open(bad))
    lab[3, 3] = 20
    save(bad, lab)
    (tmp_path / "train_inst" / "0002.png").unlink()
    save(tmp_path / "val_img" / "0005.png", np.zeros((30, 32, 3), np.uint8))
    report = check_dataset(c)
    probs = {Path(f).name: p for f, p in report.problems}
    assert "label id 20 >= data.label_nc 9" in probs["0001.png"]
    assert "no instance map" in probs["0002.png"]
    assert "size 32x30 differs" in probs["0005.png"]
    c0 = DataConfig(path=str(tmp_path), label_nc=0)
    assert any("data.label_nc is 0" in p for _, p in check_dataset(c0).problems)


def test_test_split_without_photos_is_a_note_not_a_problem(tmp_path: Path) -> None:
    write_labels_set(tmp_path)
    write_labels_set(tmp_path, split="test", images=False)
    report = check_dataset(cfg(tmp_path))
    assert report.ok, report.problems
    test = [r for r in report.rows if r["split"] == "test"][0]
    assert test["n_pairs"] == 3 and test["channels_B"] == []
    assert any("no test_img/" in n for n in test["notes"])
    # the training split does need photos
    shutil.rmtree(tmp_path / "train_img")
    assert any("training split needs photos" in p for _, p in check_dataset(cfg(tmp_path)).problems)


# --------------------------------------------------------------------------- display


def test_colorize() -> None:
    ids = torch.tensor([[[0, 1], [2, 40]]])
    out = colorize(ids)
    assert out.shape == (1, 3, 2, 2) and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1
    assert torch.equal(colorize(ids.unsqueeze(1)), out)
    pal = default_palette(64)
    assert len({tuple(c) for c in pal.tolist()}) == 64
    got = colorize(torch.tensor([[[1, 3]]]), palette=PAL)
    torch.testing.assert_close(got[0, :, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    torch.testing.assert_close(got[0, :, 0, 1], torch.tensor([-1.0, -1.0, 1.0]))
    beyond = colorize(torch.tensor([[[5]]]), palette=PAL)  # ids past the palette get default colours
    torch.testing.assert_close(beyond[0, :, 0, 0], torch.as_tensor(pal[5], dtype=torch.float32) / 127.5 - 1)
