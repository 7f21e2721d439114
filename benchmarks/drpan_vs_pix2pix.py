"""DRPAN vs pix2pix on facades (label -> photo), the same networks and the same number of steps.

    nice -n 19 .venv/bin/python benchmarks/drpan_vs_pix2pix.py          # 15-25 min on a shared 2-core CPU
    nice -n 19 .venv/bin/python benchmarks/drpan_vs_pix2pix.py --steps 2000 --size 128 --seeds 0 1

The facades folder has only ``train/`` (400 A|B files, photo left, label map right): the last
``--test-n`` files (by number) are held out as the test split, through symlinks in a temporary
folder, and never trained on. Both methods get the same small U-Net, PatchGAN, batch, data order,
initialisation seed, LR schedule and step count; DRPAN adds its proposal (1-cell window on D's
map, the most fake cell), the image reviser and the 10 x region L1. Each run is then scored on the
held-out files with :func:`pairgan.evaluate.evaluate_split` (``eval`` inference mode) and the
library's metric suite (:mod:`pairgan.metrics.suite`, ``--metrics``): L1, PSNR, SSIM on [0, 1]
images, FID (TF Inception pool3, generated vs the real test photos; weights ``inception-fid``) and
LPIPS (VGG, v0.1; weights ``lpips-vgg``). Both weight files are loaded before any training starts
(``pairgan weights fetch inception-fid lpips-vgg`` if missing). FID over the ~50 held-out images is
a small-sample estimate, biased upwards: compare it only between runs with the same number of test
images. Writes every number to a JSON file and a Markdown table (``--md``). Wall-clock times are
indicative only: the CPU is shared with other work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from pairgan.config import build_config
from pairgan.evaluate import evaluate_split
from pairgan.infer import Translator
from pairgan.methods.build import build_method
from pairgan.metrics.inception import load_inception
from pairgan.metrics.lpips import lpips_model
from pairgan.metrics.suite import parse_metrics
from pairgan.train import train

REPO = Path(__file__).resolve().parents[1]
METHODS = {"pix2pix": "pix2pix", "drpan": "drpan"}
EVAL_METRICS = "l1,psnr,ssim,fid,lpips"
#: Markdown columns: metric, header, digits.
COLUMNS = (("l1", "L1 ↓", 4), ("psnr", "PSNR ↑", 2), ("ssim", "SSIM ↑", 4), ("fid", "FID ↓", 1),
           ("lpips", "LPIPS (VGG) ↓", 4))


def held_out_copy(src: Path, dst: Path, test_n: int) -> tuple[int, int]:
    """``dst/train`` and ``dst/test`` as symlinks to ``src/train``'s files, the last ``test_n`` (by
    numeric stem, else by name) in test."""
    files = sorted((p for p in (src / "train").iterdir() if p.is_file()),
                   key=lambda p: (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.name))
    if len(files) <= test_n:
        raise SystemExit(f"{src}/train has {len(files)} files, cannot hold out {test_n}")
    for split, part in (("train", files[:-test_n]), ("test", files[-test_n:])):
        (dst / split).mkdir(parents=True)
        for p in part:
            os.symlink(p.resolve(), dst / split / p.name)
    return len(files) - test_n, test_n


def settings(size: int, steps: int, batch: int, seed: int) -> list[str]:
    """The shared small setting: a quarter-width U-Net down to 1x1, a 34 px PatchGAN (n_layers 2)."""
    num_downs = max(1, size.bit_length() - 1)  # 1x1 bottleneck
    return [
        "data.direction=BtoA", f"data.load_size={size + size // 8}", f"data.crop_size={size}",
        "model.generator=unet", f"model.num_downs={num_downs}", "model.ngf=16", "model.ndf=16",
        "model.n_layers_D=2", "model.norm=instance", "model.dropout=true", "model.gan_mode=vanilla",
        "model.lambda_L1=100", "model.inference_mode=eval",
        f"train.batch_size={batch}", f"train.max_steps={steps}", "train.lr_policy=linear",
        "train.n_epochs=1", "train.n_epochs_decay=1", "train.num_workers=0", "train.sample_every=0",
        "train.save_every=0", "train.save_epoch_every=0", "train.log_every=25", f"seed={seed}",
    ]


def drpan_settings(size: int) -> list[str]:
    n_layers_r = max(1, (size // 4).bit_length() - 1)  # down to 4x4 before the reviser's 4x4 conv
    return ["model.base=pix2pix", "model.window=1", "model.select=min", "model.reviser=reviser",
            f"model.n_layers_R={n_layers_r}", "model.norm_R=batch", "model.lambda_region=10"]


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def check_metric_weights(metrics: list[str]) -> None:
    """Load the networks FID and LPIPS need now (a missing weights file stops here, not after training)."""
    if any(n in metrics for n in ("fid", "kid", "is")):
        load_inception(None, "cpu")
    for net, name in (("vgg", "lpips"), ("alex", "lpips_alex")):
        if name in metrics:
            lpips_model(net, "cpu")


def run_one(method: str, data: Path, out: Path, size: int, steps: int, batch: int, seed: int,
            metrics: list[str]) -> dict:
    overrides = settings(size, steps, batch, seed) + (drpan_settings(size) if method == "drpan" else [])
    preset = "drpan" if method == "drpan" else "pix2pix"
    cfg = build_config(preset, overrides, data_path=str(data))
    run_dir = out / f"{method}_seed{seed}"
    tic = time.perf_counter()
    summary = train(cfg, run_dir, progress=False)
    train_s = time.perf_counter() - tic
    translator = Translator.from_checkpoint(run_dir, device="cpu", mode="eval")
    tic = time.perf_counter()
    result = evaluate_split(translator, data, "test", run_dir / "test_eval", metrics=tuple(metrics))
    eval_s = time.perf_counter() - tic
    params = {k: sum(p.numel() for p in n.parameters()) for k, n in build_method(cfg, training=True).nets.items()}
    return {"method": method, "seed": seed, "preset": preset, "overrides": overrides, "metrics": result["metrics"],
            "protocol_version": result["protocol_version"], "protocols": result["protocols"],
            "details": result["details"], "metric_seconds": result["timing"]["metrics_s"],
            "train_seconds": round(train_s, 1), "eval_seconds": round(eval_s, 1),
            "seconds_per_step_median": summary["seconds_per_step_median"], "params": params}


TITLE = "# DRPAN vs pix2pix on facades (label -> photo)"


def header() -> str:
    return "\n".join([
        TITLE,
        "",
        "Both methods get the same networks, data order, initialisation seed, LR schedule and number of "
        "steps; DRPAN adds the region proposal, the image reviser and 10 x region L1. Each run is scored "
        "on held-out facades files never trained on (the last files of `facades/train` by number), "
        "`eval` inference mode, with the library's metric suite (`pairgan.evaluate.evaluate_split`, "
        "`pairgan.metrics.suite`): L1 (mean absolute error on [0, 1] images), PSNR (data range 1), SSIM "
        "(11x11 Gaussian), FID (TF Inception 2015-12-05 pool3, the generated test images against the real "
        "test photos, images resized to 299 px; weights `inception-fid`) and LPIPS v0.1 with the VGG trunk "
        "(weights `lpips-vgg`, images at their own size). Lower is better for L1, FID and LPIPS, higher for "
        "PSNR and SSIM.",
        "",
        "This is a short, small-scale run (the paper trains 200 epochs at 256x256): it checks that DRPAN "
        "trains end to end on real data and shows the direction of its effect at equal steps, not the "
        "paper's numbers. \"Equal steps\" means equal data and D updates; DRPAN's step also updates G a "
        "second time (the reviser step), so its G gets twice the updates and about twice the compute.",
        "",
    ])


def section(rows: list[dict], args: argparse.Namespace, info: dict, n_train: int, n_test: int, command: str,
            wall_s: float) -> str:
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)
    cols = [c for c in COLUMNS if all(c[0] in r["metrics"] for r in rows)]

    def mean(method: str, key: str) -> float:
        return statistics.mean(r["metrics"][key] for r in by[method])

    def fmt(method: str, key: str, digits: int) -> str:
        vals = [r["metrics"][key] for r in by[method]]
        s = f"{statistics.mean(vals):.{digits}f}"
        return s + (f" ± {statistics.stdev(vals):.{digits}f}" if len(vals) > 1 else "")

    ratio = None
    if "pix2pix" in by and "drpan" in by:
        ratio = (statistics.mean(r["seconds_per_step_median"] for r in by["drpan"])
                 / statistics.mean(r["seconds_per_step_median"] for r in by["pix2pix"]))
    seeds = ("seeds " if len(args.seeds) > 1 else "seed ") + ", ".join(str(s) for s in args.seeds)
    lines = [
        f"## {args.steps} steps at {args.size}x{args.size} (batch {args.batch}, {seeds})",
        "",
        f"{n_test} test files (the last {n_test} of `facades/train` by number), {n_train} for training.",
        "",
        "| method | " + " | ".join(h for _, h, _ in cols)
        + " | train time (s) | s/step (median) | params G / D / R |",
        "| --- | " + " | ".join("---" for _ in cols) + " | --- | --- | --- |",
    ]
    for m in by:
        t = statistics.mean(r["train_seconds"] for r in by[m])
        sps = statistics.mean(r["seconds_per_step_median"] for r in by[m])
        p = by[m][0]["params"]
        ps = " / ".join(f"{p[k] / 1e6:.2f}M" for k in ("G", "D", "R") if k in p)
        lines.append(f"| {m} | " + " | ".join(fmt(m, k, d) for k, _, d in cols)
                     + f" | {t:.0f} | {sps:.2f} | {ps} |")
    if "pix2pix" in by and "drpan" in by:
        units = {"psnr": " dB"}
        diffs = ", ".join(f"{k.upper() if k != 'lpips' else 'LPIPS'} "
                          f"{mean('drpan', k) - mean('pix2pix', k):+.{d}f}{units.get(k, '')}" for k, _, d in cols)
        lines += ["", f"DRPAN - pix2pix: {diffs}."]
    notes = []
    if "fid" in (c[0] for c in cols):
        notes.append(
            f"FID here is computed from only {n_test} generated and {n_test} real images (2048-d features): a "
            "small-sample estimate, strongly biased upwards (FID shrinks as the number of images grows) and "
            "noisy, so it is not comparable with FIDs in papers (computed on thousands of images) nor with "
            "runs that use another number of test images; only the comparison between the two rows, at the "
            f"same {n_test} images, means anything, and even that is a rough one.")
    if len(args.seeds) == 1:
        notes.append("The seed-to-seed spread was not measured (one seed), so small differences may be noise; "
                     "run `--seeds 0 1 2` for error bars.")
    if notes:
        lines += ["", " ".join(notes)]
    lines += [
        "",
        "Command:",
        "",
        "```bash",
        command,
        "```",
        "",
        "Shared settings (`--set`): `" + " ".join(settings(args.size, args.steps, args.batch, 0)[:-1])
        + "`; DRPAN adds `"
        + " ".join(drpan_settings(args.size)) + "`.",
        "",
    ]
    load = info["load_average_at_start"]
    busy = max(load) > (info["cores"] or 1)  # type: ignore[operator]
    lines += [
        f"Machine: {info['cpu']}, {info['cores']} cores, x86 CPU only (torch {info['torch']}, {info['threads']} "
        f"threads, Python {info['python']}, {info['platform']}), shared with other jobs; load average at start "
        f"{load}. Wall time of the whole command (both trainings and both evaluations): "
        f"{wall_s / 60:.1f} min ({wall_s:.0f} s). "
        + ("The load average was above the core count, so " if busy else "The machine is shared, so ")
        + "times are indicative only; DRPAN's step adds one G forward/backward, one D forward and three "
        "reviser passes" + (f" ({ratio:.1f}x pix2pix's median step time here)." if ratio else "."),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    wall_tic = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "facades")
    ap.add_argument("--test-n", type=int, default=50, help="hold out the last N files of train/ as the test split")
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--metrics", default=EVAL_METRICS,
                    help=f"metrics for pairgan.metrics.suite (default {EVAL_METRICS})")
    ap.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--json", type=Path, default=None, help="also write every number to this JSON file")
    ap.add_argument("--md", type=Path, default=REPO / "benchmarks" / "drpan_vs_pix2pix.md")
    ap.add_argument("--append", action="store_true",
                    help="add this setting as a new section of --md instead of rewriting the file")
    args = ap.parse_args(argv)
    metrics = parse_metrics(args.metrics, segmenter=False)
    check_metric_weights(metrics)
    niceness = os.nice(0)
    command = ((f"nice -n {niceness} " if niceness > 0 else "") + ".venv/bin/python benchmarks/drpan_vs_pix2pix.py "
               + " ".join(argv if argv is not None else sys.argv[1:]))
    info = machine()
    saved_cache = os.environ.get("PAIRGAN_CACHE")
    with tempfile.TemporaryDirectory(prefix="drpan_bench_") as tmp:
        # the real test photos' Inception features are cached under a key that names this temporary
        # split: share them between the runs here, and let them go with the folder
        os.environ["PAIRGAN_CACHE"] = str(Path(tmp) / "cache")
        try:
            data = Path(tmp) / "facades"
            n_train, n_test = held_out_copy(args.data, data, args.test_n)
            out = args.out or Path(tmp) / "runs"
            rows = []
            for seed in args.seeds:
                for method in args.methods:
                    print(f"== {method} seed {seed}: {args.steps} steps at {args.size} px", file=sys.stderr,
                          flush=True)
                    row = run_one(method, data, out, args.size, args.steps, args.batch, seed, metrics)
                    print(f"   {row['metrics']}  ({row['train_seconds']} s train, {row['eval_seconds']} s eval)",
                          file=sys.stderr, flush=True)
                    rows.append(row)
        finally:
            if saved_cache is None:
                os.environ.pop("PAIRGAN_CACHE", None)
            else:
                os.environ["PAIRGAN_CACHE"] = saved_cache
    wall_s = time.perf_counter() - wall_tic
    result = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}, "command": command.strip(),
              "n_train": n_train, "n_test": n_test, "wall_seconds": round(wall_s, 1), "runs": rows}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    text = section(rows, args, info, n_train, n_test, command.strip(), wall_s)
    if args.append and args.md.is_file() and args.md.read_text().startswith(TITLE):
        args.md.write_text(args.md.read_text().rstrip("\n") + "\n\n" + text)
    else:
        args.md.write_text(header() + "\n" + text)
    print(args.md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
