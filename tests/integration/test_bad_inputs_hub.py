"""The bad-input suite, packaged models and the Hub (issue 19): `pairgan package`, `pairgan push` and
`hf://` references given the wrong values. Nothing is downloaded or uploaded: every case fails on its
arguments first (the Hub itself is exercised in tests/e2e/test_hub.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from tests.badinput import Case, check_case

pytest.importorskip("huggingface_hub")

CASES = [
    Case("package-license-not-an-id", ["package", "{run}", "{tmp}/pkg", "--license", "MIT License"], 2,
         r"--license 'MIT License': expected a Hub licence id"),
    Case("package-over-existing", ["package", "{run}", "{existing}"], 2,
         r"existing: already exists; choose another folder or pass --overwrite", unchanged=["{existing}"]),
    Case("package-no-best", ["package", "{run}", "{tmp}/pkg", "--checkpoint", "best"], 2,
         r"no best checkpoint .* without train\.best_metric"),
    Case("package-unknown-checkpoint", ["package", "{run}", "{tmp}/pkg", "--checkpoint", "step_9"], 2,
         r"--checkpoint step_9: not a checkpoint of"),
    Case("package-ema-of-a-run-without", ["package", "{run}", "{tmp}/pkg", "--weights", "ema"], 2,
         r"no EMA weights"),
    Case("package-weights-unknown", ["package", "{run}", "{tmp}/pkg", "--weights", "best"], 2,
         r"weights 'best': expected one of auto, ema, raw"),
    Case("package-dataset-not-an-id", ["package", "{run}", "{tmp}/pkg", "--dataset", "my data!"], 2,
         r"--dataset 'my data!': expected a Hub data set id"),
    Case("package-repo-not-an-id", ["package", "{run}", "{tmp}/pkg", "--repo", "tiny"], 2,
         r"repository 'tiny': expected OWNER/NAME"),
    Case("push-without-license", ["push", "{run}", "me/tiny"], 2, r"--license is required"),
    Case("push-repo-with-space", ["push", "{run}", "me/ti ny", "--license", "mit"], 2,
         r"repository 'me/ti ny': expected OWNER/NAME"),
    Case("push-repo-double-dash", ["push", "{run}", "me/a--b", "--license", "mit"], 2, r"no '--' or '\.\.'"),
    Case("translate-hub-no-owner", ["translate", "hf://tiny", "{images}", "--out", "{tmp}/o"], 2,
         r"'hf://tiny': repository 'tiny': expected OWNER/NAME"),
    Case("translate-hub-empty-revision", ["translate", "hf://me/tiny@", "{images}", "--out", "{tmp}/o"], 2,
         r"revision '': expected a branch, tag or commit"),
    Case("serve-hub-bad-ref", ["serve", "hf://me/a/b"], 2, r"expected OWNER/NAME"),
    Case("evaluate-hub-without-out", ["evaluate", "hf://me/tiny", "--data", "{data}"], 2,
         r"hf://me/tiny: give --out: a Hub model has no run folder"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_hub_input(case: Case, tiny_run: Callable[..., Path], tiny_data: Callable[..., Path],
                       tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine\n")
    data = tiny_data("aligned")
    check_case(case, {"run": tiny_run("pix2pix", steps=2), "tmp": tmp_path, "existing": existing, "data": data,
                      "images": data / "test"})


def test_ids_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
