"""Paired data sets: both layouts, both directions, determinism per (seed, epoch, index)."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from pairgan import registry
from pairgan.config import DataConfig
from pairgan.data.datasets import (
    AlignedDataset,
    FoldersDataset,
    PairedImageDataset,
    build_dataset,
    detect_layout,
    split_exists,
)
from pairgan.data.io import write_image
from pairgan.errors import DataError

OFFSET = 102  # B = A + OFFSET grey levels: a shared crop/flip keeps B - A constant


def pattern(h: int, w: int, seed: int) -> np.ndarray:
    """uint8 values in 26..128, so that A + OFFSET stays below 255 (no clipping)."""
    return np.random.default_rng(seed).integers(26, 129, (h, w, 3)).astype(np.uint8)


def make_aligned(root: Path, split: str = "train", n: int = 4, h: int = 20, w: int = 24) -> Path:
    (root / split).mkdir(parents=True)
    for i in range(n):
        a = pattern(h, w, i)
        Image.fromarray(np.concatenate([a, a + OFFSET], axis=1)).save(root / split / f"{i}.png")
    return root


def make_folders(root: Path, split: str = "train", n: int = 4, h: int = 20, w: int = 24) -> Path:
    for side in ("A", "B"):
        (root / split / side).mkdir(parents=True)
    for i in range(n):
        a = pattern(h, w, i)
        Image.fromarray(a).save(root / split / "A" / f"im{i}.png")
        Image.fromarray((a + OFFSET)[..., 0]).save(root / split / "B" / f"im{i}.png")  # gray B
    return root


def cfg_for(root: Path, **kw) -> DataConfig:
    base = dict(path=str(root), preprocess="resize_and_crop", load_size=20, crop_size=16, flip=True)
    base.update(kw)
    return DataConfig(**base)


def test_aligned_items_atob_and_btoa(tmp_path: Path) -> None:
    root = make_aligned(tmp_path / "ds")
    for direction, sign in (("AtoB", 1), ("BtoA", -1)):
        ds = build_dataset(cfg_for(root, direction=direction), "train", train=True, seed=1)
        assert isinstance(ds, AlignedDataset) and len(ds) == 4
        assert all(b is None for _, b in ds.pairs)
        for i in range(len(ds)):
            item = ds[i]
            assert item["A"].shape == (3, 16, 16) and item["B"].shape == (3, 16, 16)
            assert item["A"].dtype == torch.float32
            assert item["index"] == i and item["A_path"] == item["B_path"] == str(ds.pairs[i][0])
            diff = (item["B"] - item["A"]) * sign  # tensors are in [-1, 1]: 2 * OFFSET / 255
            assert torch.allclose(diff, torch.full_like(diff, 2 * OFFSET / 255), atol=2e-4)
        assert "aligned" in ds.describe() and direction in ds.describe()


def test_folders_items_with_channel_matching(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "ds")
    cfg = cfg_for(root, output_nc=1)
    ds = build_dataset(cfg, "train", train=True)
    assert isinstance(ds, FoldersDataset)
    assert [(a.name, b.name) for a, b in ds.pairs] == [(f"im{i}.png", f"im{i}.png") for i in range(4)]
    item = ds[(3, 2)]
    assert item["A"].shape == (3, 16, 16) and item["B"].shape == (1, 16, 16)
    assert item["A_path"].endswith("A/im2.png") and item["B_path"].endswith("B/im2.png")
    diff = item["B"][0] - item["A"][0]
    assert torch.allclose(diff, torch.full_like(diff, 2 * OFFSET / 255), atol=2e-4)
    # BtoA: the gray B folder becomes the input, replicated to 3 channels
    back = build_dataset(replace(cfg, direction="BtoA", input_nc=3, output_nc=3), "train", train=True)
    item = back[(3, 2)]
    assert item["A_path"].endswith("B/im2.png")
    assert torch.equal(item["A"][0], item["A"][2])
    diff = item["A"][0] - item["B"][0]
    assert torch.allclose(diff, torch.full_like(diff, 2 * OFFSET / 255), atol=2e-4)


def test_sample_is_a_pure_function_of_seed_epoch_index(tmp_path: Path) -> None:
    root = make_aligned(tmp_path / "ds")
    cfg = cfg_for(root)
    ds = build_dataset(cfg, "train", train=True, seed=7)
    again = build_dataset(cfg, "train", train=True, seed=7)
    state = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    x = ds[(2, 1)]
    assert torch.equal(x["A"], again[(2, 1)]["A"]) and torch.equal(x["B"], ds[(2, 1)]["B"])
    assert torch.equal(ds[1]["A"], ds[(0, 1)]["A"])
    # global RNGs are never touched
    assert random.getstate() == state[0]
    assert np.array_equal(np.random.get_state()[1], state[1])
    assert torch.equal(torch.get_rng_state(), state[2])
    # other epochs and other seeds give other crops/flips
    epochs = {ds[(e, 1)]["A"].numpy().tobytes() for e in range(8)}
    assert len(epochs) >= 6
    other = build_dataset(cfg, "train", train=True, seed=8)
    assert not torch.equal(other[(2, 1)]["A"], x["A"])


def test_workers_give_the_same_batches(tmp_path: Path) -> None:
    ds = build_dataset(cfg_for(make_aligned(tmp_path / "ds")), "train", train=True, seed=3)
    keys = [(1, i) for i in range(4)]
    plain = [ds[k]["A"] for k in keys]
    loader = DataLoader(ds, batch_size=2, sampler=keys, num_workers=2,
                        multiprocessing_context="fork")
    batches = list(loader)
    assert torch.equal(torch.cat([b["A"] for b in batches]), torch.stack(plain))
    assert batches[0]["index"].tolist() == [0, 1]


def test_eval_mode_is_deterministic(tmp_path: Path) -> None:
    root = make_aligned(tmp_path / "ds", h=20, w=26)
    ds = build_dataset(cfg_for(root, preprocess="crop"), "train", train=False, size_multiple=4)
    a, b = ds[(0, 0)]["A"], ds[(5, 0)]["A"]
    assert a.shape == (3, 20, 28) and torch.equal(a, b)  # half width 26 -> 28 (6.5 fours), no crop


def test_label_input_keeps_ids(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for side in ("A", "B"):
        (root / "train" / side).mkdir(parents=True)
    rng = np.random.default_rng(0)
    ids = np.array([0, 5, 9, 40], np.uint8)
    for i in range(2):
        lab = Image.fromarray(ids[rng.integers(0, 4, (20, 20))], mode="P")
        lab.putpalette(list(range(256)) * 3)
        lab.save(root / "train" / "A" / f"{i}.png")
        Image.fromarray(pattern(20, 20, i)).save(root / "train" / "B" / f"{i}.png")
    cfg = cfg_for(root, input_nc=1, input_kind="label", load_size=31, crop_size=24)
    ds = build_dataset(cfg, "train", train=True)
    vals = set(np.unique(ds[(1, 0)]["A"].numpy()))
    assert vals <= set(ids.astype(np.float32) / 255 * 2 - 1)
    assert len(vals) > 1


def test_max_items_and_registry(tmp_path: Path) -> None:
    root = make_aligned(tmp_path / "ds", n=5)
    ds = build_dataset(cfg_for(root, max_items=2), "train", train=True)
    assert len(ds) == 2 and [p.name for p, _ in ds.pairs] == ["0.png", "1.png"]
    with pytest.raises(IndexError):
        ds[2]
    assert ds[-1]["index"] == 1
    assert registry._REGISTRIES["dataset"]["aligned"] is AlignedDataset
    assert registry._REGISTRIES["dataset"]["folders"] is FoldersDataset
    assert isinstance(build_dataset(cfg_for(root, layout="aligned"), "train", train=False),
                      PairedImageDataset)


def test_layout_detection_and_split_exists(tmp_path: Path) -> None:
    make_aligned(tmp_path / "al")
    make_folders(tmp_path / "fo")
    assert detect_layout(tmp_path / "al", "train") == "aligned"
    assert detect_layout(tmp_path / "fo", "train") == "folders"
    (tmp_path / "al" / "val").mkdir()
    with pytest.raises(DataError, match=r"al/val: no images.*aligned layout.*folders layout"):
        detect_layout(tmp_path / "al", "val")
    with pytest.raises(DataError, match=r"al/test: split folder not found"):
        detect_layout(tmp_path / "al", "test")
    assert split_exists(cfg_for(tmp_path / "al"), "train")
    assert not split_exists(cfg_for(tmp_path / "al"), "val")
    assert not split_exists(cfg_for(tmp_path / "al"), "test")
    assert split_exists(cfg_for(tmp_path / "fo"), "train")


def test_empty_split_names_folder_and_layout(tmp_path: Path) -> None:
    (tmp_path / "ds" / "train" / "A").mkdir(parents=True)
    (tmp_path / "ds" / "train" / "B").mkdir()
    with pytest.raises(DataError, match=r"ds/train: empty split.*ROOT/train/A/\*"):
        build_dataset(cfg_for(tmp_path / "ds"), "train", train=True)
    with pytest.raises(DataError, match="data.path is empty"):
        build_dataset(DataConfig(), "train", train=True)


def test_bad_pairs_are_errors_naming_files(tmp_path: Path) -> None:
    root = make_folders(tmp_path / "fo", n=2)
    Image.fromarray(pattern(20, 24, 9)).save(root / "train" / "A" / "lonely.png")
    with pytest.raises(DataError, match=r"A/lonely\.png: no partner named lonely\.\*"):
        build_dataset(cfg_for(root), "train", train=True)
    (root / "train" / "A" / "lonely.png").unlink()
    Image.fromarray(pattern(10, 24, 9)).save(root / "train" / "B" / "im1.png")
    ds = build_dataset(cfg_for(root), "train", train=True)
    with pytest.raises(DataError, match=r"A/im1\.png is 24x20 but its partner .*B/im1\.png is 24x10"):
        ds[1]

    al = make_aligned(tmp_path / "al", n=1)
    Image.fromarray(pattern(20, 25, 0)).save(al / "train" / "0.png")
    with pytest.raises(DataError, match=r"0\.png: width 25 is odd"):
        build_dataset(cfg_for(al), "train", train=True)[0]


def test_channel_and_crop_errors_name_file(tmp_path: Path) -> None:
    root = tmp_path / "np"
    for side in ("A", "B"):
        (root / "train" / side).mkdir(parents=True)
    write_image(root / "train" / "A" / "x.npy", np.zeros((20, 20, 5), np.float32))
    write_image(root / "train" / "B" / "x.png", np.zeros((20, 20, 3), np.float32))
    ds = build_dataset(cfg_for(root), "train", train=True)
    with pytest.raises(DataError, match=r"A/x\.npy: 5 channels, expected 3 \(data\.input_nc\)"):
        ds[0]
    small = build_dataset(cfg_for(make_aligned(tmp_path / "al"), preprocess="crop", crop_size=32),
                          "train", train=True)
    with pytest.raises(DataError, match=r"0\.png: crop_size 32 is larger than the image \(24x20\)"):
        small[0]
