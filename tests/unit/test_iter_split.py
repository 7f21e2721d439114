"""iter_split, THE walk over a split: batches in order, names, outputs, targets, a missing target."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pairgan.config import build_config
from pairgan.evaluate import iter_split, split_dataset
from tests.helpers import tiny_overrides


def test_iter_split_walks_the_split_in_order(aligned_data: Path) -> None:
    cfg = build_config("pix2pix", tiny_overrides("pix2pix"), data_path=str(aligned_data))
    ds = split_dataset(cfg.data, aligned_data, "test", size_multiple=32)
    parts = list(iter_split(ds, lambda batch: -batch["A"], batch_size=2, target_key="B"))
    assert [len(p.items) for p in parts] == [2, 1] and [n for p in parts for n in p.names] == ["000", "001", "002"]
    for p in parts:
        assert torch.equal(p.outputs, -p.batch["A"]) and torch.equal(p.targets, p.batch["B"])
        assert p.batch["A"].shape[1:] == ds[0]["A"].shape
    assert all(p.outputs is None and p.targets is None for p in iter_split(ds))
    with pytest.raises(ValueError, match="the test split has no target images"):
        next(iter_split(ds, target_key="image"))
