"""The one-shot GPU check (``benchmarks/gpu_check.py``): its dry run on this machine's device, its
exactness verdicts, its time guard, its planner seam and its refusal to measure without CUDA."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks import gpu_check
from pairgan.config import build_config

SECTIONS = ("environment", "variants", "reference_baseline", "memory", "planner", "ddp")
STAMP = ("device", "torch", "cuda", "precision", "batch", "size", "command")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The whole dry run, once: its exit status, its JSON and its markdown."""
    out = tmp_path_factory.mktemp("gpu_check")
    # The check sets the Trainer's default backend flags; the rest of the session gets its own back.
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        status = gpu_check.main(["--out", str(out), "--dry-run"])
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = saved
        torch._dynamo.reset()
    return {"status": status, "report": json.loads((out / "gpu_check.json").read_text()),
            "markdown": (out / "gpu_check.md").read_text()}


def _measured(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if "skipped" not in r and "error" not in r]


@pytest.mark.slow
def test_dry_run_fills_every_section_with_figures_or_a_reason(dry_run):
    report = dry_run["report"]
    assert dry_run["status"] == 0
    assert report["complete"] and report["dry_run"] and report["errors"] == []
    for section in SECTIONS:
        assert section in report, section
    plan = gpu_check.make_plan(True)

    variants = report["variants"]["rows"]
    expected = {(wl.name, mode, v.name) for wl in plan.variants for v in gpu_check.VARIANTS
                for mode in ("train", "infer")}
    assert sorted(r["unit"] for r in variants) == sorted(" ".join(e) for e in expected)
    for r in variants:
        # torch.compile may be skipped in a dry run (with its reason); nothing else may be
        assert "error" not in r, r
        if "skipped" in r:
            assert r["unit"].endswith("compile") and r["skipped"].startswith("torch.compile failed"), r
            continue
        assert all(key in r for key in STAMP), r
        assert r["images_per_second"] > 0 and r["seconds_per_step"]["median"] > 0
        if r["mode"] == "train":
            assert len(r["losses"]) == gpu_check.EXACT_STEPS and "planner" in r

    baseline = report["reference_baseline"]["rows"]
    assert len(baseline) == 2 * len(plan.baseline)
    for r in baseline:
        assert set(r["sides"]) == {"reference", "pairgan"} and r["pairgan_speedup_vs_reference"] > 0
        # the same weights and inputs: the reference-structured pix2pix computes what pairgan does
        assert r["agreement"]["exact_enough"], r["agreement"]

    memory = report["memory"]["rows"]
    assert [r["grad_checkpoint"] for r in memory] == [False, True]
    for r in memory:
        assert all(key in r for key in STAMP)
        # no CUDA here: the CUDA figure is n/a, said so, and the RSS is there instead
        assert r["cuda_max_allocated_gib"] is None and r["peak_rss_gib"] > 0 and "n/a" in r["note"]

    assert "skipped" in report["planner"] or report["planner"]["rows"]
    assert report["ddp"] == {"skipped": "0 CUDA device(s): the DDP equality check needs 2"}


@pytest.mark.slow
def test_dry_run_computes_the_exactness_verdicts(dry_run):
    rows = _measured(dry_run["report"]["variants"]["rows"])
    for r in rows:
        if r["variant"] == "fp32":
            assert "exactness" not in r  # it is the reference
            continue
        check = r["exactness"]
        assert isinstance(check["exact_enough"], bool) and check["tolerance"] > 0
    # fp32 against fp32, same weights, batch and seed, on a CPU: the same numbers
    for r in rows:
        if r["variant"] == "fp32-repeat":
            figure = r["exactness"]["max_rel_diff" if r["mode"] == "train" else "max_abs_diff"]
            assert figure == 0 and r["exactness"]["exact_enough"], r
    bf16 = [r for r in rows if r["variant"] == "bf16"]
    assert bf16 and all(r["exactness"]["tolerance"] > 1e-3 for r in bf16)  # bf16 is judged more loosely


@pytest.mark.slow
def test_dry_run_markdown_names_the_device_and_every_section(dry_run):
    md, report = dry_run["markdown"], dry_run["report"]
    assert report["environment"]["device"] in md
    assert "dry run" in md
    for heading in ("## Variants", "## Reference-structured baseline", "## Memory", "## Planner", "## DDP"):
        assert heading in md
    assert "exact enough" in md


@pytest.mark.slow
def test_a_perturbed_run_is_reported_not_exact(dry_run):
    """The verdict can fail: fp32's own losses, one term moved by 1%, are not within fp32's tolerance."""
    fp32 = next(r for r in dry_run["report"]["variants"]["rows"] if r.get("variant") == "fp32" and r["mode"] == "train")
    losses = fp32["losses"]
    same = gpu_check.loss_agreement(losses, losses, 1e-3)
    assert same["exact_enough"] and same["max_rel_diff"] == 0
    perturbed = [dict(step) for step in losses]
    key = next(iter(perturbed[3]))
    perturbed[3][key] *= 1.01
    verdict = gpu_check.loss_agreement(perturbed, losses, 1e-3)
    assert not verdict["exact_enough"]
    assert verdict["at"]["step"] == 3 and verdict["at"]["loss"] == key
    assert verdict["max_rel_diff"] == pytest.approx(0.01, rel=1e-6)
    assert gpu_check.loss_agreement(perturbed, losses, 0.02)["exact_enough"]  # a looser tolerance passes
    perturbed[4][key] = float("nan")
    verdict = gpu_check.loss_agreement(perturbed, losses, 1.0)
    assert verdict["max_rel_diff"] == "non-finite" and not verdict["exact_enough"]
    with pytest.raises(ValueError, match="steps"):
        gpu_check.loss_agreement(losses[:4], losses, 1e-3)


def test_output_agreement_verdicts():
    ref = torch.linspace(-1, 1, 48).view(1, 3, 4, 4)
    assert gpu_check.output_agreement(ref.clone(), ref, 1e-3)["exact_enough"]
    moved = ref.clone()
    moved[0, 1, 2, 3] += 0.01
    check = gpu_check.output_agreement(moved, ref, 1e-3)
    assert not check["exact_enough"] and check["max_abs_diff"] == pytest.approx(0.01, rel=1e-4)
    moved[0, 0, 0, 0] = float("inf")
    assert gpu_check.output_agreement(moved, ref, 1.0)["exact_enough"] is False


def test_a_small_budget_skips_every_unit(tmp_path: Path):
    """The time guard: with no budget left every unit says so instead of running."""
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        assert gpu_check.main(["--out", str(tmp_path), "--dry-run", "--budget-minutes", "0.01"]) == 0
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = saved
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    units = [r for s in ("variants", "reference_baseline", "memory") for r in report[s]["rows"]]
    assert units and all(r["skipped"] == "budget" for r in units)
    assert report["complete"] and "environment" in report
    assert "skipped: budget" in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")
def test_without_cuda_it_says_so_and_writes_nothing(tmp_path: Path, capsys):
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "no CUDA device" in out and "--dry-run" in out
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the planner
@pytest.fixture
def cfg():
    return build_config("pix2pix")


def test_planner_figures_come_through(monkeypatch, cfg):
    seen = {}

    class Prediction:
        peak_bytes, step_seconds = 3 * 2**30, 0.25

        def to_dict(self):
            return {"peak_bytes": self.peak_bytes, "step_seconds": self.step_seconds, "why": "test"}

    def plan_run(cfg, *, size, batch, device):
        seen.update(size=size, batch=batch, device=device)
        return Prediction()

    monkeypatch.setattr(gpu_check, "plan_run", plan_run)
    monkeypatch.setattr(gpu_check, "_PLANS", {})
    got = gpu_check.planner_predictions(cfg, (512, 1024), 8, torch.device("cpu"))
    assert gpu_check.planner_predictions(cfg, (512, 1024), 8, torch.device("cpu")) is got  # computed once
    assert got == {"peak_bytes": 3 * 2**30, "step_seconds": 0.25,
                   "plan": {"peak_bytes": 3 * 2**30, "step_seconds": 0.25, "why": "test"}}
    assert seen == {"size": (512, 1024), "batch": 8, "device": torch.device("cpu")}


def test_planner_errors_surface(monkeypatch, cfg):
    def plan_run(cfg, *, size, batch, device):
        raise RuntimeError("planner bug")

    monkeypatch.setattr(gpu_check, "plan_run", plan_run)
    monkeypatch.setattr(gpu_check, "_PLANS", {})
    with pytest.raises(RuntimeError, match="planner bug"):
        gpu_check.planner_predictions(cfg, (256, 256), 1, torch.device("cpu"))
