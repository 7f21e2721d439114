"""Learning-rate schedules as pure functions of training progress.

Because the factor is recomputed from (epoch, step) at every step, the schedule needs no state
of its own: resuming at step s gives exactly the LR the uninterrupted run had at step s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pairgan.config import TrainConfig


@dataclass(frozen=True)
class Schedule:
    """LR factor over ``total`` units (epochs, or steps when ``train.max_steps`` is set).

    ``linear`` is the PyTorch pix2pix reference: constant for ``constant`` units, then linear
    decay towards zero (``1 - (t + 1 - constant) / (decay + 1)``). With ``train.max_steps`` the
    same proportions are stretched over the steps.
    """

    policy: str
    unit: str  # "epoch" or "step"
    total: int
    constant: int
    decay_every: int
    gamma: float

    def factor(self, t: int) -> float:
        """Multiplier of the base LR at position ``t`` (0-based epoch or step)."""
        if self.policy == "constant":
            return 1.0
        if self.policy == "linear":
            decay = max(self.total - self.constant, 0)
            return max(0.0, 1.0 - max(0, t + 1 - self.constant) / float(decay + 1))
        if self.policy == "step":
            return self.gamma ** (t // max(self.decay_every, 1))
        if self.policy == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(t, self.total) / max(self.total, 1)))
        raise ValueError(f"unknown lr_policy {self.policy!r}; expected linear, constant, step or cosine")

    def position(self, epoch: int, step: int) -> int:
        return step if self.unit == "step" else epoch


def make_schedule(train: TrainConfig) -> Schedule:
    """The schedule ``train`` describes."""
    epochs = train.n_epochs + train.n_epochs_decay
    if train.max_steps > 0:
        ratio = train.max_steps / max(epochs, 1)
        return Schedule(
            policy=train.lr_policy,
            unit="step",
            total=train.max_steps,
            constant=round(train.n_epochs * ratio) if epochs else train.max_steps,
            decay_every=max(1, round(train.lr_decay_epochs * ratio)),
            gamma=train.lr_gamma,
        )
    return Schedule(
        policy=train.lr_policy,
        unit="epoch",
        total=epochs,
        constant=train.n_epochs,
        decay_every=train.lr_decay_epochs,
        gamma=train.lr_gamma,
    )
