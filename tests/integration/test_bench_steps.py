"""`pairgan bench` timing tiny training and inference steps: time, FLOPs and memory are reported."""

import pytest

from pairgan.bench import bench, format_result
from pairgan.config import build_config
from tests.helpers import tiny_overrides


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_bench_reports_time_flops_memory(mode):
    cfg = build_config("pix2pix", tiny_overrides("pix2pix"))
    r = bench(cfg, mode=mode, size=32, batch=2, steps=2, warmup=0, measure_peak=False)
    assert r["steps_measured"] == 2 and r["seconds_per_step"]["min"] > 0
    assert r["images_per_second"] > 0 and r["gflop_per_step"] > 0 and r["peak_rss_gib"] > 0
    assert set(r["parameters"]) == ({"G", "D"} if mode == "train" else {"G"})
    assert "s/step median" in format_result(r)


def test_train_flops_exceed_inference_flops():
    cfg = build_config("pix2pix", tiny_overrides("pix2pix"))
    train = bench(cfg, mode="train", size=32, batch=1, steps=1, warmup=0, measure_peak=False)
    infer = bench(cfg, mode="infer", size=32, batch=1, steps=1, warmup=0, measure_peak=False)
    # A training step runs G forward + backward and three D passes: several times G's forward.
    assert train["gflop_per_step"] > 3 * infer["gflop_per_step"]


@pytest.mark.parametrize("backend, inference_mode, ran", [
    ("auto", "eval", "onnxruntime"),  # the default path: the compiled graph (onnxruntime is a test dependency)
    ("torchscript", "eval", "torchscript"),
    ("auto", "paper", "torch"),  # dropout and batch statistics: eager
    ("torch", "eval", "torch"),
    ("onnxruntime", "eval", "onnxruntime"),
])
def test_bench_infer_reports_the_backend_that_ran(backend, inference_mode, ran):
    if ran == "onnxruntime":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    cfg = build_config("pix2pix", tiny_overrides("pix2pix"))
    r = bench(cfg, mode="infer", size=32, batch=2, steps=1, warmup=0, measure_peak=False, backend=backend,
              inference_mode=inference_mode)
    assert r["backend"].split()[0] == ran and r["inference_mode"] == inference_mode
    assert r["first_call_seconds"] > 0 and r["gflop_per_step"] > 0
    assert f"backend: {ran}" in format_result(r)
