"""Validation settings: the best-metric convention, config errors, a missing validation split."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from pairgan.config import build_config
from pairgan.errors import ConfigError
from pairgan.methods.build import build_method
from pairgan.train.trainer import Trainer
from pairgan.train.validation import Validator, parse_best_metric
from tests.helpers import tiny_overrides

TINY = tiny_overrides("pix2pix")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRGAN_CACHE", str(tmp_path / "cache"))


def test_best_metric_convention() -> None:
    assert parse_best_metric("") is None
    assert parse_best_metric("fid") == ("fid", False) and parse_best_metric("psnr") == ("psnr", True)
    assert parse_best_metric("+l1") == ("l1", True) and parse_best_metric("-ssim") == ("ssim", False)
    with pytest.raises(ConfigError, match=r"\+mine"):
        parse_best_metric("mine")


def test_validation_config_errors(aligned_data: Path, tmp_path: Path) -> None:
    cfg = build_config("pix2pix", TINY + ["train.max_steps=1", "train.val_every=1",
                                          "train.val_metrics=l1", "train.best_metric=psnr"],
                       data_path=str(aligned_data))
    with pytest.raises(ConfigError, match="not computed by train.val_metrics"):
        Trainer(cfg, tmp_path / "r", progress=False).fit()
    cfg = build_config("pix2pix", TINY + ["train.max_steps=1", "train.val_every=1",
                                          "train.val_metrics=l1,bogus"], data_path=str(aligned_data))
    with pytest.raises(ConfigError, match="unknown metric 'bogus'"):
        Trainer(cfg, tmp_path / "r2", progress=False).fit()
    cfg = build_config("pix2pix", TINY + ["train.max_steps=1", "train.val_every=1",
                                          "train.val_metrics=l1,seg"], data_path=str(aligned_data))
    with pytest.raises(ConfigError, match="segmenter"):
        Trainer(cfg, tmp_path / "r3", progress=False).fit()


def test_validation_without_its_split_logs_a_warning(aligned_data: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    cfg = build_config("pix2pix", TINY + ["train.val_every=1", "train.val_metrics=l1",
                                          "data.val_split=nope"], data_path=str(aligned_data))
    with caplog.at_level(logging.WARNING, logger="pairgan.train.validation"):
        v = Validator(cfg, build_method(cfg, training=True), torch.device("cpu"), tmp_path / "run")
    assert not v.enabled and "no 'nope' split" in caplog.text and v(1, 0, None) is False
