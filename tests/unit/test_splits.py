"""Split specs: NAME[START:STOP] slices a split folder in natural file-name order."""

from __future__ import annotations

import numpy as np
import pytest

from pairgan.config import DataConfig
from pairgan.data.datasets import build_dataset, split_exists
from pairgan.data.io import write_image
from pairgan.data.splits import natural_key, parse_split, select_items
from pairgan.errors import DataError


def test_parse_split():
    assert parse_split("train") == ("train", None)
    assert parse_split("train[2700:]") == ("train", slice(2700, None))
    assert parse_split("train[:-275]") == ("train", slice(None, -275))
    assert parse_split("val[1:3]") == ("val", slice(1, 3))
    for bad in ("train[", "train[2700]", "train[a:b]", "[1:2]"):
        with pytest.raises(DataError, match="NAME\\[START:STOP\\]"):
            parse_split(bad)


def test_natural_order_and_selection():
    names = [f"{i}.jpg" for i in (10, 2, 1, 100, 3)]
    assert sorted(names, key=natural_key) == ["1.jpg", "2.jpg", "3.jpg", "10.jpg", "100.jpg"]
    assert select_items(names, "train[3:]") == ["10.jpg", "100.jpg"]
    assert select_items(names, "train") == names
    with pytest.raises(DataError, match="selects none"):
        select_items(names, "train[9:]")


def _aligned(root, n):
    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True)
    for i in range(1, n + 1):
        write_image(root / "train" / f"{i}.png", rng.random((8, 16, 3)))


def test_sliced_splits_partition_the_folder(tmp_path):
    _aligned(tmp_path, 12)
    cfg = DataConfig(path=str(tmp_path), preprocess="none", flip=False)
    head = build_dataset(cfg, "train[:10]", train=False)
    tail = build_dataset(cfg, "train[10:]", train=False)
    names = lambda ds: [p[0].name for p in ds.pairs]  # noqa: E731
    assert names(tail) == ["11.png", "12.png"]
    assert len(head) == 10 and not set(names(head)) & set(names(tail))
    assert tail[0]["A_path"].endswith("11.png")
    assert split_exists(cfg, "train[10:]") and not split_exists(cfg, "nope[1:]")
    # max_items applies after the slice
    assert names(build_dataset(DataConfig(path=str(tmp_path), preprocess="none", max_items=1), "train[10:]",
                               train=False)) == ["11.png"]


def test_data_check_reads_a_slice(tmp_path):
    from pairgan.data.check import check_dataset

    _aligned(tmp_path, 12)
    cfg = DataConfig(path=str(tmp_path), preprocess="none", flip=False, train_split="train[:10]",
                     val_split="train[10:]")
    report = check_dataset(cfg)
    rows = {r["split"]: r["n_pairs"] for r in report.rows}
    assert rows == {"train[:10]": 10, "train[10:]": 2}
    assert not report.problems


def test_a_slice_of_aligned_colour_labels(tmp_path):
    """The aligned-labels layout (label-map methods on A|B files) takes slices too."""
    rng = np.random.default_rng(0)
    (tmp_path / "train").mkdir()
    palette = np.array([[128, 64, 128], [70, 70, 70]], np.uint8)
    for i in range(1, 6):
        ids = rng.integers(0, 2, (8, 8))
        both = np.concatenate([rng.random((8, 8, 3)), palette[ids] / 255.0], axis=1)
        write_image(tmp_path / "train" / f"{i}.png", both)
    cfg = DataConfig(path=str(tmp_path), layout="aligned", direction="BtoA", input_kind="label", label_nc=20,
                     palette="cityscapes", preprocess="none", flip=False)
    ds = build_dataset(cfg, "train[3:]", train=False)
    assert ds.layout == "aligned-labels"
    assert [p[0].name for p in ds.pairs] == ["4.png", "5.png"]
    assert set(ds[0]["label"].unique().tolist()) <= {0, 2}  # road, building
