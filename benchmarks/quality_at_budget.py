"""Better images for the same compute: the reference pix2pix recipe against ``pix2pix-plus`` at
equal wall-clock on this machine, with an ablation that adds one lever at a time.

    .venv/bin/python -m benchmarks.quality_at_budget train facades reference --minutes 8 --seed 0
    .venv/bin/python -m benchmarks.quality_at_budget evaluate facades reference --minutes 8 --seed 0
    .venv/bin/python -m benchmarks.quality_at_budget segmenter          # Cityscapes' segmentation score
    .venv/bin/python -m benchmarks.quality_at_budget report             # tables, cards and the grid

Data (label -> photo, BtoA, 128x128 crops from 143 with flips, as the reference at this size):
facades trains on ``train[:350]`` and is scored on the held-out ``train[350:]`` (50 pairs) with
``benchmarks/protocols/facades-heldout-128.yaml``; Cityscapes trains on ``train[:2700]`` and is
scored on ``train[2700:]`` (275 pairs) with ``benchmarks/protocols/cityscapes-heldout-128.yaml``
(with its pinned segmenter, trained by ``benchmarks.cityscapes segmenter``). Every run trains for
``--minutes`` of wall-clock (``train.max_minutes``) on an otherwise idle machine, one at a time.

Each stage is a ``pairgan`` command (printed and kept in the report). Runs live in
``runs/quality/DATASET/ARM-Mm-sS``; stages whose output exists are skipped (``--redo``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.cityscapes import OUT as CITYSCAPES_RUNS
from benchmarks.cityscapes import pairgan, segmenter_command, sets, stage_segmenter, uptime
from benchmarks.grids import image_grid, spread_picks

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared" / "data").resolve()
OUT = REPO / "runs" / "quality"
RESULTS = REPO / "benchmarks" / "results" / "quality_at_budget"
SIZE = 128

#: name -> (data folder, train split, held-out split, protocol, segmenter folder or None)
DATASETS: dict[str, tuple[Path, str, str, Path, Path | None]] = {
    "facades": (SHARED / "facades", "train[:350]", "train[350:]",
                REPO / "benchmarks" / "protocols" / "facades-heldout-128.yaml", None),
    "cityscapes": (SHARED / "cityscapes_pix2pix", "train[:2700]", "train[2700:]",
                   REPO / "benchmarks" / "protocols" / "cityscapes-heldout-128.yaml", CITYSCAPES_RUNS / "segmenter"),
}

#: The ablation: each arm is the previous one plus one lever. name -> (preset, overrides, what it adds)
_EMA = ["train.ema=0.999", "train.ema_start=200"]
_DIFFAUG = ["model.d_augment=diffaug", "model.d_augment_policy=color,translation,cutout"]
_FEATURES = ["model.discriminator=features", "model.gan_mode=hinge"]
_DETERMINISTIC = ["model.norm=instance", "model.dropout=false"]
_RESIZE = ["model.upsample=bilinear"]
_RAMPUP = ["train.ema_rampup=0.05"]
ARMS: dict[str, tuple[str, list[str], str]] = {
    "reference": ("pix2pix-paper", [], "pix2pix-paper: unet_128, 70x70 PatchGAN, batch 1, constant LR 2e-4"),
    "schedule": ("pix2pix", [], "+ the LR decays linearly to 0 over the second half of the steps the budget allows"),
    "ema": ("pix2pix", _EMA, "+ generator EMA (decay 0.999 from step 200); evaluated with the EMA weights"),
    "diffaug": ("pix2pix", _EMA + _DIFFAUG, "+ DiffAugment (colour, translation, cutout; p = 1) on everything D sees"),
    "features": ("pix2pix", _EMA + _DIFFAUG + _FEATURES,
                 "+ D heads on frozen VGG16 features (relu2_2, relu3_3, relu4_3), hinge loss"),
    "deterministic": ("pix2pix", _EMA + _DIFFAUG + _FEATURES + _DETERMINISTIC,
                      "+ a deterministic G: instance norm, no dropout (the same output in training and test mode)"),
    "rampup": ("pix2pix", _EMA + _DIFFAUG + _FEATURES + _DETERMINISTIC + _RAMPUP,
               "+ EMA ramp-up: the average's half-life at most 5% of the steps done"),
    # Off the chain: a variant of "deterministic" measured and not kept.
    "resize": ("pix2pix", _EMA + _DIFFAUG + _FEATURES + _DETERMINISTIC + _RESIZE,
               "deterministic + resize-convolutions in G's up path (bilinear x2, 3x3 conv): no checkerboard"),
    "plus": ("pix2pix-plus", [], "the pix2pix-plus preset"),
}
#: The ablation's chain: each arm adds one lever to the one before.
CHAIN = ("reference", "schedule", "ema", "diffaug", "features", "deterministic", "rampup")
#: At 128x128 the U-Net has 7 levels (unet_128), as the reference uses at this size.
COMMON = [
    "data.direction=BtoA", "data.preprocess=resize_and_crop", "data.load_size=143", f"data.crop_size={SIZE}",
    "data.flip=true", "model.num_downs=7", "train.max_steps=0", "train.sample_every=500", "train.save_every=1000",
    "train.keep_last=1",
]


def run_dir(dataset: str, arm: str, minutes: float, seed: int) -> Path:
    return OUT / dataset / f"{arm}-{minutes:g}m-s{seed}"


def train_command(dataset: str, arm: str, minutes: float, seed: int) -> list[str]:
    data, train_split, heldout, _, _ = DATASETS[dataset]
    preset, extra, _ = ARMS[arm]
    overrides = COMMON + [f"data.train_split={train_split}", f"data.val_split={heldout}"] + extra
    return ["train", "--preset", preset, "--data", str(data), "--out", str(run_dir(dataset, arm, minutes, seed)),
            *sets(overrides + [f"train.max_minutes={minutes:g}", f"seed={seed}"])]


def evaluate_command(dataset: str, arm: str, minutes: float, seed: int, folder: str = "eval") -> list[str]:
    """The evaluation of a run into ``folder``: ``eval`` (default weights and mode), ``eval-raw``
    (the trained weights, not their average) or ``eval-evalmode`` (``--mode eval``)."""
    data, _, _, protocol, segmenter = DATASETS[dataset]
    run = run_dir(dataset, arm, minutes, seed)
    cmd = ["evaluate", str(run), "--protocol", str(protocol), "--data", str(data), "--out", str(run / folder)]
    cmd += {"eval": [], "eval-raw": ["--weights", "raw"], "eval-evalmode": ["--mode", "eval"]}[folder]
    return cmd + (["--segmenter", str(segmenter)] if segmenter else [])


def stage_train(dataset: str, arm: str, args: argparse.Namespace) -> None:
    run = run_dir(dataset, arm, args.minutes, args.seed)
    if (run / "train_summary.json").exists() and not args.redo:
        print(f"{run}: trained already")
        return
    run.parent.mkdir(parents=True, exist_ok=True)
    load = uptime()
    tic = time.time()
    pairgan(*train_command(dataset, arm, args.minutes, args.seed), log=run.parent / f"{run.name}.log")
    record = {"wall_s": round(time.time() - tic, 1), "load_before": load}
    (run.parent / f"{run.name}.timing.json").write_text(json.dumps(record) + "\n")


def stage_evaluate(dataset: str, arm: str, args: argparse.Namespace) -> None:
    run = run_dir(dataset, arm, args.minutes, args.seed)
    if (run / "eval" / "card.json").exists() and not args.redo:
        print(f"{run}: evaluated already")
        return
    pairgan(*evaluate_command(dataset, arm, args.minutes, args.seed), log=run.parent / f"{run.name}.eval.log")


# ---------------------------------------------------------------------------------------- report
#: (card key, column title, higher is better)
COLUMNS = [("fid", "FID", False), ("kid", "KID", False), ("lpips_alex", "LPIPS-Alex", False),
           ("lpips", "LPIPS-VGG", False), ("ssim", "SSIM", True), ("psnr", "PSNR", True), ("seg_miou", "seg mIoU", True)]


#: Evaluation folders of a run: ``eval`` (the default weights: the EMA when there is one) and the
#: side evaluations of the ablation (``--weights raw``, ``--mode eval``), shown as their own rows.
VARIANTS = {"eval": "", "eval-raw": " (raw G)", "eval-evalmode": " (eval mode)"}


def _runs() -> list[dict]:
    """Every evaluated run: dataset, arm, minutes, seed, its card's values and its training facts."""
    found = []
    for card_path in sorted(OUT.glob("*/*/eval*/card.json")):
        run = card_path.parents[1]
        dataset = run.parent.name
        arm, minutes, seed = run.name.rsplit("-", 2)
        variant = VARIANTS.get(card_path.parent.name)
        if variant is None:
            continue
        card = json.loads(card_path.read_text())
        summary = json.loads((run / "train_summary.json").read_text())
        timing_file = run.parent / f"{run.name}.timing.json"
        timing = json.loads(timing_file.read_text()) if timing_file.exists() else {}
        found.append({
            "dataset": dataset, "arm": arm + variant, "minutes": float(minutes[:-1]), "seed": int(seed[1:]),
            "metrics": {k: card["metrics"][k]["value"] for k, _, _ in COLUMNS if k in card["metrics"]},
            "kid_std": card["metrics"]["kid"]["std"], "steps": summary["steps"], "seconds": summary["seconds"],
            "s_per_step": summary.get("seconds_per_step_median"), "load_before": timing.get("load_before"),
            "weights": card.get("source", {}).get("weights"), "protocol": card["protocol"],
            "train": "pairgan " + shlex.join(train_command(dataset, arm, float(minutes[:-1]), int(seed[1:]))),
            "evaluate": "pairgan " + shlex.join(evaluate_command(dataset, arm, float(minutes[:-1]), int(seed[1:]),
                                                                 card_path.parent.name)),
        })
    return found


def _cell(values: list[float], fmt: str) -> str:
    """The mean, and with two or more seeds +- half their range (the spread)."""
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(float(np.mean(values)), fmt)} ± {format((max(values) - min(values)) / 2, fmt)}"


def table(runs: list[dict], dataset: str, minutes: float, arms: list[str]) -> list[str]:
    """A markdown table: one row per arm (mean over seeds ± half range), and the change of each
    metric against the first arm."""
    chosen = [r for r in runs if r["dataset"] == dataset and r["minutes"] == minutes]
    cols = [c for c in COLUMNS if any(c[0] in r["metrics"] for r in chosen)]
    lines = ["| recipe | seeds | steps | " + " | ".join(f"{t} {'↑' if hi else '↓'}" for _, t, hi in cols) + " |",
             "|---|---:|---:|" + "---:|" * len(cols)]
    base = None
    for arm in arms:
        rs = [r for r in chosen if r["arm"] == arm]
        if not rs:
            continue
        means = {k: float(np.mean([r["metrics"][k] for r in rs])) for k, _, _ in cols}
        base = base or means
        cells = []
        for k, _, _ in cols:
            fmt = ".4f" if k in ("kid", "lpips", "lpips_alex", "ssim", "seg_miou") else ".1f" if k == "fid" else ".2f"
            cell = _cell([r["metrics"][k] for r in rs], fmt)
            if k == "kid" and np.mean([r["kid_std"] for r in rs]) > 1e-9:  # 0 when one subset is the whole set
                cell += f" (std {np.mean([r['kid_std'] for r in rs]):.4f})"
            if means is not base and base[k]:
                cell += f" ({100 * (means[k] - base[k]) / abs(base[k]):+.0f}%)"
            cells.append(cell)
        steps = "/".join(str(r["steps"]) for r in sorted(rs, key=lambda r: r["seed"]))
        lines.append(f"| {arm} | {len(rs)} | {steps} | " + " | ".join(cells) + " |")
    return lines


def picture_grid(dataset: str, minutes: float, arms: list[str], n: int, out: Path) -> list[str]:
    """label | each arm (seed 0) | photo for ``n`` held-out pairs, evenly spread."""
    evals = [run_dir(dataset, a, minutes, 0) / "eval" for a in arms]
    picks = spread_picks(evals[0] / "outputs", n)
    image_grid([evals[0] / "inputs"] + [e / "outputs" for e in evals] + [evals[0] / "targets"], picks, out, SIZE)
    return picks


def stage_report(args: argparse.Namespace) -> None:
    runs = _runs()
    if not runs:
        raise SystemExit(f"no evaluated runs under {OUT}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    order = [a + v for a in ARMS for v in VARIANTS.values()]
    md = []
    for dataset in DATASETS:
        for minutes in sorted({r["minutes"] for r in runs if r["dataset"] == dataset}):
            arms = [a for a in order if any(r["arm"] == a and r["dataset"] == dataset and r["minutes"] == minutes
                                            for r in runs)]
            md += [f"### {dataset}, {minutes:g} minutes", "", *table(runs, dataset, minutes, arms), ""]
            if "reference" in arms and "plus" in arms and all(
                    (run_dir(dataset, a, minutes, 0) / "eval" / "outputs").is_dir() for a in ("reference", "plus")):
                grid = REPO / "docs" / "images" / f"quality_{dataset}.png"
                picture_grid(dataset, minutes, ["reference", "plus"], 5, grid)
                md += [f"grid: {grid.relative_to(REPO)}", ""]
    (RESULTS / "tables.md").write_text("\n".join(md) + "\n")
    for card_path in sorted(OUT.glob("*/*/eval*/card.json")):  # the cards, with their intervals
        run = card_path.parents[1]
        target = RESULTS / "cards" / run.parent.name / f"{run.name}{card_path.parent.name[4:]}.card.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(card_path.read_text())
    facts = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
             "arms": {a: {"preset": p, "overrides": o, "adds": d} for a, (p, o, d) in ARMS.items()},
             "common_overrides": COMMON, "segmenter": "pairgan " + shlex.join(segmenter_command()), "runs": runs}
    (RESULTS / "runs.json").write_text(json.dumps(facts, indent=2) + "\n")
    print("\n".join(md))
    print(f"tables and runs.json in {RESULTS}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("stage", choices=["train", "evaluate", "segmenter", "report"])
    p.add_argument("dataset", nargs="?", choices=list(DATASETS))
    p.add_argument("arms", nargs="*", help=f"recipes, some of {', '.join(ARMS)}")
    p.add_argument("--minutes", type=float, default=8.0, help="wall-clock training budget per run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--redo", action="store_true", help="run stages whose outputs exist again")
    args = p.parse_args(argv)
    if args.stage == "report":
        stage_report(args)
        return 0
    if args.stage == "segmenter":  # the Cityscapes benchmark's, shared
        stage_segmenter(args)
        return 0
    if args.dataset is None or not args.arms:
        raise SystemExit("train and evaluate take a data set and one or more recipes")
    if not DATASETS[args.dataset][0].is_dir():
        raise SystemExit(f"{DATASETS[args.dataset][0]}: this data set is not here (see the module docstring)")
    for arm in args.arms:
        if arm not in ARMS:
            raise SystemExit(f"unknown recipe {arm!r}; expected some of {', '.join(ARMS)}")
        (stage_train if args.stage == "train" else stage_evaluate)(args.dataset, arm, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
