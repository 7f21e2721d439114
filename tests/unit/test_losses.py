"""GANLoss values on hand-made scores, and averaging over discriminator scales."""

from __future__ import annotations

import math

import pytest
import torch

from pairgan.losses import GAN_MODES, GANLoss

# The discriminator's (real, fake) loss of each mode on an undecided score (0) and a confident "real"
# score (+2). Every mode GANLoss accepts must have its row here.
KNOWN_SCORES = {
    "vanilla": {0.0: (math.log(2), math.log(2)), 2.0: (math.log1p(math.exp(-2.0)), math.log1p(math.exp(2.0)))},
    "lsgan": {0.0: (1.0, 0.0), 2.0: (1.0, 4.0)},
    "hinge": {0.0: (1.0, 1.0), 2.0: (0.0, 3.0)},
}


def test_every_mode_scores_known_inputs_and_unknown_modes_are_rejected() -> None:
    assert set(GAN_MODES) == set(KNOWN_SCORES)
    for mode in GAN_MODES:
        loss = GANLoss(mode)
        for score, (real, fake) in KNOWN_SCORES[mode].items():
            pred = torch.full((2, 1, 3, 3), score)
            assert loss(pred, True).item() == pytest.approx(real), (mode, score)
            assert loss(pred, False).item() == pytest.approx(fake), (mode, score)
        # a confident "real" score costs the discriminator less when the image is real than when it is fake
        confident = torch.full((1, 1, 2, 2), 2.0)
        assert loss(confident, True) < loss(confident, False), mode
    for bad in ("wgan", "Vanilla", "lsgan ", ""):
        with pytest.raises(ValueError, match="expected one of: vanilla, lsgan, hinge"):
            GANLoss(bad)


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
