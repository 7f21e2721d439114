"""Result cards and the bootstrap intervals on tiny synthetic data (no network, no weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pairgan.errors import DataError
from pairgan.metrics.card import (
    MetricValue,
    ResultCard,
    comparability_problems,
    environment_info,
    load_card,
    save_card,
)
from pairgan.metrics.fid import fid_from_features
from pairgan.metrics.segmentation import confusion_matrix, scores_from_confusion
from pairgan.metrics.suite import EvalContext, compute, seg_per_class, split_oracle, uncertainties
from pairgan.metrics.uncertainty import bootstrap_interval, fid_bootstrap, segmentation_bootstrap


def make_card(title: str = "a", fingerprint: str | None = "f" * 64, comparable: bool = True) -> ResultCard:
    protocol = None if fingerprint is None else {"name": "toy-64", "version": 1, "fingerprint": fingerprint}
    return ResultCard(
        title=title, protocol=protocol,
        metrics={"l1": MetricValue(0.25, 0.2, 0.3, 0.02, "bootstrap 95% (1000 resamples of 8 images)"),
                 "kid": MetricValue(0.01, 0.005, 0.015, 0.005, "mean ± std over 100 subsets of 8"),
                 "fid": MetricValue(42.5)},
        oracle={"seg_acc": MetricValue(0.8, 0.75, 0.85, 0.03, "bootstrap")},
        per_class={"road": {"acc": 0.9, "iou": 0.8}, "sky": {"acc": None, "iou": None}},
        n_images=8,
        source={"kind": "checkpoint", "path": "runs/x", "checkpoint_sha256": "ab" * 32, "method": "pix2pix",
                "config": {"model": {"ngf": 8}}, "train_steps": 10, "train_wall_s": 1.5},
        segmenter_sha256="cd" * 32, comparable=comparable,
        notes=[] if comparable else ["scored with another segmenter than the protocol pins"],
        environment=environment_info("cpu"),
    )


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_interval_contains_mean_narrows_and_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    small = rng.normal(3.0, 1.0, size=20)
    big = rng.normal(3.0, 1.0, size=2000)
    a = bootstrap_interval(small, n_resamples=500, seed=0)
    assert a.value == pytest.approx(small.mean())
    assert a.low < a.value < a.high
    b = bootstrap_interval(big, n_resamples=500, seed=0)
    assert (b.high - b.low) < (a.high - a.low) / 3  # ~ 1/sqrt(100) as wide
    assert bootstrap_interval(small, n_resamples=500, seed=0) == a
    assert bootstrap_interval(small, n_resamples=500, seed=1) != a
    assert "500 resamples" in a.method and a.std > 0


def test_bootstrap_interval_edge_cases() -> None:
    assert bootstrap_interval([2.0]).low is None
    assert bootstrap_interval([]).value is None
    inf = bootstrap_interval([1.0, float("inf")])
    assert inf.low is None and "not finite" in inf.method
    with pytest.raises(ValueError):
        bootstrap_interval([1.0, 2.0], n_resamples=1)


def test_fid_bootstrap_value_is_plain_fid_with_spread() -> None:
    g = torch.Generator().manual_seed(0)
    real = torch.randn(40, 8, generator=g, dtype=torch.float64)
    fake = torch.randn(40, 8, generator=g, dtype=torch.float64) * 1.3 + 0.5
    r = fid_bootstrap(real, fake, n_resamples=10, seed=0)
    assert r.value == pytest.approx(fid_from_features(real, fake))
    assert r.std > 0 and r.low <= r.high
    assert fid_bootstrap(real, fake, n_resamples=10, seed=0) == r


def test_segmentation_bootstrap_sums_confusions() -> None:
    g = torch.Generator().manual_seed(0)
    confs = []
    for _ in range(6):
        gt = torch.randint(0, 3, (8, 8), generator=g)
        pred = torch.where(torch.rand(8, 8, generator=g) < 0.7, gt, torch.randint(0, 3, (8, 8), generator=g))
        confs.append(confusion_matrix(gt, pred, 3))
    r = segmentation_bootstrap(confs, n_resamples=200, seed=0)
    full = scores_from_confusion(torch.stack(confs).sum(0))
    assert r["pixel_acc"].value == pytest.approx(full["pixel_acc"])
    assert r["class_acc"].value == pytest.approx(full["class_acc"])
    assert r["class_iou"].value == pytest.approx(full["mean_iou"])
    for v in r.values():
        assert v.low <= v.value <= v.high and v.std > 0


# --------------------------------------------------------------------------- cards


def test_card_json_round_trip(tmp_path) -> None:
    card = make_card()
    assert ResultCard.from_dict(json.loads(json.dumps(card.to_dict()))) == card
    path = save_card(card, tmp_path / "eval")
    assert path.name == "card.json"
    assert load_card(tmp_path / "eval") == card
    assert load_card(path) == card
    assert "hostname" not in json.dumps(card.environment).lower()


def test_load_card_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(DataError, match="no result card"):
        load_card(tmp_path)
    bad = tmp_path / "card.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=str(bad)):
        load_card(bad)
    bad.write_text(json.dumps({"title": "x"}))
    with pytest.raises(DataError, match="needs the keys"):
        load_card(bad)


def test_comparability_problems() -> None:
    assert comparability_problems([make_card("a"), make_card("b")]) == []
    diff = comparability_problems([make_card("a"), make_card("b", fingerprint="0" * 64)])
    assert len(diff) == 1 and "a (" in diff[0] and "b (" in diff[0] and "fingerprint" in diff[0]
    missing = comparability_problems([make_card("a"), make_card("b", fingerprint=None)])
    assert len(missing) == 1 and missing[0].startswith("b ") and "without a protocol" in missing[0]
    marked = comparability_problems([make_card("a"), make_card("b", comparable=False)])
    assert len(marked) == 1 and "another segmenter" in marked[0]
    assert comparability_problems([make_card("a"), make_card("a")], labels=["run1", "run2"]) == []


# --------------------------------------------------------------------------- the suite's intervals


class _Extractor:
    """Stands in for Inception: per-image channel means and stds (6-d features), no logits."""

    def __call__(self, images):
        x = torch.stack([i.float() for i in images])
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1).double(), None


class _Segmenter:
    """Stands in for a trained segmenter: class = which RGB channel is brightest."""

    n_classes = 3
    checkpoint = "toy"

    class cfg:  # noqa: N801 - mirrors the real segmenter's cfg attribute
        ignore_index = 255
        class_names = ("r", "g", "b")

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return x.argmax(1)

    def labels_to_ids(self, x: torch.Tensor) -> torch.Tensor:
        return x.argmax(1)


def _context(n: int = 6):
    g = torch.Generator().manual_seed(0)
    reals = [torch.rand(3, 16, 16, generator=g) * 2 - 1 for _ in range(n)]
    fakes = [(r + 0.3 * torch.randn(3, 16, 16, generator=g)).clamp(-1, 1) for r in reals]
    labels = [r.argmax(0) for r in reals]
    return EvalContext(fakes, reals, labels, feature_extractor=_Extractor(), segmenter=_Segmenter(),
                       kid_subsets=10, kid_subset_size=4)


def test_suite_uncertainties_match_the_scores() -> None:
    names = ["l1", "psnr", "ssim", "fid", "kid", "seg"]
    ctx = _context()
    scores, _ = compute(names, ctx)
    plain, _ = compute(names, _context())  # the per-image bookkeeping changes no score
    assert scores == plain
    assert len(ctx.per_image["l1"]) == 6 and len(ctx.per_image_confusion["generated"]) == 6
    unc = uncertainties(names, ctx, n_resamples=100, fid_resamples=5, seed=0)
    for n in ("l1", "psnr", "ssim", "fid", "kid", "seg_acc", "seg_class_acc", "seg_miou", "seg_real_acc"):
        assert unc[n].value == pytest.approx(scores[n]), n
        assert unc[n].low is not None and unc[n].low <= unc[n].high, n
    assert unc["kid"].std == pytest.approx(scores["kid_std"]) and "10 subsets of 4" in unc["kid"].method
    assert unc["kid"].low == pytest.approx(scores["kid"] - scores["kid_std"])
    metrics, oracle = split_oracle(unc)
    assert "seg_real_acc" not in metrics and oracle["seg_acc"] is unc["seg_real_acc"]
    per_class = seg_per_class(ctx.details)
    assert set(per_class) == {"r", "g", "b"} and set(per_class["r"]) >= {"acc", "iou", "real_acc", "real_iou"}
