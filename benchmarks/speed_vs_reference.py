"""pairgan's pix2pix against a plain eager baseline, in one run, on this machine.

    python benchmarks/speed_vs_reference.py --out benchmarks/results/speed_cpu_<machine>.json

Workloads (256x256, fp32): a training step at batch 1 and 4, and G inference in eval mode at
batch 1 and 8. Sides:

* ``reference``: :mod:`reference_pix2pix` (the reference's networks, step and default Adam), in
  a process that changes nothing about PyTorch's defaults;
* ``pairgan``: ``Method.train_step`` exactly as the Trainer calls it, in a process set up as the
  ``pairgan`` command sets itself up (:func:`pairgan.runtime.tune_host_allocator`, fused Adam);
* ``pairgan-auto`` (inference): the default path, ``Translator.translate_batch`` with
  ``--backend auto`` (eval mode: the compiled graph of :mod:`pairgan.compiled`, built on the
  warm-up call; its first-call seconds are recorded apart);
* ``pairgan-eager`` / ``pairgan-onnxruntime`` (inference): ``Method.translate`` in eval mode, and
  the same model exported with ``pairgan.export`` and run through ``ExportedTranslator``
  (``pairgan translate --backend onnxruntime``);
* ``paper1``: pix2pix's default ``paper`` inference (dropout and batch statistics at test time) at
  batch 1: the reference's G in train mode against ``Translator`` in paper mode (``auto`` runs it
  eagerly: a compiled graph would not be exact).

Every side runs in its own fresh process, the sides alternate within each round and the order
flips between rounds, so slow drifts of a shared machine hit both. Figures: median and min
seconds per step over all rounds' timed steps, images/s, FLOPs per step (torch's flop counter),
the fraction of this machine's conv/matmul peak (measured in the same run) and peak RSS.

Numerics: both sides start from the same weights (copied) and seed; three training steps must
give the same four losses to 1e-5, and the inference outputs must agree with the reference's to
1e-4. The JSON records the largest differences seen.
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
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
SIZE = 256
WORKLOADS = {"train1": ("train", 1), "train4": ("train", 4), "infer1": ("infer", 1), "infer8": ("infer", 8),
             "paper1": ("paper", 1)}
SIDES = {"train": ("reference", "pairgan"),
         "infer": ("reference", "pairgan-auto", "pairgan-eager", "pairgan-onnxruntime"),
         "paper": ("reference", "pairgan-auto")}


# --------------------------------------------------------------------------- model set-up
def build(side: str, mode: str, batch: int) -> tuple[Callable[[], Any], Any]:
    """The step to time for ``side`` and a handle on what it runs (for FLOP counting)."""
    if side != "reference":
        from pairgan.runtime import tune_host_allocator

        tune_host_allocator()
    import torch
    from pairgan.config import build_config
    from pairgan.methods.base import StepContext
    from pairgan.methods.build import build_method

    torch.manual_seed(0)
    cfg = build_config("pix2pix")
    method = build_method(cfg, training=(mode == "train"))
    g = torch.Generator().manual_seed(1)
    a = torch.rand(batch, 3, SIZE, SIZE, generator=g) * 2 - 1
    b = torch.rand(batch, 3, SIZE, SIZE, generator=g) * 2 - 1

    if side == "reference":
        sys.path.insert(0, str(HERE))
        from reference_pix2pix import ReferencePix2Pix, copy_weights, reference_patchgan, reference_unet

        G = reference_unet()
        copy_weights(method.nets["G"], G)
        if mode == "train":
            D = reference_patchgan()
            copy_weights(method.nets["D"], D)
            ref = ReferencePix2Pix(G, D)
            return (lambda: ref.optimize_parameters(a, b)), ref
        G.train(mode == "paper")

        def infer() -> Any:
            with torch.no_grad():
                return G(a)

        return infer, G

    if mode == "train":
        for net in method.nets.values():
            net.train()
        ctx = StepContext(method.configure_optimizers(cfg.train), torch.device("cpu"))
        batch_dict = {"A": a, "B": b}
        return (lambda: method.train_step(batch_dict, ctx)), method

    method.set_inference_mode("paper" if mode == "paper" else "eval")
    if side == "pairgan-auto":
        from pairgan.infer import Translator

        os.environ["PAIRGAN_CACHE"] = tempfile.mkdtemp()  # no checkpoint folder: graphs are cached here
        translator = Translator(cfg, method, torch.device("cpu"), None, backend="auto")
        return (lambda: translator.translate_batch({"A": a}, seed=None)), translator
    if side == "pairgan-eager":

        def infer_eager() -> Any:
            with torch.no_grad():
                return method.translate({"A": a})

        return infer_eager, method
    from pairgan.export import ExportedTranslator, export_method

    path = Path(tempfile.mkdtemp()) / "pix2pix.onnx"
    export_method(method, cfg, path, size=(SIZE, SIZE))
    exported = ExportedTranslator.from_file(path)
    return (lambda: exported.translate_batch({"A": a})), method


# --------------------------------------------------------------------------- one process
def worker(side: str, workload: str, steps: int, warmup: int) -> dict[str, Any]:
    mode, batch = WORKLOADS[workload]
    fn, handle = build(side, mode, batch)
    t0 = time.perf_counter()
    fn()  # the first call: a compiled graph is built (or loaded) here
    first = time.perf_counter() - t0
    for _ in range(warmup - 1):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    from pairgan.bench import peak_rss_gib

    backend = handle.describe_backend() if hasattr(handle, "describe_backend") else side
    return {"times": times, "peak_rss_gib": peak_rss_gib(), "first_call_s": first, "backend": backend}


def numerics() -> dict[str, float]:
    """Largest loss and output differences between the reference and pairgan (see the docstring)."""
    import torch

    out: dict[str, float] = {}
    losses = {}
    for side in ("reference", "pairgan"):
        fn, _ = build(side, "train", 1)
        torch.manual_seed(123)  # the same dropout masks on both sides
        losses[side] = [fn() for _ in range(3)]
    out["train_loss_max_abs_diff"] = max(
        abs(r[k] - p[k]) for r, p in zip(losses["reference"], losses["pairgan"]) for k in r
    )
    outputs = {}
    for side in SIDES["infer"]:
        fn, _ = build(side, "infer", 2)
        outputs[side] = fn().float()
    for side in SIDES["infer"][1:]:
        out[f"{side}_output_max_abs_diff"] = (outputs[side] - outputs["reference"]).abs().max().item()
    # Paper mode at batch 1: the same dropout masks on both sides.
    paper = {}
    for side in SIDES["paper"]:
        fn, _ = build(side, "paper", 1)
        torch.manual_seed(7)
        paper[side] = fn().float()
    out["paper_output_max_abs_diff"] = (paper["pairgan-auto"] - paper["reference"]).abs().max().item()
    return out


def flops_and_peak() -> dict[str, Any]:
    import torch
    from pairgan.bench import count_flops, machine_peak

    flops = {}
    for name, (mode, batch) in WORKLOADS.items():
        fn, _ = build({"train": "pairgan", "infer": "pairgan-eager", "paper": "reference"}[mode], mode, batch)
        fn()
        flops[name] = count_flops(fn)
    return {"flops": flops, "peak": machine_peak(torch.device("cpu"))}


def run_worker(side: str, workload: str, steps: int, warmup: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", side, workload, str(steps), str(warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per workload")
    ap.add_argument("--train-steps", type=int, default=5, help="timed steps per process (training)")
    ap.add_argument("--infer-steps", type=int, default=10, help="timed steps per process (inference)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of "
                    + ", ".join(WORKLOADS))
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    ap.add_argument("--worker", nargs=4, metavar=("SIDE", "WORKLOAD", "STEPS", "WARMUP"), help=argparse.SUPPRESS)
    ap.add_argument("--numerics-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        side, workload, steps, warmup = args.worker
        print(json.dumps(worker(side, workload, int(steps), int(warmup))))
        return
    if args.numerics_only:
        print(json.dumps(numerics()))
        return

    import torch

    t_start = time.time()
    result: dict[str, Any] = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "load_average_at_start": os.getloadavg()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "size": SIZE,
    }
    result["numerics"] = json.loads(subprocess.run([sys.executable, __file__, "--numerics-only"],
                                                   capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    fp = flops_and_peak()
    result["machine_peak_gflops"] = fp["peak"]
    peak = fp["peak"]["best"]
    rows = []
    for workload in args.workloads.split(","):
        mode, batch = WORKLOADS[workload]
        steps = args.train_steps if mode == "train" else args.infer_steps
        sides = SIDES[mode]
        times: dict[str, list[float]] = {s: [] for s in sides}
        rss: dict[str, float] = {s: 0.0 for s in sides}
        first: dict[str, list[float]] = {s: [] for s in sides}
        backend: dict[str, str] = {}
        for r in range(args.rounds):
            for side in (sides if r % 2 == 0 else tuple(reversed(sides))):
                w = run_worker(side, workload, steps, args.warmup)
                times[side] += w["times"]
                rss[side] = max(rss[side], w["peak_rss_gib"])
                first[side].append(w["first_call_s"])
                backend[side] = w["backend"]
        base = statistics.median(times["reference"])
        for side in sides:
            med = statistics.median(times[side])
            row = {"workload": workload, "mode": mode, "batch": batch, "side": side,
                   "s_per_step_median": med, "s_per_step_min": min(times[side]),
                   "images_per_s": batch / med, "speedup_vs_reference": base / med,
                   "gflop_per_step": fp["flops"][workload] / 1e9,
                   "fraction_of_peak": fp["flops"][workload] / med / 1e9 / peak,
                   "peak_rss_gib": rss[side], "steps_timed": len(times[side]),
                   "first_call_s_median": statistics.median(first[side]), "backend": backend[side],
                   # Other work on the machine distorts multi-threaded timings badly: keep the
                   # load next to each figure so a reader can tell an idle measurement.
                   "load_average_after": os.getloadavg()}
            rows.append(row)
            print(f"{workload:7s} {side:20s} {med:8.4f} s/step (min {row['s_per_step_min']:.4f})  "
                  f"{row['images_per_s']:6.2f} img/s  x{row['speedup_vs_reference']:.2f}  "
                  f"{100 * row['fraction_of_peak']:4.1f}% of peak  RSS {row['peak_rss_gib']:.2f} GiB", flush=True)
    result["rows"] = rows
    result["wall_s"] = time.time() - t_start
    print(json.dumps(result["numerics"]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
