"""`pairgan evaluate` / `compare` and the report, on a tiny pix2pix run: every metric, the real-set
cache, the segmentation score, `evaluate_split`.

The real Inception and LPIPS networks are too slow for this CPU: a tiny feature extractor (the
real input protocol at 32 px + a fixed random conv) and a randomly initialised LPIPS stand in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from pairgan.cli import app
from pairgan.evaluate import evaluate, evaluate_split
from pairgan.infer import Translator
from pairgan.methods.segmenter import build_segmenter_config
from pairgan.metrics import lpips as L
from pairgan.metrics.inception import preprocess
from pairgan.metrics.suite import PROTOCOL_VERSION
from pairgan.train.trainer import Trainer
from tests.helpers import tiny_overrides, train_tiny

runner = CliRunner()


class TinyExtractor:
    """Stands in for the Inception network: 16-d features and 10 logits."""

    def __init__(self, logits: bool = True) -> None:
        g = torch.Generator().manual_seed(0)
        self.w = torch.randn(8, 3, 5, 5, generator=g) * 0.3
        self.fc = torch.randn(10, 16, generator=g, dtype=torch.float64)
        self.logits = logits
        self.calls = 0

    def __call__(self, images):
        feats = []
        for img in images:
            self.calls += 1
            h = F.conv2d(preprocess(img, size=32), self.w, stride=2).relu()
            feats.append(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))
        f = torch.cat(feats).double()
        return f, (f @ self.fc.t() if self.logits else None)


@pytest.fixture
def tiny_lpips(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    monkeypatch.setitem(L._MODELS, ("vgg", "cpu"), L.LPIPS("vgg", pretrained=False))


@pytest.fixture
def run(tiny_run: Callable[..., Path]) -> Path:
    """The session's 2-step tiny pix2pix run on the aligned data: read, never written."""
    return tiny_run("pix2pix", steps=2)


@pytest.fixture
def own_run(aligned_data: Path, tmp_path: Path) -> Path:
    """This test's own 2-step tiny pix2pix run: `pairgan evaluate` writes its results into the run."""
    return train_tiny(tmp_path / "run", "pix2pix", aligned_data, steps=2)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRGAN_CACHE", str(tmp_path / "cache"))


def test_evaluate_all_metrics_report_and_cache(run: Path, aligned_data: Path, tmp_path: Path, tiny_lpips) -> None:
    tr = Translator.from_checkpoint(run, device="cpu")
    ext = TinyExtractor()
    names = "l1,psnr,ssim,ms_ssim,lpips,fid,kid,is"
    r = evaluate(tr, aligned_data, "test", tmp_path / "ev", metrics=names, feature_extractor=ext)
    m = r["metrics"]
    assert r["protocol_version"] == PROTOCOL_VERSION and m["count"] == 3
    for k in ("l1", "psnr", "ssim", "ms_ssim", "lpips", "fid", "kid", "kid_std", "is", "is_std"):
        assert isinstance(m[k], float), k
    assert m["fid"] > 0 and m["lpips"] > 0 and 1 <= m["is"] <= 10
    assert r["details"]["kid"]["subset_size"] == 3 and r["details"]["ms_ssim"]["standard"] is False
    assert "computed, cached" in r["details"]["inception"]["real_features"]
    doc = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert doc["metrics"] == json.loads(json.dumps(m)) and set(doc["protocols"]) >= {"fid", "lpips", "kid"}
    assert len(doc["samples"]) == 3 and (tmp_path / "ev" / doc["samples"][0]["output"]).is_file()
    page = (tmp_path / "ev" / "index.html").read_text()
    assert page.startswith("<!doctype html>") and "<table>" in page and "fid ↓" in page and 'src="outputs/' in page
    # second run: the real set's features come from the cache, numbers are identical
    ext2 = TinyExtractor()
    r2 = evaluate(tr, aligned_data, "test", tmp_path / "ev2", metrics="fid,kid", feature_extractor=ext2)
    assert r2["details"]["inception"]["real_features"].startswith("from the cache")
    assert ext2.calls == 3 and r2["metrics"]["fid"] == m["fid"] and r2["metrics"]["kid"] == m["kid"]
    # IS is reported as unavailable (not silently 0) when the network has no classifier
    r3 = evaluate(tr, aligned_data, "test", tmp_path / "ev3", metrics="is", feature_extractor=TinyExtractor(False))
    assert r3["metrics"]["is"] is None and "no classifier" in r3["details"]["is"]["reason"]


def test_fid_against_itself_through_evaluate(run: Path, aligned_data: Path, tmp_path: Path) -> None:
    """--outputs pointing at the real targets (as 8-bit PNGs): FID ~ 0, L1 ~ 0."""
    tr = Translator.from_checkpoint(run, device="cpu")
    first = evaluate(tr, aligned_data, "test", tmp_path / "ev", metrics="l1", feature_extractor=TinyExtractor())
    r = evaluate(None, aligned_data, "test", tmp_path / "ev_real", metrics="l1,psnr,fid",
                 outputs_dir=tmp_path / "ev" / "targets", data_cfg=tr.cfg.data, feature_extractor=TinyExtractor())
    assert r["metrics"]["l1"] < 1 / 255 and abs(r["metrics"]["fid"]) < 1e-4  # 8-bit PNGs of the targets
    # the generated images, read back from their PNGs, score as they did in memory (8-bit rounding)
    again = evaluate(None, aligned_data, "test", tmp_path / "ev_out", metrics="l1", outputs_dir=tmp_path / "ev" / "outputs",
                     data_cfg=tr.cfg.data)
    assert again["metrics"]["l1"] == pytest.approx(first["metrics"]["l1"], abs=3e-3)
    with pytest.raises(FileNotFoundError, match="no generated image"):
        evaluate(None, aligned_data, "train", tmp_path / "x", metrics="l1", outputs_dir=tmp_path / "ev" / "outputs",
                 data_cfg=tr.cfg.data)


def test_segmentation_score_through_evaluate(run: Path, aligned_data: Path, tmp_path: Path) -> None:
    # the segmenter's tiny sizes, with its own log and checkpoint intervals
    cfg = build_segmenter_config(aligned_data, ["model.palette=kmeans:4"] + tiny_overrides(
        "segmenter", log_every=None, save_every=None, max_steps=2))
    Trainer(cfg, tmp_path / "seg", progress=False).fit()
    tr = Translator.from_checkpoint(run, device="cpu")
    r = evaluate(tr, aligned_data, "test", tmp_path / "ev", metrics="l1,seg", segmenter=tmp_path / "seg")
    m = r["metrics"]
    for k in ("seg_acc", "seg_class_acc", "seg_miou", "seg_real_acc", "seg_real_class_acc", "seg_real_miou"):
        assert m[k] is not None and 0 <= m[k] <= 1, k
    seg = r["details"]["seg"]
    assert seg["classes"] == 4 and seg["images"] == 3 and seg["generated"]["pixels"] == 3 * 32 * 32
    assert "Segmentation score" in (tmp_path / "ev" / "index.html").read_text()
    with pytest.raises(ValueError, match="segmenter"):
        evaluate(tr, aligned_data, "test", tmp_path / "ev2", metrics="seg")


def test_cli_evaluate_and_compare(own_run: Path, aligned_data: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["evaluate", str(own_run), "--data", str(aligned_data), "--metrics", "l1,psnr,ssim",
                              "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert (own_run / "eval_test" / "metrics.json").is_file() and "psnr" in res.output and "higher is better" in res.output
    other = tmp_path / "other"
    res = runner.invoke(app, ["evaluate", str(own_run), "--data", str(aligned_data), "--metrics", "l1,psnr",
                              "--mode", "eval", "--out", str(other), "--max-items", "2"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["compare", str(own_run), str(other / "metrics.json"), "--label", "paper", "--label", "eval",
                              "--out", str(tmp_path / "cmp.html")])
    assert res.exit_code == 0, res.output
    assert "paper" in res.output and "eval" in res.output and "psnr" in res.output
    assert "different numbers of images" in res.output
    page = (tmp_path / "cmp.html").read_text()
    assert "<table>" in page and page.count("<img") >= 4  # 2 shared samples: input, 2 outputs, target
    res = runner.invoke(app, ["evaluate", str(own_run / "checkpoints" / "step_00000002"), "--data", str(aligned_data),
                              "--metrics", "l1"])
    assert res.exit_code == 0 and (own_run / "eval_test_step_00000002" / "index.html").is_file(), res.output
    res = runner.invoke(app, ["evaluate", str(own_run), "--data", str(aligned_data), "--metrics", "nope"])
    assert res.exit_code == 2 and "unknown metric 'nope'" in res.output
    res = runner.invoke(app, ["evaluate", str(own_run), "--data", str(aligned_data), "--metrics", "seg"])
    assert res.exit_code == 2 and "--segmenter" in res.output
    res = runner.invoke(app, ["compare", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "no metrics.json" in res.output


def test_missing_weights_stop_with_the_fetch_command(run: Path, aligned_data: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRGAN_WEIGHTS", str(tmp_path / "no-weights"))
    res = runner.invoke(app, ["evaluate", str(run), "--data", str(aligned_data), "--metrics", "fid"])
    assert res.exit_code == 2 and "pairgan weights fetch inception-fid" in res.output


def test_evaluate_split_keeps_its_contract(run: Path, aligned_data: Path, tmp_path: Path) -> None:
    r = evaluate_split(Translator.from_checkpoint(run, device="cpu"), aligned_data, "test", tmp_path / "res")
    assert set(r["metrics"]) == {"l1", "psnr", "ssim", "count"} and r["metrics"]["count"] == 3
    for key in ("split", "data", "checkpoint", "mode", "metrics", "protocol", "protocol_version"):
        assert key in r
    assert (tmp_path / "res" / "index.html").read_text().count("<tr>") == 1 + 3  # the gallery, as before
    assert (tmp_path / "res" / "report.html").is_file() and (tmp_path / "res" / "outputs").is_dir()
