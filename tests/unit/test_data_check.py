"""Data set check: every problem kind is found and names its file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from rich.table import Table

from pairgan.config import DataConfig
from pairgan.data.check import CheckReport, check_dataset
from pairgan.data.io import write_image
from pairgan.errors import DataError


def img(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c)).astype(np.uint8)


def save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(path)
    return path


def cfg_for(root: Path, **kw) -> DataConfig:
    base = dict(path=str(root), preprocess="crop", load_size=20, crop_size=16)
    base.update(kw)
    return DataConfig(**base)


def problems_of(report: CheckReport) -> dict[str, str]:
    return {Path(f).name: p for f, p in report.problems}


def test_clean_data_set_is_ok(tmp_path: Path) -> None:
    for i in range(3):
        save(tmp_path / "train" / "A" / f"{i}.png", img(20, 24, seed=i))
        save(tmp_path / "train" / "B" / f"{i}.jpg", img(20, 24, seed=i))
        save(tmp_path / "val" / f"{i}.png", img(20, 48, seed=i))
    report = check_dataset(cfg_for(tmp_path))
    assert report.ok and report.problems == []
    assert [r["split"] for r in report.rows] == ["train", "val"]  # val exists, test does not
    train, val = report.rows
    assert train["layout"] == "folders" and train["n_pairs"] == 3
    assert train["min_size"] == (24, 20) == train["max_size"]
    assert train["channels_A"] == [3] and train["channels_B"] == [3]
    assert val["layout"] == "aligned" and val["min_size"] == (24, 20)
    report.raise_if_failed()  # no error
    table = report.render()
    assert isinstance(table, Table) and table.row_count == 2
    console = Console(width=120, record=True)
    console.print(table)
    assert "folders" in console.export_text()


def test_every_problem_kind_is_named(tmp_path: Path) -> None:
    t = tmp_path / "train"
    save(t / "A" / "good.png", img(20, 20))
    save(t / "B" / "good.png", img(20, 20))
    save(t / "A" / "a_only.png", img(20, 20))  # no partner in B
    save(t / "B" / "b_only.png", img(20, 20))  # no partner in A
    full = save(tmp_path / "full.png", img(40, 40, seed=3))
    (t / "A").joinpath("trunc.png").write_bytes(full.read_bytes()[:300])  # truncated
    save(t / "B" / "trunc.png", img(40, 40))
    save(t / "A" / "mismatch.png", img(20, 20))
    save(t / "B" / "mismatch.png", img(20, 22))  # other size
    write_image(t / "A" / "fivech.tif", np.zeros((20, 20, 5)))  # 5 channels -> 3 impossible
    save(t / "B" / "fivech.png", img(20, 20))
    save(t / "A" / "small.png", img(12, 20))  # smaller than crop 16
    save(t / "B" / "small.png", img(12, 20))
    save(t / "A" / "label.png", img(20, 20, c=1))  # 1 -> 3 is convertible: no problem
    save(t / "B" / "label.png", img(20, 20))
    (tmp_path / "val").mkdir()  # empty split
    save(tmp_path / "test" / "odd.png", img(20, 41))  # aligned with an odd width
    report = check_dataset(cfg_for(tmp_path))
    probs = problems_of(report)
    assert not report.ok
    assert "no partner" in probs["a_only.png"] and "B" in probs["a_only.png"]
    assert "no partner" in probs["b_only.png"]
    assert "truncated" in probs["trunc.png"]
    assert "20x20 differs from its partner" in probs["mismatch.png"] and "22x20" in probs["mismatch.png"]
    assert probs["fivech.tif"].startswith("5 channels, expected 3 (data.input_nc)")
    assert "crop_size 16 is larger than the image (20x12)" in probs["small.png"]
    assert probs["val"].startswith("no images")  # the empty split names its folder
    assert "width 41 is odd" in probs["odd.png"]
    assert "good.png" not in probs and "label.png" not in probs
    full_paths = [f for f, _ in report.problems]
    assert str(t / "A" / "a_only.png") in full_paths
    assert [r["split"] for r in report.rows] == ["train", "val", "test"]
    assert report.rows[0]["problems"] == 6 and report.rows[1]["n_pairs"] == 0
    with pytest.raises(DataError) as exc:
        report.raise_if_failed()
    assert f"{t / 'A' / 'a_only.png'}: no partner" in str(exc.value)
    assert "8 problem(s)" in str(exc.value)


def test_channels_checked_against_direction(tmp_path: Path) -> None:
    save(tmp_path / "train" / "A" / "x.png", img(20, 20))
    save(tmp_path / "train" / "B" / "x.png", img(20, 20, c=2))  # gray+alpha
    assert problems_of(check_dataset(cfg_for(tmp_path, output_nc=1))) == {}
    probs = problems_of(check_dataset(cfg_for(tmp_path)))
    assert probs["x.png"].startswith("2 channels, expected 3 (data.output_nc)")
    btoa = problems_of(check_dataset(cfg_for(tmp_path, direction="BtoA")))
    assert btoa["x.png"].startswith("2 channels, expected 3 (data.input_nc)")


def test_label_colour_maps_and_eval_splits(tmp_path: Path) -> None:
    save(tmp_path / "train" / "x.png", img(20, 40))
    save(tmp_path / "test" / "y.png", img(10, 20))  # smaller than crop: fine for evaluation
    report = check_dataset(cfg_for(tmp_path, input_kind="label"), splits=["train", "test"])
    assert report.ok, report.problems


def test_raise_lists_first_ten_and_counts_the_rest(tmp_path: Path) -> None:
    for i in range(13):
        save(tmp_path / "train" / "A" / f"{i:02d}.png", img(20, 20))
    (tmp_path / "train" / "B").mkdir()
    report = check_dataset(cfg_for(tmp_path))
    assert len(report.problems) == 13
    with pytest.raises(DataError) as exc:
        report.raise_if_failed()
    msg = str(exc.value)
    assert "09.png: no partner" in msg and "10.png" not in msg
    assert msg.rstrip().endswith("... and 3 more")


def test_missing_root_and_split(tmp_path: Path) -> None:
    report = check_dataset(cfg_for(tmp_path / "nowhere"))
    assert report.problems == [(str(tmp_path / "nowhere"), "data set folder not found")]
    tmp_path.joinpath("other").mkdir()
    report = check_dataset(cfg_for(tmp_path))
    assert report.problems[0][0] == str(tmp_path / "train")
    assert "split folder not found" in report.problems[0][1]
    assert not check_dataset(DataConfig()).ok
