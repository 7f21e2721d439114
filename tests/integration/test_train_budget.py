"""train.max_minutes: a wall-clock budget that stops the run with a final checkpoint and runs the LR
schedule over the steps the budget allows. A fake clock makes the tests independent of speed."""

from __future__ import annotations

import json
import types

import pytest

from pairgan import checkpoint as ckpt
from pairgan.config import ConfigError
from pairgan.train import budget as budget_mod
from pairgan.train.budget import CALIBRATION_STEPS
from pairgan.train.trainer import Trainer
from tests.helpers import tiny_config


class FakeClock:
    """perf_counter that advances ``tick`` seconds per call."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock(1.0)
    monkeypatch.setattr(budget_mod, "time", types.SimpleNamespace(perf_counter=fake.perf_counter))
    return fake


def _summary(run):
    return json.loads((run / "train_summary.json").read_text())


def test_budget_stops_with_a_final_checkpoint_and_a_matching_schedule(tmp_path, tiny_data, clock):
    cfg = tiny_config("pix2pix", tiny_data("aligned"), "train.max_steps=0", "train.n_epochs=1000",
                      "train.max_minutes=1")
    summary = Trainer(cfg, tmp_path / "run", progress=False).fit()
    est = summary["budget"]["estimated_steps"]
    # one fake second per step: about 60 steps fit in the minute, far fewer than 1000 epochs' worth
    assert CALIBRATION_STEPS < est < 80
    assert summary["budget"]["refined"]
    assert summary["steps"] <= est
    state = ckpt.load_state(ckpt.resolve_checkpoint(tmp_path / "run"))
    assert state["step"] == summary["steps"]
    assert state["budget"]["estimated_steps"] == est
    # the schedule ran over the estimate: linear decay reaches (almost) zero at its end
    if summary["steps"] == est:
        assert state["schedule"]["factor"] < 0.1


def test_max_steps_caps_the_estimate(tmp_path, tiny_data, clock):
    cfg = tiny_config("pix2pix", tiny_data("aligned"), "train.max_steps=30", "train.max_minutes=100")
    summary = Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert summary["steps"] == 30
    assert summary["budget"]["estimated_steps"] == 30


def test_resume_keeps_the_estimate_and_the_time_spent(tmp_path, tiny_data, clock):
    cfg = tiny_config("pix2pix", tiny_data("aligned"), "train.max_steps=0", "train.n_epochs=1000",
                      "train.max_minutes=1")
    Trainer(cfg, tmp_path / "run", progress=False).fit(until_step=CALIBRATION_STEPS + 2)
    first = ckpt.load_state(ckpt.resolve_checkpoint(tmp_path / "run"))["budget"]
    assert first["estimated_steps"] is not None and first["spent_s"] > 0
    clock.tick = 0.01  # a faster machine now: the estimate must not be redone
    summary = Trainer(cfg, tmp_path / "run", resume=True, progress=False).fit()
    assert summary["budget"]["estimated_steps"] == first["estimated_steps"]
    assert summary["steps"] == first["estimated_steps"]
    assert summary["budget"]["spent_s"] > first["spent_s"]


def test_budget_must_not_be_negative(tiny_data):
    with pytest.raises(ConfigError, match="train.max_minutes"):
        tiny_config("pix2pix", tiny_data("aligned"), "train.max_minutes=-1")
