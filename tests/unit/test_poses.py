"""Pose pairs: keypoint files, heat maps, geometry shared by images and keypoints, splits, checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pairgan.config import build_config
from pairgan.data.datasets import build_dataset, detect_layout, split_exists
from pairgan.data.poses import (
    FLIP_PERMUTATION,
    KEYPOINT_NAMES,
    PoseGeometry,
    PosePairDataset,
    format_annotation,
    heatmaps,
    holdout_components,
    keypoints_from_heatmaps,
    parse_annotation_line,
    parse_annotations,
    person_mask,
    read_annotations,
    render_pose,
    split_pairs,
    write_annotations,
    write_pairs,
)
from pairgan.data.transforms import PairedTransform
from pairgan.errors import DataError

REAL_LINE = ("fashionMENJackets_Vestsid0000401403_3back.png: [-1, 53, 53, 127, 195, 50, 130, 199, 191, -1, -1, "
             "194, -1, -1, -1, -1, 2, 3]: [-1, 127, 172, 183, 183, 82, 70, 75, 158, -1, -1, 101, -1, -1, -1, -1, "
             "146, 108]")


def _kp(points: dict[int, tuple[float, float]]) -> np.ndarray:
    kp = np.full((18, 2), np.nan, np.float32)
    for k, yx in points.items():
        kp[k] = yx
    return kp


def write_pose_set(root: Path, n_people: int = 3, poses: int = 2, h: int = 24, w: int = 16,
                   split_files: bool = False) -> Path:
    """Tiny pose set: each image has one coloured dot per present keypoint (so geometry is visible)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    ann, pairs = {}, []
    for p in range(n_people):
        names = []
        for j in range(poses):
            name = f"p{p}_{j}.png"
            kp = _kp({k: (rng.integers(2, h - 2), rng.integers(2, w - 2)) for k in range(14)})
            img = np.full((h, w, 3), (20 * p) % 256, np.uint8)
            Image.fromarray(img).save(root / "images" / name)
            ann[name] = kp
            names.append(name)
        pairs += [(a, b) for a in names for b in names if a != b]
    write_annotations(root / "annotations.csv", ann)
    write_pairs(root / "pairs.csv", pairs)
    if split_files:
        write_pairs(root / "pairs-train.csv", pairs[:-2])
        write_pairs(root / "pairs-test.csv", pairs[-2:])
    return root


# --------------------------------------------------------------------------- keypoint files


def test_parse_real_annotation_line_and_round_trip():
    name, kp = parse_annotation_line(REAL_LINE)
    assert name == "fashionMENJackets_Vestsid0000401403_3back.png"
    assert kp.shape == (18, 2) and kp.dtype == np.float32
    assert np.isnan(kp[0]).all() and np.isnan(kp[9]).all()  # -1 = missing
    assert tuple(kp[1]) == (53, 127) and tuple(kp[17]) == (3, 108)  # (y, x)
    assert format_annotation(name, kp) == REAL_LINE
    assert parse_annotation_line(format_annotation(name, kp))[0] == name


@pytest.mark.parametrize("bad,msg", [
    ("a.png: [1, 2]: [3, 4]", "expected 18"),
    ("a.png: [1, 2, 3]", "expected 3"),
    ("a.png: [x]: [1]", "bracketed list"),
])
def test_malformed_annotation_lines_name_the_line(bad, msg):
    rows, problems = parse_annotations("name:keypoints_y:keypoints_x\n" + REAL_LINE + "\n" + bad + "\n", "ann.csv")
    assert len(rows) == 1
    assert problems and problems[0][0] == "ann.csv line 3" and msg in problems[0][1]


def test_read_annotations_file(tmp_path: Path):
    p = tmp_path / "annotations.csv"
    p.write_text("name:keypoints_y:keypoints_x\n" + REAL_LINE + "\n")
    rows = read_annotations(p)
    assert list(rows) == ["fashionMENJackets_Vestsid0000401403_3back.png"]
    p.write_text("name:keypoints_y:keypoints_x\n" + REAL_LINE + "\nbroken\n")
    with pytest.raises(DataError, match="line 3"):
        read_annotations(p)


# --------------------------------------------------------------------------- heat maps


def test_heatmap_peak_sigma_and_missing_joints():
    kp = _kp({0: (5, 7), 3: (10.0, 2.0)})
    hm = heatmaps(kp, 16, 12, sigma=2.0)
    assert hm.shape == (18, 16, 12) and hm.dtype == np.float32
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (5, 7)
    assert hm[0, 5, 7] == pytest.approx(1.0)
    # one sigma away along each axis: exp(-1/2); along the diagonal: exp(-1)
    assert hm[0, 5, 9] == pytest.approx(np.exp(-0.5), rel=1e-5)
    assert hm[0, 7, 7] == pytest.approx(np.exp(-0.5), rel=1e-5)
    assert hm[0, 7, 9] == pytest.approx(np.exp(-1.0), rel=1e-5)
    assert hm[3, 10, 2] == pytest.approx(1.0)
    missing = [k for k in range(18) if k not in (0, 3)]
    assert not hm[missing].any()  # missing joints: all-zero channels
    # sub-pixel keypoint: the peak is at the nearest pixel
    hm2 = heatmaps(_kp({1: (3.4, 8.6)}), 16, 12, 1.5)
    assert np.unravel_index(hm2[1].argmax(), hm2[1].shape) == (3, 9)


def test_keypoints_from_heatmaps_inverts_placement():
    kp = _kp({0: (5, 7), 4: (12, 3)})
    est = keypoints_from_heatmaps(torch.from_numpy(heatmaps(kp, 16, 12, 1.5))[None])[0].numpy()
    assert tuple(est[0]) == (5, 7) and tuple(est[4]) == (12, 3)
    assert np.isnan(est[1]).all()
    pic = render_pose(torch.from_numpy(heatmaps(kp, 16, 12, 1.5))[None])
    assert pic.shape == (1, 3, 16, 12) and pic.min() >= -1 and pic.max() <= 1


# --------------------------------------------------------------------------- geometry


class _Fixed:
    """An rng whose draws are fixed: integers -> the given crop offsets, random -> flip or not."""

    def __init__(self, x: int, y: int, flip: bool) -> None:
        self.ints = [x, y]
        self.flip = flip

    def integers(self, lo, hi):
        return self.ints.pop(0)

    def random(self):
        return 0.0 if self.flip else 0.9


def test_flip_mirrors_x_and_swaps_left_right_joints():
    t = PairedTransform("none", 16, 16, flip=True, train=True)
    kp = _kp({2: (4, 3), 5: (4, 12), 0: (2, 7)})  # right shoulder on the left of the image
    plain = PoseGeometry(t, 16, 20, _Fixed(0, 0, False)).keypoints(kp)
    flipped = PoseGeometry(t, 16, 20, _Fixed(0, 0, True)).keypoints(kp)
    np.testing.assert_allclose(plain, kp, equal_nan=True)
    # the flipped right shoulder is the mirrored left shoulder, and vice versa; y unchanged
    assert tuple(flipped[2]) == (4, 15 - 12) and tuple(flipped[5]) == (4, 15 - 3)
    assert tuple(flipped[0]) == (2, 15 - 7)
    assert list(FLIP_PERMUTATION[i] for i in (2, 3, 4, 8, 14, 16)) == [5, 6, 7, 11, 15, 17]
    assert all(KEYPOINT_NAMES[FLIP_PERMUTATION[i]].replace("left", "right") == KEYPOINT_NAMES[i].replace("left", "right")
               for i in range(18))
    # heat maps: flipped channel right_shoulder == the mirrored left_shoulder channel
    hm, hf = heatmaps(plain, 20, 16, 1.5), heatmaps(flipped, 20, 16, 1.5)
    np.testing.assert_allclose(hf[2], hm[5][:, ::-1], atol=1e-6)
    np.testing.assert_allclose(hf, hm[list(FLIP_PERMUTATION)][:, :, ::-1], atol=1e-6)


def test_resize_crop_flip_move_keypoints_with_the_pixels():
    """A dot drawn at each keypoint stays under its heat-map peak through resize, crop and flip."""
    h, w = 40, 30
    kp = _kp({1: (10, 8), 4: (30, 22), 11: (25, 5)})
    img = np.zeros((h, w, 3), np.float32)
    for k in (1, 4, 11):
        y, x = kp[k].astype(int)
        img[y - 1:y + 2, x - 1:x + 2] = 1.0
    t = PairedTransform("resize_and_crop", 56, 48, flip=True, train=True)
    for draw in (_Fixed(3, 5, False), _Fixed(8, 0, True), _Fixed(0, 8, True)):
        geo = PoseGeometry(t, w, h, draw)
        out = geo.image(img)[..., 0]
        moved = geo.keypoints(kp)
        present = np.flatnonzero(np.isfinite(moved).all(axis=1))
        assert len(present) == 3
        for k in present:
            y, x = np.rint(moved[k]).astype(int)
            win = out[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
            assert win.max() > 0.5, (k, moved[k])


def test_dataset_item_and_identical_augmentation(tmp_path: Path):
    root = write_pose_set(tmp_path / "poses")
    assert detect_layout(root, "train") == "poses"
    cfg = build_config("ggb", ["data.preprocess=none", "data.pose_sigma=1.0"], data_path=str(root))
    ds = build_dataset(cfg.data, "all", train=True, size_multiple=8, seed=0)
    assert isinstance(ds, PosePairDataset) and len(ds) == 6
    it = ds[(0, 1)]
    assert set(it) >= {"source", "source_pose", "target_pose", "target", "A_path", "B_path", "index"}
    assert it["source"].shape == (3, 24, 16) and it["target"].shape == (3, 24, 16)
    assert it["source_pose"].shape == (18, 24, 16) and it["target_pose"].shape == (18, 24, 16)
    assert it["source"].min() >= -1 and it["source"].max() <= 1
    assert not it["target_pose"][14:].any()  # joints 14-17 are missing in these files
    # the same key gives the same sample; flips happen for some keys and move both poses alike
    flips = 0
    plain = build_dataset(cfg.data, "all", train=False, size_multiple=8)[1]
    for epoch in range(8):
        a, b = ds[(epoch, 1)], ds[(epoch, 1)]
        assert torch.equal(a["target_pose"], b["target_pose"])
        if not torch.equal(a["target_pose"], plain["target_pose"]):
            flips += 1
            perm = list(FLIP_PERMUTATION)
            assert torch.allclose(a["target_pose"], plain["target_pose"][perm].flip(-1), atol=1e-6)
            assert torch.allclose(a["source_pose"], plain["source_pose"][perm].flip(-1), atol=1e-6)
            assert torch.equal(a["source"], plain["source"].flip(-1))
    assert 0 < flips < 8


# --------------------------------------------------------------------------- splits and checks


def test_holdout_split_is_deterministic_and_person_disjoint(tmp_path: Path):
    root = write_pose_set(tmp_path / "poses", n_people=12, poses=2)
    train, test, val = (split_pairs(root, s) for s in ("train", "test", "val"))
    assert test and test == val and len(train) + len(test) == len(split_pairs(root, "all")) == 24
    train_imgs = {n for p in train for n in p}
    assert not train_imgs & {n for p in test for n in p}
    pairs = split_pairs(root, "all")
    assert holdout_components(pairs) == holdout_components(list(reversed(pairs)))
    assert split_exists(build_config("ggb", data_path=str(root)).data, "test")
    assert not PosePairDataset.split_exists(root, "nope")


def test_split_files_take_precedence(tmp_path: Path):
    root = write_pose_set(tmp_path / "poses", split_files=True)
    assert len(split_pairs(root, "train")) == 4 and len(split_pairs(root, "test")) == 2
    assert len(split_pairs(root, "all")) == 6
    assert not PosePairDataset.split_exists(root, "val")
    with pytest.raises(DataError, match="no pairs file for split 'val'"):
        split_pairs(root, "val")
    # pose-gan names: fashion-pairs-test.csv
    (root / "pairs-test.csv").rename(root / "fashion-pairs-test.csv")
    assert len(split_pairs(root, "test")) == 2


def test_check_split_reports_each_problem(tmp_path: Path):
    root = write_pose_set(tmp_path / "poses")
    cfg = build_config("ggb", ["data.preprocess=none"], data_path=str(root)).data
    row, problems = PosePairDataset.check_split(cfg, root, "all", 8)
    assert problems == [] and row["n_pairs"] == 6 and row["min_size"] == (16, 24)
    (root / "images" / "p1_0.png").unlink()
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "images" / "p2_0.png")
    text = (root / "annotations.csv").read_text().splitlines()
    text = [t for t in text if not t.startswith("p0_1.png")] + ["junk line"]
    (root / "annotations.csv").write_text("\n".join(text) + "\n")
    row, problems = PosePairDataset.check_split(cfg, root, "all", 8)
    msgs = "\n".join(f"{f}: {p}" for f, p in problems)
    assert "p1_0.png: image not found" in msgs
    assert "no keypoints for p0_1.png" in msgs
    assert "expected 3" in msgs  # the junk line
    assert "share one size" in msgs  # p2_0 is 10x10, its partner 16x24
    assert "outside the 10x10 image" in msgs  # p2_0's keypoints were for 16x24


def test_person_mask_covers_the_skeleton():
    kp = _kp({1: (10, 20), 2: (12, 14), 5: (12, 26), 8: (30, 16), 11: (30, 24), 9: (40, 16), 10: (50, 16)})
    m = person_mask(kp, 64, 40)
    assert m.shape == (64, 40) and m.dtype == bool
    assert m[20, 20] and m[45, 16] and m[12, 14]  # torso, shin, shoulder
    assert not m[0, 0] and not m[63, 39] and not m[50, 35]
    assert not person_mask(_kp({}), 64, 40).any()
