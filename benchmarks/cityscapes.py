"""Cityscapes labels -> photo, the pix2pix paper's benchmark: the four label-map methods at the
same wall-clock budget, scored by one locked protocol.

    .venv/bin/python -m benchmarks.cityscapes all                 # train, segmenter, evaluate, report
    .venv/bin/python -m benchmarks.cityscapes train pix2pix       # one stage at a time
    .venv/bin/python -m benchmarks.cityscapes segmenter | evaluate [NAME] | report

Data: ``../shared/data/cityscapes_pix2pix`` (2975 training pairs, 512x256 JPEG, photo left, colour
label map right; label -> photo is BtoA). Its 500 val images are kept unseen, so the benchmark
trains on ``train[:2700]`` (the first 2700 files in natural order) and evaluates on the held-out
``train[2700:]`` (the last 275) with the protocol ``benchmarks/protocols/cityscapes-heldout-128.yaml``
(the built-in ``cityscapes-pix2pix-128`` with that split's manifest). Every method trains for the
same wall-clock budget (``--minutes``, ``train.max_minutes``) at 128x128, one at a time, on an
otherwise idle machine; the LR schedule runs over the steps the budget allows.

Each stage is a ``pairgan`` command (printed, and listed in the report), so the report's commands
are exactly what ran. Stages whose output exists are skipped (``--redo`` to run them again).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.grids import image_grid, spread_picks

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data" / "cityscapes_pix2pix").resolve()
PROTOCOL = REPO / "benchmarks" / "protocols" / "cityscapes-heldout-128.yaml"
OUT = REPO / "runs" / "cityscapes"
TRAIN_SPLIT = "train[:2700]"
HELDOUT = "train[2700:]"
SIZE = 128

#: Data settings every method shares: the held-out split never trained on, the 256x256 half resized
#: to 143 and randomly cropped to 128 with flips (pix2pix's recipe at this size).
COMMON = [
    "data.direction=BtoA", f"data.train_split={TRAIN_SPLIT}", f"data.val_split={HELDOUT}",
    "data.preprocess=resize_and_crop", "data.load_size=143", f"data.crop_size={SIZE}", "data.flip=true",
    "train.max_steps=0", "train.sample_every=500", "train.save_every=1000", "train.keep_last=1",
]
#: Colour label maps decoded to the 19 Cityscapes classes + void with the nearest palette colour.
LABELS = [
    "data.layout=aligned", "data.input_kind=label", "data.palette=cityscapes", "data.palette_match=nearest",
    "data.label_nc=20", "data.instance=false",
]

#: name -> (preset, overrides, what it is)
METHODS: dict[str, tuple[str, list[str], str]] = {
    "pix2pix": ("pix2pix", ["model.num_downs=7"],
                "the reference recipe (unet_128 at this size, 70x70 PatchGAN, L1 x 100), colour label image in"),
    # model.vgg_normalize=true: what these runs trained with (the presets' default then; the
    # reference feeds VGG un-normalised images, now the pix2pixhd presets' default)
    "pix2pixhd": ("pix2pixhd-512", LABELS + ["model.netG=global", "model.perceptual=vgg16", "model.vgg_normalize=true"],
                  "global generator, 2 multi-scale Ds, feature matching + VGG16 loss, one-hot labels"),
    "crn": ("crn-256", LABELS + ["model.perceptual=vgg16", "data.flip=true", "model.k=1"],
            "cascaded refinement, one output (the paper's main model; k=9 diversity is its extension), "
            "VGG16 feature loss, one-hot labels"),
    "drpan": ("drpan-pix2pixhd", LABELS + ["model.netG=global", "model.perceptual=vgg16", "model.vgg_normalize=true"],
              "DRPAN on pix2pixHD: the above plus region proposals and the reviser"),
}
ORDER = ("pix2pix", "pix2pixhd", "crn", "drpan")


def pairgan(*args: str, log: Path | None = None) -> None:
    """Run one ``pairgan`` command (this interpreter's), echoing it; stop on failure."""
    cmd = [sys.executable, "-m", "pairgan", *args]
    print("$", shlex.join(["pairgan", *args]), flush=True)
    with open(log, "a") if log else open(os.devnull, "w") as sink:
        rc = subprocess.call(cmd, stdout=sink if log else None, stderr=subprocess.STDOUT if log else None)
    if rc != 0:
        raise SystemExit(f"failed ({rc}): pairgan {shlex.join(args)}" + (f"; log: {log}" if log else ""))


def sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def train_command(name: str, minutes: float, seed: int) -> list[str]:
    preset, extra, _ = METHODS[name]
    return ["train", "--preset", preset, "--data", str(DATA), "--out", str(OUT / name),
            *sets(COMMON + extra + [f"train.max_minutes={minutes}", f"seed={seed}"])]


def segmenter_command() -> list[str]:
    return ["segmenter", "train", "--protocol", str(PROTOCOL), "--data", str(DATA), "--out", str(OUT / "segmenter")]


def evaluate_command(name: str) -> list[str]:
    return ["evaluate", str(OUT / name), "--protocol", str(PROTOCOL), "--data", str(DATA),
            "--segmenter", str(OUT / "segmenter"), "--out", str(OUT / "eval" / name)]


def uptime() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def stage_train(name: str, args: argparse.Namespace) -> None:
    if (OUT / name / "train_summary.json").exists() and not args.redo:
        print(f"{name}: trained already ({OUT / name})")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    load = uptime()
    tic = time.time()
    pairgan(*train_command(name, args.minutes, args.seed), log=OUT / f"{name}.log")
    record = {"name": name, "wall_s": round(time.time() - tic, 1), "load_before": load, "minutes": args.minutes}
    (OUT / f"{name}.timing.json").write_text(json.dumps(record) + "\n")


def stage_segmenter(args: argparse.Namespace) -> None:
    if (OUT / "segmenter" / "checkpoints").exists() and not args.redo:
        print(f"segmenter: trained already ({OUT / 'segmenter'})")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    tic = time.time()
    pairgan(*segmenter_command(), log=OUT / "segmenter.log")
    (OUT / "segmenter.timing.json").write_text(json.dumps({"wall_s": round(time.time() - tic, 1)}) + "\n")


def stage_evaluate(name: str, args: argparse.Namespace) -> None:
    if (OUT / "eval" / name / "card.json").exists() and not args.redo:
        print(f"{name}: evaluated already")
        return
    pairgan(*evaluate_command(name), log=OUT / f"eval_{name}.log")


def picture_grid(names: list[str], n: int, out: Path) -> list[str]:
    """label | each method | photo for ``n`` held-out scenes (the same, evenly spread, for all)."""
    first = OUT / "eval" / names[0]
    picks = spread_picks(first / "outputs", n)
    columns = [first / "inputs"] + [OUT / "eval" / m / "outputs" for m in names] + [first / "targets"]
    image_grid(columns, picks, out, SIZE)
    return picks


def stage_report(args: argparse.Namespace) -> None:
    names = [m for m in ORDER if (OUT / "eval" / m / "card.json").exists()]
    cards_dir = REPO / "benchmarks" / "results" / "cityscapes"
    cards_dir.mkdir(parents=True, exist_ok=True)
    for m in names:
        card = json.loads((OUT / "eval" / m / "card.json").read_text())
        (cards_dir / f"{m}.card.json").write_text(json.dumps(card, indent=2) + "\n")
    pairgan("compare", *[str(OUT / "eval" / m) for m in names], *[a for m in names for a in ("--label", m)],
            "--markdown", str(cards_dir / "table.md"), "--out", str(OUT / "compare.html"))  # its images live in runs/
    picks = picture_grid(names, 6, REPO / "docs" / "images" / "cityscapes_grid.png")
    runs = {}
    for m in names:
        summary = json.loads((OUT / m / "train_summary.json").read_text())
        timing = json.loads((OUT / f"{m}.timing.json").read_text()) if (OUT / f"{m}.timing.json").exists() else {}
        runs[m] = {"steps": summary["steps"], "seconds": summary["seconds"],
                   "s_per_step": summary["seconds_per_step_median"], "load_before": timing.get("load_before"),
                   "command": "pairgan " + shlex.join(train_command(m, args.minutes, args.seed))}
    facts = {"runs": runs, "grid_files": picks, "machine": f"{platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} CPUs", "segmenter": "pairgan " + shlex.join(segmenter_command()),
             "evaluate": ["pairgan " + shlex.join(evaluate_command(m)) for m in names]}
    (cards_dir / "runs.json").write_text(json.dumps(facts, indent=2) + "\n")
    print(f"cards, table and runs.json in {cards_dir}; grid in docs/images/cityscapes_grid.png")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("stage", choices=["all", "train", "segmenter", "evaluate", "report"])
    p.add_argument("names", nargs="*", help=f"methods (default: all of {', '.join(ORDER)})")
    p.add_argument("--minutes", type=float, default=12.0, help="wall-clock training budget per method")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--redo", action="store_true", help="run stages whose outputs exist again")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        raise SystemExit(f"{DATA}: the Cityscapes set is not here (see the module docstring)")
    names = args.names or list(ORDER)
    for n in names:
        if n not in METHODS:
            raise SystemExit(f"unknown method {n!r}; expected some of {', '.join(ORDER)}")
    if args.stage in ("all", "train"):
        for n in names:
            stage_train(n, args)
    if args.stage in ("all", "segmenter"):
        stage_segmenter(args)
    if args.stage in ("all", "evaluate"):
        for n in names:
            stage_evaluate(n, args)
    if args.stage in ("all", "report"):
        stage_report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
