"""WebDataset shards (issue 19, part 3): `pairgan data pack` and reading shards for training.

Every layout packs and reads back the folder data set's tensors; ranks x loader workers see every
sample once per epoch; a folder and its shards give the same batches in stored order; a resumed
shard stream continues exactly; pipe: URLs; the missing extra is one line.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pairgan.cli import app
from pairgan.config import DataConfig, build_config
from pairgan.data.datasets import build_dataset
from pairgan.data.shards import ShardDataset, pack_shards, parse_size
from pairgan.errors import DataError
from pairgan.train.sampler import BatchStream, build_loader
from tests.helpers import write_aligned, write_tiny_data

pytest.importorskip("webdataset")

SMALL = ["data.load_size=36", "data.crop_size=32"]


def _cfg(path: Path | str, *overrides: str, preset: str = "pix2pix") -> DataConfig:
    return build_config(preset, list(overrides), data_path=str(path)).data


def _write_folders(root: Path, n: int = 5) -> Path:
    """A folders data set: A/ PNGs and B/ JPEGs (lossy originals must travel byte for byte)."""
    rng = np.random.default_rng(1)
    for side in ("A", "B"):
        (root / "train" / side).mkdir(parents=True)
    for i in range(n):
        a = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(a).save(root / "train" / "A" / f"{i}.png")
        Image.fromarray(255 - a).save(root / "train" / "B" / f"{i}.jpg", quality=80)
    return root


def _items(ds: ShardDataset, epoch: int = 0, batch_size: int = 1) -> list[dict]:
    order = ds.order(batch_size=batch_size)
    order.set_position(epoch, 0)
    return list(ds)


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() - {"A_path", "B_path"} == b.keys() - {"A_path", "B_path"}
    for k, v in a.items():
        if torch.is_tensor(v):  # bit for bit (missing keypoints are NaN on both sides)
            torch.testing.assert_close(v, b[k], rtol=0, atol=0, equal_nan=True, msg=k)
        elif k == "index":
            assert v == b[k]


def _layouts(tmp: Path) -> dict[str, tuple[Path, str, list[str]]]:
    """layout -> (data root, preset, overrides) for every layout pairgan reads."""
    scenes = write_tiny_data(tmp, "scenes")
    return {
        "aligned": (write_aligned(tmp / "aligned", {"train": 5}), "pix2pix", SMALL),
        "folders": (_write_folders(tmp / "folders"), "pix2pix", SMALL),
        "labels": (scenes, "pix2pixhd-demo", ["data.preprocess=resize_and_crop", "data.load_size=36",
                                              "data.crop_size=32"]),
        "aligned-labels": (scenes / "aligned", "pix2pix", SMALL + [
            "data.input_kind=label", "data.input_nc=1", "data.label_nc=9", "data.layout=aligned",
            f"data.palette={scenes / 'classes.json'}"]),
        "poses": (write_tiny_data(tmp, "poses"), "ggb", ["data.load_size=36", "data.crop_size=32"]),
    }


def test_every_layout_packs_and_reads_back_the_folder_tensors(tmp_path: Path) -> None:
    for layout, (root, preset, overrides) in _layouts(tmp_path).items():
        out = tmp_path / "shards" / layout
        manifest = pack_shards(root, out, shard_size="64KB")
        assert manifest["layout"] == {"aligned-labels": "aligned"}.get(layout, layout)
        folder = build_dataset(_cfg(root, *overrides, preset=preset), "train", train=True, seed=5)
        shards = build_dataset(_cfg(out / "train.json", *overrides, preset=preset), "train", train=True, seed=5)
        assert isinstance(shards, ShardDataset) and len(shards) == len(folder) == manifest["samples"]
        if layout == "labels":
            assert "inst" in manifest["roles"] and "inst" in shards.head(1)[0]
        items = _items(shards, epoch=2)
        assert sorted(it["index"] for it in items) == list(range(len(folder))), layout
        for it in items:
            _assert_same(folder[(2, it["index"])], it)


def test_original_bytes_manifest_and_atomic_names(tmp_path: Path) -> None:
    root = _write_folders(tmp_path / "data", n=6)
    out = tmp_path / "out"
    manifest = pack_shards(root, out, shard_size="25KB", name="part")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"part-{k:06d}.tar" for k in range(len(manifest["shards"]))] + ["part.json"])
    assert len(manifest["shards"]) > 1 and sum(s["samples"] for s in manifest["shards"]) == 6
    assert all(s["bytes"] <= manifest["shard_size_limit"] for s in manifest["shards"])
    import hashlib
    import tarfile

    for s in manifest["shards"]:
        assert hashlib.sha256((out / s["name"]).read_bytes()).hexdigest() == s["sha256"]
    with tarfile.open(out / "part-000000.tar") as tar:
        meta = json.loads(tar.extractfile("000000000.json").read())
        assert meta["files"] == {"A": "train/A/0.png", "B": "train/B/0.jpg"} and meta["index"] == 0
        assert tar.extractfile("000000000.b.jpg").read() == (root / "train" / "B" / "0.jpg").read_bytes()
    # the same input gives the same bytes; an existing pack is kept unless --overwrite
    with pytest.raises(DataError, match="already exists"):
        pack_shards(root, out, shard_size="25KB", name="part")
    again = pack_shards(root, out, shard_size="25KB", name="part", overwrite=True)
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in manifest["shards"]]
    # a slice packs its samples only
    sliced = pack_shards(root, out, split="train[2:5]", name="mid")
    assert sliced["samples"] == 3 and sliced["source"]["split"] == "train[2:5]"


def test_parse_size() -> None:
    assert parse_size("1GB") == 10**9 and parse_size("500MB") == 5 * 10**8 and parse_size("2GiB") == 2 * 2**30
    assert parse_size("1.5 gb") == 1_500_000_000 and parse_size("100000") == 100000
    for bad in ("1XB", "", "GB", "-1GB", "1000"):
        with pytest.raises(DataError, match="--shard-size"):
            parse_size(bad)


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """13 aligned pairs in 4 shards (4 samples each, the last 1)."""
    tmp = tmp_path_factory.mktemp("packed")
    root = write_aligned(tmp / "data", {"train": 13}, h=16, w=16)
    pack_shards(root, tmp / "out", shard_size=10240)
    manifest = json.loads((tmp / "out" / "train.json").read_text())
    assert [s["samples"] for s in manifest["shards"]] == [4, 4, 4, 1]
    return root, tmp / "out" / "train.json"


def _epoch_batches(ds: ShardDataset, epoch: int, *, batch: int, world: int, rank: int, workers: int,
                   start: int = 0) -> list[list[int]]:
    loader, order = build_loader(ds, batch_size=batch, seed=0, world_size=world, rank=rank, num_workers=workers)
    stream = BatchStream(loader, order, epoch, start)
    return [stream.next()["index"].tolist() for _ in range(len(order) - start)]


def test_two_ranks_two_workers_see_every_sample_once_per_epoch(packed: tuple[Path, Path]) -> None:
    _, manifest = packed
    cfg = _cfg(manifest, "data.load_size=16", "data.crop_size=16", "data.shuffle_buffer=4")
    for epoch in (0, 1):
        seen: Counter[int] = Counter()
        lengths = []
        for rank in (0, 1):
            ds = build_dataset(cfg, "train", train=True, seed=3)
            batches = _epoch_batches(ds, epoch, batch=2, world=2, rank=rank, workers=2)
            assert all(len(b) == 2 for b in batches)  # full batches on every rank
            lengths.append(len(batches))
            seen.update(i for b in batches for i in b)
        # 4 slots x 2 samples per batch: 13 samples fill 16 places, 3 repeats from the epoch's start
        assert lengths == [4, 4] and set(seen) == set(range(13)) and sum(seen.values()) == 16
        assert sum(c - 1 for c in seen.values()) == 3
    # with a size that divides evenly, every sample exactly once
    cfg12 = dataclasses.replace(cfg, max_items=12)
    seen = Counter()
    for rank in (0, 1):
        ds = build_dataset(cfg12, "train", train=True, seed=3)
        seen.update(i for b in _epoch_batches(ds, 0, batch=3, world=2, rank=rank, workers=2) for i in b)
    assert seen == Counter(range(12))


def test_shard_order_and_buffer_change_per_epoch_but_not_per_run(packed: tuple[Path, Path]) -> None:
    _, manifest = packed
    cfg = _cfg(manifest, "data.load_size=16", "data.crop_size=16", "data.shuffle_buffer=5")
    ds = build_dataset(cfg, "train", train=True, seed=3)
    e0 = _epoch_batches(ds, 0, batch=1, world=1, rank=0, workers=0)
    e1 = _epoch_batches(ds, 1, batch=1, world=1, rank=0, workers=0)
    again = _epoch_batches(build_dataset(cfg, "train", train=True, seed=3), 0, batch=1, world=1, rank=0, workers=1)
    assert e0 == again and e0 != e1 and sorted(sum(e0, [])) == list(range(13))


def test_folder_and_shards_give_the_same_batches_in_stored_order(packed: tuple[Path, Path]) -> None:
    root, manifest = packed
    overrides = ["data.load_size=20", "data.crop_size=16", "data.shuffle=false"]
    for workers in (0, 1):
        batches = []
        for path in (root, manifest):
            ds = build_dataset(_cfg(path, *overrides), "train", train=True, seed=7)
            loader, order = build_loader(ds, batch_size=4, seed=7, shuffle=False, num_workers=workers)
            stream = BatchStream(loader, order, 0, 0)
            batches.append([stream.next() for _ in range(2 * len(order))])  # two epochs, the last batch short
        assert len(batches[0]) == 8 and batches[0][3]["A"].shape[0] == 1
        for f, s in zip(*batches):
            assert torch.equal(f["A"], s["A"]) and torch.equal(f["B"], s["B"]) and torch.equal(f["index"], s["index"])


def test_resume_within_an_epoch_is_exact_for_the_same_layout(packed: tuple[Path, Path]) -> None:
    _, manifest = packed
    cfg = _cfg(manifest, "data.load_size=16", "data.crop_size=16", "data.shuffle_buffer=4")
    for rank in (0, 1):
        full = _epoch_batches(build_dataset(cfg, "train", train=True, seed=1), 3, batch=2, world=2, rank=rank,
                              workers=2)
        for start in (1, 3):  # 3: the loader's turn falls on the second worker
            tail = _epoch_batches(build_dataset(cfg, "train", train=True, seed=1), 3, batch=2, world=2, rank=rank,
                                  workers=2, start=start)
            assert tail == full[start:]


def test_pipe_url_and_pattern_without_manifest(packed: tuple[Path, Path], tmp_path: Path) -> None:
    _, manifest = packed
    folder = tmp_path / "copy"
    folder.mkdir()
    for tar in manifest.parent.glob("train-*.tar"):
        shutil.copy(tar, folder / tar.name)  # no manifest beside them: the samples are counted first
    overrides = ["data.load_size=16", "data.crop_size=16", "data.shuffle=false"]
    want = [it["index"] for it in _items(build_dataset(_cfg(manifest, *overrides), "train", train=True))]
    for spec in (f"pipe:cat {folder}/train-{{000000..000003}}.tar", f"{folder}/train-{{000000..000003}}.tar",
                 f"{manifest.parent}/train-{{000000..000003}}.tar"):
        ds = build_dataset(_cfg(spec, *overrides), "train", train=True)
        assert len(ds) == 13 and ds.shards.counts == [4, 4, 4, 1]
        assert ds.shards.counted_by == ("manifest" if spec.startswith(str(manifest.parent)) else "counted")
        assert [it["index"] for it in _items(ds)] == want


def test_only_the_training_split_comes_from_shards(packed: tuple[Path, Path]) -> None:
    from pairgan.data.datasets import split_exists

    _, manifest = packed
    cfg = _cfg(manifest)
    assert split_exists(cfg, "train") and not split_exists(cfg, "val")
    with pytest.raises(DataError, match="split 'val' is read from a data set folder"):
        build_dataset(cfg, "val", train=False)


def test_missing_extra_is_one_line(packed: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, manifest = packed
    monkeypatch.setitem(sys.modules, "webdataset", None)  # import webdataset -> ImportError
    for argv in (["data", "pack", str(root), str(tmp_path / "o")],
                 ["bench", "--mode", "data", "--data", str(manifest), "--steps", "1", "--warmup", "0", "--no-peak"]):
        result = CliRunner().invoke(app, argv)
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
        assert result.exit_code == 2 and len(errors) == 1, result.output
        assert "pip install 'pairgan[webdataset]'" in errors[0] and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_a_pack_that_fails_midway_leaves_complete_shards_and_no_manifest(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_aligned(tmp_path / "data", {"train": 9}, h=16, w=16)
    out = tmp_path / "out"
    plain = Path.read_bytes

    def failing(self: Path) -> bytes:  # the 7th file cannot be read (as a disk error or a kill would stop it)
        if self.name == "006.png":
            raise PermissionError(13, "Permission denied", str(self))
        return plain(self)

    monkeypatch.setattr(Path, "read_bytes", failing)
    with pytest.raises(DataError, match="006.png: cannot read"):
        pack_shards(root, out, shard_size=10240)
    monkeypatch.undo()
    left = sorted(p.name for p in out.iterdir())
    assert left == ["train-000000.tar"]  # the finished shard; no manifest, no temporary of the next one
    import tarfile

    with tarfile.open(out / left[0]) as tar:  # and it is whole
        assert len([m for m in tar.getmembers() if m.name.endswith(".json")]) == 4
