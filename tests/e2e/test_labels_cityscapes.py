"""The labels layout on the real Cityscapes sample (../shared/data/cityscapes_sample)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pairgan.config import DataConfig
from pairgan.data.datasets import build_dataset
from pairgan.data.labels import LabelMapDataset, instance_to_class
from pairgan.errors import DataError
from tests.helpers import SHARED_DATA

CITYSCAPES = SHARED_DATA / "cityscapes_sample"


@pytest.mark.skipif(not CITYSCAPES.is_dir(), reason=f"real Cityscapes sample not found at {CITYSCAPES}")
def test_real_cityscapes_sample() -> None:
    c = DataConfig(path=str(CITYSCAPES), label_nc=35, instance=True, preprocess="scale_width",
                   load_size=256, crop_size=128)
    ds = build_dataset(c, "train", train=True)
    assert isinstance(ds, LabelMapDataset) and len(ds) == 8
    item = ds[(0, 0)]
    assert item["label"].shape == (1, 128, 256) and item["inst"].shape == (1, 128, 256)
    assert item["image"].shape == (3, 128, 256)
    assert 0 <= int(item["label"].min()) and int(item["label"].max()) < 35
    assert torch.equal(instance_to_class(item["inst"]), item["label"])  # Cityscapes convention
    assert int(item["inst"].max()) >= 1000  # things (cars, people, ...) have instances
    assert Path(item["B_path"]).name.endswith("_leftImg8bit.png")
    test = build_dataset(c, "test", train=False)
    assert len(test) == 15 and "image" not in test[0] and test[0]["B_path"] == ""
    with pytest.raises(DataError, match="label id 33 >= data.label_nc 20"):
        build_dataset(DataConfig(**{**c.__dict__, "label_nc": 20}), "train", train=False)[0]
