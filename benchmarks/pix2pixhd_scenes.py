"""pix2pixHD (`pix2pixhd-demo`) next to pix2pix (`demo`) on the synthetic scenes: train-step time
and held-out metrics after the same number of steps.

    nice -n 19 .venv/bin/python benchmarks/pix2pixhd_scenes.py --steps 300 --root /tmp/pairgan-hd-scenes

Everything goes through the ``pairgan`` command, exactly as a user would type it (each command is
recorded with its wall time in ``ROOT/results.json``):

1. ``pairgan data synth scenes ROOT/scenes --n N --size 128 --seed 0`` (80/10/10 split);
2. ``pairgan bench --preset pix2pixhd-demo --mode train --steps 5`` and the same for ``demo``
   (batch 1, the bench default), then both at the presets' batch 4 (pix2pixHD with its instance
   features, as trained below), ``--bench-rounds`` times, interleaved;
3. ``pairgan train --preset pix2pixhd-demo --data ROOT/scenes --set model.use_features=true
   --set train.max_steps=STEPS`` and ``pairgan train --preset demo --data ROOT/scenes/aligned
   --set train.max_steps=STEPS`` (same scenes, same batch 4, same LR schedule shape, same steps);
4. ``pairgan features cluster`` on the pix2pixHD run (for ``--features cluster:K|random`` and
   ``benchmarks/pix2pixhd_editing.py``);
5. ``pairgan evaluate`` of both runs on the test split (L1, PSNR, SSIM, LPIPS-VGG, FID). pix2pixHD
   with instance features, evaluated on a split, encodes each *real* test photo's instance
   features (the reference's reconstruction setting: it is told each object's colour), so it is
   also scored with ``--features random`` (a random cluster centre per instance, no information
   from the test photo; ``pairgan translate`` then ``pairgan evaluate --outputs``), which is the
   comparison with pix2pix that is fair.

Writes ``ROOT/results.json`` and, with ``--md``, the Markdown write-up. Wall times are indicative
only: the CPU is shared with other work (the load averages are recorded).
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

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "pairgan"
METRICS = "l1,psnr,ssim,lpips,fid"
COLUMNS = [("l1", "L1 ↓", 4), ("psnr", "PSNR ↑", 2), ("ssim", "SSIM ↑", 4), ("lpips", "LPIPS ↓", 4),
           ("fid", "FID ↓", 1)]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def sh(args: list[str], log: list[dict], what: str) -> dict:
    """Run ``pairgan ARGS`` at nice 19; record the command, its wall time and the load."""
    cmd = ["nice", "-n", "19", str(BIN), *args]
    shown = "pairgan " + " ".join(shlex.quote(a) for a in args)
    print(f"$ {shown}", flush=True)
    before = load()
    tic = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - tic
    entry = {"what": what, "command": shown, "wall_s": round(wall, 1), "load_before": before, "load_after": load(),
             "rc": proc.returncode}
    log.append(entry)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"failed ({proc.returncode}): {shown}")
    print(f"  {wall:.1f} s (load {before} -> {entry['load_after']})", flush=True)
    return entry


def machine() -> dict:
    import torch

    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "platform": platform.platform()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300, help="Training steps of each method (batch 4).")
    ap.add_argument("--root", type=Path, default=Path("/tmp/pairgan-hd-scenes"), help="Data, runs and outputs.")
    ap.add_argument("--n", type=int, default=500, help="Synthetic scenes (80/10/10 train/val/test).")
    ap.add_argument("--bench-rounds", type=int, default=2)
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("--bench-only", action="store_true",
                    help="Only the benches (e.g. again at a quieter moment): ROOT/results_bench.json.")
    ap.add_argument("--md", type=Path, default=None, help="Also write the Markdown write-up here.")
    args = ap.parse_args()

    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    log: list[dict] = []
    res: dict = {"machine": machine(), "load_at_start": load(), "steps": args.steps, "n": args.n, "commands": log}
    data = root / "scenes"
    if not (data / "test_label").is_dir():
        sh(["data", "synth", "scenes", str(data), "--n", str(args.n), "--size", "128", "--seed", "0"], log, "data")

    bench: list[dict] = []
    if not args.skip_bench:
        bdir = root / ("bench_only" if args.bench_only else "bench")
        bdir.mkdir(exist_ok=True)
        variants = [("pix2pixhd-demo", []), ("demo", []),
                    ("pix2pixhd-demo", ["--batch", "4", "--set", "model.use_features=true"]), ("demo", ["--batch", "4"])]
        for r in range(args.bench_rounds):
            for i, (preset, extra) in enumerate(variants):
                out = bdir / f"{preset}_{i}_r{r}.json"
                e = sh(["bench", "--preset", preset, "--mode", "train", "--steps", "5", *extra, "--out", str(out)],
                       log, "bench")
                j = json.loads(out.read_text())
                bench.append({"preset": preset, "variant": i, "round": r, "command": e["command"],
                              "batch": j["batch"], "s_per_step": j["seconds_per_step"]["median"],
                              "gflop_per_step": j["gflop_per_step"], "params": j["parameters"],
                              "peak_gflops": j["machine_peak_gflops"]["best"], "load_before": e["load_before"]})
    res["bench"] = bench
    if args.bench_only:
        res["load_at_end"] = load()
        (root / "results_bench.json").write_text(json.dumps(res, indent=1) + "\n")
        print(bench_table(res))
        return

    runs = {"hd": root / "runs" / "hd", "p2p": root / "runs" / "p2p"}
    common = ["--set", f"train.max_steps={args.steps}"]
    train = {}
    for key, preset, d, extra in (("hd", "pix2pixhd-demo", data, ["--set", "model.use_features=true"]),
                                  ("p2p", "demo", data / "aligned", [])):
        if (runs[key] / "train_summary.json").is_file():
            print(f"{runs[key]}: trained already, kept")
        else:
            sh(["train", "--preset", preset, "--data", str(d), "--out", str(runs[key]), *extra, *common], log,
               f"train {key}")
        train[key] = json.loads((runs[key] / "train_summary.json").read_text())
    res["train"] = train
    sh(["features", "cluster", str(runs["hd"])], log, "cluster")

    ev = root / "eval"
    evals = {}
    sh(["evaluate", str(runs["hd"]), "--data", str(data), "-m", METRICS, "--out", str(ev / "hd_encode")], log,
       "eval hd encode")
    evals["hd_encode"] = json.loads((ev / "hd_encode" / "metrics.json").read_text())
    sh(["translate", str(runs["hd"]), str(data / "test_label"), "--features", "random", "--seed", "0",
        "--out", str(root / "out" / "hd_random"), "--no-gallery", "--overwrite"], log, "translate hd random")
    sh(["evaluate", "--outputs", str(root / "out" / "hd_random"), "--data", str(data), "--preset", "pix2pixhd-demo",
        "-m", METRICS, "--out", str(ev / "hd_random")], log, "eval hd random")
    evals["hd_random"] = json.loads((ev / "hd_random" / "metrics.json").read_text())
    sh(["evaluate", str(runs["p2p"]), "--data", str(data / "aligned"), "-m", METRICS, "--out", str(ev / "p2p")],
       log, "eval p2p")
    evals["p2p"] = json.loads((ev / "p2p" / "metrics.json").read_text())
    res["eval"] = evals
    res["load_at_end"] = load()
    (root / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v["metrics"] for k, v in evals.items()}, indent=1))
    if args.md:
        args.md.write_text(markdown(res, args))
        print(f"wrote {args.md}")


def bench_table(res: dict) -> str:
    """The benches: one row per command, the median over the rounds and every round."""
    import re
    import statistics

    lines = ["## Train-step time (`pairgan bench`, 5 measured steps after 3 warm-up steps)", "",
             "| command | batch | s/step (median of rounds) | each round | GFLOP/step | params G / D (/ E) |",
             "| --- | --- | --- | --- | --- | --- |"]
    seen: dict[tuple, list[dict]] = {}
    for b in res["bench"]:
        seen.setdefault((b["preset"], b["variant"]), []).append(b)
    for rows in seen.values():
        p = rows[0]["params"]
        vals = [r["s_per_step"] for r in rows]
        cmd = re.sub(r" --out \S+", "", rows[0]["command"])
        lines.append(f"| `{cmd}` | {rows[0]['batch']} | {statistics.median(vals):.3f} | "
                     + ", ".join(f"{v:.3f}" for v in vals) + f" | {rows[0]['gflop_per_step']:.1f} | "
                     + " / ".join(f"{p[k] / 1e6:.2f}M" for k in ("G", "D", "E") if k in p) + " |")
    return "\n".join(lines)


def markdown(res: dict, args: argparse.Namespace) -> str:
    m, t, log = res["machine"], res["train"], res["commands"]
    wall = {e["what"]: e for e in log}
    lines = ["# pix2pixHD vs pix2pix on the synthetic scenes", ""]
    if res["bench"]:
        lines += [bench_table(res), ""]
    lines += [f"## {res['steps']} training steps each (batch 4), held-out test split", "",
              "| model | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
              "| --- | " + " | ".join("---" for _ in COLUMNS) + " |"]
    names = {"hd_random": "pix2pixHD (`pix2pixhd-demo` + features), `--features random`",
             "hd_encode": "pix2pixHD, features encoded from the real test photo (oracle)",
             "p2p": "pix2pix (`demo`)"}
    for k in ("hd_random", "p2p", "hd_encode"):
        mt = res["eval"][k]["metrics"]
        lines.append(f"| {names[k]} | " + " | ".join(f"{mt[c]:.{d}f}" for c, _, d in COLUMNS) + " |")
    lines += ["", "| run | train wall time (s) | s/step (median) |", "| --- | --- | --- |"]
    for k, w in (("hd", "train hd"), ("p2p", "train p2p")):
        lines.append(f"| {k} | {wall[w]['wall_s'] if w in wall else t[k]['seconds']} | "
                     f"{t[k]['seconds_per_step_median']} |")
    lines += ["", "Commands (each at `nice -n 19`, wall time, load average before):", "", "```bash"]
    for e in log:
        lines.append(f"{e['command']}   # {e['wall_s']} s, load {e['load_before']}")
    lines += ["```", "", f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['threads']} threads), "
              f"Python {m['python']}, {m['platform']}; shared with other jobs (load average "
              f"{res['load_at_start']} at start, {res['load_at_end']} at the end).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
