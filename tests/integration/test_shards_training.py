"""Training from WebDataset shards (issue 19, part 3): the same weights as from the folder when both
are read in stored order, and N steps == N/2 + resume + N/2 bit for bit with loader workers, the
stop falling mid-epoch on the second worker's turn and the run crossing an epoch."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from pairgan import checkpoint as ckpt
from pairgan.data.shards import pack_shards
from pairgan.train.trainer import Trainer
from tests.helpers import checkpoint_tensors, tiny_config, train_whole_and_resumed, write_aligned

pytest.importorskip("webdataset")
pytestmark = pytest.mark.usefixtures("one_thread")

EXACT = ["train.deterministic=true", "model.dropout=false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """9 aligned pairs and their shards (3 shards)."""
    tmp = tmp_path_factory.mktemp("shards-training")
    root = write_aligned(tmp / "data", {"train": 9})
    pack_shards(root, tmp / "shards", shard_size=25_000)
    return root, tmp / "shards" / "train.json"


def _same_weights(a: Path, b: Path) -> None:
    ta, tb = checkpoint_tensors(a), checkpoint_tensors(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


@pytest.mark.slow
def test_folder_and_shards_train_the_same_weights_in_stored_order(data: tuple[Path, Path], tmp_path: Path) -> None:
    root, manifest = data
    runs = []
    for name, path in (("folder", root), ("shards", manifest)):
        cfg = tiny_config("pix2pix", path, "train.max_steps=6", "data.shuffle=false", *EXACT)
        Trainer(cfg, tmp_path / name, progress=False).fit()
        runs.append(tmp_path / name)
    _same_weights(*runs)  # 9 pairs at batch 2: 5 batches per epoch, the 5th short, then epoch 1


@pytest.mark.slow
def test_resume_from_shards_is_bitwise_identical(data: tuple[Path, Path], tmp_path: Path, caplog) -> None:
    _, manifest = data
    # 2 workers x batch 2: 4 slots... of one rank: 2 slots of ceil(9 / 4) * 2 = 6 samples, 6 batches per epoch
    cfg = tiny_config("pix2pix", manifest, "train.max_steps=9", "train.num_workers=2", "data.shuffle_buffer=3",
                      *EXACT)
    with caplog.at_level(logging.INFO, logger="pairgan"):
        one, two = train_whole_and_resumed(cfg, tmp_path, stop_at=3)
    assert "at step 3 (epoch 0, batch 3)" in caplog.text
    state = ckpt.load_state(ckpt.resolve_checkpoint(two))
    assert state["epoch"] == 1 and state["data"]["order"]["kind"] == "shards"
    assert state["data"]["batches_per_epoch"] == 6
    _same_weights(one, two)
    assert (one / "history.jsonl").read_text() == (two / "history.jsonl").read_text()


@pytest.mark.slow
def test_resume_with_other_loader_workers_continues_at_the_same_share(data: tuple[Path, Path], tmp_path: Path,
                                                                     caplog) -> None:
    _, manifest = data
    base = ["train.max_steps=8", "data.shuffle_buffer=3"]
    Trainer(tiny_config("pix2pix", manifest, *base, "train.num_workers=2"), tmp_path / "r", progress=False).fit(
        until_step=3)
    with caplog.at_level(logging.INFO, logger="pairgan"):
        Trainer(tiny_config("pix2pix", manifest, *base, "train.num_workers=0"), tmp_path / "r", resume=True,
                progress=False).fit()
    # 6 batches per epoch with 2 workers, 5 with one slot: batch 3 of 6 -> batch 2 of 5
    assert "the data order changed" in caplog.text and "continues at batch 2 of 5" in caplog.text
    assert ckpt.load_state(ckpt.resolve_checkpoint(tmp_path / "r"))["step"] == 8
