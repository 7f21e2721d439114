"""The training inputs' profile (pairgan.data.profile): what it records, how it round-trips through
JSON and a checkpoint folder, and which inputs its check flags (issue 14, item 7)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pairgan import checkpoint as ckpt
from pairgan.data.datasets import build_dataset
from pairgan.data.profile import (
    KIND_COLOUR_LABELS,
    KIND_IMAGE,
    KIND_LABEL_IDS,
    InputProfile,
    check_input,
    describe_mismatch,
    profile_arrays,
    profile_inputs,
)
from tests.helpers import tiny_config

#: A colour-coded label palette (class i has colour i).
PALETTE = np.array([[0, 0, 0], [200, 30, 30], [30, 200, 30], [30, 30, 200], [220, 220, 40], [128, 128, 128]],
                   np.uint8)


def _ids(rng: np.random.Generator, h: int = 40, w: int = 40, classes: int = len(PALETTE)) -> np.ndarray:
    """A blocky label-id map (background 0, a few rectangles of other classes)."""
    ids = np.zeros((h, w), np.uint8)
    for _ in range(5):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        ids[y : y + rng.integers(4, 16), x : x + rng.integers(4, 16)] = rng.integers(1, classes)
    return ids


def _photo(rng: np.random.Generator, h: int = 40, w: int = 40) -> np.ndarray:
    """A smooth colour 'photo': gradients plus noise, many colours, values spanning 0..255."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([x, y, (x + y) / 2], axis=-1) * 255
    return (base + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8)


def _colour_profile(n: int = 6) -> InputProfile:
    rng = np.random.default_rng(0)
    return profile_arrays([PALETTE[_ids(rng)] for _ in range(n)])


def _photo_profile(n: int = 6) -> InputProfile:
    rng = np.random.default_rng(1)
    return profile_arrays([_photo(rng) for _ in range(n)])


def test_colour_labels_have_their_palette_and_statistics():
    p = _colour_profile()
    assert p.kind == KIND_COLOUR_LABELS and p.channels == 3 and p.items == 6
    assert p.palette == sorted(PALETTE.tolist()) and p.palette_coverage == 1.0
    assert p.distinct_colours == len(PALETTE)
    assert len(p.stats) == 3
    for s in p.stats:
        assert 0.0 <= s.min <= s.p1 <= s.mean <= s.p99 <= s.max <= 1.0 and s.std > 0


def test_photos_have_no_palette_and_span_the_range():
    p = _photo_profile()
    assert p.kind == KIND_IMAGE and p.palette is None and p.palette_coverage is None
    assert p.distinct_colours > 1000
    assert max(s.p99 for s in p.stats) > 0.7 and min(s.p1 for s in p.stats) < 0.1


def test_label_ids_kind_for_one_channel_few_values():
    rng = np.random.default_rng(2)
    p = profile_arrays([_ids(rng) for _ in range(4)])
    assert p.kind == KIND_LABEL_IDS and p.channels == 1 and p.palette == [[i] for i in range(len(PALETTE))]


def test_random_colours_per_image_are_no_palette():
    """Colours that never recur across items (each image its own random colours) are no evidence
    of a shared palette: otherwise a fresh image of the same data would misfit it."""
    rng = np.random.default_rng(3)
    arrays = []
    for _ in range(5):
        a = np.zeros((40, 40, 3), np.uint8)
        for _ in range(4):
            y, x = rng.integers(0, 32, 2)
            a[y : y + 8, x : x + 8] = rng.integers(0, 256, 3)
        arrays.append(a)
    p = profile_arrays(arrays)
    assert p.palette is None and p.kind == KIND_IMAGE


def test_json_round_trip_and_malformed_profiles():
    p = _colour_profile()
    assert InputProfile.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    with pytest.raises(ValueError, match="not an input profile"):
        InputProfile.from_dict({"kind": "image"})
    bad = p.to_dict() | {"channels": 1}
    with pytest.raises(ValueError, match="3 channel statistics for 1 channels"):
        InputProfile.from_dict(bad)


# --------------------------------------------------------------------------- the check


def test_id_map_given_to_a_colour_label_model_is_flagged():
    ids = _ids(np.random.default_rng(9))
    problems = check_input(_colour_profile(), ids)
    assert len(problems) == 1
    assert "a 1-channel image with" in problems[0] and "(a label-id map?)" in problems[0]
    assert "trained on 3-channel colour labels with 6 colours" in problems[0]


def test_in_distribution_inputs_are_not_flagged():
    rng = np.random.default_rng(10)
    colour, photo = _colour_profile(), _photo_profile()
    for _ in range(5):
        assert check_input(colour, PALETTE[_ids(rng)]) == []
        assert check_input(photo, _photo(rng)) == []


def test_jpeg_like_noise_and_soft_edges_still_fit_the_palette():
    rng = np.random.default_rng(11)
    noisy = (PALETTE[_ids(rng)].astype(int) + rng.integers(-12, 13, (40, 40, 3))).clip(0, 255).astype(np.uint8)
    assert check_input(_colour_profile(), noisy) == []


def test_colours_far_from_the_palette_are_flagged():
    photo = _photo(np.random.default_rng(12))
    problems = check_input(_colour_profile(), photo)
    assert len(problems) == 1 and "far from every one of the 6 training colours" in problems[0]


def test_photo_model_accepts_grey_and_dark_photos_but_not_id_maps():
    """No false alarms on normal photos of a photo model: greyscale (1 channel) and dim ones pass;
    a 1-channel map of a few small ids does not."""
    rng = np.random.default_rng(13)
    p = _photo_profile()
    grey = _photo(rng).mean(axis=2).astype(np.uint8)
    dim = (_photo(rng) * 0.3).astype(np.uint8)
    assert check_input(p, grey) == [] and check_input(p, dim) == []
    problems = check_input(p, _ids(rng))
    assert len(problems) == 1 and "(a label-id map?)" in problems[0]


def test_value_range_far_outside_the_training_range_is_flagged():
    p = _photo_profile()
    near_black = np.random.default_rng(14).integers(0, 12, (40, 40, 3)).astype(np.uint8)
    (problem,) = check_input(p, near_black)
    assert "near-black" in problem and "training inputs reached" in problem
    near_white = 255 - near_black
    (problem,) = check_input(p, near_white)
    assert "near-white" in problem
    # A model trained on small label ids (values 0..5 of 255) given a photo.
    ids_profile = profile_arrays([_ids(np.random.default_rng(i)) for i in range(4)])
    grey_photo = _photo(np.random.default_rng(15)).mean(axis=2).astype(np.uint8)
    (problem,) = check_input(ids_profile, grey_photo)
    assert "training inputs stayed at or below" in problem


def test_one_line_naming_the_file():
    line = describe_mismatch("in/ids.png", ["a", "b"])
    assert line == "in/ids.png: a; b" and "\n" not in line
    assert describe_mismatch("x.png", []) is None


# --------------------------------------------------------------------------- data set and checkpoint


def test_profile_of_a_data_set_reads_the_input_side(tmp_path: Path):
    """The profile reads the input half of each aligned file (direction respected), not the target."""
    rng = np.random.default_rng(16)
    (tmp_path / "train").mkdir()
    for i in range(7):
        Image.fromarray(np.concatenate([PALETTE[_ids(rng)], _photo(rng)], axis=1)).save(tmp_path / "train" / f"{i}.png")
    ab = profile_inputs(build_dataset(tiny_config("pix2pix", tmp_path).data, "train", train=True))
    ba = profile_inputs(build_dataset(tiny_config("pix2pix", tmp_path, "data.direction=BtoA").data, "train",
                                      train=True))
    assert ab is not None and ab.kind == KIND_COLOUR_LABELS and ab.items == 7
    assert ba is not None and ba.kind == KIND_IMAGE
    assert profile_inputs(build_dataset(tiny_config("pix2pix", tmp_path).data, "train", train=True), max_items=3).items == 3


def test_checkpoint_keeps_the_profile_and_older_ones_load_without(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    cfg = tiny_config("pix2pix")
    p = _colour_profile()
    with_profile = ckpt.save_checkpoint(tmp_path / "a", cfg, {}, input_profile=p)
    assert (with_profile / ckpt.INPUT_PROFILE_FILE).is_file()
    assert ckpt.load_input_profile(with_profile) == p
    without = ckpt.save_checkpoint(tmp_path / "b", cfg, {})
    assert not (without / ckpt.INPUT_PROFILE_FILE).exists() and ckpt.load_input_profile(without) is None
    (without / ckpt.INPUT_PROFILE_FILE).write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="pairgan"):
        assert ckpt.load_input_profile(without) is None
    assert "input_profile.json: not a readable input profile" in caplog.text
