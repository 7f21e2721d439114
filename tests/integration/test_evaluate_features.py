"""pix2pixHD with instance features is scored with random (seeded) features by default, as the
reference tests; features encoded from the real photos are an explicit choice, labelled in
metrics.json and the report (issue 17 item 5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
import torch

from pairgan.evaluate import evaluate
from pairgan.infer import Translator
from pairgan.methods.build import build_method
from tests.helpers import tiny_config


def _feature_model(data: Path) -> Translator:
    torch.manual_seed(0)
    cfg = tiny_config("pix2pixhd-demo", data, features=True)
    method = build_method(cfg, training=False)
    method.set_inference_mode("eval")
    return Translator(cfg, method, torch.device("cpu"))


# the scenes hold train and val splits (their test split is empty at the default 6 scenes)
def test_evaluate_uses_seeded_random_features_unless_encode_is_asked(tiny_data: Callable[..., Path],
                                                                      tmp_path: Path) -> None:
    data = tiny_data("scenes")
    tr = _feature_model(data)
    seen: list[object] = []
    real = tr.translate_batch

    def spy(batch, seed=0):
        seen.append(batch.get("features"))
        return real(batch, seed=seed)

    tr.translate_batch = spy  # type: ignore[method-assign]
    default = evaluate(tr, data, "val", tmp_path / "a", metrics="l1")
    assert seen and set(seen) == {"random"}
    assert default["features"] == "random" and "random" in default["details"]["features"]["note"]
    again = evaluate(tr, data, "val", tmp_path / "b", metrics="l1")
    assert again["metrics"]["l1"] == default["metrics"]["l1"]  # seeded

    seen.clear()
    encoded = evaluate(tr, data, "val", tmp_path / "c", metrics="l1", features="encode")
    assert set(seen) == {"encode"}
    written = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert written["features"] == "encode" and "REAL PHOTOS" in written["details"]["features"]["note"]
    assert "REAL PHOTOS" in (tmp_path / "c" / "index.html").read_text(encoding="utf-8")
    assert encoded["metrics"]["l1"] != default["metrics"]["l1"]


def test_features_option_refused_for_a_model_without_features(tiny_data: Callable[..., Path],
                                                              tmp_path: Path) -> None:
    data = tiny_data("scenes")
    cfg = tiny_config("pix2pixhd-demo", data)
    tr = Translator(cfg, build_method(cfg, training=False), torch.device("cpu"))
    result = evaluate(tr, data, "val", tmp_path / "a", metrics="l1")  # the default is ignored
    assert result["features"] is None
    with pytest.raises(ValueError, match="no instance features"):
        evaluate(tr, data, "val", tmp_path / "b", metrics="l1", features="encode")
