"""How close `pairgan plan` comes: predicted against measured peak memory and step time.

    python -m benchmarks.plan_accuracy --out benchmarks/results/plan_accuracy_cpu.json

For each preset and training size: ``plan_run`` (two probes at about 0.4 and 0.8 of the pixels,
each in a fresh process) and then the measurement, a training step at the full size in a fresh process
(``pairgan.plan.probe``: the same ``bench`` step the probes run). Perceptual losses get seeded random
VGG weights (memory and time do not depend on the values). Run it alone on the machine: the times
are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from pairgan.config import build_config
from pairgan.fsutil import atomic_write_text
from pairgan.nets.vgg import VGGFeatures
from pairgan.plan import plan_run, probe

#: preset, extra overrides, training sizes (h, w): the test's three (tests/e2e/test_plan.py) and
#: two full-size presets.
CASES: list[tuple[str, list[str], list[tuple[int, int]]]] = [
    ("demo", [], [(384, 384), (384, 512)]),
    ("pix2pixhd-demo", [], [(256, 256), (256, 512)]),
    ("crn-demo", ["model.vgg_weights={vgg16}"], [(128, 256), (256, 256)]),
    ("pix2pix", [], [(512, 512), (512, 768)]),
    ("pix2pixhd-512", ["model.vgg_weights={vgg19}"], [(256, 512), (384, 768)]),
]


def random_vgg(arch: str, folder: Path) -> Path:
    """A whole VGG ``features`` stack with seeded random values (safetensors)."""
    torch.manual_seed(0)
    features = VGGFeatures(arch, layers=("pool5",), pretrained=False).features
    path = folder / f"{arch}-random.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in features.state_dict().items()}, str(path))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    ap.add_argument("--presets", default=",".join(c[0] for c in CASES))
    args = ap.parse_args()
    wanted = set(args.presets.split(","))
    folder = Path(tempfile.mkdtemp(prefix="plan-accuracy-"))
    vgg = {"vgg16": random_vgg("vgg16", folder), "vgg19": random_vgg("vgg19", folder)}
    result: dict[str, Any] = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                          "torch": torch.__version__, "threads": torch.get_num_threads(),
                                          "load_average_at_start": os.getloadavg()},
                              "rows": []}
    t_start = time.time()
    for preset, extra, sizes in CASES:
        if preset not in wanted:
            continue
        cfg = build_config(preset, [e.format(**vgg) for e in extra] + ["train.device=cpu"])
        for size in sizes:
            t0 = time.time()
            plan = plan_run(cfg, size=size, batch=1, preset=preset)
            plan_s = time.time() - t0
            measured = probe(cfg, size, 1)
            row = {"preset": preset, "size": list(size), "batch": 1,
                   "probes": [[list(p.size), p.batch] for p in plan.probes],
                   "predicted_peak_bytes": plan.peak_bytes, "measured_peak_bytes": measured.peak_bytes,
                   "peak_error": plan.peak_bytes / measured.peak_bytes - 1,
                   "predicted_step_s": plan.step_seconds, "measured_step_s": measured.seconds_per_step,
                   "step_error": plan.step_seconds / measured.seconds_per_step - 1,
                   "plan_wall_s": plan_s, "load_average_after": os.getloadavg()}
            result["rows"].append(row)
            print(f"{preset:15s} {size[1]}x{size[0]}: memory {plan.peak_bytes / 2**20:6.0f} MiB predicted, "
                  f"{measured.peak_bytes / 2**20:6.0f} measured ({100 * row['peak_error']:+5.1f}%); step "
                  f"{plan.step_seconds:6.3f} s predicted, {measured.seconds_per_step:6.3f} measured "
                  f"({100 * row['step_error']:+5.1f}%); plan took {plan_s:.0f} s", flush=True)
    result["wall_s"] = time.time() - t_start
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
