import math

import pytest

from pairgan.config import TrainConfig
from pairgan.train.schedules import make_schedule


def test_linear_matches_reference_formula():
    # Reference: lr_l = 1 - max(0, epoch + epoch_count - n_epochs) / (n_epochs_decay + 1), epoch_count = 1.
    s = make_schedule(TrainConfig(n_epochs=3, n_epochs_decay=4, lr_policy="linear"))
    got = [s.factor(e) for e in range(7)]
    want = [1 - max(0, e + 1 - 3) / 5 for e in range(7)]
    assert got == pytest.approx(want)
    assert got[:3] == [1.0, 1.0, 1.0] and got[-1] == pytest.approx(0.2)


def test_constant_step_cosine():
    assert make_schedule(TrainConfig(lr_policy="constant")).factor(10_000) == 1.0
    s = make_schedule(TrainConfig(lr_policy="step", lr_decay_epochs=2, lr_gamma=0.5))
    assert [s.factor(e) for e in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    c = make_schedule(TrainConfig(lr_policy="cosine", n_epochs=5, n_epochs_decay=5))
    assert c.factor(0) == 1.0 and c.factor(5) == pytest.approx(0.5) and c.factor(10) == pytest.approx(0.0)


def test_max_steps_stretches_the_proportions():
    s = make_schedule(TrainConfig(max_steps=100, n_epochs=1, n_epochs_decay=1, lr_policy="linear"))
    assert s.unit == "step" and s.constant == 50
    assert s.factor(0) == 1.0 and s.factor(48) == 1.0
    assert s.factor(99) == pytest.approx(1 - 50 / 51)
    assert s.position(epoch=3, step=42) == 42
    assert math.isclose(make_schedule(TrainConfig()).position(epoch=3, step=42), 3)
