"""`pairgan bench` without a training step: FLOP counting and the data-loading mode."""

from pathlib import Path

import pytest
import torch

from pairgan.bench import bench, count_flops
from pairgan.config import build_config
from tests.helpers import tiny_overrides


def test_count_flops_of_a_known_conv():
    x, w = torch.randn(1, 4, 8, 8), torch.randn(6, 4, 3, 3)
    assert count_flops(lambda: torch.nn.functional.conv2d(x, w, padding=1)) == 2 * 6 * 4 * 9 * 8 * 8


def test_bench_data_mode(aligned_data: Path):
    cfg = build_config("pix2pix", tiny_overrides("pix2pix"), data_path=str(aligned_data))
    r = bench(cfg, mode="data", batch=2, steps=3, warmup=1)
    assert r["images_per_second"] > 0 and r["workers"] == 0
    with pytest.raises(ValueError, match="mode"):
        bench(cfg, mode="nope", steps=1, warmup=0, measure_peak=False)
