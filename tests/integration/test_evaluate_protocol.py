"""`pairgan evaluate --protocol` and `pairgan segmenter train --protocol` on tiny data: the manifest
check (and --force), the result card (JSON round trip, oracle row, not comparable without a pinned
segmenter), `--outputs` re-scoring giving the same metrics, and a repeatable segmenter hash.

A tiny feature extractor stands in for the Inception network (as in test_evaluate.py), so the
cards say the FID network is not the pinned one."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Callable

import pytest
from PIL import Image
from typer.testing import CliRunner

from pairgan.cli import app
from pairgan.errors import DataError
from pairgan.evaluate import checkpoint_sha256, evaluate, weights_sha256
from pairgan.infer import Translator
from pairgan.metrics.card import load_card
from pairgan.metrics.segmentation import FACADES_CLASSES
from pairgan.protocols import Protocol, ResizeRule, SegmenterPin, file_sha256, save_protocol
from tests.integration.test_evaluate import TinyExtractor

runner = CliRunner()

SEG_RECIPE = {"split": "train", "size": 32, "load_size": 32, "flip": True, "steps": 2, "batch_size": 2,
              "lr": 0.001, "net": "unet", "ngf": 8, "num_downs": 5, "norm": "instance"}


def tiny_protocol(data: Path, metrics: tuple[str, ...] = ("l1", "psnr", "ssim", "fid", "kid", "seg"),
                  split: str = "test") -> Protocol:
    """The tiny aligned set's test split (3 files, 40x40 halves; AtoB: the blocky label is A) at 32x32."""
    files = sorted((data / split).glob("*.png"))
    return Protocol(
        name="tiny", version=1, split=split, manifest={f.name: file_sha256(f) for f in files}, layout="aligned",
        direction="AtoB", input="colour_label", palette="facades", resolution=(32, 32),
        resize_photo=ResizeRule("bicubic", "Pillow"), resize_label=ResizeRule("nearest", "Pillow"),
        metrics=metrics, weights={"inception-fid": "0" * 64}, kid_subset_size=2, kid_subsets=10,
        bootstrap_resamples=50, fid_resamples=5,
        segmenter=SegmenterPin(None, FACADES_CLASSES, -1, SEG_RECIPE) if "seg" in metrics else None)


@pytest.fixture
def data(tiny_data: Callable[..., Path]) -> Path:
    return tiny_data("aligned")


@pytest.fixture
def run(tiny_run: Callable[..., Path]) -> Path:
    return tiny_run("pix2pix", steps=2)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRGAN_CACHE", str(tmp_path / "cache"))


def _train_segmenter(protocol: Protocol, data: Path, out: Path, tmp_path: Path) -> str:
    yaml_file = save_protocol(protocol, tmp_path / f"{protocol.name}.yaml")
    r = runner.invoke(app, ["segmenter", "train", "--protocol", str(yaml_file), "--data", str(data),
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    m = re.search(r"segmenter sha256 ([0-9a-f]{64})", r.output)
    assert m is not None and "pins no segmenter yet" in r.output
    return m.group(1)


def test_two_identical_segmenter_trainings_give_the_same_hash(data: Path, tmp_path: Path) -> None:
    p = tiny_protocol(data)
    first = _train_segmenter(p, data, tmp_path / "a", tmp_path)
    second = _train_segmenter(p, data, tmp_path / "b", tmp_path)
    assert first == second
    assert first == weights_sha256(tmp_path / "a" / "checkpoints" / "step_00000002" / "S.safetensors")


def test_protocol_card_outputs_rescoring_and_round_trip(run: Path, data: Path, tmp_path: Path) -> None:
    p = tiny_protocol(data)
    seg_sha = _train_segmenter(p, data, tmp_path / "seg", tmp_path)
    tr = Translator.from_checkpoint(run, device="cpu")
    r = evaluate(tr, data, "ignored", tmp_path / "ev", protocol=p, segmenter=tmp_path / "seg",
                 feature_extractor=TinyExtractor())
    card = load_card(tmp_path / "ev")
    assert r["card"] == card.to_dict()  # the JSON round trip keeps every field
    assert card.protocol == {"name": "tiny", "version": 1, "fingerprint": p.fingerprint}
    assert card.n_images == 3 and r["split"] == "test"
    assert set(card.metrics) >= {"l1", "psnr", "ssim", "fid", "kid", "seg_acc", "seg_class_acc", "seg_miou"}
    assert set(card.oracle) == {"seg_acc", "seg_class_acc", "seg_miou"}  # the segmenter on the real photos
    assert card.oracle["seg_acc"].value == pytest.approx(r["metrics"]["seg_real_acc"])
    assert card.metrics["l1"].low is not None and card.metrics["l1"].low <= card.metrics["l1"].value
    assert card.segmenter_sha256 == seg_sha and card.per_class
    assert card.source["kind"] == "checkpoint" and card.source["method"] == "pix2pix"
    assert card.source["checkpoint_sha256"] == checkpoint_sha256(run) and card.source["train_steps"] == 2
    assert card.source["train_wall_s"] is not None and card.environment["torch"]
    # not comparable, and the notes say why: no pinned segmenter, a stand-in FID network
    assert not card.comparable
    assert any("pins no segmenter" in n for n in card.notes)
    assert any("inception-fid" in n for n in card.notes)

    # the outputs it wrote, re-scored as third-party images: the same metrics
    again = evaluate(None, data, "ignored", tmp_path / "again", protocol=p, segmenter=tmp_path / "seg",
                     outputs_dir=tmp_path / "ev" / "outputs", feature_extractor=TinyExtractor())
    card2 = load_card(tmp_path / "again")
    assert card2.metrics == card.metrics and card2.oracle == card.oracle and card2.per_class == card.per_class
    assert card2.source["kind"] == "outputs" and card2.protocol == card.protocol
    assert again["metrics"]["l1"] == r["metrics"]["l1"]


def test_outputs_of_another_size_are_resized_with_the_protocol_kernel(run: Path, data: Path, tmp_path: Path) -> None:
    p = tiny_protocol(data, metrics=("l1", "psnr"))
    evaluate(Translator.from_checkpoint(run, device="cpu"), data, "x", tmp_path / "ev", protocol=p)
    big = tmp_path / "big"
    big.mkdir()
    for f in (tmp_path / "ev" / "outputs").glob("*.png"):
        Image.open(f).resize((64, 64), Image.Resampling.NEAREST).save(big / f.name)
    r = evaluate(None, data, "x", tmp_path / "ev2", protocol=p, outputs_dir=big)
    assert r["metrics"]["count"] == 3 and 0 <= r["metrics"]["l1"] < 1


def test_manifest_mismatch_refuses_naming_the_file_and_force_marks_the_card(run: Path, data: Path,
                                                                           tmp_path: Path) -> None:
    p = tiny_protocol(data, metrics=("l1", "psnr", "ssim"))
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    victim = sorted((copy / "test").glob("*.png"))[1]
    victim.write_bytes(victim.read_bytes() + b"\0")  # same image, other bytes
    tr = Translator.from_checkpoint(run, device="cpu")
    with pytest.raises(DataError, match=re.escape(victim.name)):
        evaluate(tr, copy, "x", tmp_path / "ev", protocol=p)
    r = evaluate(tr, copy, "x", tmp_path / "ev", protocol=p, force=True)
    card = load_card(tmp_path / "ev")
    assert not card.comparable and any("manifest" in n and victim.name in n for n in card.notes)
    assert r["card"]["comparable"] is False


def test_cli_evaluate_with_a_protocol_file(run: Path, data: Path, tmp_path: Path) -> None:
    p = tiny_protocol(data, metrics=("l1", "psnr", "ssim"))
    yaml_file = save_protocol(p, tmp_path / "tiny.yaml")
    r = runner.invoke(app, ["evaluate", str(run), "--protocol", str(yaml_file), "--data", str(data),
                            "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    assert "protocol tiny v1" in r.output and (tmp_path / "ev" / "card.json").is_file()
    card = load_card(tmp_path / "ev")
    assert card.comparable, card.notes  # no network metric, no segmenter: nothing unpinned was used
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    victim = sorted((copy / "test").glob("*.png"))[0]
    victim.unlink()
    r = runner.invoke(app, ["evaluate", str(run), "--protocol", str(yaml_file), "--data", str(copy),
                            "--out", str(tmp_path / "ev2")])
    assert r.exit_code == 2 and victim.name in r.output and "Traceback" not in r.output


def test_a_model_reads_its_input_as_trained_and_the_truth_is_read_nearest(data: Path) -> None:
    """pix2pix takes the colour label map as an image (bicubic, as it was trained); the protocol's
    nearest rule is for what is scored: the segmentation ground truth, and --outputs reading."""
    from pairgan.config import DataConfig
    from pairgan.evaluate import protocol_data_config

    p = tiny_protocol(data)
    model = protocol_data_config(p, DataConfig(input_kind="image"), from_model=True)
    assert model.input_kind == "image" and model.crop_size == 32 and not model.flip
    assert protocol_data_config(p, DataConfig(input_kind="image"), from_model=False).input_kind == "label"
    assert protocol_data_config(p, DataConfig(input_kind="label", label_nc=20), from_model=True).input_kind == "label"
