"""`pairgan plan` against measurement: for three presets at two sizes each, the predicted peak memory
of a training step is within 15% of a fresh process training at that size, and under a memory budget
the recommended batch fits when it runs. The predicted step times are recorded beside the measured
ones (printed with -s) but not asserted: tests never assert wall time (benchmarks/plan_accuracy.md
has the figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from pairgan.cli import app
from pairgan.config import build_config
from pairgan.plan import parse_memory, plan_run, probe

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

#: preset, extra overrides, two training sizes (h, w)
CASES = [
    ("demo", [], [(384, 384), (384, 512)]),
    ("pix2pixhd-demo", [], [(256, 256), (256, 512)]),
    ("crn-demo", ["model.vgg_weights={vgg16}"], [(128, 256), (256, 256)]),
]


@pytest.mark.parametrize("preset, extra, sizes", CASES, ids=[c[0] for c in CASES])
def test_predicted_peak_memory_is_within_15_percent(preset, extra, sizes, random_vgg_weights: Callable[[str], Path]):
    cfg = build_config(preset, [e.format(vgg16=random_vgg_weights("vgg16")) for e in extra] + ["train.device=cpu"])
    for size in sizes:
        plan = plan_run(cfg, size=size, batch=1, preset=preset)
        assert all(p.pixels < size[0] * size[1] for p in plan.probes)  # extrapolated from smaller sizes
        measured = probe(cfg, size, 1)
        error = plan.peak_bytes / measured.peak_bytes - 1
        time_error = plan.step_seconds / measured.seconds_per_step - 1
        print(f"{preset} {size[1]}x{size[0]}: memory {plan.peak_bytes / 2**20:.0f} MiB predicted, "
              f"{measured.peak_bytes / 2**20:.0f} measured ({100 * error:+.1f}%); step {plan.step_seconds:.3f} s "
              f"predicted, {measured.seconds_per_step:.3f} measured ({100 * time_error:+.1f}%)")
        assert abs(error) <= 0.15, f"{preset} at {size}: predicted {plan.peak_bytes}, measured {measured.peak_bytes}"
        assert plan.gflop_per_step and plan.gflop_per_step > 0 and plan.parameters["G"] > 0


def test_the_recommended_batch_fits_the_budget():
    cfg = build_config("demo", ["train.device=cpu"])
    size = (256, 256)
    free = plan_run(cfg, size=size, batch=8)
    one = free.memory_fit.at(size[0] * size[1])
    # A budget between batch 1 and batch 8: batch 8 does not fit, a smaller one does.
    budget = int(one + 0.6 * (free.peak_bytes - one))
    planned = plan_run(cfg, size=size, batch=8, memory_budget=budget)
    assert planned.fits is False
    batch_rec = next(r for r in planned.recommendations if r.what.startswith("batch"))
    batch = int(batch_rec.overrides[0].split("=")[1])
    assert 1 <= batch < 8 and batch_rec.peak_bytes <= budget
    measured = probe(cfg, size, batch)
    assert measured.peak_bytes <= budget, f"batch {batch}: {measured.peak_bytes} > budget {budget}"


def test_plan_command_prints_and_writes_json(tmp_path: Path):
    r = CliRunner().invoke(app, ["plan", "--preset", "demo", "--size", "512x256", "--batch", "2", "--device", "cpu",
                                 "--memory", "64GiB", "--out", str(tmp_path / "plan.json")])
    assert r.exit_code == 0, r.output
    assert "predicted peak memory" in r.output and "fits" in r.output
    assert '"peak_bytes"' in (tmp_path / "plan.json").read_text()
    bad = CliRunner().invoke(app, ["plan", "--preset", "demo", "--memory", "lots"])
    assert bad.exit_code == 2 and "expected a size such as 24GiB" in bad.output
    assert parse_memory("1.5GiB") == int(1.5 * 2**30) and parse_memory("16GB") == 16 * 10**9
