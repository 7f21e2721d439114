"""Generators, discriminators and their blocks: sizes against the pix2pix reference, shapes, init."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pairgan.nets.blocks import init_weights, norm_layer, uses_bias
from pairgan.nets.patchgan import PatchDiscriminator, PixelDiscriminator, receptive_field
from pairgan.nets.resnet import ResnetGenerator
from pairgan.nets.unet import UnetGenerator, UnetLevel, up_convolution
from pairgan.registry import create, lookup


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def convs(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


# --------------------------------------------------------------------------- parameter counts
# Figures of the reference models (junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py).


def test_unet_256_parameter_count() -> None:
    assert n_params(UnetGenerator(3, 3, ngf=64, num_downs=8, norm="batch")) == 54_413_955


def test_unet_128_parameter_count() -> None:
    # unet_128 is unet_256 less one 8*ngf level: a 512->512 4x4 down conv, a 1024->512 4x4 up
    # conv and two 512-channel batch norms (scale + shift each), no conv biases.
    one_level = 512 * 512 * 16 + 1024 * 512 * 16 + 2 * 2 * 512
    assert one_level == 12_584_960
    assert n_params(UnetGenerator(3, 3, ngf=64, num_downs=7, norm="batch")) == 54_413_955 - one_level
    assert 54_413_955 - one_level == 41_828_995


def _resnet_reference_count(n_blocks: int, norm: str, ngf: int = 64, nc: int = 3) -> int:
    """The reference ResnetGenerator's size, counted layer by layer from its definition."""
    weights = (
        nc * ngf * 49  # c7s1-ngf
        + ngf * 2 * ngf * 9 + 2 * ngf * 4 * ngf * 9  # two stride-2 3x3 downs
        + n_blocks * 2 * (4 * ngf) ** 2 * 9  # two 3x3 convs per residual block
        + 4 * ngf * 2 * ngf * 9 + 2 * ngf * ngf * 9  # two transposed 3x3 ups
        + ngf * nc * 49  # c7s1-output
    )
    normed_widths = [ngf, 2 * ngf, 4 * ngf] + [4 * ngf] * (2 * n_blocks) + [2 * ngf, ngf]
    # Batch norm: scale and shift per channel, convs without bias. Instance norm (affine=False):
    # no norm parameters, convs with bias. The last conv always has its bias.
    per_channel = 2 if norm == "batch" else 1
    return weights + per_channel * sum(normed_widths) + nc


def test_resnet_9blocks_parameter_count() -> None:
    assert _resnet_reference_count(9, "batch") == 11_383_427
    assert _resnet_reference_count(9, "instance") == 11_378_179
    assert n_params(ResnetGenerator(3, 3, ngf=64, n_blocks=9, norm="batch")) == 11_383_427
    assert n_params(ResnetGenerator(3, 3, ngf=64, n_blocks=9, norm="instance")) == 11_378_179
    resnet_6blocks = ResnetGenerator(3, 3, ngf=64, n_blocks=6, norm="batch")
    assert n_params(resnet_6blocks) == _resnet_reference_count(6, "batch")


def test_patchgan_70_parameter_count() -> None:
    expected = (
        6 * 64 * 16 + 64  # first conv, biased, no norm
        + 64 * 128 * 16 + 2 * 128
        + 128 * 256 * 16 + 2 * 256
        + 256 * 512 * 16 + 2 * 512  # stride-1 conv
        + 512 * 16 + 1  # score conv, biased
    )
    assert expected == 2_768_705
    assert n_params(PatchDiscriminator(6, ndf=64, n_layers=3, norm="batch")) == 2_768_705


def test_pixelgan_parameter_count() -> None:
    # As the reference: first conv biased, the next two biased only without batch norm.
    assert n_params(PixelDiscriminator(6, ndf=64, norm="batch")) == 6 * 64 + 64 + 64 * 128 + 2 * 128 + 128
    assert n_params(PixelDiscriminator(6, ndf=64, norm="instance")) == 6 * 64 + 64 + 64 * 128 + 128 + 128 + 1


# --------------------------------------------------------------------------- blocks


def test_norm_layer_kinds() -> None:
    bn = norm_layer("batch")(5)
    assert isinstance(bn, nn.BatchNorm2d) and bn.affine and bn.track_running_stats
    inorm = norm_layer("instance")(5)
    assert isinstance(inorm, nn.InstanceNorm2d)
    assert not inorm.affine and not inorm.track_running_stats
    assert isinstance(norm_layer("none")(5), nn.Identity)
    assert [uses_bias(k) for k in ("batch", "instance", "none")] == [False, True, True]
    with pytest.raises(ValueError, match="batch, instance, none"):
        norm_layer("group")
    with pytest.raises(ValueError):
        uses_bias("group")


def test_init_weights_statistics() -> None:
    torch.manual_seed(0)
    net = init_weights(UnetGenerator(3, 3, ngf=16, num_downs=5, norm="batch"), "normal", 0.02)
    weights = torch.cat([m.weight.flatten() for m in convs(net)])
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)
    assert all(torch.all(m.bias == 0) for m in convs(net) if m.bias is not None)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    scales = torch.cat([m.weight for m in bns])
    assert scales.mean().item() == pytest.approx(1.0, abs=0.01)
    assert scales.std().item() == pytest.approx(0.02, rel=0.25)
    assert all(torch.all(m.bias == 0) for m in bns)


@pytest.mark.parametrize("init_type", ["xavier", "kaiming", "orthogonal"])
def test_init_weights_other_types(init_type: str) -> None:
    net = init_weights(PatchDiscriminator(3, ndf=8, n_layers=2, norm="instance"), init_type)
    assert all(torch.isfinite(p).all() and torch.all(m.bias == 0) for m in convs(net) for p in [m.weight])


def test_init_weights_rejects_unknown_type() -> None:
    with pytest.raises(ValueError, match="orthogonal"):
        init_weights(nn.Conv2d(1, 1, 1), "uniform")


# --------------------------------------------------------------------------- U-Net


@pytest.mark.parametrize("input_nc, output_nc", [(1, 4), (4, 1)])
def test_unet_forward_shape(input_nc: int, output_nc: int) -> None:
    net = UnetGenerator(input_nc, output_nc, ngf=4, num_downs=5)
    assert net.size_multiple == 32
    out = net(torch.randn(2, input_nc, 32, 32))
    assert out.shape == (2, output_nc, 32, 32)
    assert out.abs().max() <= 1.0


def test_unet_deeper_forward_shape() -> None:
    net = UnetGenerator(3, 3, ngf=2, num_downs=6, norm="instance").eval()
    assert net.size_multiple == 64
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)


@pytest.mark.parametrize("num_downs", [5, 6, 7, 8])
def test_unet_dropout_in_inner_8ngf_levels(num_downs: int) -> None:
    ngf = 2
    net = UnetGenerator(3, 3, ngf=ngf, num_downs=num_downs)
    levels = [m for m in net.modules() if isinstance(m, UnetLevel)]
    assert len(levels) == num_downs
    with_dropout = [lvl for lvl in levels if any(isinstance(m, nn.Dropout) for m in lvl.up)]
    # Outside in, levels are (outer, inner) = (out, ngf), (ngf, 2ngf), (2ngf, 4ngf), (4ngf, 8ngf),
    # then the (8ngf, 8ngf) ones; the reference drops out in all of those but the innermost.
    assert len(with_dropout) == num_downs - 5
    assert with_dropout == levels[4:-1]
    for lvl in with_dropout:
        assert lvl.up[-1].p == 0.5 and lvl.up[1].out_channels == 8 * ngf
    without = UnetGenerator(3, 3, ngf=ngf, num_downs=num_downs, dropout=False)
    assert not any(isinstance(m, nn.Dropout) for m in without.modules())


def test_unet_levels_match_reference_layout() -> None:
    net = UnetGenerator(3, 2, ngf=4, num_downs=6, norm="batch")
    outermost = net.model
    innermost = [m for m in net.modules() if isinstance(m, UnetLevel)][-1]
    # Outermost: image goes straight into the conv (no activation, no norm); up ends in Tanh.
    assert isinstance(outermost.pre_activation, nn.Identity)
    assert [type(m) for m in outermost.down] == [nn.Conv2d]
    assert [type(m) for m in outermost.up] == [nn.ReLU, nn.ConvTranspose2d, nn.Tanh]
    # Innermost: no norm on its down conv, but norm after its up conv.
    assert [type(m) for m in innermost.down] == [nn.Conv2d]
    assert [type(m) for m in innermost.up] == [nn.ReLU, nn.ConvTranspose2d, nn.BatchNorm2d]
    for lvl in (m for m in net.modules() if isinstance(m, UnetLevel)):
        for conv in [*lvl.down, *lvl.up]:
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
                assert conv.kernel_size == (4, 4) and conv.stride == (2, 2) and conv.padding == (1, 1)
    assert isinstance(innermost.pre_activation, nn.LeakyReLU)
    assert innermost.pre_activation.negative_slope == 0.2


def test_unet_skip_carries_activated_input() -> None:
    # The reference's in-place LeakyReLU makes the skip concat carry activated features.
    level = UnetLevel(4, 8, inner=None, norm="none")
    x = torch.randn(1, 4, 8, 8)
    out = level(x)
    assert out.shape == (1, 8, 8, 8)
    assert torch.equal(out[:, :4], nn.functional.leaky_relu(x, 0.2))


@pytest.mark.parametrize("norm, expected_biased", [("batch", 1), ("instance", 10), ("none", 10)])
def test_unet_conv_bias_only_without_batch_norm(norm: str, expected_biased: int) -> None:
    net = UnetGenerator(3, 3, ngf=2, num_downs=5, norm=norm)
    biased = [m for m in convs(net) if m.bias is not None]
    assert len(convs(net)) == 10
    assert len(biased) == expected_biased
    # The final up conv (before Tanh) always keeps its bias.
    assert net.model.up[1].bias is not None


def test_unet_rejects_shallow_depth() -> None:
    with pytest.raises(ValueError):
        UnetGenerator(3, 3, num_downs=4)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_unet_resize_upsampling_shape_and_layers(mode: str) -> None:
    g = UnetGenerator(3, 3, ngf=8, num_downs=5, upsample=mode)
    assert g(torch.randn(2, 3, 32, 32)).shape == (2, 3, 32, 32)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in g.modules())
    assert sum(isinstance(m, nn.Upsample) for m in g.modules()) == 5


def test_unet_default_upsampling_keeps_reference_weights_layout() -> None:
    # Checkpoints written before the option existed must still load.
    default, explicit = UnetGenerator(3, 3, ngf=8, num_downs=5), UnetGenerator(3, 3, ngf=8, num_downs=5, upsample="transpose")
    assert list(default.state_dict()) == list(explicit.state_dict())
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in default.modules()) == 5


def test_resize_upsampling_has_no_checkerboard() -> None:
    # A constant map through each up layer with the same random weights: each output pixel of the
    # transposed convolution sums a different subset of kernel taps (by its position mod 2), a
    # 2x2-periodic pattern; resize + convolution gives a flat interior whatever the weights.
    x = torch.ones(1, 1, 8, 8)
    interiors = {}
    for mode in ("transpose", "nearest", "bilinear"):
        torch.manual_seed(0)
        layers = nn.Sequential(*up_convolution(1, 1, mode, bias=False))
        with torch.no_grad():
            interiors[mode] = layers(x)[0, 0, 2:-2, 2:-2]
    assert interiors["transpose"].std() > 0.01
    for mode in ("nearest", "bilinear"):
        assert torch.allclose(interiors[mode], interiors[mode][0, 0].expand_as(interiors[mode]))


def test_unet_rejects_unknown_upsampling() -> None:
    with pytest.raises(ValueError, match="upsample"):
        UnetGenerator(3, 3, ngf=8, num_downs=5, upsample="pixelshuffle")


# --------------------------------------------------------------------------- ResNet


@pytest.mark.parametrize("padding", ["reflect", "replicate", "zero"])
def test_resnet_forward_shape(padding: str) -> None:
    net = ResnetGenerator(2, 3, ngf=4, n_blocks=2, padding=padding, dropout=True)
    assert net.size_multiple == 4
    out = net(torch.randn(2, 2, 16, 16))
    assert out.shape == (2, 3, 16, 16)
    assert out.abs().max() <= 1.0
    assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == 2


def test_resnet_conv_bias_only_without_batch_norm() -> None:
    batch = ResnetGenerator(3, 3, ngf=4, n_blocks=2, norm="batch")
    assert [m.bias is not None for m in convs(batch)] == [False] * 9 + [True]
    instance = ResnetGenerator(3, 3, ngf=4, n_blocks=2, norm="instance")
    assert all(m.bias is not None for m in convs(instance))
    ups = [m for m in convs(batch) if isinstance(m, nn.ConvTranspose2d)]
    assert [u.output_padding for u in ups] == [(1, 1), (1, 1)]


def test_resnet_rejects_unknown_padding() -> None:
    with pytest.raises(ValueError, match="reflect"):
        ResnetGenerator(3, 3, ngf=4, n_blocks=1, padding="circular")


# --------------------------------------------------------------------------- discriminators


@pytest.mark.parametrize("n_layers, field", [(1, 16), (3, 70), (5, 286)])
def test_patchgan_receptive_field(n_layers: int, field: int) -> None:
    geometry = PatchDiscriminator(6, ndf=2, n_layers=n_layers).conv_geometry()
    assert len(geometry) == n_layers + 2
    assert [s for _, s, _ in geometry] == [2] * n_layers + [1, 1]
    size, jump, _ = receptive_field(geometry)
    assert size == field
    assert jump == 2**n_layers


def test_patchgan_70_map_is_30x30_at_256() -> None:
    net = PatchDiscriminator(6, ndf=2, n_layers=3)
    size = 256
    for kernel, stride, padding in net.conv_geometry():
        size = (size + 2 * padding - kernel) // stride + 1
    assert size == 30
    with torch.no_grad():
        assert net(torch.randn(1, 6, 256, 256)).shape == (1, 1, 30, 30)


def test_patchgan_channels_capped_and_biases() -> None:
    net = PatchDiscriminator(3, ndf=2, n_layers=5, norm="batch")
    assert [c.out_channels for c in convs(net)] == [2, 4, 8, 16, 16, 16, 1]
    assert [c.bias is not None for c in convs(net)] == [True] + [False] * 5 + [True]
    assert not any(isinstance(m, nn.Sigmoid) for m in net.modules())


def test_receptive_field_geometry_matches_gradients() -> None:
    # Without batch norm each score depends only on its own input window; the window predicted
    # by receptive_field (clipped to the image) must be exactly where the gradient is non-zero.
    torch.manual_seed(0)
    net = PatchDiscriminator(1, ndf=2, n_layers=2, norm="none")
    size, jump, start = receptive_field(net.conv_geometry())
    assert (size, jump, start) == (34, 4, -11)
    x = torch.randn(1, 1, 64, 64, requires_grad=True)
    out = net(x)
    i, j = 3, 5
    out[0, 0, i, j].backward()
    rows = x.grad[0, 0].abs().sum(1).nonzero().flatten()
    cols = x.grad[0, 0].abs().sum(0).nonzero().flatten()
    assert (rows.min().item(), rows.max().item()) == (max(start + i * jump, 0), start + i * jump + size - 1)
    assert (cols.min().item(), cols.max().item()) == (start + j * jump, start + j * jump + size - 1)


def test_receptive_field_simple_cases() -> None:
    assert receptive_field([]) == (1, 1, 0)
    assert receptive_field([(3, 1, 1)]) == (3, 1, -1)
    assert receptive_field([(2, 2, 0), (2, 2, 0)]) == (4, 4, 0)


def test_pixel_discriminator_shape_and_ignored_options() -> None:
    net = PixelDiscriminator(6, ndf=4, norm="batch", n_layers=3)
    assert net(torch.randn(2, 6, 5, 7)).shape == (2, 1, 5, 7)
    assert all(c.kernel_size == (1, 1) for c in convs(net))


# --------------------------------------------------------------------------- registry


def test_networks_are_registered() -> None:
    # lookup() imports every built-in component package; skip until they all exist.
    pytest.importorskip("pairgan.data.datasets")
    assert lookup("generator", "unet") is UnetGenerator
    assert lookup("generator", "resnet") is ResnetGenerator
    assert lookup("discriminator", "patch") is PatchDiscriminator
    assert lookup("discriminator", "pixel") is PixelDiscriminator
    net = create("discriminator", "pixel", input_nc=6, ndf=4, n_layers=3, norm="instance")
    assert isinstance(net, PixelDiscriminator)
