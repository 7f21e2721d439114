"""The trainer's SIGINT/SIGTERM handler: the first signal asks for a checkpoint and a stop, a second
one stops at once, and the same request delivered twice at once (torchrun passing on a signal that
a supervisor also sent to every worker) counts once."""

import signal
from pathlib import Path

import pytest

from pairgan.config import build_config
from pairgan.train import trainer as trainer_module
from pairgan.train.trainer import Trainer


@pytest.fixture
def installed(tmp_path: Path):
    tr = Trainer(build_config("pix2pix"), tmp_path / "run", progress=False)
    previous = tr._install_signals()
    try:
        yield tr
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_a_signal_delivered_twice_at_once_asks_for_one_checkpoint(installed: Trainer):
    signal.raise_signal(signal.SIGTERM)  # from the supervisor
    try:
        signal.raise_signal(signal.SIGTERM)  # passed on by torchrun, milliseconds later
    except KeyboardInterrupt:
        pytest.fail("the repeated signal stopped training at once, without a checkpoint")
    assert installed._signal == signal.SIGTERM  # a checkpoint after this step, then a stop


def test_a_later_second_signal_stops_at_once(installed: Trainer):
    signal.raise_signal(signal.SIGINT)
    installed._signal_at -= trainer_module.REPEATED_SIGNAL_S + 1  # as if it came that long ago
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
