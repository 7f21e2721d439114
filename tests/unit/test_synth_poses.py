"""The embedded pose-pairs set: layout, determinism, keypoints on the figure, views, speed, CLI."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from pairgan.cli import app
from pairgan.config import build_config
from pairgan.data.check import check_dataset
from pairgan.data.poses import read_annotations, read_pairs, split_pairs
from pairgan.synth.poses import draw_appearance, draw_pose, render_person, synth_poses


def test_layout_pairs_and_identity_disjoint_splits(tmp_path: Path):
    root = tmp_path / "poses"
    res = synth_poses(root, n=12, poses=3, size=32, seed=1)
    assert res["images"] == 36 and res["pairs"] == 12 * 6
    assert (root / "annotations.csv").read_text().splitlines()[0] == "name:keypoints_y:keypoints_x"
    assert (root / "pairs.csv").read_text().splitlines()[0] == "from,to"
    ann = read_annotations(root / "annotations.csv")
    assert len(ann) == 36 and all((root / "images" / n).is_file() for n in ann)
    pairs = read_pairs(root / "pairs.csv")
    assert all(a.split("_")[0] == b.split("_")[0] and a != b for a, b in pairs)  # same person, two poses
    ids = {s: {a.split("_")[0] for a, _ in split_pairs(root, s)} for s in ("train", "val", "test")}
    assert ids["test"] == {"id0009"} and ids["val"] == {"id0008"} and len(ids["train"]) == 10
    report = check_dataset(build_config("ggb", ["data.preprocess=none"], data_path=str(root)).data, size_multiple=32)
    assert report.ok, report.problem_lines()
    assert [r["split"] for r in report.rows] == ["train", "val", "test"]


def test_deterministic_and_independent_of_n(tmp_path: Path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synth_poses(a, n=2, poses=2, size=32, seed=5)
    synth_poses(b, n=3, poses=2, size=32, seed=5)
    synth_poses(c, n=2, poses=2, size=32, seed=6)
    for name in ("id0000_0front.png", "id0001_1back.png"):
        assert (a / "images" / name).read_bytes() == (b / "images" / name).read_bytes()
    assert (a / "images" / "id0000_0front.png").read_bytes() != (c / "images" / "id0000_0front.png").read_bytes()
    ra, rb = read_annotations(a / "annotations.csv"), read_annotations(b / "annotations.csv")
    np.testing.assert_array_equal(ra["id0001_1back.png"], rb["id0001_1back.png"])


def test_keypoints_lie_on_the_figure_and_views_change():
    for i in range(6):
        app_ = draw_appearance(np.random.default_rng([0, i]))
        bg = np.round(app_.background * 255)
        for j, kind in enumerate(("front", "back", None)):
            img, kp = render_person(app_, draw_pose(np.random.default_rng([0, i, j + 1]), kind), 96)
            assert img.shape == (96, 96, 3) and img.dtype == np.uint8 and kp.shape == (18, 2)
            for k in (1, 2, 5, 8, 11, 9, 12):  # neck, shoulders, hips, knees: on the body, not background
                y, x = kp[k]
                assert y >= 0, (i, j, k)
                bg_row = bg * (1 - 0.08 * y / 96)  # the background's vertical gradient
                assert np.abs(img[y, x] - bg_row).max() > 12, (i, j, k)
            if kind == "front":  # face visible, the person's right on the image's left
                assert (kp[[0, 14, 15]] >= 0).all() and kp[2, 1] < kp[5, 1]
            if kind == "back":  # no face, the person's right on the image's right
                assert (kp[[0, 14, 15]] == -1).all() and kp[2, 1] > kp[5, 1]


def test_fast_enough(tmp_path: Path):
    t = time.perf_counter()
    synth_poses(tmp_path / "p", n=10, poses=4, size=64)
    assert time.perf_counter() - t < 8.0  # ~0.3 s here; generous for busy machines


def test_cli_synth_poses(tmp_path: Path):
    r = CliRunner().invoke(app, ["data", "synth", "poses", str(tmp_path / "p"), "--n", "3", "--poses", "2",
                                 "--size", "32", "--width", "24"])
    assert r.exit_code == 0, r.output
    assert "6 images" in r.output
    assert Image.open(next((tmp_path / "p" / "images").iterdir())).size == (24, 32)
    r = CliRunner().invoke(app, ["data", "synth", "poses", str(tmp_path / "q"), "--poses", "1"])
    assert r.exit_code == 2 and "poses" in r.output
