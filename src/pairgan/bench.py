"""``pairgan bench``: measure a preset's training step, inference or input pipeline.

Every figure comes with what it was measured on (device, torch version, threads) and with the
machine's own convolution/matmul peak, measured in the same run, so that "achieved FLOP/s" can
be read as a fraction of what this machine can do.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from pairgan.config import Config
from pairgan.data.datasets import build_dataset
from pairgan.fsutil import atomic_write_text
from pairgan.infer import Translator
from pairgan.methods.base import StepContext
from pairgan.methods.build import build_method
from pairgan.runtime import resolve_device, seed_everything
from pairgan.train.sampler import BatchStream, build_loader


def peak_rss_gib() -> float:
    """This process's peak resident memory in GiB.

    Linux: VmHWM of /proc/self/status. Not getrusage's ru_maxrss, which survives exec, so a
    process started by a larger one would report its parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 2**30 if sys.platform == "darwin" else 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def time_steps(fn: Callable[[], Any], steps: int, warmup: int, device: torch.device) -> list[float]:
    """Seconds of each of ``steps`` calls of ``fn`` after ``warmup`` untimed ones.

    On CUDA every call is followed by a synchronisation, so a time covers the kernels the call
    queued and not only their launch.
    """
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call, counted by ``torch.utils.flop_counter`` (convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def machine_peak(device: torch.device, seconds: float = 2.0) -> dict[str, float]:
    """Best measured GFLOP/s of a large 3x3 convolution (NCHW and channels_last) and of a matmul."""
    out: dict[str, float] = {}
    dtype = torch.float32
    x = torch.randn(1, 256, 64, 64, device=device, dtype=dtype)
    w = torch.randn(256, 256, 3, 3, device=device, dtype=dtype)
    conv_flops = 2 * 256 * 256 * 9 * 64 * 64
    for name, (xx, ww) in {
        "conv3x3": (x, w),
        "conv3x3_channels_last": (x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)),
    }.items():
        out[name] = conv_flops / min(time_steps(lambda: F.conv2d(xx, ww, padding=1), 5, 2, device)) / 1e9
    a = torch.randn(2048, 2048, device=device, dtype=dtype)
    out["matmul"] = 2 * 2048**3 / min(time_steps(lambda: a @ a, 5, 2, device)) / 1e9
    out["best"] = max(out.values())
    return out


def summarize(times: list[float], items_per_step: int, flops: int | None, peak: float | None) -> dict[str, Any]:
    """Median/min/max seconds per step, items per second and, given FLOPs per step (and this
    machine's peak in GFLOP/s), the achieved GFLOP/s (and its fraction of the peak)."""
    med = statistics.median(times)
    result: dict[str, Any] = {
        "seconds_per_step": {"median": med, "min": min(times), "max": max(times)},
        "images_per_second": items_per_step / med,
        "steps_measured": len(times),
    }
    if flops:
        result["gflop_per_step"] = flops / 1e9
        result["achieved_gflops"] = flops / med / 1e9
        if peak:
            result["fraction_of_peak"] = flops / med / 1e9 / peak
    return result


def bench(
    cfg: Config,
    *,
    mode: str = "train",
    size: int | tuple[int, int] | None = None,
    batch: int = 1,
    steps: int = 10,
    warmup: int = 3,
    data_path: str | None = None,
    measure_peak: bool = True,
    backend: str = "auto",
    inference_mode: str = "eval",
    flops: bool = True,
) -> dict[str, Any]:
    """Run one benchmark and return its figures (see the module docstring).

    ``mode="infer"`` times :meth:`pairgan.infer.Translator.translate_batch`, the path ``translate``,
    ``evaluate`` and ``serve`` take, with ``backend`` (``auto``: the default, a compiled graph where
    it is exact; ``torch``: eager; ``torchscript`` or ``onnxruntime``: that kind of compiled graph,
    :mod:`pairgan.compiled`) in ``inference_mode``; the first call (which compiles the graph) is
    timed apart and the backend that ran is reported."""
    device = resolve_device(cfg.train.device)
    seed_everything(cfg.seed)
    # size: N (square) or (height, width); default the preset's crop size.
    h, w = (size, size) if isinstance(size, int) else (size or (cfg.data.crop_size, cfg.data.crop_size))
    info: dict[str, Any] = {
        "preset_method": cfg.method,
        "mode": mode,
        "batch": batch,
        "size": [h, w],
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "precision": cfg.train.precision,
    }
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    if mode == "data":
        if not data_path and not cfg.data.path:
            raise ValueError("--mode data needs --data PATH")
        if data_path:
            cfg.data.path = str(data_path)
        ds = build_dataset(cfg.data, cfg.data.train_split, train=True, seed=cfg.seed)
        # The training loop's own loader and order (a folder's sampler, or a shard stream).
        loader, order = build_loader(ds, batch_size=batch, seed=cfg.seed, shuffle=cfg.data.shuffle,
                                     num_workers=cfg.train.num_workers)
        stream = BatchStream(loader, order, 0, 0)
        times = time_steps(stream.next, steps, warmup, torch.device("cpu"))
        result = info | summarize(times, batch, None, None) | {
            "workers": cfg.train.num_workers, "data": str(cfg.data.path), "items": len(ds),
            "reader": getattr(ds, "layout", type(ds).__name__), "order": order.describe(),
            "preprocess": {"preprocess": cfg.data.preprocess, "load_size": cfg.data.load_size,
                           "crop_size": cfg.data.crop_size, "flip": cfg.data.flip},
        }
        result["peak_rss_gib"] = peak_rss_gib()
        return result

    method = build_method(cfg, training=(mode == "train"))
    method.to(device)
    example = {k: v.to(device) if torch.is_tensor(v) else v for k, v in method.example_batch(batch, h, w).items()}
    if mode == "train":
        for net in method.nets.values():
            net.train()
        optimizers = method.configure_optimizers(cfg.train)
        scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.precision == "fp16")
        ctx = StepContext(optimizers, device, cfg.train.precision, scaler)

        def step() -> None:
            method.train_step(example, ctx)
            if scaler.is_enabled():
                scaler.update()

    elif mode == "infer":
        method.set_inference_mode(inference_mode)
        t0 = time.perf_counter()
        # No checkpoint folder: compiled graphs are cached in $PAIRGAN_CACHE/compiled.
        translator = Translator(cfg, method, device, None, backend=backend)
        translator.translate_batch(example, seed=None)  # compiles (or loads) a graph: timed apart
        info["first_call_seconds"] = time.perf_counter() - t0
        info["inference_mode"] = inference_mode

        def step() -> None:
            translator.translate_batch(example, seed=None)

        def eager_step() -> None:
            with torch.no_grad():
                method.translate(example)

    else:
        raise ValueError(f"--mode {mode!r}: expected train, infer or data")

    # Compiled graphs and onnxruntime run outside PyTorch's dispatcher: count the same math eagerly.
    counted = count_flops(eager_step if mode == "infer" else step) if flops else None
    peak = machine_peak(device) if measure_peak else None
    times = time_steps(step, steps, warmup, device)
    result = info | summarize(times, batch, counted, peak["best"] if peak else None)
    result["parameters"] = {k: sum(p.numel() for p in n.parameters()) for k, n in method.nets.items()}
    if peak:
        result["machine_peak_gflops"] = peak
    if mode == "infer":
        result["backend"] = translator.describe_backend()
    result["peak_rss_gib"] = peak_rss_gib()
    if device.type == "cuda":
        result["cuda_max_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def write_result(result: dict[str, Any], path: str | Path) -> None:
    """Write a :func:`bench` result as JSON."""
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")


def format_result(r: dict[str, Any]) -> str:
    """A few readable lines."""
    s = r["seconds_per_step"]
    lines = [
        f"{r['preset_method']} {r['mode']} batch {r['batch']} at {r['size'][1]}x{r['size'][0]} (WxH) on {r['device']} "
        f"(torch {r['torch']}, {r['threads']} threads, {r['precision']})",
        f"  s/step median {s['median']:.4f} (min {s['min']:.4f}, max {s['max']:.4f}) over {r['steps_measured']} steps; "
        f"{r['images_per_second']:.3f} img/s",
    ]
    if "gflop_per_step" in r:
        frac = f", {100 * r['fraction_of_peak']:.0f}% of this machine's measured peak " \
               f"{r['machine_peak_gflops']['best']:.0f} GFLOP/s" if "fraction_of_peak" in r else ""
        lines.append(f"  {r['gflop_per_step']:.1f} GFLOP/step, {r['achieved_gflops']:.1f} GFLOP/s achieved{frac}")
    if "backend" in r:
        lines.append(f"  backend: {r['backend']}; first call {r['first_call_seconds']:.2f} s "
                     f"({r['inference_mode']} mode)")
    mem = f"  peak RSS {r['peak_rss_gib']:.2f} GiB"
    if "cuda_max_allocated_gib" in r:
        mem += f", CUDA max allocated {r['cuda_max_allocated_gib']:.2f} GiB"
    lines.append(mem)
    return "\n".join(lines)
