"""The demo pipeline at a tiny budget (the real `make demo` runs the same code for minutes)."""

import json
from pathlib import Path

from pairgan.demo import run_demo


def test_demo_pipeline_writes_gallery_and_metrics(tmp_path: Path):
    result = run_demo(tmp_path / "demo", steps=2, n=20, device="cpu")
    metrics = json.loads(Path(result["metrics_file"]).read_text())["metrics"]
    assert {"l1", "psnr", "ssim", "count"} <= set(metrics) and metrics["count"] == 2
    page = Path(result["gallery"]).read_text()
    assert page.count("<tr>") == 1 + metrics["count"]
    assert (tmp_path / "demo" / "run" / "checkpoints" / "latest").exists()
