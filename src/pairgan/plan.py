"""``pairgan plan``: will a training run fit, how fast will it step, and what makes it fit.

A plan builds the preset's method, counts its parameters (and what they cost: weights, gradients,
Adam's two moments) and runs a few training steps at two reduced settings ("probes" of about 0.4 and
0.8 of the pixels per step, :data:`PROBE_SHARES`: smaller batches at the requested size, or at batch
1 smaller sizes; each in a fresh process, so that its peak memory is its own). Peak memory and step time are close to linear in the
pixels per step (batch x height x width) for these fully convolutional networks: each is fitted as
``fixed + per_pixel x pixels`` through the two probes and extrapolated to the requested size. FLOPs
are counted at the smaller probe (``torch.utils.flop_counter``) and scaled by the pixels.

What is predicted is the training step's peak: on the CPU the process's peak resident memory
(``VmHWM``: the Python runtime, the networks, the optimiser state and the activations), on CUDA
``torch.cuda.max_memory_allocated``. Not included: data-loader worker processes (separate
processes, ``train.num_workers``), validation and checkpoint writes.

Given a memory budget the plan recommends settings that fit: the largest batch, activation
checkpointing (``train.grad_checkpoint``, where the method's networks support it; probed, not
guessed), bf16 autocast (CUDA; probed) and the largest training crop at batch 1, each with its
predicted memory and step time, keeping :data:`HEADROOM` of the budget.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch

from pairgan.bench import bench
from pairgan.config import Config, apply_overrides, config_from_dict
from pairgan.errors import ConfigError
from pairgan.methods.base import Method
from pairgan.methods.build import build_method
from pairgan.runtime import tune_host_allocator

__all__ = ["HEADROOM", "LinearFit", "Plan", "Probe", "Recommendation", "format_plan", "parse_memory", "plan_run", "probe",
           "probes"]

#: Recommendations keep this share of the budget: a margin for the prediction's error (within 15%
#: by the test, a few per cent typically) and for what the plan does not count.
HEADROOM = 0.9

_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_memory(text: str) -> int:
    """``24GiB``, ``24GB``, ``512MiB``, ``1.5g`` -> bytes (GB = 10^9, GiB = 2^30)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise ValueError(f"--memory {text!r}: expected a size such as 24GiB, 16GB or 512MiB")
    return int(float(m.group(1)) * _UNITS[unit])


@dataclass
class Probe:
    """One measured training step setting: size (h, w), batch, seconds per step, peak bytes."""

    size: tuple[int, int]
    batch: int
    seconds_per_step: float
    peak_bytes: int
    gflop_per_step: float | None = None

    @property
    def pixels(self) -> int:
        return self.batch * self.size[0] * self.size[1]


@dataclass
class LinearFit:
    """``fixed + per_pixel * pixels`` through two probes."""

    fixed: float
    per_pixel: float

    @classmethod
    def through(cls, a: tuple[float, float], b: tuple[float, float]) -> "LinearFit":
        (x0, y0), (x1, y1) = a, b
        slope = (y1 - y0) / (x1 - x0) if x1 != x0 else 0.0
        slope = max(slope, 0.0)  # noise can tilt two close probes the wrong way
        return cls(y1 - slope * x1, slope)

    def at(self, pixels: float) -> float:
        return self.fixed + self.per_pixel * pixels

    def pixels_within(self, budget: float) -> float:
        """The most pixels whose prediction stays within ``budget`` (inf when it never grows)."""
        if self.per_pixel <= 0:
            return math.inf if self.fixed <= budget else 0.0
        return (budget - self.fixed) / self.per_pixel


@dataclass
class Recommendation:
    """A setting that fits the budget, with its predicted peak memory and step time."""

    what: str
    overrides: list[str]
    peak_bytes: int
    seconds_per_step: float


@dataclass
class Plan:
    """A training run's predicted cost (see the module docstring)."""

    preset: str
    method: str
    size: tuple[int, int]
    batch: int
    precision: str
    device: str
    memory_kind: str
    parameters: dict[str, int]
    #: Bytes of weights, gradients and optimiser state (fp32, Adam) of the trainable networks.
    static_bytes: dict[str, int]
    #: Predicted peak memory of a training step at ``size`` and ``batch`` (bytes).
    peak_bytes: int
    #: Predicted seconds per training step.
    step_seconds: float
    gflop_per_step: float | None
    probes: list[Probe]
    #: Peak bytes and seconds per step as functions of the pixels per step (batch x h x w).
    memory_fit: LinearFit | None = None
    time_fit: LinearFit | None = None
    memory_budget: int | None = None
    fits: bool | None = None
    recommendations: list[Recommendation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["probes"] = [asdict(p) | {"pixels": p.pixels} for p in self.probes]
        return d


# --------------------------------------------------------------------------- probes


def probe(cfg: Config, size: tuple[int, int], batch: int, *, steps: int = 2, flops: bool = False) -> Probe:
    """Time a few training steps of ``cfg`` at ``size`` in a fresh Python process and read its peak
    memory (see :class:`Plan`). Raises RuntimeError with the child's last lines when it fails."""
    return probes(cfg, [(size, batch)], steps=steps, flops=flops)[0]


def probes(cfg: Config, settings: Sequence[tuple[tuple[int, int], int]], *, steps: int = 2,
           flops: bool = False) -> list[Probe]:
    """:func:`probe` for several (size, batch) settings, each in its own fresh process (a process's
    peak memory only grows, and memory an earlier setting left in the allocator would blur a later
    one's). FLOPs are counted for the first setting when ``flops``."""
    out = []
    for i, (size, batch) in enumerate(settings):
        spec = {"config": cfg.to_dict(), "size": list(size), "batch": batch, "steps": steps, "flops": flops and i == 0}
        proc = subprocess.run([sys.executable, "-m", "pairgan.plan", "--probe"], input=json.dumps(spec),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"a training probe of {cfg.method} at {size[1]}x{size[0]} batch {batch} failed:\n{tail}")
        o = json.loads(proc.stdout.strip().splitlines()[-1])
        out.append(Probe((o["size"][0], o["size"][1]), o["batch"], o["seconds_per_step"], o["peak_bytes"],
                         o.get("gflop_per_step")))
    return out


def _run_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """The child's side of :func:`probes`: one :func:`pairgan.bench.bench` training measurement."""
    tune_host_allocator()  # as `pairgan train` runs
    size = (int(spec["size"][0]), int(spec["size"][1]))
    r = bench(config_from_dict(spec["config"]), mode="train", size=size, batch=int(spec["batch"]),
              steps=int(spec["steps"]), warmup=1, measure_peak=False, flops=bool(spec["flops"]))
    peak = (r["cuda_max_allocated_gib"] if "cuda_max_allocated_gib" in r else r["peak_rss_gib"]) * 2**30
    return {"size": list(size), "batch": r["batch"], "seconds_per_step": r["seconds_per_step"]["median"],
            "peak_bytes": int(peak), "gflop_per_step": r.get("gflop_per_step")}


#: The pixels of the two probes as shares of the requested step's: far enough apart that noise in
#: a measured peak (some tens of MiB run to run) moves the slope little, close enough to the
#: requested size that both sit in its memory regime (at small sizes the allocator keeps freed
#: blocks below glibc's mmap threshold, which bends the curve).
PROBE_SHARES = (0.4, 0.8)


def _probe_settings(size: tuple[int, int], batch: int, multiple: int,
                    shares: Sequence[float] = PROBE_SHARES) -> list[tuple[tuple[int, int], int]]:
    """Two reduced (size, batch) settings of about ``shares`` of the requested pixels per step:
    smaller batches at the requested size when the batch allows (memory is linear in the batch),
    else smaller sizes at batch 1 (multiples of ``multiple``, aspect kept, below ``size`` where the
    multiple allows)."""
    if batch >= 3:
        b0 = max(1, round(batch * shares[0]))
        b1 = min(batch - 1, max(b0 + 1, round(batch * shares[1])))
        return [(size, b0), (size, b1)]
    h, w = size
    settings: list[tuple[tuple[int, int], int]] = []
    for share in shares:
        f = math.sqrt(share * batch)
        ph = max(multiple, int(round(h * f / multiple)) * multiple)
        pw = max(multiple, int(round(w * f / multiple)) * multiple)
        while ph * pw >= h * w * batch and (ph > multiple or pw > multiple):  # strictly fewer pixels
            if pw >= ph and pw > multiple:
                pw -= multiple
            else:
                ph -= multiple
        settings.append(((ph, pw), 1))
    if settings[0] == settings[1]:  # too coarse a multiple for two sizes: halve the first one's longer side
        ph, pw = settings[0][0]
        settings[0] = (((ph, max(multiple, (pw // 2) // multiple * multiple)) if pw >= ph
                        else (max(multiple, (ph // 2) // multiple * multiple), pw)), 1)
    return settings


# --------------------------------------------------------------------------- the plan


def _static_bytes(method: Method) -> tuple[dict[str, int], dict[str, int]]:
    """Parameter counts per network and the bytes of weights, gradients and Adam moments."""
    params = {k: sum(p.numel() for p in n.parameters()) for k, n in method.nets.items()}
    trainable = sum(p.numel() for n in method.nets.values() for p in n.parameters() if p.requires_grad)
    total = sum(params.values())
    return params, {"weights": 4 * total, "gradients": 4 * trainable, "optimizer": 8 * trainable}


def _fits(cfg: Config, size: tuple[int, int], batch: int, multiple: int) -> tuple[LinearFit, LinearFit, list[Probe]]:
    """Memory and time fits through two probes (see the module docstring)."""
    settings = _probe_settings(size, batch, multiple)
    if settings[0] == settings[1]:
        raise ConfigError(f"--size {size[1]}x{size[0]}: too small to probe below it (size multiple {multiple}); "
                          "`pairgan bench` measures it directly")
    measured = probes(cfg, settings, flops=True)
    mem = LinearFit.through(*[(p.pixels, p.peak_bytes) for p in measured])
    time_fit = LinearFit.through(*[(p.pixels, p.seconds_per_step) for p in measured])
    return mem, time_fit, measured


def plan_run(cfg: Config, *, size: tuple[int, int] | None = None, batch: int | None = None,
             device: torch.device | None = None, memory_budget: int | None = None, preset: str = "") -> Plan:
    """Predict the cost of training ``cfg`` at ``size`` (h, w; default the crop size) and ``batch``
    (default ``train.batch_size``) and, with ``memory_budget`` (bytes), recommend settings that fit."""
    if device is not None:  # a copy: the caller's config stays as it was
        cfg = config_from_dict(apply_overrides(cfg.to_dict(), [f"train.device={device}"]))
    batch = int(batch or cfg.train.batch_size)
    h, w = size or (cfg.data.crop_size, cfg.data.crop_size)
    method = build_method(cfg, training=True)
    multiple = int(method.size_multiple)
    if h % multiple or w % multiple:
        raise ConfigError(f"--size {w}x{h}: height and width must be multiples of {multiple} ({cfg.method}'s "
                          "size multiple)")
    params, static = _static_bytes(method)
    del method
    mem, time_fit, measured = _fits(cfg, (h, w), batch, multiple)
    pixels = batch * h * w
    flops = measured[0].gflop_per_step * pixels / measured[0].pixels if measured[0].gflop_per_step else None
    dev = cfg.train.device
    on_cuda = dev.startswith("cuda") or (dev == "auto" and torch.cuda.is_available())
    result = Plan(
        preset=preset, method=cfg.method, size=(h, w), batch=batch, precision=cfg.train.precision,
        device="cuda" if on_cuda else "cpu",
        memory_kind="CUDA max allocated" if on_cuda else "peak resident memory (VmHWM) of the training process",
        parameters=params, static_bytes=static, peak_bytes=int(mem.at(pixels)), step_seconds=time_fit.at(pixels),
        gflop_per_step=flops, probes=measured, memory_fit=mem, time_fit=time_fit, memory_budget=memory_budget)
    if memory_budget is not None:
        result.fits = result.peak_bytes <= memory_budget
        result.recommendations = _recommend(cfg, (h, w), batch, multiple, mem, time_fit,
                                            int(memory_budget * HEADROOM), on_cuda, result.notes)
    return result


def _recommend(cfg: Config, size: tuple[int, int], batch: int, multiple: int, mem: LinearFit, time_fit: LinearFit,
               budget: int, on_cuda: bool, notes: list[str]) -> list[Recommendation]:
    """Settings predicted to stay within ``budget`` (the usable share of the user's), cheapest change first."""
    h, w = size
    out: list[Recommendation] = []
    per_image = h * w
    most = int(mem.pixels_within(budget) // per_image)
    if most >= 1:
        out.append(Recommendation(f"batch {most} (the largest that fits)", [f"train.batch_size={most}"],
                                  int(mem.at(most * per_image)), time_fit.at(most * per_image)))
    # Variants that change the memory per pixel: probed, not guessed.
    variants: list[tuple[str, list[str]]] = []
    if not cfg.train.grad_checkpoint:
        variants.append(("activation checkpointing (--grad-checkpoint)", ["train.grad_checkpoint=true"]))
    if on_cuda and cfg.train.precision == "fp32":
        variants.append(("bf16 autocast (--precision bf16)", ["train.precision=bf16"]))
    elif not on_cuda:
        notes.append("bf16/fp16 not recommended on the CPU: autocast there saves little memory and is slower")
    if mem.at(batch * per_image) > budget:
        for what, overrides in variants:
            vcfg = _with(cfg, overrides)
            if vcfg is None:
                notes.append(f"{what}: not available for {cfg.method}")
                continue
            vmem, vtime, _ = _fits(vcfg, size, batch, multiple)
            vb = min(batch, int(vmem.pixels_within(budget) // per_image))
            if vb >= 1:
                out.append(Recommendation(f"{what}, batch {vb}", overrides + [f"train.batch_size={vb}"],
                                          int(vmem.at(vb * per_image)), vtime.at(vb * per_image)))
            else:
                notes.append(f"{what}: still above the budget at batch 1 ({_gib(vmem.at(per_image))})")
    if most < 1:
        # The largest crop of the same aspect, in the network's multiples, at batch 1.
        share = mem.pixels_within(budget) / per_image
        if share > 0:
            f = math.sqrt(share)
            ch, cw = int(h * f // multiple) * multiple, int(w * f // multiple) * multiple
            if ch >= multiple and cw >= multiple:
                out.append(Recommendation(
                    f"train on {cw}x{ch} crops at batch 1 (e.g. --set data.crop_size={min(ch, cw)} for square crops)",
                    ["train.batch_size=1"], int(mem.at(ch * cw)), time_fit.at(ch * cw)))
        if not out:
            notes.append(f"nothing fits: the fixed part alone (runtime, weights, optimiser) is {_gib(mem.fixed)}")
    return out


def _with(cfg: Config, overrides: Sequence[str]) -> Config | None:
    """``cfg`` with ``overrides`` (None when the method refuses them)."""
    try:
        new = config_from_dict(apply_overrides(cfg.to_dict(), list(overrides)))
        build_method(new, training=True)
    except ConfigError:
        return None
    return new


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def format_plan(p: Plan) -> str:
    """The plan as a few readable lines."""
    h, w = p.size
    lines = [
        f"{p.preset or p.method} at {w}x{h}, batch {p.batch}, {p.precision} on {p.device}",
        "  parameters: " + ", ".join(f"{k} {v / 1e6:.1f} M" for k, v in p.parameters.items())
        + f"; weights {_gib(p.static_bytes['weights'])}, gradients {_gib(p.static_bytes['gradients'])}, "
        f"Adam state {_gib(p.static_bytes['optimizer'])}",
        f"  predicted peak memory {_gib(p.peak_bytes)} ({p.memory_kind})",
        f"  predicted {p.step_seconds:.3f} s per step ({p.batch / p.step_seconds:.2f} img/s)"
        + (f", {p.gflop_per_step:.0f} GFLOP per step" if p.gflop_per_step else ""),
        "  from probes: " + "; ".join(f"{q.size[1]}x{q.size[0]} b{q.batch}: {q.seconds_per_step:.3f} s, "
                                      f"{_gib(q.peak_bytes)}" for q in p.probes),
    ]
    if p.memory_budget is not None:
        lines.append(f"  budget {_gib(p.memory_budget)}: " + ("fits" if p.fits else "does NOT fit")
                     + f"; settings within {HEADROOM:.0%} of it:")
        for r in p.recommendations:
            lines.append(f"  - {r.what}: {_gib(r.peak_bytes)}, {r.seconds_per_step:.3f} s/step  "
                         + " ".join(f"--set {o}" for o in r.overrides))
    lines += [f"  note: {n}" for n in p.notes]
    return "\n".join(lines)


if __name__ == "__main__" and sys.argv[1:] == ["--probe"]:
    print(json.dumps(_run_probe(json.loads(sys.stdin.read()))))
