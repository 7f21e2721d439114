"""pix2pixHD networks: reference parameter counts, input helpers, instance pooling, wiring, losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pairgan.losses import FeatureMatchingLoss, GANLoss
from pairgan.nets.labels import instance_edges, one_hot
from pairgan.nets.pix2pixhd import (
    FeatureEncoder,
    GlobalGenerator,
    LocalEnhancer,
    MultiscaleDiscriminator,
    instance_means,
    instance_pool,
)
from pairgan.registry import available, create


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# --------------------------------------------------------------------------- parameter counts
# The numbers below are derived by hand from NVIDIA/pix2pixHD's models/networks.py definitions at
# the reference defaults (ngf 64, n_downsample_global 4, n_blocks_global 9, instance norm without
# affine, every conv biased; D: ndf 64, n_layers_D 3, widths capped at 512; E: nef 16, 4 down/up):
#   global G, input 35 labels + 1 edge + 3 features = 39 channels:
#     c7s1-64 122,368 + d128 73,856 + d256 295,168 + d512 1,180,160 + d1024 4,719,616
#     + 9 blocks x 2 x (1024*1024*9 + 1024) = 169,887,744
#     + u512 4,719,104 + u256 1,179,904 + u128 295,040 + u64 73,792 + c7s1-3 9,411 = 182,556,163
#   the same with 36 input channels (no features): 182,546,755
#   local enhancer (ngf 32, 36 inputs): global part at ngf 64 minus its last conv = 182,537,344
#     + c7s1-32 56,480 + d64 18,496 + 3 blocks 221,568 + u32 18,464 + c7s1-3 4,707 = 182,857,059
#   one PatchGAN on label 35 + edge 1 + image 3 = 39 channels:
#     40,000 + 131,200 + 524,544 + 2,097,664 + 8,193 = 2,801,601 per scale
#   encoder: 2,368 + 4,640 + 18,496 + 73,856 + 295,168 + 295,040 + 73,792 + 18,464 + 4,624 + 2,355 = 788,803


def _on_meta(factory):
    with torch.device("meta"):  # no memory, no initialisation: counting needs neither
        return factory()


def test_global_generator_parameter_count_matches_reference():
    assert n_params(_on_meta(lambda: GlobalGenerator(35 + 1 + 3, 3))) == 182_556_163
    assert n_params(_on_meta(lambda: GlobalGenerator(35 + 1, 3))) == 182_546_755


def test_local_enhancer_parameter_count_matches_reference():
    net = _on_meta(lambda: LocalEnhancer(35 + 1, 3, ngf=32))
    assert n_params(net) == 182_857_059
    assert n_params(net.model) == 182_537_344
    assert sum(p.numel() for p in net.finest_parameters()) == 319_715


def test_multiscale_discriminator_parameter_count_matches_reference():
    assert n_params(_on_meta(lambda: MultiscaleDiscriminator(35 + 1 + 3, num_D=1))) == 2_801_601
    assert n_params(_on_meta(lambda: MultiscaleDiscriminator(35 + 1 + 3, num_D=2))) == 5_603_202
    assert n_params(_on_meta(lambda: MultiscaleDiscriminator(35 + 1 + 3, num_D=3))) == 8_404_803


def test_encoder_parameter_count_matches_reference():
    assert n_params(_on_meta(lambda: FeatureEncoder(3, 3, 16, 4))) == 788_803


def test_registered():
    assert {"pix2pixhd_global", "pix2pixhd_local"} <= set(available("generator"))
    assert "multiscale" in available("discriminator")
    assert "pix2pixhd" in available("encoder")
    g = create("generator", "pix2pixhd_global", input_nc=4, output_nc=3, ngf=4, n_downsampling=2, n_blocks=1)
    assert g.size_multiple == 4


def test_global_generator_layout():
    g = GlobalGenerator(5, 3, ngf=4, n_downsampling=2, n_blocks=2)
    convs = [m for m in g.model if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (5, 4, 7, 1), (4, 8, 3, 2), (8, 16, 3, 2), (16, 8, 3, 2), (8, 4, 3, 2), (4, 3, 7, 1)]
    assert all(c.output_padding == (1, 1) for c in convs if isinstance(c, nn.ConvTranspose2d))
    assert isinstance(g.model[-1], nn.Tanh) and isinstance(g.model[0], nn.ReflectionPad2d)
    assert any(isinstance(m, nn.InstanceNorm2d) for m in g.modules())
    y = g(torch.randn(2, 5, 32, 48))
    assert y.shape == (2, 3, 32, 48) and y.abs().max() <= 1


# --------------------------------------------------------------------------- helpers


def test_one_hot():
    label = torch.tensor([[[[0, 2], [1, 2]]]])
    oh = one_hot(label, 3)
    assert oh.shape == (1, 3, 2, 2) and oh.dtype == torch.float32
    assert torch.equal(oh.argmax(1, keepdim=True), label)
    assert torch.equal(oh.sum(1), torch.ones(1, 2, 2))
    assert torch.equal(one_hot(label[0], 3), oh)  # [N, H, W] accepted
    with pytest.raises(ValueError, match="label id 2 .*label_nc = 2"):
        one_hot(label, 2)
    with pytest.raises(ValueError, match="integer"):
        one_hot(label.float(), 3)


def test_instance_edges_on_constructed_map():
    inst = torch.zeros(1, 1, 6, 7, dtype=torch.long)
    inst[..., 1:4, 2:5] = 7  # a 3x3 object
    inst[..., 5, :] = 3  # a bottom stripe
    edges = instance_edges(inst)
    assert edges.shape == inst.shape and edges.dtype == torch.float32
    # naive: edge where any 4-neighbour has another id
    expected = torch.zeros(6, 7)
    m = inst[0, 0]
    for y in range(6):
        for x in range(7):
            for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                yy, xx = y + dy, x + dx
                if 0 <= yy < 6 and 0 <= xx < 7 and m[yy, xx] != m[y, x]:
                    expected[y, x] = 1
    assert torch.equal(edges[0, 0], expected)
    # the object's whole border is an edge, its centre is not; the ring around it is an edge
    assert edges[0, 0, 2, 3] == 0 and edges[0, 0, 1, 2] == 1 and edges[0, 0, 0, 3] == 1
    assert edges[0, 0, 0, 0] == 0 and edges[0, 0, 4, 0] == 1 and edges[0, 0, 5, 0] == 1


def _naive_pool(feat: torch.Tensor, inst: torch.Tensor) -> torch.Tensor:
    out = feat.clone()
    for b in range(feat.shape[0]):
        for i in inst[b].unique():
            mask = inst[b, 0] == i
            for c in range(feat.shape[1]):
                out[b, c][mask] = feat[b, c][mask].mean()
    return out


def test_instance_pool_matches_naive_loop_and_is_differentiable():
    g = torch.Generator().manual_seed(0)
    inst = torch.randint(0, 4, (3, 1, 9, 11), generator=g) * 1000 + torch.randint(0, 3, (3, 1, 9, 11), generator=g)
    inst[1] = 5  # one image with a single instance id, also present in no other image
    feat = torch.randn(3, 4, 9, 11, generator=g, requires_grad=True)
    pooled = instance_pool(feat, inst)
    assert torch.allclose(pooled, _naive_pool(feat.detach(), inst), atol=1e-6)
    # same id in different images is pooled separately
    assert not torch.allclose(pooled[0, :, inst[0, 0] == inst[2, 0, 0, 0]].mean(),
                              pooled[2, :, inst[2, 0] == inst[2, 0, 0, 0]].mean())
    # d(sum of pooled)/d(feat) = 1 everywhere (each pixel contributes count * 1/count)
    pooled.sum().backward()
    assert torch.allclose(feat.grad, torch.ones_like(feat))
    b, ids, means, counts = instance_means(feat.detach(), inst)
    assert int(counts.sum()) == 3 * 9 * 11 and means.shape == (len(ids), 4)
    k = int(((b == 1) & (ids == 5)).nonzero())
    assert torch.allclose(means[k], feat.detach()[1].mean((1, 2)), atol=1e-6)


def test_encoder_output_is_constant_per_instance():
    torch.manual_seed(0)
    E = FeatureEncoder(3, 3, nef=4, n_downsampling=2)
    inst = torch.zeros(2, 1, 16, 16, dtype=torch.long)
    inst[:, :, 4:12, 4:12] = 6001
    out = E(torch.randn(2, 3, 16, 16), inst)
    assert out.shape == (2, 3, 16, 16)
    for b in range(2):
        for i in (0, 6001):
            vals = out[b][:, inst[b, 0] == i]
            assert torch.allclose(vals, vals[:, :1].expand_as(vals))
    assert out.abs().max() <= 1


# --------------------------------------------------------------------------- local enhancer wiring


def test_local_enhancer_wiring():
    torch.manual_seed(0)
    net = LocalEnhancer(5, 3, ngf=4, n_downsample_global=2, n_blocks_global=1, n_local_enhancers=2, n_blocks_local=1)
    assert net.size_multiple == 16
    # the global part is a GlobalGenerator of width ngf * 2**n_local without its last 3 layers, same keys
    ref = GlobalGenerator(5, 3, ngf=16, n_downsampling=2, n_blocks=1)
    assert len(net.model) == len(ref.model) - 3
    assert {k: v.shape for k, v in net.model.state_dict().items()} == {
        k: v.shape for k, v in ref.model.state_dict().items() if int(k.split(".")[0]) < len(ref.model) - 3}
    seen: dict[str, torch.Tensor] = {}
    net.model.register_forward_hook(lambda m, i, o: seen.update(global_in=i[0], global_out=o))
    for n, enh in enumerate(net.enhancers):
        enh.front.register_forward_hook(lambda m, i, o, n=n: seen.update({f"front{n}_in": i[0], f"front{n}": o}))
        enh.back.register_forward_pre_hook(lambda m, i, n=n: seen.update({f"back{n}_in": i[0]}))
        enh.back.register_forward_hook(lambda m, i, o, n=n: seen.update({f"back{n}": o}))
    x = torch.randn(2, 5, 32, 32)
    y = net(x)
    assert y.shape == (2, 3, 32, 32)
    pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
    x2, x4 = pool(x), pool(pool(x))
    assert torch.equal(seen["global_in"], x4)  # the global generator sees the 4x-downsampled input
    assert torch.equal(seen["front0_in"], x2) and torch.equal(seen["front1_in"], x)
    assert seen["global_out"].shape == (2, 16, 8, 8) == seen["front0"].shape
    assert torch.allclose(seen["back0_in"], seen["front0"] + seen["global_out"])  # element-wise sum
    assert torch.allclose(seen["back1_in"], seen["front1"] + seen["back0"])
    assert seen["back1_in"].shape == (2, 8, 16, 16)
    assert torch.equal(seen["back1"], y)
    fixed = {id(p) for p in net.fixed_parameters()}
    finest = {id(p) for p in net.finest_parameters()}
    assert not fixed & finest and fixed | finest == {id(p) for p in net.parameters()}
    assert finest == {id(p) for p in net.enhancers[1].parameters()}


# --------------------------------------------------------------------------- multi-scale D


def test_multiscale_discriminator_shapes_and_scales():
    torch.manual_seed(0)
    D = MultiscaleDiscriminator(6, ndf=4, n_layers=3, num_D=3)
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.kernel_size == (4, 4) and c.padding == (2, 2) for c in convs)
    assert [c.out_channels for c in D.scales[0].modules() if isinstance(c, nn.Conv2d)] == [4, 8, 16, 32, 1]
    seen = {}
    for k, s in enumerate(D.scales):
        s.register_forward_pre_hook(lambda m, i, k=k: seen.update({k: i[0]}))
    x = torch.randn(2, 6, 64, 64)
    out = D(x)
    assert len(out) == 3 and all(len(scale) == 3 + 2 for scale in out)
    pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
    # scales[num_D - 1] sees the full input, scales[0] the coarsest; outputs finest first
    assert torch.equal(seen[2], x) and torch.equal(seen[1], pool(x)) and torch.equal(seen[0], pool(pool(x)))

    def size(n: int) -> list[int]:
        sizes = []
        for stride in (2, 2, 2, 1, 1):
            n = (n + 2 * 2 - 4) // stride + 1
            sizes.append(n)
        return sizes

    for scale, n in zip(out, (64, 32, 16)):
        assert [t.shape[-1] for t in scale] == size(n)
        assert scale[-1].shape[1] == 1 and [t.shape[1] for t in scale[:-1]] == [4, 8, 16, 32]


# --------------------------------------------------------------------------- losses on D outputs


def _hand_made_outputs(num_d: int, n_layers: int, offsets: list[list[float]]):
    real, fake = [], []
    for k in range(num_d):
        r = [torch.randn(1, 2, 4, 4) for _ in range(n_layers + 1)] + [torch.randn(1, 1, 3, 3)]
        f = [t + offsets[k][i] for i, t in enumerate(r[:-1])] + [torch.randn(1, 1, 3, 3)]
        real.append(r)
        fake.append(f)
    return fake, real


def test_feature_matching_weights():
    torch.manual_seed(0)
    offsets = [[0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 3.0, 4.0]]
    fake, real = _hand_made_outputs(2, 3, offsets)
    loss = FeatureMatchingLoss()(fake, real)
    # weights 4 / (3 + 1) = 1 per layer and 1 / num_D = 1/2; the score maps are ignored
    assert loss.item() == pytest.approx(sum(sum(o) for o in offsets) / 2, rel=1e-5)
    assert FeatureMatchingLoss(n_layers=3, num_D=2)(fake, real).item() == pytest.approx(loss.item())
    # n_layers 2 (3 features): weight 4/3, num_D 3: 1/3
    offsets3 = [[0.5, 0.5, 0.5]] * 3
    fake3, real3 = _hand_made_outputs(3, 2, offsets3)
    assert FeatureMatchingLoss()(fake3, real3).item() == pytest.approx(3 * 3 * 0.5 * (4 / 3) / 3, rel=1e-5)
    # gradients reach the fake features only: the real ones are detached
    for scale in fake + real:
        for t in scale:
            t.requires_grad_(True)
    FeatureMatchingLoss()(fake, real).backward()
    assert all(t.grad is None for s in real for t in s)
    assert all(t.grad is not None for s in fake for t in s[:-1]) and all(s[-1].grad is None for s in fake)


def test_gan_loss_takes_the_last_element_of_each_scale():
    torch.manual_seed(0)
    fake, _ = _hand_made_outputs(2, 3, [[0.0] * 4] * 2)
    expected = (F.mse_loss(fake[0][-1], torch.ones(1, 1, 3, 3)) + F.mse_loss(fake[1][-1], torch.ones(1, 1, 3, 3))) / 2
    assert GANLoss("lsgan")(fake, True).item() == pytest.approx(expected.item())
