from pathlib import Path

import pytest

from pairgan.bench import bench, count_flops, format_result
from pairgan.config import build_config
from tests.conftest import TINY


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_bench_reports_time_flops_memory(mode):
    cfg = build_config("pix2pix", TINY)
    r = bench(cfg, mode=mode, size=32, batch=2, steps=2, warmup=0, measure_peak=False)
    assert r["steps_measured"] == 2 and r["seconds_per_step"]["min"] > 0
    assert r["images_per_second"] > 0 and r["gflop_per_step"] > 0 and r["peak_rss_gib"] > 0
    assert set(r["parameters"]) == ({"G", "D"} if mode == "train" else {"G"})
    assert "s/step median" in format_result(r)


def test_train_flops_exceed_inference_flops():
    cfg = build_config("pix2pix", TINY)
    train = bench(cfg, mode="train", size=32, batch=1, steps=1, warmup=0, measure_peak=False)
    infer = bench(cfg, mode="infer", size=32, batch=1, steps=1, warmup=0, measure_peak=False)
    # A training step runs G forward + backward and three D passes: several times G's forward.
    assert train["gflop_per_step"] > 3 * infer["gflop_per_step"]


def test_count_flops_of_a_known_conv():
    import torch

    x, w = torch.randn(1, 4, 8, 8), torch.randn(6, 4, 3, 3)
    assert count_flops(lambda: torch.nn.functional.conv2d(x, w, padding=1)) == 2 * 6 * 4 * 9 * 8 * 8


def test_bench_data_mode(aligned_data: Path):
    cfg = build_config("pix2pix", TINY, data_path=str(aligned_data))
    r = bench(cfg, mode="data", batch=2, steps=3, warmup=1)
    assert r["images_per_second"] > 0 and r["workers"] == 0
    with pytest.raises(ValueError, match="mode"):
        bench(cfg, mode="nope", steps=1, warmup=0, measure_peak=False)
