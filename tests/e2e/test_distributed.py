"""Data-parallel training under torchrun (gloo, 2 CPU processes) against one process."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pairgan import checkpoint as ckpt
from pairgan.config import build_config
from pairgan.methods.build import build_method
from tests.helpers import tiny_overrides, write_aligned

TINY = tiny_overrides("pix2pix")

SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    from pairgan.config import build_config
    from pairgan.train.trainer import Trainer
    data, run, out = sys.argv[1], sys.argv[2], sys.argv[3]
    overrides = sys.argv[4:]
    cfg = build_config("pix2pix", overrides, data_path=data)
    tr = Trainer(cfg, run, progress=False, resume=os.environ.get("RESUME") == "1")
    tr.fit(until_step=int(os.environ["UNTIL"]) if "UNTIL" in os.environ else None)
    rank = int(os.environ.get("RANK", "0"))
    torch.save({k: {n: t.detach().clone() for n, t in net.state_dict().items()}
                for k, net in tr.method.nets.items()}, os.path.join(out, f"rank{rank}.pt"))
    if torch.distributed.is_initialized():
        # as `pairgan train` does: leaving with the process group alive can abort a rank at exit
        # ("terminate called without an active exception" from gloo's threads)
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    """
)


def _biases_before_instance_norm(net: torch.nn.Module) -> set[str]:
    """Conv biases that feed an InstanceNorm directly: their gradient is zero in exact arithmetic,
    so Adam (whose step is about lr whatever the gradient's size) turns float round-off into
    lr-sized random walks there. They carry no information and are left out of the comparison."""
    names = set()
    for prefix, mod in net.named_modules():
        if isinstance(mod, torch.nn.Sequential):
            kids = list(mod.named_children())
            for (n1, a), (_, b) in zip(kids, kids[1:]):
                if isinstance(a, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and a.bias is not None and isinstance(
                    b, torch.nn.InstanceNorm2d
                ):
                    names.add(f"{prefix}.{n1}.bias" if prefix else f"{n1}.bias")
    return names


def _torchrun() -> list[str] | None:
    exe = Path(sys.executable).with_name("torchrun")
    return [str(exe)] if exe.exists() else None


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available() or _torchrun() is None,
                    reason="torch.distributed/torchrun not available")
def test_two_process_gloo_equals_one_process(tmp_path: Path):
    data = write_aligned(tmp_path / "data", {"train": 8})
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    common = [o for o in TINY if not o.startswith("train.batch_size")] + [
        "model.norm=instance", "model.dropout=false", "train.max_steps=3", "train.deterministic=true",
        "train.accumulate=2",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out2 = tmp_path / "two"
    out2.mkdir()
    cmd = _torchrun() + ["--standalone", "--nproc_per_node", "2", str(script), str(data), str(tmp_path / "run2"),
                         str(out2), *common, "train.batch_size=1"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out1 = tmp_path / "one"
    out1.mkdir()
    r = subprocess.run([sys.executable, str(script), str(data), str(tmp_path / "run1"), str(out1), *common,
                        "train.batch_size=2"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]

    rank0 = torch.load(out2 / "rank0.pt")
    rank1 = torch.load(out2 / "rank1.pt")
    single = torch.load(out1 / "rank0.pt")
    nets = build_method(build_config("pix2pix", common), training=True).nets
    compared = 0
    for net in ("G", "D"):
        skip = _biases_before_instance_norm(nets[net])
        for k, v in rank0[net].items():
            assert torch.equal(v, rank1[net][k]), f"ranks differ in {net}.{k}"
            if k not in skip:
                assert torch.allclose(v, single[net][k], atol=1e-5, rtol=0), f"{net}.{k} differs from one process"
                compared += 1
    assert compared >= 10
    # Only rank 0 wrote the run folder's checkpoint, and it holds rank 0's weights.
    assert (tmp_path / "run2" / "checkpoints" / "latest").exists()
    assert (tmp_path / "run2" / "train_summary.json").read_text().count('"world_size": 2') == 1


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available() or _torchrun() is None,
                    reason="torch.distributed/torchrun not available")
def test_resume_on_a_different_number_of_processes(tmp_path: Path):
    """Stop a 2-process run mid-epoch, continue it in one process with the same global batch."""
    data = write_aligned(tmp_path / "data", {"train": 8})
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    common = [o for o in TINY if not o.startswith("train.batch_size")] + [
        "model.norm=instance", "model.dropout=false", "train.max_steps=5"]
    run = tmp_path / "run"
    (tmp_path / "o").mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", UNTIL="3")
    r = subprocess.run(_torchrun() + ["--standalone", "--nproc_per_node", "2", str(script), str(data), str(run),
                                      str(tmp_path / "o"), *common, "train.batch_size=2"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    state = ckpt.load_state(ckpt.resolve_checkpoint(run))
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (3, 1, 1)
    assert state["data"]["world_size"] == 2 and state["data"]["samples_in_epoch"] == 4
    env = dict(os.environ, OMP_NUM_THREADS="1", RESUME="1")
    r = subprocess.run([sys.executable, str(script), str(data), str(run), str(tmp_path / "o"), *common,
                        "train.batch_size=4"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    state = ckpt.load_state(ckpt.resolve_checkpoint(run))
    assert (state["step"], state["data"]["world_size"]) == (5, 1)
    steps = [line for line in (run / "history.jsonl").read_text().splitlines()]
    assert len(steps) == 5
