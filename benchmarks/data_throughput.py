"""Data throughput: a folder data set against its WebDataset shards (`pairgan bench --mode data`).

    python -m benchmarks.data_throughput [--data ../shared/data/cityscapes_pix2pix] [--shards DIR]
        [--shard-size 10MB] [--workers 0 2] [--steps 600] [--rounds 2] [--json OUT.json]

Packs the training split once (`pairgan data pack`, timed; into a temporary folder unless
``--shards``), then runs `pairgan bench --mode data --preset pix2pix --set data.direction=BtoA` (the
default training preprocess: resize 286, random 256 crop, flip; batch 1) in a fresh process for
every (source, loader workers) pair, ``--rounds`` times alternating folders and shards, and reports
the median images/s of the rounds. The machine's load (`uptime`) is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "uptime unavailable"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench_once(data: str, workers: int, steps: int, warmup: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pairgan", "bench", "--mode", "data", "--preset", "pix2pix", "--data", data,
           "--steps", str(steps), "--warmup", str(warmup), "--set", "data.direction=BtoA",
           "--set", f"train.num_workers={workers}"]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "cityscapes_pix2pix"))
    ap.add_argument("--shards", default=None, help="Where to pack (default: a temporary folder).")
    ap.add_argument("--shard-size", default="10MB")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    before = load()
    with tempfile.TemporaryDirectory() as tmp:
        shards = Path(args.shards or Path(tmp) / "shards")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pairgan", "data", "pack", args.data, str(shards), "--shard-size",
                        args.shard_size, "--overwrite"], check=True, cwd=REPO, capture_output=True, text=True)
        pack_s = time.perf_counter() - t0
        manifest = json.loads((shards / "train.json").read_text())
        sources = {"folders": args.data, "shards": str(shards / "train.json")}
        runs: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.rounds):
            for workers in args.workers:
                for name, path in sources.items():
                    runs.setdefault(f"{name}/w{workers}", []).append(bench_once(path, workers, args.steps, args.warmup))
    after = load()
    rows = []
    for key, results in runs.items():
        name, w = key.split("/w")
        rates = [r["images_per_second"] for r in results]
        rows.append({"source": name, "workers": int(w), "images_per_second_median": statistics.median(rates),
                     "images_per_second_rounds": rates, "peak_rss_gib": max(r["peak_rss_gib"] for r in results),
                     "order": results[0]["order"], "reader": results[0]["reader"]})
    out = {
        "benchmark": "data_throughput",
        "data": args.data,
        "preprocess": runs[next(iter(runs))][0]["preprocess"],
        "batch": 1,
        "steps": args.steps,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "pack": {"seconds": round(pack_s, 2), "shard_size": args.shard_size, "shards": len(manifest["shards"]),
                 "samples": manifest["samples"], "bytes": sum(s["bytes"] for s in manifest["shards"])},
        "pairgan_commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                         cwd=REPO).stdout.strip(),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "torch": runs[next(iter(runs))][0]["torch"], "load_before": before, "load_after": after},
        "rows": rows,
    }
    print("| source | loader workers | img/s (median of rounds) | rounds | peak RSS GiB |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        rounds = ", ".join(f"{v:.1f}" for v in r["images_per_second_rounds"])
        print(f"| {r['source']} | {r['workers']} | {r['images_per_second_median']:.1f} | {rounds} | "
              f"{r['peak_rss_gib']:.2f} |")
    print(json.dumps(out["pack"]), json.dumps(out["machine"]))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
