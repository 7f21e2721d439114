"""Presets billed as a reference's recipe carry the reference's values (issue 17 item 4)."""

from __future__ import annotations

import pytest

from pairgan.config import build_config


@pytest.mark.parametrize("preset", ["pix2pixhd-512", "pix2pixhd-1024", "drpan-pix2pixhd"])
def test_pix2pixhd_reference_presets_feed_vgg_unnormalised(preset: str) -> None:
    # NVIDIA/pix2pixHD's VGGLoss takes the generator's [-1, 1] output as it is (no ImageNet mean/std).
    cfg = build_config(preset)
    assert cfg.model.perceptual == "vgg19"
    assert cfg.model.vgg_normalize is False


def test_vgg_normalize_stays_available() -> None:
    cfg = build_config("pix2pixhd-512", ["model.vgg_normalize=true"])
    assert cfg.model.vgg_normalize is True
