"""``pairgan demo``: the whole pipeline on the embedded synthetic scenes, on a CPU, in minutes."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from pairgan.config import build_config
from pairgan.evaluate import evaluate_split
from pairgan.fsutil import atomic_write_text
from pairgan.infer import Translator
from pairgan.synth.scenes import synth_scenes
from pairgan.train.trainer import Trainer

log = logging.getLogger(__name__)

DEMO_SIZE = 128


def run_demo(out: str | Path, *, steps: int | None = None, n: int = 500, device: str = "auto") -> dict[str, Any]:
    """Synthesize scenes -> train the ``demo`` preset -> translate the test split -> gallery + metrics.

    Returns a summary with the metrics and the paths written (all under ``out``). Each stage is
    announced at INFO level on this module's logger.
    """
    out = Path(out)
    t0 = time.perf_counter()
    data_root = out / "data"
    log.info("[1/3] synthesizing %d scenes at %dx%d into %s", n, DEMO_SIZE, DEMO_SIZE, data_root)
    if data_root.exists():
        shutil.rmtree(data_root)
    synth_scenes(data_root, n=n, size=DEMO_SIZE, seed=0)
    aligned = data_root / "aligned"

    overrides = [f"train.device={device}"]
    if steps is not None:
        overrides.append(f"train.max_steps={steps}")
    cfg = build_config("demo", overrides, data_path=str(aligned))
    run_dir = out / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    budget = f" or {cfg.train.max_minutes:g} minutes, whichever ends first," if cfg.train.max_minutes > 0 else ""
    log.info("[2/3] training the demo preset for %s steps%s into %s", cfg.train.max_steps, budget, run_dir)
    summary = Trainer(cfg, run_dir).fit()

    log.info("[3/3] translating the held-out test split")
    results = out / "results"
    if results.exists():
        shutil.rmtree(results)
    translator = Translator.from_checkpoint(run_dir, device=device)
    evaluation = evaluate_split(translator, aligned, cfg.data.test_split, results)
    seconds = time.perf_counter() - t0
    result = {
        "seconds": round(seconds, 1),
        "train": summary,
        "metrics": evaluation["metrics"],
        "gallery": str(results / "index.html"),
        "metrics_file": str(results / "metrics.json"),
        "run": str(run_dir),
    }
    atomic_write_text(out / "demo_summary.json", json.dumps(result, indent=2) + "\n")
    return result
