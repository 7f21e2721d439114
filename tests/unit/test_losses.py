"""GANLoss values on hand-made scores, and averaging over discriminator scales."""

from __future__ import annotations

import math

import pytest
import torch

from pairgan.losses import GAN_MODES, GANLoss


def test_modes() -> None:
    assert GAN_MODES == ("vanilla", "lsgan", "hinge")
    with pytest.raises(ValueError, match="vanilla, lsgan, hinge"):
        GANLoss("wgan")


def test_lsgan_values() -> None:
    loss = GANLoss("lsgan")
    zeros = torch.zeros(2, 1, 3, 3)
    assert loss(zeros, True).item() == pytest.approx(1.0)
    assert loss(zeros, False).item() == pytest.approx(0.0)
    assert loss(torch.full((1, 1, 2, 2), 3.0), False).item() == pytest.approx(9.0)
    # Only hinge distinguishes the generator's loss from the discriminator's real term.
    assert loss(zeros, True, for_discriminator=False).item() == pytest.approx(1.0)


def test_vanilla_values() -> None:
    loss = GANLoss("vanilla")
    zeros = torch.zeros(1, 1, 4, 4)
    assert loss(zeros, True).item() == pytest.approx(math.log(2))
    assert loss(zeros, False).item() == pytest.approx(math.log(2))
    logit = torch.tensor([[2.0]])
    assert loss(logit, True).item() == pytest.approx(math.log1p(math.exp(-2.0)))
    assert loss(logit, False).item() == pytest.approx(math.log1p(math.exp(2.0)))
    # Works on logits: extreme scores stay finite (no sigmoid saturation).
    assert math.isfinite(loss(torch.tensor([[-200.0]]), True).item())


def test_hinge_values() -> None:
    loss = GANLoss("hinge")
    pred = torch.tensor([-1.0, 0.0, 2.0])
    assert loss(pred, True).item() == pytest.approx((2 + 1 + 0) / 3)
    assert loss(pred, False).item() == pytest.approx((0 + 1 + 3) / 3)
    assert loss(pred, True, for_discriminator=False).item() == pytest.approx(-1 / 3)
    with pytest.raises(ValueError):
        loss(pred, False, for_discriminator=False)


def test_scales_are_averaged() -> None:
    loss = GANLoss("lsgan")
    scales = [torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 2, 2)]
    assert loss(scales, True).item() == pytest.approx((1.0 + 0.0) / 2)
    assert loss(scales, False).item() == pytest.approx((0.0 + 1.0) / 2)


def test_feature_lists_use_the_last_map() -> None:
    loss = GANLoss("hinge")
    junk = torch.full((1, 8, 4, 4), 1e6)
    scales = [[junk, torch.full((1, 1, 4, 4), -1.0)], [junk, junk, torch.full((1, 1, 2, 2), 3.0)]]
    assert loss(scales, True).item() == pytest.approx((2.0 + 0.0) / 2)
    assert loss(scales, True, for_discriminator=False).item() == pytest.approx((1.0 - 3.0) / 2)


@pytest.mark.parametrize("mode", GAN_MODES)
def test_gradients_flow(mode: str) -> None:
    pred = torch.randn(2, 1, 3, 3, requires_grad=True)
    GANLoss(mode)([pred, [pred * 2]], True, for_discriminator=False).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_empty_scale_list_rejected() -> None:
    with pytest.raises(ValueError):
        GANLoss("lsgan")([], True)
