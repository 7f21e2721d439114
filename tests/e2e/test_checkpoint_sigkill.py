"""A process killed (SIGKILL) while it rewrites a checkpoint leaves a checkpoint that loads."""

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from pairgan import checkpoint as ckpt

KILLER = textwrap.dedent(
    """
    import sys, torch
    from torch import nn
    from pairgan.config import build_config
    from pairgan import checkpoint as ckpt
    d = __import__('pathlib').Path(sys.argv[1])
    cfg = build_config('pix2pix')
    net = nn.Linear(1024, 1024)
    i = 0
    while True:
        i += 1
        with torch.no_grad():
            net.weight.fill_(float(i))
        ckpt.save_checkpoint(d / 'step_x', cfg, {'D': net}, {'step': i})
        ckpt.point_latest(d, 'step_x')
        print(i, flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_during_saves_never_corrupts(tmp_path: Path):
    """Kill a process that rewrites the same checkpoint in a loop: what is left always loads."""
    d = tmp_path / "checkpoints"
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    for delay in (0.9, 1.3, 1.7):
        proc = subprocess.Popen([sys.executable, str(script), str(d)], stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # at least one complete save
        time.sleep(delay - 0.8)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        path = ckpt.resolve_checkpoint(d)
        net = nn.Linear(1024, 1024)
        ckpt.load_weights(path, {"D": net})
        step = ckpt.load_state(path)["step"]
        assert torch.all(net.weight == float(step)), "weights and state come from the same save"
        # The next start tidies what the kill left (a half-built .tmp-*, a folder moved aside); the
        # checkpoint that loaded before still loads, unchanged.
        ckpt.clean_leftovers(d)
        assert not [p.name for p in d.iterdir() if p.name.startswith(".")]
        assert ckpt.load_state(ckpt.resolve_checkpoint(d))["step"] == step
