"""Differentiable augmentation of D's inputs (pairgan.nets.diffaug): the pair shares its geometry,
real and fake draw independently (or share a draw when asked), gradients reach the fake, p = 0 is
the identity, the adaptive p moves and resumes exactly, one-hot conditions stay one-hot."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pairgan.config import DataConfig
from pairgan.errors import ConfigError
from pairgan.methods.pix2pix import Pix2Pix, Pix2PixConfig
from pairgan.methods.pix2pixhd import Pix2PixHDConfig
from pairgan.nets.diffaug import DiffAugment, build_augment, d_pair
from pairgan.nets.labels import one_hot


def _images(n: int = 4, c: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g) * 2 - 1


def test_translation_moves_condition_and_image_together():
    torch.manual_seed(0)
    aug = DiffAugment("translation")
    x = _images()
    out = aug.pair(x, x.clone())
    cond, image = out[:, :3], out[:, 3:]
    assert torch.equal(cond, image)  # one shift per pair
    assert not torch.equal(image, x)  # and it did move something


@pytest.mark.parametrize("pad", ["zeros", "reflect"])
def test_translation_is_a_whole_pixel_shift(pad: str):
    aug = DiffAugment("translation", pad=pad)
    x = _images(n=1)
    draw = aug.draw(1, 16, 16, x.device)
    draw = type(draw)(None, None, None, None, torch.tensor([[2, -1]]), None)
    _, moved = aug.transform(draw, x, x)
    # Output pixel (i, j) is input pixel (i - 2, j + 1) wherever that exists.
    assert torch.equal(moved[..., 2:, :15], x[..., :14, 1:])
    border = moved[..., :2, :]
    if pad == "zeros":
        assert torch.equal(border, torch.zeros_like(border))
    else:
        assert torch.equal(moved[..., 0, :15], x[..., 2, 1:]) and torch.equal(moved[..., 1, :15], x[..., 1, 1:])


def test_colour_and_cutout_leave_the_condition_alone():
    torch.manual_seed(0)
    aug = DiffAugment("color,cutout")
    cond, image = _images(seed=1), _images(seed=2)
    out = aug.pair(cond, image)
    assert torch.equal(out[:, :3], cond)
    assert not torch.equal(out[:, 3:], image)
    # Cutout zeroes a square of half the side in every sample (p = 1).
    zeros = (out[:, 3:] == 0).all(dim=1).flatten(1).sum(1)
    assert (zeros >= 8 * 8 // 4).all()  # at least a quarter of the square lies inside the image


def test_real_and_fake_draw_independently_unless_given_one_draw():
    torch.manual_seed(0)
    aug = DiffAugment()
    cond, image = _images(seed=1), _images(seed=2)
    assert not torch.equal(aug.pair(cond, image), aug.pair(cond, image))  # DiffAugment: a draw per call
    draw = aug.draw(4, 16, 16, image.device)
    assert torch.equal(aug.pair(cond, image, draw), aug.pair(cond, image, draw))


def test_draws_follow_the_seed():
    aug = DiffAugment()
    cond, image = _images(seed=1), _images(seed=2)
    torch.manual_seed(3)
    a = aug.pair(cond, image)
    torch.manual_seed(3)
    assert torch.equal(a, aug.pair(cond, image))


def test_gradient_reaches_the_augmented_fake():
    torch.manual_seed(0)
    aug = DiffAugment()
    cond = _images(seed=1)
    fake = _images(seed=2).requires_grad_(True)
    d = torch.nn.Conv2d(6, 1, 3, padding=1)
    d(aug.pair(cond, fake)).mean().backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0


def test_probability_zero_is_the_identity():
    torch.manual_seed(0)
    aug = DiffAugment(p=0.0)
    cond, image = _images(seed=1), _images(seed=2)
    assert torch.equal(aug.pair(cond, image), torch.cat([cond, image], 1))
    assert torch.equal(d_pair(None, cond, image), torch.cat([cond, image], 1))


def test_one_hot_condition_stays_one_hot():
    torch.manual_seed(0)
    aug = DiffAugment(pad="zeros")
    ids = torch.randint(0, 5, (4, 1, 16, 16))
    cond = one_hot(ids, 5)
    out = aug.pair(cond, _images(), condition_is_label=True)[:, :5]
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out.sum(1), torch.ones(4, 16, 16))
    assert not torch.equal(out, cond)


def _stub_scores(value: float) -> torch.Tensor:
    return torch.full((2, 1, 4, 4), value)


def test_adaptive_p_rises_when_d_overfits_and_falls_otherwise():
    aug = DiffAugment(p=0.0, target=0.6, interval=4, ada_images=100)
    for _ in range(3):
        aug.observe(_stub_scores(2.0))  # D calls every real pair real: r = 1 > 0.6
    assert aug.probability == 0.0  # not yet: every 4 observations
    aug.observe(_stub_scores(2.0))
    assert aug.probability == pytest.approx(8 / 100)  # 4 steps x 2 images / 100
    for _ in range(8):
        aug.observe(_stub_scores(-1.0))
    assert aug.probability == 0.0  # down again, clamped at 0
    fixed = DiffAugment(p=0.3)
    for _ in range(8):
        fixed.observe(_stub_scores(2.0))
    assert fixed.probability == pytest.approx(0.3)


def test_adaptive_p_uses_lsgan_threshold():
    aug = DiffAugment(p=0.5, target=0.6, interval=1, ada_images=100, threshold=0.5)
    aug.observe(_stub_scores(0.4))  # below LSGAN's 0.5: judged fake, r = -1
    assert aug.probability < 0.5


def test_adaptive_state_resumes_exactly():
    torch.manual_seed(0)
    scores = [torch.randn(2, 1, 4, 4) + 0.5 for _ in range(11)]
    one = DiffAugment(p=0.2, target=0.6, interval=4, ada_images=50)
    for s in scores:
        one.observe(s)
    two = DiffAugment(p=0.2, target=0.6, interval=4, ada_images=50)
    for s in scores[:6]:  # stop mid-interval
        two.observe(s)
    resumed = DiffAugment(p=0.2, target=0.6, interval=4, ada_images=50)
    resumed.load_state_dict({k: v.clone() for k, v in two.state_dict().items()})
    for s in scores[6:]:
        resumed.observe(s)
    assert one.probability != 0.2
    assert torch.equal(one.p, resumed.p) and torch.equal(one.signs, resumed.signs)


def test_multiscale_outputs_are_observed_by_their_score_maps():
    aug = DiffAugment(p=0.0, target=0.6, interval=1, ada_images=10)
    aug.observe([[torch.zeros(1, 2, 3, 3), _stub_scores(1.0)], [torch.zeros(1, 2, 2, 2), _stub_scores(1.0)]])
    assert aug.probability > 0


def test_defaults_are_off_and_bad_keys_name_themselves():
    assert Pix2PixConfig().d_augment == "none" and Pix2PixHDConfig().d_augment == "none"
    assert build_augment(Pix2PixConfig()) is None
    m = Pix2Pix(Pix2PixConfig(ngf=4, ndf=4, num_downs=5, n_layers_D=1), DataConfig())
    assert "D_augment" not in m.nets
    with pytest.raises(ConfigError, match="model.d_augment_policy"):
        build_augment(Pix2PixConfig(d_augment="diffaug", d_augment_policy="color,rotate"))
    with pytest.raises(ConfigError, match="model.d_augment_target"):
        build_augment(Pix2PixConfig(d_augment="diffaug", d_augment_target=1.5))
    aug = build_augment(Pix2PixHDConfig(d_augment="diffaug", d_augment_target=0.6))
    assert aug is not None and aug.threshold == 0.5 and aug.target == 0.6  # pix2pixHD's LSGAN


def test_cutout_gradient_is_zero_only_inside_the_square():
    torch.manual_seed(1)
    aug = DiffAugment("cutout")
    fake = _images(n=1, seed=2).requires_grad_(True)
    draw = aug.draw(1, 16, 16, fake.device)
    F.l1_loss(aug.pair(_images(n=1), fake, draw)[:, 3:], torch.zeros(1, 3, 16, 16)).backward()
    assert torch.equal((fake.grad[0, 0] == 0), draw.keep[0, 0] == 0)
