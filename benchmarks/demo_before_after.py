"""The demo before and after it adopted pix2pix-plus's parts: metrics on the 50 held-out scenes and
the picture in the README's quick start.

    # before: the demo of an earlier checkout; after: this one (each ~5 minutes on 2 CPU cores)
    PYTHONPATH=OLD_CHECKOUT/src .venv/bin/python -m pairgan demo --out runs/demo/before --device cpu
    .venv/bin/python -m pairgan demo --out runs/demo/after --device cpu
    # FID, KID, LPIPS and SSIM on the held-out test split (50 scenes), for each:
    .venv/bin/pairgan evaluate runs/demo/after/run --data runs/demo/after/data/aligned --split test \\
        --metrics ssim,psnr,lpips_alex,lpips,fid,kid --device cpu --out runs/demo/after/eval
    .venv/bin/python -m benchmarks.demo_before_after      # table + docs/images/demo_before_after.png

Both demos synthesize the same scenes (seed 0), so the held-out split is the same files. A third
row, ``after-bilinear``, is shown when ``runs/demo/after-bilinear`` exists (the demo preset with
``model.upsample=bilinear``: measured, not kept).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.grids import image_grid, spread_picks

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "runs" / "demo"
OUT = REPO / "benchmarks" / "results" / "demo_before_after.json"
GRID = REPO / "docs" / "images" / "demo_before_after.png"
METRICS = ("fid", "kid", "lpips_alex", "lpips", "ssim", "psnr")


def read(which: str) -> dict:
    metrics = json.loads((RUNS / which / "eval" / "metrics.json").read_text())["metrics"]
    summary = json.loads((RUNS / which / "run" / "train_summary.json").read_text())
    wall = RUNS / f"{which}.wall.json"
    return {"metrics": {k: metrics[k] for k in METRICS if k in metrics},
            "kid_std": metrics.get("kid_std"), "steps": summary["steps"], "train_seconds": summary["seconds"],
            "demo_wall_s": json.loads(wall.read_text())["wall_s"] if wall.exists() else None}


def grid(n: int = 5) -> list[str]:
    """label | before | after | photo for ``n`` held-out scenes."""
    before, after = RUNS / "before" / "eval", RUNS / "after" / "eval"
    picks = spread_picks(after / "outputs", n)
    image_grid([after / "inputs", before / "outputs", after / "outputs", after / "targets"], picks, GRID)
    return picks


def main() -> int:
    rows = [w for w in ("before", "after", "after-bilinear") if (RUNS / w / "eval" / "metrics.json").exists()]
    result = {**{w: read(w) for w in rows}, "grid_files": grid()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print("| | " + " | ".join(METRICS) + " | steps | training s | demo wall s |")
    print("|---|" + "---:|" * (len(METRICS) + 3))
    for which in rows:
        r = result[which]
        cells = [f"{r['metrics'][k]:.4f}" if k != "fid" else f"{r['metrics'][k]:.1f}" for k in METRICS if k in r["metrics"]]
        print(f"| {which} | " + " | ".join(cells) + f" | {r['steps']} | {r['train_seconds']:.0f} | {r['demo_wall_s']} |")
    print(f"{OUT}; {GRID}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
