"""Stop and resume: N steps in one go equal N/2 steps, a stop and N/2 more, bit for bit."""

import logging
from pathlib import Path

import pytest
import torch

from pairgan import checkpoint as ckpt
from pairgan.config import build_config
from pairgan.train.trainer import Trainer
from tests.helpers import checkpoint_tensors, tiny_overrides


def _cfg(data: Path, overrides: list[str], *extra: str):
    return build_config("pix2pix", overrides + list(extra), data_path=str(data))


@pytest.mark.slow
def test_resume_is_bitwise_identical(aligned_data: Path, tmp_path: Path, caplog):
    """N steps in one go == N/2 steps, stop, resume, N/2 steps (deterministic CPU).

    5 items at batch 2 = 3 batches per epoch, so N = 8 crosses epoch boundaries and the split at 4
    falls mid-epoch. The resumed half even uses data-loader worker processes: samples depend only
    on (seed, epoch, index), never on workers.
    """
    base = tiny_overrides("pix2pix") + ["train.deterministic=true", "train.lr_policy=linear", "train.n_epochs=1",
                                        "train.n_epochs_decay=2"]
    one = tmp_path / "one"
    Trainer(_cfg(aligned_data, base, "train.max_steps=8"), one, progress=False).fit()

    two = tmp_path / "two"
    Trainer(_cfg(aligned_data, base, "train.max_steps=8"), two, progress=False).fit(until_step=4)
    state = ckpt.load_state(ckpt.resolve_checkpoint(two))
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (4, 1, 1)
    resumed = _cfg(aligned_data, base, "train.max_steps=8", "train.num_workers=2")
    with caplog.at_level(logging.INFO, logger="pairgan"):
        summary = Trainer(resumed, two, resume=True, progress=False).fit()
    # The training time counts every session: the first one's, saved with its checkpoint, and this one.
    assert summary["seconds_total"] >= state["train_seconds"] + summary["seconds"] - 0.01 > summary["seconds"]
    # Without a progress bar the trainer logs where it resumed and a plain progress line.
    assert "resumed from" in caplog.text and "at step 4 (epoch 1, batch 1)" in caplog.text
    assert "epoch 2 step 8/8" in caplog.text

    a, b = checkpoint_tensors(one), checkpoint_tensors(two)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa = ckpt.load_state(ckpt.resolve_checkpoint(one))
    sb = ckpt.load_state(ckpt.resolve_checkpoint(two))
    for name in ("G", "D"):
        for pid, st in sa["optimizers"][name]["state"].items():
            assert torch.equal(st["exp_avg_sq"], sb["optimizers"][name]["state"][pid]["exp_avg_sq"])
    ha = (one / "history.jsonl").read_text().splitlines()
    hb = (two / "history.jsonl").read_text().splitlines()
    assert ha == hb  # losses logged by the resumed run are the uninterrupted run's
