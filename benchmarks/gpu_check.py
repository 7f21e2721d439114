"""The one-shot GPU check: every CUDA measurement and correctness check, one command, one report.

    python -m benchmarks.gpu_check --out benchmarks/results/gpu_check             # on a CUDA machine
    python -m benchmarks.gpu_check --out /tmp/gpu_check --dry-run                  # anywhere (tiny, CPU)

GPU time is rare and short here, so one command measures everything that needs a GPU, within a
time budget (``--budget-minutes``, default 8), and writes ``gpu_check.json`` and ``gpu_check.md``
into ``--out`` (rewritten after every section, so a run cut short still leaves what it measured).

Sections (the JSON's keys):

* ``environment``: device, torch, CUDA and cuDNN versions, GPU count, the machine's measured fp32
  conv/matmul peak (:func:`pairgan.bench.machine_peak`).
* ``variants``: training and inference images/s of pix2pix 256x256 at batch 1 and 8 and of
  pix2pixHD 1024x512 (``pix2pixhd-512``) at batch 1, in fp32, fp32 again (``fp32-repeat``: the
  run-to-run noise of both the timing and the numerics), bf16 autocast (``train.precision=bf16``),
  channels_last and ``torch.compile``. channels_last and torch.compile are no config options of
  pairgan: this script applies them to the built networks (and pix2pixHD's VGG loss network)
  itself. Exactness: from the same weights, batch and seed each variant trains
  :data:`EXACT_STEPS` steps; the largest relative difference of any loss term at any step from
  fp32's (:func:`loss_agreement`) must stay within the variant's tolerance, and the inference
  output's largest absolute difference from fp32's within its own (:func:`output_agreement`).
  A variant outside them is reported "not exact enough" with its figures.
* ``reference_baseline``: the reference-structured pix2pix (:mod:`benchmarks.reference_pix2pix`)
  against pairgan's pix2pix (the preset unchanged: dropout on) in the same run, training and
  inference at batch 1 and 8, fp32, from the same weights, with their losses compared.
* ``memory``: CUDA max-allocated of a ``pix2pixhd-1024`` training step at 2048x1024, batch 1, with
  and without ``train.grad_checkpoint`` (``pairgan train --grad-checkpoint``), through
  :func:`pairgan.bench.bench`. Without CUDA (dry run) the figure is n/a and the process's peak
  RSS is recorded instead.
* ``planner``: ``pairgan.plan``'s predicted peak memory and step time next to each measured
  training row (:func:`planner_predictions`).
* ``ddp``: with two or more GPUs, 3 steps of ``pairgan``'s Trainer under torchrun on 2 GPUs
  against one process with the same global batch: both ranks must hold identical weights, equal
  to the single process's within :data:`DDP_ATOL`. Fewer GPUs: skipped with that reason.

Every row records device, torch and CUDA versions, precision, batch, size and the command.
Without CUDA and without ``--dry-run`` the script prints one line saying what it would run and
exits 0 without writing anything (so a results folder from a GPU run is never overwritten by a
skip). ``--dry-run`` runs every section at tiny sizes and a few steps on whatever device there
is (the CPU here), compiling with the ``aot_eager`` backend (the C++ code generation of
``inductor`` takes minutes on a small CPU); a compile that fails there is recorded as skipped
with the reason. On a GPU a failing unit is recorded with its error, the run goes on, and the
exit status is 1.

Time guard: the sections run cheapest and most needed first (eager variants, the baseline,
memory, then torch.compile, then DDP); before each unit the budget left is compared with what the
unit is expected to take (:data:`UNIT_SECONDS`) and a unit that would not fit is recorded as
``skipped: budget``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from pairgan.bench import bench, count_flops, machine_peak, peak_rss_gib, summarize, time_steps
from pairgan.config import Config, build_config
from pairgan.errors import ConfigError
from pairgan.fsutil import atomic_write_text
from pairgan.methods.base import Method, StepContext
from pairgan.methods.build import build_method
from pairgan.plan import plan_run
from pairgan.runtime import seed_everything, set_determinism

REPO = Path(__file__).resolve().parents[1]

#: Training steps each variant's losses are compared over.
EXACT_STEPS = 5
#: Relative loss differences are taken against max(|fp32 loss|, this): a loss term near zero would
#: otherwise turn round-off into a huge relative figure.
LOSS_FLOOR = 1e-2
#: Two data-parallel processes vs one: the largest weight difference allowed after 3 steps (float
#: round-off of a sum over 2 ranks instead of one batch of 2, through 3 Adam steps).
DDP_ATOL = {"cuda": 1e-4, "cpu": 1e-5}
#: The least budget (seconds) left for a unit to start. Estimates, not measurements (no GPU has run
#: this yet): an eager unit is about 20 steps, a compile unit the first compilation of a G, a D (and
#: a VGG) forward and backward, a memory unit 4 steps at 2048x1024, the DDP unit three processes'
#: start-up. Revisit them with the first run's ``unit_seconds``.
UNIT_SECONDS = {"eager": 20.0, "compile": 120.0, "memory": 45.0, "ddp": 120.0}
#: Kept free at the end of the budget for writing the report.
RESERVE_SECONDS = 10.0


# --------------------------------------------------------------------------- what is measured
@dataclass(frozen=True)
class Variant:
    """One way of running the same model: a precision, channels_last, torch.compile."""

    name: str
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    #: Largest relative loss difference from fp32 over EXACT_STEPS training steps.
    loss_rtol: float = 1e-3
    #: Largest absolute difference of the inference output ([-1, 1] images) from fp32's.
    output_atol: float = 1e-3


#: fp32 first: the others are compared with it. bf16 keeps 8 mantissa bits (about 2-3 significant
#: digits), so its tolerances are looser; the fp32 ones allow cuDNN's choice of algorithms, which
#: changes the order of sums, and compile's fused kernels.
VARIANTS: tuple[Variant, ...] = (
    Variant("fp32"),
    Variant("fp32-repeat"),
    Variant("bf16", precision="bf16", loss_rtol=5e-2, output_atol=1e-1),
    Variant("channels_last", channels_last=True),
    Variant("compile", compile=True),
)


@dataclass(frozen=True)
class Workload:
    """A preset at one size and batch, with the overrides that make it this workload."""

    name: str
    preset: str
    size: tuple[int, int]  # (height, width)
    batch: int
    overrides: tuple[str, ...] = ()
    #: Needs a VGG19 weights file (pix2pixHD's perceptual loss).
    vgg: bool = False


@dataclass(frozen=True)
class Plan:
    """Sizes and step counts of one run of the check (the real one or the dry run)."""

    variants: tuple[Workload, ...]
    baseline: tuple[Workload, ...]
    memory: Workload
    steps: int
    warmup: int
    ddp_size: int
    compile_backend: str


# The dry run's tiny networks (the same families as the tests' tiny sizes).
_TINY_PIX2PIX = ("model.num_downs=5", "model.ngf=8", "model.ndf=8", "model.n_layers_D=2")
_TINY_HD = ("model.ngf=4", "model.n_downsample_global=2", "model.n_blocks_global=1", "model.ndf=4",
            "model.n_layers_D=2")
# Dropout off in the variant table: channels_last and compiled code draw dropout's random masks in
# another order than eager NCHW code, so with dropout on the loss comparison would measure the masks,
# not the arithmetic. pix2pix's dropout works on the 2-8 px maps of the innermost U-Net levels: its
# share of a step's time is negligible. The reference baseline keeps the preset's dropout.
_NO_DROPOUT = ("model.dropout=false",)
# The whole generator trains from the first step (the preset's first 10 epochs train only the local
# enhancer): the phase with the larger memory peak.
_HD1024 = ("model.niter_fix_global=0",)


def make_plan(dry_run: bool) -> Plan:
    """The workloads, sizes and step counts of the real check or of its dry run."""
    if dry_run:
        p2p = _TINY_PIX2PIX + ("data.load_size=36", "data.crop_size=32")
        return Plan(
            variants=(Workload("pix2pix-32-b1", "pix2pix", (32, 32), 1, p2p + _NO_DROPOUT),
                      Workload("pix2pix-32-b8", "pix2pix", (32, 32), 8, p2p + _NO_DROPOUT),
                      Workload("pix2pixhd-64x32-b1", "pix2pixhd-512", (32, 64), 1, _TINY_HD, vgg=True)),
            baseline=(Workload("pix2pix-32-b1", "pix2pix", (32, 32), 1, p2p),
                      Workload("pix2pix-32-b8", "pix2pix", (32, 32), 8, p2p)),
            memory=Workload("pix2pixhd-1024-128x64-b1", "pix2pixhd-1024", (64, 128), 1,
                            _TINY_HD + ("model.n_blocks_local=1",) + _HD1024, vgg=True),
            steps=2, warmup=1, ddp_size=32, compile_backend="aot_eager",
        )
    return Plan(
        variants=(Workload("pix2pix-256-b1", "pix2pix", (256, 256), 1, _NO_DROPOUT),
                  Workload("pix2pix-256-b8", "pix2pix", (256, 256), 8, _NO_DROPOUT),
                  Workload("pix2pixhd-1024x512-b1", "pix2pixhd-512", (512, 1024), 1, vgg=True)),
        baseline=(Workload("pix2pix-256-b1", "pix2pix", (256, 256), 1),
                  Workload("pix2pix-256-b8", "pix2pix", (256, 256), 8)),
        memory=Workload("pix2pixhd-1024-2048x1024-b1", "pix2pixhd-1024", (1024, 2048), 1, _HD1024, vgg=True),
        steps=10, warmup=3, ddp_size=64, compile_backend="inductor",
    )


# --------------------------------------------------------------------------- run state
class Budget:
    """The wall-clock budget of the whole check."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def allows(self, kind: str) -> bool:
        """Whether a unit of ``kind`` (a key of :data:`UNIT_SECONDS`) can still start."""
        return self.left() - RESERVE_SECONDS >= UNIT_SECONDS[kind]


@dataclass
class Env:
    """What every row is stamped with, and the run's shared state."""

    device: torch.device
    device_name: str
    command: str
    dry_run: bool
    plan: Plan
    budget: Budget
    work: Path
    #: Per workload: fp32's training losses and inference output, the exactness references.
    fp32_losses: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    fp32_outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    vgg_file: Path | None = None

    def stamp(self, precision: str, batch: int, size: tuple[int, int]) -> dict[str, Any]:
        """The provenance every figure carries."""
        return {"device": self.device_name, "torch": torch.__version__, "cuda": torch.version.cuda,
                "precision": precision, "batch": batch, "size": list(size), "command": self.command}

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def random_vgg_weights(env: Env) -> Path:
    """A VGG19 ``features`` file with seeded random values (torchvision's layout).

    The GPU machine has no network and no weights cache; the perceptual loss's speed and memory do
    not depend on the values, and every variant reads the same file, so exactness is unaffected.
    """
    if env.vgg_file is None:
        from safetensors.torch import save_file

        from pairgan.nets.vgg import VGGFeatures

        with torch.random.fork_rng(devices=[]):  # the check's own random streams stay untouched
            torch.manual_seed(0)
            features = VGGFeatures("vgg19", layers=("pool5",), pretrained=False).features
        env.vgg_file = env.work / "vgg19-random.safetensors"
        save_file({f"features.{k}": v.contiguous() for k, v in features.state_dict().items()}, str(env.vgg_file))
    return env.vgg_file


def make_config(env: Env, wl: Workload, *extra: str) -> Config:
    """The workload's config on this run's device, with ``extra`` overrides last."""
    overrides = list(wl.overrides) + [f"train.device={env.device.type}", "train.num_workers=0"]
    if wl.vgg:
        overrides.append(f"model.vgg_weights={random_vgg_weights(env)}")
    return build_config(wl.preset, overrides + list(extra))


def build_seeded(env: Env, cfg: Config, wl: Workload, training: bool) -> tuple[Method, dict[str, Any]]:
    """The method and an example batch, both from the config's seed, on the device: every variant
    of a workload starts from the same weights and the same batch."""
    seed_everything(cfg.seed)
    method = build_method(cfg, training=training)
    method.to(env.device)
    batch = {k: v.to(env.device) if torch.is_tensor(v) else v
             for k, v in method.example_batch(wl.batch, *wl.size).items()}
    return method, batch


def apply_variant(method: Method, batch: dict[str, Any], variant: Variant, backend: str) -> None:
    """channels_last and torch.compile, applied here because they are no pairgan config options."""
    vgg = getattr(method, "vgg_loss", None)  # pix2pixHD's perceptual loss network lives outside nets
    if variant.channels_last:
        for net in method.nets.values():
            net.to(memory_format=torch.channels_last)
        if vgg is not None:
            vgg.to(memory_format=torch.channels_last)
        for k, v in batch.items():
            if torch.is_tensor(v) and v.is_floating_point() and v.dim() == 4:
                batch[k] = v.contiguous(memory_format=torch.channels_last)
    if variant.compile:
        # Static shapes: each workload has one size and batch; a dynamic graph would time other kernels.
        for name in list(method.nets):
            method.nets[name] = torch.compile(method.nets[name], backend=backend, dynamic=False)
        if vgg is not None:
            method.vgg_loss = torch.compile(vgg, backend=backend, dynamic=False)


@contextlib.contextmanager
def inference_autocast(device: torch.device, precision: str) -> Iterator[None]:
    """bf16 autocast around inference (``translate`` has none of its own; training's is the
    StepContext's)."""
    if precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


# --------------------------------------------------------------------------- exactness verdicts
def loss_agreement(losses: Sequence[dict[str, float]], reference: Sequence[dict[str, float]],
                   rtol: float) -> dict[str, Any]:
    """How far ``losses`` (one dict of loss terms per step) are from ``reference``'s.

    The figure is the largest ``|x - x_ref| / max(|x_ref|, LOSS_FLOOR)`` over every step and loss
    term; ``exact_enough`` is whether it is within ``rtol``. A non-finite loss is never exact.
    """
    if len(losses) != len(reference):
        raise ValueError(f"{len(losses)} steps of losses against {len(reference)} reference steps")
    worst, where = 0.0, None
    for step, (mine, ref) in enumerate(zip(losses, reference)):
        if set(mine) != set(ref):
            raise ValueError(f"step {step}: loss terms {sorted(mine)} against {sorted(ref)}")
        for key, r in ref.items():
            x = mine[key]
            diff = abs(x - r) / max(abs(r), LOSS_FLOOR) if all(map(math.isfinite, (x, r))) else float("inf")
            if diff > worst or where is None:
                worst, where = diff, {"step": step, "loss": key, "value": x, "reference": r}
    finite = math.isfinite(worst)
    return {"max_rel_diff": worst if finite else "non-finite", "at": where, "tolerance": rtol,
            "exact_enough": finite and worst <= rtol}


def output_agreement(output: torch.Tensor, reference: torch.Tensor, atol: float) -> dict[str, Any]:
    """Largest and mean absolute difference of an inference output from the reference output."""
    if output.shape != reference.shape:
        raise ValueError(f"output of shape {tuple(output.shape)} against {tuple(reference.shape)}")
    diff = (output.float() - reference.float()).abs()
    worst = diff.max().item()
    finite = math.isfinite(worst)
    return {"max_abs_diff": worst if finite else "non-finite", "mean_abs_diff": diff.mean().item(),
            "tolerance": atol, "exact_enough": finite and worst <= atol}


# --------------------------------------------------------------------------- planner
_PLANS: dict[str, dict[str, Any]] = {}


def planner_predictions(cfg: Config, size: tuple[int, int], batch: int, device: torch.device, *,
                        limit: int | None = None) -> dict[str, Any]:
    """``pairgan plan``'s predicted peak memory (bytes) and seconds per training step, computed
    once per configuration, size and batch (its probes take seconds; the variants of one
    workload that share a configuration share the prediction). With ``limit`` (the dry run: 1)
    at most that many distinct configurations are planned; the others say so."""
    key = json.dumps([cfg.to_dict(), list(size), batch, str(device)], sort_keys=True, default=str)
    if key not in _PLANS:
        if limit is not None and len(_PLANS) >= limit:
            return {"skipped": f"dry run: the planner runs for the first {limit} configuration(s) only"}
        try:
            p = plan_run(cfg, size=size, batch=batch, device=device)
        except ConfigError as exc:  # a size too small to probe below (the dry run's tiny ones)
            return {"skipped": str(exc)}
        _PLANS[key] = {"peak_bytes": int(p.peak_bytes), "step_seconds": float(p.step_seconds), "plan": p.to_dict()}
    return _PLANS[key]


# --------------------------------------------------------------------------- units
def unit(env: Env, kind: str, label: str, fn: Callable[[], dict[str, Any]], *,
         compile_unit: bool = False) -> dict[str, Any]:
    """Run one measurement unless the budget is spent; record its failure instead of raising.

    A GPU run is one-shot: a unit that fails is written down with its error and the rest still
    run (the exit status is then 1). In the dry run a torch.compile that cannot work on this
    machine is a skip with its reason, not an error.
    """
    if not env.budget.allows(kind):
        return {"unit": label, "skipped": "budget"}
    t0 = time.perf_counter()
    try:
        row = fn()
    except Exception as exc:  # noqa: BLE001 - recorded, see the docstring
        message = f"{type(exc).__name__}: {exc}".strip()[:2000]
        if compile_unit and env.dry_run:
            row = {"skipped": f"torch.compile failed on this machine: {message}"}
        else:
            row = {"error": message, "traceback": traceback.format_exc()[-4000:]}
        if env.device.type == "cuda" and isinstance(exc, torch.cuda.OutOfMemoryError):
            row["oom"] = True
    finally:
        free_memory(env)
    return {"unit": label, **row, "unit_seconds": time.perf_counter() - t0}


def free_memory(env: Env) -> None:
    """Drop what the last unit left so the next one's memory figures are its own."""
    gc.collect()
    if env.device.type == "cuda":
        torch.cuda.empty_cache()


def train_variant(env: Env, wl: Workload, variant: Variant) -> dict[str, Any]:
    """EXACT_STEPS training steps (the exactness figures), then the timed steps."""
    cfg = make_config(env, wl, f"train.precision={variant.precision}")
    method, batch = build_seeded(env, cfg, wl, training=True)
    apply_variant(method, batch, variant, env.plan.compile_backend)
    for net in method.nets.values():
        net.train()
    ctx = StepContext(method.configure_optimizers(cfg.train), env.device, cfg.train.precision)
    if env.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(env.device)

    def step() -> dict[str, float]:
        return method.train_step(batch, ctx)

    t0 = time.perf_counter()
    losses = [step()]
    env.sync()
    first = time.perf_counter() - t0  # with torch.compile: mostly the compilation
    losses += [step() for _ in range(EXACT_STEPS - 1)]
    row = variant_row(env, wl, variant, "train", first) | {"losses": losses}
    if variant.name == "fp32":
        env.fp32_losses[wl.name] = losses
        # FLOPs are the same for every variant; counted once, after the exactness steps.
        row["gflop_per_step"] = count_flops(step) / 1e9
    elif wl.name in env.fp32_losses:
        row["exactness"] = loss_agreement(losses, env.fp32_losses[wl.name], variant.loss_rtol)
    else:
        row["exactness"] = {"skipped": "no fp32 losses of this workload to compare with"}
    row |= summarize(time_steps(step, env.plan.steps, env.plan.warmup, env.device), wl.batch, None, None)
    if env.device.type == "cuda":
        row["cuda_max_allocated_gib"] = torch.cuda.max_memory_allocated(env.device) / 2**30
    row["planner"] = planner_predictions(cfg, wl.size, wl.batch, env.device, limit=1 if env.dry_run else None)
    return row


def variant_row(env: Env, wl: Workload, variant: Variant, mode: str, first: float) -> dict[str, Any]:
    """What every train/infer row starts with: the workload, the variant and the first step's time."""
    row: dict[str, Any] = {"workload": wl.name, "mode": mode, "variant": variant.name,
                           **env.stamp(variant.precision, wl.batch, wl.size),
                           "channels_last": variant.channels_last, "compile": variant.compile,
                           "first_step_seconds": first}
    if variant.compile:
        row["compile_backend"] = env.plan.compile_backend
    return row


def infer_variant(env: Env, wl: Workload, variant: Variant) -> dict[str, Any]:
    """The inference output (against fp32's), then timed inference steps (G in eval mode)."""
    cfg = make_config(env, wl, f"train.precision={variant.precision}")
    method, batch = build_seeded(env, cfg, wl, training=False)
    method.set_inference_mode("eval")
    apply_variant(method, batch, variant, env.plan.compile_backend)

    @torch.no_grad()
    def step() -> torch.Tensor:
        with inference_autocast(env.device, variant.precision):
            return method.translate(batch)

    t0 = time.perf_counter()
    output = step().float().cpu()
    first = time.perf_counter() - t0
    row = variant_row(env, wl, variant, "infer", first)
    if variant.name == "fp32":
        env.fp32_outputs[wl.name] = output
        row["gflop_per_step"] = count_flops(step) / 1e9
    elif wl.name in env.fp32_outputs:
        row["exactness"] = output_agreement(output, env.fp32_outputs[wl.name], variant.output_atol)
    else:
        row["exactness"] = {"skipped": "no fp32 output of this workload to compare with"}
    row |= summarize(time_steps(step, env.plan.steps, env.plan.warmup, env.device), wl.batch, None, None)
    return row


def baseline(env: Env, wl: Workload, mode: str) -> dict[str, Any]:
    """The reference-structured pix2pix and pairgan's, same weights and inputs, one after the other."""
    from benchmarks.reference_pix2pix import ReferencePix2Pix, copy_weights, reference_patchgan, reference_unet

    cfg = make_config(env, wl)
    m = cfg.model
    method, batch = build_seeded(env, cfg, wl, training=mode == "train")
    G = reference_unet(cfg.data.input_nc, cfg.data.output_nc, m.num_downs, m.ngf)
    copy_weights(method.nets["G"], G)
    G.to(env.device)
    a, b = batch["A"], batch["B"]
    sides: dict[str, dict[str, Any]] = {}
    if mode == "train":
        D = reference_patchgan(cfg.data.input_nc + cfg.data.output_nc, m.ndf, m.n_layers_D)
        copy_weights(method.nets["D"], D)
        D.to(env.device)
        ref = ReferencePix2Pix(G, D)
        for net in method.nets.values():
            net.train()
        ctx = StepContext(method.configure_optimizers(cfg.train), env.device)
        steps: dict[str, Callable[[], Any]] = {"reference": lambda: ref.optimize_parameters(a, b),
                                               "pairgan": lambda: method.train_step(batch, ctx)}
        for side, fn in steps.items():
            torch.manual_seed(123)  # the same dropout masks on both sides
            sides[side] = {"losses": [fn() for _ in range(EXACT_STEPS)]}
        agreement = loss_agreement(sides["pairgan"]["losses"], sides["reference"]["losses"], 1e-3)
    else:
        G.eval()
        method.set_inference_mode("eval")

        @torch.no_grad()
        def ref_infer() -> torch.Tensor:
            return G(a)

        steps = {"reference": ref_infer, "pairgan": lambda: method.translate(batch)}
        outputs = {side: fn().float().cpu() for side, fn in steps.items()}
        agreement = output_agreement(outputs["pairgan"], outputs["reference"], 1e-4)
    for side, fn in steps.items():
        sides.setdefault(side, {}).update(
            summarize(time_steps(fn, env.plan.steps, env.plan.warmup, env.device), wl.batch, None, None))
    speedup = sides["reference"]["seconds_per_step"]["median"] / sides["pairgan"]["seconds_per_step"]["median"]
    return {"workload": wl.name, "mode": mode, **env.stamp("fp32", wl.batch, wl.size), "sides": sides,
            "pairgan_speedup_vs_reference": speedup, "agreement": agreement}


def memory_case(env: Env, wl: Workload, grad_checkpoint: bool) -> dict[str, Any]:
    """One pix2pixhd-1024 training step's memory through :func:`pairgan.bench.bench`."""
    cfg = make_config(env, wl, f"train.grad_checkpoint={'true' if grad_checkpoint else 'false'}")
    before = torch.cuda.memory_allocated(env.device) / 2**30 if env.device.type == "cuda" else None
    result = bench(cfg, mode="train", size=wl.size, batch=wl.batch, steps=2, warmup=1, measure_peak=False)
    row: dict[str, Any] = {"workload": wl.name, "grad_checkpoint": grad_checkpoint,
                           **env.stamp(cfg.train.precision, wl.batch, wl.size),
                           "seconds_per_step": result["seconds_per_step"],
                           "images_per_second": result["images_per_second"],
                           "gflop_per_step": result.get("gflop_per_step"),
                           "parameters": result["parameters"]}
    if env.device.type == "cuda":
        row["cuda_max_allocated_gib"] = result["cuda_max_allocated_gib"]
        # Anything still allocated before the step (nothing, normally) is inside that figure.
        row["cuda_allocated_before_gib"] = before
    else:
        row["cuda_max_allocated_gib"] = None
        row["note"] = ("no CUDA: CUDA max-allocated is n/a; peak_rss_gib is this process's high-water "
                       "mark so far, not this case's own")
    row["peak_rss_gib"] = peak_rss_gib()
    row["planner"] = planner_predictions(cfg, wl.size, wl.batch, env.device, limit=1 if env.dry_run else None)
    return row


# --------------------------------------------------------------------------- DDP
def write_pairs(root: Path, n: int, size: int) -> Path:
    """``n`` aligned A|B training pairs of ``size`` px (B a fixed function of A, as in a real set)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        b = (255 - a) // 2 + 40
        Image.fromarray(np.concatenate([a, b], axis=1)).save(root / "train" / f"{i:03d}.png")
    return root


def ddp_overrides(device_type: str, size: int) -> list[str]:
    """A small pix2pix whose single-process and 2-process runs must agree: instance norm (batch norm
    would see a batch of 2 in one process and 1 per rank), no dropout, no random crop or flip,
    deterministic kernels."""
    downs = {32: 5, 64: 6}[size]
    return ["model.num_downs=" + str(downs), "model.ngf=16", "model.ndf=16", "model.n_layers_D=2",
            "model.norm=instance", "model.dropout=false", f"data.load_size={size}", f"data.crop_size={size}",
            "data.flip=false", "train.max_steps=3", "train.deterministic=true", "train.num_workers=0",
            "train.log_every=1", "train.sample_every=0", "train.save_epoch_every=0",
            f"train.device={device_type}"]


def ddp_worker(data: str, run: str, out: str, overrides: list[str]) -> None:
    """One process of the DDP check (under torchrun or alone): train, save every net's weights."""
    from pairgan.train.trainer import Trainer

    cfg = build_config("pix2pix", overrides, data_path=data)
    trainer = Trainer(cfg, run, progress=False)
    trainer.fit()
    rank = int(os.environ.get("RANK", "0"))
    torch.save({k: {n: t.detach().cpu().clone() for n, t in net.state_dict().items()}
                for k, net in trainer.method.nets.items()}, Path(out) / f"rank{rank}.pt")
    if torch.distributed.is_initialized():
        # as `pairgan train` does: a rank leaving with the process group alive can abort at exit
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def _bias_before_instance_norm(net: torch.nn.Module) -> set[str]:
    """Conv biases feeding an InstanceNorm: their gradient is zero in exact arithmetic, so Adam turns
    round-off there into lr-sized steps; they carry nothing and are left out of the comparison."""
    skip = set()
    for prefix, mod in net.named_modules():
        kids = list(mod.named_children()) if isinstance(mod, torch.nn.Sequential) else []
        for (name, a), (_, b) in zip(kids, kids[1:]):
            if isinstance(a, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and a.bias is not None \
                    and isinstance(b, torch.nn.InstanceNorm2d):
                skip.add(f"{prefix}.{name}.bias" if prefix else f"{name}.bias")
    return skip


def ddp_check(work: Path, device_type: str, size: int, timeout: float) -> dict[str, Any]:
    """2 processes (torchrun) at batch 1 each against 1 process at batch 2, 3 steps of the Trainer."""
    data = write_pairs(work / "ddp-data", 8, size)
    common = ddp_overrides(device_type, size)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    worker = ["-m", "benchmarks.gpu_check", "--ddp-worker"]
    runs = {"two": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    *worker, str(data), str(work / "ddp-run2"), str(work / "ddp-two"), *common,
                    "train.batch_size=1"],
            "one": [sys.executable, *worker, str(data), str(work / "ddp-run1"), str(work / "ddp-one"), *common,
                    "train.batch_size=2"]}
    deadline = time.monotonic() + timeout
    for name, cmd in runs.items():
        (work / f"ddp-{name}").mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO,
                              timeout=max(1.0, deadline - time.monotonic()))
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    rank0, rank1 = (torch.load(work / "ddp-two" / f"rank{r}.pt") for r in (0, 1))
    single = torch.load(work / "ddp-one" / "rank0.pt")
    nets = build_method(build_config("pix2pix", common), training=True).nets
    ranks_identical, worst, compared = True, 0.0, 0
    for net, tensors in rank0.items():
        skip = _bias_before_instance_norm(nets[net])
        for key, t in tensors.items():
            ranks_identical &= torch.equal(t, rank1[net][key])
            if key not in skip and t.is_floating_point():
                worst = max(worst, (t - single[net][key]).abs().max().item())
                compared += 1
    atol = DDP_ATOL[device_type]
    return {"world_size": 2, "backend": "nccl" if device_type == "cuda" else "gloo", "steps": 3,
            "ranks_identical": ranks_identical, "max_abs_diff_vs_one_process": worst, "tolerance": atol,
            "tensors_compared": compared, "exact_enough": ranks_identical and worst <= atol,
            "command_two_processes": shlex.join(runs["two"])}


# --------------------------------------------------------------------------- the check
def environment(env: Env) -> dict[str, Any]:
    """What this run ran on."""
    out: dict[str, Any] = {"device": env.device_name, "device_type": env.device.type, "torch": torch.__version__,
                           "cuda": torch.version.cuda, "python": platform.python_version(),
                           "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
                           "threads": torch.get_num_threads(), "tf32": False, "cudnn_benchmark": True}
    if env.device.type == "cuda":
        props = torch.cuda.get_device_properties(env.device)
        out |= {"cudnn": torch.backends.cudnn.version(), "capability": list(torch.cuda.get_device_capability()),
                "memory_gib": props.total_memory / 2**30, "bf16_supported": torch.cuda.is_bf16_supported()}
    else:
        out["cpu"] = platform.processor() or platform.machine()
    out["machine_peak_gflops"] = machine_peak(env.device, 0.5)
    return out


def run_check(out_dir: Path, budget_s: float, dry_run: bool, command: str) -> dict[str, Any]:
    """Every section, in the order of the time guard; the report is rewritten after each one."""
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})"
    # As the Trainer sets itself up by default: cuDNN autotuning, true fp32 (no TF32).
    set_determinism(False, tf32=False)
    plan = make_plan(dry_run)
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        env = Env(device, name, command, dry_run, plan, Budget(budget_s), Path(tmp))
        t_start = time.monotonic()
        report: dict[str, Any] = {
            "schema": 1, "command": command, "dry_run": dry_run,
            "started_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "budget_s": budget_s, "complete": False,
            "settings": {"exact_steps": EXACT_STEPS, "loss_floor": LOSS_FLOOR, "timed_steps": plan.steps,
                         "warmup_steps": plan.warmup, "compile_backend": plan.compile_backend,
                         "tolerances": {v.name: {"loss_rtol": v.loss_rtol, "output_atol": v.output_atol}
                                        for v in VARIANTS if v.name != "fp32"},
                         "notes": ["pix2pix runs in the variant table have dropout off (see the docstring)",
                                   "channels_last and torch.compile are applied by this script to the built "
                                   "networks, not through pairgan config options",
                                   "pix2pixHD's VGG19 weights are seeded random values (speed and memory do "
                                   "not depend on them)"]},
        }

        def save() -> None:
            report["wall_s"] = time.monotonic() - t_start
            write_report(report, out_dir)

        report["environment"] = environment(env)
        save()

        # Eager variants first (fp32 before the others: it is their reference), compile later.
        rows: list[dict[str, Any]] = []
        report["variants"] = {"rows": rows}
        eager = [v for v in VARIANTS if not v.compile]
        for wl in plan.variants:
            for variant in eager:
                for mode, fn in (("train", train_variant), ("infer", infer_variant)):
                    rows.append(unit(env, "eager", f"{wl.name} {mode} {variant.name}",
                                     lambda fn=fn, wl=wl, variant=variant: fn(env, wl, variant)))
            save()

        report["reference_baseline"] = {"rows": [
            unit(env, "eager", f"baseline {wl.name} {mode}", lambda wl=wl, mode=mode: baseline(env, wl, mode))
            for wl in plan.baseline for mode in ("train", "infer")]}
        save()

        report["memory"] = {"rows": [
            unit(env, "memory", f"memory {plan.memory.name} grad_checkpoint={gc_on}",
                 lambda gc_on=gc_on: memory_case(env, plan.memory, gc_on))
            for gc_on in (False, True)]}
        save()

        for wl in plan.variants:
            for variant in (v for v in VARIANTS if v.compile):
                for mode, fn in (("train", train_variant), ("infer", infer_variant)):
                    torch._dynamo.reset()  # a fresh cache per unit: no recompile limit carried over
                    rows.append(unit(env, "compile", f"{wl.name} {mode} {variant.name}",
                                     lambda fn=fn, wl=wl, variant=variant: fn(env, wl, variant),
                                     compile_unit=True))
            save()

        report["planner"] = planner_summary(report)
        gpus = report["environment"]["gpu_count"]
        if gpus < 2:
            report["ddp"] = {"skipped": f"{gpus} CUDA device(s): the DDP equality check needs 2"}
        else:
            size = plan.ddp_size
            report["ddp"] = unit(env, "ddp", "ddp 2 GPUs",
                                 lambda: env.stamp("fp32", 2, (size, size))
                                 | ddp_check(env.work, "cuda", size, env.budget.left() - RESERVE_SECONDS))
        report["errors"] = [r["unit"] for r in all_rows(report) if "error" in r]
        report["complete"] = True
        save()
    return report


def all_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every unit's row of the report (variants, baseline, memory, DDP)."""
    rows = [r for s in ("variants", "reference_baseline", "memory") for r in report.get(s, {}).get("rows", [])]
    if "unit" in report.get("ddp", {}):
        rows.append(report["ddp"])
    return rows


def planner_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The planner's predictions next to the measurements, one line per training row."""
    rows = [r for r in report["variants"]["rows"] if r.get("mode") == "train"] + report["memory"]["rows"]
    plans = [r["planner"] for r in rows if "planner" in r]
    if not plans:
        return {"skipped": "no training row was measured"}
    if all("skipped" in p for p in plans):
        return {"skipped": plans[0]["skipped"]}
    lines = []
    for r in rows:
        p = r.get("planner", {})
        if "skipped" in p or not p:
            continue
        measured_s = r["seconds_per_step"]["median"]
        measured_peak = r.get("cuda_max_allocated_gib")
        lines.append({"unit": r["unit"], "predicted_step_seconds": p["step_seconds"],
                      "measured_step_seconds": measured_s,
                      "step_ratio": p["step_seconds"] / measured_s if measured_s else None,
                      "predicted_peak_gib": p["peak_bytes"] / 2**30, "measured_peak_gib": measured_peak,
                      "peak_ratio": p["peak_bytes"] / 2**30 / measured_peak if measured_peak else None})
    note = "channels_last and torch.compile are not in the config the planner sees: it predicts them as eager NCHW"
    return {"rows": lines, "note": note}


# --------------------------------------------------------------------------- report
def write_report(report: dict[str, Any], out_dir: Path) -> None:
    """``gpu_check.json`` and ``gpu_check.md`` in ``out_dir``, each written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "gpu_check.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out_dir / "gpu_check.md", format_markdown(report))


def _fmt(x: Any, spec: str = ".3g") -> str:
    return format(x, spec) if isinstance(x, (int, float)) and not isinstance(x, bool) else ("-" if x is None else str(x))


def _verdict(check: dict[str, Any] | None) -> str:
    if not check:
        return "reference"
    if "skipped" in check:
        return f"n/a ({check['skipped']})"
    figure = check.get("max_rel_diff", check.get("max_abs_diff"))
    return f"{'exact enough' if check['exact_enough'] else '**not exact enough**'} ({_fmt(figure)} vs {_fmt(check['tolerance'])})"


def _status(row: dict[str, Any]) -> str | None:
    if "skipped" in row:
        return f"skipped: {row['skipped']}"
    if "error" in row:
        return f"**error**: {row['error'].splitlines()[0][:200]}"
    return None


def _table_rows(rows: list[dict[str, Any]], columns: int, status_column: int,
                cells: Callable[[dict[str, Any]], list[str]]) -> list[str]:
    """Markdown rows of a section's table: a measured row's ``cells``, or for a skipped or failed
    unit its name and its status in column ``status_column``; then a blank line."""
    lines = []
    for r in rows:
        status = _status(r)
        if status:
            row = [r["unit"]] + [""] * (columns - 1)
            row[status_column] = status
        else:
            row = cells(r)
        lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


def format_markdown(report: dict[str, Any]) -> str:
    """The report for people: one table per section, every skip and error in words."""
    e = report.get("environment", {})
    lines = [f"# GPU check{' (dry run: tiny sizes, not GPU figures)' if report['dry_run'] else ''}", "",
             f"Device: **{e.get('device', '?')}**; torch {e.get('torch')}, CUDA {e.get('cuda')}"
             + (f", cuDNN {e['cudnn']}" if "cudnn" in e else "") + f"; {e.get('gpu_count', 0)} GPU(s); "
             f"TF32 off, cuDNN autotuning on. Started {report['started_utc']}, wall {report.get('wall_s', 0):.0f} s "
             f"of a {report['budget_s']:.0f} s budget{'' if report['complete'] else ' (incomplete: still running or cut short)'}.",
             "", f"Command: `{report['command']}`", ""]
    if "machine_peak_gflops" in e:
        pk = e["machine_peak_gflops"]
        lines += [f"Measured fp32 peak: {pk['best']:.0f} GFLOP/s (conv3x3 {pk['conv3x3']:.0f}, channels_last "
                  f"{pk['conv3x3_channels_last']:.0f}, matmul {pk['matmul']:.0f}).", ""]
    if report.get("errors"):
        lines += [f"**Errors** in: {', '.join(report['errors'])}.", ""]

    rows = report.get("variants", {}).get("rows", [])
    if rows:
        s = report["settings"]
        lines += ["## Variants", "",
                  f"Exactness: {s['exact_steps']} training steps from the same weights vs fp32, largest relative "
                  f"loss difference (denominator at least {s['loss_floor']}); inference: largest absolute output "
                  f"difference. Timing: median of {s['timed_steps']} steps after {s['warmup_steps']} warm-up steps. "
                  f"torch.compile backend: {s['compile_backend']}.", "",
                  "| workload | mode | variant | img/s | s/step (median) | x fp32 | first step s | CUDA max GiB "
                  "| exactness vs fp32 |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        base = {(r["workload"], r["mode"]): r["seconds_per_step"]["median"]
                for r in rows if r.get("variant") == "fp32" and "seconds_per_step" in r}

        def variant_cells(r: dict[str, Any]) -> list[str]:
            med = r["seconds_per_step"]["median"]
            ref = base.get((r["workload"], r["mode"]))
            return [r["workload"], r["mode"], r["variant"], _fmt(r["images_per_second"]), _fmt(med, ".4f"),
                    _fmt(ref / med if ref else None, ".2f"), _fmt(r["first_step_seconds"], ".2f"),
                    _fmt(r.get("cuda_max_allocated_gib")), _verdict(r.get("exactness"))]

        lines += _table_rows(rows, 9, 3, variant_cells)

    rows = report.get("reference_baseline", {}).get("rows", [])
    if rows:
        lines += ["## Reference-structured baseline (same run, fp32, preset with dropout)", "",
                  "| workload | mode | reference img/s | pairgan img/s | pairgan speed-up | agreement |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += _table_rows(rows, 6, 2, lambda r: [
            r["workload"], r["mode"], _fmt(r["sides"]["reference"]["images_per_second"]),
            _fmt(r["sides"]["pairgan"]["images_per_second"]), f"x{r['pairgan_speedup_vs_reference']:.2f}",
            _verdict(r["agreement"])])

    rows = report.get("memory", {}).get("rows", [])
    if rows:
        lines += ["## Memory: pix2pixhd-1024 training step, with and without grad checkpointing", "",
                  "| workload | grad checkpoint | CUDA max allocated GiB | peak RSS GiB | s/step | planner peak GiB |",
                  "| --- | --- | --- | --- | --- | --- |"]
        def memory_cells(r: dict[str, Any]) -> list[str]:
            p = r.get("planner", {})
            return [r["workload"], str(r["grad_checkpoint"]),
                    _fmt(r["cuda_max_allocated_gib"]) if r["cuda_max_allocated_gib"] is not None else "n/a",
                    _fmt(r["peak_rss_gib"]), _fmt(r["seconds_per_step"]["median"], ".3f"),
                    _fmt(p["peak_bytes"] / 2**30) if "peak_bytes" in p else p.get("skipped", "-")]

        lines += _table_rows(rows, 6, 2, memory_cells)
        if rows and "note" in rows[0]:
            lines += [f"Note: {rows[0]['note']}.", ""]

    plan = report.get("planner")
    if plan is not None:
        lines += ["## Planner predictions", ""]
        if "skipped" in plan:
            lines += [f"Skipped: {plan['skipped']}.", ""]
        else:
            lines += ["| unit | predicted s/step | measured s/step | ratio | predicted peak GiB | measured GiB | ratio |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
            lines += [f"| {p['unit']} | {_fmt(p['predicted_step_seconds'])} | {_fmt(p['measured_step_seconds'])} | "
                      f"{_fmt(p['step_ratio'], '.2f')} | {_fmt(p['predicted_peak_gib'])} | {_fmt(p['measured_peak_gib'])} | "
                      f"{_fmt(p['peak_ratio'], '.2f')} |" for p in plan["rows"]]
            lines += ["", f"Note: {plan['note']}.", ""]

    ddp = report.get("ddp")
    if ddp is not None:
        lines += ["## DDP equality (2 processes vs 1)", ""]
        status = _status(ddp)
        if status:
            lines += [status[0].upper() + status[1:] + ".", ""]
        else:
            lines += [f"{ddp['backend']}, {ddp['steps']} steps: ranks identical: {ddp['ranks_identical']}; largest "
                      f"weight difference from one process {_fmt(ddp['max_abs_diff_vs_one_process'])} (tolerance "
                      f"{_fmt(ddp['tolerance'])}) over {ddp['tensors_compared']} tensors: "
                      f"{'equal' if ddp['exact_enough'] else '**not equal**'}.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_check"),
                    help="folder for gpu_check.json and gpu_check.md")
    ap.add_argument("--budget-minutes", type=float, default=8.0, help="wall-clock budget of the whole check")
    ap.add_argument("--dry-run", action="store_true", help="every check at tiny sizes on this machine's device")
    ap.add_argument("--ddp-worker", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.ddp_worker:
        data, run, out, *overrides = args.ddp_worker
        ddp_worker(data, run, out, overrides)
        return 0
    command = shlex.join(["python", "-m", "benchmarks.gpu_check", *(sys.argv[1:] if argv is None else argv)])
    if not torch.cuda.is_available() and not args.dry_run:
        wl = make_plan(False)
        print(f"gpu_check: no CUDA device here, nothing measured or written; on a GPU it would run "
              f"{', '.join(w.name for w in wl.variants)} x ({', '.join(v.name for v in VARIANTS)}), the reference "
              f"baseline, {wl.memory.name} memory with/without grad checkpointing, the planner and (2+ GPUs) DDP "
              f"equality in {args.budget_minutes:g} min; --dry-run runs it all at tiny sizes here.")
        return 0
    report = run_check(args.out, args.budget_minutes * 60.0, args.dry_run, command)
    print(f"gpu_check: wrote {args.out / 'gpu_check.json'} and gpu_check.md in {report['wall_s']:.0f} s"
          + (f"; errors in {', '.join(report['errors'])}" if report["errors"] else ""))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
