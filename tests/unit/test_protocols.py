"""Locked evaluation protocols: fingerprints, YAML round trips, the built-ins and manifest checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pairgan.errors import ConfigError
from pairgan.protocols import (
    Protocol,
    ResizeRule,
    SegmenterPin,
    builtin_names,
    check_manifest,
    file_sha256,
    load_protocol,
    protocol_from_dict,
    save_protocol,
)

CITYSCAPES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cityscapes_pix2pix"
HELDOUT = Path(__file__).resolve().parents[2] / "benchmarks" / "protocols" / "cityscapes-heldout-128.yaml"


def _sha(i: int) -> str:
    return f"{i:064x}"


def small_protocol() -> Protocol:
    return Protocol(
        name="small", version=1, split="test", manifest={"1.png": _sha(1), "2.png": _sha(2)}, layout="aligned",
        direction="BtoA", input="colour_label", palette="facades", resolution=(32, 32),
        resize_photo=ResizeRule("bicubic", "Pillow"), resize_label=ResizeRule("nearest", "Pillow"),
        metrics=("l1", "fid", "kid", "seg"), weights={"inception-fid": _sha(7)}, kid_subset_size=2, kid_subsets=10,
        bootstrap_resamples=50, fid_resamples=5,
        segmenter=SegmenterPin(sha256=_sha(9), classes=("a", "b"), ignore_index=-1, recipe={"steps": 2}),
        seed=0, description="a tiny protocol")


def test_the_same_inputs_give_the_same_fingerprint() -> None:
    a, b = small_protocol(), small_protocol()
    assert a == b and a.fingerprint == b.fingerprint and len(a.fingerprint) == 64
    assert protocol_from_dict(a.to_dict()).fingerprint == a.fingerprint
    # labels and free text are not pinned
    assert dataclasses.replace(a, name="other", version=3, description="x").fingerprint == a.fingerprint


@pytest.mark.parametrize("change", [
    {"manifest": {"1.png": _sha(1), "2.png": _sha(3)}},
    {"manifest": {"1.png": _sha(1), "3.png": _sha(2)}},
    {"resolution": (64, 64)},
    {"resize_photo": ResizeRule("bilinear", "Pillow")},
    {"resize_photo": ResizeRule("bicubic", "OpenCV")},
    {"weights": {"inception-fid": _sha(8)}},
    {"kid_subset_size": 3},
    {"kid_subsets": 11},
    {"segmenter": SegmenterPin(sha256=_sha(10), classes=("a", "b"), recipe={"steps": 2})},
    {"segmenter": SegmenterPin(sha256=None, classes=("a", "b"), recipe={"steps": 2})},
    {"segmenter": SegmenterPin(sha256=_sha(9), classes=("a", "c"), recipe={"steps": 2})},
    {"segmenter": SegmenterPin(sha256=_sha(9), classes=("a", "b"), recipe={"steps": 3})},
    {"seed": 1},
    {"split": "val"},
    {"direction": "AtoB"},
    {"metrics": ("l1", "fid", "seg")},
    {"bootstrap_resamples": 51},
])
def test_every_pinned_item_changes_the_fingerprint(change: dict) -> None:
    base = small_protocol()
    assert dataclasses.replace(base, **change).fingerprint != base.fingerprint


def test_yaml_round_trip(tmp_path: Path) -> None:
    p = small_protocol()
    path = save_protocol(p, tmp_path / "p.yaml")
    back = load_protocol(path)
    assert back == p and back.fingerprint == p.fingerprint and back.description == "a tiny protocol"


def test_a_protocol_is_immutable() -> None:
    p = small_protocol()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.seed = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.manifest["1.png"] = _sha(5)  # type: ignore[index]
    with pytest.raises(TypeError):
        p.segmenter.recipe["steps"] = 5  # type: ignore[index, union-attr]


@pytest.mark.parametrize("key, value, words", [
    (("resize", "label", "kernel"), "bicubic", "nearest"),
    (("data", "manifest"), {"1.png": "abc"}, "1.png"),
    (("weights",), {"inception-fid": "xyz"}, "inception-fid"),
    (("kid", "subset_size"), 0, "kid_subset_size"),
    (("data", "direction"), "sideways", "direction"),
])
def test_malformed_protocols_are_refused_naming_the_item(key: tuple, value: object, words: str) -> None:
    d = small_protocol().to_dict()
    node = d
    for k in key[:-1]:
        node = node[k]
    node[key[-1]] = value
    with pytest.raises(ConfigError, match=words):
        protocol_from_dict(d, where="p.yaml")


def test_unknown_name_or_missing_file() -> None:
    with pytest.raises(ConfigError, match="neither a built-in"):
        load_protocol("no-such-protocol")


def test_builtin_protocols_load() -> None:
    assert {"cityscapes-pix2pix-256", "cityscapes-pix2pix-128", "facades-heldout-256"} <= set(builtin_names())
    p128, p256 = load_protocol("cityscapes-pix2pix-128"), load_protocol("cityscapes-pix2pix-256")
    assert len(p128.manifest) == 500 and p128.manifest == p256.manifest
    assert p128.resolution == (128, 128) and p256.resolution == (256, 256)
    assert p128.split == "val" and p128.direction == "BtoA" and p128.palette == "cityscapes"
    assert p128.resize_photo.kernel == "bicubic" and p128.resize_label.kernel == "nearest"
    # both pin the segmenters trained by `segmenter train --protocol` (the 128 one is the benchmark's)
    assert p128.segmenter is not None and p128.segmenter.sha256 is not None and len(p128.segmenter.sha256) == 64
    assert p256.segmenter is not None and p256.segmenter.sha256 is not None
    assert p256.segmenter.sha256 != p128.segmenter.sha256
    assert load_protocol(HELDOUT).segmenter.sha256 == p128.segmenter.sha256
    assert len(p128.segmenter.classes) == 19 and p128.segmenter.recipe["split"] == "train[:2700]"
    assert p128.fingerprint != p256.fingerprint
    facades = load_protocol("facades-heldout-256")
    assert len(facades.manifest) == 50 and facades.split == "train[350:]"
    held = load_protocol(HELDOUT)
    assert held.split == "train[2700:]" and len(held.manifest) == 275
    assert set(held.manifest) == {f"{i}.jpg" for i in range(2701, 2976)}
    # the same as the 128 protocol except the split and its manifest
    same = dataclasses.replace(held, split=p128.split, manifest=p128.manifest)
    assert same.fingerprint == p128.fingerprint


@pytest.mark.skipif(not (CITYSCAPES / "val.sha256").is_file(), reason="the Cityscapes set is not here")
def test_the_cityscapes_manifest_is_the_canonical_val_list() -> None:
    canonical = dict(reversed(line.split(None, 1)) for line in (CITYSCAPES / "val.sha256").read_text().splitlines())
    assert dict(load_protocol("cityscapes-pix2pix-128").manifest) == {k.strip(): v for k, v in canonical.items()}


def test_check_manifest_names_missing_changed_and_extra_files(tmp_path: Path) -> None:
    files = []
    for i in range(3):
        f = tmp_path / f"{i}.png"
        f.write_bytes(bytes([i]) * 10)
        files.append(f)
    manifest = {f.name: file_sha256(f) for f in files}
    assert not check_manifest(files, manifest)
    files[1].write_bytes(b"changed")
    (tmp_path / "9.png").write_bytes(b"new")
    problem = check_manifest(files[1:] + [tmp_path / "9.png"], manifest)
    assert problem.changed == ("1.png",) and problem.missing == ("0.png",) and problem.extra == ("9.png",)
    msg = problem.message("D/test", "small")
    assert "1.png" in msg and "0.png" in msg and "9.png" in msg
