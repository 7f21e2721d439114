"""The training loop (one place), checkpoints, schedules and logging; it knows no single method."""

from pairgan.train.trainer import Trainer, train

__all__ = ["Trainer", "train"]
