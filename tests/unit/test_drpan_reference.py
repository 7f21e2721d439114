"""DRPAN's reference options: the ResNet G's padding and affine norms, the ECCV code's box mapping,
and the drpan / drpan-reference / drpan-pix2pixhd presets (issue 17 item 6)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pairgan.config import build_config
from pairgan.errors import ConfigError
from pairgan.methods.drpan import DRPAN
from pairgan.nets.drpan import propose_regions
from pairgan.nets.resnet import ResnetGenerator

#: pix2pix's 70x70 PatchGAN: (kernel, stride, padding) per layer; 30x30 scores at 256x256.
PATCHGAN_70 = [(4, 2, 1), (4, 2, 1), (4, 2, 1), (4, 1, 1), (4, 1, 1)]


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_zero_padding_pads_every_size_keeping_conv_with_zeros() -> None:
    G = ResnetGenerator(3, 3, ngf=8, n_blocks=2, norm="instance", padding="zero")
    assert not [m for m in G.modules() if isinstance(m, (nn.ReflectionPad2d, nn.ReplicationPad2d))]
    stride1 = [m for m in G.modules() if type(m) is nn.Conv2d and m.stride == (1, 1)]
    assert [(m.kernel_size[0], m.padding[0]) for m in stride1] == [(7, 3)] + [(3, 1)] * 4 + [(7, 3)]
    assert G(torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_reflect_padding_is_the_default_everywhere() -> None:
    G = ResnetGenerator(3, 3, ngf=8, n_blocks=2, norm="instance")
    pads = [m.padding[0] for m in G.modules() if isinstance(m, nn.ReflectionPad2d)]
    assert pads == [3] + [1] * 4 + [3]
    assert all(m.padding == (0, 0) for m in G.modules() if type(m) is nn.Conv2d and m.stride == (1, 1))


def test_affine_instance_norm_parameter_count() -> None:
    plain = ResnetGenerator(3, 3, ngf=64, n_blocks=9, norm="instance")
    affine = ResnetGenerator(3, 3, ngf=64, n_blocks=9, norm="instance", norm_affine=True, padding="zero")
    norms = [m for m in affine.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(m.affine for m in norms)
    assert not any(m.affine for m in plain.modules() if isinstance(m, nn.InstanceNorm2d))
    # norm channels: 64 + 128 + 256 + 9 x 2 x 256 + 128 + 64 = 5248, a scale and a shift each
    assert n_params(plain) == 11_378_179
    assert n_params(affine) == 11_378_179 + 2 * 5248 == 11_388_675


def score_map_with(best: tuple[int, int], worst: tuple[int, int]) -> torch.Tensor:
    score = torch.zeros(1, 1, 30, 30)
    score[0, 0, best[0], best[1]] = 5.0
    score[0, 0, worst[0], worst[1]] = -5.0
    return score


def test_box_of_a_known_score_map_in_both_modes() -> None:
    score = score_map_with(best=(5, 10), worst=(29, 0))
    size = (256, 256)
    # the ECCV code: stride (256 - 70) // 30 = 6, offset 70, a 70 px box (clipped at the far edge)
    assert propose_regions(score, 1, PATCHGAN_70, size, "max", "reference").tolist() == [[100, 130, 170, 200]]
    assert propose_regions(score, 1, PATCHGAN_70, size, "min", "reference").tolist() == [[244, 70, 256, 140]]
    # the receptive field: cell i sees [-23 + 8 i, -23 + 8 i + 70), clipped
    assert propose_regions(score, 1, PATCHGAN_70, size, "max", "receptive").tolist() == [[17, 57, 87, 127]]
    assert propose_regions(score, 1, PATCHGAN_70, size, "min", "receptive").tolist() == [[209, 0, 256, 47]]
    with pytest.raises(ValueError, match="box must be one of"):
        propose_regions(score, 1, PATCHGAN_70, size, "max", "paper")


def test_drpan_preset_follows_the_reference_code() -> None:
    cfg = build_config("drpan")
    d, m = cfg.data, cfg.model
    assert (d.preprocess, d.load_size, d.crop_size, d.flip) == ("resize_and_crop", 256, 256, False)
    assert (m.generator, m.n_blocks, m.norm, m.padding, m.norm_affine, m.dropout) == (
        "resnet", 9, "instance", "zero", True, True)
    assert (m.select, m.box) == ("min", "receptive")
    G = DRPAN(m, d, training=False).nets["G"]
    assert not any(isinstance(x, nn.ReflectionPad2d) for x in G.modules())
    assert n_params(G) == 11_388_675


def test_drpan_reference_preset_and_box_option() -> None:
    cfg = build_config("drpan-reference")
    assert (cfg.model.select, cfg.model.box, cfg.model.padding, cfg.model.norm_affine) == (
        "max", "reference", "zero", True)
    assert build_config("drpan").model.box == "receptive"
    with pytest.raises(ConfigError, match="model.box"):
        build_config("drpan", ["model.box=paper"])
    with pytest.raises(ConfigError, match="model.padding"):
        build_config("drpan", ["model.padding=replicate"])


def test_drpan_hd_renamed_and_demo_keeps_its_augmentation() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'drpan-hd'"):
        build_config("drpan-hd")
    hd = build_config("drpan-pix2pixhd")
    assert hd.model.base == "pix2pixhd" and hd.model.window == 9
    demo = build_config("drpan-demo")
    assert demo.data.flip and (demo.data.load_size, demo.data.crop_size) == (144, 128)
    assert demo.model.generator == "unet" and demo.model.padding == "reflect" and not demo.model.norm_affine
