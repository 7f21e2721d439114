"""Validation during training: it changes no weight, and the best checkpoint follows the metric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pairgan.config import build_config
from pairgan.infer import Translator
from pairgan.train.trainer import Trainer
from pairgan.train.validation import Validator
from tests.helpers import tiny_overrides


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRGAN_CACHE", str(tmp_path / "cache"))


def test_validation_keeps_training_bitwise_and_the_best(aligned_data: Path, tmp_path: Path) -> None:
    """pix2pix with batch norm and dropout (paper-mode inference): validating every step must not
    change a single weight; the best checkpoint and best.json follow the chosen metric."""
    base = tiny_overrides("pix2pix") + ["train.max_steps=4", "train.deterministic=true"]
    plain = build_config("pix2pix", base, data_path=str(aligned_data))
    Trainer(plain, tmp_path / "plain", progress=False).fit()
    val = build_config("pix2pix", base + ["train.val_every=1", "train.val_metrics=l1,psnr,ssim",
                                          "train.best_metric=-l1"], data_path=str(aligned_data))
    Trainer(val, tmp_path / "val", progress=False).fit()
    for name in ("G", "D"):
        a = load_file(str(tmp_path / "plain" / "checkpoints" / "step_00000004" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "val" / "checkpoints" / "step_00000004" / f"{name}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    history = [json.loads(x) for x in (tmp_path / "val" / "history.jsonl").read_text().splitlines()]
    vals = [h for h in history if "val/l1" in h]
    assert [h["step"] for h in vals] == [1, 2, 3, 4] and all("val/psnr" in h for h in vals)
    best = json.loads((tmp_path / "val" / "best.json").read_text())
    l1s = {h["step"]: h["val/l1"] for h in vals}
    assert best["metric"] == "l1" and best["direction"] == "min" and best["value"] == min(l1s.values())
    assert best["step"] == min(l1s, key=l1s.get)
    assert (tmp_path / "val" / "checkpoints" / "best" / "G.safetensors").is_file()
    assert Translator.from_checkpoint(tmp_path / "val" / "checkpoints" / "best", device="cpu") is not None
    # resuming keeps the best value found so far
    v = Validator(val, Translator.from_checkpoint(tmp_path / "val").method, torch.device("cpu"), tmp_path / "val",
                  resume=True)
    assert v.best_value == best["value"]
