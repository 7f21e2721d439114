"""GGB ablation on the synthetic poses set: the paper's Table 2 presets after equal short training.

    .venv/bin/python benchmarks/ggb_ablation.py                      # ~10 min on a 2-core CPU
    .venv/bin/python benchmarks/ggb_ablation.py --steps 600 --seeds 0 1
    .venv/bin/python benchmarks/ggb_ablation.py --figure RUN --data POSES   # the README picture
    .venv/bin/python benchmarks/ggb_ablation.py --combine a.json b.json     # one table of several runs

For every preset (ggb, ggb-no-ggb, ggb-no-rapd, ggb-no-nvtd, ggb-1, ggb-2) and seed: train with the
same small settings (64x64, half-width networks, batch 8, the same steps, data order and
initialisation seed), then score the held-out people (``pairs-test.csv``: identities never
trained on) with SSIM and mask-SSIM (:func:`pairgan.evaluate.score_pose_split`). A "copy the
source" row shows what no learning at all scores. Writes a JSON of every number and a Markdown
table (``--md``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PRESETS = ["ggb-no-ggb", "ggb-no-rapd", "ggb-no-nvtd", "ggb-1", "ggb-2", "ggb"]
PAPER = {"ggb-no-ggb": 0.705, "ggb-no-rapd": 0.709, "ggb-no-nvtd": 0.714, "ggb-1": 0.780, "ggb-2": 0.793,
         "ggb": 0.799}
LABEL = {"ggb-no-ggb": "w/o GGBs", "ggb-no-rapd": "w/o RAPD", "ggb-no-nvtd": "w/o NVTD", "ggb-1": "1 GGB (/2)",
         "ggb-2": "2 GGBs (/4, /2)", "ggb": "3 GGBs (/8, /4, /2), full"}


def small(size: int, steps: int, seed: int) -> list[str]:
    num_downs = int(np.log2(size))  # 1x1 bottleneck
    return [
        f"data.load_size={size}", f"data.crop_size={size}", f"data.pose_sigma={size / 48:g}",
        f"model.num_downs={num_downs}", "model.ngf=16", "model.ndf=16", "model.ggb_nef=16", "model.ggb_ndf=16",
        "train.batch_size=8", f"train.max_steps={steps}", "train.lr_policy=constant", "train.num_workers=0",
        "train.sample_every=0", "train.save_epoch_every=0", "train.log_every=25", "train.check_data=false",
        f"seed={seed}",
    ]


def copy_source_baseline(data: Path, size: int) -> dict[str, float]:
    """Scores of 'output = the source image' on the test pairs (no learning at all)."""
    from pairgan.config import build_config
    from pairgan.data.datasets import build_dataset
    from pairgan.data.poses import person_mask
    from pairgan.metrics.basic import l1, ssim
    from pairgan.metrics.masked import mask_ssim

    cfg = build_config("ggb", small(size, 1, 0), data_path=str(data))
    ds = build_dataset(cfg.data, "test", train=False, size_multiple=size)
    s, ms, ls = [], [], []
    for i in range(len(ds)):
        it = ds[i]
        a, b = (it["source"][None] + 1) / 2, (it["target"][None] + 1) / 2
        m = torch.from_numpy(person_mask(it["target_keypoints"].numpy(), size, size))[None]
        s.append(float(ssim(a, b)))
        ms.append(float(mask_ssim(a, b, m)))
        ls.append(float(l1(a, b)))
    return {"ssim": float(np.mean(s)), "mask_ssim": float(np.mean(ms)), "l1": float(np.mean(ls)), "count": len(ds)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="synthetic poses set (default: made in a temp dir)")
    ap.add_argument("--n", type=int, default=100, help="identities when making the set (4 poses each)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--presets", nargs="+", default=PRESETS)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these sizes)")
    ap.add_argument("--runs", type=Path, default=None, help="run folders (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=Path(__file__).with_name("ggb_ablation.json"))
    ap.add_argument("--md", type=Path, default=None, help="also write the Markdown table here")
    ap.add_argument("--figure", type=Path, default=None,
                    help="only draw a source | target pose | output | target grid of this run's test pairs")
    ap.add_argument("--figure-out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images" / "ggb_demo.png")
    ap.add_argument("--combine", type=Path, nargs="+", default=None,
                    help="only merge the per-seed runs of these JSON files (same settings) into --json / --md")
    args = ap.parse_args(argv)
    if args.combine:
        return combine(args.combine, args.json, args.md)
    if args.figure is not None:
        torch.set_num_threads(args.threads)
        figure(args.figure, args.data, args.figure_out)
        print(f"wrote {args.figure_out}")
        return 0

    from pairgan.config import build_config
    from pairgan.synth.poses import synth_poses
    from pairgan.infer import Translator
    from pairgan.evaluate import score_pose_split
    from pairgan.train.trainer import Trainer

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="ggb_ablation_"))
    data = args.data
    if data is None:
        data = tmp / "poses"
        synth_poses(data, n=args.n, poses=4, size=128, seed=0)
    runs = args.runs or tmp / "runs"
    results: dict[str, dict] = {"copy source": copy_source_baseline(data, args.size) | {"runs": []}}
    print(f"copy-source baseline: {results['copy source']}", file=sys.stderr)
    t_all = time.perf_counter()
    for preset in args.presets:
        rows = []
        for seed in args.seeds:
            cfg = build_config(preset, small(args.size, args.steps, seed), data_path=str(data))
            run = runs / f"{preset}_s{seed}"
            t = time.perf_counter()
            summary = Trainer(cfg, run, progress=False).fit()
            train_s = time.perf_counter() - t
            tr = Translator.from_checkpoint(run, device="cpu")
            scores = score_pose_split(tr, data, "test")
            rows.append({"seed": seed, **scores, "train_seconds": round(train_s, 1),
                         "seconds_per_step": summary["seconds_per_step_median"],
                         "params": sum(p.numel() for p in tr.method.nets.parameters())})
            print(f"{preset} seed {seed}: {rows[-1]}", file=sys.stderr)
        results[preset] = _summarise(rows)
    meta = {"steps": args.steps, "size": args.size, "seeds": args.seeds, "threads": args.threads,
            "data": str(data), "test_pairs": results["copy source"]["count"],
            "total_seconds": round(time.perf_counter() - t_all, 1), "torch": torch.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "settings": small(args.size, args.steps, 0)}
    args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    table = markdown(results, meta)
    print(table)
    if args.md:
        args.md.write_text(table)
    return 0


def _summarise(rows: list[dict]) -> dict:
    return {"ssim": statistics.mean(r["ssim"] for r in rows), "mask_ssim": statistics.mean(r["mask_ssim"] for r in rows),
            "l1": statistics.mean(r["l1"] for r in rows), "runs": rows}


def combine(files: list[Path], json_out: Path, md_out: Path | None) -> int:
    """Merge runs of the same settings (different seeds) from several result files."""
    loaded = [json.loads(Path(f).read_text()) for f in files]
    metas = [d["meta"] for d in loaded]
    keys = ("steps", "size", "data", "test_pairs")
    if any(tuple(m[k] for k in keys) != tuple(metas[0][k] for k in keys) for m in metas):
        raise SystemExit(f"--combine: the files differ in {keys}")
    results: dict[str, dict] = {"copy source": loaded[0]["results"]["copy source"]}
    for d in loaded:
        for preset, r in d["results"].items():
            if preset != "copy source":
                results.setdefault(preset, {"runs": []})["runs"] += r["runs"]
    for preset in results:
        if preset != "copy source":
            results[preset] = _summarise(sorted(results[preset]["runs"], key=lambda x: x["seed"]))
    meta = dict(metas[0], seeds=sorted(s for m in metas for s in m["seeds"]),
                total_seconds=round(sum(m["total_seconds"] for m in metas), 1), combined=[str(f) for f in files])
    json_out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    table = markdown(results, meta)
    print(table)
    if md_out:
        md_out.write_text(table)
    return 0


def figure(run: Path, data: Path | None, out: Path, pairs: tuple[int, ...] = (0, 15, 27, 42, 49, 62),
           scale: int = 2) -> None:
    """source | target pose | output | target for a few held-out pairs (different people, large
    changes: front -> back, back -> front, arms raised ...), each cell upscaled ``scale`` x."""
    from PIL import Image

    from pairgan.data.datasets import build_dataset
    from pairgan.infer import Translator
    from pairgan.visual import grid_to_uint8, make_grid

    tr = Translator.from_checkpoint(run, device="cpu")
    cfg = tr.cfg.data if data is None else __import__("dataclasses").replace(tr.cfg.data, path=str(data))
    ds = build_dataset(cfg, "test", train=False, size_multiple=tr.method.size_multiple)
    batch = torch.utils.data.default_collate([ds[i % len(ds)] for i in pairs])
    grid = grid_to_uint8(make_grid(tr.method.visuals(batch), max_rows=len(pairs)))
    img = Image.fromarray(grid)
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, optimize=True)


def markdown(results: dict, meta: dict) -> str:
    lines = [
        "| model | preset | SSIM (mean ± sd; per seed) | mask-SSIM | L1 | s/step | paper SSIM (DeepFashion) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    base = results["copy source"]
    lines.append(f"| copy the source (no learning) | - | {base['ssim']:.4f} | {base['mask_ssim']:.4f} | "
                 f"{base.get('l1', float('nan')):.4f} | - | - |")
    for preset, r in results.items():
        if preset == "copy source":
            continue
        per = ""
        if len(r["runs"]) > 1:
            per = (f"± {statistics.stdev(x['ssim'] for x in r['runs']):.4f}; "
                   + " / ".join(f"{x['ssim']:.3f}" for x in r["runs"]))
        sps = statistics.median(x["seconds_per_step"] for x in r["runs"])
        lines.append(f"| {LABEL.get(preset, preset)} | `{preset}` | {r['ssim']:.4f}{f' ({per})' if per else ''} | "
                     f"{r['mask_ssim']:.4f} | {r['l1']:.4f} | {sps:.3f} | {PAPER.get(preset, '-')} |")
    return "\n".join(lines) + (f"\n\n{meta['steps']} steps, {meta['size']}x{meta['size']}, seeds {meta['seeds']}, "
                               f"{meta['test_pairs']} held-out test pairs, {meta['total_seconds']:.0f} s in all.\n")


if __name__ == "__main__":
    raise SystemExit(main())
