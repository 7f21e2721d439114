"""The feature-network discriminator (pairgan.nets.feature_d): registered and selectable, its VGG16
backbone frozen (no gradient, not optimised, not saved, unchanged by steps), its heads trained;
pix2pix and pix2pixHD train with it and with DiffAugment."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import load_file

from pairgan.config import DataConfig, TrainConfig, build_config
from pairgan.errors import ConfigError
from pairgan.methods.base import StepContext
from pairgan.methods.build import build_method
from pairgan.methods.pix2pix import Pix2Pix, Pix2PixConfig
from pairgan.methods.pix2pixhd import Pix2PixHD, Pix2PixHDConfig
from pairgan.nets.feature_d import FeatureDiscriminator
from pairgan.registry import available
from tests.helpers import tiny_model_options, tiny_overrides


@pytest.fixture
def vgg16(random_vgg_weights: Callable[[str], Path]) -> Path:
    return random_vgg_weights("vgg16")


def _images(n: int = 2, c: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g) * 2 - 1


def _backbone_matches_file(d: FeatureDiscriminator, path: Path) -> bool:
    saved = load_file(str(path))
    return all(torch.equal(v, saved[f"features.{k}"]) for k, v in d.backbone.features.state_dict().items())


def test_registered_and_selectable_from_the_config(vgg16: Path):
    assert "features" in available("discriminator")
    cfg = build_config("pix2pix", tiny_overrides("pix2pix", data=False, loop=False)
                       + ["model.discriminator=features", f"model.d_backbone_weights={vgg16}"])
    m = build_method(cfg, training=True)
    assert isinstance(m.nets["D"], FeatureDiscriminator)
    assert len(m.nets["D"].heads) == 3


def test_backbone_is_frozen_and_outside_parameters_and_checkpoints(vgg16: Path):
    torch.manual_seed(0)
    d = FeatureDiscriminator(6, ndf=8, image_nc=3, backbone_weights=vgg16)
    d.train()
    assert not d.backbone.training
    assert all(not p.requires_grad for p in d.backbone.parameters())
    own = {id(p) for p in d.parameters()}
    assert not own & {id(p) for p in d.backbone.parameters()}  # never in D's optimiser
    assert all(k.startswith("heads.") for k in d.state_dict())  # never in a checkpoint
    fake = _images().requires_grad_(True)
    outs = d(torch.cat([_images(seed=1), fake], 1))
    assert [len(o) for o in outs] == [2, 2, 2] and [o[-1].shape[-1] for o in outs] == [16, 8, 4]
    sum(o[-1].mean() for o in outs).backward()
    assert all(p.grad is None for p in d.backbone.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.heads.parameters())
    assert fake.grad is not None and fake.grad.abs().sum() > 0  # G's gradient passes through the backbone


def test_the_condition_changes_the_scores(vgg16: Path):
    torch.manual_seed(0)
    d = FeatureDiscriminator(4, ndf=8, image_nc=3, backbone_weights=vgg16)
    image = _images()
    a = d(torch.cat([torch.zeros(2, 1, 32, 32), image], 1))
    b = d(torch.cat([torch.ones(2, 1, 32, 32), image], 1))
    assert not torch.equal(a[0][-1], b[0][-1])


def test_moves_with_the_module(vgg16: Path):
    d = FeatureDiscriminator(6, ndf=8, backbone_weights=vgg16).to(torch.float64)
    assert d.backbone.features[0].weight.dtype == torch.float64
    assert d(torch.cat([_images(), _images()], 1).double())[0][-1].dtype == torch.float64


def _pix2pix(vgg16: Path, **kw) -> Pix2Pix:
    torch.manual_seed(0)
    opts = tiny_model_options("pix2pix")
    return Pix2Pix(Pix2PixConfig(**{**opts, "discriminator": "features", "d_backbone_weights": str(vgg16), **kw}),
                   DataConfig())


@pytest.mark.parametrize("augment", ["none", "diffaug"])
def test_pix2pix_trains_two_steps_heads_learn_backbone_does_not(vgg16: Path, augment: str):
    m = _pix2pix(vgg16, d_augment=augment, d_augment_target=0.6 if augment == "diffaug" else 0.0)
    d = m.nets["D"]
    heads = [p.detach().clone() for p in d.heads.parameters()]
    ctx = StepContext(m.configure_optimizers(TrainConfig()), torch.device("cpu"))
    for step in range(2):
        losses = m.train_step({"A": _images(seed=step), "B": _images(seed=10 + step)}, ctx)
        assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert _backbone_matches_file(d, vgg16)
    assert all(p.grad is None for p in d.backbone.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(heads, d.heads.parameters()))
    assert ("D_augment_p" in losses) == (augment == "diffaug")


def test_pix2pixhd_uses_it_with_diffaug(vgg16: Path):
    torch.manual_seed(0)
    opts = tiny_model_options("pix2pixhd")
    m = Pix2PixHD(Pix2PixHDConfig(**{**opts, "discriminator": "features", "d_backbone_weights": str(vgg16),
                                     "d_augment": "diffaug"}), DataConfig(label_nc=5, instance=True))
    assert isinstance(m.nets["D"], FeatureDiscriminator) and m.nets["D"].condition_nc == 6
    ids = torch.randint(0, 5, (2, 1, 32, 32))
    batch = {"label": ids, "inst": ids.clone(), "image": _images()}
    ctx = StepContext(m.configure_optimizers(TrainConfig()), torch.device("cpu"))
    losses = m.train_step(batch, ctx)
    assert losses["G_GAN_Feat"] > 0 and "D_augment_p" in losses
    assert _backbone_matches_file(m.nets["D"], vgg16)


def test_pix2pixhd_refuses_a_single_scale_discriminator():
    opts = tiny_model_options("pix2pixhd")
    with pytest.raises(ConfigError, match="model.discriminator"):
        Pix2PixHD(Pix2PixHDConfig(**{**opts, "discriminator": "pixel"}), DataConfig(label_nc=5))
