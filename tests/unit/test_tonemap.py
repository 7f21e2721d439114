"""The vivid target transform (CRN's optional_preprocessing; issue 17 item 2)."""

from __future__ import annotations

import numpy as np
import pytest

from pairgan.config import build_config
from pairgan.data.tonemap import (
    _solve_lines,
    apply_target_transform,
    edge_preserving_bases,
    lab_to_srgb,
    srgb_to_lab,
    vivid,
)
from pairgan.errors import ConfigError


def chroma(rgb: np.ndarray) -> float:
    lab = srgb_to_lab(rgb)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


def test_lab_round_trip() -> None:
    rgb = np.random.default_rng(0).random((6, 7, 3))
    np.testing.assert_allclose(lab_to_srgb(srgb_to_lab(rgb)), rgb, atol=1e-9)
    np.testing.assert_allclose(srgb_to_lab(np.ones((1, 1, 3)))[0, 0], [100, 0, 0], atol=1e-3)


def test_line_solver_is_the_exact_1d_wls() -> None:
    rng = np.random.default_rng(1)
    f, c = rng.random((9, 3)), rng.random((8, 3)) * 50
    u = _solve_lines(f, c)
    for j in range(3):  # the dense system: (I + D^T diag(c) D) u = f
        d = np.diff(np.eye(9), axis=0)
        np.testing.assert_allclose((np.eye(9) + d.T @ np.diag(c[:, j]) @ d) @ u[:, j], f[:, j], atol=1e-9)


def test_bases_smooth_flat_regions_and_keep_edges() -> None:
    rng = np.random.default_rng(2)
    L = np.full((32, 48), 30.0)
    L[:, 24:] = 70.0
    noisy = L + rng.normal(0, 1.0, L.shape)
    fine, coarse = edge_preserving_bases(noisy)
    for base in (fine, coarse):
        assert base[:, 2:20].std() < 0.5 * noisy[:, 2:20].std()  # noise smoothed away
        assert base[:, 25].mean() - base[:, 22].mean() > 35  # the step kept


def known_image() -> np.ndarray:
    h, w = 48, 64
    y, x = np.mgrid[0:h, 0:w] / np.array([h - 1, w - 1])[:, None, None]
    return np.stack([0.2 + 0.6 * x, 0.3 + 0.3 * y, 0.6 - 0.4 * x * y], -1)


def test_vivid_on_a_known_image() -> None:
    img = known_image()
    out = vivid(img)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.abs(out - img).max() > 0.05  # not the identity
    # saturation up: LAB chroma over the gamma-0.75 photo the tone maps start from (the gamma
    # itself lifts the shadows and lowers chroma; measured net of it, these colours end a little
    # below the original photo's chroma)
    assert chroma(out) > 1.04 * chroma(img ** 0.75)


def test_vivid_is_monotone_in_luminance() -> None:
    levels = np.linspace(0.05, 0.95, 10)
    lightness = [srgb_to_lab(vivid(np.full((8, 8, 3), g)))[4, 4, 0] for g in levels]
    assert np.all(np.diff(lightness) > 0)
    ramp = np.broadcast_to(np.linspace(0.05, 0.95, 80)[None, :, None], (24, 80, 3)).copy()
    row = srgb_to_lab(vivid(ramp))[12, :, 0]
    assert np.all(np.diff(row) >= -1e-6) and row[-1] - row[0] > 80  # flat only where it reaches white


def test_apply_target_transform_and_config() -> None:
    img = known_image().astype(np.float32)
    assert apply_target_transform(img, "none") is img
    np.testing.assert_array_equal(apply_target_transform(img, "vivid"), vivid(img))
    with pytest.raises(ValueError, match="colour image"):
        vivid(img[..., :1])
    with pytest.raises(ConfigError, match="output_nc=3"):
        build_config("crn-512", ["data.output_nc=1"])
