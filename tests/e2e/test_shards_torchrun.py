"""Training from WebDataset shards under torchrun (issue 19, part 3): 2 gloo processes x 2 loader
workers each train two epochs from a manifest, and every sample is trained on exactly once per
epoch across the ranks (the batches each rank took are recorded by the script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import torch

from pairgan import checkpoint as ckpt
from pairgan.data.shards import pack_shards
from tests.helpers import tiny_overrides, write_aligned

pytest.importorskip("webdataset")

TIMEOUT_S = 600
SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from pairgan.config import build_config
    from pairgan.train import sampler
    from pairgan.train.trainer import Trainer

    data, run, out = sys.argv[1], sys.argv[2], sys.argv[3]
    rank = int(os.environ.get("RANK", "0"))
    taken = []
    plain_next = sampler.BatchStream.next

    def recording_next(self):  # which samples this rank trains on, epoch by epoch
        epoch = self.epoch
        batch = plain_next(self)
        taken.append([epoch, batch["index"].tolist()])
        return batch

    sampler.BatchStream.next = recording_next
    Trainer(build_config("pix2pix", sys.argv[4:], data_path=data), run, progress=False).fit()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(taken, f)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available() or not Path(sys.executable).with_name("torchrun").exists(),
                    reason="torch.distributed/torchrun not available")
def test_two_ranks_two_workers_train_every_sample_once_per_epoch(tmp_path: Path) -> None:
    data = write_aligned(tmp_path / "data", {"train": 16}, h=16, w=16)
    manifest = pack_shards(data, tmp_path / "shards", shard_size=10240)
    assert len(manifest["shards"]) >= 4  # at least one shard per (rank, worker) slot
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    # 16 samples, 4 slots of 4: 4 batches of 2 per rank and epoch; 8 steps = 2 epochs
    overrides = tiny_overrides("pix2pix") + ["train.num_workers=2", "train.max_steps=8", "data.shuffle_buffer=3"]
    cmd = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", "2", str(script),
           str(tmp_path / "shards" / "train.json"), str(tmp_path / "run"), str(out), *overrides]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    per_epoch: dict[int, Counter[int]] = {0: Counter(), 1: Counter()}
    for rank in (0, 1):
        taken = json.loads((out / f"rank{rank}.json").read_text())
        assert [e for e, _ in taken] == [0] * 4 + [1] * 4  # the same number of full batches on every rank
        for epoch, indices in taken:
            assert len(indices) == 2
            per_epoch[epoch].update(indices)
    for epoch, seen in per_epoch.items():
        assert seen == Counter(range(16)), f"epoch {epoch}: {seen}"
    state = ckpt.load_state(ckpt.resolve_checkpoint(tmp_path / "run"))
    assert state["data"]["order"] == {"kind": "shards", "slots": 4, "workers": 2, "world_size": 2, "batch_size": 2,
                                      "shuffle": True, "buffer": 3}


CITYSCAPES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cityscapes_pix2pix"


@pytest.mark.skipif(not (CITYSCAPES / "train").is_dir(), reason=f"{CITYSCAPES} not present")
def test_cityscapes_jpegs_read_back_bit_for_bit(tmp_path: Path) -> None:
    """Real JPEGs (the pix2pix Cityscapes set, a slice of it): the shards' tensors are the folder's."""
    from pairgan.config import build_config
    from pairgan.data.datasets import build_dataset

    manifest = pack_shards(CITYSCAPES, tmp_path / "s", split="train[:24]", shard_size="500KB")
    assert manifest["samples"] == 24 and len(manifest["shards"]) >= 2
    overrides = ["data.direction=BtoA", "data.train_split=train[:24]"]
    folder = build_dataset(build_config("pix2pix", overrides, data_path=str(CITYSCAPES)).data, "train[:24]",
                           train=True, seed=2)
    cfg = build_config("pix2pix", overrides, data_path=str(tmp_path / "s" / "train.json")).data
    shards = build_dataset(cfg, "train[:24]", train=True, seed=2)
    shards.order(batch_size=1).set_position(4, 0)
    items = list(shards)
    assert sorted(it["index"] for it in items) == list(range(24))
    for it in items:
        ref = folder[(4, it["index"])]
        assert torch.equal(ref["A"], it["A"]) and torch.equal(ref["B"], it["B"])
        assert it["A_path"].endswith(":" + Path(ref["A_path"]).relative_to(CITYSCAPES).as_posix())
